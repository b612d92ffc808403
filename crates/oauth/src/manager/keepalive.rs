//! The keep-alive: a refresh-token connector whose refresh token has not been used since
//! `idle_before` makes one refresh, so that an org's "expire refresh token if not used for N
//! days" policy does not expire an idle integration. It is a grant like any other (single
//! flight, lease, rotation, history, failure handling), recorded as `keep_alive`.
//!
//! Two nodes must not both refresh: the grant lease is taken first, and with it held the
//! connector and its token state are read again; a grant made meanwhile (a delivery's, another
//! node's keep-alive) makes it not due any more.

use hookwarden_core::{ConnectorStatus, Flow};
use hookwarden_store::{ConnectorRecord, TokenState};

use super::{Need, TokenManager};
use crate::error::TokenError;

/// What `TokenManager::keep_alive` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// One refresh was made (history kind `keep_alive`).
    Refreshed,
    /// Nothing to do: used since `idle_before`, or no longer an active refresh-token connector.
    NotDue,
    /// Another grant holds the connector's lease now: that grant uses the token.
    Busy,
}

/// When the connector's refresh token was last used: its last grant, or when it came with the
/// credentials, whichever is later.
pub fn refresh_token_last_used(record: &ConnectorRecord, state: Option<&TokenState>) -> i64 {
    state
        .and_then(|s| s.last_grant_at)
        .map_or(record.credentials_changed_at, |t| {
            t.max(record.credentials_changed_at)
        })
}

/// Whether the connector needs a keep-alive refresh: an active refresh-token connector whose
/// refresh token was last used before `idle_before`.
pub fn keep_alive_due(
    record: &ConnectorRecord,
    state: Option<&TokenState>,
    idle_before: i64,
) -> bool {
    record.status == ConnectorStatus::Active
        && record.credentials.flow() == Some(Flow::RefreshToken)
        && refresh_token_last_used(record, state) < idle_before
}

impl TokenManager {
    /// One refresh for `connector` if its refresh token was last used before `idle_before`
    /// (ms, by the engine's clock), decided again under the grant lease.
    pub async fn keep_alive(
        &self,
        connector: &ConnectorRecord,
        idle_before: i64,
    ) -> Result<KeepAlive, TokenError> {
        let inner = &self.inner;
        let owner = inner.options.node_id.as_str();
        if !inner
            .store
            .acquire_grant_lease(&connector.id, owner, inner.lease_ttl_ms())
            .await
            .map_err(TokenError::store)?
        {
            return Ok(KeepAlive::Busy);
        }
        let release = || async {
            if let Err(e) = inner.store.release_grant_lease(&connector.id, owner).await {
                tracing::warn!(connector = %connector.id, error = %e, "could not release the grant lease");
            }
        };
        // Under the lease: the connector and its token state as they are now.
        let current = match inner
            .current_connector(&connector.account_id, &connector.name, &connector.id)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                release().await;
                return Err(e);
            }
        };
        let state = match inner.store.get_token_state(&current.id).await {
            Ok(s) => s,
            Err(e) => {
                release().await;
                return Err(TokenError::store(e));
            }
        };
        if !keep_alive_due(&current, state.as_ref(), idle_before) {
            release().await;
            return Ok(KeepAlive::NotDue);
        }
        // The flight takes the lease again (it is this node's) and releases it when done; a
        // refusal before it starts (a backoff) leaves it to us.
        if let Err(e) = inner.fly(&current, Need::KeepAlive).await {
            release().await;
            return Err(e);
        }
        tracing::info!(connector = %current.id, "keep-alive: refreshed an idle refresh token");
        Ok(KeepAlive::Refreshed)
    }
}

#[cfg(test)]
mod tests {
    use hookwarden_core::ConnectorStatus;

    use super::*;
    use crate::manager::cache::tests::record_with_key;

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    fn refresh_token_connector() -> ConnectorRecord {
        let mut c = record_with_key(
            r#"{"host":"login.salesforce.com","client_id":"c","refresh_token":"r"}"#,
            ConnectorStatus::Active,
        );
        c.credentials_changed_at = NOW - 30 * DAY;
        c
    }

    fn granted_at(at: i64) -> TokenState {
        TokenState {
            last_grant_at: Some(at),
            ..TokenState::default()
        }
    }

    #[test]
    fn a_refresh_token_unused_since_the_limit_is_due() {
        let c = refresh_token_connector();
        let limit = NOW - 7 * DAY;
        assert!(keep_alive_due(&c, Some(&granted_at(NOW - 8 * DAY)), limit));
        assert!(
            keep_alive_due(&c, None, limit),
            "never granted, old credentials"
        );
        assert!(!keep_alive_due(&c, Some(&granted_at(NOW - 6 * DAY)), limit));
        // New credentials came with a fresh refresh token.
        let mut fresh = c.clone();
        fresh.credentials_changed_at = NOW - DAY;
        assert!(!keep_alive_due(
            &fresh,
            Some(&granted_at(NOW - 8 * DAY)),
            limit
        ));
        assert_eq!(
            refresh_token_last_used(&fresh, Some(&granted_at(NOW - 8 * DAY))),
            NOW - DAY
        );
    }

    #[test]
    fn only_active_refresh_token_connectors_are_kept_alive() {
        let limit = NOW - 7 * DAY;
        for status in [
            ConnectorStatus::NeedsReauth,
            ConnectorStatus::Revoked,
            ConnectorStatus::Disabled,
        ] {
            let mut c = refresh_token_connector();
            c.status = status;
            assert!(!keep_alive_due(&c, None, limit), "{status:?}");
        }
        let mut cc = record_with_key(
            r#"{"host":"acme.my.salesforce.com","client_id":"c","client_secret":"s"}"#,
            ConnectorStatus::Active,
        );
        cc.credentials_changed_at = NOW - 30 * DAY;
        assert!(!keep_alive_due(&cc, None, limit), "client credentials");
    }
}
