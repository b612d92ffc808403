//! The connector writes: registration (insert or replace), the write-back of a PATCH or of the
//! token engine, deletion and the signing secret's rotation. Every one ends with
//! `connectors_changed`, so the cached connectors are read again.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use hookwarden_core::{AccountId, ConnectorId, ConnectorStatus, Flow};

use super::{
    generate_signing_secret, key_aad, prev_signing_aad, signing_aad, to_json_text, ConnectorRecord,
    NewConnector, Seen, PREVIOUS_SIGNING_SECRET_TTL_MS,
};
use crate::notifications::released_and_recovered;
use crate::{now_ms, on_db, BeginWrite, Store, StoreError};

/// Bind what a registration writes as the query's next ten parameters, in the order both of
/// `upsert_once`'s statements name the columns: kind, url, events, origins, owner, settings,
/// flow, warnings, key_sealed (sealed for connector `$id`) and refresh_token_idle_days.
macro_rules! bind_registration {
    ($store:expr, $query:expr, $new:expr, $id:expr) => {{
        let new: &NewConnector = $new;
        $query
            .bind(new.credentials.storage_kind())
            .bind(&new.url)
            .bind(to_json_text(&new.events))
            .bind(to_json_text(&new.origins))
            .bind(&new.owner)
            .bind(to_json_text(&new.settings))
            .bind(new.credentials.flow().map(Flow::as_str))
            .bind(to_json_text(&new.warnings))
            .bind(
                $store
                    .cipher
                    .seal_secret(&key_aad($id), new.credentials.stored()),
            )
            .bind(new.refresh_token_idle_days.map(i64::from))
    }};
}

impl Store {
    /// Register or replace. A replaced connector keeps its id and signing secret (receivers
    /// keep verifying) and becomes `active` with its new credentials, except that the very key
    /// it already has, whose refresh token the provider has since rotated, changes nothing about
    /// the credentials. Returns the record and whether it was created.
    pub async fn upsert_connector(
        &self,
        new: NewConnector,
    ) -> Result<(ConnectorRecord, bool), StoreError> {
        // A concurrent registration of the same name can win the INSERT; the second try then
        // finds its row and replaces it.
        for _ in 0..2 {
            match self.upsert_once(&new).await {
                Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                    continue
                }
                other => return other,
            }
        }
        self.upsert_once(&new).await
    }

    async fn upsert_once(&self, new: &NewConnector) -> Result<(ConnectorRecord, bool), StoreError> {
        let now = now_ms();
        let created = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let existing = sqlx::query(
                "SELECT c.id, c.key_sealed, c.status, \
                 (SELECT t.refresh_sealed IS NOT NULL FROM token_state t \
                  WHERE t.connector_id = c.id AND t.credentials_version = c.credentials_version) AS rotated \
                 FROM connectors c WHERE c.account_id = $1 AND c.name = $2",
            )
            .bind(new.account_id.as_str())
            .bind(&new.name)
            .fetch_optional(&mut *tx)
            .await?;
            let created = existing.is_none();
            match existing {
                Some(row) => {
                    let id: String = row.try_get("id")?;
                    let sealed: Vec<u8> = row.try_get("key_sealed")?;
                    let rotated: Option<bool> = row.try_get("rotated")?;
                    let same_key = self
                        .cipher
                        .open_secret(&key_aad(&id), &sealed)
                        .is_ok_and(|old| old.expose_secret() == new.credentials.stored().expose_secret());
                    // Registering the same key again must not throw away the refresh token the
                    // provider rotated it to: the key's own one is already spent.
                    let keep_credentials = same_key && rotated == Some(true);
                    let update = sqlx::query(
                        "UPDATE connectors SET kind = $1, url = $2, events = $3, origins = $4, owner = $5, \
                         settings = $6, flow = $7, warnings = $8, key_sealed = $9, \
                         refresh_token_idle_days = $10, updated_at = $11, \
                         status = CASE WHEN $13 THEN status ELSE 'active' END, \
                         status_diagnosis = CASE WHEN $13 THEN status_diagnosis ELSE NULL END, \
                         credentials_version = credentials_version + CASE WHEN $13 THEN 0 ELSE 1 END, \
                         credentials_changed_at = CASE WHEN $13 THEN credentials_changed_at ELSE $11 END \
                         WHERE id = $12",
                    );
                    bind_registration!(self, update, new, &id)
                        .bind(now)
                        .bind(&id)
                        .bind(keep_credentials)
                        .execute(&mut *tx)
                        .await?;
                    let status: String = row.try_get("status")?;
                    if !keep_credentials && status != ConnectorStatus::Active.as_str() {
                        released_and_recovered!(self, tx, &id, now);
                    }
                }
                None => {
                    let id = ConnectorId::generate();
                    let signing = generate_signing_secret();
                    let insert = sqlx::query(
                        "INSERT INTO connectors (id, account_id, name, kind, url, events, origins, owner, \
                         settings, flow, status, warnings, key_sealed, refresh_token_idle_days, \
                         signing_sealed, credentials_version, credentials_changed_at, \
                         signing_secret_changed_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12, $13, $14, 1, \
                         $15, $15, $15, $15)",
                    )
                    .bind(id.as_str())
                    .bind(new.account_id.as_str())
                    .bind(&new.name);
                    bind_registration!(self, insert, new, id.as_str())
                        .bind(self.cipher.seal_secret(&signing_aad(id.as_str()), &signing))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            created
        });
        self.connectors_changed();
        let record = self
            .get_connector(&new.account_id, &new.name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("connector vanished after it was written".into()))?;
        Ok((record, created))
    }

    /// Write back a connector changed by PATCH or by the token engine. When
    /// `credentials_changed`, the key is re-sealed and `credentials_version` bumped. The write
    /// only happens if the status and credentials are still those `seen` when the record was
    /// read: otherwise a revoke, a `needs_reauth` or a new key that landed meanwhile would be
    /// silently undone (`StoreError::Conflict`).
    pub async fn save_connector(
        &self,
        record: &ConnectorRecord,
        credentials_changed: bool,
        seen: Seen,
    ) -> Result<ConnectorRecord, StoreError> {
        let now = now_ms();
        let bump = i64::from(credentials_changed);
        let recovers =
            seen.status != ConnectorStatus::Active && record.status == ConnectorStatus::Active;
        let affected = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let affected = sqlx::query(
                "UPDATE connectors SET url = $1, events = $2, origins = $3, owner = $4, settings = $5, \
                 flow = $6, status = $7, warnings = $8, key_sealed = $9, \
                 status_diagnosis = CASE WHEN $7 = 'active' THEN NULL ELSE status_diagnosis END, \
                 credentials_version = credentials_version + $10, updated_at = $11, \
                 credentials_changed_at = CASE WHEN $10 > 0 THEN $11 ELSE credentials_changed_at END, \
                 refresh_token_idle_days = $15 \
                 WHERE id = $12 AND status = $13 AND credentials_version = $14",
            )
            .bind(&record.url)
            .bind(to_json_text(&record.events))
            .bind(to_json_text(&record.origins))
            .bind(&record.owner)
            .bind(to_json_text(&record.settings))
            .bind(record.credentials.flow().map(Flow::as_str))
            .bind(record.status.as_str())
            .bind(to_json_text(&record.warnings))
            .bind(self.cipher.seal_secret(&key_aad(record.id.as_str()), record.credentials.stored()))
            .bind(bump)
            .bind(now)
            .bind(record.id.as_str())
            .bind(seen.status.as_str())
            .bind(seen.credentials_version)
            .bind(record.refresh_token_idle_days.map(i64::from))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected == 1 && recovers {
                released_and_recovered!(self, tx, record.id.as_str(), now);
            }
            tx.commit().await?;
            affected
        });
        self.connectors_changed();
        if affected == 0 {
            return Err(StoreError::Conflict(format!(
                "connector {} changed while this change was being made",
                record.name
            )));
        }
        self.get_connector(&record.account_id, &record.name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("connector vanished after it was written".into()))
    }

    /// Remove a connector; false when there was none.
    pub async fn delete_connector(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<bool, StoreError> {
        let affected = on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM connectors WHERE account_id = $1 AND name = $2")
                .bind(account.as_str())
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.connectors_changed();
        Ok(affected > 0)
    }

    /// A new signing secret; the current one keeps signing beside it for 24 h.
    pub async fn rotate_signing_secret(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<(ConnectorRecord, SecretString)>, StoreError> {
        let Some(current) = self.get_connector(account, name).await? else {
            return Ok(None);
        };
        let fresh = generate_signing_secret();
        let now = now_ms();
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE connectors SET signing_sealed = $1, prev_signing_sealed = $2, \
                 prev_signing_until = $3, updated_at = $4, signing_secret_changed_at = $4 WHERE id = $5",
            )
            .bind(self.cipher.seal_secret(&signing_aad(current.id.as_str()), &fresh))
            .bind(self.cipher.seal(
                &prev_signing_aad(current.id.as_str()),
                current.signing_secret.expose_secret().as_bytes(),
            ))
            .bind(now + PREVIOUS_SIGNING_SECRET_TTL_MS)
            .bind(now)
            .bind(current.id.as_str())
            .execute(pool)
            .await?;
        });
        self.connectors_changed();
        let record = self
            .get_connector(account, name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("connector vanished after rotation".into()))?;
        Ok(Some((record, fresh)))
    }
}
