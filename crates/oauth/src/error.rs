//! `TokenError`: why no token could be had, whether waiting helps, and what to do.

use std::time::Duration;

use hookwarden_core::diagnosis::{Code, Diagnosis, FailureClass};
use hookwarden_core::{ConnectorStatus, Problem};

/// What a failed grant asks of whoever wanted the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// It may pass (network, 5xx, 429, `temporarily_unavailable`, the store): wait and try
    /// again, not before `retry_after`.
    Wait,
    /// The provider refused the credentials, or the connector already waits for new ones:
    /// its deliveries are held until the credentials change.
    NewCredentials,
    /// Our own refusal (an endpoint address not allowed, an unusable stored key): the
    /// configuration's fault, not the credentials'; wait while someone fixes it.
    FixConfiguration,
    /// The connector's url is not in the org whose token it would receive (`url_not_in_org`):
    /// it is disabled and its deliveries are held until its url (or its credentials) change.
    FixUrl,
}

/// Boxed so `Result<_, TokenError>` stays small on the hot path.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.message)]
pub struct TokenError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    code: &'static str,
    message: String,
    fix: String,
    class: FailureClass,
    retry_after: Option<Duration>,
    diagnosis: Option<Diagnosis>,
    http_status: Option<u16>,
    /// The connector was already `revoked` or `needs_reauth`: no grant was tried.
    awaits_credentials: bool,
    /// The connector's status or flow does not allow the request: nothing was tried.
    conflict: bool,
}

impl TokenError {
    pub(crate) fn new(
        code: &'static str,
        class: FailureClass,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self(Box::new(Inner {
            code,
            message: message.into(),
            fix: fix.into(),
            class,
            retry_after: None,
            diagnosis: None,
            http_status: None,
            awaits_credentials: false,
            conflict: false,
        }))
    }

    /// A provider's failure, described by its diagnosis. `detail` is the provider's
    /// `error: error_description` (already redacted), if any.
    pub(crate) fn diagnosed(
        what: &str,
        diagnosis: Diagnosis,
        detail: Option<String>,
        http_status: Option<u16>,
        retry_after: Option<Duration>,
    ) -> Self {
        let message = match &detail {
            Some(d) => format!("{what}: {} ({d})", diagnosis.cause),
            None => format!("{what}: {}", diagnosis.cause),
        };
        Self(Box::new(Inner {
            code: diagnosis.code,
            message,
            fix: diagnosis.fix.clone(),
            class: diagnosis.class,
            retry_after,
            diagnosis: Some(diagnosis),
            http_status,
            awaits_credentials: false,
            conflict: false,
        }))
    }

    pub(crate) fn with_retry_after(mut self, d: Duration) -> Self {
        self.0.retry_after = Some(d);
        self
    }

    pub(crate) fn store(e: hookwarden_store::StoreError) -> Self {
        Self::new(
            "token_store_unavailable",
            FailureClass::Transient,
            format!("the token state could not be read or written: {e}"),
            "check the database; hookwarden retries",
        )
        .with_retry_after(Duration::from_secs(1))
    }

    pub(crate) fn connector_revoked() -> Self {
        let code = Code::ConnectorRevoked;
        Self::new(code.as_str(), code.class(), code.cause(), code.fix()).awaiting_credentials()
    }

    fn awaiting_credentials(mut self) -> Self {
        self.0.awaits_credentials = true;
        self
    }

    pub(crate) fn in_conflict(mut self) -> Self {
        self.0.conflict = true;
        self
    }

    /// `…/resume` of a `revoked` connector: its tokens are gone at the provider, so one more
    /// grant with the same credentials is not what brings it back.
    pub(crate) fn credentials_required() -> Self {
        Self::new(
            "credentials_required",
            FailureClass::Permanent,
            "the connector is revoked: it needs its credentials again, which resume does not give",
            "give the key again (PATCH {\"key\": ...}); a refresh-token connector can also re-authenticate (GET .../oauth/url)",
        )
        .awaiting_credentials()
    }

    /// `…/resume` of a connector that is not `needs_reauth` (nor `revoked`).
    pub(crate) fn nothing_to_resume(status: ConnectorStatus, own_fix: Option<String>) -> Self {
        let fix = own_fix.or_else(|| status.fix().map(str::to_owned));
        let (message, fix) = match fix {
            None => (
                format!(
                    "the connector is {}: there is nothing to resume",
                    status.as_str()
                ),
                "nothing to do: resume is for a connector in needs_reauth".to_owned(),
            ),
            Some(fix) => (
                format!(
                    "the connector is {}: resume is for a connector in needs_reauth",
                    status.as_str()
                ),
                fix,
            ),
        };
        Self::new("nothing_to_resume", FailureClass::Permanent, message, fix).in_conflict()
    }

    /// A grant's org is not the connector's url's (`url_not_in_org`): no token goes there.
    /// `what` says what happened to the grant (its token not used, or no grant made).
    pub(crate) fn outside_org(what: &str, diagnosis: Diagnosis) -> Self {
        Self::diagnosed(what, diagnosis, None, None, None)
    }

    /// Re-authentication in a browser asked of a client-credentials connector.
    pub(crate) fn wrong_flow() -> Self {
        Self::new(
            "wrong_flow",
            FailureClass::Permanent,
            "the connector uses the client-credentials flow: it gets its tokens with its client secret; re-authentication in a browser is for refresh-token connectors",
            "after fixing a refusal at the provider, POST .../resume (needs_reauth) or give the key again (PATCH {\"key\": ...}); to switch to the refresh-token flow, register a key with a refresh token",
        )
        .in_conflict()
    }

    pub(crate) fn needs_reauth(last: Option<&str>) -> Self {
        let message = match last {
            Some(last) => format!("the connector needs re-authentication: {last}"),
            None => {
                "the connector needs re-authentication: its credentials were refused".to_owned()
            }
        };
        let code = Code::ConnectorNeedsReauth;
        Self::new(code.as_str(), code.class(), message, code.fix()).awaiting_credentials()
    }

    pub fn code(&self) -> &'static str {
        self.0.code
    }
    pub fn class(&self) -> FailureClass {
        self.0.class
    }
    pub fn is_transient(&self) -> bool {
        self.0.class == FailureClass::Transient
    }
    pub fn is_permanent(&self) -> bool {
        self.0.class == FailureClass::Permanent
    }
    /// When to try again (transient failures); honours the provider's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        self.0.diagnosis.as_ref()
    }
    /// What a user is shown about this failure: the provider's diagnosis when it is one;
    /// else the catalog's entry for its code, in this error's words; else (a refusal of
    /// our own that may pass: a lease, a backoff, the store) `token_unavailable`.
    pub fn explained(&self) -> Diagnosis {
        if let Some(d) = &self.0.diagnosis {
            return d.clone();
        }
        let code = match self.0.code {
            "key_invalid" => Code::StoredKeyInvalid,
            other => Code::parse(other).unwrap_or(Code::TokenUnavailable),
        };
        code.diagnosis()
            .with_cause(self.0.message.clone())
            .with_fix(self.0.fix.clone())
    }
    /// The provider's HTTP status, when the failure is its answer.
    pub fn http_status(&self) -> Option<u16> {
        self.0.http_status
    }
    /// No grant was tried: the connector is `revoked` or `needs_reauth` and waits for new
    /// credentials.
    pub fn awaits_credentials(&self) -> bool {
        self.0.awaits_credentials
    }
    /// The connector's status or flow does not allow the request (a resume of a connector
    /// that is not `needs_reauth`, re-authentication of a client-credentials connector):
    /// nothing was tried.
    pub fn is_conflict(&self) -> bool {
        self.0.conflict
    }
    /// What to do about it. Only a provider's answer (or a connector already waiting for new
    /// credentials) says the credentials are bad; a refusal of our own is configuration.
    pub fn remedy(&self) -> Remedy {
        if self.is_transient() {
            Remedy::Wait
        } else if self.0.code == Code::UrlNotInOrg.as_str() {
            Remedy::FixUrl
        } else if self.0.http_status.is_some() || self.0.awaits_credentials {
            Remedy::NewCredentials
        } else {
            Remedy::FixConfiguration
        }
    }
}

impl Problem for TokenError {
    fn code(&self) -> &'static str {
        self.0.code
    }
    fn message(&self) -> String {
        self.0.message.clone()
    }
    fn fix(&self) -> String {
        self.0.fix.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_error_is_explained_with_a_code_of_the_catalog() {
        let refused = Code::NoRunAsUser.diagnosis();
        let e = TokenError::diagnosed("the grant", refused.clone(), None, Some(400), None);
        assert_eq!(e.explained(), refused);

        let e = TokenError::needs_reauth(Some("no Run As user"));
        let d = e.explained();
        assert_eq!(d.code, "connector_needs_reauth");
        assert!(d.cause.contains("no Run As user"), "{}", d.cause);
        assert_eq!(
            TokenError::connector_revoked().explained().code,
            "connector_revoked"
        );

        let e = TokenError::store(hookwarden_store::StoreError::Corrupt("x".into()));
        let d = e.explained();
        assert_eq!(
            (d.code, d.class),
            ("token_unavailable", FailureClass::Transient)
        );
        assert_eq!(d.fix, Problem::fix(&e));
        let e = TokenError::new("key_invalid", FailureClass::Permanent, "bad key", "again");
        assert_eq!(e.explained().code, "stored_key_invalid");
    }
}
