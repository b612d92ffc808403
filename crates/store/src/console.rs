//! What the console keeps and reads: its sessions (a browser's login with an API key, so any
//! node serves it) and the per-connector counts its first page shows.

use hookwarden_core::{AccountId, Scopes};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::accounts::{hash_api_key, Account, API_KEY_ID_LEN};
use crate::{on_db, Store, StoreError};

/// A session's `last_seen_at` is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// How many of an account's newest deliveries are looked at for each connector's last one.
pub const LAST_DELIVERY_WINDOW: i64 = 10_000;

/// A live console session: who is logged in, with which key, and the token its forms carry.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub account: Account,
    pub key_id: String,
    pub scopes: Scopes,
    pub csrf_token: String,
}

/// A session just made: the cookie's value (shown once, kept only as a hash) and its forms'
/// token.
#[derive(Debug, Clone)]
pub struct NewConsoleSession {
    pub token: String,
    pub csrf_token: String,
}

/// A connector's deliveries at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorActivity {
    pub pending: i64,
    pub held: i64,
    pub failed: i64,
    /// When the newest delivery to it was made, among the account's newest
    /// `LAST_DELIVERY_WINDOW`.
    pub last_delivery_at: Option<i64>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// A session for `api_key` (already checked by the caller) of `account`; sessions idle
    /// longer than `idle_ms` are cleared on the way.
    pub async fn create_console_session(
        &self,
        api_key: &str,
        account: &AccountId,
        now: i64,
        idle_ms: i64,
    ) -> Result<NewConsoleSession, StoreError> {
        let session = NewConsoleSession {
            token: random_hex(),
            csrf_token: random_hex(),
        };
        on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM console_sessions WHERE last_seen_at < $1")
                .bind(now - idle_ms)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO console_sessions (token_hash, key_hash, account_id, csrf_token, \
                 created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(hash_token(&session.token))
            .bind(hash_api_key(api_key))
            .bind(account.as_str())
            .bind(&session.csrf_token)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(session)
    }

    /// The session a cookie names, if it exists, its key is not revoked and it was used within
    /// `idle_ms`; its use is noted (at most once a minute). An idle one is removed.
    pub async fn console_session(
        &self,
        token: &str,
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let token_hash = hash_token(token);
        const SQL: &str = "SELECT s.key_hash, s.csrf_token, s.last_seen_at, k.scopes, \
                                  a.id, a.name, a.created_at \
                           FROM console_sessions s \
                           JOIN api_keys k ON k.key_hash = s.key_hash \
                           JOIN accounts a ON a.id = s.account_id \
                           WHERE s.token_hash = $1";
        let found = on_db!(&self.reads, pool => {
            match sqlx::query(SQL).bind(&token_hash).fetch_optional(pool).await? {
                Some(row) => {
                    let key_hash: String = row.try_get("key_hash")?;
                    Some((
                        ConsoleSession {
                            account: Account {
                                id: AccountId::from(row.try_get::<String, _>("id")?),
                                name: row.try_get("name")?,
                                created_at: row.try_get("created_at")?,
                            },
                            key_id: key_hash[..API_KEY_ID_LEN.min(key_hash.len())].to_owned(),
                            scopes: Scopes::from_stored(&row.try_get::<String, _>("scopes")?),
                            csrf_token: row.try_get("csrf_token")?,
                        },
                        row.try_get::<i64, _>("last_seen_at")?,
                    ))
                }
                None => None,
            }
        });
        let Some((session, last_seen_at)) = found else {
            return Ok(None);
        };
        if now - last_seen_at > idle_ms {
            self.end_console_session(token).await?;
            return Ok(None);
        }
        if now - last_seen_at >= TOUCH_EVERY_MS {
            on_db!(&self.db, pool => {
                sqlx::query("UPDATE console_sessions SET last_seen_at = $1 WHERE token_hash = $2")
                    .bind(now)
                    .bind(&token_hash)
                    .execute(pool)
                    .await?;
            });
        }
        Ok(Some(session))
    }

    /// Log out: the session is gone (nothing happens for an unknown token).
    pub async fn end_console_session(&self, token: &str) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
                .bind(hash_token(token))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Each connector's pending, held and failed deliveries and its newest delivery, by
    /// connector name (`@default` for the default callback).
    pub async fn connector_activity(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(String, ConnectorActivity)>, StoreError> {
        const COUNTS: &str = "SELECT c.name, \
               (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
                  AND d.status = 'pending' AND d.status <> 'delivered') AS pending, \
               (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
                  AND d.status = 'held' AND d.status <> 'delivered') AS held, \
               (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
                  AND d.status = 'failed' AND d.status <> 'delivered') AS failed \
             FROM connectors c WHERE c.account_id = $1 ORDER BY c.name";
        // The newest deliveries of the account, through its (account_id, seq) index: bounded
        // work whatever the history's size.
        const LAST: &str = "SELECT connector_name, MAX(created_at) AS last_at FROM \
               (SELECT connector_name, created_at FROM deliveries WHERE account_id = $1 \
                ORDER BY seq DESC LIMIT $2) recent GROUP BY connector_name";
        let (counts, last) = on_db!(&self.reads, pool => {
            let mut counts = Vec::new();
            for row in sqlx::query(COUNTS).bind(account.as_str()).fetch_all(pool).await? {
                counts.push((
                    row.try_get::<String, _>("name")?,
                    ConnectorActivity {
                        pending: row.try_get("pending")?,
                        held: row.try_get("held")?,
                        failed: row.try_get("failed")?,
                        last_delivery_at: None,
                    },
                ));
            }
            let mut last = Vec::new();
            for row in sqlx::query(LAST)
                .bind(account.as_str())
                .bind(LAST_DELIVERY_WINDOW)
                .fetch_all(pool)
                .await?
            {
                last.push((
                    row.try_get::<String, _>("connector_name")?,
                    row.try_get::<Option<i64>, _>("last_at")?,
                ));
            }
            (counts, last)
        });
        Ok(counts
            .into_iter()
            .map(|(name, mut activity)| {
                activity.last_delivery_at = last
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, at)| *at);
                (name, activity)
            })
            .collect())
    }
}
