//! PostgreSQL: a connection of its own for each of the three loops that write all the time —
//! the ingest writer, the claimer and the outcome recorder — held for the life of the store
//! instead of taken from the pool and given back at each write.
//!
//! Giving a connection back to sqlx's pool costs a round trip (it sends `Sync` and waits for
//! the answer, always: a third of all round trips with single events), and while that runs the
//! connection is neither in use nor free, so the next write opens another: a worker's pool grew
//! to 16 backends for four things at once, each backend parsing and planning every statement
//! for itself. A held connection does neither: each loop's statements run on one backend,
//! prepared once. A loop that is cancelled mid-statement leaves nothing behind that sqlx does
//! not drain before the next one (it waits for the pending `ReadyForQuery`, and a dropped
//! transaction's rollback goes out first); a write that fails drops the connection, and the
//! next one connects again.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, MutexGuard};

use crate::StoreError;

/// The loops that hold a connection. `Held::COUNT` connections at most, opened on first use
/// (an API node opens only the ingest writer's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hot {
    Ingest,
    Claim,
    Outcomes,
}

/// The claim and the outcome writes each find a batch of rows by key (`deliveries_due` in
/// order; `seq` for each outcome) and should never read a table whole. PostgreSQL's planner,
/// working from the statistics of a young, fast-growing `deliveries` table, chose otherwise in
/// the bench: outcome batches of a few hundred rows as a hash join over a sequential scan of
/// `deliveries` (2,400 buffers per write instead of 700), claims as a bitmap scan of every due
/// row, sorted, then limited (the whole backlog read at each claim; rows read per delivery
/// 365-400 instead of 14-21). Each of these connections runs only its loop's statements, so
/// its session settings steer just them: nested loops over indexes, and no bitmap scans for
/// the claim.
const BY_INDEX: [(&str, &str); 2] = [("enable_hashjoin", "off"), ("enable_mergejoin", "off")];
const NO_BITMAP_SCANS: [(&str, &str); 1] = [("enable_bitmapscan", "off")];

/// A claim commits without waiting for its WAL to reach the disk. Every claim is a commit of
/// its own, and with two workers the claims' fsyncs were the most common wait in PostgreSQL
/// (`IO:WALSync` and `LWLock:WALWrite` in `pg_stat_activity`). What a crash of the database can
/// lose is only its last claims (never an ingest or an outcome: those wait for the flush, and
/// it flushes every earlier claim with them): those deliveries are claimed and sent again, with
/// the same webhook-id, as after a node's crash; a package's order holds, since its next
/// delivery waits for this one's outcome.
const CLAIM_COMMIT: [(&str, &str); 1] = [("synchronous_commit", "off")];

/// How long opening a held connection may take (the pool's `acquire_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Held {
    options: PgConnectOptions,
    slots: [Mutex<Option<PgConnection>>; Held::COUNT],
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

impl Held {
    /// How many connections the loops may hold beside the pool.
    pub(crate) const COUNT: usize = 3;

    pub(crate) fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            slots: Default::default(),
        }
    }

    /// `hot`'s connection, opened if it has none; one user at a time (a second caller of the
    /// same loop, a test say, waits its turn).
    pub(crate) async fn take(&self, hot: Hot) -> Result<HeldConnection<'_>, StoreError> {
        let mut slot = self.slots[hot as usize].lock().await;
        if slot.is_none() {
            let options = match hot {
                Hot::Claim => self
                    .options
                    .clone()
                    .options(NO_BITMAP_SCANS)
                    .options(BY_INDEX)
                    .options(CLAIM_COMMIT),
                Hot::Outcomes => self.options.clone().options(BY_INDEX),
                Hot::Ingest => self.options.clone(),
            };
            // Bounded as the pool's acquire is: a database that does not answer fails the write
            // (its loop reports it and tries again) rather than holding the loop for minutes.
            let conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
            *slot = Some(conn);
        }
        Ok(HeldConnection { slot })
    }

    /// Close every held connection (the store is closing).
    pub(crate) async fn close(&self) {
        for slot in &self.slots {
            if let Some(conn) = slot.lock().await.take() {
                let _ = conn.close().await;
            }
        }
    }
}

/// A loop's connection while it writes.
pub(crate) struct HeldConnection<'a> {
    slot: MutexGuard<'a, Option<PgConnection>>,
}

impl HeldConnection<'_> {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.slot
            .as_mut()
            .expect("a held connection is open while taken")
    }

    /// What the write that used it returned: a failed write drops the connection (it may be
    /// broken; a fresh one costs a few milliseconds, and failures are rare).
    pub(crate) fn settle<T>(mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.slot.take();
        }
        result
    }
}

/// A write transaction on the connection of hot loop `$hot`: on SQLite the writer's
/// (`begin_write`), on PostgreSQL the loop's held one. `$body` ends in a `Result` whose error is
/// a `StoreError`; on PostgreSQL a `?` in it ends the body, not the function, and an error drops
/// the held connection.
macro_rules! in_hot_tx {
    ($store:expr, $hot:expr, $tx:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite(pool) => {
                let mut $tx = $crate::BeginWrite::begin_write(pool).await?;
                $body
            }
            $crate::Db::Postgres(_) => {
                let mut held = $store.held($hot).await?;
                let result = async {
                    let mut $tx = sqlx::Connection::begin(held.conn()).await?;
                    $body
                }
                .await;
                held.settle(result)
            }
        }
    };
}
pub(crate) use in_hot_tx;
