//! What a failure means and what to do about it: a provider's refusal of a grant, a
//! destination's answer to a delivery, a key or a connector's status. Pure.
//!
//! Every diagnosis has a code of the catalog (`Code`), declared once with its class and its
//! generic cause and fix; the functions here pick the code and may word the cause or fix with the
//! details of the case. `DiagnosisView` is the `{"code","cause","fix"}` the store keeps and the
//! API shows.

mod catalog;
mod endpoint;
mod provider;

use serde::{Deserialize, Serialize};

pub use catalog::Code;
pub(crate) use endpoint::rest_error_code;
pub use endpoint::{diagnose_answer, diagnose_endpoint, diagnose_transport, TransportFailure};
pub use provider::{diagnose, ProviderFailure};

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Network, timeouts, 429, 5xx, `temporarily_unavailable`: back off and retry.
    Transient,
    /// The credentials or the configuration are wrong: no retry until they change.
    Permanent,
}

/// A known failure: a code of the catalog, its cause and its fix, and its class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Stable, `snake_case`, e.g. `wrong_host`: a `Code`'s text.
    pub code: &'static str,
    pub cause: String,
    pub fix: String,
    pub class: FailureClass,
}

impl Diagnosis {
    /// The same diagnosis, its cause worded for this case.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = cause.into();
        self
    }

    /// The same diagnosis, its fix worded for this case.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

/// A diagnosis as it is stored and shown: `{"code", "cause", "fix"}`, without its class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosisView {
    pub code: String,
    pub cause: String,
    pub fix: String,
}

impl From<&Diagnosis> for DiagnosisView {
    fn from(d: &Diagnosis) -> Self {
        Self {
            code: d.code.to_owned(),
            cause: d.cause.clone(),
            fix: d.fix.clone(),
        }
    }
}

impl From<Diagnosis> for DiagnosisView {
    fn from(d: Diagnosis) -> Self {
        Self {
            code: d.code.to_owned(),
            cause: d.cause,
            fix: d.fix,
        }
    }
}

impl From<Code> for DiagnosisView {
    fn from(code: Code) -> Self {
        code.diagnosis().into()
    }
}

impl DiagnosisView {
    /// The JSON text a store column keeps.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("three strings always serialise")
    }

    /// Read back what `to_stored` wrote. Anything else is a plain sentence written before
    /// diagnoses had codes: `unclassified`, with that sentence as its cause.
    pub fn from_stored(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_else(|_| Self::unclassified(text, None))
    }

    /// A cause (and perhaps a fix) recorded without a code.
    pub fn unclassified(cause: &str, fix: Option<&str>) -> Self {
        Self {
            code: Code::Unclassified.as_str().to_owned(),
            cause: cause.to_owned(),
            fix: fix
                .filter(|f| !f.is_empty())
                .unwrap_or(Code::Unclassified.fix())
                .to_owned(),
        }
    }
}

/// The key was produced by `base64` without `-w 0`: it was accepted, say why it looked wrong.
/// Attached by the API when the key parser reports line breaks.
pub fn line_wrapped_key() -> Diagnosis {
    Code::LineWrappedKey.diagnosis()
}

/// A refresh hook that answered 2xx with a non-empty `errorResponse`.
pub fn hook_error_response(message: &str) -> Diagnosis {
    let shown: String = message.chars().take(200).collect();
    Code::HookErrorResponse
        .diagnosis()
        .with_cause(format!("the refresh hook reported an error: {shown}"))
}

/// A success answer that cannot be used (no `access_token`, not JSON, ...).
pub fn unusable_response(what: &str) -> Diagnosis {
    Code::UnusableResponse
        .diagnosis()
        .with_cause(format!("the provider answered 2xx but {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_diagnosis_reads_back_and_an_old_sentence_is_unclassified() {
        let d = DiagnosisView::from(Code::NoRunAsUser);
        assert_eq!(DiagnosisView::from_stored(&d.to_stored()), d);
        let old = DiagnosisView::from_stored("the endpoint did not answer in time");
        assert_eq!(old.code, "unclassified");
        assert_eq!(old.cause, "the endpoint did not answer in time");
        assert_eq!(old.fix, Code::Unclassified.fix());
        // JSON that is not a diagnosis is a sentence too.
        assert_eq!(DiagnosisView::from_stored("{\"a\":1}").code, "unclassified");
    }

    /// Every code of the catalog comes out of a function of this crate for some input, or is
    /// one a caller picks itself (listed here): a new code needs a way to happen.
    #[test]
    fn every_code_has_a_way_to_happen() {
        use std::collections::HashSet;
        let grant = |status: u16, error: &str, desc: &str, gt: &str| {
            diagnose(&ProviderFailure {
                http_status: Some(status),
                error: Some(error),
                error_description: Some(desc),
                grant_type: Some(gt),
                host: None,
                timed_out: false,
            })
            .code
        };
        let rest = |status: u16, code: &str| {
            diagnose_endpoint(
                status,
                &format!(r#"[{{"errorCode":"{code}","message":"m"}}]"#),
            )
            .expect("a refusal")
            .code
        };
        let mut made: HashSet<&str> = [
            grant(
                400,
                "invalid_grant",
                "request not supported on this domain",
                "x",
            ),
            grant(400, "invalid_grant", "no valid scopes defined", "x"),
            grant(
                400,
                "invalid_grant",
                "no client credentials user enabled",
                "x",
            ),
            grant(
                400,
                "invalid_grant",
                "ip restricted or invalid login hours",
                "x",
            ),
            grant(
                400,
                "invalid_grant",
                "user hasn't approved this consumer",
                "x",
            ),
            grant(400, "invalid_grant", "expired access/refresh token", "x"),
            grant(400, "invalid_grant", "invalid code verifier", "x"),
            grant(400, "invalid_grant", "invalid authorization code", "x"),
            grant(400, "invalid_grant", "something else", "client_credentials"),
            grant(400, "invalid_client", "", "x"),
            grant(400, "invalid_client_id", "", "x"),
            grant(400, "inactive_user", "", "x"),
            grant(400, "inactive_org", "", "x"),
            grant(400, "unauthorized_client", "", "x"),
            grant(400, "invalid_scope", "", "x"),
            grant(400, "unsupported_grant_type", "", "x"),
            grant(400, "redirect_uri_mismatch", "", "x"),
            grant(400, "invalid_request", "", "x"),
            grant(429, "", "", "x"),
            grant(503, "", "", "x"),
            grant(401, "", "", "x"),
            grant(403, "", "", "x"),
            grant(404, "", "", "x"),
            grant(302, "", "", "x"),
            grant(400, "", "", "x"),
            grant(403, "API_DISABLED_FOR_ORG", "", "x"),
            grant(403, "REQUEST_LIMIT_EXCEEDED", "", "x"),
            diagnose(&ProviderFailure {
                timed_out: true,
                ..Default::default()
            })
            .code,
            diagnose(&ProviderFailure::default()).code,
            hook_error_response("x").code,
            unusable_response("x").code,
            line_wrapped_key().code,
            rest(404, "NOT_FOUND"),
            rest(403, "FORBIDDEN"),
            rest(400, "JSON_PARSER_ERROR"),
            rest(401, "INVALID_SESSION_ID"),
            rest(403, "API_DISABLED_FOR_ORG"),
            rest(403, "REQUEST_LIMIT_EXCEEDED"),
            rest(403, "INSUFFICIENT_ACCESS"),
            rest(404, "SOMETHING"),
            rest(405, "METHOD_NOT_ALLOWED"),
            rest(410, "GONE"),
            rest(413, "TOO_BIG"),
            rest(418, "TEAPOT"),
            rest(429, "LIMIT"),
            rest(503, "SERVER_UNAVAILABLE"),
            rest(302, "X"),
            diagnose_transport(TransportFailure::Timeout).code,
            diagnose_transport(TransportFailure::Connect).code,
            diagnose_transport(TransportFailure::AddressRefused).code,
            crate::destination::url_not_in_org("https://a.example", "https://b.example").code,
        ]
        .into_iter()
        .collect();
        assert_eq!(
            DiagnosisView::from_stored("an old sentence").code,
            "unclassified"
        );
        // Picked by their callers: the URL rules' refusals of an endpoint (oauth), the outcome
        // of a 401 at delivery and of a delivery without a token (server), the key and the
        // status of a connector (status, server), a row older than codes (above).
        for picked in [
            Code::Unclassified,
            Code::UrlNotHttps,
            Code::UrlRefused,
            Code::FreshTokenRefused,
            Code::CallbackKeyRefused,
            Code::TokenUnavailable,
            Code::StoredKeyInvalid,
            Code::ConnectorNeedsReauth,
            Code::ConnectorRevoked,
        ] {
            made.insert(picked.as_str());
        }
        let missing: Vec<&str> = Code::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|c| !made.contains(c))
            .collect();
        assert!(missing.is_empty(), "no way to happen: {missing:?}");
        for code in &made {
            assert!(Code::parse(code).is_some(), "{code} is not in the catalog");
        }
    }
}
