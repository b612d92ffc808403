//! Resume: after a person fixed the cause of a refusal at the provider, one grant with the
//! stored credentials of a `needs_reauth` connector, under the grant lease; when it works the
//! connector is `active` again and its held deliveries are due.

use hookwarden_core::diagnosis::FailureClass;
use hookwarden_core::ConnectorStatus;
use hookwarden_store::ConnectorRecord;

use super::{Inner, Need, Resumed};
use crate::error::TokenError;

impl Inner {
    pub(super) async fn resume(&self, c: &ConnectorRecord) -> Result<Resumed, TokenError> {
        // Refuse what cannot be resumed before waiting for anyone's lease.
        let current = self
            .current_connector(&c.account_id, &c.name, &c.id)
            .await?;
        resumable(&current)?;
        // An owner of its own, as revocation has: a grant in flight on this node (which would
        // refuse a needs_reauth connector anyway) finishes before this one starts.
        let owner = format!("{}:resume", self.options.node_id);
        // With `Need::Force` the wait ends with the lease, never with another node's token.
        let _lease = self.take_lease(&current, Need::Force, &owner).await?;
        let result = self.resume_with_lease(c, &owner).await;
        if let Err(e) = self.store.release_grant_lease(&c.id, &owner).await {
            tracing::warn!(connector = %c.id, error = %e, "could not release the grant lease");
        }
        result
    }

    async fn resume_with_lease(
        &self,
        c: &ConnectorRecord,
        owner: &str,
    ) -> Result<Resumed, TokenError> {
        // A revocation or a new key may have landed while we waited.
        let current = self
            .current_connector(&c.account_id, &c.name, &c.id)
            .await?;
        resumable(&current)?;
        let state = self
            .store
            .get_token_state(&c.id)
            .await
            .map_err(TokenError::store)?
            .unwrap_or_default();
        // The lease runs from now for the whole grant, as in `grant_with_lease`.
        self.renew_lease(&c.id, owner, "try the resume again in a moment")
            .await?;
        let cv = current.credentials_version;
        // The grant of any other caller: recorded in the history, the tokens saved and cached,
        // the cache's block lifted; a refusal is recorded with its diagnosis and blocks again,
        // and the connector stays needs_reauth.
        self.grant(current, &state, false).await?;
        let released = self
            .store
            .resume_connector(&c.id, cv, self.now_ms())
            .await
            .map_err(TokenError::store)?;
        let connector = self
            .current_connector(&c.account_id, &c.name, &c.id)
            .await?;
        let Some(released) = released else {
            // The grant worked, but the connector moved on meanwhile (revoked, or new
            // credentials that made it active by themselves).
            resumable(&connector)?;
            return Err(TokenError::new(
                "concurrent_change",
                FailureClass::Permanent,
                "the connector changed while it was being resumed",
                "read the connector again (GET); new credentials need no resume",
            )
            .in_conflict());
        };
        tracing::info!(connector = %c.id, released, "connector resumed with its stored credentials");
        Ok(Resumed {
            connector,
            released,
        })
    }
}

/// Only a `needs_reauth` connector is resumed; a `revoked` one needs its credentials again.
fn resumable(c: &ConnectorRecord) -> Result<(), TokenError> {
    resumable_status(c.status, c.diagnosis().map(|d| d.fix))
}

/// `resumable` on a status and, for one that is not resumed, the fix of its own diagnosis
/// (a `disabled` connector's may be a 410 or a url outside the org: each has its way back).
fn resumable_status(status: ConnectorStatus, fix: Option<String>) -> Result<(), TokenError> {
    match status {
        ConnectorStatus::NeedsReauth => Ok(()),
        ConnectorStatus::Revoked => Err(TokenError::credentials_required()),
        other => Err(TokenError::nothing_to_resume(other, fix)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_needs_reauth_is_resumed_and_revoked_asks_for_credentials() {
        assert!(resumable_status(ConnectorStatus::NeedsReauth, None).is_ok());
        let revoked = resumable_status(ConnectorStatus::Revoked, None).unwrap_err();
        assert_eq!(revoked.code(), "credentials_required");
        assert!(revoked.awaits_credentials());
        for status in [ConnectorStatus::Active, ConnectorStatus::Disabled] {
            let e = resumable_status(status, None).unwrap_err();
            assert_eq!(e.code(), "nothing_to_resume");
            assert!(e.is_conflict() && !e.awaits_credentials());
            assert!(e.to_string().contains(status.as_str()), "{e}");
        }
        // A disabled connector's own diagnosis says the way back.
        let own = "PATCH {\"url\"} to a url in the org";
        let e = resumable_status(ConnectorStatus::Disabled, Some(own.to_owned())).unwrap_err();
        assert_eq!(hookwarden_core::Problem::fix(&e), own);
    }
}
