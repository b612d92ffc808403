//! Which connectors the keep-alive looks at: active refresh-token connectors whose refresh
//! token was last used (their last grant, or their credentials' arrival) before a time. The
//! token engine decides again under the grant lease (`TokenManager::keep_alive`).

use sqlx::Row;

use hookwarden_core::{AccountId, ConnectorId};

use crate::{on_db, Store, StoreError};

/// A connector the keep-alive should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepAliveCandidate {
    pub account_id: AccountId,
    pub name: String,
    pub id: ConnectorId,
}

impl Store {
    /// At most `limit` active refresh-token connectors (notification endpoints, named `@…`,
    /// excluded) whose refresh token was last used before `idle_before` (ms), oldest id first.
    pub async fn keep_alive_candidates(
        &self,
        idle_before: i64,
        limit: i64,
    ) -> Result<Vec<KeepAliveCandidate>, StoreError> {
        const SQL: &str = "SELECT c.account_id, c.name, c.id FROM connectors c \
               LEFT JOIN token_state t ON t.connector_id = c.id \
               WHERE c.flow = 'refresh_token' AND c.status = 'active' AND c.name NOT LIKE '@%' \
                 AND COALESCE(c.credentials_changed_at, c.created_at) < $1 \
                 AND (t.last_grant_at IS NULL OR t.last_grant_at < $1) \
               ORDER BY c.id LIMIT $2";
        let found = on_db!(&self.reads, pool => {
            let mut found = Vec::new();
            for row in sqlx::query(SQL).bind(idle_before).bind(limit).fetch_all(pool).await? {
                found.push(KeepAliveCandidate {
                    account_id: AccountId::from(row.try_get::<String, _>("account_id")?),
                    name: row.try_get("name")?,
                    id: ConnectorId::from(row.try_get::<String, _>("id")?),
                });
            }
            found
        });
        Ok(found)
    }
}
