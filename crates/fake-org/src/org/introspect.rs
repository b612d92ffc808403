//! The introspect endpoint: what a client may learn about a token it holds.

use axum::http::StatusCode;
use serde::Serialize;

use super::errors::{BAD_CLIENT_SECRET, UNKNOWN_CLIENT};
use super::stats::bump;
use super::tokens::{RefreshStatus, Subject};
use super::{presented, OAuthError, Org};
use crate::wire::Params;

/// Introspection result (`None` fields are left out of the JSON).
#[derive(Debug, Serialize)]
pub(crate) struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            scope: None,
            client_id: None,
            username: None,
            sub: None,
            token_type: None,
            exp: None,
            iat: None,
            nbf: None,
        }
    }
}

impl Org {
    fn username(&self, subject: Subject) -> &str {
        match subject {
            Subject::User => &self.config.username,
            Subject::RunAs => self.config.run_as_user.as_deref().unwrap_or_default(),
        }
    }

    /// `Err` when the caller failed client authentication.
    pub(crate) fn introspect(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        base_url: &str,
    ) -> Result<Introspection, OAuthError> {
        let result = self.introspect_inner(p, basic, base_url);
        let outcome = match &result {
            Ok(i) if i.active => "active",
            Ok(_) => "inactive",
            Err(e) => e.error,
        };
        bump(&mut self.stats.introspections, outcome);
        result
    }

    fn introspect_inner(
        &self,
        p: &Params,
        basic: Option<&(String, String)>,
        base_url: &str,
    ) -> Result<Introspection, OAuthError> {
        let unauthorized = OAuthError {
            status: StatusCode::UNAUTHORIZED,
            ..BAD_CLIENT_SECRET
        };
        let creds = presented(p, basic);
        let client_id = creds.id.ok_or(unauthorized.clone())?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        if creds.secret != Some(client.client_secret.as_str()) {
            return Err(unauthorized);
        }
        let token = p.get("token").ok_or(OAuthError::bad(
            "invalid_request",
            "token must be specified",
        ))?;
        let now = self.now_ms();
        let id_url = |subject| {
            format!(
                "{base_url}/id/{}/{}",
                self.config.org_id,
                self.user_id(subject)
            )
        };
        if let Some(at) = self.access_tokens.get(token) {
            if at.client_id != client_id || !self.access_live(token, now) {
                return Ok(Introspection::inactive());
            }
            let lifetime = i64::try_from(self.config.session_timeout_s).unwrap_or(i64::MAX);
            let iat = at.issued_at_ms / 1000;
            return Ok(Introspection {
                active: true,
                scope: Some(at.scope.clone()),
                client_id: Some(at.client_id.clone()),
                username: Some(self.username(at.subject).to_owned()),
                sub: Some(id_url(at.subject)),
                token_type: Some("access_token"),
                exp: Some(iat.saturating_add(lifetime)),
                iat: Some(iat),
                nbf: Some(iat),
            });
        }
        if let Some(rt) = self.refresh_tokens.get(token) {
            let Some(fam) = self.families.get(rt.family) else {
                return Ok(Introspection::inactive());
            };
            if fam.revoked
                || rt.status != RefreshStatus::Live
                || fam.client_id != client_id
                || self.config.user_inactive
            {
                return Ok(Introspection::inactive());
            }
            let iat = rt.issued_at_ms / 1000;
            // Refresh tokens are valid until revoked under the default policy: no `exp`.
            return Ok(Introspection {
                active: true,
                scope: Some(fam.scope.clone()),
                client_id: Some(fam.client_id.clone()),
                username: Some(self.config.username.clone()),
                sub: Some(id_url(Subject::User)),
                token_type: Some("refresh_token"),
                exp: None,
                iat: Some(iat),
                nbf: Some(iat),
            });
        }
        Ok(Introspection::inactive())
    }
}
