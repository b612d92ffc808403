//! A connector's status transitions that carry more than the status: each one changes the
//! connector, its token state and its waiting deliveries together, in one transaction, so no
//! node ever sees a connector `revoked` with a token left, or `needs_reauth` with deliveries
//! still due. Each also writes its notification (`connector.needs_reauth`, `…revoked`,
//! `…disabled`, `…failing`, `…recovered`) in that same transaction: the outbox.

use secrecy::SecretString;

use crate::connectors::key_aad;
use crate::deliveries::{HOLD_CONNECTOR_DELIVERIES, RELEASE_CONNECTOR_DELIVERIES};
use crate::notifications::{Draft, Outbox};
use crate::{now_ms, on_db, BeginWrite, Store, StoreError};
use hookwarden_core::{ConnectorId, ConnectorStatus, DiagnosisView, NotificationType};

/// Hold the connector's deliveries waiting to be sent, in the transaction `$tx`; how many.
macro_rules! hold {
    ($tx:ident, $id:expr, $now:expr) => {
        sqlx::query(HOLD_CONNECTOR_DELIVERIES)
            .bind($id)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
    };
}

/// What `revoke_locally` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedLocally {
    /// It was `revoked` before this call.
    pub was_revoked: bool,
    /// Waiting deliveries now held.
    pub held: u64,
}

impl Store {
    /// Revocation, the local half, which never depends on the provider: the token state is
    /// wiped (access token, rotated refresh token, expiry, the org's answer; the version is
    /// bumped so a grant in flight loses its compare-and-swap), the stored key is replaced by
    /// `key_without_tokens` when given (a key whose refresh token, given or obtained by a code
    /// exchange, was taken out), the connector becomes `revoked` and its waiting deliveries
    /// are held, in one transaction. `None` when the connector does not exist.
    pub async fn revoke_locally(
        &self,
        connector_id: &ConnectorId,
        key_without_tokens: Option<&SecretString>,
        now: i64,
    ) -> Result<Option<RevokedLocally>, StoreError> {
        // No token row means no token: the UPDATE below then matches nothing, as it should.
        let sealed =
            key_without_tokens.map(|k| self.cipher.seal_secret(&key_aad(connector_id.as_str()), k));
        let done = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let before: Option<String> =
                sqlx::query_scalar("SELECT status FROM connectors WHERE id = $1")
                    .bind(connector_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            match before {
                None => None,
                Some(before) => {
                    sqlx::query(
                        "UPDATE token_state SET version = version + 1, access_sealed = NULL, \
                         access_expires_at = NULL, refresh_at = NULL, refresh_sealed = NULL, \
                         instance_url = NULL, scope = NULL, issued_at = NULL, backoff_until = NULL, \
                         consecutive_failures = 0, updated_at = $1 WHERE connector_id = $2",
                    )
                    .bind(now)
                    .bind(connector_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE connectors SET status = 'revoked', status_diagnosis = NULL, \
                         key_sealed = COALESCE($1, key_sealed), updated_at = $2 WHERE id = $3",
                    )
                    .bind(sealed)
                    .bind(now)
                    .bind(connector_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                    let held = hold!(tx, connector_id.as_str(), now);
                    let was_revoked = before == ConnectorStatus::Revoked.as_str();
                    if !was_revoked {
                        let draft = Draft::new(NotificationType::Revoked).held(held);
                        tx.notify(&self.cipher, connector_id.as_str(), &draft, now).await?;
                    }
                    tx.commit().await?;
                    Some(RevokedLocally { was_revoked, held })
                }
            }
        });
        self.connectors_changed();
        Ok(done)
    }

    /// Set a connector's status without touching anything else, and only while its
    /// credentials are still `credentials_version` (when given): a `needs_reauth` decided on
    /// old credentials must not hit the new ones a user just gave. It then shows the generic
    /// diagnosis of that status.
    pub async fn set_connector_status(
        &self,
        connector_id: &ConnectorId,
        status: ConnectorStatus,
        credentials_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        let affected = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE connectors SET status = $1, status_diagnosis = NULL, updated_at = $2 \
                 WHERE id = $3 AND ($4 IS NULL OR credentials_version = $4)",
            )
            .bind(status.as_str())
            .bind(now_ms())
            .bind(connector_id.as_str())
            .bind(credentials_version)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.connectors_changed();
        Ok(affected == 1)
    }

    /// The provider refused the credentials of `credentials_version`: the connector becomes
    /// `needs_reauth` and its deliveries waiting to be sent are held, in one transaction. The
    /// one place a connector moves there, with the `diagnosis` of the refusal, which it shows
    /// until it is `active` again. Not when its credentials changed meanwhile (the refusal was
    /// of the old ones), nor over a revocation. True when it moved.
    pub async fn mark_needs_reauth(
        &self,
        connector_id: &ConnectorId,
        credentials_version: i64,
        diagnosis: &DiagnosisView,
        now: i64,
    ) -> Result<bool, StoreError> {
        let moved = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE connectors SET status = 'needs_reauth', status_diagnosis = $4, updated_at = $1 \
                 WHERE id = $2 AND credentials_version = $3 \
                   AND status NOT IN ('needs_reauth', 'revoked')",
            )
            .bind(now)
            .bind(connector_id.as_str())
            .bind(credentials_version)
            .bind(diagnosis.to_stored())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if moved {
                let held = hold!(tx, connector_id.as_str(), now);
                let draft = Draft::new(NotificationType::NeedsReauth).held(held);
                tx.notify(&self.cipher, connector_id.as_str(), &draft, now).await?;
            }
            tx.commit().await?;
            moved
        });
        self.connectors_changed();
        Ok(moved)
    }

    /// A grant for credentials `credentials_version` came from an org whose `instance_url` is
    /// not where the connector's `url` points: the connector becomes `disabled` with the
    /// `diagnosis` (`url_not_in_org`) and its deliveries waiting to be sent are held, in one
    /// transaction. The one place a connector moves there for that reason; a `PATCH {"url"}`
    /// makes it `active` again. Not when its credentials or its url changed meanwhile (the
    /// grant was checked against the old ones), nor over a revocation. True when it moved.
    pub async fn mark_url_not_in_org(
        &self,
        connector_id: &ConnectorId,
        credentials_version: i64,
        url: &str,
        diagnosis: &DiagnosisView,
        now: i64,
    ) -> Result<bool, StoreError> {
        let moved = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE connectors SET status = 'disabled', status_diagnosis = $4, updated_at = $1 \
                 WHERE id = $2 AND credentials_version = $3 AND url = $5 AND status <> 'revoked'",
            )
            .bind(now)
            .bind(connector_id.as_str())
            .bind(credentials_version)
            .bind(diagnosis.to_stored())
            .bind(url)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if moved {
                let held = hold!(tx, connector_id.as_str(), now);
                let draft = Draft::new(NotificationType::Disabled).held(held);
                tx.notify(&self.cipher, connector_id.as_str(), &draft, now).await?;
            }
            tx.commit().await?;
            moved
        });
        self.connectors_changed();
        Ok(moved)
    }

    /// One grant with the stored credentials of `credentials_version` worked again after a
    /// person fixed the cause at the provider (`…/resume`): the `needs_reauth` connector becomes
    /// `active` and its held deliveries are due now, in one transaction. Only from
    /// `needs_reauth` and only while the credentials are still those the grant used (a revocation
    /// or a new key that landed meanwhile stays). `Some(released deliveries)` when it moved.
    pub async fn resume_connector(
        &self,
        connector_id: &ConnectorId,
        credentials_version: i64,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        let released = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE connectors SET status = 'active', status_diagnosis = NULL, updated_at = $1 \
                 WHERE id = $2 AND credentials_version = $3 AND status = 'needs_reauth'",
            )
            .bind(now)
            .bind(connector_id.as_str())
            .bind(credentials_version)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            let released = if moved {
                let released = sqlx::query(RELEASE_CONNECTOR_DELIVERIES)
                    .bind(connector_id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let draft = Draft::new(NotificationType::Recovered).held(released);
                tx.notify(&self.cipher, connector_id.as_str(), &draft, now).await?;
                Some(released)
            } else {
                None
            };
            tx.commit().await?;
            released
        });
        self.connectors_changed();
        Ok(released)
    }

    /// The endpoint answered 410 Gone to a delivery made with the credentials of
    /// `credentials_version`: the `active` connector becomes `disabled` with the `diagnosis`,
    /// its waiting deliveries are held and `connector.disabled` is written, in one transaction.
    /// True when it moved.
    pub async fn mark_gone(
        &self,
        connector_id: &ConnectorId,
        credentials_version: i64,
        diagnosis: &DiagnosisView,
        now: i64,
    ) -> Result<bool, StoreError> {
        let moved = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE connectors SET status = 'disabled', status_diagnosis = $4, updated_at = $1 \
                 WHERE id = $2 AND credentials_version = $3 AND status = 'active'",
            )
            .bind(now)
            .bind(connector_id.as_str())
            .bind(credentials_version)
            .bind(diagnosis.to_stored())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            // Held whether or not this call moved it: another node's 410 may have.
            let held = hold!(tx, connector_id.as_str(), now);
            if moved {
                let draft = Draft::new(NotificationType::Disabled).held(held);
                tx.notify(&self.cipher, connector_id.as_str(), &draft, now).await?;
            }
            tx.commit().await?;
            moved
        });
        self.connectors_changed();
        Ok(moved)
    }

    /// A node's circuit breaker for the connector opened: its unclaimed due deliveries move to
    /// `until`, and the first node to say so since it last recovered (`failing_since`, set
    /// only while empty) writes `connector.failing`. True when this call wrote it.
    pub async fn mark_failing(
        &self,
        connector_id: &ConnectorId,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let first = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(crate::deliveries::DEFER_CONNECTOR_DELIVERIES)
                .bind(connector_id.as_str())
                .bind(until)
                .execute(&mut *tx)
                .await?;
            let first = sqlx::query(
                "UPDATE connectors SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL",
            )
            .bind(now)
            .bind(connector_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if first {
                let draft = Draft::new(NotificationType::Failing);
                tx.notify(&self.cipher, connector_id.as_str(), &draft, now).await?;
            }
            tx.commit().await?;
            first
        });
        if first {
            // Every node's next batch sees `failing_since`: the first through clears it.
            self.connectors_changed();
        }
        Ok(first)
    }

    /// A delivery to a connector whose breaker had opened went through: the first node to see
    /// it clears `failing_since` and writes `connector.recovered`. True when this call did.
    pub async fn clear_failing(
        &self,
        connector_id: &ConnectorId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let cleared = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let cleared = sqlx::query(
                "UPDATE connectors SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(connector_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if cleared {
                let draft = Draft::new(NotificationType::Recovered);
                tx.notify(&self.cipher, connector_id.as_str(), &draft, now).await?;
            }
            tx.commit().await?;
            cleared
        });
        if cleared {
            self.connectors_changed();
        }
        Ok(cleared)
    }
}
