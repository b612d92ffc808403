//! A destination's answer to a delivery or to the connector test's probe (a Salesforce Apex
//! REST endpoint answers errors as `[{"message","errorCode"}]`), or the lack of one: from (HTTP
//! status, `errorCode`, `Location`) to a code of the catalog. The one diagnosis of an answer:
//! `retry::classify_status` decides what it means for the delivery, this says why.

use super::{Code, Diagnosis};

/// Why no HTTP answer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    Timeout,
    Connect,
    /// The destination's name resolves only to refused addresses (SSRF guard).
    AddressRefused,
    Other,
}

/// Diagnose a destination's answer; `None` when it is a success.
pub fn diagnose_endpoint(status: u16, body: &str) -> Option<Diagnosis> {
    diagnose_answer(status, None, body)
}

/// `diagnose_endpoint` with the answer's `Location`, which a redirect's cause names.
pub fn diagnose_answer(status: u16, location: Option<&str>, body: &str) -> Option<Diagnosis> {
    if (200..300).contains(&status) {
        return None;
    }
    let rest_code = rest_error_code(body);
    let rest = rest_code.as_deref();
    let with_rest = match rest {
        Some(c) => format!(" {c}"),
        None => String::new(),
    };
    Some(match status {
        410 => Code::EndpointGone.diagnosis(),
        300..=399 => Code::RedirectRefused
            .diagnosis()
            .with_cause(match location {
                Some(to) => format!(
                    "the endpoint redirects ({status}) to {}; redirects are not followed",
                    truncate(to)
                ),
                None => {
                    format!(
                        "the endpoint answered a redirect ({status}); redirects are not followed"
                    )
                }
            }),
        // Salesforce's answer (403) to an org that has used up its API requests of the last 24
        // hours; a proxy may turn it into a 429 or 503.
        _ if rest == Some("REQUEST_LIMIT_EXCEEDED") => Code::ApiLimitExceeded.diagnosis(),
        429 => Code::EndpointRateLimited.diagnosis(),
        408 | 425 | 500..=599 => Code::EndpointUnavailable
            .diagnosis()
            .with_cause(format!("the endpoint answered {status}{with_rest}")),
        400..=499 => match rest {
            Some("NOT_FOUND") => Code::ApexClassNotFound.diagnosis(),
            // Apex REST's answer when the user behind the token may not run the class.
            Some("FORBIDDEN") => Code::ApexClassAccess.diagnosis(),
            Some("API_DISABLED_FOR_ORG") => Code::ApiDisabled.diagnosis(),
            Some("INVALID_SESSION_ID") if status == 401 => Code::InvalidSession.diagnosis(),
            Some("JSON_PARSER_ERROR") if status == 400 => Code::BodyNotAccepted.diagnosis(),
            _ => match status {
                401 => Code::InvalidSession
                    .diagnosis()
                    .with_cause("the endpoint does not accept this token (401)"),
                403 => Code::EndpointForbidden.diagnosis(),
                404 => Code::EndpointNotFound.diagnosis(),
                405 => Code::PostNotAllowed.diagnosis(),
                413 => Code::CallbackTooLarge.diagnosis(),
                _ => refused(status, &with_rest),
            },
        },
        _ => refused(status, &with_rest),
    })
}

fn refused(status: u16, with_rest: &str) -> Diagnosis {
    Code::EndpointRefused.diagnosis().with_cause(format!(
        "the endpoint refused the callback ({status}{with_rest}); the response excerpt says why"
    ))
}

/// Diagnose a request that got no answer.
pub fn diagnose_transport(failure: TransportFailure) -> Diagnosis {
    match failure {
        TransportFailure::AddressRefused => Code::UrlAddressRefused.diagnosis().with_cause(
            "the destination's address is not allowed: it resolves to a loopback, private, link-local or otherwise refused address",
        ),
        TransportFailure::Timeout => Code::EndpointTimeout.diagnosis(),
        TransportFailure::Connect | TransportFailure::Other => {
            Code::EndpointUnreachable.diagnosis()
        }
    }
}

/// `errorCode` of the first element of a Salesforce REST error array, or of an object.
pub(crate) fn rest_error_code(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let first = match &v {
        serde_json::Value::Array(items) => items.first()?,
        other => other,
    };
    first
        .get("errorCode")
        .and_then(|c| c.as_str())
        .map(str::to_owned)
}

fn truncate(raw: &str) -> String {
    raw.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::super::FailureClass::{Permanent, Transient};
    use super::*;

    fn rest(status: u16, code: &str) -> Diagnosis {
        diagnose_endpoint(
            status,
            &format!(r#"[{{"errorCode":"{code}","message":"m"}}]"#),
        )
        .expect("a refusal")
    }

    #[test]
    fn salesforce_apex_answers() {
        let d = rest(404, "NOT_FOUND");
        assert_eq!((d.code, d.class), ("apex_class_not_found", Permanent));
        assert!(d.cause.contains("namespace prefix"));
        assert!(d.fix.contains("Salesforce setup"), "{}", d.fix);
        assert_eq!(rest(401, "INVALID_SESSION_ID").code, "invalid_session");
        assert_eq!(rest(401, "INVALID_SESSION_ID").class, Transient);
        assert_eq!(rest(403, "FORBIDDEN").code, "apex_class_access");
        assert!(rest(403, "FORBIDDEN").fix.contains("Apex Class Access"));
        assert_eq!(rest(403, "API_DISABLED_FOR_ORG").code, "api_disabled");
        let d = rest(403, "REQUEST_LIMIT_EXCEEDED");
        assert_eq!((d.code, d.class), ("api_limit_exceeded", Transient));
        assert_eq!(rest(400, "JSON_PARSER_ERROR").code, "body_not_accepted");
        assert_eq!(diagnose_endpoint(200, ""), None);
        assert_eq!(diagnose_endpoint(204, "garbage"), None);
    }

    #[test]
    fn answers_known_by_their_status() {
        let plain = |status| diagnose_endpoint(status, "").unwrap().code;
        assert_eq!(plain(401), "invalid_session");
        assert_eq!(plain(403), "endpoint_forbidden");
        assert_eq!(plain(404), "endpoint_not_found");
        assert_eq!(plain(405), "post_not_allowed");
        assert_eq!(plain(410), "endpoint_gone");
        assert_eq!(plain(413), "callback_too_large");
        assert_eq!(plain(429), "endpoint_rate_limited");
        for s in [408, 425, 500, 502, 503, 504] {
            let d = diagnose_endpoint(s, "").unwrap();
            assert_eq!(
                (d.code, d.class),
                ("endpoint_unavailable", Transient),
                "{s}"
            );
            assert!(d.cause.contains(&s.to_string()));
        }
        let d = rest(418, "TEAPOT");
        assert_eq!(d.code, "endpoint_refused");
        assert!(d.cause.contains("418 TEAPOT"), "{}", d.cause);
        // An Apex code under a server error is the server error: it is retried.
        assert_eq!(rest(503, "NOT_FOUND").code, "endpoint_unavailable");
    }

    #[test]
    fn a_redirect_names_where_it_points() {
        let d = diagnose_answer(302, Some("https://x/y"), "").unwrap();
        assert_eq!(d.code, "redirect_refused");
        assert!(d.cause.contains("https://x/y"), "{}", d.cause);
        let d = diagnose_answer(301, None, "").unwrap();
        assert!(d.cause.contains("301"), "{}", d.cause);
    }

    #[test]
    fn no_answer() {
        let d = diagnose_transport(TransportFailure::AddressRefused);
        assert_eq!((d.code, d.class), ("url_address_refused", Permanent));
        assert!(d.fix.contains("allow_private_networks"));
        assert_eq!(
            diagnose_transport(TransportFailure::Timeout).code,
            "endpoint_timeout"
        );
        for f in [TransportFailure::Connect, TransportFailure::Other] {
            let d = diagnose_transport(f);
            assert_eq!((d.code, d.class), ("endpoint_unreachable", Transient));
        }
    }
}
