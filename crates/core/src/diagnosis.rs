//! What a provider's failure means and what to do about it (DESIGN.md "Diagnosis"; the
//! troubleshooting table of seed 001). Pure: a table from (HTTP status, `error`/`errorCode`,
//! `error_description`, grant type, host) to a cause and a fix, and a failure class.
//!
//! Matching is on the error code first; the description only refines a code that already
//! matched (Salesforce answers `invalid_grant` for half a dozen different problems).

use serde::Serialize;

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Network, timeouts, 429, 5xx, `temporarily_unavailable`: back off and retry.
    Transient,
    /// The credentials or the configuration are wrong: no retry until they change.
    Permanent,
}

/// A known failure: a stable code, its cause and its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Stable, `snake_case`, e.g. `wrong_host`.
    pub code: &'static str,
    pub cause: String,
    pub fix: String,
    pub class: FailureClass,
}

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
    /// The host the key names (Salesforce `host`), to word the fix.
    pub host: Option<&'a str>,
    pub timed_out: bool,
}

fn d(
    code: &'static str,
    class: FailureClass,
    cause: impl Into<String>,
    fix: impl Into<String>,
) -> Diagnosis {
    Diagnosis {
        code,
        cause: cause.into(),
        fix: fix.into(),
        class,
    }
}

use FailureClass::{Permanent, Transient};

const REAUTH_FIX: &str = "re-authenticate: open the URL from GET /api/callback/connectors/{name}/oauth/url, or give a new key with a fresh refresh token (PATCH {\"key\": ...})";

/// Diagnose a failed token, revocation, introspection or hook call (`grant_type` set), or a
/// destination's refusal (`grant_type` `None`: Apex `NOT_FOUND`, `INVALID_SESSION_ID`).
pub fn diagnose(f: &ProviderFailure<'_>) -> Diagnosis {
    let desc = f.error_description.unwrap_or("").to_ascii_lowercase();
    let host = f.host.unwrap_or("the host in the key");
    let Some(status) = f.http_status else {
        return if f.timed_out {
            d(
                "provider_timeout",
                Transient,
                "the provider did not answer in time",
                "nothing to do if it passes; check the endpoint's availability if it persists",
            )
        } else {
            d(
                "provider_unreachable",
                Transient,
                "the provider could not be reached (DNS, connection refused or TLS failure)",
                "check the host and the endpoint URLs in the key, and that the provider is up",
            )
        };
    };
    let code = f.error.unwrap_or("");
    match code {
        "invalid_grant" => {
            if desc.contains("not supported on this domain") {
                d(
                    "wrong_host",
                    Permanent,
                    format!("{host} does not accept this grant: wrong host value in the key"),
                    "use test.salesforce.com for a sandbox, or your org's My Domain (yourcompany.my.salesforce.com) if the login policy enforces it; the client credentials flow always needs the My Domain",
                )
            } else if desc.contains("no valid scopes") {
                d(
                    "no_valid_scopes",
                    Permanent,
                    "refresh_token or offline_access is in the scope of a client credentials app, or the app has no valid scope",
                    "remove refresh_token and offline_access from the app's OAuth scopes (and from the key's `scope`); add the api scope",
                )
            } else if desc.contains("client credentials user") {
                d(
                    "no_run_as_user",
                    Permanent,
                    "no \"Run As\" user is set for the client credentials flow",
                    "Setup → External Client Apps (or the Connected App) → Policies → Client Credentials Flow: set Run As to an active integration user with API Enabled",
                )
            } else if desc.contains("ip restricted") || desc.contains("login hours") {
                d(
                    "ip_restricted",
                    Permanent,
                    "the provider refused the login from this server's address or at this hour (the integration user's profile restricts login IP ranges or login hours)",
                    "on the Connected App / External Client App set IP Relaxation to \"Relax IP restrictions\", or add this server's outbound IP to the user's profile (Login IP Ranges) and check its Login Hours; then give the key again to resume",
                )
            } else if desc.contains("approved this consumer") || desc.contains("not approved") {
                d(
                    "app_not_approved",
                    Permanent,
                    "the user has not approved this app: it admits only pre-authorized users, and this user's profile or permission set is not assigned to it",
                    "assign the user's profile or a permission set to the app (Manage → Profiles / Manage Permission Sets), or have the user authorize it through GET .../oauth/url",
                )
            } else if desc.contains("code verifier") {
                d(
                    "invalid_code_verifier",
                    Permanent,
                    "the PKCE code verifier does not match the code challenge",
                    "start again from GET .../oauth/url; a code can only be exchanged by the flow that requested it",
                )
            } else if desc.contains("authorization code") {
                d(
                    "invalid_authorization_code",
                    Permanent,
                    "the authorization code is invalid, expired or already used",
                    "start again from GET .../oauth/url and complete it within 15 minutes",
                )
            } else if desc.contains("expired") || desc.contains("revoked") || f.grant_type == Some("refresh_token") {
                d(
                    "refresh_token_expired",
                    Permanent,
                    "the refresh token expired or was revoked (by an admin, the app's refresh token policy, or rotation reuse detection)",
                    REAUTH_FIX,
                )
            } else {
                d(
                    "invalid_grant",
                    Permanent,
                    "the provider refused the grant (invalid_grant)",
                    "check the key's credentials and the app's OAuth policies, then give a new key",
                )
            }
        }
        // Older Salesforce orgs say `invalid_client_credentials` for a wrong secret.
        "invalid_client" | "invalid_client_credentials" => d(
            "wrong_client_secret",
            Permanent,
            "the client secret is wrong (or the app requires one and the key has none)",
            "copy the Consumer Secret again from \"Manage Consumer Details\" and give a new key",
        ),
        "invalid_client_id" => d(
            "wrong_client_id",
            Permanent,
            "the client id (consumer key) is not known to the provider",
            "copy the Consumer Key again from \"Manage Consumer Details\" (check the org: production or sandbox) and give a new key",
        ),
        "inactive_user" => d(
            "inactive_user",
            Permanent,
            "the user behind the token (or the Run As user) is inactive",
            "reactivate the user, or pick an active Run As user, then re-authenticate or give a new key",
        ),
        "inactive_org" => d(
            "inactive_org",
            Permanent,
            "the org is locked, inactive or in maintenance",
            "check the org's status; give a new key if it moved",
        ),
        "unauthorized_client" => d(
            "unauthorized_client",
            Permanent,
            "the app is not allowed to use this grant type",
            "enable the flow on the Connected App / External Client App (e.g. \"Enable Client Credentials Flow\")",
        ),
        "invalid_scope" => d(
            "invalid_scope",
            Permanent,
            "the requested scope is not allowed for this app",
            "change the key's `scope` to scopes the app allows (e.g. api)",
        ),
        "unsupported_grant_type" => d(
            "unsupported_grant_type",
            Permanent,
            "the provider does not support this grant type at this endpoint",
            "check `token_url` and `grant_type` in the key",
        ),
        "redirect_uri_mismatch" => d(
            "redirect_uri_mismatch",
            Permanent,
            "the redirect_uri is not registered as the app's callback URL",
            "add hookwarden's /oauth/callback URL to the app's callback URLs",
        ),
        "invalid_request" if status < 500 && status != 429 => d(
            "invalid_request",
            Permanent,
            "the provider rejected the request as malformed",
            "check the key's `auth_method`, `request_style` and endpoints",
        ),
        "INVALID_SESSION_ID" if f.grant_type.is_none() => d(
            "invalid_session",
            Transient,
            "the endpoint does not accept this access token (expired, revoked, or issued for another org)",
            "hookwarden refreshes once and retries; if it persists, check that the url's org is the org of the key",
        ),
        "NOT_FOUND" if f.grant_type.is_none() => d(
            "apex_class_not_found",
            Permanent,
            "no Apex REST class answers this URL: the class is not deployed, or the namespace prefix is missing from the URL",
            "deploy the OssCallbackResource Apex class (seed 001, Step 2); if SELECT NamespacePrefix FROM ApexClass WHERE Name = 'OssCallbackResource' gives e.g. ONSS, use /services/apexrest/ONSS/OSS/callback",
        ),
        // Apex REST's answer when the user behind the token may not run the class.
        "FORBIDDEN" if f.grant_type.is_none() => d(
            "apex_class_access",
            Permanent,
            "the user behind the token (the Run As user for client credentials) has no access to the Apex class",
            "add OssCallbackResource to Apex Class Access in that user's profile or in a permission set assigned to it, then replay the failed deliveries",
        ),
        "API_DISABLED_FOR_ORG" => d(
            "api_disabled",
            Permanent,
            "the REST API is not enabled for this org or for the user behind the token",
            "give the integration user's profile or a permission set \"API Enabled\" (an edition without API access cannot receive callbacks), then replay the failed deliveries",
        ),
        "REQUEST_LIMIT_EXCEEDED" => d(
            "api_limit_exceeded",
            Transient,
            "the org has used up its API requests (REQUEST_LIMIT_EXCEEDED, counted over a rolling 24 hours)",
            "nothing is lost: deliveries wait and retry; raise the org's API limit or find what else spends it (Setup → Company Information → API Requests, Last 24 Hours)",
        ),
        // Transient by their code, whatever status a proxy put around them.
        "temporarily_unavailable" | "server_error" | "rate_limit_exceeded" => Diagnosis {
            class: Transient,
            ..by_status(if status == 429 { 429 } else { status.max(500) }, code)
        },
        _ => by_status(status, code),
    }
}

/// No code we know: decide by the HTTP status alone.
fn by_status(status: u16, code: &str) -> Diagnosis {
    match status {
        429 => d(
            "rate_limited",
            Transient,
            "the provider is rate limiting (429)",
            "nothing to do: hookwarden backs off, honouring Retry-After",
        ),
        408 | 425 | 500..=599 => d(
            "provider_unavailable",
            Transient,
            format!("the provider answered {status}{}", if code.is_empty() { String::new() } else { format!(" ({code})") }),
            "nothing to do if it passes: hookwarden backs off and retries",
        ),
        401 => d(
            "unauthorized",
            Permanent,
            "the endpoint refused the credentials (401)",
            "check the key's client id and secret, and `auth_method`",
        ),
        403 => d(
            "forbidden",
            Permanent,
            "the endpoint refused the call (403)",
            "check that the endpoint allows this client (IP restrictions, permissions), then give the key again",
        ),
        404 | 405 => d(
            "wrong_endpoint",
            Permanent,
            format!("the endpoint answered {status}: the URL does not serve OAuth"),
            "check `host`, `token_url` and the other endpoint URLs in the key",
        ),
        300..=399 => d(
            "redirected",
            Permanent,
            format!("the endpoint answered with a redirect ({status}); redirects are not followed"),
            "use the final URL (https, the My Domain host) in the key",
        ),
        _ => d(
            "provider_error",
            Permanent,
            format!("the provider refused the call ({status}{})", if code.is_empty() { String::new() } else { format!(", {code}") }),
            "check the key against the provider's documentation and give a new key",
        ),
    }
}

/// Diagnose a refusal from a destination such as a Salesforce Apex REST endpoint, whose
/// errors are `[{"message","errorCode"}]`. `None` when the answer is a success.
pub fn diagnose_endpoint(status: u16, body: &str) -> Option<Diagnosis> {
    if (200..300).contains(&status) {
        return None;
    }
    let code = rest_error_code(body);
    let known = match code.as_deref() {
        Some(
            "NOT_FOUND"
            | "INVALID_SESSION_ID"
            | "REQUEST_LIMIT_EXCEEDED"
            | "FORBIDDEN"
            | "API_DISABLED_FOR_ORG",
        ) => code.as_deref(),
        _ => None,
    };
    let mut diagnosis = match (known, status) {
        (Some(c), _) => diagnose(&ProviderFailure {
            http_status: Some(status),
            error: Some(c),
            ..Default::default()
        }),
        (None, 401) => d(
            "invalid_session",
            Transient,
            "the endpoint does not accept this token (401)",
            "hookwarden refreshes once and retries; if it persists, check that the url's org is the org of the key",
        ),
        (None, 404) => d(
            "endpoint_not_found",
            Permanent,
            "the endpoint answered 404",
            "check the connector's url; for Salesforce, that the Apex class is deployed and the namespace prefix is in the URL",
        ),
        (None, 410) => d(
            "endpoint_gone",
            Permanent,
            "the endpoint answered 410 Gone",
            "the receiver asked to stop: register a new url",
        ),
        _ => by_status(status, code.as_deref().unwrap_or("")),
    };
    if status == 429 || status >= 500 {
        diagnosis.class = Transient;
    }
    Some(diagnosis)
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

/// The key was produced by `base64` without `-w 0` (seed 001): it was accepted, say why it
/// looked wrong. Attached by the API when the key parser reports line breaks.
pub fn line_wrapped_key() -> Diagnosis {
    d(
        "line_wrapped_key",
        Permanent,
        "the key was base64-encoded with line breaks (base64 wraps at 76 characters by default on Linux)",
        "encode with `base64 -w 0` (on macOS plain `base64`) or `hookwarden key encode`",
    )
}

/// A refresh hook (seed 004) that answered 2xx with a non-empty `errorResponse`.
pub fn hook_error_response(message: &str) -> Diagnosis {
    let shown: String = message.chars().take(200).collect();
    d(
        "hook_error_response",
        Permanent,
        format!("the refresh hook reported an error: {shown}"),
        "fix the refresh hook (its errorResponse says what failed), then give the key again to resume",
    )
}

/// A success answer that cannot be used (no `access_token`, not JSON, ...).
pub fn unusable_response(what: &str) -> Diagnosis {
    d(
        "unusable_response",
        Permanent,
        format!("the provider answered 2xx but {what}"),
        "check that `token_url` (or `refresh_hook`) points at an OAuth 2.0 token endpoint",
    )
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn seed_001_table() {
        let cc = "client_credentials";
        assert_eq!(
            grant(
                400,
                "invalid_grant",
                "request not supported on this domain",
                cc
            )
            .code,
            "wrong_host"
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
        assert_eq!(
            diagnose_endpoint(
                404,
                r#"[{"errorCode":"NOT_FOUND","message":"Could not find a match for URL"}]"#
            )
            .map(|d| d.code),
            Some("apex_class_not_found")
        );
        assert_eq!(
            diagnose_endpoint(
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
            )
            .map(|d| d.code),
            Some("invalid_session")
        );
        assert_eq!(diagnose_endpoint(200, ""), None);
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
    }
}
