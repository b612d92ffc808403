//! The WAL checkpoints of a SQLite file, run in the background beside the writers.

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::SqlitePool;

use crate::WriteGate;

/// Copy the WAL back into the database file from a connection of its own, a few times a
/// second. SQLite's own automatic checkpoint runs inside the commit that crosses its threshold,
/// and so stalls that writer, and every request queued behind it, for the whole copy (tens of
/// milliseconds at a thousand pages); a PASSIVE checkpoint beside the writers waits for none of
/// them. Under constant writes a passive checkpoint never catches up with the last frame, and
/// the WAL only starts over from its beginning once one has. So past `CATCH_UP_AT` frames,
/// after up to `CATCH_UP_PASSES` more passes beside the writers (each copying what came in
/// during the one before), one more passive checkpoint runs with the writers held back at the
/// write gate, to copy the few frames left and let the next write start the file over; and should the WAL
/// still grow past `RESTART_AT` frames (256 MiB), a RESTART checkpoint waits for readers too.
/// That one waits in SQLite's busy handler, in naps of up to 100 ms, while the writers wait
/// for it, hence only as the bound. Ends when the pool is closed (or its runtime with it).
pub(crate) fn checkpoint_in_background(pool: SqlitePool, writes: Arc<WriteGate>) {
    const EVERY: Duration = Duration::from_millis(200);
    // 64 MiB of frames: each catch-up holds every writer back for 5–10 ms, and at 4,000
    // frames it came every third checkpoint under load; this makes it several times rarer.
    const CATCH_UP_AT: i64 = 16_000;
    const RESTART_AT: i64 = 65_536;
    const CATCH_UP_PASSES: usize = 4;
    const QUICK_PASS: Duration = Duration::from_millis(3);
    /// (busy, frames in the WAL, frames copied) and how long the pass took.
    async fn passive_checkpoint(
        pool: &SqlitePool,
    ) -> Result<((i64, i64, i64), Duration), sqlx::Error> {
        let started = std::time::Instant::now();
        let counts = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
        Ok((counts, started.elapsed()))
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            if pool.is_closed() {
                return;
            }
            let mut passive = passive_checkpoint(&pool).await;
            // Before holding the writers back, copy what they wrote during the last pass, in
            // more passes beside them while a pass still has much to copy: the catch-up then
            // copies a few hundred frames instead of the tens of milliseconds of writes that
            // came in while the first pass ran (held 5–67 ms, median 13, in the bench; with
            // these passes 0–16 ms, median 7).
            for _ in 0..CATCH_UP_PASSES {
                match &passive {
                    Ok(((_, frames, _), took)) if *frames >= CATCH_UP_AT && *took >= QUICK_PASS => {
                        passive = passive_checkpoint(&pool).await;
                    }
                    _ => break,
                }
            }
            let result = match passive.map(|(counts, _)| counts) {
                Ok((_, frames, _)) if frames >= CATCH_UP_AT => {
                    let mode = if frames >= RESTART_AT {
                        "PRAGMA wal_checkpoint(RESTART)"
                    } else {
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    };
                    let _turn = writes.enter().await;
                    sqlx::query(mode).execute(&pool).await.map(drop)
                }
                other => other.map(drop),
            };
            if let Err(e) = result {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "WAL checkpoint failed; trying again shortly");
            }
        }
    });
}
