//! Events, deliveries and attempts. Written in batches: ingest commits many requests in one
//! transaction (group commit), workers claim many due deliveries with one statement and
//! record many outcomes with one statement each for attempts and deliveries. Batches travel
//! as one JSON parameter (`json_each` / `json_array_elements`), so each statement has one
//! text whatever the batch size and stays in the prepared-statement cache.
//!
//! A claimed delivery stays `pending`; its `next_attempt_at` moves to the end of the lease
//! and `lease_token` names the claim. A node that dies leaves rows that simply fall due again.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::multirow::{self, Dialect};
use crate::{on_db, BeginWrite, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    /// The connector is `needs_reauth`, `revoked` or `disabled`: not attempted, not failed.
    Held,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "held" => Self::Held,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub origin: String,
    pub package_id: String,
    /// The receiver's body, exactly as it will be sent and signed.
    pub payload: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub account_id: String,
    pub event_id: String,
    pub event_name: String,
    pub connector_id: String,
    pub connector_name: String,
    pub package_id: String,
    /// The packageId when the connector orders per package.
    pub order_key: Option<String>,
    /// `Pending` (due at `created_at`) or `Held`.
    pub status: DeliveryStatus,
    pub created_at: i64,
}

/// An Idempotency-Key and what to answer when it comes again.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub key: String,
    /// A hash of the request body: the same key with another body is a conflict.
    pub request_hash: String,
    pub response: String,
}

/// One ingest request's rows; all of them or none are written.
#[derive(Debug, Clone)]
pub struct IngestWrite {
    pub account_id: String,
    pub idempotency: Option<IdempotencyRecord>,
    pub events: Vec<NewEvent>,
    pub deliveries: Vec<NewDelivery>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Written,
    /// The key was seen with the same body: here is the answer given then; nothing written.
    Replay(String),
    /// The key was seen with another body; nothing written.
    Conflict,
}

/// A delivery a worker now holds the lease of, with the body to send.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub id: String,
    pub account_id: String,
    pub event_id: String,
    pub event_name: String,
    pub connector_id: String,
    pub connector_name: String,
    pub package_id: String,
    /// Attempts made before this claim.
    pub attempts: i64,
    pub created_at: i64,
    pub payload: String,
    pub lease_token: String,
}

/// One HTTP try, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewAttempt {
    pub delivery_id: String,
    pub at: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub diagnosis: Option<String>,
    pub refreshed: bool,
}

/// What becomes of a claimed delivery. `Pending` with `next_attempt_at` is a retry (or a
/// claim given back); the lease is cleared in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub seq: i64,
    pub lease_token: String,
    pub status: DeliveryStatus,
    /// How many attempts this claim made (0 for a claim given back unattempted).
    pub attempts_added: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub seq: i64,
    pub id: String,
    pub account_id: String,
    pub event_id: String,
    pub event_name: String,
    pub connector_id: String,
    pub connector_name: String,
    pub package_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    /// A worker holds it right now.
    pub in_flight: bool,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub at: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub diagnosis: Option<String>,
    pub refreshed: bool,
}

/// `GET /api/deliveries` filters. Newest first; `before_seq` is the cursor.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub account_id: String,
    pub connector_name: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub package_id: Option<String>,
    pub since_ms: Option<i64>,
    /// Created before this time.
    pub until_ms: Option<i64>,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// Due, held and failed deliveries of one connector, for the queue-depth gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub account_id: String,
    pub connector_name: String,
    pub due: i64,
    pub held: i64,
    pub failed: i64,
}

/// What `retry_delivery` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    Queued,
    NotFound,
    InFlight,
    Held,
}

// ---- SQL, per dialect where they differ. SQLite's `->>` yields typed values; PostgreSQL's
// yields text, hence the casts. In SQLite each row object is taken out of the batch once (the
// MATERIALIZED CTE): `j.value->>'x'` would render the row as JSON text again for every
// field, which was most of what these statements cost. ----

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
const COMPLETION_TYPES: &[&str] = &["BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT"];
const ATTEMPT_TYPES: &[&str] = &[
    "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT",
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

/// The rows, then the time. A completion whose lease token no longer matches (the lease ran
/// out and another claim took it) changes nothing.
fn complete(dialect: Dialect, rows: usize) -> String {
    let now = match dialect {
        Dialect::Sqlite => "?".to_owned(),
        Dialect::Postgres => format!("${}", rows * COMPLETION_TYPES.len() + 1),
    };
    format!(
        "WITH v(q, t, s, a, n, e) AS (VALUES {}) \
         UPDATE deliveries SET status = v.s, attempts = deliveries.attempts + v.a, \
         next_attempt_at = v.n, lease_token = NULL, last_error = v.e, updated_at = {now} \
         FROM v WHERE deliveries.seq = v.q AND deliveries.lease_token = v.t",
        multirow::values(
            dialect,
            rows,
            COMPLETION_TYPES,
            1,
            dialect == Dialect::Postgres
        )
    )
}

/// SQLite: `INSERT INTO {into} ...` for a padded tail of `rows` rows (see `multirow::Plan`);
/// a row whose first value is NULL is padding and is skipped.
fn insert_padded(into: &str, rows: usize, types: &[&str]) -> String {
    format!(
        "INSERT INTO {into} SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
        multirow::values(Dialect::Sqlite, rows, types, 1, false)
    )
}

const EVENTS_INTO: &str = "events (id, account_id, name, origin, package_id, payload, created_at)";
const DELIVERIES_INTO: &str = "deliveries (id, account_id, event_id, event_name, connector_id, \
     connector_name, package_id, order_key, status, next_attempt_at, created_at, updated_at)";
const ATTEMPTS_INTO: &str = "attempts (delivery_id, at, status_code, duration_ms, \
     response_excerpt, error, diagnosis, refreshed)";

/// Bind `$n` NULLs: the values of a padded tail's unused rows.
macro_rules! bind_nulls {
    ($q:expr, $n:expr) => {{
        let mut q = $q;
        for _ in 0..$n {
            q = q.bind(None::<i64>);
        }
        q
    }};
}

/// Two padded row counts (each at most `MAX_ROWS`) as one statement-cache key, and back.
fn pair_key(a: usize, b: usize) -> usize {
    a << 16 | b
}

fn from_pair_key(key: usize) -> (usize, usize) {
    (key >> 16, key & 0xffff)
}

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

/// SQLite: the tails of one outcome transaction, attempts then completions (whose padding
/// rows match no delivery), then the time, as one text.
fn outcome_tail(key: usize) -> String {
    let (attempts, completions) = from_pair_key(key);
    let mut parts = Vec::new();
    if attempts > 0 {
        parts.push(insert_padded(ATTEMPTS_INTO, attempts, ATTEMPT_TYPES));
    }
    if completions > 0 {
        parts.push(complete(Dialect::Sqlite, completions));
    }
    parts.join("; ")
}

fn insert_attempts(dialect: Dialect, rows: usize) -> String {
    format!(
        "INSERT INTO attempts (delivery_id, at, status_code, duration_ms, response_excerpt, error, \
         diagnosis, refreshed) VALUES {}",
        multirow::values(dialect, rows, ATTEMPT_TYPES, 1, false)
    )
}

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
const CLAIM_PG: &str = "WITH c AS (UPDATE deliveries SET next_attempt_at = $1, lease_token = $2 \
     WHERE seq IN (SELECT d.seq FROM deliveries d \
       WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
         AND d.connector_id NOT IN (SELECT json_array_elements_text($5::json)) \
         AND (d.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries e \
           WHERE e.connector_id = d.connector_id AND e.order_key = d.order_key \
             AND e.seq < d.seq AND e.status IN ('pending', 'held'))) \
       ORDER BY d.next_attempt_at, d.seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING seq, id, account_id, event_id, event_name, connector_id, connector_name, package_id, attempts, created_at) \
     SELECT c.*, e.payload FROM c JOIN events e ON e.id = c.event_id";

/// A claimed delivery as `CLAIM_AND_READ_SQLITE` lists it.
type ClaimedTuple = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
);

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
pub(crate) const DEPTHS: &str = "SELECT c.account_id, c.name AS connector_name, \
       (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
          AND d.status = 'pending' AND d.status <> 'delivered' AND d.next_attempt_at <= $1) AS due, \
       (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
          AND d.status = 'held' AND d.status <> 'delivered') AS held, \
       (SELECT COUNT(*) FROM deliveries d WHERE d.connector_id = c.id \
          AND d.status = 'failed' AND d.status <> 'delivered') AS failed \
     FROM connectors c ORDER BY c.account_id, c.name";

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
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            event_id: row.try_get("event_id")?,
            event_name: row.try_get("event_name")?,
            connector_id: row.try_get("connector_id")?,
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
    fn dialect(&self) -> Dialect {
        if self.is_postgres() {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }

    pub(crate) fn pick(&self, sqlite: &'static str, pg: &'static str) -> &'static str {
        if self.is_postgres() {
            pg
        } else {
            sqlite
        }
    }

    /// Write the rows of many ingest requests in one transaction. Each request's outcome is
    /// returned in order; requests that replay or conflict write nothing.
    pub async fn commit_ingest(
        &self,
        writes: &[IngestWrite],
        now: i64,
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
                        .bind(&write.account_id)
                        .bind(&idem.key)
                        .bind(&idem.request_hash)
                        .bind(&idem.response)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if inserted == 0 {
                        let row = sqlx::query(SELECT_IDEMPOTENCY)
                            .bind(&write.account_id)
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
                    $q.bind(&e.id).bind(&e.account_id).bind(&e.name).bind(&e.origin)
                        .bind(&e.package_id).bind(&e.payload).bind(e.created_at)
                }};
            }
            macro_rules! bind_delivery {
                ($q:expr, $d:expr) => {{
                    let d = $d;
                    $q.bind(&d.id).bind(&d.account_id).bind(&d.event_id).bind(&d.event_name)
                        .bind(&d.connector_id).bind(&d.connector_name).bind(&d.package_id)
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
            tx.commit().await?;
        });
        Ok(outcomes)
    }

    /// Claim up to `limit` due deliveries, oldest due first, for `lease_token` until
    /// `lease_until`. Connectors in `exclude` are skipped (saturated or backing off here).
    pub async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        lease_token: &str,
        limit: usize,
        exclude: &[String],
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
            crate::Db::Postgres(pool) => {
                // The claim in due order also when connectors are left out: a per-connector
                // claim as in SQLite locks (FOR UPDATE) up to `limit` rows of every connector
                // before it picks `limit` of them, and PostgreSQL's `deliveries_connector` holds
                // no order within a connector. So here a large due backlog of a left-out
                // connector still costs each such claim a walk past it.
                let rows = sqlx::query(CLAIM_PG)
                    .bind(lease_until)
                    .bind(lease_token)
                    .bind(now)
                    .bind(limit)
                    .bind(&exclude)
                    .fetch_all(pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(ClaimedDelivery {
                        seq: row.try_get("seq")?,
                        id: row.try_get("id")?,
                        account_id: row.try_get("account_id")?,
                        event_id: row.try_get("event_id")?,
                        event_name: row.try_get("event_name")?,
                        connector_id: row.try_get("connector_id")?,
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
        if completions.is_empty() && attempts.is_empty() {
            return Ok(());
        }
        let dialect = self.dialect();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let (attempt_plan, completion_plan) =
                (multirow::plan(dialect, attempts.len()), multirow::plan(dialect, completions.len()));
            macro_rules! bind_attempt {
                ($q:expr, $a:expr) => {{
                    let a = $a;
                    $q.bind(&a.delivery_id).bind(a.at).bind(a.status_code).bind(a.duration_ms)
                        .bind(a.response_excerpt.as_deref()).bind(a.error.as_deref())
                        .bind(a.diagnosis.as_deref()).bind(i64::from(a.refreshed))
                }};
            }
            macro_rules! bind_completion {
                ($q:expr, $c:expr) => {{
                    let c = $c;
                    $q.bind(c.seq).bind(&c.lease_token).bind(c.status.as_str())
                        .bind(c.attempts_added).bind(c.next_attempt_at).bind(c.last_error.as_deref())
                }};
            }
            for chunk in attempt_plan.full {
                let sql = multirow::statement(dialect, "insert_attempts", chunk.len(), insert_attempts);
                let mut q = sqlx::query(sql);
                for a in &attempts[chunk] {
                    q = bind_attempt!(q, a);
                }
                q.execute(&mut *tx).await?;
            }
            for chunk in completion_plan.full {
                let sql = multirow::statement(dialect, "complete", chunk.len(), complete);
                let mut q = sqlx::query(sql);
                for c in &completions[chunk] {
                    q = bind_completion!(q, c);
                }
                q.bind(now).execute(&mut *tx).await?;
            }
            let (attempt_tail, completion_tail) = (attempt_plan.tail, completion_plan.tail);
            if !attempt_tail.is_empty() || !completion_tail.is_empty() {
                let (pa, pc) = (multirow::padded(attempt_tail.len()), multirow::padded(completion_tail.len()));
                let sql = multirow::statement(dialect, "outcome_tail", pair_key(pa, pc), |_, key| outcome_tail(key));
                let mut q = sqlx::query(sql);
                let pad_attempts = pa - attempt_tail.len();
                for a in &attempts[attempt_tail] {
                    q = bind_attempt!(q, a);
                }
                q = bind_nulls!(q, pad_attempts * ATTEMPT_TYPES.len());
                let pad_completions = pc - completion_tail.len();
                for c in &completions[completion_tail] {
                    q = bind_completion!(q, c);
                }
                q = bind_nulls!(q, pad_completions * COMPLETION_TYPES.len());
                if pc > 0 {
                    q = q.bind(now);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Hold every unclaimed pending delivery of a connector that stopped being `active`.
    pub async fn hold_connector_deliveries(
        &self,
        connector_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET status = 'held', updated_at = $2 \
                 WHERE connector_id = $1 AND status = 'pending' AND status <> 'delivered' \
                   AND lease_token IS NULL",
            )
            .bind(connector_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Bring held deliveries of connectors that are `active` again back to due (all due now,
    /// so they go out in their original order), and hold pending deliveries of connectors
    /// that are not. Returns (resumed, held).
    pub async fn sync_held_deliveries(&self, now: i64) -> Result<(u64, u64), StoreError> {
        Ok(on_db!(&self.db, pool => {
            let resumed = sqlx::query(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
                 WHERE status = 'held' AND status <> 'delivered' \
                   AND connector_id IN (SELECT id FROM connectors WHERE status = 'active')",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
            let held = sqlx::query(
                "UPDATE deliveries SET status = 'held', updated_at = $1 \
                 WHERE status = 'pending' AND status <> 'delivered' AND lease_token IS NULL \
                   AND connector_id IN (SELECT id FROM connectors WHERE status <> 'active')",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
            (resumed, held)
        }))
    }

    /// Connectors that no longer exist but still have unclaimed pending or held deliveries
    /// (a delivery released or ingested while its connector was being deleted); the caller
    /// fails them with `fail_connector_deliveries`. A loose
    /// index scan: one probe of `deliveries_connector` per connector id that has deliveries,
    /// so its cost does not grow with the delivery history, as a plain `NOT IN` scan did.
    pub async fn orphaned_connectors(&self) -> Result<Vec<String>, StoreError> {
        const ORPHANED: &str = concat!(
            "WITH RECURSIVE ",
            open_connector_ids!(),
            " SELECT id FROM ids WHERE id IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM connectors c WHERE c.id = ids.id) \
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.connector_id = ids.id \
                 AND d.status IN ('pending', 'held') AND d.status <> 'delivered' \
                 AND d.lease_token IS NULL)"
        );
        Ok(on_db!(&self.reads, pool => {
            sqlx::query_scalar::<_, String>(ORPHANED).fetch_all(pool).await?
        }))
    }

    /// Fail the pending and held deliveries of one connector (DELETE of the connector).
    pub async fn fail_connector_deliveries(
        &self,
        connector_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = $3 \
                 WHERE connector_id = $1 AND status IN ('pending', 'held') AND status <> 'delivered' \
                   AND lease_token IS NULL",
            )
            .bind(connector_id)
            .bind(reason)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Move an `active` connector to `status` (needs_reauth after a permanent grant failure,
    /// disabled after a 410), unless its credentials changed meanwhile. True when it moved.
    pub async fn set_connector_status_if_current(
        &self,
        connector_id: &str,
        credentials_version: i64,
        status: crate::ConnectorStatus,
        now: i64,
    ) -> Result<bool, StoreError> {
        let moved = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE connectors SET status = $1, updated_at = $2 \
                 WHERE id = $3 AND credentials_version = $4 AND status = 'active'",
            )
            .bind(status.as_str())
            .bind(now)
            .bind(connector_id)
            .bind(credentials_version)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        });
        self.connectors_changed();
        Ok(moved)
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
        connector_id: &str,
        until: i64,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $2 \
                 WHERE connector_id = $1 AND status = 'pending' AND status <> 'delivered' \
                   AND lease_token IS NULL AND next_attempt_at < $2",
            )
            .bind(connector_id)
            .bind(until)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = list_sql(filter.status);
        Ok(on_db!(&self.reads, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&filter.account_id)
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
        account_id: &str,
        id: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE account_id = $1 AND id = $2");
        Ok(on_db!(&self.reads, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account_id)
                .bind(id)
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
        delivery_ids: &[String],
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
                    delivery_id: row.try_get("delivery_id")?,
                    at: row.try_get("at")?,
                    status_code: row.try_get("status_code")?,
                    duration_ms: row.try_get("duration_ms")?,
                    response_excerpt: row.try_get("response_excerpt")?,
                    error: row.try_get("error")?,
                    diagnosis: row.try_get("diagnosis")?,
                    refreshed: row.try_get::<i64, _>("refreshed")? != 0,
                });
            }
            out
        }))
    }

    /// One more attempt now (`POST /api/deliveries/{id}/retry`). A failed delivery gets one
    /// attempt; a pending one skips the rest of its wait.
    pub async fn retry_delivery(
        &self,
        account_id: &str,
        id: &str,
        now: i64,
    ) -> Result<RetryOutcome, StoreError> {
        let changed = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, updated_at = $3 \
                 WHERE account_id = $1 AND id = $2 AND lease_token IS NULL AND status <> 'held'",
            )
            .bind(account_id)
            .bind(id)
            .bind(now)
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
            Some(_) => RetryOutcome::Held,
        })
    }

    /// Re-queue a connector's deliveries in `status` created in `[since, until)`, each with a
    /// fresh retry schedule; how many.
    pub async fn replay_deliveries(
        &self,
        account_id: &str,
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
            .bind(account_id)
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

    /// Due, held and failed deliveries of every connector, zeros included (a gauge that is
    /// no longer reported would keep its last value). Index probes per connector and status,
    /// so the cost follows the open and failed deliveries, not the whole history.
    pub async fn queue_depths(&self, now: i64) -> Result<Vec<QueueDepth>, StoreError> {
        Ok(on_db!(&self.reads, pool => {
            let rows = sqlx::query(DEPTHS).bind(now).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(QueueDepth {
                    account_id: row.try_get("account_id")?,
                    connector_name: row.try_get("connector_name")?,
                    due: row.try_get("due")?,
                    held: row.try_get("held")?,
                    failed: row.try_get("failed")?,
                });
            }
            out
        }))
    }
}
