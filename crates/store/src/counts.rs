//! How much an account holds, for the server's per-account caps, and which connectors exist,
//! for the labels `/metrics` may show.

use hookwarden_core::AccountId;
use sqlx::Row;

use crate::{on_db, Store, StoreError};

/// A connector by the names its metrics are labelled with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectorLabel {
    pub account_name: String,
    pub connector_name: String,
}

impl Store {
    /// The account's connectors, the default callback not counted (it is one per account).
    pub async fn count_connectors(&self, account: &AccountId) -> Result<i64, StoreError> {
        Ok(on_db!(&self.reads, pool => {
            // Neither the default callback nor notification endpoints: names starting with `@`.
            sqlx::query("SELECT COUNT(*) AS n FROM connectors WHERE account_id = $1 AND name NOT LIKE '@%'")
                .bind(account.as_str())
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>("n")?
        }))
    }

    /// Authorization flows of the account begun (`…/oauth/url`) and neither completed nor
    /// expired at `now` (ms).
    pub async fn count_pending_authorizations(
        &self,
        account: &AccountId,
        now: i64,
    ) -> Result<i64, StoreError> {
        Ok(on_db!(&self.reads, pool => {
            sqlx::query(
                "SELECT COUNT(*) AS n FROM oauth_states WHERE account_id = $1 AND expires_at >= $2",
            )
            .bind(account.as_str())
            .bind(now)
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")?
        }))
    }

    /// Every connector (default callbacks included) by account name and connector name.
    pub async fn connector_labels(&self) -> Result<Vec<ConnectorLabel>, StoreError> {
        Ok(on_db!(&self.reads, pool => {
            let rows = sqlx::query(
                "SELECT a.name AS account_name, c.name AS connector_name \
                 FROM connectors c JOIN accounts a ON a.id = c.account_id",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(ConnectorLabel {
                    account_name: row.try_get("account_name")?,
                    connector_name: row.try_get("connector_name")?,
                });
            }
            out
        }))
    }
}
