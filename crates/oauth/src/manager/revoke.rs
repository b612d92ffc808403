//! Revocation, fail-safe: the tokens held here are wiped and the connector is `revoked` first,
//! in one transaction, whatever the provider will say; then each token is revoked at the
//! provider (RFC 7009) under the grant lease, and the answer says whether it confirmed.

use std::time::Duration;

use hookwarden_core::{ConnectorKind, Credentials, Key, RequestStyle};
use hookwarden_store::{ConnectorRecord, HistoryKind};
use secrecy::{ExposeSecret, SecretString};

use super::call::{Attempt, Call};
use super::{connector_gone, live_tokens, Ctx, Inner, Need, RevokeOutcome};
use crate::error::TokenError;
use crate::grant;

impl Inner {
    pub(super) async fn revoke(&self, c: &ConnectorRecord) -> Result<RevokeOutcome, TokenError> {
        let current = self
            .current_connector(&c.account_id, &c.name, &c.id)
            .await?;
        // Hold the grant lease so no grant, on another node or in flight on this one (hence
        // an owner of its own), races the wipe.
        let owner = format!("{}:revoke", self.options.node_id);
        let leased = matches!(
            self.take_lease(&current, Need::Force, &owner).await,
            Ok(Ok(()))
        );
        let result = self.revoke_with_lease(current).await;
        if leased {
            if let Err(e) = self.store.release_grant_lease(&c.id, &owner).await {
                tracing::warn!(connector = %c.id, error = %e, "could not release the grant lease");
            }
        }
        result
    }

    async fn revoke_with_lease(
        &self,
        current: ConnectorRecord,
    ) -> Result<RevokeOutcome, TokenError> {
        let state = self
            .store
            .get_token_state(&current.id)
            .await
            .map_err(TokenError::store)?
            .unwrap_or_default();
        let same_creds = state.credentials_version == current.credentials_version;
        let ctx = Ctx::new(current.clone());
        // The tokens to revoke at the provider, read before the wipe and kept in memory only.
        let (refresh, access) = match &ctx {
            Ok(ctx) => live_tokens(&state, same_creds, &ctx.key),
            Err(_) if same_creds => (state.refresh_token.clone(), state.access_token.clone()),
            Err(_) => (None, None),
        };
        let key_without_tokens = match &current.credentials {
            Credentials::OAuth { stored, .. } => {
                Key::without_refresh_token(stored.expose_secret()).map(SecretString::from)
            }
            _ => None,
        };

        // The local half first: nothing that can mint or carry a token stays here, even if the
        // provider never answers or this process stops halfway.
        let local = self
            .store
            .revoke_locally(&current.id, key_without_tokens.as_ref(), self.now_ms())
            .await
            .map_err(TokenError::store)?
            .ok_or_else(connector_gone)?;
        let id = current.id.clone();
        let cv = current.credentials_version;
        self.cache.remove(&id);
        self.cache.trouble_mut(&id, |t| {
            t.backoff = None;
            t.blocked = Some((cv, TokenError::connector_revoked()));
        });

        let mut outcome = RevokeOutcome {
            provider_confirmed: false,
            detail: String::new(),
            already_revoked: local.was_revoked && refresh.is_none() && access.is_none(),
            refresh_token_revoked: false,
            access_token_revoked: false,
            provider_called: false,
            held_deliveries: local.held,
        };
        let held_any = refresh.is_some() || access.is_some();
        match ctx {
            // A key that no longer parses cannot be sent anywhere; the local wipe happened.
            Err(e) => {
                tracing::warn!(connector = %id, code = e.code(), "revoked locally only: the stored key is unusable");
                outcome.provider_confirmed = !held_any;
                outcome.detail = if held_any {
                    format!(
                        "the stored key cannot be used ({e}), so nothing was sent to the provider; \
                         the tokens were wiped here and the connector is revoked, but they may stay \
                         valid at the provider until they expire: revoke them there"
                    )
                } else {
                    nothing_held(outcome.already_revoked)
                };
            }
            Ok(_) if !held_any => {
                outcome.provider_confirmed = true;
                outcome.detail = nothing_held(outcome.already_revoked);
            }
            Ok(mut ctx) => {
                ctx.redactor.add(refresh.as_ref());
                ctx.redactor.add(access.as_ref());
                match ctx.endpoints.revocation_url.clone() {
                    Some(url) => {
                        self.revoke_at_provider(&ctx, &url, refresh, access, &mut outcome)
                            .await
                    }
                    None => {
                        outcome.detail = no_revocation_endpoint(ctx.kind);
                        let call = Call {
                            http_status: None,
                            error: Some("no_revocation_endpoint".to_owned()),
                            error_description: Some(outcome.detail.clone()),
                            duration: Duration::ZERO,
                            excerpt: None,
                        };
                        self.record(&ctx, HistoryKind::Revoke, None, "not_sent", &call, None)
                            .await;
                    }
                }
            }
        }
        tracing::info!(connector = %id, provider_called = outcome.provider_called,
            provider_confirmed = outcome.provider_confirmed, held = outcome.held_deliveries,
            "connector revoked");
        Ok(outcome)
    }

    /// The refresh token first (at Salesforce it takes its access tokens along), then the
    /// access token; each answer, or the reason there was none, is in the history.
    async fn revoke_at_provider(
        &self,
        ctx: &Ctx,
        url: &str,
        refresh: Option<SecretString>,
        access: Option<SecretString>,
        outcome: &mut RevokeOutcome,
    ) {
        let mut confirmed = Vec::new();
        let mut refused = Vec::new();
        for (token, hint, name) in [
            (refresh, "refresh_token", "the refresh token"),
            (access, "access_token", "the access token"),
        ] {
            let Some(token) = token else { continue };
            outcome.provider_called = true;
            match self.revoke_one(ctx, url, &token, hint).await {
                Ok(()) => {
                    match hint {
                        "refresh_token" => outcome.refresh_token_revoked = true,
                        _ => outcome.access_token_revoked = true,
                    }
                    confirmed.push(name);
                }
                Err(e) => refused.push(format!("{name}: {e}")),
            }
        }
        outcome.provider_confirmed = refused.is_empty();
        outcome.detail = if refused.is_empty() {
            format!(
                "the provider confirmed the revocation of {}",
                confirmed.join(" and ")
            )
        } else {
            format!(
                "the provider did not confirm the revocation ({}); the tokens were wiped here and \
                 the connector is revoked, but they may stay valid at the provider until they \
                 expire: {}",
                refused.join("; "),
                revoke_there(ctx.kind)
            )
        };
    }

    /// One RFC 7009 call; a token the provider no longer knows (`invalid_token`) is revoked.
    /// A refusal or no answer is recorded (with its diagnosis) by `exchange` and returned.
    async fn revoke_one(
        &self,
        ctx: &Ctx,
        url: &str,
        token: &SecretString,
        hint: &str,
    ) -> Result<(), TokenError> {
        let out = grant::form_request(
            &ctx.key,
            url,
            "revocation_url",
            vec![("token", token.expose_secret()), ("token_type_hint", hint)],
            RequestStyle::Body,
        );
        let attempt = Attempt {
            kind: HistoryKind::Revoke,
            grant_type: hint,
            what: "the revocation endpoint refused",
        };
        let answer = self.exchange(ctx, attempt, out, &["invalid_token"]).await?;
        let already = !(200..300).contains(&answer.status);
        let call = Call {
            error: already.then(|| "invalid_token".to_owned()),
            ..Call::answered(ctx, &answer)
        };
        let outcome = if already {
            "already_revoked"
        } else {
            "revoked"
        };
        self.record_attempt(ctx, attempt, outcome, &call, None)
            .await;
        Ok(())
    }
}

fn nothing_held(already_revoked: bool) -> String {
    if already_revoked {
        "the connector was already revoked and no token is held here, so nothing was sent to the \
         provider (its history shows what the provider answered before)"
            .to_owned()
    } else {
        "no token was held here, so there was nothing to revoke at the provider".to_owned()
    }
}

/// Where a person revokes what the provider did not confirm.
fn revoke_there(kind: ConnectorKind) -> &'static str {
    match kind {
        ConnectorKind::Salesforce => {
            "revoke them in Salesforce (Setup → Connected Apps OAuth Usage → the connected app \
             → Revoke)"
        }
        ConnectorKind::Dynamics | ConnectorKind::Generic => {
            "revoke them at the provider (its console or API)"
        }
    }
}

fn no_revocation_endpoint(kind: ConnectorKind) -> String {
    match kind {
        ConnectorKind::Dynamics => "Microsoft Entra ID has no token revocation endpoint, so \
             nothing was sent to it; the tokens were wiped here and the connector is revoked, but \
             an access token stays valid until it expires (about an hour) and a refresh token \
             until its sessions are revoked at Microsoft (revoke the user's sign-in sessions, or \
             remove the app's consent or client secret in Entra ID)"
            .to_owned(),
        _ => "the key names no `revocation_url`, so nothing was sent to the provider; the tokens \
              were wiped here and the connector is revoked, but they stay valid at the provider \
              until they expire: revoke them there, and add `revocation_url` to the key"
            .to_owned(),
    }
}
