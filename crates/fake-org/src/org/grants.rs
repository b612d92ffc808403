//! The token endpoint's grants: refresh_token (with rotation and reuse detection),
//! client_credentials (the Run As user) and authorization_code (with PKCE).

use super::authorize::CODE_LIFETIME_MS;
use super::errors::{
    BAD_CLIENT_SECRET, BAD_CODE, BAD_REDIRECT, BAD_VERIFIER, EXPIRED_CODE, EXPIRED_TOKEN,
    INACTIVE_USER, IP_RESTRICTED, MISSING_REFRESH_TOKEN, NOT_APPROVED, NO_RUN_AS, NO_VALID_SCOPES,
    UNKNOWN_CLIENT, UNSUPPORTED_GRANT, WRONG_DOMAIN,
};
use super::tokens::{RefreshStatus, Subject};
use super::{presented, OAuthError, Org};
use crate::config::ClientApp;
use crate::wire::{s256, Fresh, Params};

/// Scopes that only make sense for user-delegated flows (seed `001`).
const DELEGATED_ONLY_SCOPES: [&str; 2] = ["refresh_token", "offline_access"];

/// What a successful grant hands back to the handler, which adds `instance_url`, `id`, `signature`.
#[derive(Debug)]
pub(crate) struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub scope: String,
    pub org_id: String,
    pub user_id: String,
    pub issued_at_ms: i64,
}

pub(crate) fn grant_stats_key(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some("refresh_token") => "refresh_token",
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        _ => "unsupported",
    }
}

impl Org {
    pub(crate) fn grant(
        &mut self,
        params: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        let grant_type = params.get("grant_type");
        let result = match grant_type {
            Some("refresh_token") => self.grant_refresh(params, basic, fresh),
            Some("client_credentials") => self.grant_client_credentials(params, basic, fresh),
            Some("authorization_code") => self.grant_code(params, basic, fresh),
            _ => Err(UNSUPPORTED_GRANT),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.error,
        };
        self.count_grant(grant_stats_key(grant_type), outcome);
        result
    }

    fn grant_refresh(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        let (client_id, secret, client) = self.requesting_client(p, basic)?;
        match secret {
            Some(secret) if secret != client.client_secret => return Err(BAD_CLIENT_SECRET),
            None if client.require_secret_for_refresh => return Err(BAD_CLIENT_SECRET),
            _ => {}
        }
        let presented_token = p.get("refresh_token").ok_or(MISSING_REFRESH_TOKEN)?;
        let (family, status) = match self.refresh_tokens.get(presented_token) {
            Some(rt) => (rt.family, rt.status),
            None => return Err(EXPIRED_TOKEN),
        };
        let Some(fam) = self.families.get(family) else {
            return Err(EXPIRED_TOKEN);
        };
        if fam.client_id != client_id || fam.revoked {
            return Err(EXPIRED_TOKEN);
        }
        match status {
            RefreshStatus::Live => {}
            RefreshStatus::Revoked => return Err(EXPIRED_TOKEN),
            RefreshStatus::Retired => {
                // Someone holds a copy of a rotated-out token: assume theft and revoke the
                // whole family, as Salesforce's rotation policy does.
                self.stats.reuse_detections += 1;
                self.revoke_family(family);
                tracing::debug!(family, "refresh token reuse detected; family revoked");
                return Err(EXPIRED_TOKEN);
            }
        }
        self.login_policy(Subject::User)?;
        let scope = fam.scope.clone();
        let client_id = client_id.to_owned();
        let refresh_token = if self.config.rotate_refresh_tokens {
            if let Some(old) = self.refresh_tokens.get_mut(presented_token) {
                old.status = RefreshStatus::Retired;
            }
            Some(self.mint_refresh(family, &fresh.refresh))
        } else {
            None
        };
        Ok(self.granted(
            &client_id,
            Some(family),
            Subject::User,
            scope,
            refresh_token,
            fresh,
        ))
    }

    fn grant_client_credentials(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        if self.config.login_host {
            return Err(WRONG_DOMAIN);
        }
        let (client_id, secret, client) = self.requesting_client(p, basic)?;
        if secret != Some(client.client_secret.as_str()) {
            return Err(BAD_CLIENT_SECRET);
        }
        if self.config.run_as_user.is_none() {
            return Err(NO_RUN_AS);
        }
        let allowed = &self.config.allowed_scopes;
        let scope: Vec<&str> = match p.get("scope") {
            Some(requested) => {
                let requested: Vec<&str> = requested.split_whitespace().collect();
                let valid = requested
                    .iter()
                    .all(|s| !DELEGATED_ONLY_SCOPES.contains(s) && allowed.iter().any(|a| a == s));
                if !valid {
                    return Err(NO_VALID_SCOPES);
                }
                requested
            }
            None => allowed
                .iter()
                .map(String::as_str)
                .filter(|s| !DELEGATED_ONLY_SCOPES.contains(s))
                .collect(),
        };
        if scope.is_empty() {
            return Err(NO_VALID_SCOPES);
        }
        let scope = scope.join(" ");
        self.login_policy(Subject::RunAs)?;
        let client_id = client_id.to_owned();
        Ok(self.granted(&client_id, None, Subject::RunAs, scope, None, fresh))
    }

    fn grant_code(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        let (client_id, secret, client) = self.requesting_client(p, basic)?;
        let secret_ok = secret.map(|s| s == client.client_secret);
        if secret_ok == Some(false) {
            return Err(BAD_CLIENT_SECRET);
        }
        let presented_code = p.get("code").ok_or(BAD_CODE)?;
        // Codes are single use, whatever the outcome of the exchange.
        let code = self.codes.remove(presented_code).ok_or(BAD_CODE)?;
        if code.client_id != client_id {
            return Err(BAD_CODE);
        }
        if self.now_ms() - code.issued_at_ms > CODE_LIFETIME_MS {
            return Err(EXPIRED_CODE);
        }
        // A confidential client proves itself with its secret; a PKCE exchange may omit it.
        if secret_ok.is_none() && code.challenge.is_none() {
            return Err(BAD_CLIENT_SECRET);
        }
        if p.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
            return Err(BAD_REDIRECT);
        }
        if let Some(challenge) = &code.challenge {
            match p.get("code_verifier") {
                Some(v) if (43..=128).contains(&v.len()) && s256(v) == *challenge => {}
                _ => return Err(BAD_VERIFIER),
            }
        }
        self.login_policy(Subject::User)?;
        let client_id = client_id.to_owned();
        let family = self.new_family(&client_id, code.scope.clone());
        let refresh_token = self.mint_refresh(family, &fresh.refresh);
        Ok(self.granted(
            &client_id,
            Some(family),
            Subject::User,
            code.scope,
            Some(refresh_token),
            fresh,
        ))
    }

    /// The user's login policies, checked once the client and its credentials are: an
    /// inactive user, IP ranges or login hours, and (for a user who authorized, not the Run As
    /// user) an app that admits pre-authorized users only.
    fn login_policy(&self, subject: Subject) -> Result<(), OAuthError> {
        if self.config.user_inactive {
            return Err(INACTIVE_USER);
        }
        if self.config.ip_restricted {
            return Err(IP_RESTRICTED);
        }
        if self.config.app_not_approved && subject == Subject::User {
            return Err(NOT_APPROVED);
        }
        Ok(())
    }

    /// The client app a grant request names (by its parameters, else HTTP Basic) and the
    /// secret it came with; a client the org does not know is `UNKNOWN_CLIENT`.
    fn requesting_client<'p>(
        &self,
        p: &'p Params,
        basic: Option<&'p (String, String)>,
    ) -> Result<(&'p str, Option<&'p str>, &ClientApp), OAuthError> {
        let creds = presented(p, basic);
        let client_id = creds.id.ok_or(UNKNOWN_CLIENT)?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        Ok((client_id, creds.secret, client))
    }

    /// A new access token for `subject`, and what the handler answers with it.
    fn granted(
        &mut self,
        client_id: &str,
        family: Option<usize>,
        subject: Subject,
        scope: String,
        refresh_token: Option<String>,
        fresh: &Fresh,
    ) -> Granted {
        let (access_token, issued_at_ms) =
            self.mint_access(client_id, family, subject, &scope, &fresh.access);
        Granted {
            access_token,
            refresh_token,
            scope,
            org_id: self.config.org_id.clone(),
            user_id: self.user_id(subject).to_owned(),
            issued_at_ms,
        }
    }
}
