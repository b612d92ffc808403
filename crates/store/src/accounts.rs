//! Accounts (tenants) and their API keys. Keys are random and long, so a SHA-256 of the key is
//! enough to store: nothing to brute-force, and lookup stays one indexed read.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use hookwarden_core::AccountId;

use crate::{now_ms, on_db, BeginWrite, Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: i64,
}

/// What `Authorization: Basic ...` carries: the API key as it is (OneSpan's convention).
fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// An API key's id: the first 16 hex digits of its SHA-256. It names a key in lists and
/// revocations without revealing it; whoever holds the key can compute it.
pub fn api_key_id(key: &str) -> String {
    hash_api_key(key)[..API_KEY_ID_LEN].to_owned()
}

const API_KEY_ID_LEN: usize = 16;

/// An API key as it is listed: its id, its first characters and its age and last use, never
/// the key.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
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

/// What `revoke_api_key` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRevocation {
    Revoked,
    NotFound,
    /// The account's only key: revoking it would lock the account out of its API.
    LastKey,
}

fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "hwk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Store {
    /// Create an account and its first API key; the key is returned once and stored hashed.
    pub async fn create_account(&self, name: &str) -> Result<(Account, String), StoreError> {
        let account = Account {
            id: AccountId::generate(),
            name: name.to_owned(),
            created_at: now_ms(),
        };
        let api_key = generate_api_key();
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
            sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at, prefix) VALUES ($1, $2, $3, $4)")
                .bind(hash_api_key(&api_key))
                .bind(account.id.as_str())
                .bind(account.created_at)
                .bind(key_prefix(&api_key))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok((account, api_key))
    }

    /// The account of that name (names are unique).
    pub async fn account_named(&self, name: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .list_accounts()
            .await?
            .into_iter()
            .find(|a| a.name == name))
    }

    /// A new API key for the account, returned once (stored hashed).
    pub async fn create_api_key(
        &self,
        account: &AccountId,
    ) -> Result<(ApiKeyInfo, String), StoreError> {
        let api_key = generate_api_key();
        let created_at = now_ms();
        on_db!(&self.db, pool => {
            sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at, prefix) VALUES ($1, $2, $3, $4)")
                .bind(hash_api_key(&api_key))
                .bind(account.as_str())
                .bind(created_at)
                .bind(key_prefix(&api_key))
                .execute(pool)
                .await?;
        });
        Ok((
            ApiKeyInfo {
                id: api_key_id(&api_key),
                prefix: Some(key_prefix(&api_key)),
                created_at,
                last_used_at: None,
            },
            api_key,
        ))
    }

    /// The account's API keys, oldest first.
    pub async fn list_api_keys(&self, account: &AccountId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let keys = on_db!(&self.reads, pool => {
            let rows = sqlx::query(
                "SELECT key_hash, prefix, created_at, last_used_at FROM api_keys \
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
                    prefix: row.try_get("prefix")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                });
            }
            keys
        });
        Ok(keys)
    }

    /// Revoke the account's key with this id, unless it is the account's last one.
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
            let hashes: Vec<String> =
                sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE account_id = $1")
                    .bind(account.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
            let matching: Vec<&String> = hashes.iter().filter(|h| h.starts_with(&id)).collect();
            let outcome = match (matching.as_slice(), hashes.len()) {
                ([], _) => KeyRevocation::NotFound,
                (_, 1) => KeyRevocation::LastKey,
                (found, _) => {
                    for hash in found {
                        sqlx::query("DELETE FROM api_keys WHERE key_hash = $1")
                            .bind(*hash)
                            .execute(&mut *tx)
                            .await?;
                    }
                    KeyRevocation::Revoked
                }
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
        let hash = hash_api_key(api_key);
        const SQL: &str = "SELECT a.id, a.name, a.created_at, k.last_used_at FROM api_keys k \
                           JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1";
        let found = on_db!(&self.reads, pool => {
            match sqlx::query(SQL).bind(&hash).fetch_optional(pool).await? {
                Some(row) => Some((
                    Account {
                        id: AccountId::from(row.try_get::<String, _>("id")?),
                        name: row.try_get("name")?,
                        created_at: row.try_get("created_at")?,
                    },
                    row.try_get::<Option<i64>, _>("last_used_at")?,
                )),
                None => None,
            }
        });
        let Some((account, last_used_at)) = found else {
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
        Ok(Some(account))
    }
}
