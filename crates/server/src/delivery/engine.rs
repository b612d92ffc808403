//! The engine of one node: `run_once` and `run_until_idle` drive it a batch at a time (tests),
//! `spawn` runs the claimer, the recorder and the maintenance loop until `shutdown`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookwarden_store::{Pruned, StoreError};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::claim::claim_loop;
use super::http::DeliveryClient;
use super::ingest::Hub;
use super::maintenance::maintenance_loop;
use super::options::EngineOptions;
use super::outcome::{Outcome, OutcomeKind};
use super::record::record_loop;
use super::workers::Workers;
use super::TokenSource;
use crate::config::Settings;

/// How long shutdown waits for the recorder to write the last outcomes.
const RECORDER_DRAIN: Duration = Duration::from_secs(10);

/// What one `run_once` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
    pub held: usize,
    /// Claims given back unattempted (breaker open, connector saturated, token endpoint down).
    pub released: usize,
}

/// The delivery engine of one node.
pub struct Engine<T: TokenSource> {
    inner: Arc<Workers<T>>,
}

impl<T: TokenSource> Clone for Engine<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// A running engine; `shutdown` stops it gracefully.
pub struct EngineHandle {
    stop: watch::Sender<bool>,
    claimer: JoinHandle<()>,
    recorder: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    finish: Box<dyn FnOnce(JoinHandle<()>) -> futures::future::BoxFuture<'static, ()> + Send>,
}

impl EngineHandle {
    /// Stop claiming, let in-flight attempts finish (up to the grace period), record their
    /// outcomes, and give back what is still claimed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.claimer.await;
        let _ = self.maintenance.await;
        (self.finish)(self.recorder).await;
    }
}

impl<T: TokenSource> Engine<T> {
    pub fn new(
        hub: Arc<Hub>,
        settings: &Settings,
        tokens: T,
        opts: EngineOptions,
    ) -> Result<Self, reqwest::Error> {
        let http = DeliveryClient::new(
            settings.address_policy.clone(),
            settings.allow_insecure_http,
            opts.connect_timeout,
        )?;
        Ok(Self {
            inner: Arc::new(Workers {
                store: hub.store().clone(),
                writes: hub.write_gate(),
                hub,
                tokens,
                http,
                opts,
                lanes: Mutex::new(HashMap::new()),
                ordered: Mutex::new(HashSet::new()),
                owned: AtomicUsize::new(0),
                capacity: Notify::new(),
                lane_drained: Notify::new(),
                node: uuid::Uuid::new_v4().simple().to_string(),
                batches: AtomicU64::new(0),
                retention_days: settings.history_retention_days,
                account_names: Mutex::default(),
            }),
        })
    }

    /// One pass of history retention (the maintenance task runs one a minute):
    /// finished deliveries older than `history_retention_days`, their attempts and events,
    /// and old Idempotency-Keys, removed a chunk per write transaction.
    pub async fn prune_history(&self) -> Result<Pruned, StoreError> {
        self.inner.prune_history().await
    }

    /// Set the operator's gauges of every connector (queue depths, status, token expiry, the
    /// oldest pending delivery's age); the maintenance task does it every 5 s.
    pub async fn publish_gauges(&self) -> Result<(), StoreError> {
        self.inner.publish_gauges().await
    }

    /// Claim one batch, run every delivery in it to its outcome, and record the outcomes.
    /// Tests call this to drain the queue deterministically (with an `OffsetClock`).
    pub async fn run_once(&self) -> Result<RunReport, StoreError> {
        let inner = &self.inner;
        inner.maintain_held().await?;
        let rows = inner.claim(inner.opts.batch_size).await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tasks = inner.dispatch(rows, &tx).await;
        drop(tx);
        for task in tasks {
            let _ = task.await;
        }
        let mut outcomes = Vec::new();
        while let Ok(o) = rx.try_recv() {
            outcomes.push(o);
        }
        let mut report = RunReport {
            claimed: outcomes.len(),
            ..RunReport::default()
        };
        for o in &outcomes {
            match o.kind {
                OutcomeKind::Delivered => report.delivered += 1,
                OutcomeKind::Retry => report.retried += 1,
                OutcomeKind::Failed => report.failed += 1,
                OutcomeKind::Held => report.held += 1,
                OutcomeKind::Released => report.released += 1,
            }
        }
        inner.record(&outcomes).await?;
        Ok(report)
    }

    /// `run_once` until a batch claims nothing; the summed report.
    pub async fn run_until_idle(&self) -> Result<RunReport, StoreError> {
        let mut total = RunReport::default();
        loop {
            let r = self.run_once().await?;
            if r.claimed == 0 {
                return Ok(total);
            }
            total.claimed += r.claimed;
            total.delivered += r.delivered;
            total.retried += r.retried;
            total.failed += r.failed;
            total.held += r.held;
            total.released += r.released;
        }
    }

    /// Start the claimer, the recorder and the maintenance loop.
    pub async fn spawn(self) -> Result<EngineHandle, StoreError> {
        let inner = self.inner.clone();
        if !inner.store.is_postgres() {
            // One SQLite database has one node: every lease in it belongs to a process that
            // is gone (crash, kill -9), so those deliveries are due now, not at lease end.
            let released = inner.store.release_all_leases(inner.now()).await?;
            if released > 0 {
                tracing::info!(
                    released,
                    "deliveries claimed by a previous process are due again"
                );
            }
        }
        // Before the first claim: this node's share of each connector's limits.
        inner.heartbeat().await;
        let (stop, stop_rx) = watch::channel(false);
        let (sink, rx) = mpsc::unbounded_channel::<Outcome>();
        let recorder = tokio::spawn(record_loop(inner.clone(), rx));
        let claimer = tokio::spawn(claim_loop(inner.clone(), sink, stop_rx.clone()));
        let maintenance = tokio::spawn(maintenance_loop(inner.clone(), stop_rx));
        let finisher = inner.clone();
        let finish = Box::new(move |recorder: JoinHandle<()>| {
            let inner = finisher;
            Box::pin(async move {
                let deadline = tokio::time::Instant::now() + inner.opts.shutdown_grace;
                while inner.owned.load(AtomicOrdering::SeqCst) > 0
                    && tokio::time::Instant::now() < deadline
                {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(50), inner.capacity.notified())
                            .await;
                }
                // Outcomes first: they are matched on the lease, so giving the leases back
                // before they are written would undo them (and send those deliveries again).
                // The recorder ends when the last sender is gone; an attempt still running past
                // the grace keeps one, hence the bound.
                let _ = tokio::time::timeout(RECORDER_DRAIN, recorder).await;
                let now = inner.now();
                if inner.store.is_postgres() {
                    // The other nodes take this one's share at their next heartbeat.
                    if let Err(e) = inner.store.forget_node(&inner.node).await {
                        tracing::warn!(error = %e, "could not remove this node's heartbeat; it stops counting within 10 s");
                    }
                }
                match inner.store.release_leases_of_node(&inner.node, now).await {
                    // Another node takes them now, not at its next poll.
                    Ok(n) if n > 0 => inner.hub.wake_all_nodes().await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not give back claims at shutdown; they fall due when their leases end")
                    }
                }
            }) as futures::future::BoxFuture<'static, ()>
        });
        Ok(EngineHandle {
            stop,
            claimer,
            recorder,
            maintenance,
            finish,
        })
    }
}
