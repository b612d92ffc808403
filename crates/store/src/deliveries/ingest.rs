//! Ingest: the rows of many requests written in one transaction (group commit), with their
//! Idempotency-Keys, by multi-row INSERTs.

use hookwarden_core::DeliveryStatus;
use sqlx::Row;

use super::{
    bind_nulls, from_pair_key, insert_padded, pair_key, IngestOutcome, IngestWrite, NewDelivery,
    NewEvent,
};
use crate::multirow::{self, Dialect};
use crate::notify::WakeNodes;
use crate::{on_db, BeginWrite, Store, StoreError};

const INSERT_IDEMPOTENCY: &str =
    "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, response, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, idem_key) DO NOTHING";
const SELECT_IDEMPOTENCY: &str =
    "SELECT request_hash, response FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2";

const EVENT_TYPES: &[&str] = &["TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT"];
const DELIVERY_TYPES: &[&str] = &[
    "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT",
    "BIGINT",
];

fn insert_events(dialect: Dialect, rows: usize) -> String {
    format!(
        "INSERT INTO events (id, account_id, name, origin, package_id, payload, created_at) VALUES {}",
        multirow::values(dialect, rows, EVENT_TYPES, 1, false)
    )
}

fn insert_deliveries(dialect: Dialect, rows: usize) -> String {
    format!(
        "INSERT INTO deliveries (id, account_id, event_id, event_name, connector_id, connector_name, \
         package_id, order_key, status, next_attempt_at, created_at, updated_at) VALUES {}",
        multirow::values(dialect, rows, DELIVERY_TYPES, 1, false)
    )
}

const EVENTS_INTO: &str = "events (id, account_id, name, origin, package_id, payload, created_at)";
const DELIVERIES_INTO: &str = "deliveries (id, account_id, event_id, event_name, connector_id, \
     connector_name, package_id, order_key, status, next_attempt_at, created_at, updated_at)";

/// SQLite: the tails of one ingest transaction, events then deliveries, as one text.
fn ingest_tail(key: usize) -> String {
    let (events, deliveries) = from_pair_key(key);
    let mut parts = Vec::new();
    if events > 0 {
        parts.push(insert_padded(EVENTS_INTO, events, EVENT_TYPES));
    }
    if deliveries > 0 {
        parts.push(insert_padded(DELIVERIES_INTO, deliveries, DELIVERY_TYPES));
    }
    parts.join("; ")
}

impl Store {
    /// Write the rows of many ingest requests in one transaction. Each request's outcome is
    /// returned in order; requests that replay or conflict write nothing.
    pub async fn commit_ingest(
        &self,
        writes: &[IngestWrite],
        now: i64,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        self.commit_ingest_waking(writes, now, None).await
    }

    /// `commit_ingest`, and on PostgreSQL, when it writes a due (pending) delivery, a NOTIFY
    /// with `notice` as its payload (the sending node; the server adds the group's number) to
    /// every node's workers inside the same transaction: PostgreSQL sends it at the commit, so
    /// it costs no connection, round trip or commit of its own, and it is never sent for rows
    /// that were rolled back.
    pub async fn commit_ingest_waking(
        &self,
        writes: &[IngestWrite],
        now: i64,
        notice: Option<&str>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let dialect = self.dialect();
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events: Vec<&NewEvent> = Vec::new();
        let mut deliveries: Vec<&NewDelivery> = Vec::new();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            for write in writes {
                if let Some(idem) = &write.idempotency {
                    let inserted = sqlx::query(INSERT_IDEMPOTENCY)
                        .bind(write.account_id.as_str())
                        .bind(&idem.key)
                        .bind(&idem.request_hash)
                        .bind(&idem.response)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if inserted == 0 {
                        let row = sqlx::query(SELECT_IDEMPOTENCY)
                            .bind(write.account_id.as_str())
                            .bind(&idem.key)
                            .fetch_one(&mut *tx)
                            .await?;
                        let hash: String = row.try_get("request_hash")?;
                        outcomes.push(if hash == idem.request_hash {
                            IngestOutcome::Replay(row.try_get("response")?)
                        } else {
                            IngestOutcome::Conflict
                        });
                        continue;
                    }
                }
                outcomes.push(IngestOutcome::Written);
                events.extend(&write.events);
                deliveries.extend(&write.deliveries);
            }
            let (event_plan, delivery_plan) =
                (multirow::plan(dialect, events.len()), multirow::plan(dialect, deliveries.len()));
            macro_rules! bind_event {
                ($q:expr, $e:expr) => {{
                    let e = $e;
                    $q.bind(e.id.as_str()).bind(e.account_id.as_str()).bind(&e.name).bind(&e.origin)
                        .bind(&e.package_id).bind(&e.payload).bind(e.created_at)
                }};
            }
            macro_rules! bind_delivery {
                ($q:expr, $d:expr) => {{
                    let d = $d;
                    $q.bind(d.id.as_str()).bind(d.account_id.as_str()).bind(d.event_id.as_str())
                        .bind(&d.event_name).bind(d.connector_id.as_str()).bind(&d.connector_name)
                        .bind(&d.package_id)
                        .bind(d.order_key.as_deref()).bind(d.status.as_str())
                        .bind(d.created_at).bind(d.created_at).bind(d.created_at)
                }};
            }
            for chunk in event_plan.full {
                let sql = multirow::statement(dialect, "insert_events", chunk.len(), insert_events);
                let mut q = sqlx::query(sql);
                for e in &events[chunk] {
                    q = bind_event!(q, e);
                }
                q.execute(&mut *tx).await?;
            }
            for chunk in delivery_plan.full {
                let sql = multirow::statement(dialect, "insert_deliveries", chunk.len(), insert_deliveries);
                let mut q = sqlx::query(sql);
                for d in &deliveries[chunk] {
                    q = bind_delivery!(q, d);
                }
                q.execute(&mut *tx).await?;
            }
            let (event_tail, delivery_tail) = (event_plan.tail, delivery_plan.tail);
            if !event_tail.is_empty() || !delivery_tail.is_empty() {
                let (pe, pd) = (multirow::padded(event_tail.len()), multirow::padded(delivery_tail.len()));
                let sql = multirow::statement(dialect, "ingest_tail", pair_key(pe, pd), |_, key| ingest_tail(key));
                let mut q = sqlx::query(sql);
                let pad_events = pe - event_tail.len();
                for e in &events[event_tail] {
                    q = bind_event!(q, e);
                }
                q = bind_nulls!(q, pad_events * EVENT_TYPES.len());
                let pad_deliveries = pd - delivery_tail.len();
                for d in &deliveries[delivery_tail] {
                    q = bind_delivery!(q, d);
                }
                q = bind_nulls!(q, pad_deliveries * DELIVERY_TYPES.len());
                q.execute(&mut *tx).await?;
            }
            if let Some(notice) = notice {
                if deliveries.iter().any(|d| d.status == DeliveryStatus::Pending) {
                    tx.wake_nodes_from(notice).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(outcomes)
    }
}
