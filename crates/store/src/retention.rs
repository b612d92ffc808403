//! History retention: finished deliveries (delivered or failed), their attempts, their events,
//! Idempotency-Keys and the token engine's calls older than a cutoff are removed in small
//! chunks, each one short write transaction, so the database stops growing with every event
//! ever sent. Pending and held deliveries are never removed, whatever their age, nor the events
//! they will send; nor are a connector's latest token calls, which say why it is in its state.

use sqlx::Row;

use crate::{on_db, BeginWrite, Store, StoreError};

/// What one `prune_history` call removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub attempts: u64,
    pub events: u64,
    pub idempotency_keys: u64,
    /// Entries of the token engine's history (grants, refreshes, revocations, tests).
    pub token_calls: u64,
}

impl Pruned {
    pub fn add(&mut self, other: Pruned) {
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.events += other.events;
        self.idempotency_keys += other.idempotency_keys;
        self.token_calls += other.token_calls;
    }
}

/// Events are cut an hour before the deliveries' cutoff: an event's id is made a moment before
/// its deliveries' rows, so every event that old has all of its deliveries older than the
/// cutoff, where they are either removed already or kept (and keep it) because still open.
const EVENT_MARGIN_MS: i64 = 3_600_000;

/// Deliveries are numbered (`seq`) as they are written, so their creation times rise with
/// `seq`: the first one created at or after the cutoff is found by a binary search over `seq`
/// (some 40 point lookups however large the table), and everything before it is older.
const SEQ_RANGE: &str = "SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM deliveries";
const FIRST_FROM: &str =
    "SELECT seq, created_at FROM deliveries WHERE seq >= $1 ORDER BY seq LIMIT 1";
/// `created_at` too: should the clock have stepped back, a row before the boundary may be new.
const FINISHED: &str = "SELECT seq, id FROM deliveries WHERE seq < $1 AND created_at < $2 \
     AND status IN ('delivered', 'failed') ORDER BY seq LIMIT $3";
/// Event ids are `evt_` and a UUIDv7, whose first 12 hex digits are its time in milliseconds:
/// the id bound keeps the scan to old events, `created_at` decides. An event that an open old
/// delivery still needs stays.
const OLD_EVENTS: &str = "SELECT id FROM events WHERE id < $1 AND created_at < $2 \
     AND id NOT IN (SELECT event_id FROM deliveries WHERE seq < $3) ORDER BY id LIMIT $4";
const OLD_KEYS: &str = "DELETE FROM idempotency_keys WHERE (account_id, idem_key) IN \
     (SELECT account_id, idem_key FROM idempotency_keys WHERE created_at < $1 \
      ORDER BY created_at LIMIT $2)";

/// A connector's newest token calls stay however old: a connector broken for longer than the
/// retention still shows why.
pub const KEPT_TOKEN_CALLS: i64 = 20;
/// History ids are `his_` and a UUIDv7, like events'.
const OLD_CALLS: &str = "DELETE FROM history WHERE id IN (SELECT h.id FROM history h \
     WHERE h.id < $1 AND h.at < $2 AND h.id NOT IN (SELECT k.id FROM history k \
       WHERE k.connector_id = h.connector_id ORDER BY k.id DESC LIMIT $3) \
     ORDER BY h.id LIMIT $4)";

impl Store {
    /// Remove up to `chunk` finished deliveries created before `cutoff_ms` with their attempts,
    /// then (once no finished delivery that old is left) up to `chunk` events older than the
    /// cutoff that no open delivery needs, up to `chunk` Idempotency-Keys older than it, and up
    /// to `chunk` token calls older than it beyond each connector's newest `KEPT_TOKEN_CALLS`.
    /// Returns what went and whether more is left; call it again (each call is one
    /// transaction) until it says no.
    pub async fn prune_history(
        &self,
        cutoff_ms: i64,
        chunk: i64,
    ) -> Result<(Pruned, bool), StoreError> {
        let event_cut = format!("evt_{:012x}", (cutoff_ms - EVENT_MARGIN_MS).max(0));
        let call_cut = format!("his_{:012x}", cutoff_ms.max(0));
        let mut pruned = Pruned::default();
        let more;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let range = sqlx::query(SEQ_RANGE).fetch_one(&mut *tx).await?;
            let (lo, hi): (Option<i64>, Option<i64>) = (range.try_get("lo")?, range.try_get("hi")?);
            // Invariant: every row before `lo` is older than the cutoff, none from `hi` on is.
            let (mut lo, mut hi) = (lo.unwrap_or(0), hi.map_or(0, |h| h + 1));
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let first = sqlx::query(FIRST_FROM).bind(mid).fetch_optional(&mut *tx).await?;
                match first {
                    Some(row) if row.try_get::<i64, _>("created_at")? < cutoff_ms => {
                        lo = row.try_get::<i64, _>("seq")? + 1;
                    }
                    // No row in [mid, that row's seq): the boundary is at most mid.
                    _ => hi = mid,
                }
            }
            let boundary = lo;
            let rows = sqlx::query(FINISHED)
                .bind(boundary)
                .bind(cutoff_ms)
                .bind(chunk)
                .fetch_all(&mut *tx)
                .await?;
            let mut seqs = Vec::with_capacity(rows.len());
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                seqs.push(row.try_get::<i64, _>("seq")?);
                ids.push(row.try_get::<String, _>("id")?);
            }
            if !ids.is_empty() {
                let ids = serde_json::to_string(&ids).expect("strings serialise");
                let seqs = serde_json::to_string(&seqs).expect("numbers serialise");
                pruned.attempts = sqlx::query(self.pick(
                    "DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each($1))",
                    "DELETE FROM attempts WHERE delivery_id IN (SELECT json_array_elements_text($1::json))",
                ))
                .bind(&ids)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                pruned.deliveries = sqlx::query(self.pick(
                    "DELETE FROM deliveries WHERE seq IN (SELECT value FROM json_each($1))",
                    "DELETE FROM deliveries WHERE seq IN (SELECT json_array_elements_text($1::json)::bigint)",
                ))
                .bind(&seqs)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            // The rest only once the old deliveries are done: events wait for theirs to go,
            // and the other tables are not scanned again with every chunk of a backlog.
            if (rows.len() as i64) < chunk {
                let old: Vec<String> = sqlx::query_scalar(OLD_EVENTS)
                    .bind(&event_cut)
                    .bind(cutoff_ms - EVENT_MARGIN_MS)
                    .bind(boundary)
                    .bind(chunk)
                    .fetch_all(&mut *tx)
                    .await?;
                if !old.is_empty() {
                    let json = serde_json::to_string(&old).expect("strings serialise");
                    pruned.events = sqlx::query(self.pick(
                        "DELETE FROM events WHERE id IN (SELECT value FROM json_each($1))",
                        "DELETE FROM events WHERE id IN (SELECT json_array_elements_text($1::json))",
                    ))
                    .bind(&json)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                pruned.idempotency_keys = sqlx::query(OLD_KEYS)
                    .bind(cutoff_ms)
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                pruned.token_calls = sqlx::query(OLD_CALLS)
                    .bind(&call_cut)
                    .bind(cutoff_ms)
                    .bind(KEPT_TOKEN_CALLS)
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                more = old.len() as i64 >= chunk
                    || pruned.idempotency_keys as i64 >= chunk
                    || pruned.token_calls as i64 >= chunk;
            } else {
                more = true;
            }
            tx.commit().await?;
        });
        Ok((pruned, more))
    }
}
