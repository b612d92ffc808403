//! Token state per connector (access token, rotated refresh token, version), the grant lease that
//! keeps one grant in flight across nodes, and pending authorization-code flows.
//!
//! Every write that matters is conditional: the lease is taken with an UPDATE that only matches
//! a free or expired lease, and a new token state is saved with compare-and-swap on `version`,
//! so two nodes sharing one database cannot both grant nor overwrite each other's tokens.
//! The status changes that go with the tokens (revocation, `needs_reauth`, `url_not_in_org`,
//! resume) are in `transitions`.

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{now_ms, on_db, Store, StoreError};
use hookwarden_core::{AccountId, ConnectorId};

/// A connector's token state as stored, secrets opened.
#[derive(Debug, Clone, Default)]
pub struct TokenState {
    pub connector_id: ConnectorId,
    /// The connector's `credentials_version` this state derives from. A state from older
    /// credentials is dead: neither its access token nor its refresh token may be used.
    pub credentials_version: i64,
    /// Bumped at every successful grant, rotation and wipe.
    pub version: i64,
    pub access_token: Option<SecretString>,
    pub access_expires_at: Option<i64>,
    /// When to refresh proactively; `None` = only when invalidated (`session: none`).
    pub refresh_at: Option<i64>,
    /// The current refresh token when the provider rotated it; overrides the key's.
    pub refresh_token: Option<SecretString>,
    pub instance_url: Option<String>,
    pub scope: Option<String>,
    /// The provider's `issued_at` (ms) of the access token, when it sent one.
    pub issued_at: Option<i64>,
    pub last_grant_at: Option<i64>,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub backoff_until: Option<i64>,
    pub consecutive_failures: i64,
}

/// What a successful grant (or a code exchange) writes.
#[derive(Debug, Clone)]
pub struct GrantedTokens {
    pub credentials_version: i64,
    /// `None` for a grant whose access token must not be used (its org is not the url's):
    /// the rest (a rotated refresh token, the `instance_url`) is still the provider's latest.
    pub access_token: Option<SecretString>,
    pub access_expires_at: Option<i64>,
    pub refresh_at: Option<i64>,
    /// `Some` replaces the stored refresh token (rotation); `None` keeps it when the
    /// credentials are the same, and clears it when they changed (the key's applies again).
    pub refresh_token: Option<SecretString>,
    pub instance_url: Option<String>,
    pub scope: Option<String>,
    pub issued_at: Option<i64>,
    /// When the grant was made (ms), by the token engine's clock: the token state's
    /// `last_grant_at`, which the keep-alive and the review measure idleness from.
    pub granted_at: i64,
}

/// A pending authorization-code flow (`GET .../oauth/url` → `GET /oauth/callback`).
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub connector_id: ConnectorId,
    pub account_id: AccountId,
    pub connector_name: String,
    pub code_verifier: SecretString,
    pub redirect_uri: String,
    pub expires_at: i64,
}

pub(crate) fn access_aad(id: &ConnectorId) -> String {
    format!("connector/{id}/access-token")
}
pub(crate) fn refresh_aad(id: &ConnectorId) -> String {
    format!("connector/{id}/refresh-token")
}
pub(crate) fn verifier_aad(id: &ConnectorId, state_hash: &str) -> String {
    format!("connector/{id}/pkce/{state_hash}")
}

/// `state` travels in URLs and browser history; only its hash is stored.
fn hash_state(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

const STATE_COLUMNS: &str = "connector_id, credentials_version, version, access_sealed, \
    access_expires_at, refresh_at, refresh_sealed, instance_url, scope, issued_at, last_grant_at, \
    last_error, lease_owner, lease_until, backoff_until, consecutive_failures";

struct RawState {
    connector_id: String,
    credentials_version: i64,
    version: i64,
    access_sealed: Option<Vec<u8>>,
    access_expires_at: Option<i64>,
    refresh_at: Option<i64>,
    refresh_sealed: Option<Vec<u8>>,
    instance_url: Option<String>,
    scope: Option<String>,
    issued_at: Option<i64>,
    last_grant_at: Option<i64>,
    last_error: Option<String>,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    backoff_until: Option<i64>,
    consecutive_failures: i64,
}

macro_rules! raw_state {
    ($row:expr) => {{
        let row = $row;
        RawState {
            connector_id: row.try_get("connector_id")?,
            credentials_version: row.try_get("credentials_version")?,
            version: row.try_get("version")?,
            access_sealed: row.try_get("access_sealed")?,
            access_expires_at: row.try_get("access_expires_at")?,
            refresh_at: row.try_get("refresh_at")?,
            refresh_sealed: row.try_get("refresh_sealed")?,
            instance_url: row.try_get("instance_url")?,
            scope: row.try_get("scope")?,
            issued_at: row.try_get("issued_at")?,
            last_grant_at: row.try_get("last_grant_at")?,
            last_error: row.try_get("last_error")?,
            lease_owner: row.try_get("lease_owner")?,
            lease_until: row.try_get("lease_until")?,
            backoff_until: row.try_get("backoff_until")?,
            consecutive_failures: row.try_get("consecutive_failures")?,
        }
    }};
}

impl Store {
    fn open_state(&self, raw: RawState) -> Result<TokenState, StoreError> {
        let id = ConnectorId::from(raw.connector_id);
        let access_token = raw
            .access_sealed
            .map(|s| self.cipher.open_secret(&access_aad(&id), &s))
            .transpose()?;
        let refresh_token = raw
            .refresh_sealed
            .map(|s| self.cipher.open_secret(&refresh_aad(&id), &s))
            .transpose()?;
        Ok(TokenState {
            connector_id: id,
            credentials_version: raw.credentials_version,
            version: raw.version,
            access_token,
            access_expires_at: raw.access_expires_at,
            refresh_at: raw.refresh_at,
            refresh_token,
            instance_url: raw.instance_url,
            scope: raw.scope,
            issued_at: raw.issued_at,
            last_grant_at: raw.last_grant_at,
            last_error: raw.last_error,
            lease_owner: raw.lease_owner,
            lease_until: raw.lease_until,
            backoff_until: raw.backoff_until,
            consecutive_failures: raw.consecutive_failures,
        })
    }

    /// The connector's token state; `None` before its first grant.
    pub async fn get_token_state(
        &self,
        connector_id: &ConnectorId,
    ) -> Result<Option<TokenState>, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM token_state WHERE connector_id = $1");
        let raw = on_db!(&self.db, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(connector_id.as_str())
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Some(raw_state!(&row)),
                None => None,
            }
        });
        raw.map(|r| self.open_state(r)).transpose()
    }

    /// Make sure the row exists, so the lease UPDATE has something to match.
    async fn ensure_token_row(&self, connector_id: &ConnectorId) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO token_state (connector_id, credentials_version, version, updated_at) \
                 VALUES ($1, 0, 0, $2) ON CONFLICT (connector_id) DO NOTHING",
            )
            .bind(connector_id.as_str())
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Take the grant lease for `ttl_ms` if it is free, expired, or already `owner`'s.
    /// One conditional UPDATE: of two nodes racing, exactly one matches the row.
    pub async fn acquire_grant_lease(
        &self,
        connector_id: &ConnectorId,
        owner: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        self.ensure_token_row(connector_id).await?;
        let affected = match &self.db {
            // One node: its own clock.
            crate::Db::Sqlite(pool) => {
                let now = now_ms();
                sqlx::query(
                    "UPDATE token_state SET lease_owner = $1, lease_until = $2 \
                     WHERE connector_id = $3 \
                       AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until < $4 OR lease_owner = $1)",
                )
                .bind(owner)
                .bind(now.saturating_add(ttl_ms))
                .bind(connector_id.as_str())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
            }
            // Nodes sharing the database: taken and expired by the database's clock, so a node
            // whose clock is behind cannot take a lease another node still holds.
            crate::Db::Postgres(pool) => sqlx::query(concat!(
                "UPDATE token_state SET lease_owner = $1, lease_until = ",
                crate::deliveries::pg_now_ms!(),
                " + $2 WHERE connector_id = $3 \
                   AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until < ",
                crate::deliveries::pg_now_ms!(),
                " OR lease_owner = $1)"
            ))
            .bind(owner)
            .bind(ttl_ms)
            .bind(connector_id.as_str())
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(affected == 1)
    }

    /// Give the lease back (only if `owner` still holds it).
    pub async fn release_grant_lease(
        &self,
        connector_id: &ConnectorId,
        owner: &str,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE token_state SET lease_owner = NULL, lease_until = NULL \
                 WHERE connector_id = $1 AND lease_owner = $2",
            )
            .bind(connector_id.as_str())
            .bind(owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Save a grant's tokens with compare-and-swap: only when the stored `version` is still
    /// `expected_version` (`None`: unconditionally, for a code exchange that replaces the
    /// credentials). Bumps the version, clears failures and releases the lease in the same
    /// statement if `lease_owner` holds it (another holder's lease is left alone). Returns the
    /// new version, or `None` when the CAS lost.
    pub async fn save_granted_tokens(
        &self,
        connector_id: &ConnectorId,
        expected_version: Option<i64>,
        granted: &GrantedTokens,
        lease_owner: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.ensure_token_row(connector_id).await?;
        let access = granted
            .access_token
            .as_ref()
            .map(|a| self.cipher.seal_secret(&access_aad(connector_id), a));
        let refresh = granted
            .refresh_token
            .as_ref()
            .map(|r| self.cipher.seal_secret(&refresh_aad(connector_id), r));
        let new_version: Option<i64> = on_db!(&self.db, pool => {
            // A refresh token from older credentials must not survive a credentials change.
            sqlx::query_scalar(
                "UPDATE token_state SET version = version + 1, access_sealed = $1, \
                 access_expires_at = $2, refresh_at = $3, \
                 refresh_sealed = CASE WHEN $4 IS NOT NULL THEN $4 \
                                       WHEN credentials_version = $5 THEN refresh_sealed \
                                       ELSE NULL END, \
                 credentials_version = $5, instance_url = $6, scope = $7, issued_at = $8, \
                 last_grant_at = $9, last_error = NULL, backoff_until = NULL, \
                 consecutive_failures = 0, updated_at = $9, \
                 lease_until = CASE WHEN lease_owner = $12 THEN NULL ELSE lease_until END, \
                 lease_owner = CASE WHEN lease_owner = $12 THEN NULL ELSE lease_owner END \
                 WHERE connector_id = $10 AND ($11 IS NULL OR version = $11) \
                 RETURNING version",
            )
            .bind(access)
            .bind(granted.access_expires_at)
            .bind(granted.refresh_at)
            .bind(refresh)
            .bind(granted.credentials_version)
            .bind(&granted.instance_url)
            .bind(&granted.scope)
            .bind(granted.issued_at)
            .bind(granted.granted_at)
            .bind(connector_id.as_str())
            .bind(expected_version)
            .bind(lease_owner)
            .fetch_optional(pool)
            .await?
        });
        Ok(new_version)
    }

    /// Correct the expiry of the tokens saved as `version` (learned by introspection after they
    /// were persisted). Nothing changes if a newer grant has been saved meanwhile.
    pub async fn update_token_expiry(
        &self,
        connector_id: &ConnectorId,
        version: i64,
        access_expires_at: Option<i64>,
        refresh_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let changed = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE token_state SET access_expires_at = $1, refresh_at = $2 \
                 WHERE connector_id = $3 AND version = $4",
            )
            .bind(access_expires_at)
            .bind(refresh_at)
            .bind(connector_id.as_str())
            .bind(version)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Record a failed grant: the backoff (for transient failures), the error (never a
    /// secret), one more consecutive failure; releases `owner`'s lease.
    pub async fn record_grant_failure(
        &self,
        connector_id: &ConnectorId,
        owner: &str,
        backoff_until: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.ensure_token_row(connector_id).await?;
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE token_state SET backoff_until = $1, last_error = $2, \
                 consecutive_failures = consecutive_failures + 1, updated_at = $3, \
                 lease_owner = CASE WHEN lease_owner = $4 THEN NULL ELSE lease_owner END, \
                 lease_until = CASE WHEN lease_owner = $4 THEN NULL ELSE lease_until END \
                 WHERE connector_id = $5",
            )
            .bind(backoff_until)
            .bind(error)
            .bind(now_ms())
            .bind(owner)
            .bind(connector_id.as_str())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Remember a pending authorization-code flow under `state` (stored hashed).
    pub async fn put_oauth_state(
        &self,
        state: &str,
        pending: &OAuthState,
    ) -> Result<(), StoreError> {
        let hash = hash_state(state);
        let sealed = self.cipher.seal_secret(
            &verifier_aad(&pending.connector_id, &hash),
            &pending.code_verifier,
        );
        let now = now_ms();
        on_db!(&self.db, pool => {
            // Flows nobody completed would pile up; drop the expired ones on the way.
            sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO oauth_states (state_hash, connector_id, account_id, connector_name, \
                 verifier_sealed, redirect_uri, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&hash)
            .bind(pending.connector_id.as_str())
            .bind(pending.account_id.as_str())
            .bind(&pending.connector_name)
            .bind(sealed)
            .bind(&pending.redirect_uri)
            .bind(pending.expires_at)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Take (and delete: single use) the flow for `state`; `None` when unknown or expired.
    pub async fn take_oauth_state(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        let hash = hash_state(state);
        let row = on_db!(&self.db, pool => {
            match sqlx::query(
                "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING connector_id, account_id, \
                 connector_name, verifier_sealed, redirect_uri, expires_at",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await?
            {
                Some(row) => Some((
                    row.try_get::<String, _>("connector_id")?,
                    row.try_get::<String, _>("account_id")?,
                    row.try_get::<String, _>("connector_name")?,
                    row.try_get::<Vec<u8>, _>("verifier_sealed")?,
                    row.try_get::<String, _>("redirect_uri")?,
                    row.try_get::<i64, _>("expires_at")?,
                )),
                None => None,
            }
        });
        let Some((connector_id, account_id, connector_name, sealed, redirect_uri, expires_at)) =
            row
        else {
            return Ok(None);
        };
        if expires_at < now_ms() {
            return Ok(None);
        }
        let connector_id = ConnectorId::from(connector_id);
        let code_verifier = self
            .cipher
            .open_secret(&verifier_aad(&connector_id, &hash), &sealed)?;
        Ok(Some(OAuthState {
            connector_id,
            account_id: account_id.into(),
            connector_name,
            code_verifier,
            redirect_uri,
            expires_at,
        }))
    }
}
