//! Reading deliveries back (listings, one delivery, its attempts, queue depths) and the
//! requests that re-queue them by hand (retry, replay).

use hookwarden_core::{AccountId, ConnectorStatus, DeliveryId, DeliveryStatus, DiagnosisView};
use sqlx::Row;

use super::{AttemptRecord, ConnectorGauges, DeliveryFilter, DeliveryRecord, RetryOutcome};
use crate::{on_db, Store, StoreError};

const ATTEMPTS_OF_SQLITE: &str = "SELECT delivery_id, at, status_code, duration_ms, response_excerpt, error, diagnosis, refreshed \
     FROM attempts WHERE delivery_id IN (SELECT value FROM json_each($1)) ORDER BY delivery_id, id";
const ATTEMPTS_OF_PG: &str = "SELECT delivery_id, at, status_code, duration_ms, response_excerpt, error, diagnosis, refreshed \
     FROM attempts WHERE delivery_id IN (SELECT json_array_elements_text($1::json)) ORDER BY delivery_id, id";

/// The condition on `status` (bound as `$3`) of a history query: for any status but
/// `delivered`, with the term that lets the planner use the indexes of open deliveries
/// (`deliveries_open`, `deliveries_connector`), which leave delivered ones out.
fn status_term(status: Option<DeliveryStatus>) -> &'static str {
    match status {
        None => "(CAST($3 AS TEXT) IS NULL OR status = $3)",
        Some(DeliveryStatus::Delivered) => "status = $3",
        Some(_) => "status = $3 AND status <> 'delivered'",
    }
}

/// Due, held and failed deliveries per connector (`queue_depths`), each by index probes.
/// The oldest pending delivery is found by its `seq` (deliveries are numbered as they are
/// created), which the connector index gives in order, then read once.
pub(crate) const DEPTHS: &str = "SELECT c.account_id, a.name AS account_name, c.name AS connector_name, \
       c.status, \
       (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
          AND d.status = 'pending' AND d.status <> 'delivered' AND d.next_attempt_at <= $1) AS due, \
       (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
          AND d.status = 'held' AND d.status <> 'delivered') AS held, \
       (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
          AND d.status = 'failed' AND d.status <> 'delivered') AS failed, \
       (SELECT o.created_at FROM deliveries o WHERE o.seq = (SELECT MIN(p.seq) FROM deliveries p \
          WHERE p.connector_id = c.id AND p.status = 'pending' AND p.status <> 'delivered')) \
          AS oldest_pending_at, \
       t.access_expires_at AS token_expires_at \
     FROM connectors c JOIN accounts a ON a.id = c.account_id \
     LEFT JOIN token_state t ON t.connector_id = c.id \
       AND t.credentials_version = c.credentials_version AND t.access_sealed IS NOT NULL \
     ORDER BY c.account_id, c.name";

/// `list_deliveries`: account, connector name, status, packageId, since, before seq, limit,
/// until.
pub(crate) fn list_sql(status: Option<DeliveryStatus>) -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE account_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR connector_name = $2) \
         AND {} \
         AND (CAST($4 AS TEXT) IS NULL OR package_id = $4) \
         AND (CAST($5 AS BIGINT) IS NULL OR created_at >= $5) \
         AND (CAST($6 AS BIGINT) IS NULL OR seq < $6) \
         AND (CAST($8 AS BIGINT) IS NULL OR created_at < $8) \
         ORDER BY seq DESC LIMIT $7",
        status_term(status)
    )
}

const DELIVERY_COLUMNS: &str =
    "seq, id, account_id, event_id, event_name, connector_id, connector_name, package_id, \
     status, attempts, next_attempt_at, lease_token, last_error, created_at, updated_at";

macro_rules! delivery_record {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        let lease: Option<String> = row.try_get("lease_token")?;
        DeliveryRecord {
            seq: row.try_get("seq")?,
            id: row.try_get::<String, _>("id")?.into(),
            account_id: row.try_get::<String, _>("account_id")?.into(),
            event_id: row.try_get::<String, _>("event_id")?.into(),
            event_name: row.try_get("event_name")?,
            connector_id: row.try_get::<String, _>("connector_id")?.into(),
            connector_name: row.try_get("connector_name")?,
            package_id: row.try_get("package_id")?,
            status: DeliveryStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?,
            attempts: row.try_get("attempts")?,
            // While leased, next_attempt_at is the lease's end, not a planned attempt.
            next_attempt_at: if lease.is_some() {
                None
            } else {
                row.try_get("next_attempt_at")?
            },
            in_flight: lease.is_some(),
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

impl Store {
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = list_sql(filter.status);
        Ok(on_db!(&self.reads, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(filter.account_id.as_str())
                .bind(&filter.connector_name)
                .bind(filter.status.map(DeliveryStatus::as_str))
                .bind(&filter.package_id)
                .bind(filter.since_ms)
                .bind(filter.before_seq)
                .bind(filter.limit)
                .bind(filter.until_ms)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(delivery_record!(row));
            }
            out
        }))
    }

    pub async fn get_delivery(
        &self,
        account_id: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE account_id = $1 AND id = $2");
        Ok(on_db!(&self.reads, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account_id.as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Some(delivery_record!(&row)),
                None => None,
            }
        }))
    }

    /// Every attempt of these deliveries, oldest first per delivery.
    pub async fn attempts_of(
        &self,
        delivery_ids: &[DeliveryId],
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.pick(ATTEMPTS_OF_SQLITE, ATTEMPTS_OF_PG);
        let ids = serde_json::to_string(delivery_ids).expect("strings serialise");
        Ok(on_db!(&self.reads, pool => {
            let rows = sqlx::query(sql).bind(&ids).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(AttemptRecord {
                    delivery_id: row.try_get::<String, _>("delivery_id")?.into(),
                    at: row.try_get("at")?,
                    status_code: row.try_get("status_code")?,
                    duration_ms: row.try_get("duration_ms")?,
                    response_excerpt: row.try_get("response_excerpt")?,
                    error: row.try_get("error")?,
                    diagnosis: row
                        .try_get::<Option<String>, _>("diagnosis")?
                        .map(|text| DiagnosisView::from_stored(&text)),
                    refreshed: row.try_get::<i64, _>("refreshed")? != 0,
                });
            }
            out
        }))
    }

    /// One more attempt now (`POST /api/deliveries/{id}/retry`). A failed delivery gets one
    /// attempt; a pending one skips the rest of its wait.
    /// One more attempt now: a pending or failed delivery, and a delivered one only when
    /// `force`d; never one in flight or held.
    pub async fn retry_delivery(
        &self,
        account_id: &AccountId,
        id: &DeliveryId,
        now: i64,
        force: bool,
    ) -> Result<RetryOutcome, StoreError> {
        let changed = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, updated_at = $3 \
                 WHERE account_id = $1 AND id = $2 AND lease_token IS NULL AND status <> 'held' \
                   AND (status <> 'delivered' OR $4)",
            )
            .bind(account_id.as_str())
            .bind(id.as_str())
            .bind(now)
            .bind(force)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed > 0 {
            return Ok(RetryOutcome::Queued);
        }
        Ok(match self.get_delivery(account_id, id).await? {
            None => RetryOutcome::NotFound,
            Some(d) if d.in_flight => RetryOutcome::InFlight,
            Some(d) if d.status == DeliveryStatus::Delivered => RetryOutcome::AlreadyDelivered,
            Some(_) => RetryOutcome::Held,
        })
    }

    /// Re-queue a connector's deliveries in `status` created in `[since, until)`, each with a
    /// fresh retry schedule; how many.
    pub async fn replay_deliveries(
        &self,
        account_id: &AccountId,
        connector_name: &str,
        status: DeliveryStatus,
        since_ms: i64,
        until_ms: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $6, updated_at = $6 \
             WHERE account_id = $1 AND connector_name = $2 AND {} \
               AND created_at >= $4 AND created_at < $5 AND lease_token IS NULL",
            status_term(Some(status))
        );
        Ok(on_db!(&self.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(account_id.as_str())
            .bind(connector_name)
            .bind(status.as_str())
            .bind(since_ms)
            .bind(until_ms)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Every connector's gauges, zeros included (a gauge that is no longer reported would
    /// keep its last value). Index probes per connector and status, so the cost follows the
    /// open and failed deliveries, not the whole history.
    pub async fn connector_gauges(&self, now: i64) -> Result<Vec<ConnectorGauges>, StoreError> {
        Ok(on_db!(&self.reads, pool => {
            let rows = sqlx::query(DEPTHS).bind(now).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let status: String = row.try_get("status")?;
                out.push(ConnectorGauges {
                    account_id: row.try_get::<String, _>("account_id")?.into(),
                    account_name: row.try_get("account_name")?,
                    connector_name: row.try_get("connector_name")?,
                    status: ConnectorStatus::parse(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("connector status {status:?}"))
                    })?,
                    due: row.try_get("due")?,
                    held: row.try_get("held")?,
                    failed: row.try_get("failed")?,
                    oldest_pending_at: row.try_get("oldest_pending_at")?,
                    token_expires_at: row.try_get("token_expires_at")?,
                });
            }
            out
        }))
    }
}
