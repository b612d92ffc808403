//! A provider's refusal of a token, revocation, introspection or hook call: from (HTTP status,
//! `error`/`errorCode`, `error_description`, grant type) to a code of the catalog.
//!
//! Matching is on the error code first; the description only refines a code that already
//! matched (Salesforce answers `invalid_grant` for half a dozen different problems).

use super::{Code, Diagnosis};

/// A failed call to a provider, as far as it is known. Descriptions are provider text; they
/// hold no secret of ours.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderFailure<'a> {
    /// `None` when no answer came (network error, timeout).
    pub http_status: Option<u16>,
    /// OAuth `error`, or Salesforce REST `errorCode`.
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
    /// `refresh_token`, `client_credentials`, `authorization_code`, `refresh_hook`, ...
    pub grant_type: Option<&'a str>,
    /// The host the key names (Salesforce `host`), to word the cause.
    pub host: Option<&'a str>,
    pub timed_out: bool,
}

/// Diagnose a failed token, revocation, introspection or hook call.
pub fn diagnose(f: &ProviderFailure<'_>) -> Diagnosis {
    let desc = f.error_description.unwrap_or("").to_ascii_lowercase();
    let Some(status) = f.http_status else {
        return if f.timed_out {
            Code::ProviderTimeout.diagnosis()
        } else {
            Code::ProviderUnreachable.diagnosis()
        };
    };
    let code = f.error.unwrap_or("");
    match code {
        "invalid_grant" => invalid_grant(f, &desc).diagnosis_for(f),
        // Older Salesforce orgs say `invalid_client_credentials` for a wrong secret.
        "invalid_client" | "invalid_client_credentials" => Code::WrongClientSecret.diagnosis(),
        "invalid_client_id" => Code::WrongClientId.diagnosis(),
        "inactive_user" => Code::InactiveUser.diagnosis(),
        "inactive_org" => Code::InactiveOrg.diagnosis(),
        "unauthorized_client" => Code::UnauthorizedClient.diagnosis(),
        "invalid_scope" => Code::InvalidScope.diagnosis(),
        "unsupported_grant_type" => Code::UnsupportedGrantType.diagnosis(),
        "redirect_uri_mismatch" => Code::RedirectUriMismatch.diagnosis(),
        "invalid_request" if status < 500 && status != 429 => Code::InvalidRequest.diagnosis(),
        "API_DISABLED_FOR_ORG" => Code::ApiDisabled.diagnosis(),
        "REQUEST_LIMIT_EXCEEDED" => Code::ApiLimitExceeded.diagnosis(),
        // Transient by their code, whatever status a proxy put around them.
        "temporarily_unavailable" | "server_error" | "rate_limit_exceeded" => {
            by_status(if status == 429 { 429 } else { status.max(500) }, code)
        }
        _ => by_status(status, code),
    }
}

/// Which of Salesforce's many `invalid_grant`s this is, by its description.
fn invalid_grant(f: &ProviderFailure<'_>, desc: &str) -> Code {
    if desc.contains("not supported on this domain") {
        Code::WrongHost
    } else if desc.contains("no valid scopes") {
        Code::NoValidScopes
    } else if desc.contains("client credentials user") {
        Code::NoRunAsUser
    } else if desc.contains("ip restricted") || desc.contains("login hours") {
        Code::IpRestricted
    } else if desc.contains("approved this consumer") || desc.contains("not approved") {
        Code::AppNotApproved
    } else if desc.contains("code verifier") {
        Code::InvalidCodeVerifier
    } else if desc.contains("authorization code") {
        Code::InvalidAuthorizationCode
    } else if desc.contains("expired")
        || desc.contains("revoked")
        || f.grant_type == Some("refresh_token")
    {
        Code::RefreshTokenExpired
    } else {
        Code::InvalidGrant
    }
}

impl Code {
    /// The diagnosis of a grant failure, its cause naming the key's host where it is the
    /// host's fault.
    fn diagnosis_for(self, f: &ProviderFailure<'_>) -> Diagnosis {
        match (self, f.host) {
            (Code::WrongHost, Some(host)) => self.diagnosis().with_cause(format!(
                "{host} does not accept this grant: wrong host value in the key"
            )),
            _ => self.diagnosis(),
        }
    }
}

/// No code we know: decide by the HTTP status alone.
fn by_status(status: u16, code: &str) -> Diagnosis {
    let (paren, comma) = if code.is_empty() {
        (String::new(), String::new())
    } else {
        (format!(" ({code})"), format!(", {code}"))
    };
    match status {
        429 => Code::RateLimited.diagnosis(),
        408 | 425 | 500..=599 => Code::ProviderUnavailable
            .diagnosis()
            .with_cause(format!("the provider answered {status}{paren}")),
        401 => Code::Unauthorized.diagnosis(),
        403 => Code::Forbidden.diagnosis(),
        404 | 405 => Code::WrongEndpoint.diagnosis().with_cause(format!(
            "the endpoint answered {status}: the URL does not serve OAuth"
        )),
        300..=399 => Code::Redirected.diagnosis().with_cause(format!(
            "the endpoint answered with a redirect ({status}); redirects are not followed"
        )),
        _ => Code::ProviderError
            .diagnosis()
            .with_cause(format!("the provider refused the call ({status}{comma})")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::FailureClass::{Permanent, Transient};
    use super::*;

    fn grant(status: u16, error: &str, desc: &str, gt: &str) -> Diagnosis {
        diagnose(&ProviderFailure {
            http_status: Some(status),
            error: Some(error),
            error_description: Some(desc),
            grant_type: Some(gt),
            host: Some("acme.my.salesforce.com"),
            timed_out: false,
        })
    }

    /// Salesforce refusals whose cause is not the refresh token, though they come from a
    /// refresh: they must not be told to re-authenticate for the wrong reason.
    #[test]
    fn salesforce_login_policies_are_told_apart_from_an_expired_token() {
        let rt = "refresh_token";
        let d = grant(
            400,
            "invalid_grant",
            "ip restricted or invalid login hours",
            rt,
        );
        assert_eq!((d.code, d.class), ("ip_restricted", Permanent));
        assert!(d.fix.contains("Relax IP restrictions"), "{}", d.fix);
        let d = grant(
            400,
            "invalid_grant",
            "user hasn't approved this consumer",
            rt,
        );
        assert_eq!(d.code, "app_not_approved");
        let d = grant(
            400,
            "invalid_client_credentials",
            "client secret invalid",
            rt,
        );
        assert_eq!(d.code, "wrong_client_secret");
        assert_eq!(
            grant(400, "invalid_grant", "expired access/refresh token", rt).code,
            "refresh_token_expired"
        );
    }

    /// Salesforce's troubleshooting table for connected apps.
    #[test]
    fn salesforce_troubleshooting_table() {
        let cc = "client_credentials";
        let d = grant(
            400,
            "invalid_grant",
            "request not supported on this domain",
            cc,
        );
        assert_eq!(d.code, "wrong_host");
        assert!(
            d.cause.starts_with("acme.my.salesforce.com "),
            "{}",
            d.cause
        );
        assert_eq!(
            grant(400, "invalid_grant", "no valid scopes defined", cc).code,
            "no_valid_scopes"
        );
        assert_eq!(
            grant(
                400,
                "invalid_grant",
                "no client credentials user enabled",
                cc
            )
            .code,
            "no_run_as_user"
        );
        assert_eq!(
            grant(
                400,
                "invalid_grant",
                "expired access/refresh token",
                "refresh_token"
            )
            .code,
            "refresh_token_expired"
        );
        assert_eq!(
            grant(400, "invalid_client", "invalid client credentials", cc).code,
            "wrong_client_secret"
        );
        assert_eq!(
            grant(400, "invalid_client_id", "client identifier invalid", cc).code,
            "wrong_client_id"
        );
        assert_eq!(
            grant(400, "inactive_user", "user is inactive", cc).code,
            "inactive_user"
        );
    }

    #[test]
    fn message_text_alone_matches_nothing() {
        // The description of a known failure under another code must not be mistaken for it.
        let x = grant(
            400,
            "some_other_error",
            "request not supported on this domain",
            "client_credentials",
        );
        assert_ne!(x.code, "wrong_host");
        assert_eq!(x.class, Permanent);
    }

    #[test]
    fn transient_failures() {
        assert_eq!(
            grant(429, "rate_limit_exceeded", "", "refresh_token").class,
            Transient
        );
        assert_eq!(
            grant(503, "temporarily_unavailable", "", "refresh_token").class,
            Transient
        );
        assert_eq!(grant(500, "", "", "refresh_token").class, Transient);
        let timeout = diagnose(&ProviderFailure {
            timed_out: true,
            ..Default::default()
        });
        assert_eq!(
            (timeout.code, timeout.class),
            ("provider_timeout", Transient)
        );
        assert_eq!(grant(403, "", "", "refresh_hook").class, Permanent);
        // A transient code under a 4xx status is still transient.
        let d = grant(400, "temporarily_unavailable", "", "refresh_token");
        assert_eq!((d.code, d.class), ("provider_unavailable", Transient));
    }

    /// Every diagnosis takes its class from the catalog, so the retry decision and the
    /// README agree.
    #[test]
    fn classes_come_from_the_catalog() {
        for (status, error) in [
            (400, "invalid_grant"),
            (429, ""),
            (503, ""),
            (302, ""),
            (418, "x"),
        ] {
            let d = grant(status, error, "", "client_credentials");
            assert_eq!(d.class, Code::parse(d.code).unwrap().class(), "{}", d.code);
        }
    }
}
