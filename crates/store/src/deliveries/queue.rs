//! The queue: claims of due deliveries under a lease, their outcomes, and what moves a
//! connector's open deliveries at once (hold, resume, defer, fail, give leases back).

use hookwarden_core::{
    AccountId, ConnectorId, DeliveryId, DeliveryStatus, DiagnosisView, EventId, NotificationType,
};
use sqlx::Row;

use super::rows::WriteRows;
use super::{ClaimedDelivery, Completion, NewAttempt};
use crate::held::{in_hot_tx, Hot};
use crate::notifications::{Draft, Outbox};
use crate::{on_db, Store, StoreError};

/// `ids(id)`: every connector id that has deliveries not yet delivered, by a loose scan of
/// `deliveries_connector` (one index probe per connector, whatever the history), for a
/// `WITH RECURSIVE`. Its last row is NULL.
macro_rules! open_connector_ids {
    () => {
        "ids(id) AS ( \
           SELECT MIN(connector_id) FROM deliveries WHERE status <> 'delivered' \
           UNION ALL \
           SELECT (SELECT MIN(d.connector_id) FROM deliveries d \
                   WHERE d.connector_id > ids.id AND d.status <> 'delivered') \
           FROM ids WHERE ids.id IS NOT NULL)"
    };
}
/// What a SQLite claim took, read back in one row (see `CLAIM_AND_READ_SQLITE`).
macro_rules! claimed_read_back {
    () => {
        "SELECT changes() AS taken, json_group_array(json_array(d.seq, d.id, d.account_id, \
           d.event_id, d.event_name, d.connector_id, d.connector_name, d.package_id, d.attempts, \
           d.created_at, e.payload)) AS claimed \
         FROM deliveries d JOIN events e ON e.id = d.event_id \
         WHERE d.status = 'pending' AND d.next_attempt_at = $1 AND d.lease_token = $2"
    };
}
/// A per-package delivery waits while an earlier one of its package to the same connector is
/// still pending or held (in flight, retrying, or held).
/// The SQLite claim and what it took, with the bodies, in one call into SQLite's thread: the
/// UPDATE, then one row holding how many rows it changed and those rows as JSON (SQLite hands
/// each result row from its thread to the caller's separately, which for a batch cost more
/// than the claim). The two statements run as one text (sqlx's SQLite driver runs every
/// statement of a text, binding numbered parameters by number), each in its own implicit
/// transaction: the lease token is new, so nothing else touches these rows in between.
/// The LIMIT is a CAST, not a bare `$4`: SQLite's planner reads a bare parameter's value there,
/// and then prepares the statement again whenever that value changes, which is at nearly every
/// claim (its size follows the lanes' free room).
const CLAIM_AND_READ_SQLITE: &str = concat!(
    "UPDATE deliveries SET next_attempt_at = $1, lease_token = $2 \
     WHERE seq IN (SELECT d.seq FROM deliveries d \
       WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
         AND d.connector_id NOT IN (SELECT value FROM json_each($5)) \
         AND (d.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries e \
           WHERE e.connector_id = d.connector_id AND e.order_key = d.order_key \
             AND e.seq < d.seq AND e.status IN ('pending', 'held'))) \
       ORDER BY d.next_attempt_at, d.seq LIMIT CAST($4 AS INTEGER)); ",
    claimed_read_back!()
);
/// SQLite's claim when some connectors (`$5`) are left out (full on this node, or backing
/// off). The claim above walks the due index in due order and skips their rows one by one:
/// behind a backlog of a million that cost 80 ms a claim, with every other writer waiting. This
/// one takes, for each connector with open deliveries (a loose scan of `deliveries_connector`,
/// one probe each, as `orphaned_connectors` does) that is not left out, its first due
/// deliveries in `seq` order from the same index (per-package order as above), and claims the
/// earliest due of those: as many due deliveries as the claim above, though within a connector
/// by `seq` rather than by due time (a retry due later may go before a newer delivery due
/// earlier; everything taken is due). Its cost is one probe per connector with open
/// deliveries, plus the in-flight and not-yet-due rows it reads past in each connector that is
/// not left out; no index is added for it, so the claim above costs nothing more. Behind a
/// million due deliveries of the left-out connector, with 2,048 of another in flight: 0.6 ms.
pub(crate) const CLAIM_EXCLUDING_AND_READ_SQLITE: &str = concat!(
    "UPDATE deliveries SET next_attempt_at = $1, lease_token = $2 \
     WHERE seq IN (WITH RECURSIVE ",
    open_connector_ids!(),
    " SELECT d.seq FROM ids JOIN deliveries d ON d.seq IN (SELECT e.seq FROM deliveries e \
           WHERE e.connector_id = ids.id AND e.status = 'pending' AND e.status <> 'delivered' \
             AND e.next_attempt_at <= $3 \
             AND (e.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries f \
               WHERE f.connector_id = e.connector_id AND f.order_key = e.order_key \
                 AND f.seq < e.seq AND f.status IN ('pending', 'held'))) \
           ORDER BY e.seq LIMIT CAST($4 AS INTEGER)) \
       WHERE ids.id IS NOT NULL AND ids.id NOT IN (SELECT value FROM json_each($5)) \
       ORDER BY d.next_attempt_at, d.seq LIMIT CAST($4 AS INTEGER)); ",
    claimed_read_back!()
);
/// PostgreSQL: the claim and the bodies in one round trip.
/// PostgreSQL's clock in ms: the time leases are taken and expire by on PostgreSQL, where
/// several nodes share the queue and a node whose clock is behind must not take a delivery
/// another node is still sending (its lease would look expired by the slow clock).
macro_rules! pg_now_ms {
    () => {
        "(extract(epoch from now()) * 1000)::bigint"
    };
}
pub(crate) use pg_now_ms;

/// The lease ends `$1 - $3` (the lease's length) after the database's now; a row is due by the
/// node's clock (`$3`: retry times are the node's, and tests move it), and a leased row only
/// once its lease has ended by the database's clock too: a node whose clock runs ahead cannot
/// take a delivery another node is still sending. `$6`: no delivery due before this time is
/// taken (`claim_due_from`), so that the scan starts past the dead entries the claims leave
/// at the front of `deliveries_due`.
pub(crate) const CLAIM_PG: &str = concat!(
    "WITH c AS (UPDATE deliveries SET next_attempt_at = ",
    pg_now_ms!(),
    " + ($1 - $3), lease_token = $2 \
     WHERE seq IN (SELECT d.seq FROM deliveries d \
       WHERE d.status = 'pending' AND d.next_attempt_at <= $3 AND d.next_attempt_at >= $6 \
         AND (d.lease_token IS NULL OR d.next_attempt_at <= ",
    pg_now_ms!(),
    ") \
         AND d.connector_id NOT IN (SELECT json_array_elements_text($5::json)) \
         AND (d.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries e \
           WHERE e.connector_id = d.connector_id AND e.order_key = d.order_key \
             AND e.seq < d.seq AND e.status IN ('pending', 'held'))) \
       ORDER BY d.next_attempt_at, d.seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING seq, id, account_id, event_id, event_name, connector_id, connector_name, package_id, attempts, created_at) \
     SELECT c.*, e.payload FROM c JOIN events e ON e.id = c.event_id"
);

/// A claimed delivery as `CLAIM_AND_READ_SQLITE` lists it.
type ClaimedTuple = (
    i64,
    DeliveryId,
    AccountId,
    EventId,
    String,
    ConnectorId,
    String,
    String,
    i64,
    i64,
    String,
);

/// Hold a connector's deliveries that wait to be sent (not those a worker holds the lease
/// of: their outcome decides). `$1` the connector, `$2` now.
pub(crate) const HOLD_CONNECTOR_DELIVERIES: &str =
    "UPDATE deliveries SET status = 'held', updated_at = $2 \
     WHERE connector_id = $1 AND status = 'pending' AND status <> 'delivered' \
       AND lease_token IS NULL";

/// `sync_held_deliveries`, resuming (`$1` now). On PostgreSQL the active connectors are read
/// first (`= ANY(ARRAY(...))`) and each one's held deliveries found in `deliveries_connector`.
pub(crate) const RESUME_HELD_PG: &str =
    "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
     WHERE status = 'held' AND status <> 'delivered' \
       AND connector_id = ANY(ARRAY(SELECT id FROM connectors WHERE status = 'active'))";
const RESUME_HELD_SQLITE: &str =
    "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
     WHERE status = 'held' AND status <> 'delivered' \
       AND connector_id IN (SELECT id FROM connectors WHERE status = 'active')";
/// `sync_held_deliveries`, holding (`$1` now) the deliveries of the connectors `$2` (a JSON
/// array on SQLite). Run only when some connector is not active: written as one statement with
/// `IN (SELECT ... FROM connectors ...)`, PostgreSQL planned it on tables without statistics
/// (a new database, before autovacuum's first ANALYZE) as a walk over every pending delivery
/// with a probe of `connectors` each: 27 ms and 30,000 buffers at a backlog of 30,000, every
/// tick on every worker, while every connector was active.
pub(crate) const HOLD_INACTIVE_PG: &str = "UPDATE deliveries SET status = 'held', updated_at = $1 \
     WHERE connector_id = ANY($2) AND status = 'pending' AND status <> 'delivered' \
       AND lease_token IS NULL";
const HOLD_INACTIVE_SQLITE: &str = "UPDATE deliveries SET status = 'held', updated_at = $1 \
     WHERE connector_id IN (SELECT value FROM json_each($2)) AND status = 'pending' \
       AND status <> 'delivered' AND lease_token IS NULL";

/// Make a connector's held deliveries due now, all at once so they go out in their original
/// order. `$1` the connector, `$2` now.
pub(crate) const RELEASE_CONNECTOR_DELIVERIES: &str =
    "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, updated_at = $2 \
     WHERE connector_id = $1 AND status = 'held' AND status <> 'delivered'";

/// A delivery the engine failed, for its `delivery.failed` notification.
#[derive(Debug, Clone)]
pub struct FailedDelivery {
    pub delivery_id: DeliveryId,
    pub connector_id: ConnectorId,
    /// The last attempt's diagnosis.
    pub diagnosis: Option<DiagnosisView>,
}

/// Push a connector's unclaimed due deliveries to `$2` (its breaker opened). `$1` the connector.
pub(crate) const DEFER_CONNECTOR_DELIVERIES: &str = "UPDATE deliveries SET next_attempt_at = $2 \
     WHERE connector_id = $1 AND status = 'pending' AND status <> 'delivered' \
       AND lease_token IS NULL AND next_attempt_at < $2";

impl Store {
    /// Claim up to `limit` due deliveries, oldest due first, for `lease_token` until
    /// `lease_until`. Connectors in `exclude` are skipped (saturated or backing off here).
    pub async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        lease_token: &str,
        limit: usize,
        exclude: &[ConnectorId],
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.claim_due_from(now, lease_until, lease_token, limit, exclude, i64::MIN)
            .await
    }

    /// `claim_due`, looking only at deliveries due from `due_from` on (PostgreSQL). Each claim
    /// leaves in PostgreSQL's due index an entry for every row it took, dead, at the time the
    /// row was due; until VACUUM removes them (autovacuum: a minute or more apart) every claim
    /// that starts from the oldest walked all of them, in the benchmark more pages a claim than
    /// the rows it took cost. A caller that knows nothing before `due_from` is due (it claimed
    /// or skipped all of it, see the claimer's floor) starts there. SQLite keeps no dead
    /// entries and reads from the oldest whatever `due_from` is.
    pub async fn claim_due_from(
        &self,
        now: i64,
        lease_until: i64,
        lease_token: &str,
        limit: usize,
        exclude: &[ConnectorId],
        due_from: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let excluding = !exclude.is_empty();
        let exclude = serde_json::to_string(exclude).expect("strings serialise");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut claimed: Vec<ClaimedDelivery> = match &self.db {
            crate::Db::Sqlite(pool) => {
                let sql = if excluding {
                    CLAIM_EXCLUDING_AND_READ_SQLITE
                } else {
                    CLAIM_AND_READ_SQLITE
                };
                let row = sqlx::query(sql)
                    .bind(lease_until)
                    .bind(lease_token)
                    .bind(now)
                    .bind(limit)
                    .bind(&exclude)
                    .fetch_one(pool)
                    .await?;
                let taken: i64 = row.try_get("taken")?;
                if taken == 0 {
                    return Ok(Vec::new());
                }
                let json: String = row.try_get("claimed")?;
                let rows: Vec<ClaimedTuple> = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("claimed deliveries: {e}")))?;
                // The join drops a delivery whose event row is gone: say so, as the claim
                // did when it read the bodies separately, rather than leave it leased unseen.
                if rows.len() as i64 != taken {
                    return Err(StoreError::Corrupt(format!(
                        "{taken} deliveries claimed but {} found with their event's body",
                        rows.len()
                    )));
                }
                rows.into_iter()
                    .map(|r| ClaimedDelivery {
                        seq: r.0,
                        id: r.1,
                        account_id: r.2,
                        event_id: r.3,
                        event_name: r.4,
                        connector_id: r.5,
                        connector_name: r.6,
                        package_id: r.7,
                        attempts: r.8,
                        created_at: r.9,
                        payload: r.10,
                        lease_token: lease_token.to_owned(),
                    })
                    .collect()
            }
            crate::Db::Postgres(_) => {
                // The claim in due order also when connectors are left out: a per-connector
                // claim as in SQLite locks (FOR UPDATE) up to `limit` rows of every connector
                // before it picks `limit` of them, and PostgreSQL's `deliveries_connector` holds
                // no order within a connector. So here a large due backlog of a left-out
                // connector still costs each such claim a walk past it.
                let mut held = self.held(Hot::Claim).await?;
                let rows = sqlx::query(CLAIM_PG)
                    .bind(lease_until)
                    .bind(lease_token)
                    .bind(now)
                    .bind(limit)
                    .bind(&exclude)
                    .bind(due_from)
                    .fetch_all(held.conn())
                    .await
                    .map_err(StoreError::from);
                let rows = held.settle(rows)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(ClaimedDelivery {
                        seq: row.try_get("seq")?,
                        id: row.try_get::<String, _>("id")?.into(),
                        account_id: row.try_get::<String, _>("account_id")?.into(),
                        event_id: row.try_get::<String, _>("event_id")?.into(),
                        event_name: row.try_get("event_name")?,
                        connector_id: row.try_get::<String, _>("connector_id")?.into(),
                        connector_name: row.try_get("connector_name")?,
                        package_id: row.try_get("package_id")?,
                        attempts: row.try_get("attempts")?,
                        created_at: row.try_get("created_at")?,
                        payload: row.try_get("payload")?,
                        lease_token: lease_token.to_owned(),
                    });
                }
                out
            }
        };
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    /// Record attempts and what became of claimed deliveries, in one transaction. A completion
    /// whose lease was lost (expired and claimed again elsewhere) changes nothing; its attempts
    /// are still recorded, since they happened.
    pub async fn record_outcomes(
        &self,
        completions: &[Completion],
        attempts: &[NewAttempt],
        now: i64,
    ) -> Result<(), StoreError> {
        self.record_outcomes_noting(completions, attempts, &[], now)
            .await
    }

    /// `record_outcomes`, and a `delivery.failed` notification for each of `failed` that this
    /// write did fail (not one whose lease was lost), in the same transaction. Written once per
    /// delivery and attempt count, however often the write is retried.
    pub async fn record_outcomes_noting(
        &self,
        completions: &[Completion],
        attempts: &[NewAttempt],
        failed: &[FailedDelivery],
        now: i64,
    ) -> Result<(), StoreError> {
        if completions.is_empty() && attempts.is_empty() {
            return Ok(());
        }
        in_hot_tx!(self, Hot::Outcomes, tx => {
            tx.write_outcome_rows(completions, attempts, now).await?;
            for f in failed {
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT status, attempts FROM deliveries WHERE id = $1")
                        .bind(f.delivery_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((status, made)) = row else { continue };
                if status != DeliveryStatus::Failed.as_str() {
                    continue;
                }
                let draft = Draft {
                    kind: NotificationType::DeliveryFailed,
                    diagnosis: f.diagnosis.clone(),
                    delivery_id: Some(f.delivery_id.as_str().to_owned()),
                    held: None,
                    once: Some(format!("failed_{}_{made}", f.delivery_id)),
                };
                tx.notify(&self.cipher, f.connector_id.as_str(), &draft, now).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Hold every unclaimed pending delivery of a connector that stopped being `active`.
    pub async fn hold_connector_deliveries(
        &self,
        connector_id: &ConnectorId,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(HOLD_CONNECTOR_DELIVERIES)
            .bind(connector_id.as_str())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Bring held deliveries of connectors that are `active` again back to due (all due now,
    /// so they go out in their original order), and hold pending deliveries of connectors
    /// that are not. Returns (resumed, held). Every worker runs it each maintenance tick.
    pub async fn sync_held_deliveries(&self, now: i64) -> Result<(u64, u64), StoreError> {
        let inactive: Vec<String> = on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT id FROM connectors WHERE status <> 'active'")
                .fetch_all(pool)
                .await?
        });
        let resumed = on_db!(&self.db, pool => {
            sqlx::query(self.pick(RESUME_HELD_SQLITE, RESUME_HELD_PG))
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if inactive.is_empty() {
            return Ok((resumed, 0));
        }
        // The ids as SQLite's `json_each` and PostgreSQL's `ANY` take them.
        let held = match &self.db {
            crate::Db::Sqlite(pool) => sqlx::query(HOLD_INACTIVE_SQLITE)
                .bind(now)
                .bind(serde_json::to_string(&inactive).expect("strings serialise"))
                .execute(pool)
                .await?
                .rows_affected(),
            crate::Db::Postgres(pool) => sqlx::query(HOLD_INACTIVE_PG)
                .bind(now)
                .bind(&inactive)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok((resumed, held))
    }

    /// Connectors that no longer exist but still have unclaimed pending or held deliveries
    /// (a delivery released or ingested while its connector was being deleted); the caller
    /// fails them with `fail_connector_deliveries`. A loose
    /// index scan: one probe of `deliveries_connector` per connector id that has deliveries,
    /// so its cost does not grow with the delivery history, as a plain `NOT IN` scan did.
    pub async fn orphaned_connectors(&self) -> Result<Vec<ConnectorId>, StoreError> {
        const ORPHANED: &str = concat!(
            "WITH RECURSIVE ",
            open_connector_ids!(),
            " SELECT id FROM ids WHERE id IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM connectors c WHERE c.id = ids.id) \
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.connector_id = ids.id \
                 AND d.status IN ('pending', 'held') AND d.status <> 'delivered' \
                 AND d.lease_token IS NULL)"
        );
        let ids = on_db!(&self.reads, pool => {
            sqlx::query_scalar::<_, String>(ORPHANED).fetch_all(pool).await?
        });
        Ok(ids.into_iter().map(ConnectorId::from).collect())
    }

    /// Fail the pending and held deliveries of one connector (DELETE of the connector).
    pub async fn fail_connector_deliveries(
        &self,
        connector_id: &ConnectorId,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = $3 \
                 WHERE connector_id = $1 AND status IN ('pending', 'held') AND status <> 'delivered' \
                   AND lease_token IS NULL",
            )
            .bind(connector_id.as_str())
            .bind(reason)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Clear every lease: for a single-node SQLite database at start-up, when every lease in it
    /// belongs to a process that is gone.
    pub async fn release_all_leases(&self, now: i64) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1, lease_token = NULL \
                 WHERE status = 'pending' AND lease_token IS NOT NULL",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Give back every claim whose lease token starts with `prefix` (one node's claims, at
    /// shutdown), due at `now`. Tokens are `<node>:<n>`, node ids hex, so no LIKE escaping.
    pub async fn release_leases_of_node(&self, node: &str, now: i64) -> Result<u64, StoreError> {
        let pattern = format!("{node}:%");
        Ok(on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1, lease_token = NULL \
                 WHERE status = 'pending' AND lease_token LIKE $2",
            )
            .bind(now)
            .bind(&pattern)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Push a connector's unclaimed due deliveries to `until` (its circuit breaker opened), so
    /// no node spends claims on them meanwhile. Their order among themselves is kept.
    pub async fn defer_connector_deliveries(
        &self,
        connector_id: &ConnectorId,
        until: i64,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(DEFER_CONNECTOR_DELIVERIES)
            .bind(connector_id.as_str())
            .bind(until)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
}
