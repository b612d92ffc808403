//! How a batch of rows reaches its tables, per database. PostgreSQL: one statement per table
//! whatever the batch's size, its columns bound as arrays and read back by `unnest ... WITH
//! ORDINALITY` in the batch's order (rows keep their order in `seq` and `attempts.id`).
//! SQLite: multi-row `VALUES` in chunks of `multirow::MAX_ROWS`, and the tails of both tables
//! padded to a power of two in one statement text (one call into SQLite's thread).
//!
//! On PostgreSQL a batch went out in power-of-two chunks too (`multirow::chunks`, since removed): an ingest
//! group of 11 events was 8 + 2 + 1, three INSERTs per table, each a round trip; with single
//! events posted alone, 0.089 `INSERT INTO deliveries` per delivery where there were 0.028
//! ingest groups, and the same for events, attempts and completions.

use hookwarden_core::DiagnosisView;

use super::{Completion, NewAttempt, NewDelivery, NewEvent};
use crate::multirow;
use crate::StoreError;

/// Writing the rows of one ingest group and of one batch of outcomes, inside the caller's
/// transaction.
pub(super) trait WriteRows {
    async fn insert_ingest_rows(
        &mut self,
        events: &[&NewEvent],
        deliveries: &[&NewDelivery],
    ) -> Result<(), StoreError>;

    /// Attempts, then the completions (a completion whose lease token no longer matches
    /// changes nothing); `now` is their `updated_at`.
    async fn write_outcome_rows(
        &mut self,
        completions: &[Completion],
        attempts: &[NewAttempt],
        now: i64,
    ) -> Result<(), StoreError>;
}

const INSERT_EVENTS_PG: &str =
    "INSERT INTO events (id, account_id, name, origin, package_id, payload, created_at) \
     SELECT i, a, n, o, p, b, c FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
       $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY AS v(i, a, n, o, p, b, c, k) \
     ORDER BY k";
/// `next_attempt_at` and `updated_at` are `created_at`.
const INSERT_DELIVERIES_PG: &str =
    "INSERT INTO deliveries (id, account_id, event_id, event_name, connector_id, connector_name, \
       package_id, order_key, status, next_attempt_at, created_at, updated_at) \
     SELECT i, a, e, en, ci, cn, p, ok, s, c, c, c FROM unnest($1::text[], $2::text[], \
       $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
       $10::bigint[]) WITH ORDINALITY AS v(i, a, e, en, ci, cn, p, ok, s, c, k) \
     ORDER BY k";
const INSERT_ATTEMPTS_PG: &str =
    "INSERT INTO attempts (delivery_id, at, status_code, duration_ms, response_excerpt, error, \
       diagnosis, refreshed) \
     SELECT d, t, sc, ms, x, er, dg, r FROM unnest($1::text[], $2::bigint[], $3::bigint[], \
       $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[]) \
       WITH ORDINALITY AS v(d, t, sc, ms, x, er, dg, r, k) \
     ORDER BY k";
pub(crate) const COMPLETE_PG: &str =
    "UPDATE deliveries SET status = v.s, attempts = deliveries.attempts + v.a, \
       next_attempt_at = v.n, lease_token = NULL, last_error = v.e, updated_at = $7 \
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
       AS v(q, t, s, a, n, e) \
     WHERE deliveries.seq = v.q AND deliveries.lease_token = v.t";

impl WriteRows for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn insert_ingest_rows(
        &mut self,
        events: &[&NewEvent],
        deliveries: &[&NewDelivery],
    ) -> Result<(), StoreError> {
        if !events.is_empty() {
            let col = |f: fn(&NewEvent) -> &str| events.iter().map(|e| f(e)).collect::<Vec<_>>();
            sqlx::query(INSERT_EVENTS_PG)
                .bind(col(|e| e.id.as_str()))
                .bind(col(|e| e.account_id.as_str()))
                .bind(col(|e| &e.name))
                .bind(col(|e| &e.origin))
                .bind(col(|e| &e.package_id))
                .bind(col(|e| &e.payload))
                .bind(events.iter().map(|e| e.created_at).collect::<Vec<_>>())
                .execute(&mut **self)
                .await?;
        }
        if !deliveries.is_empty() {
            let col =
                |f: fn(&NewDelivery) -> &str| deliveries.iter().map(|d| f(d)).collect::<Vec<_>>();
            sqlx::query(INSERT_DELIVERIES_PG)
                .bind(col(|d| d.id.as_str()))
                .bind(col(|d| d.account_id.as_str()))
                .bind(col(|d| d.event_id.as_str()))
                .bind(col(|d| &d.event_name))
                .bind(col(|d| d.connector_id.as_str()))
                .bind(col(|d| &d.connector_name))
                .bind(col(|d| &d.package_id))
                .bind(
                    deliveries
                        .iter()
                        .map(|d| d.order_key.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(col(|d| d.status.as_str()))
                .bind(deliveries.iter().map(|d| d.created_at).collect::<Vec<_>>())
                .execute(&mut **self)
                .await?;
        }
        Ok(())
    }

    async fn write_outcome_rows(
        &mut self,
        completions: &[Completion],
        attempts: &[NewAttempt],
        now: i64,
    ) -> Result<(), StoreError> {
        if !attempts.is_empty() {
            let text = |f: fn(&NewAttempt) -> Option<&str>| {
                attempts.iter().map(f).collect::<Vec<Option<&str>>>()
            };
            let number =
                |f: fn(&NewAttempt) -> Option<i64>| attempts.iter().map(f).collect::<Vec<_>>();
            sqlx::query(INSERT_ATTEMPTS_PG)
                .bind(
                    attempts
                        .iter()
                        .map(|a| a.delivery_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(number(|a| Some(a.at)))
                .bind(number(|a| a.status_code))
                .bind(number(|a| Some(a.duration_ms)))
                .bind(text(|a| a.response_excerpt.as_deref()))
                .bind(text(|a| a.error.as_deref()))
                .bind(
                    attempts
                        .iter()
                        .map(|a| a.diagnosis.as_ref().map(DiagnosisView::to_stored))
                        .collect::<Vec<_>>(),
                )
                .bind(number(|a| Some(i64::from(a.refreshed))))
                .execute(&mut **self)
                .await?;
        }
        if !completions.is_empty() {
            sqlx::query(COMPLETE_PG)
                .bind(completions.iter().map(|c| c.seq).collect::<Vec<_>>())
                .bind(
                    completions
                        .iter()
                        .map(|c| c.lease_token.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    completions
                        .iter()
                        .map(|c| c.status.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    completions
                        .iter()
                        .map(|c| c.attempts_added)
                        .collect::<Vec<_>>(),
                )
                .bind(
                    completions
                        .iter()
                        .map(|c| c.next_attempt_at)
                        .collect::<Vec<_>>(),
                )
                .bind(
                    completions
                        .iter()
                        .map(|c| c.last_error.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(now)
                .execute(&mut **self)
                .await?;
        }
        Ok(())
    }
}

// ---- SQLite ----

/// SQLite: `INSERT INTO {into} ...` for a padded tail of `rows` rows (see `multirow::Plan`);
/// a row whose first value is NULL is padding and is skipped.
fn insert_padded(into: &str, rows: usize, types: &[&str]) -> String {
    format!(
        "INSERT INTO {into} SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
        multirow::values(rows, types.len())
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

/// Two padded row counts (each at most `MAX_ROWS`) as one statement-cache key, and back.
fn pair_key(a: usize, b: usize) -> usize {
    a << 16 | b
}

fn from_pair_key(key: usize) -> (usize, usize) {
    (key >> 16, key & 0xffff)
}

const EVENT_TYPES: &[&str] = &["TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT"];
const DELIVERY_TYPES: &[&str] = &[
    "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT",
    "BIGINT",
];
const COMPLETION_TYPES: &[&str] = &["BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT"];
const ATTEMPT_TYPES: &[&str] = &[
    "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT",
];

const EVENTS_INTO: &str = "events (id, account_id, name, origin, package_id, payload, created_at)";
const DELIVERIES_INTO: &str = "deliveries (id, account_id, event_id, event_name, connector_id, \
     connector_name, package_id, order_key, status, next_attempt_at, created_at, updated_at)";
const ATTEMPTS_INTO: &str = "attempts (delivery_id, at, status_code, duration_ms, \
     response_excerpt, error, diagnosis, refreshed)";

fn insert_rows(into: &'static str, types: &'static [&'static str], rows: usize) -> String {
    format!(
        "INSERT INTO {into} VALUES {}",
        multirow::values(rows, types.len())
    )
}

/// The rows, then the time. A completion whose lease token no longer matches (the lease ran
/// out and another claim took it) changes nothing.
fn complete(rows: usize) -> String {
    format!(
        "WITH v(q, t, s, a, n, e) AS (VALUES {}) \
         UPDATE deliveries SET status = v.s, attempts = deliveries.attempts + v.a, \
         next_attempt_at = v.n, lease_token = NULL, last_error = v.e, updated_at = ? \
         FROM v WHERE deliveries.seq = v.q AND deliveries.lease_token = v.t",
        multirow::values(rows, COMPLETION_TYPES.len())
    )
}

/// The tails of one ingest transaction, events then deliveries, as one text.
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

/// The tails of one outcome transaction, attempts then completions (whose padding rows match
/// no delivery), then the time, as one text.
fn outcome_tail(key: usize) -> String {
    let (attempts, completions) = from_pair_key(key);
    let mut parts = Vec::new();
    if attempts > 0 {
        parts.push(insert_padded(ATTEMPTS_INTO, attempts, ATTEMPT_TYPES));
    }
    if completions > 0 {
        parts.push(complete(completions));
    }
    parts.join("; ")
}

macro_rules! bind_event {
    ($q:expr, $e:expr) => {{
        let e = $e;
        $q.bind(e.id.as_str())
            .bind(e.account_id.as_str())
            .bind(&e.name)
            .bind(&e.origin)
            .bind(&e.package_id)
            .bind(&e.payload)
            .bind(e.created_at)
    }};
}

macro_rules! bind_delivery {
    ($q:expr, $d:expr) => {{
        let d = $d;
        $q.bind(d.id.as_str())
            .bind(d.account_id.as_str())
            .bind(d.event_id.as_str())
            .bind(&d.event_name)
            .bind(d.connector_id.as_str())
            .bind(&d.connector_name)
            .bind(&d.package_id)
            .bind(d.order_key.as_deref())
            .bind(d.status.as_str())
            .bind(d.created_at)
            .bind(d.created_at)
            .bind(d.created_at)
    }};
}

macro_rules! bind_attempt {
    ($q:expr, $a:expr) => {{
        let a = $a;
        $q.bind(a.delivery_id.as_str())
            .bind(a.at)
            .bind(a.status_code)
            .bind(a.duration_ms)
            .bind(a.response_excerpt.as_deref())
            .bind(a.error.as_deref())
            .bind(a.diagnosis.as_ref().map(DiagnosisView::to_stored))
            .bind(i64::from(a.refreshed))
    }};
}

macro_rules! bind_completion {
    ($q:expr, $c:expr) => {{
        let c = $c;
        $q.bind(c.seq)
            .bind(&c.lease_token)
            .bind(c.status.as_str())
            .bind(c.attempts_added)
            .bind(c.next_attempt_at)
            .bind(c.last_error.as_deref())
    }};
}

impl WriteRows for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn insert_ingest_rows(
        &mut self,
        events: &[&NewEvent],
        deliveries: &[&NewDelivery],
    ) -> Result<(), StoreError> {
        let (event_plan, delivery_plan) = (
            multirow::plan(events.len()),
            multirow::plan(deliveries.len()),
        );
        for chunk in event_plan.full {
            let sql = multirow::statement("insert_events", chunk.len(), |n| {
                insert_rows(EVENTS_INTO, EVENT_TYPES, n)
            });
            let mut q = sqlx::query(sql);
            for e in &events[chunk] {
                q = bind_event!(q, e);
            }
            q.execute(&mut **self).await?;
        }
        for chunk in delivery_plan.full {
            let sql = multirow::statement("insert_deliveries", chunk.len(), |n| {
                insert_rows(DELIVERIES_INTO, DELIVERY_TYPES, n)
            });
            let mut q = sqlx::query(sql);
            for d in &deliveries[chunk] {
                q = bind_delivery!(q, d);
            }
            q.execute(&mut **self).await?;
        }
        let (event_tail, delivery_tail) = (event_plan.tail, delivery_plan.tail);
        if !event_tail.is_empty() || !delivery_tail.is_empty() {
            let (pe, pd) = (
                multirow::padded(event_tail.len()),
                multirow::padded(delivery_tail.len()),
            );
            let sql = multirow::statement("ingest_tail", pair_key(pe, pd), ingest_tail);
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
            q.execute(&mut **self).await?;
        }
        Ok(())
    }

    async fn write_outcome_rows(
        &mut self,
        completions: &[Completion],
        attempts: &[NewAttempt],
        now: i64,
    ) -> Result<(), StoreError> {
        let (attempt_plan, completion_plan) = (
            multirow::plan(attempts.len()),
            multirow::plan(completions.len()),
        );
        for chunk in attempt_plan.full {
            let sql = multirow::statement("insert_attempts", chunk.len(), |n| {
                insert_rows(ATTEMPTS_INTO, ATTEMPT_TYPES, n)
            });
            let mut q = sqlx::query(sql);
            for a in &attempts[chunk] {
                q = bind_attempt!(q, a);
            }
            q.execute(&mut **self).await?;
        }
        for chunk in completion_plan.full {
            let sql = multirow::statement("complete", chunk.len(), complete);
            let mut q = sqlx::query(sql);
            for c in &completions[chunk] {
                q = bind_completion!(q, c);
            }
            q.bind(now).execute(&mut **self).await?;
        }
        let (attempt_tail, completion_tail) = (attempt_plan.tail, completion_plan.tail);
        if !attempt_tail.is_empty() || !completion_tail.is_empty() {
            let (pa, pc) = (
                multirow::padded(attempt_tail.len()),
                multirow::padded(completion_tail.len()),
            );
            let sql = multirow::statement("outcome_tail", pair_key(pa, pc), outcome_tail);
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
            q.execute(&mut **self).await?;
        }
        Ok(())
    }
}
