//! Single flight: at most one grant per connector at a time, in this process (callers share one
//! future) and across processes (the grant lease in the store; once it is held the state is
//! read again, since another node may have granted meanwhile).

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use hookwarden_core::diagnosis::FailureClass;
use hookwarden_core::ConnectorId;
use hookwarden_store::{ConnectorRecord, TokenState};

use super::destination::{moved_meanwhile, stays_in_org};
use super::{AccessToken, Inner, Need};
use crate::error::TokenError;

pub(super) type Flight = Shared<BoxFuture<'static, Result<AccessToken, TokenError>>>;

impl Inner {
    /// Join the connector's grant in flight, or start one. The grant runs in its own task so a
    /// cancelled caller cannot cut it between the provider's answer and the store write (a
    /// rotated refresh token would be lost).
    pub(super) async fn fly(
        self: &Arc<Self>,
        c: &ConnectorRecord,
        need: Need,
    ) -> Result<AccessToken, TokenError> {
        self.cache.precheck(c, need, self.now_ms())?;
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&c.id) {
                Some(f) => f.clone(),
                None => {
                    let inner = Arc::clone(self);
                    let record = c.clone();
                    let id = c.id.clone();
                    let task = tokio::spawn(async move {
                        let result = inner.grant_flow(record, need).await;
                        inner
                            .flights
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&id);
                        result
                    });
                    let f: Flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(TokenError::new(
                                "grant_task_failed",
                                FailureClass::Transient,
                                format!("the grant task ended abnormally: {e}"),
                                "retry; report a bug if it persists",
                            )
                            .with_retry_after(Duration::from_secs(1)))
                        })
                    }
                    .boxed()
                    .shared();
                    flights.insert(c.id.clone(), f.clone());
                    f
                }
            }
        };
        let token = flight.await?;
        // The flight may have granted for the connector as another caller, or the store, read
        // it: its token goes to this caller's url only if that is in the token's org too.
        if !stays_in_org(c, &token) {
            return Err(moved_meanwhile());
        }
        Ok(token)
    }

    pub(super) fn lease_ttl_ms(&self) -> i64 {
        // Grant and introspection calls, each bounded by grant_timeout, plus store writes.
        let ms = self.options.grant_timeout.as_millis().saturating_mul(3) + 5_000;
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// Wait for the grant lease. `Ok(Err(token))` when another node produced a usable token
    /// while we waited.
    pub(super) async fn take_lease(
        &self,
        c: &ConnectorRecord,
        need: Need,
        owner: &str,
    ) -> Result<Result<(), AccessToken>, TokenError> {
        let ttl = self.lease_ttl_ms();
        let give_up = self.now_ms() + ttl + 1_000;
        loop {
            if self
                .store
                .acquire_grant_lease(&c.id, owner, ttl)
                .await
                .map_err(TokenError::store)?
            {
                return Ok(Ok(()));
            }
            if let Some(state) = self
                .store
                .get_token_state(&c.id)
                .await
                .map_err(TokenError::store)?
            {
                let usable = usable(&state, c.credentials_version, need, self.now_ms())
                    .filter(|t| stays_in_org(c, t));
                if let Some(t) = usable {
                    self.cache
                        .put(&c.id, c.credentials_version, &c.url, &t, state.refresh_at);
                    return Ok(Err(t));
                }
            }
            if self.now_ms() > give_up {
                return Err(TokenError::new(
                    "grant_lease_busy",
                    FailureClass::Transient,
                    "another node holds this connector's grant lease and has not finished",
                    "nothing to do: the lease expires and the grant is retried",
                )
                .with_retry_after(Duration::from_secs(1)));
            }
            let jitter = rand::random::<u64>() % 20;
            tokio::time::sleep(self.options.lease_poll + Duration::from_millis(jitter)).await;
        }
    }

    async fn grant_flow(&self, c: ConnectorRecord, need: Need) -> Result<AccessToken, TokenError> {
        match self.take_lease(&c, need, &self.options.node_id).await? {
            Ok(()) => {}
            Err(token) => return Ok(token),
        }
        let result = self.grant_with_lease(&c, need).await;
        // Saves and failure records release the lease themselves; this covers the other paths.
        if let Err(e) = self
            .store
            .release_grant_lease(&c.id, &self.options.node_id)
            .await
        {
            tracing::warn!(connector = %c.id, error = %e, "could not release the grant lease");
        }
        result
    }

    /// With the lease held: the token another node saved meanwhile, the stored backoff, or
    /// one grant (`exchange`) under a freshly renewed lease.
    async fn grant_with_lease(
        &self,
        c: &ConnectorRecord,
        need: Need,
    ) -> Result<AccessToken, TokenError> {
        // Another node may have refreshed, or the credentials changed, while we waited.
        let current = self
            .current_connector(&c.account_id, &c.name, &c.id)
            .await?;
        self.cache.precheck(&current, need, self.now_ms())?;
        let state = self
            .store
            .get_token_state(&c.id)
            .await
            .map_err(TokenError::store)?
            .unwrap_or_default();
        let cv = current.credentials_version;
        // A saved token whose org is not the url's is no token: the grant below checks again.
        if let Some(t) =
            usable(&state, cv, need, self.now_ms()).filter(|t| stays_in_org(&current, t))
        {
            self.cache
                .put(&c.id, cv, &current.url, &t, state.refresh_at);
            return Ok(t);
        }
        if need != Need::Force && state.backoff_until.is_some_and(|t| t > self.now_ms()) {
            let wait = state.backoff_until.unwrap_or(0) - self.now_ms();
            return Err(TokenError::new(
                "grant_backing_off",
                FailureClass::Transient,
                format!(
                    "the last grant failed ({}); waiting before the next",
                    state.last_error.as_deref().unwrap_or("transient failure")
                ),
                "nothing to do if it passes; see the connector's history",
            )
            .with_retry_after(Duration::from_millis(u64::try_from(wait).unwrap_or(0))));
        }

        // The lease runs from now for the whole grant: renewed just before the refresh token
        // leaves, so the reads above cannot have eaten into it. If it was lost meanwhile (it
        // expired and another node took it), that node grants; sending the same refresh token
        // from here would spend it twice.
        self.renew_lease(
            &c.id,
            &self.options.node_id,
            "nothing to do: its token is used once it is saved",
        )
        .await?;
        self.grant(current, &state, need == Need::KeepAlive).await
    }

    /// Take the grant lease again for the whole grant that follows; `grant_lease_busy` (try
    /// again shortly, `fix` says how) when another node holds it now.
    pub(super) async fn renew_lease(
        &self,
        id: &ConnectorId,
        owner: &str,
        fix: &str,
    ) -> Result<(), TokenError> {
        let renewed = self
            .store
            .acquire_grant_lease(id, owner, self.lease_ttl_ms())
            .await
            .map_err(TokenError::store)?;
        if renewed {
            return Ok(());
        }
        Err(TokenError::new(
            "grant_lease_busy",
            FailureClass::Transient,
            "another node took over this connector's grant",
            fix,
        )
        .with_retry_after(Duration::from_millis(200)))
    }
}

/// A token from the stored state, if it is usable for `need` under credentials `cv` at `now`.
fn usable(state: &TokenState, cv: i64, need: Need, now: i64) -> Option<AccessToken> {
    let Need::Fresh { refused } = need else {
        return None;
    };
    if state.credentials_version != cv
        || refused.is_some_and(|r| r.rules_out(state.version, state.last_grant_at))
    {
        return None;
    }
    if state.refresh_at.is_some_and(|r| r <= now) {
        return None;
    }
    Some(AccessToken {
        secret: state.access_token.clone()?,
        version: state.version,
        expires_at_ms: state.access_expires_at,
        refreshed: false,
        instance_url: state.instance_url.clone(),
        granted_at_ms: state.last_grant_at,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

    use super::super::refusal::Refusal;
    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    const FRESH: Need = Need::Fresh { refused: None };

    fn saved() -> TokenState {
        TokenState {
            credentials_version: 3,
            version: 8,
            access_token: Some(SecretString::from("at-8".to_owned())),
            access_expires_at: Some(NOW + 1_000),
            refresh_at: Some(NOW + 900),
            instance_url: Some("https://a.my.salesforce.com".into()),
            ..TokenState::default()
        }
    }

    #[test]
    fn a_saved_fresh_token_of_the_same_credentials_is_used() {
        let t = usable(&saved(), 3, FRESH, NOW).unwrap();
        assert_eq!(t.secret.expose_secret(), "at-8");
        assert_eq!((t.version, t.expires_at_ms), (8, Some(NOW + 1_000)));
        assert!(!t.refreshed, "nobody granted for this caller");
        assert!(t.instance_url.is_some());
    }

    #[test]
    fn a_saved_token_is_not_used_from_its_refresh_time_on() {
        assert!(usable(&saved(), 3, FRESH, NOW + 899).is_some());
        assert!(usable(&saved(), 3, FRESH, NOW + 900).is_none());
        let none = TokenState {
            refresh_at: None,
            ..saved()
        };
        assert!(usable(&none, 3, FRESH, i64::MAX).is_some(), "session: none");
    }

    #[test]
    fn a_saved_token_of_older_credentials_or_a_refused_version_is_not_used() {
        assert!(usable(&saved(), 4, FRESH, NOW).is_none());
        // Version 7 lived 10 s, refused at NOW; the saved version 8 was granted 1 s before.
        let saved = TokenState {
            last_grant_at: Some(NOW - 1_000),
            ..saved()
        };
        let refused = |version| Need::Fresh {
            refused: Some(Refusal {
                version,
                granted_at_ms: Some(NOW - 10_000),
                at_ms: NOW,
            }),
        };
        assert!(usable(&saved, 3, refused(8), NOW).is_none());
        assert!(usable(&saved, 3, refused(9), NOW).is_none());
        assert!(usable(&saved, 3, refused(7), NOW).is_some());
        // Granted 6 s before the refusal of a token that lived 10: as near its end.
        let older = TokenState {
            last_grant_at: Some(NOW - 6_000),
            ..saved
        };
        assert!(usable(&older, 3, refused(7), NOW).is_none());
    }

    #[test]
    fn a_forced_grant_or_an_empty_state_uses_nothing_saved() {
        assert!(usable(&saved(), 3, Need::Force, NOW).is_none());
        let wiped = TokenState {
            access_token: None,
            ..saved()
        };
        assert!(usable(&wiped, 3, FRESH, NOW).is_none());
    }
}
