//! What the governance review reads besides a connector and its token state: how its
//! deliveries have gone since the last one that was delivered.

use sqlx::Row;

use hookwarden_core::ConnectorId;

use crate::{on_db, Store, StoreError};

/// A connector's deliveries as the review's `last_delivery` check sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryTrack {
    /// When the newest delivered delivery was delivered (ms); `None` when none was.
    pub last_delivered_at: Option<i64>,
    /// Deliveries that ended `failed` after it (created after it, when none was delivered:
    /// all of them).
    pub failed_since: i64,
    /// Deliveries still `pending` after at least one failed attempt.
    pub retrying: i64,
}

impl Store {
    /// How the connector's deliveries have gone since the last delivered one. Reads go through
    /// the `(connector_id, status)` index.
    pub async fn delivery_track(
        &self,
        connector_id: &ConnectorId,
    ) -> Result<DeliveryTrack, StoreError> {
        const SQL: &str = "SELECT \
               (SELECT MAX(updated_at) FROM deliveries \
                  WHERE connector_id = $1 AND status = 'delivered') AS last_delivered_at, \
               (SELECT MAX(seq) FROM deliveries \
                  WHERE connector_id = $1 AND status = 'delivered') AS last_delivered_seq, \
               (SELECT COUNT(*) FROM deliveries \
                  WHERE connector_id = $1 AND status = 'pending' AND attempts > 0) AS retrying";
        const FAILED: &str = "SELECT COUNT(*) FROM deliveries \
               WHERE connector_id = $1 AND status = 'failed' AND seq > $2";
        let record = on_db!(&self.reads, pool => {
            let row = sqlx::query(SQL).bind(connector_id.as_str()).fetch_one(pool).await?;
            let last_seq: Option<i64> = row.try_get("last_delivered_seq")?;
            let failed_since: i64 = sqlx::query_scalar(FAILED)
                .bind(connector_id.as_str())
                .bind(last_seq.unwrap_or(-1))
                .fetch_one(pool)
                .await?;
            DeliveryTrack {
                last_delivered_at: row.try_get("last_delivered_at")?,
                failed_since,
                retrying: row.try_get("retrying")?,
            }
        });
        Ok(record)
    }
}
