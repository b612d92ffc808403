//! The OAuth error answers the org gives, each worded as Salesforce words it.

use axum::http::StatusCode;

/// An OAuth error answer: `{"error","error_description"}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    pub(super) const fn bad(error: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }
}

pub(super) const EXPIRED_TOKEN: OAuthError =
    OAuthError::bad("invalid_grant", "expired access/refresh token");
pub(super) const WRONG_DOMAIN: OAuthError =
    OAuthError::bad("invalid_grant", "request not supported on this domain");
pub(super) const NO_RUN_AS: OAuthError =
    OAuthError::bad("invalid_grant", "no client credentials user enabled");
pub(super) const NO_VALID_SCOPES: OAuthError =
    OAuthError::bad("invalid_grant", "no valid scopes defined");
pub(super) const BAD_CLIENT_SECRET: OAuthError =
    OAuthError::bad("invalid_client", "invalid client credentials");
pub(super) const UNKNOWN_CLIENT: OAuthError =
    OAuthError::bad("invalid_client_id", "client identifier invalid");
pub(super) const INACTIVE_USER: OAuthError = OAuthError::bad("inactive_user", "user is inactive");
pub(super) const IP_RESTRICTED: OAuthError =
    OAuthError::bad("invalid_grant", "ip restricted or invalid login hours");
pub(super) const NOT_APPROVED: OAuthError =
    OAuthError::bad("invalid_grant", "user hasn't approved this consumer");
pub(super) const UNSUPPORTED_GRANT: OAuthError =
    OAuthError::bad("unsupported_grant_type", "grant type not supported");
pub(super) const MISSING_REFRESH_TOKEN: OAuthError =
    OAuthError::bad("invalid_request", "refresh_token must be specified");
pub(super) const BAD_CODE: OAuthError =
    OAuthError::bad("invalid_grant", "invalid authorization code");
pub(super) const EXPIRED_CODE: OAuthError =
    OAuthError::bad("invalid_grant", "expired authorization code");
pub(crate) const BAD_REDIRECT: OAuthError = OAuthError::bad(
    "redirect_uri_mismatch",
    "redirect_uri must match configuration",
);
pub(super) const BAD_VERIFIER: OAuthError =
    OAuthError::bad("invalid_grant", "invalid code verifier");
