//! Events, deliveries and attempts. Written in batches: ingest commits many requests in one
//! transaction (group commit), workers claim many due deliveries with one statement and
//! record many outcomes in one transaction. How a batch's rows are bound (arrays on
//! PostgreSQL, multi-row VALUES on SQLite) is `rows`'s job.
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

use crate::Store;

mod ingest;
mod query;
mod queue;
mod rows;

// What `testing::sqlite_query_plan` and `postgres_query_plan` explain: the statements whose plans tests check.
pub(crate) use query::{list_sql, DEPTHS};
pub(crate) use queue::pg_now_ms;
pub use queue::FailedDelivery;
pub(crate) use queue::{
    CLAIM_EXCLUDING_AND_READ_SQLITE, CLAIM_PG, DEFER_CONNECTOR_DELIVERIES,
    HOLD_CONNECTOR_DELIVERIES, HOLD_INACTIVE_PG, RELEASE_CONNECTOR_DELIVERIES, RESUME_HELD_PG,
};
pub(crate) use rows::COMPLETE_PG;

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

impl Store {
    /// The statement text of this store's database.
    pub(crate) fn pick(&self, sqlite: &'static str, pg: &'static str) -> &'static str {
        if self.is_postgres() {
            pg
        } else {
            sqlite
        }
    }
}
