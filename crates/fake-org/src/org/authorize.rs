//! The authorize endpoint: checks a browser's authorization request and issues a code.

use super::errors::{BAD_REDIRECT, UNKNOWN_CLIENT};
use super::stats::bump;
use super::{OAuthError, Org};
use crate::wire::Params;

/// Salesforce authorization codes are valid for 15 minutes.
pub(super) const CODE_LIFETIME_MS: i64 = 15 * 60 * 1000;

#[derive(Debug)]
pub(super) struct AuthCode {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) challenge: Option<String>,
    pub(super) scope: String,
    pub(super) issued_at_ms: i64,
}

/// An authorize request that passed the checks that are answered with a page (not a redirect).
pub(crate) struct AuthorizeOutcome {
    pub redirect_uri: String,
    /// `Ok(code)` or `Err((error, description))` to put in the redirect.
    pub result: Result<String, (&'static str, &'static str)>,
}

impl Org {
    /// `Err` is answered with a 400 page (no trustworthy redirect); `Ok` always redirects.
    pub(crate) fn authorize(
        &mut self,
        p: &Params,
        code_random: &str,
    ) -> Result<AuthorizeOutcome, OAuthError> {
        let result = self.authorize_inner(p, code_random);
        let outcome = match &result {
            Ok(AuthorizeOutcome { result: Ok(_), .. }) => "ok",
            Ok(AuthorizeOutcome {
                result: Err((e, _)),
                ..
            }) => e,
            Err(e) => e.error,
        };
        bump(&mut self.stats.authorizations, outcome);
        result
    }

    fn authorize_inner(
        &mut self,
        p: &Params,
        code_random: &str,
    ) -> Result<AuthorizeOutcome, OAuthError> {
        let client_id = p.get("client_id").ok_or(UNKNOWN_CLIENT)?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        let redirect_uri = p.get("redirect_uri").ok_or(BAD_REDIRECT)?;
        let registered = client.redirect_uris.is_empty()
            || client.redirect_uris.iter().any(|u| u == redirect_uri);
        if !registered || !redirect_uri.contains(':') {
            return Err(BAD_REDIRECT);
        }
        let require_pkce = client.require_pkce;
        let redirect_uri = redirect_uri.to_owned();
        let refuse = |error, description| {
            Ok(AuthorizeOutcome {
                redirect_uri: redirect_uri.clone(),
                result: Err((error, description)),
            })
        };
        if p.get("response_type") != Some("code") {
            return refuse("unsupported_response_type", "response type not supported");
        }
        let challenge = p.get("code_challenge").map(str::to_owned);
        match (challenge.is_some(), p.get("code_challenge_method")) {
            (_, Some(m)) if m != "S256" => {
                return refuse("invalid_request", "code challenge method not supported")
            }
            (false, _) if require_pkce => {
                return refuse("invalid_request", "missing required code challenge")
            }
            _ => {}
        }
        let scope = match p.get("scope") {
            None => self.default_user_scope(),
            Some(requested) => {
                let allowed = &self.config.allowed_scopes;
                let requested: Vec<&str> = requested.split_whitespace().collect();
                if requested.is_empty() || !requested.iter().all(|s| allowed.iter().any(|a| a == s))
                {
                    return refuse("invalid_scope", "the requested scope is not allowed");
                }
                requested.join(" ")
            }
        };
        let now = self.now_ms();
        // Codes nobody exchanged would pile up in a long benchmark run; drop the stale ones.
        if self.codes.len() > 1024 {
            self.codes
                .retain(|_, c| now - c.issued_at_ms <= CODE_LIFETIME_MS);
        }
        let code = format!("aPrx{code_random}");
        self.codes.insert(
            code.clone(),
            AuthCode {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.clone(),
                challenge,
                scope,
                issued_at_ms: now,
            },
        );
        Ok(AuthorizeOutcome {
            redirect_uri,
            result: Ok(code),
        })
    }
}
