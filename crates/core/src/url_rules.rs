//! Rules for the URLs a user gives us: the callback `url` and the endpoints in a key.
//! Names are not resolved here (no IO): a name that resolves into a refused range is caught
//! at delivery time with `AddressPolicy::check`.

use serde::Serialize;

use crate::connector::ConnectorKind;
use crate::netguard::AddressPolicy;

/// A destination URL that passed the registration rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallbackUrl(url::Url);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    // Variants are the helper's to choose; each maps to a `Problem` code such as
    // `url_not_absolute`, `url_not_https`, `url_has_userinfo`, `url_address_refused`.
    #[error("{field}: {message}")]
    Invalid {
        field: String,
        code: &'static str,
        message: String,
        fix: String,
    },
}

impl CallbackUrl {
    /// Check a callback URL: absolute, `https` (plain `http` only when `allow_insecure_http`),
    /// no user-info, an IP-literal host must pass `policy`. Returns warnings, e.g. for a
    /// `salesforceOauth2` URL whose path is not under `/services/apexrest/`.
    pub fn parse(
        raw: &str,
        kind: ConnectorKind,
        allow_insecure_http: bool,
        policy: &AddressPolicy,
    ) -> Result<(CallbackUrl, Vec<String>), UrlError> {
        crate::url_rules_impl::parse_callback(raw, kind, allow_insecure_http, policy)
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Only `url_rules_impl` builds one, after the checks.
    pub(crate) fn from_checked(url: url::Url) -> Self {
        Self(url)
    }
}

impl UrlError {
    pub(crate) fn new(field: &str, code: &'static str, message: String, fix: String) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            code,
            message,
            fix,
        }
    }
}

impl crate::problem::Problem for UrlError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } => code,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn fix(&self) -> String {
        match self {
            Self::Invalid { fix, .. } => fix.clone(),
        }
    }
}

/// The same rules for an endpoint URL (`token_url`, `revocation_url`, `introspection_url`,
/// `authorization_url`, `refresh_hook`); `field` names it in the error.
pub fn check_endpoint(
    raw: &str,
    field: &str,
    allow_insecure_http: bool,
    policy: &AddressPolicy,
) -> Result<url::Url, UrlError> {
    crate::url_rules_impl::check_endpoint(raw, field, allow_insecure_http, policy)
}
