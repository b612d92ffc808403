//! The maintenance loop: re-checks held deliveries against their connector's status, fails
//! deliveries of deleted connectors, forgets idle lanes, removes history past its retention,
//! and reports queue depths.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use hookwarden_store::{Pruned, StoreError};
use tokio::sync::watch;

use super::metrics;
use super::workers::Workers;
use super::TokenSource;

/// Deliveries history retention removes per write transaction: about 20 ms of SQLite's time
/// (removing a delivery costs about what writing it did), so the ingest and the outcomes
/// waiting at the write gate are held up that long at most.
const PRUNE_CHUNK: i64 = 500;
/// How long one retention pass may go on; what is left waits for the next pass.
const PRUNE_PASS_BUDGET: Duration = Duration::from_secs(30);
/// Maintenance ticks between retention passes, and before the first one.
const PRUNE_EVERY_TICKS: u64 = 60;
const PRUNE_FIRST_TICK: u64 = 60;

/// Maintenance ticks between heartbeats (PostgreSQL): a joining or leaving node changes the
/// others' shares within this many ticks (2 s at the default tick), well inside a node's TTL.
const HEARTBEAT_EVERY_TICKS: u64 = 2;

/// One tick every `maintenance_every` until stopped: held deliveries each tick, queue depths
/// every 5th, deleted connectors and idle lanes every 30th, retention every `PRUNE_EVERY_TICKS`.
pub(super) async fn maintenance_loop<T: TokenSource>(
    inner: Arc<Workers<T>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.opts.maintenance_every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        tick += 1;
        if tick.is_multiple_of(HEARTBEAT_EVERY_TICKS) {
            inner.heartbeat().await;
        }
        if let Err(e) = inner.maintain_held().await {
            tracing::warn!(error = %e, "re-checking held deliveries failed");
        }
        if tick.is_multiple_of(30) {
            let failed = inner.fail_orphaned().await;
            match failed {
                Ok(n) if n > 0 => {
                    tracing::info!(failed = n, "deliveries of deleted connectors failed")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "failing deliveries of deleted connectors failed")
                }
            }
            inner.prune_lanes();
        }
        if tick >= PRUNE_FIRST_TICK && (tick - PRUNE_FIRST_TICK).is_multiple_of(PRUNE_EVERY_TICKS) {
            match inner.prune_history().await {
                Ok(p) if p != Pruned::default() => tracing::info!(
                    deliveries = p.deliveries,
                    attempts = p.attempts,
                    events = p.events,
                    idempotency_keys = p.idempotency_keys,
                    token_calls = p.token_calls,
                    "history older than the retention removed"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "removing old history failed; it is tried again at the next pass")
                }
            }
        }
        if tick % 5 == 1 {
            if let Err(e) = inner.publish_gauges().await {
                tracing::warn!(error = %e, "reading the connectors' gauges failed");
            }
        }
    }
}

impl<T: TokenSource> Workers<T> {
    /// Every connector's gauges, and the account names the other metrics' labels use.
    pub(super) async fn publish_gauges(&self) -> Result<(), StoreError> {
        let now = self.now();
        let gauges = self.store.connector_gauges(now).await?;
        self.learn_account_names(&gauges);
        for g in &gauges {
            metrics::connector(g, now);
        }
        Ok(())
    }

    /// Re-checks held deliveries against their connector's status, and wakes the claimer for
    /// those due again.
    pub(super) async fn maintain_held(&self) -> Result<(), StoreError> {
        let (resumed, _) = {
            let _turn = self.writes.enter().await;
            self.store.sync_held_deliveries(self.now()).await?
        };
        if resumed > 0 {
            tracing::info!(resumed, "held deliveries are due again");
            self.hub.wake_all_nodes().await;
        }
        Ok(())
    }

    /// Deliveries left behind by a connector deleted while they were released or ingested:
    /// found without the write gate, failed (rarely) under it.
    async fn fail_orphaned(&self) -> Result<u64, StoreError> {
        let mut failed = 0;
        for connector_id in self.store.orphaned_connectors().await? {
            let _turn = self.writes.enter().await;
            failed += self
                .store
                .fail_connector_deliveries(&connector_id, "connector_deleted", self.now())
                .await?;
        }
        Ok(failed)
    }

    pub(super) async fn prune_history(&self) -> Result<Pruned, StoreError> {
        let mut total = Pruned::default();
        if self.retention_days == 0 {
            return Ok(total);
        }
        let cutoff = self.now() - i64::from(self.retention_days) * 86_400_000;
        let started = std::time::Instant::now();
        loop {
            let (pruned, more) = {
                let _turn = self.writes.enter().await;
                self.store.prune_history(cutoff, PRUNE_CHUNK).await?
            };
            total.add(pruned);
            if !more || started.elapsed() > PRUNE_PASS_BUDGET {
                break;
            }
            // Let the ingest and the outcomes waiting at the write gate have their turn.
            tokio::task::yield_now().await;
        }
        metrics::history_pruned(&total);
        Ok(total)
    }

    /// Forgets the lanes of connectors with nothing claimed here and no breaker open.
    fn prune_lanes(&self) {
        let now = self.now();
        self.lanes.lock().expect("lanes lock").retain(|_, lane| {
            lane.owned.load(AtomicOrdering::Relaxed) > 0 || lane.open_until(now).is_some()
        });
    }
}
