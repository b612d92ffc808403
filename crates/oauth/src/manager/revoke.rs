//! Revocation (RFC 7009): the refresh token and the access token revoked at the provider under
//! the grant lease, then the token state wiped and the connector `revoked`.

use hookwarden_core::{ConnectorStatus, RequestStyle};
use hookwarden_store::{ConnectorRecord, HistoryKind};
use secrecy::{ExposeSecret, SecretString};

use super::call::{Attempt, Call};
use super::{live_tokens, Ctx, Inner, Need, RevokeOutcome};
use crate::error::TokenError;
use crate::grant;

impl Inner {
    pub(super) async fn revoke(&self, c: &ConnectorRecord) -> Result<RevokeOutcome, TokenError> {
        let current = self
            .current_connector(&c.account_id, &c.name, &c.id)
            .await?;
        let cv = current.credentials_version;
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
        if result.is_ok() {
            self.cache.remove(&c.id);
            self.cache.trouble_mut(&c.id, |t| {
                t.backoff = None;
                t.blocked = Some((cv, TokenError::connector_revoked()));
            });
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
        let has_tokens =
            same_creds && (state.access_token.is_some() || state.refresh_token.is_some());
        if current.status == ConnectorStatus::Revoked && !has_tokens {
            return Ok(RevokeOutcome {
                already_revoked: true,
                refresh_token_revoked: false,
                access_token_revoked: false,
                provider_called: false,
            });
        }
        let id = current.id.clone();
        let mut outcome = RevokeOutcome {
            already_revoked: false,
            refresh_token_revoked: false,
            access_token_revoked: false,
            provider_called: false,
        };
        match Ctx::new(current) {
            Ok(mut ctx) => {
                let (refresh, access) = live_tokens(&state, same_creds, &ctx.key);
                ctx.redactor.add(refresh.as_ref());
                ctx.redactor.add(access.as_ref());
                if let Some(url) = ctx.endpoints.revocation_url.clone() {
                    // The refresh token first: at Salesforce it takes its access tokens along.
                    if let Some(rt) = &refresh {
                        outcome.refresh_token_revoked =
                            self.revoke_one(&ctx, &url, rt, "refresh_token").await?;
                        outcome.provider_called = true;
                    }
                    if let Some(at) = &access {
                        outcome.access_token_revoked =
                            self.revoke_one(&ctx, &url, at, "access_token").await?;
                        outcome.provider_called = true;
                    }
                }
            }
            // A key that no longer parses cannot be sent anywhere; the local wipe still happens.
            Err(e) => {
                tracing::warn!(connector = %id, code = e.code(), "revoking locally only: the stored key is unusable")
            }
        }
        self.store
            .clear_token_state(&id)
            .await
            .map_err(TokenError::store)?;
        self.store
            .set_connector_status(&id, ConnectorStatus::Revoked, None)
            .await
            .map_err(TokenError::store)?;
        tracing::info!(connector = %id, provider_called = outcome.provider_called, "connector revoked");
        Ok(outcome)
    }

    /// One RFC 7009 call; a token the provider no longer knows (`invalid_token`) is revoked.
    async fn revoke_one(
        &self,
        ctx: &Ctx,
        url: &str,
        token: &SecretString,
        hint: &str,
    ) -> Result<bool, TokenError> {
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
        Ok(true)
    }
}
