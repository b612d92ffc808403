//! Events, deliveries and attempts. Written in batches: ingest commits many requests in one
//! transaction (group commit), workers claim many due deliveries with one statement and
//! record many outcomes with one statement each for attempts and deliveries. Batches travel
//! as one JSON parameter (`json_each` / `json_array_elements`), so each statement has one
//! text whatever the batch size and stays in the prepared-statement cache.
//!
//! A claimed delivery stays `pending`; its `next_attempt_at` moves to the end of the lease
//! and `lease_token` names the claim. A node that dies leaves rows that simply fall due again.
//!
//! This module owns the records; each child adds the `Store` methods of one job: `ingest`
//! writes events and deliveries, `queue` claims them and records what became of them, `query`
//! reads them back (and re-queues them by hand).

use hookwarden_core::{
    AccountId, ConnectorId, ConnectorStatus, DeliveryId, DeliveryStatus, DiagnosisView, EventId,
};
use serde::Serialize;

use crate::multirow::{self, Dialect};
use crate::Store;

mod ingest;
mod query;
mod queue;

// What `testing::sqlite_query_plan` and `postgres_query_plan` explain: the statements whose plans tests check.
pub(crate) use query::{list_sql, DEPTHS};
pub(crate) use queue::pg_now_ms;
pub use queue::FailedDelivery;
pub(crate) use queue::{
    CLAIM_EXCLUDING_AND_READ_SQLITE, DEFER_CONNECTOR_DELIVERIES, HOLD_CONNECTOR_DELIVERIES,
    HOLD_INACTIVE_PG, RELEASE_CONNECTOR_DELIVERIES, RESUME_HELD_PG,
};

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub account_id: AccountId,
    pub name: String,
    pub origin: String,
    pub package_id: String,
    /// The receiver's body, exactly as it will be sent and signed.
    pub payload: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub account_id: AccountId,
    pub event_id: EventId,
    pub event_name: String,
    pub connector_id: ConnectorId,
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
    pub account_id: AccountId,
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
    pub id: DeliveryId,
    pub account_id: AccountId,
    pub event_id: EventId,
    pub event_name: String,
    pub connector_id: ConnectorId,
    pub connector_name: String,
    pub package_id: String,
    /// Attempts made before this claim.
    pub attempts: i64,
    pub created_at: i64,
    pub payload: String,
    pub lease_token: String,
}

/// One HTTP try, as recorded (and as read back, `AttemptRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewAttempt {
    pub delivery_id: DeliveryId,
    pub at: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    /// What the answer means and what to do, kept as its JSON text; an attempt recorded
    /// before diagnoses had codes reads back `unclassified`, its sentence as the cause.
    pub diagnosis: Option<DiagnosisView>,
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
    pub id: DeliveryId,
    pub account_id: AccountId,
    pub event_id: EventId,
    pub event_name: String,
    pub connector_id: ConnectorId,
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

/// An attempt as read back: what was written, field for field.
pub type AttemptRecord = NewAttempt;

/// `GET /api/deliveries` filters. Newest first; `before_seq` is the cursor.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub account_id: AccountId,
    pub connector_name: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub package_id: Option<String>,
    pub since_ms: Option<i64>,
    /// Created before this time.
    pub until_ms: Option<i64>,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// What the operator's gauges show of one connector: its queue (due, held and failed
/// deliveries, the oldest waiting one), its status and when its access token expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorGauges {
    pub account_id: AccountId,
    pub account_name: String,
    pub connector_name: String,
    pub status: ConnectorStatus,
    pub due: i64,
    pub held: i64,
    pub failed: i64,
    /// When the oldest `pending` delivery (due or waiting for a retry) was created.
    pub oldest_pending_at: Option<i64>,
    /// When the access token of its current credentials expires, if one is held.
    pub token_expires_at: Option<i64>,
}

/// What `retry_delivery` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    Queued,
    NotFound,
    InFlight,
    Held,
    /// Delivered already, and not `force`d.
    AlreadyDelivered,
}

// ---- SQL, per dialect where they differ. SQLite's `->>` yields typed values; PostgreSQL's
// yields text, hence the casts. In SQLite each row object is taken out of the batch once (the
// MATERIALIZED CTE): `j.value->>'x'` would render the row as JSON text again for every
// field, which was most of what these statements cost. ----

// What ingest and the outcomes share: the padded tails of their multi-row writes.

/// SQLite: `INSERT INTO {into} ...` for a padded tail of `rows` rows (see `multirow::Plan`);
/// a row whose first value is NULL is padding and is skipped.
fn insert_padded(into: &str, rows: usize, types: &[&str]) -> String {
    format!(
        "INSERT INTO {into} SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
        multirow::values(Dialect::Sqlite, rows, types, 1, false)
    )
}

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
// A path for the children to import it by (`use super::bind_nulls`).
use bind_nulls;

/// Two padded row counts (each at most `MAX_ROWS`) as one statement-cache key, and back.
fn pair_key(a: usize, b: usize) -> usize {
    a << 16 | b
}

fn from_pair_key(key: usize) -> (usize, usize) {
    (key >> 16, key & 0xffff)
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
}
