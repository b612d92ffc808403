//! Accounts (tenants) and their API keys. Keys are random and long, so a SHA-256 of the key is
//! enough to store: nothing to brute-force, and lookup stays one indexed read.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{new_id, now_ms, on_db, BeginWrite, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(pub String);

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
            id: AccountId(new_id("acc")),
            name: name.to_owned(),
            created_at: now_ms(),
        };
        let api_key = generate_api_key();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&account.id.0)
                .bind(&account.name)
                .bind(account.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ($1, $2, $3)")
                .bind(hash_api_key(&api_key))
                .bind(&account.id.0)
                .bind(account.created_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok((account, api_key))
    }

    /// The account an API key belongs to, if any.
    pub async fn account_by_api_key(&self, api_key: &str) -> Result<Option<Account>, StoreError> {
        let hash = hash_api_key(api_key);
        const SQL: &str = "SELECT a.id, a.name, a.created_at FROM api_keys k \
                           JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1";
        let account = on_db!(&self.reads, pool => {
            match sqlx::query(SQL).bind(&hash).fetch_optional(pool).await? {
                Some(row) => Some(Account {
                    id: AccountId(row.try_get("id")?),
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                }),
                None => None,
            }
        });
        Ok(account)
    }
}
