//! One grant, with the lease held: the call to the token endpoint or the refresh hook, the
//! tokens saved (a rotated refresh token before the new access token goes anywhere), and on
//! failure the backoff or the block that keeps the next grants from repeating it.

use std::time::Duration;

use hookwarden_core::diagnosis::{self, FailureClass};
use hookwarden_core::DiagnosisView;
use hookwarden_core::{ConnectorId, Flow};
use hookwarden_store::{ConnectorRecord, GrantedTokens, HistoryKind, TokenState};
use secrecy::{ExposeSecret, SecretString};

use super::call::{Answer, Attempt};
use super::destination::check_grant;
use super::expiry::needs_introspection;
use super::{live_tokens, AccessToken, Ctx, Inner};
use crate::error::{Remedy, TokenError};
use crate::grant::{self, GrantKind, Tokens};
use crate::http::{Body, Outgoing};

impl Inner {
    /// Grant for `current` (the connector as re-read under the lease), whose stored token
    /// state is `state`, and save the result. A `keep_alive` grant is recorded as such.
    pub(super) async fn grant(
        &self,
        current: ConnectorRecord,
        state: &TokenState,
        keep_alive: bool,
    ) -> Result<AccessToken, TokenError> {
        let (id, cv) = (current.id.clone(), current.credentials_version);
        let mut ctx = Ctx::new(current)?;
        let (refresh_token, access_token) =
            live_tokens(state, state.credentials_version == cv, &ctx.key);
        ctx.redactor.add(refresh_token.as_ref());
        ctx.redactor.add(access_token.as_ref());

        // A refresh-token key whose refresh token was revoked mints nothing until it is
        // authorized again; never a client-credentials grant in its place.
        if ctx.key.flow() == Flow::RefreshToken
            && refresh_token.is_none()
            && ctx.key.refresh_hook.is_none()
        {
            return Err(TokenError::connector_revoked());
        }
        let outcome = match ctx.key.refresh_hook.clone() {
            Some(hook) => {
                let kind = if keep_alive {
                    HistoryKind::KeepAlive
                } else {
                    HistoryKind::Hook
                };
                self.hook_grant(
                    &mut ctx,
                    kind,
                    &hook,
                    access_token.as_ref(),
                    refresh_token.as_ref(),
                )
                .await
            }
            None => {
                let grant = match &refresh_token {
                    Some(rt) => GrantKind::RefreshToken(rt),
                    None => GrantKind::ClientCredentials,
                };
                let kind = match grant {
                    GrantKind::RefreshToken(_) if keep_alive => HistoryKind::KeepAlive,
                    GrantKind::RefreshToken(_) => HistoryKind::Refresh,
                    _ => HistoryKind::Grant,
                };
                self.token_grant(&mut ctx, kind, &grant).await
            }
        };

        match outcome {
            Ok(Granted {
                mut tokens,
                answer,
                attempt,
            }) => {
                // A "rotation" to the same value is no rotation.
                if tokens.refresh_token.as_ref().map(|s| s.expose_secret())
                    == refresh_token.as_ref().map(|s| s.expose_secret())
                {
                    tokens.refresh_token = None;
                }
                // Before anything else sees the token: is its org the url's?
                if let Err(d) = check_grant(&ctx, &tokens) {
                    return Err(self
                        .refuse_outside_org(&ctx, state, attempt, &answer, tokens, d)
                        .await);
                }
                self.record_ok(&ctx, attempt, &answer).await;
                // The rotated refresh token is persisted before the new access token goes
                // anywhere, introspection included: first with the session timeout as expiry,
                // corrected below when introspection knows better.
                let introspect = needs_introspection(&ctx, &tokens);
                let (mut expires_at, mut refresh_at) = self.expiry(&mut ctx, &tokens, false).await;
                let granted = GrantedTokens {
                    credentials_version: cv,
                    access_token: Some(tokens.access_token.clone()),
                    access_expires_at: expires_at,
                    refresh_at,
                    refresh_token: tokens.refresh_token.clone(),
                    instance_url: tokens.instance_url.clone(),
                    scope: tokens.scope.clone(),
                    issued_at: tokens.issued_at_ms,
                    granted_at: self.now_ms(),
                };
                // Persist (with the rotated refresh token) before anyone uses the access token.
                let version = self.save(&id, state.version, &granted).await?;
                if introspect {
                    let (e, r) = self.expiry(&mut ctx, &tokens, true).await;
                    if (e, r) != (expires_at, refresh_at) {
                        if let Err(err) = self.store.update_token_expiry(&id, version, e, r).await {
                            tracing::warn!(connector = %id, error = %err, "could not store the introspected expiry");
                        }
                        (expires_at, refresh_at) = (e, r);
                    }
                }
                let token = AccessToken {
                    secret: tokens.access_token,
                    version,
                    expires_at_ms: expires_at,
                    refreshed: true,
                    instance_url: tokens.instance_url,
                    granted_at_ms: Some(granted.granted_at),
                };
                self.cache.put(&id, cv, &ctx.record.url, &token, refresh_at);
                self.cache.trouble_mut(&id, |t| {
                    t.backoff = None;
                    t.blocked = None;
                });
                tracing::info!(connector = %id, version, rotated = granted.refresh_token.is_some(), "granted a new access token");
                Ok(token)
            }
            Err(e) => self.on_failure(&ctx, state.consecutive_failures, e).await,
        }
    }

    /// Compare-and-swap save; if the swap is lost (our lease expired and someone wrote), the
    /// tokens we hold are still the provider's latest, so they are written anyway rather than
    /// losing a rotated refresh token.
    pub(super) async fn save(
        &self,
        id: &ConnectorId,
        expected: i64,
        granted: &GrantedTokens,
    ) -> Result<i64, TokenError> {
        let mut last_err = None;
        for _ in 0..3 {
            match self
                .store
                .save_granted_tokens(id, Some(expected), granted, &self.options.node_id)
                .await
            {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {
                    // Tokens granted for credentials that were replaced meanwhile are not the
                    // connector's any more: keep what the new credentials wrote.
                    let current = self
                        .store
                        .get_token_state(id)
                        .await
                        .map_err(TokenError::store)?;
                    if current.is_some_and(|s| s.credentials_version != granted.credentials_version)
                    {
                        return Err(TokenError::new(
                            "credentials_changed",
                            FailureClass::Transient,
                            "the connector's credentials changed while a token was being granted",
                            "nothing to do: the next request uses the new credentials",
                        )
                        .with_retry_after(Duration::from_millis(100)));
                    }
                    tracing::warn!(connector = %id, "token state changed under our lease; saving the newest tokens anyway");
                    match self
                        .store
                        .save_granted_tokens(id, None, granted, &self.options.node_id)
                        .await
                    {
                        Ok(Some(v)) => return Ok(v),
                        Ok(None) => {}
                        Err(e) => last_err = Some(e),
                    }
                }
                Err(e) => last_err = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(match last_err {
            Some(e) => TokenError::store(e),
            None => TokenError::new(
                "token_store_unavailable",
                FailureClass::Transient,
                "the new token could not be saved",
                "check the database",
            ),
        })
    }

    async fn on_failure(
        &self,
        ctx: &Ctx,
        failures: i64,
        e: TokenError,
    ) -> Result<AccessToken, TokenError> {
        let id = &ctx.record.id;
        let cv = ctx.record.credentials_version;
        let summary = e.to_string();
        if e.is_transient() {
            let backoff = backoff(failures, e.retry_after(), self.options.max_backoff);
            let until = self.now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX / 2);
            if let Err(err) = self
                .store
                .record_grant_failure(id, &self.options.node_id, Some(until), &summary)
                .await
            {
                tracing::warn!(connector = %id, error = %err, "could not record the grant failure");
            }
            let e = e.with_retry_after(backoff);
            self.cache
                .trouble_mut(id, |t| t.backoff = Some((until, e.clone())));
            tracing::warn!(connector = %id, code = e.code(), retry_after_ms = backoff.as_millis() as u64, "grant failed; backing off");
            return Err(e);
        }
        if let Err(err) = self
            .store
            .record_grant_failure(id, &self.options.node_id, None, &summary)
            .await
        {
            tracing::warn!(connector = %id, error = %err, "could not record the grant failure");
        }
        // Only a provider's refusal says the credentials are bad; our own refusal of a URL is
        // configuration, which a restart may fix.
        if e.remedy() == Remedy::NewCredentials {
            let diagnosis = DiagnosisView::from(e.explained());
            if let Err(err) = self
                .store
                .mark_needs_reauth(id, cv, &diagnosis, self.now_ms())
                .await
            {
                tracing::warn!(connector = %id, error = %err, "could not mark the connector needs_reauth");
            }
        }
        self.cache.remove(id);
        self.cache
            .trouble_mut(id, |t| t.blocked = Some((cv, e.clone())));
        tracing::warn!(connector = %id, code = e.code(), "grant refused; the connector needs re-authentication");
        Err(e)
    }

    async fn token_grant(
        &self,
        ctx: &mut Ctx,
        kind: HistoryKind,
        grant: &GrantKind<'_>,
    ) -> Result<Granted, TokenError> {
        let attempt = Attempt {
            kind,
            grant_type: grant.grant_type(),
            what: "the token endpoint refused the grant",
        };
        let out = grant::form_request(
            &ctx.key,
            &ctx.endpoints.token_url,
            "token_url",
            grant::grant_params(&ctx.key, grant),
            ctx.key.request_style,
        );
        let answer = self.exchange(ctx, attempt, out, &[]).await?;
        let tokens = self.tokens_of(ctx, attempt, &answer).await?;
        Ok(Granted {
            tokens,
            answer,
            attempt,
        })
    }

    /// Seed 004's custom refresh: POST the current values, read the new ones.
    async fn hook_grant(
        &self,
        ctx: &mut Ctx,
        kind: HistoryKind,
        hook: &str,
        access_token: Option<&SecretString>,
        refresh_token: Option<&SecretString>,
    ) -> Result<Granted, TokenError> {
        let out = Outgoing {
            url: hook.to_owned(),
            field: "refresh_hook",
            body: Body::Json(grant::hook_input(
                &ctx.key,
                access_token,
                refresh_token,
                &ctx.endpoints.token_url,
            )),
            basic: None,
        };
        let attempt = Attempt {
            kind,
            grant_type: "refresh_hook",
            what: "the refresh hook failed",
        };
        let answer = self.exchange(ctx, attempt, out, &[]).await?;
        if let Some(err) = grant::hook_error(&answer.body) {
            let err = ctx.redactor.text(&err);
            let d = diagnosis::hook_error_response(&err);
            return Err(self.unusable(ctx, attempt, &answer, d).await);
        }
        let tokens = self.tokens_of(ctx, attempt, &answer).await?;
        Ok(Granted {
            tokens,
            answer,
            attempt,
        })
    }
}

/// A usable answer to a grant, not yet recorded: whether it went `ok` depends on its org.
struct Granted {
    tokens: Tokens,
    answer: Answer,
    attempt: Attempt<'static>,
}

/// How long to wait after a transient failure, the `failures` before it included: what the
/// provider asked (Retry-After), else 1 s doubling per failure up to `max`.
fn backoff(failures: i64, retry_after: Option<Duration>, max: Duration) -> Duration {
    let exp = u32::try_from(failures.clamp(0, 16)).unwrap_or(16);
    retry_after.unwrap_or_else(|| Duration::from_secs(1u64 << exp).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn the_backoff_doubles_per_failure_up_to_the_maximum() {
        let secs = |failures| backoff(failures, None, MAX).as_secs();
        assert_eq!([secs(0), secs(1), secs(2), secs(3)], [1, 2, 4, 8]);
        assert_eq!(secs(8), 256);
        assert_eq!(secs(9), 300);
        assert_eq!(secs(i64::MAX), 300, "no overflow however long it fails");
        assert_eq!(secs(-1), 1);
    }

    #[test]
    fn the_providers_retry_after_wins_even_over_the_maximum() {
        let asked = Some(Duration::from_secs(2));
        assert_eq!(backoff(5, asked, MAX), Duration::from_secs(2));
        let long = Some(Duration::from_secs(900));
        assert_eq!(backoff(0, long, MAX), Duration::from_secs(900));
    }
}
