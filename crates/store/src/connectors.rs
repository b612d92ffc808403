//! Connectors: where deliveries go and with which credentials. The key (credentials) and the
//! signing secrets are sealed; everything else is plain so it can be listed and filtered.
//! This module reads them (and keeps each account's in memory on SQLite); `write` changes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rand::RngCore;
use secrecy::SecretString;
use serde::Serialize;
use sqlx::Row;

use hookwarden_core::{AccountId, ConnectorId, ConnectorStatus, Credentials, DiagnosisView};

use crate::{now_ms, on_db, Store, StoreError};

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
    /// The org's "expire refresh token if not used for N days" policy, when known.
    pub refresh_token_idle_days: Option<u32>,
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
    /// When the credentials last changed (registration, a new key, a code exchange), ms.
    pub credentials_changed_at: i64,
    /// When the signing secret was made (registration) or last rotated, ms.
    pub signing_secret_changed_at: i64,
    /// The org's "expire refresh token if not used for N days" policy, when known (the
    /// governance review's `refresh_token_idle`).
    pub refresh_token_idle_days: Option<u32>,
    /// Since when a node's circuit breaker has found its endpoint failing (`connector.failing`
    /// was told); `None` while it is not, or since its first delivery through.
    pub failing_since: Option<i64>,
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
    credentials_changed_at: Option<i64>,
    signing_secret_changed_at: Option<i64>,
    refresh_token_idle_days: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, account_id, name, kind, url, events, origins, owner, settings, flow, \
     status, status_diagnosis, warnings, key_sealed, signing_sealed, prev_signing_sealed, prev_signing_until, \
     credentials_version, credentials_changed_at, signing_secret_changed_at, refresh_token_idle_days, \
     failing_since, created_at, updated_at";

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
            credentials_changed_at: row.try_get("credentials_changed_at")?,
            signing_secret_changed_at: row.try_get("signing_secret_changed_at")?,
            refresh_token_idle_days: row.try_get("refresh_token_idle_days")?,
            failing_since: row.try_get("failing_since")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

mod write;

fn json_list(raw: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn to_json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("lists of strings and JSON values always serialise")
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
            // Written by every registration since migration 14, which filled in older rows.
            credentials_changed_at: raw.credentials_changed_at.unwrap_or(raw.created_at),
            signing_secret_changed_at: raw.signing_secret_changed_at.unwrap_or(raw.created_at),
            refresh_token_idle_days: raw
                .refresh_token_idle_days
                .and_then(|d| u32::try_from(d).ok()),
            failing_since: raw.failing_since,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
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
}
