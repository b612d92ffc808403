//! Connectors: where deliveries go and with which credentials. The key (credentials) and the
//! signing secrets are sealed; everything else is plain so it can be listed and filtered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::Row;

use hookwarden_core::{AccountId, ConnectorId, ConnectorStatus, Credentials, DiagnosisView, Flow};

use crate::notifications::released_and_recovered;
use crate::{now_ms, on_db, BeginWrite, Store, StoreError};

/// The account's default callback (Basic key) is stored as a connector under a name that the
/// API's name rule (`[A-Za-z0-9_-]`) can never produce.
pub const DEFAULT_CALLBACK_NAME: &str = "@default";

/// How long a rotated-out signing secret keeps signing beside the new one.
pub const PREVIOUS_SIGNING_SECRET_TTL_MS: i64 = 24 * 3600 * 1000;

/// What registration writes. `credentials` is the parsed key (or the default callback's Basic
/// key); they fill the `kind`, `flow` and sealed `key_sealed` columns.
#[derive(Debug, Clone)]
pub struct NewConnector {
    pub account_id: AccountId,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub origins: Vec<String>,
    pub owner: Option<String>,
    pub settings: serde_json::Value,
    pub warnings: Vec<String>,
    pub credentials: Credentials,
}

/// What a writer saw of a connector when it read it (`save_connector` checks it is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub status: ConnectorStatus,
    pub credentials_version: i64,
}

#[derive(Debug, Clone)]
pub struct ConnectorRecord {
    pub id: ConnectorId,
    pub account_id: AccountId,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub origins: Vec<String>,
    pub owner: Option<String>,
    pub settings: serde_json::Value,
    pub status: ConnectorStatus,
    /// What moved it out of `active`, when more is known than its status (the grant failure
    /// behind a `needs_reauth`, the endpoint's 410 behind a `disabled`). See `diagnosis`.
    pub status_diagnosis: Option<DiagnosisView>,
    pub warnings: Vec<String>,
    /// The kind, flow and key, parsed once when the record is read.
    pub credentials: Credentials,
    pub signing_secret: SecretString,
    pub previous_signing_secret: Option<SecretString>,
    pub previous_signing_until: Option<i64>,
    /// Bumped whenever the credentials change, so token state can tell old from new.
    pub credentials_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_signing_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

pub(crate) fn key_aad(id: &str) -> String {
    format!("connector/{id}/key")
}
pub(crate) fn signing_aad(id: &str) -> String {
    format!("connector/{id}/signing")
}
pub(crate) fn prev_signing_aad(id: &str) -> String {
    format!("connector/{id}/signing-previous")
}

/// The columns as stored, before the secrets are opened.
struct RawConnector {
    id: String,
    account_id: String,
    name: String,
    kind: String,
    url: String,
    events: String,
    origins: String,
    owner: Option<String>,
    settings: String,
    flow: Option<String>,
    status: String,
    status_diagnosis: Option<String>,
    warnings: String,
    key_sealed: Vec<u8>,
    signing_sealed: Vec<u8>,
    prev_signing_sealed: Option<Vec<u8>>,
    prev_signing_until: Option<i64>,
    credentials_version: i64,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, account_id, name, kind, url, events, origins, owner, settings, flow, \
     status, status_diagnosis, warnings, key_sealed, signing_sealed, prev_signing_sealed, prev_signing_until, \
     credentials_version, created_at, updated_at";

macro_rules! raw_connector {
    ($row:expr) => {{
        let row = $row;
        RawConnector {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            name: row.try_get("name")?,
            kind: row.try_get("kind")?,
            url: row.try_get("url")?,
            events: row.try_get("events")?,
            origins: row.try_get("origins")?,
            owner: row.try_get("owner")?,
            settings: row.try_get("settings")?,
            flow: row.try_get("flow")?,
            status: row.try_get("status")?,
            status_diagnosis: row.try_get("status_diagnosis")?,
            warnings: row.try_get("warnings")?,
            key_sealed: row.try_get("key_sealed")?,
            signing_sealed: row.try_get("signing_sealed")?,
            prev_signing_sealed: row.try_get("prev_signing_sealed")?,
            prev_signing_until: row.try_get("prev_signing_until")?,
            credentials_version: row.try_get("credentials_version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

fn json_list(raw: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("lists of strings and JSON values always serialise")
}

/// Bind what a registration writes as the query's next nine parameters, in the order both of
/// `upsert_once`'s statements name the columns: kind, url, events, origins, owner, settings,
/// flow, warnings, and key_sealed (sealed for connector `$id`).
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
    }};
}

impl ConnectorRecord {
    pub fn seen(&self) -> Seen {
        Seen {
            status: self.status,
            credentials_version: self.credentials_version,
        }
    }

    /// Why the connector is not `active` and what to do: the diagnosis that moved it, else
    /// the generic one of its status (connectors moved before diagnoses were kept, a
    /// revocation); `None` while it is active.
    pub fn diagnosis(&self) -> Option<DiagnosisView> {
        let generic = self.status.diagnosis_code()?;
        Some(
            self.status_diagnosis
                .clone()
                .unwrap_or_else(|| generic.into()),
        )
    }
}

/// Accounts whose connectors are kept at most; past it the cache starts over.
const CACHED_ACCOUNTS: usize = 10_000;

/// See `Store::account_connectors`.
#[derive(Debug, Default)]
pub(crate) struct ConnectorCache {
    version: AtomicU64,
    accounts: Mutex<HashMap<AccountId, CachedConnectors>>,
}

#[derive(Debug)]
struct CachedConnectors {
    version: u64,
    valid_until: i64,
    records: Arc<Vec<ConnectorRecord>>,
}

impl Store {
    fn open_connector(&self, raw: RawConnector) -> Result<ConnectorRecord, StoreError> {
        let previous_signing_secret = match &raw.prev_signing_sealed {
            // Past its 24 h the old secret no longer signs; treat it as gone.
            Some(sealed) if raw.prev_signing_until.is_some_and(|t| t > now_ms()) => Some(
                self.cipher
                    .open_secret(&prev_signing_aad(&raw.id), sealed)?,
            ),
            _ => None,
        };
        let key = self
            .cipher
            .open_secret(&key_aad(&raw.id), &raw.key_sealed)?;
        // The key is parsed for the stored kind. Before kinds were read back, callers parsed
        // it for `ConnectorKind::of(name)`; every connector written so far has that very kind.
        let credentials = Credentials::from_storage(&raw.kind, raw.flow.as_deref(), key)
            .map_err(|e| StoreError::Corrupt(format!("connector {}: {e}", raw.id)))?;
        Ok(ConnectorRecord {
            credentials,
            signing_secret: self
                .cipher
                .open_secret(&signing_aad(&raw.id), &raw.signing_sealed)?,
            previous_signing_until: previous_signing_secret.as_ref().and(raw.prev_signing_until),
            previous_signing_secret,
            events: json_list(&raw.events, "events")?,
            origins: json_list(&raw.origins, "origins")?,
            warnings: json_list(&raw.warnings, "warnings")?,
            settings: serde_json::from_str(&raw.settings)
                .map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?,
            status: ConnectorStatus::parse(&raw.status)
                .ok_or_else(|| StoreError::Corrupt(format!("status {:?}", raw.status)))?,
            status_diagnosis: raw
                .status_diagnosis
                .as_deref()
                .map(DiagnosisView::from_stored),
            id: ConnectorId::from(raw.id),
            account_id: AccountId::from(raw.account_id),
            name: raw.name,
            url: raw.url,
            owner: raw.owner,
            credentials_version: raw.credentials_version,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }

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
                         settings = $6, flow = $7, warnings = $8, key_sealed = $9, updated_at = $10, \
                         status = CASE WHEN $12 THEN status ELSE 'active' END, \
                         status_diagnosis = CASE WHEN $12 THEN status_diagnosis ELSE NULL END, \
                         credentials_version = credentials_version + CASE WHEN $12 THEN 0 ELSE 1 END \
                         WHERE id = $11",
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
                         settings, flow, status, warnings, key_sealed, signing_sealed, credentials_version, \
                         created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12, $13, 1, $14, $14)",
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
                 credentials_version = credentials_version + $10, updated_at = $11 \
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

    pub async fn get_connector(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<ConnectorRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM connectors WHERE account_id = $1 AND name = $2");
        let raw = on_db!(&self.reads, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(account.as_str()).bind(name).fetch_optional(pool).await? {
                Some(row) => Some(raw_connector!(&row)),
                None => None,
            }
        });
        raw.map(|raw| self.open_connector(raw)).transpose()
    }

    /// The account's connectors, the default callback included, as routing and the delivery
    /// workers read them many times a second. On SQLite they are kept between connector
    /// writes: one process owns a SQLite database, and every connector write of this process
    /// passes through `connectors_changed`. PostgreSQL nodes share their database, so they
    /// always read.
    pub async fn account_connectors(
        &self,
        account: &AccountId,
    ) -> Result<Arc<Vec<ConnectorRecord>>, StoreError> {
        let cache = &self.connectors;
        let version = cache.version.load(AtomicOrdering::Acquire);
        let now = now_ms();
        if !self.is_postgres() {
            let entries = cache.accounts.lock().expect("connector cache lock");
            if let Some(entry) = entries.get(account) {
                if entry.version == version && now < entry.valid_until {
                    return Ok(entry.records.clone());
                }
            }
        }
        let records = Arc::new(self.account_rows(account, true).await?);
        if !self.is_postgres() {
            // A previous signing secret stops signing at its time without a write.
            let valid_until = records
                .iter()
                .filter_map(|r| r.previous_signing_until)
                .min()
                .unwrap_or(i64::MAX);
            let mut entries = cache.accounts.lock().expect("connector cache lock");
            if entries.len() >= CACHED_ACCOUNTS {
                entries.clear();
            }
            entries.insert(
                account.clone(),
                CachedConnectors {
                    version,
                    valid_until,
                    records: records.clone(),
                },
            );
        }
        Ok(records)
    }

    /// Called after every connector write: cached connectors are read again.
    pub(crate) fn connectors_changed(&self) {
        self.connectors.version.fetch_add(1, AtomicOrdering::AcqRel);
    }

    /// Every connector of every account, opened with this store's master key: how many open,
    /// and `account id/name` of those whose secrets this key cannot open (another master key
    /// sealed them). What `hookwarden doctor` checks before a server would fail at delivery.
    pub async fn check_connector_secrets(&self) -> Result<(usize, Vec<String>), StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM connectors ORDER BY account_id, name");
        let raws = on_db!(&self.reads, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_all(pool)
                .await?;
            let mut raws = Vec::with_capacity(rows.len());
            for row in &rows {
                raws.push(raw_connector!(row));
            }
            raws
        });
        let (mut opened, mut sealed_elsewhere) = (0, Vec::new());
        for raw in raws {
            let name = format!("{}/{}", raw.account_id, raw.name);
            match self.open_connector(raw) {
                Ok(_) => opened += 1,
                Err(StoreError::Decrypt(_)) => sealed_elsewhere.push(name),
                Err(e) => return Err(e),
            }
        }
        Ok((opened, sealed_elsewhere))
    }

    /// The account's connectors by name: neither the default callback nor its notification
    /// endpoints (the rows whose names start with `@`, a character names cannot have).
    pub async fn list_connectors(
        &self,
        account: &AccountId,
    ) -> Result<Vec<ConnectorRecord>, StoreError> {
        self.account_rows(account, false).await
    }

    /// Every row of the account (`internal`: the default callback and the notification
    /// endpoints too), by name.
    async fn account_rows(
        &self,
        account: &AccountId,
        internal: bool,
    ) -> Result<Vec<ConnectorRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM connectors WHERE account_id = $1 AND ($2 OR name NOT LIKE '@%') \
             ORDER BY name"
        );
        let raws = on_db!(&self.reads, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account.as_str())
                .bind(internal)
                .fetch_all(pool)
                .await?;
            let mut raws = Vec::with_capacity(rows.len());
            for row in &rows {
                raws.push(raw_connector!(row));
            }
            raws
        });
        raws.into_iter()
            .map(|raw| self.open_connector(raw))
            .collect()
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
                 prev_signing_until = $3, updated_at = $4 WHERE id = $5",
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
