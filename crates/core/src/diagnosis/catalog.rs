//! The catalog: every diagnosis code the product can show, declared once with its class and its
//! generic cause and fix. A case may word its cause or fix with details (the host, the status, the
//! redirect's target); its code, and so what it means, is stable. The README's table of diagnoses
//! is checked against this list (`crates/core/tests/readme_diagnoses.rs`).

use super::{Diagnosis, FailureClass};

/// Declares `Code` with one arm per entry in each of its lookups, so an entry cannot lack its
/// class, cause or fix.
macro_rules! catalog {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $class:ident,
        cause: $cause:literal,
        fix: $fix:literal;)*) => {
        /// A diagnosis code: stable, `snake_case`, one per known problem.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the order of the README's table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// Whether trying again later can help.
            pub fn class(self) -> FailureClass {
                match self { $(Code::$variant => FailureClass::$class,)* }
            }

            /// What is wrong, in general; a case may say more.
            pub fn cause(self) -> &'static str {
                match self { $(Code::$variant => $cause,)* }
            }

            /// What to do about it, in general; a case may say more.
            pub fn fix(self) -> &'static str {
                match self { $(Code::$variant => $fix,)* }
            }
        }
    };
}

catalog! {
    // The token endpoint's (or refresh hook's) refusals of a grant.
    WrongHost = "wrong_host", Permanent,
        cause: "the key's host does not accept this grant: wrong host value in the key",
        fix: "use test.salesforce.com for a sandbox, or your org's My Domain (yourcompany.my.salesforce.com) if the login policy enforces it; the client credentials flow always needs the My Domain";
    NoValidScopes = "no_valid_scopes", Permanent,
        cause: "refresh_token or offline_access is in the scope of a client credentials app, or the app has no valid scope",
        fix: "remove refresh_token and offline_access from the app's OAuth scopes (and from the key's `scope`); add the api scope";
    NoRunAsUser = "no_run_as_user", Permanent,
        cause: "no \"Run As\" user is set for the client credentials flow",
        fix: "Setup → External Client Apps (or the Connected App) → Policies → Client Credentials Flow: set Run As to an active integration user with API Enabled; then resume the connector (POST .../resume, or `hookwarden connectors resume NAME`)";
    IpRestricted = "ip_restricted", Permanent,
        cause: "the provider refused the login from this server's address or at this hour (the integration user's profile restricts login IP ranges or login hours)",
        fix: "on the Connected App / External Client App set IP Relaxation to \"Relax IP restrictions\", or add this server's outbound IP to the user's profile (Login IP Ranges) and check its Login Hours; then resume the connector (POST .../resume, or `hookwarden connectors resume NAME`)";
    AppNotApproved = "app_not_approved", Permanent,
        cause: "the user has not approved this app: it admits only pre-authorized users, and this user's profile or permission set is not assigned to it",
        fix: "assign the user's profile or a permission set to the app (Manage → Profiles / Manage Permission Sets), or have the user authorize it through GET .../oauth/url";
    RefreshTokenExpired = "refresh_token_expired", Permanent,
        cause: "the refresh token expired or was revoked (by an admin, the app's refresh token policy, or rotation reuse detection)",
        fix: "re-authenticate: open the URL from GET /api/callback/connectors/{name}/oauth/url, or give a new key with a fresh refresh token (PATCH {\"key\": ...})";
    InvalidCodeVerifier = "invalid_code_verifier", Permanent,
        cause: "the PKCE code verifier does not match the code challenge",
        fix: "start again from GET .../oauth/url; a code can only be exchanged by the flow that requested it";
    InvalidAuthorizationCode = "invalid_authorization_code", Permanent,
        cause: "the authorization code is invalid, expired or already used",
        fix: "start again from GET .../oauth/url and complete it within 15 minutes";
    InvalidGrant = "invalid_grant", Permanent,
        cause: "the provider refused the grant (invalid_grant)",
        fix: "check the key's credentials and the app's OAuth policies, then give a new key";
    WrongClientSecret = "wrong_client_secret", Permanent,
        cause: "the client secret is wrong (or the app requires one and the key has none)",
        fix: "copy the Consumer Secret again from \"Manage Consumer Details\" and give a new key";
    WrongClientId = "wrong_client_id", Permanent,
        cause: "the client id (consumer key) is not known to the provider",
        fix: "copy the Consumer Key again from \"Manage Consumer Details\" (check the org: production or sandbox) and give a new key";
    InactiveUser = "inactive_user", Permanent,
        cause: "the user behind the token (or the Run As user) is inactive",
        fix: "reactivate the user (or pick an active Run As user), then resume the connector (POST .../resume, or `hookwarden connectors resume NAME`); or authorize as another user";
    InactiveOrg = "inactive_org", Permanent,
        cause: "the org is locked, inactive or in maintenance",
        fix: "check the org's status; give a new key if it moved";
    UnauthorizedClient = "unauthorized_client", Permanent,
        cause: "the app is not allowed to use this grant type",
        fix: "enable the flow on the Connected App / External Client App (e.g. \"Enable Client Credentials Flow\")";
    InvalidScope = "invalid_scope", Permanent,
        cause: "the requested scope is not allowed for this app",
        fix: "change the key's `scope` to scopes the app allows (e.g. api)";
    UnsupportedGrantType = "unsupported_grant_type", Permanent,
        cause: "the provider does not support this grant type at this endpoint",
        fix: "check `token_url` and `grant_type` in the key";
    RedirectUriMismatch = "redirect_uri_mismatch", Permanent,
        cause: "the redirect_uri is not registered as the app's callback URL",
        fix: "add hookwarden's /oauth/callback URL to the app's callback URLs";
    InvalidRequest = "invalid_request", Permanent,
        cause: "the provider rejected the request as malformed",
        fix: "check the key's `auth_method`, `request_style` and endpoints";
    HookErrorResponse = "hook_error_response", Permanent,
        cause: "the refresh hook reported an error in its errorResponse",
        fix: "fix the refresh hook (its errorResponse says what failed), then resume the connector (POST .../resume, or `hookwarden connectors resume NAME`)";
    UnusableResponse = "unusable_response", Permanent,
        cause: "the provider answered 2xx with something that is not a usable token: not JSON (an HTML login page: a wrong URL), no access_token, or a token_type other than Bearer",
        fix: "check that `token_url` (or `refresh_hook`) points at an OAuth 2.0 token endpoint that issues Bearer tokens to this client";
    // A provider's answer known only by its HTTP status, or no answer.
    RateLimited = "rate_limited", Transient,
        cause: "the provider is rate limiting (429)",
        fix: "nothing to do: hookwarden backs off, honouring Retry-After";
    ProviderUnavailable = "provider_unavailable", Transient,
        cause: "the provider answered with a server error or asked to be called again later (408, 425, 5xx)",
        fix: "nothing to do if it passes: hookwarden backs off and retries";
    ProviderTimeout = "provider_timeout", Transient,
        cause: "the provider did not answer in time",
        fix: "nothing to do if it passes; check the endpoint's availability if it persists";
    ProviderUnreachable = "provider_unreachable", Transient,
        cause: "the provider could not be reached (DNS, connection refused or TLS failure)",
        fix: "check the host and the endpoint URLs in the key, and that the provider is up";
    Unauthorized = "unauthorized", Permanent,
        cause: "the endpoint refused the credentials (401)",
        fix: "check the key's client id and secret, and `auth_method`";
    Forbidden = "forbidden", Permanent,
        cause: "the endpoint refused the call (403)",
        fix: "check that the endpoint allows this client (IP restrictions, permissions), then give the key again";
    WrongEndpoint = "wrong_endpoint", Permanent,
        cause: "the endpoint answered 404 or 405: the URL does not serve OAuth",
        fix: "check `host`, `token_url` and the other endpoint URLs in the key";
    Redirected = "redirected", Permanent,
        cause: "the endpoint answered with a redirect; redirects are not followed",
        fix: "use the final URL (https, the My Domain host) in the key";
    ProviderError = "provider_error", Permanent,
        cause: "the provider refused the call with an answer no other diagnosis covers",
        fix: "check the key against the provider's documentation and give a new key";
    // Our own network rules, applied to every endpoint at each call.
    UrlNotHttps = "url_not_https", Permanent,
        cause: "the endpoint's URL is plain http, and this server allows only https",
        fix: "use the endpoint's https URL; for tests, set allow_insecure_http";
    UrlAddressRefused = "url_address_refused", Permanent,
        cause: "the endpoint's address is not allowed: it resolves to a loopback, private, link-local or otherwise refused address",
        fix: "use a public endpoint, or list its network in allow_private_networks (HOOKWARDEN_ALLOW_PRIVATE_NETWORKS)";
    UrlRefused = "url_refused", Permanent,
        cause: "an endpoint's URL breaks this server's URL rules",
        fix: "give the key again with absolute https endpoint URLs without user or password";
    // The destination's answers to a delivery or to the connector test's probe.
    ApexClassNotFound = "apex_class_not_found", Permanent,
        cause: "no Apex REST class answers this URL: the class is not deployed, or the namespace prefix is missing from the URL",
        fix: "deploy the Apex REST class that receives the callbacks (OssCallbackResource, urlMapping /OSS/callback; see the README's \"Salesforce setup\"); if SELECT NamespacePrefix FROM ApexClass WHERE Name = 'OssCallbackResource' gives e.g. ONSS, use /services/apexrest/ONSS/OSS/callback";
    ApexClassAccess = "apex_class_access", Permanent,
        cause: "the user behind the token (the Run As user for client credentials) has no access to the Apex class",
        fix: "add OssCallbackResource to Apex Class Access in that user's profile or in a permission set assigned to it, then replay the failed deliveries";
    ApiDisabled = "api_disabled", Permanent,
        cause: "the REST API is not enabled for this org or for the user behind the token",
        fix: "give the integration user's profile or a permission set \"API Enabled\" (an edition without API access cannot receive callbacks), then replay the failed deliveries";
    ApiLimitExceeded = "api_limit_exceeded", Transient,
        cause: "the org has used up its API requests (REQUEST_LIMIT_EXCEEDED, counted over a rolling 24 hours)",
        fix: "nothing is lost: deliveries wait and retry; raise the org's API limit or find what else spends it (Setup → Company Information → API Requests, Last 24 Hours)";
    InvalidSession = "invalid_session", Transient,
        cause: "the endpoint does not accept this access token (expired, revoked, or issued for another org)",
        fix: "hookwarden refreshes once and retries; if it persists, check that the url's org is the org of the key";
    FreshTokenRefused = "fresh_token_refused", Transient,
        cause: "the endpoint refused a freshly granted token (401)",
        fix: "check that the connected app's scopes include api, that the token's user (or the Run As user) may run the Apex class, and that the key's host is this org";
    CallbackKeyRefused = "callback_key_refused", Permanent,
        cause: "the listener refused the default callback's key (401)",
        fix: "set the key it expects with POST /api/callback";
    EndpointForbidden = "endpoint_forbidden", Permanent,
        cause: "the endpoint refused the token (403)",
        fix: "check the connected app's scopes (api) and that the Run As user or the token's user may run the Apex class";
    EndpointNotFound = "endpoint_not_found", Permanent,
        cause: "the endpoint answered 404: nothing is listening at this URL",
        fix: "check the connector's url; for Salesforce, that the Apex class is deployed and the namespace prefix is in the URL (see the README's \"Salesforce setup\")";
    EndpointGone = "endpoint_gone", Permanent,
        cause: "the endpoint answered 410 Gone: it asks not to be called again, so deliveries to it stop and wait (the connector is disabled)",
        fix: "register the endpoint's current url (PATCH {\"url\": ...}; for the default callback, POST /api/callback): the connector is enabled again and its held deliveries go out";
    PostNotAllowed = "post_not_allowed", Permanent,
        cause: "the endpoint does not accept POST (405)",
        fix: "the receiving Apex class needs an @HttpPost method";
    BodyNotAccepted = "body_not_accepted", Permanent,
        cause: "the receiver could not parse the callback body (JSON_PARSER_ERROR)",
        fix: "check that its Apex class accepts OneSpan's fields (name, packageId, sessionUser, documentId, message, createdDate)";
    CallbackTooLarge = "callback_too_large", Permanent,
        cause: "the endpoint refused the body as too large (413)",
        fix: "raise the receiver's request size limit, then replay the failed deliveries";
    EndpointRefused = "endpoint_refused", Permanent,
        cause: "the endpoint refused the callback with an answer no other diagnosis covers",
        fix: "the response excerpt says why; fix it at the receiver, then replay the failed deliveries";
    RedirectRefused = "redirect_refused", Permanent,
        cause: "the endpoint answered with a redirect; redirects are not followed",
        fix: "register the final URL (PATCH {\"url\": ...})";
    EndpointRateLimited = "endpoint_rate_limited", Transient,
        cause: "the endpoint is rate limiting (429)",
        fix: "nothing to do: the delivery is tried again after its Retry-After";
    EndpointUnavailable = "endpoint_unavailable", Transient,
        cause: "the endpoint answered with a server error or asked to be called again later (408, 425, 5xx)",
        fix: "nothing to do if it passes: deliveries retry on their schedule; check the receiver if it persists";
    EndpointTimeout = "endpoint_timeout", Transient,
        cause: "the endpoint did not answer in time",
        fix: "nothing to do if it passes: deliveries retry on their schedule; check the receiver if it persists";
    EndpointUnreachable = "endpoint_unreachable", Transient,
        cause: "the endpoint could not be reached (DNS, connection refused, TLS or a broken connection)",
        fix: "check the connector's url and that the receiver is up; deliveries retry on their schedule";
    TokenUnavailable = "token_unavailable", Transient,
        cause: "no access token could be had for a reason that may pass",
        fix: "nothing to do if it passes: the delivery waits and tries again without using up its retries; the connector's history has each grant's diagnosis";
    // The connector's key and status.
    LineWrappedKey = "line_wrapped_key", Permanent,
        cause: "the key was base64-encoded with line breaks (base64 wraps at 76 characters by default on Linux)",
        fix: "encode with `base64 -w 0` (on macOS plain `base64`) or `hookwarden key encode`";
    StoredKeyInvalid = "stored_key_invalid", Permanent,
        cause: "the connector's stored key no longer passes the key rules",
        fix: "give the key again (PATCH {\"key\": ...})";
    ConnectorNeedsReauth = "connector_needs_reauth", Permanent,
        cause: "the provider refused the connector's credentials; its deliveries are held",
        fix: "fix the cause at the provider (the connector's history has the diagnosis), then resume the connector (POST .../resume, or `hookwarden connectors resume NAME`); or give new credentials (PATCH {\"key\": ...}), or re-authenticate a refresh-token connector (GET .../oauth/url)";
    ConnectorRevoked = "connector_revoked", Permanent,
        cause: "the connector's tokens were revoked; no token is granted and its deliveries are held until it is re-authenticated",
        fix: "give the key again (PATCH {\"key\": ...}), or re-authenticate a refresh-token connector (GET .../oauth/url)";
    /// A Salesforce token is sent only to the org that issued it (the connector is disabled).
    UrlNotInOrg = "url_not_in_org", Permanent,
        cause: "the connector's url is not in the org whose credentials it holds (the scheme, host and port of the instance_url the org returns with its tokens), so no token is sent there; the connector is disabled and its deliveries are held",
        fix: "PATCH {\"url\": ...} to a url in the org (on its instance_url), which enables the connector again without the key; or give the credentials of the org the url belongs to (PATCH {\"url\": ..., \"key\": ...})";
    /// Read back from a row written before diagnoses had codes.
    Unclassified = "unclassified", Permanent,
        cause: "recorded before diagnoses had codes: the cause is the text recorded then",
        fix: "see the cause, which says what to do where it knew; what happens from now on is diagnosed with a code";
}

impl Code {
    pub fn parse(raw: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == raw)
    }

    /// The diagnosis with this code's generic cause and fix.
    pub fn diagnosis(self) -> Diagnosis {
        Diagnosis {
            code: self.as_str(),
            cause: self.cause().to_owned(),
            fix: self.fix().to_owned(),
            class: self.class(),
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_every_entry_says_something() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(Code::parse(s), Some(*code));
            assert!(!code.cause().is_empty() && !code.fix().is_empty(), "{s}");
            // A table cell cannot hold these; no product text points outside the product.
            for text in [code.cause(), code.fix()] {
                assert!(!text.contains('|') && !text.contains('\n'), "{s}: {text}");
                let lower = text.to_ascii_lowercase();
                assert!(
                    !lower.contains("seed") && !lower.contains("design.md"),
                    "{s}: {text}"
                );
            }
        }
        assert_eq!(Code::parse("no_such_code"), None);
    }
}
