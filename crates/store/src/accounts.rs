//! Accounts (tenants) and their API keys. Keys are random and long, so a SHA-256 of the key is
//! enough to store: nothing to brute-force, and lookup stays one indexed read.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use hookwarden_core::{AccountId, KeyName, Scope, Scopes};

use crate::{now_ms, on_db, BeginWrite, Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: i64,
}

/// What `Authorization: Basic ...` carries: the API key as it is (OneSpan's convention).
pub(crate) fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// An API key's id: the first 16 hex digits of its SHA-256. It names a key in lists and
/// revocations without revealing it; whoever holds the key can compute it.
pub fn api_key_id(key: &str) -> String {
    hash_api_key(key)[..API_KEY_ID_LEN].to_owned()
}

pub(crate) const API_KEY_ID_LEN: usize = 16;

/// An API key as it is listed: its id, name, scopes, first characters and its age and last
/// use, never the key.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    /// What its maker called it, if anything.
    pub name: Option<String>,
    /// What it may do (keys made before scopes existed are `admin`).
    pub scopes: Scopes,
    /// `hwk_` and the next characters of the key (none for keys made before they were kept).
    pub prefix: Option<String>,
    pub created_at: i64,
    /// When a server last looked the key up (at most once a minute is written).
    pub last_used_at: Option<i64>,
}

/// How much of a key is kept in the clear to recognise it by: `hwk_` and 6 of its 43 random
/// characters (36 bits of 256, nothing to guess the rest from).
const API_KEY_PREFIX_LEN: usize = 10;

fn key_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX_LEN).collect()
}

/// A key's use is written again only when the last written one is this old: a key used all day
/// long costs a write a minute, not one per request.
const LAST_USE_EVERY_MS: i64 = 60_000;

/// Who holds an API key: its account, the key's id (`api_key_id`) and what it may do.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub account: Account,
    pub key_id: String,
    pub scopes: Scopes,
}

/// What `revoke_api_key` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRevocation {
    Revoked,
    NotFound,
    /// The account's last `admin` key: revoking it would leave no key that can manage the
    /// account (its keys, its connectors) through the API.
    LastAdminKey,
}

const INSERT_KEY: &str =
    "INSERT INTO api_keys (key_hash, account_id, created_at, prefix, scopes, name) \
                          VALUES ($1, $2, $3, $4, $5, $6)";

fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "hwk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Store {
    /// Create an account and its first API key, an `admin` one; the key is returned once and
    /// stored hashed.
    pub async fn create_account(&self, name: &str) -> Result<(Account, String), StoreError> {
        let (account, _, api_key) = self
            .create_account_with_key(name, Scopes::admin(), None)
            .await?;
        Ok((account, api_key))
    }

    /// Create an account and its first API key with these scopes (and name); the key is
    /// returned once and stored hashed.
    pub async fn create_account_with_key(
        &self,
        name: &str,
        scopes: Scopes,
        key_name: Option<&KeyName>,
    ) -> Result<(Account, ApiKeyInfo, String), StoreError> {
        let account = Account {
            id: AccountId::generate(),
            name: name.to_owned(),
            created_at: now_ms(),
        };
        let api_key = generate_api_key();
        let info = new_key_info(&api_key, scopes, key_name, account.created_at);
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(account.id.as_str())
                .bind(&account.name)
                .bind(account.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| match e.as_database_error() {
                    Some(db) if db.is_unique_violation() => StoreError::Conflict(format!(
                        "an account named {:?} exists already",
                        account.name
                    )),
                    _ => StoreError::from(e),
                })?;
            sqlx::query(INSERT_KEY)
                .bind(hash_api_key(&api_key))
                .bind(account.id.as_str())
                .bind(info.created_at)
                .bind(info.prefix.as_deref())
                .bind(info.scopes.to_stored())
                .bind(info.name.as_deref())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok((account, info, api_key))
    }

    /// The account of that name (names are unique).
    pub async fn account_named(&self, name: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .list_accounts()
            .await?
            .into_iter()
            .find(|a| a.name == name))
    }

    /// A new `admin` API key for the account, returned once (stored hashed).
    pub async fn create_api_key(
        &self,
        account: &AccountId,
    ) -> Result<(ApiKeyInfo, String), StoreError> {
        self.create_scoped_api_key(account, Scopes::admin(), None)
            .await
    }

    /// A new API key for the account with these scopes (and name), returned once (stored
    /// hashed).
    pub async fn create_scoped_api_key(
        &self,
        account: &AccountId,
        scopes: Scopes,
        name: Option<&KeyName>,
    ) -> Result<(ApiKeyInfo, String), StoreError> {
        let api_key = generate_api_key();
        let info = new_key_info(&api_key, scopes, name, now_ms());
        on_db!(&self.db, pool => {
            sqlx::query(INSERT_KEY)
                .bind(hash_api_key(&api_key))
                .bind(account.as_str())
                .bind(info.created_at)
                .bind(info.prefix.as_deref())
                .bind(info.scopes.to_stored())
                .bind(info.name.as_deref())
                .execute(pool)
                .await?;
        });
        Ok((info, api_key))
    }

    /// The account's API keys, oldest first.
    pub async fn list_api_keys(&self, account: &AccountId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let keys = on_db!(&self.reads, pool => {
            let rows = sqlx::query(
                "SELECT key_hash, name, scopes, prefix, created_at, last_used_at FROM api_keys \
                 WHERE account_id = $1 ORDER BY created_at, key_hash",
            )
            .bind(account.as_str())
            .fetch_all(pool)
            .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in &rows {
                let hash: String = row.try_get("key_hash")?;
                keys.push(ApiKeyInfo {
                    id: hash[..API_KEY_ID_LEN.min(hash.len())].to_owned(),
                    name: row.try_get("name")?,
                    scopes: Scopes::from_stored(&row.try_get::<String, _>("scopes")?),
                    prefix: row.try_get("prefix")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                });
            }
            keys
        });
        Ok(keys)
    }

    /// Revoke the account's key with this id, unless it is the account's last `admin` key.
    pub async fn revoke_api_key(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<KeyRevocation, StoreError> {
        if id.len() != API_KEY_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(KeyRevocation::NotFound);
        }
        let id = id.to_ascii_lowercase();
        let outcome = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            // Hold the account's row: two revocations at once must not each leave the other
            // the last admin key (PostgreSQL; SQLite's write lock already serialises them).
            sqlx::query("UPDATE accounts SET name = name WHERE id = $1")
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query("SELECT key_hash, scopes FROM api_keys WHERE account_id = $1")
                .bind(account.as_str())
                .fetch_all(&mut *tx)
                .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in &rows {
                let hash: String = row.try_get("key_hash")?;
                let admin = Scopes::from_stored(&row.try_get::<String, _>("scopes")?)
                    .contains(Scope::Admin);
                keys.push((hash, admin));
            }
            let (matching, others): (Vec<_>, Vec<_>) =
                keys.iter().partition(|(hash, _)| hash.starts_with(&id));
            let outcome = if matching.is_empty() {
                KeyRevocation::NotFound
            } else if matching.iter().any(|(_, admin)| *admin) && !others.iter().any(|(_, admin)| *admin) {
                KeyRevocation::LastAdminKey
            } else {
                for (hash, _) in matching {
                    sqlx::query("DELETE FROM api_keys WHERE key_hash = $1")
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?;
                }
                KeyRevocation::Revoked
            };
            tx.commit().await?;
            outcome
        });
        Ok(outcome)
    }

    /// Every account, oldest first.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let accounts = on_db!(&self.reads, pool => {
            let rows = sqlx::query("SELECT id, name, created_at FROM accounts ORDER BY created_at, id")
                .fetch_all(pool)
                .await?;
            let mut accounts = Vec::with_capacity(rows.len());
            for row in &rows {
                accounts.push(Account {
                    id: AccountId::from(row.try_get::<String, _>("id")?),
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                });
            }
            accounts
        });
        Ok(accounts)
    }

    /// The account an API key belongs to, if any; the key's use is noted (at most once a
    /// minute).
    pub async fn account_by_api_key(&self, api_key: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.api_key_holder(api_key).await?.map(|h| h.account))
    }

    /// Who holds an API key and what it may do, if it is one; the key's use is noted (at most
    /// once a minute).
    pub async fn api_key_holder(&self, api_key: &str) -> Result<Option<KeyHolder>, StoreError> {
        let hash = hash_api_key(api_key);
        const SQL: &str =
            "SELECT a.id, a.name, a.created_at, k.scopes, k.last_used_at FROM api_keys k \
                           JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1";
        let found = on_db!(&self.reads, pool => {
            match sqlx::query(SQL).bind(&hash).fetch_optional(pool).await? {
                Some(row) => Some((
                    KeyHolder {
                        account: Account {
                            id: AccountId::from(row.try_get::<String, _>("id")?),
                            name: row.try_get("name")?,
                            created_at: row.try_get("created_at")?,
                        },
                        key_id: hash[..API_KEY_ID_LEN].to_owned(),
                        scopes: Scopes::from_stored(&row.try_get::<String, _>("scopes")?),
                    },
                    row.try_get::<Option<i64>, _>("last_used_at")?,
                )),
                None => None,
            }
        });
        let Some((holder, last_used_at)) = found else {
            return Ok(None);
        };
        let now = now_ms();
        if last_used_at.is_none_or(|at| now - at >= LAST_USE_EVERY_MS) {
            on_db!(&self.db, pool => {
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_hash = $2")
                    .bind(now)
                    .bind(&hash)
                    .execute(pool)
                    .await?;
            });
        }
        Ok(Some(holder))
    }
}

/// How a key just made is listed.
fn new_key_info(
    api_key: &str,
    scopes: Scopes,
    name: Option<&KeyName>,
    created_at: i64,
) -> ApiKeyInfo {
    ApiKeyInfo {
        id: api_key_id(api_key),
        name: name.map(|n| n.as_str().to_owned()),
        scopes,
        prefix: Some(key_prefix(api_key)),
        created_at,
        last_used_at: None,
    }
}
