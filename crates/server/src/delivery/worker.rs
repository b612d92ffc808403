//! The workers: claim due deliveries in batches (with a lease), send each one under its
//! connector's limits, and record attempts and outcomes in batches.
//!
//! Stages of one delivery: claimed → (held | given back | sent) → outcome. `run_once` runs one
//! batch to the end, for tests; `spawn` runs the claimer, the recorder and the maintenance loop
//! until shutdown.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderValue;
use hookwarden_core::retry::{classify_status, classify_transport, parse_retry_after};
use hookwarden_core::{RetrySchedule, Verdict};
use hookwarden_store::{
    ClaimedDelivery, Completion, ConnectorRecord, ConnectorStatus, DeliveryStatus, NewAttempt,
    Pruned, Store, StoreError, DEFAULT_CALLBACK_NAME,
};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::http::DeliveryClient;
use super::ingest::Hub;
use super::metrics;
use super::signing::Signer;
use super::{Bearer, TokenFailure, TokenSource};
use crate::api::validate::{DeliverySettings, Ordering};
use crate::config::Settings;
use hookwarden_core::clock::{Clock, SystemClock};

/// How long a claim is ours. A claim that waited so long for its connector's turn that its
/// lease could end mid-request is given back instead of sent (see `lease_left`).
const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Claimed deliveries a connector may hold per unit of its concurrency before it is left out
/// of further claims until it drains (one claim may still bring a whole batch), while how long
/// its requests take is not known yet, or when they are slow: at the 15 s timeout, 8 rounds
/// take the whole 120 s lease.
const LANE_BACKLOG: usize = 8;
/// The most a connector that answers quickly may hold per unit of concurrency: the claim that
/// refills it waits for the SQLite writer behind ingest groups of thousands of events (tens of
/// milliseconds), and at 8 a 64-wide connector answering in 1–2 ms ran dry first, leaving the
/// CPU idle a fifth of the time while ingest ran. Bounded so that a held backlog is sent within
/// `Lane::backlog_budget` at the connector's recent latency, and to half of the node's
/// `max_in_flight`, so that one connector never holds every slot (`Lane::room`).
const LANE_BACKLOG_FAST: usize = 32;
/// How much paced sending (`max_per_second`) a connector may hold claims for; well under the lease.
const PACED_BACKLOG: Duration = Duration::from_secs(30);
/// A token endpoint that failed transiently without a Retry-After is asked again after this.
const TOKEN_RETRY: Duration = Duration::from_secs(5);
/// Outcomes written per transaction at most.
const RECORD_BATCH: usize = 1024;
/// Deliveries history retention removes per write transaction: about 20 ms of SQLite's time
/// (removing a delivery costs about what writing it did), so the ingest and the outcomes
/// waiting at the write gate are held up that long at most.
const PRUNE_CHUNK: i64 = 500;
/// How long one retention pass may go on; what is left waits for the next pass.
const PRUNE_PASS_BUDGET: Duration = Duration::from_secs(30);
/// Maintenance ticks between retention passes, and before the first one.
const PRUNE_EVERY_TICKS: u64 = 60;
const PRUNE_FIRST_TICK: u64 = 60;
/// A recorder that finds fewer outcomes than this waits `RECORD_GATHER` once for more, so
/// that outcomes are written a few hundred per transaction rather than a few.
const RECORD_SMALL: usize = 128;
const RECORD_GATHER: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct EngineOptions {
    pub clock: Arc<dyn Clock>,
    /// Uniform in [0, 1): the retry jitter's randomness, injectable for exact tests.
    pub random: Arc<dyn Fn() -> f64 + Send + Sync>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub lease: Duration,
    /// Deliveries claimed per statement at most: a claim waits its turn at the SQLite writer,
    /// so one claim should carry a busy connector through the wait.
    pub batch_size: usize,
    /// Claimed deliveries this node holds at once at most (waiting or in flight).
    pub max_in_flight: usize,
    /// How often an idle claimer looks for due work it was not woken for (retries coming due,
    /// other nodes' ingest on PostgreSQL).
    pub idle_poll: Duration,
    /// How often held deliveries are re-checked against their connector's status.
    pub maintenance_every: Duration,
    /// Consecutive failures (5xx, 429, timeouts, network) that open a connector's breaker.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    pub breaker_max_cooldown: Duration,
    /// At shutdown, how long in-flight attempts may finish.
    pub shutdown_grace: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            random: Arc::new(rand::random::<f64>),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            lease: DEFAULT_LEASE,
            batch_size: 1024,
            max_in_flight: 4096,
            idle_poll: Duration::from_millis(250),
            maintenance_every: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            breaker_max_cooldown: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

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

/// One connector's limits and health on this node.
struct Lane {
    max_concurrency: usize,
    max_per_second: Option<f64>,
    permits: Arc<Semaphore>,
    /// Claimed deliveries of this connector that this node holds.
    owned: AtomicUsize,
    breaker: Mutex<Breaker>,
    next_slot: Mutex<Option<tokio::time::Instant>>,
    /// Wakes deliveries waiting for a turn when the breaker opens, so they are given back at
    /// once rather than one per freed turn.
    opened: Notify,
    /// A moving average of how long its successful deliveries take (µs; 0 before the first),
    /// and `Lane::backlog_budget` in µs.
    latency_us: AtomicU64,
    backlog_budget_us: u64,
    /// Half of the node's `max_in_flight` (or the cautious backlog, if that is more).
    max_room: usize,
    /// Set when a claim leaves this connector out for being full; the delivery that brings it
    /// below its room clears it and wakes the claimer.
    left_out: AtomicBool,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: i64,
    cooldown_ms: i64,
}

impl Lane {
    /// The time a held backlog must be sendable in at the connector's recent latency: a
    /// quarter of the lease (if the connector slows down, what is left is handed back unsent
    /// before the lease ends), and half of the shutdown grace (what is left then is released).
    fn backlog_budget(opts: &EngineOptions) -> Duration {
        (opts.lease / 4).min(opts.shutdown_grace / 2)
    }

    fn new(max_concurrency: usize, max_per_second: Option<f64>, opts: &EngineOptions) -> Self {
        Self {
            max_concurrency,
            max_per_second,
            permits: Arc::new(Semaphore::new(max_concurrency)),
            owned: AtomicUsize::new(0),
            breaker: Mutex::new(Breaker::default()),
            next_slot: Mutex::new(None),
            opened: Notify::new(),
            latency_us: AtomicU64::new(0),
            backlog_budget_us: Self::backlog_budget(opts).as_micros() as u64,
            max_room: (opts.max_in_flight / 2).max(max_concurrency * LANE_BACKLOG),
            left_out: AtomicBool::new(false),
        }
    }

    /// Holds as many claims as it can work off well within a lease: `LANE_BACKLOG` rounds of
    /// its concurrency, up to `LANE_BACKLOG_FAST` rounds as long as they fit in the backlog
    /// budget at its recent latency and in half the node's slots, and with `max_per_second`
    /// no more than `PACED_BACKLOG` of sending.
    fn room(&self) -> usize {
        let rounds = match self.latency_us.load(AtomicOrdering::Relaxed) {
            0 => LANE_BACKLOG,
            us => ((self.backlog_budget_us / us) as usize).clamp(LANE_BACKLOG, LANE_BACKLOG_FAST),
        };
        let cautious = self.max_concurrency * LANE_BACKLOG;
        let room = (self.max_concurrency * rounds)
            .min(self.max_room)
            .max(cautious);
        match self.max_per_second {
            Some(rate) => room.min(((rate * PACED_BACKLOG.as_secs_f64()).ceil() as usize).max(1)),
            None => room,
        }
    }

    /// Folds a delivered delivery's duration into the moving average (weight 1/16). Only
    /// successes count: an endpoint that refuses connections in a millisecond must not earn
    /// itself a larger backlog to hand back after each breaker cooldown.
    fn took(&self, elapsed: Duration) {
        let sample = (elapsed.as_micros() as u64).max(1);
        let _ =
            self.latency_us
                .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |avg| {
                    Some(if avg == 0 {
                        sample
                    } else {
                        ((avg * 15 + sample) / 16).max(1)
                    })
                });
    }

    fn saturated(&self) -> bool {
        self.owned.load(AtomicOrdering::Relaxed) >= self.room()
    }

    fn open_until(&self, now: i64) -> Option<i64> {
        let b = self.breaker.lock().expect("breaker lock");
        (b.open_until > now).then_some(b.open_until)
    }

    /// `max_per_second`: each send takes the next free slot of the connector's schedule.
    async fn pace(&self) {
        let Some(rate) = self.max_per_second.filter(|r| *r > 0.0) else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let at = {
            let mut slot = self.next_slot.lock().expect("pacer lock");
            let now = tokio::time::Instant::now();
            let at = slot.map_or(now, |s| s.max(now));
            *slot = Some(at + interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }

    fn on_success(&self) {
        let mut b = self.breaker.lock().expect("breaker lock");
        b.failures = 0;
        b.cooldown_ms = 0;
        b.open_until = 0;
    }

    /// Counts a failure; `Some(until)` when this one opens (or re-opens) the breaker.
    fn on_failure(&self, now: i64, opts: &EngineOptions) -> Option<i64> {
        let mut b = self.breaker.lock().expect("breaker lock");
        b.failures += 1;
        if b.failures < opts.breaker_threshold || b.open_until > now {
            return None;
        }
        let base = opts.breaker_cooldown.as_millis() as i64;
        let max = opts.breaker_max_cooldown.as_millis() as i64;
        b.cooldown_ms = if b.cooldown_ms == 0 {
            base
        } else {
            (b.cooldown_ms * 2).min(max)
        };
        b.open_until = now + b.cooldown_ms;
        self.opened.notify_waiters();
        Some(b.open_until)
    }
}

enum Auth {
    Basic(HeaderValue),
    Bearer,
    Unusable(String),
}

/// A connector as one batch sees it: read fresh per batch, so a status change or a new key is
/// seen at the next claim.
struct Target {
    record: ConnectorRecord,
    schedule: RetrySchedule,
    auth: Auth,
    signer: Signer,
    lane: Arc<Lane>,
}

/// How long shutdown waits for the recorder to write the last outcomes.
const RECORDER_DRAIN: Duration = Duration::from_secs(10);
/// How long a delivery waits when the provider's token cannot be used as a header.
const CONFIG_PROBLEM_RETRY_MS: i64 = 60_000;

/// What became of one claimed delivery, for the recorder.
struct Outcome {
    completion: Completion,
    attempts: Vec<NewAttempt>,
    account: String,
    connector: String,
    connector_id: String,
    label: &'static str,
}

impl Outcome {
    fn new(row: &ClaimedDelivery, status: DeliveryStatus, attempts: Vec<NewAttempt>) -> Self {
        let label = match status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Held => "held",
            DeliveryStatus::Pending if attempts.is_empty() => "released",
            DeliveryStatus::Pending => "retry",
        };
        Self {
            completion: Completion {
                seq: row.seq,
                lease_token: row.lease_token.clone(),
                status,
                attempts_added: attempts.iter().filter(|a| is_http_try(a)).count() as i64,
                next_attempt_at: None,
                last_error: None,
            },
            attempts,
            account: row.account_id.clone(),
            connector: row.connector_name.clone(),
            connector_id: row.connector_id.clone(),
            label,
        }
    }

    fn at(mut self, next_attempt_at: i64) -> Self {
        self.completion.next_attempt_at = Some(next_attempt_at);
        self
    }

    fn error(mut self, message: impl Into<String>) -> Self {
        self.completion.last_error = Some(message.into());
        self
    }
}

/// Token failures are recorded beside HTTP tries but do not use up the retry schedule.
fn is_http_try(attempt: &NewAttempt) -> bool {
    attempt.status_code.is_some()
        || !attempt
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(TOKEN_ERROR_PREFIX))
}

const TOKEN_ERROR_PREFIX: &str = "token: ";

struct Inner<T> {
    store: Store,
    writes: Arc<hookwarden_store::WriteGate>,
    hub: Arc<Hub>,
    tokens: T,
    http: DeliveryClient,
    opts: EngineOptions,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    /// Connectors that order per package: when one of their deliveries is done, the next of
    /// its package may be due, and the claimer is told.
    ordered: Mutex<HashSet<String>>,
    /// Claimed deliveries this node holds, all connectors.
    owned: AtomicUsize,
    capacity: Notify,
    /// A saturated connector has room again.
    lane_drained: Notify,
    /// Lease tokens are `<node>:<batch>`.
    node: String,
    batches: AtomicU64,
    /// Days finished deliveries are kept (`history_retention_days`); 0 keeps them all.
    retention_days: u32,
}

/// The delivery engine of one node.
pub struct Engine<T: TokenSource> {
    inner: Arc<Inner<T>>,
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
            inner: Arc::new(Inner {
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
            }),
        })
    }

    /// One pass of history retention (the maintenance task runs one a minute):
    /// finished deliveries older than `history_retention_days`, their attempts and events,
    /// and old Idempotency-Keys, removed a chunk per write transaction.
    pub async fn prune_history(&self) -> Result<Pruned, StoreError> {
        self.inner.prune_history().await
    }

    /// Claim one batch, run every delivery in it to its outcome, and record the outcomes.
    /// Tests call this to drain the queue deterministically (with an `OffsetClock`).
    pub async fn run_once(&self) -> Result<RunReport, StoreError> {
        let inner = &self.inner;
        inner.maintain_held().await?;
        let rows = inner.claim(inner.opts.batch_size).await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tasks = inner.dispatch(rows.len(), rows, &tx).await;
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
            match o.label {
                "delivered" => report.delivered += 1,
                "retry" => report.retried += 1,
                "failed" => report.failed += 1,
                "held" => report.held += 1,
                _ => report.released += 1,
            }
        }
        inner.record(outcomes).await?;
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
                if let Err(e) = inner.store.release_leases_of_node(&inner.node, now).await {
                    tracing::warn!(error = %e, "could not give back claims at shutdown; they fall due when their leases end");
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

async fn claim_loop<T: TokenSource>(
    inner: Arc<Inner<T>>,
    sink: mpsc::UnboundedSender<Outcome>,
    mut stop: watch::Receiver<bool>,
) {
    let wake = inner.hub.wake_signal();
    // What may be due: `any` connector, or these. A claim that leaves some connectors out
    // (saturated here, or backing off) is made only when a connector it would not leave out
    // may have due work: otherwise it would scan the left-out connectors' backlog for nothing.
    let mut any = true;
    let mut candidates: HashSet<String> = HashSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let hints = inner.hub.take_hints();
        any |= hints.any;
        candidates.extend(hints.connectors);
        let free = inner
            .opts
            .max_in_flight
            .saturating_sub(inner.owned.load(AtomicOrdering::SeqCst));
        if free == 0 {
            tokio::select! {
                _ = inner.capacity.notified() => {}
                _ = tokio::time::sleep(inner.opts.idle_poll) => { any = true; }
                _ = stop.changed() => {}
            }
            continue;
        }
        let now = inner.now();
        let excluded = inner.excluded(now);
        let worth = any
            || excluded.is_empty() && !candidates.is_empty()
            || candidates.iter().any(|c| !excluded.contains(c));
        if !worth {
            tokio::select! {
                _ = wake.notified() => {}
                _ = inner.lane_drained.notified() => { any = true; }
                _ = tokio::time::sleep(inner.opts.idle_poll) => { any = true; }
                _ = stop.changed() => {}
            }
            continue;
        }
        let limit = free.min(inner.opts.batch_size);
        let before = std::mem::take(&mut candidates);
        any = false;
        match inner.claim_excluding(limit, excluded).await {
            Ok(rows) if rows.is_empty() => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = inner.lane_drained.notified() => { any = true; }
                    _ = tokio::time::sleep(inner.opts.idle_poll) => { any = true; }
                    _ = stop.changed() => {}
                }
            }
            Ok(rows) => {
                if rows.len() >= limit {
                    // There may be more, of these connectors and of those hinted before.
                    candidates = before;
                    for r in &rows {
                        if !candidates.contains(&r.connector_id) {
                            candidates.insert(r.connector_id.clone());
                        }
                    }
                }
                // Detached: each task reports through `sink`; shutdown waits on `owned`.
                let _ = inner.dispatch(limit, rows, &sink).await;
            }
            Err(e) => {
                any = true;
                tracing::error!(error = %e, "claiming deliveries failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

async fn record_loop<T: TokenSource>(
    inner: Arc<Inner<T>>,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut gathered = false;
        loop {
            while batch.len() < RECORD_BATCH {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            if gathered || batch.len() >= RECORD_SMALL || rx.is_closed() {
                break;
            }
            gathered = true;
            tokio::time::sleep(RECORD_GATHER).await;
        }
        // A lost write is not a lost delivery: the lease runs out and it is attempted again.
        let mut tries = 0;
        let mut batch = Some(batch);
        while let Some(b) = batch.take() {
            match inner.record_ref(&b).await {
                Ok(()) => {}
                Err(e) if tries < 10 => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "recording delivery outcomes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                    batch = Some(b);
                }
                Err(e) => {
                    tracing::error!(error = %e, outcomes = b.len(), "recording delivery outcomes failed; their leases will expire and they will be attempted again");
                }
            }
        }
    }
}

async fn maintenance_loop<T: TokenSource>(inner: Arc<Inner<T>>, mut stop: watch::Receiver<bool>) {
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
            match inner.store.queue_depths(inner.now()).await {
                Ok(depths) => {
                    for d in depths {
                        metrics::queue_depth(&d.account_id, &d.connector_name, "due", d.due);
                        metrics::queue_depth(&d.account_id, &d.connector_name, "held", d.held);
                        metrics::queue_depth(&d.account_id, &d.connector_name, "failed", d.failed);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading queue depths failed"),
            }
        }
    }
}

impl<T: TokenSource> Inner<T> {
    fn now(&self) -> i64 {
        self.opts.clock.now_ms()
    }

    async fn maintain_held(&self) -> Result<(), StoreError> {
        let (resumed, _) = {
            let _turn = self.writes.enter().await;
            self.store.sync_held_deliveries(self.now()).await?
        };
        if resumed > 0 {
            tracing::info!(resumed, "held deliveries are due again");
            self.hub.wake_workers();
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

    async fn prune_history(&self) -> Result<Pruned, StoreError> {
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

    fn prune_lanes(&self) {
        let now = self.now();
        self.lanes.lock().expect("lanes lock").retain(|_, lane| {
            lane.owned.load(AtomicOrdering::Relaxed) > 0 || lane.open_until(now).is_some()
        });
    }

    /// Connectors to leave out of the next claim: saturated here, or backing off.
    fn excluded(&self, now: i64) -> Vec<String> {
        self.lanes
            .lock()
            .expect("lanes lock")
            .iter()
            .filter(|(_, lane)| {
                let full = lane.saturated();
                if full {
                    lane.left_out.store(true, AtomicOrdering::SeqCst);
                }
                full || lane.open_until(now).is_some()
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let now = self.now();
        let excluded = self.excluded(now);
        self.claim_excluding(limit, excluded).await
    }

    /// Claims what is due when the claim gets its turn to write, not when it asked for it: the
    /// wait at the write gate is tens of milliseconds behind an ingest group under load, and
    /// what came due meanwhile (retries, rows stamped later) belongs in this claim.
    async fn claim_excluding(
        &self,
        limit: usize,
        excluded: Vec<String>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let token = format!(
            "{}:{}",
            self.node,
            self.batches.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let lease_ms = self.opts.lease.as_millis() as i64;
        let _turn = self.writes.enter().await;
        let now = self.now();
        self.store
            .claim_due(now, now + lease_ms, &token, limit, &excluded)
            .await
    }

    fn lane(&self, record: &ConnectorRecord, settings: &DeliverySettings) -> Arc<Lane> {
        let max = settings.max_concurrency.max(1) as usize;
        let mut lanes = self.lanes.lock().expect("lanes lock");
        match lanes.get(&record.id) {
            Some(lane)
                if lane.max_concurrency == max
                    && lane.max_per_second == settings.max_per_second =>
            {
                lane.clone()
            }
            _ => {
                let lane = Arc::new(Lane::new(max, settings.max_per_second, &self.opts));
                lanes.insert(record.id.clone(), lane.clone());
                lane
            }
        }
    }

    fn target(&self, record: ConnectorRecord) -> Target {
        let settings: DeliverySettings =
            serde_json::from_value(record.settings.clone()).unwrap_or_default();
        {
            let mut ordered = self.ordered.lock().expect("ordered lock");
            if settings.ordering == Ordering::PerPackage {
                if !ordered.contains(&record.id) {
                    ordered.insert(record.id.clone());
                }
            } else if ordered.contains(&record.id) {
                ordered.remove(&record.id);
            }
        }
        let schedule = match &settings.retry {
            Some(r) => RetrySchedule::new(r.schedule_s.clone(), r.jitter),
            None => RetrySchedule::default(),
        };
        let auth = if record.name == DEFAULT_CALLBACK_NAME {
            match HeaderValue::from_str(&format!("Basic {}", record.key_json.expose_secret())) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    Auth::Basic(v)
                }
                Err(_) => Auth::Unusable(
                    "the default callback's key has characters an HTTP header cannot carry; set it again (POST /api/callback) with printable ASCII".to_owned(),
                ),
            }
        } else {
            Auth::Bearer
        };
        Target {
            lane: self.lane(&record, &settings),
            signer: Signer::for_connector(&record),
            schedule,
            auth,
            record,
        }
    }

    /// Decide each claimed delivery: fail (connector gone), hold (not active), give back
    /// (breaker open) or start sending. Returns the sending tasks.
    async fn dispatch(
        self: &Arc<Self>,
        _limit: usize,
        rows: Vec<ClaimedDelivery>,
        sink: &mpsc::UnboundedSender<Outcome>,
    ) -> Vec<JoinHandle<()>> {
        self.owned.fetch_add(rows.len(), AtomicOrdering::SeqCst);
        let mut targets: HashMap<(String, String), Option<Arc<Target>>> = HashMap::new();
        let mut tasks = Vec::new();
        let now = self.now();
        for row in rows {
            let key = (row.account_id.clone(), row.connector_name.clone());
            if !targets.contains_key(&key) {
                let account = hookwarden_store::AccountId(row.account_id.clone());
                let loaded = match self.store.account_connectors(&account).await {
                    Ok(records) => records
                        .iter()
                        .find(|r| r.name == row.connector_name)
                        .cloned(),
                    Err(e) => {
                        tracing::error!(error = %e, "reading a connector failed; its deliveries are given back");
                        self.finish(
                            Outcome::new(&row, DeliveryStatus::Pending, Vec::new()).at(now + 1000),
                            sink,
                        );
                        continue;
                    }
                };
                let target = loaded.map(|record| Arc::new(self.target(record)));
                if let Some(t) = &target {
                    if t.record.status != ConnectorStatus::Active {
                        if let Err(e) = self
                            .store
                            .hold_connector_deliveries(&t.record.id, now)
                            .await
                        {
                            tracing::warn!(error = %e, "holding deliveries failed");
                        }
                    }
                }
                targets.insert(key.clone(), target);
            }
            let target = match &targets[&key] {
                Some(t) if t.record.id == row.connector_id => t.clone(),
                // Deleted, or deleted and registered again under the same name.
                _ => {
                    self.finish(
                        Outcome::new(&row, DeliveryStatus::Failed, Vec::new())
                            .error("connector_deleted"),
                        sink,
                    );
                    continue;
                }
            };
            if target.record.status != ConnectorStatus::Active {
                let status = target.record.status.as_str();
                self.finish(
                    Outcome::new(&row, DeliveryStatus::Held, Vec::new())
                        .error(format!("held: the connector is {status}")),
                    sink,
                );
                continue;
            }
            if let Some(until) = target.lane.open_until(now) {
                self.finish(
                    Outcome::new(&row, DeliveryStatus::Pending, Vec::new()).at(until),
                    sink,
                );
                continue;
            }
            target.lane.owned.fetch_add(1, AtomicOrdering::SeqCst);
            let inner = self.clone();
            let sink = sink.clone();
            let claimed_at = now;
            tasks.push(tokio::spawn(async move {
                let lane = target.lane.clone();
                let permit = tokio::select! {
                    permit = lane.permits.clone().acquire_owned() => permit.ok(),
                    _ = lane.opened.notified() => None,
                };
                if permit.is_some() {
                    lane.pace().await;
                }
                let now = inner.now();
                let give_back = |at| Outcome::new(&row, DeliveryStatus::Pending, Vec::new()).at(at);
                let outcome = match (lane.open_until(now), &permit) {
                    // It opened while this one waited its turn.
                    (Some(until), _) => give_back(until),
                    (None, None) => give_back(now),
                    // Too late to finish within the lease: another node may claim it meanwhile.
                    (None, Some(_)) if !inner.lease_left(claimed_at, now) => give_back(now),
                    (None, Some(_)) => {
                        let started = std::time::Instant::now();
                        let outcome = inner.deliver(&target, &row, claimed_at).await;
                        if outcome.completion.status == DeliveryStatus::Delivered {
                            lane.took(started.elapsed());
                        }
                        outcome
                    }
                };
                drop(permit);
                // Below its room a connector left out of claims is back in: say so now rather
                // than at the next idle poll. (Its room moves with its latency, so this is a
                // flag the claimer set, not a count passing one value.)
                let left = lane.owned.fetch_sub(1, AtomicOrdering::SeqCst) - 1;
                if left < lane.room() && lane.left_out.swap(false, AtomicOrdering::SeqCst) {
                    inner.lane_drained.notify_one();
                }
                inner.finish(outcome, &sink);
            }));
        }
        tasks
    }

    /// Whether a delivery claimed at `claimed_at` can still be sent (twice, after a 401) and
    /// answered before its lease ends.
    fn lease_left(&self, claimed_at: i64, now: i64) -> bool {
        let needed = 2 * self.opts.request_timeout.as_millis() as i64 + 1000;
        claimed_at + self.opts.lease.as_millis() as i64 - now > needed
    }

    fn finish(&self, outcome: Outcome, sink: &mpsc::UnboundedSender<Outcome>) {
        let _ = sink.send(outcome);
        self.owned.fetch_sub(1, AtomicOrdering::SeqCst);
        self.capacity.notify_one();
    }

    async fn record(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        self.record_ref(&outcomes).await
    }

    async fn record_ref(&self, outcomes: &[Outcome]) -> Result<(), StoreError> {
        let completions: Vec<Completion> = outcomes.iter().map(|o| o.completion.clone()).collect();
        let attempts: Vec<NewAttempt> = outcomes
            .iter()
            .flat_map(|o| o.attempts.iter().cloned())
            .collect();
        {
            let _turn = self.writes.enter().await;
            self.store
                .record_outcomes(&completions, &attempts, self.now())
                .await?;
        }
        // The next delivery of a package may be due now that the one before it is done.
        {
            let ordered = self.ordered.lock().expect("ordered lock");
            if !ordered.is_empty() {
                let done: Vec<&str> = outcomes
                    .iter()
                    .filter(|o| ordered.contains(&o.connector_id))
                    .map(|o| o.connector_id.as_str())
                    .collect();
                drop(ordered);
                self.hub.wake_for(done);
            }
        }
        // Metrics per (account, connector): one lookup and no label strings per delivery.
        let mut counts: HashMap<(&str, &str, &'static str), u64> = HashMap::new();
        let mut latencies: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
        for o in outcomes {
            *counts
                .entry((o.account.as_str(), o.connector.as_str(), o.label))
                .or_default() += 1;
            for a in &o.attempts {
                if a.status_code.is_some() || a.duration_ms > 0 {
                    latencies
                        .entry((o.account.as_str(), o.connector.as_str()))
                        .or_default()
                        .push(a.duration_ms as f64 / 1000.0);
                }
            }
        }
        for ((account, connector, label), n) in counts {
            metrics::delivery_outcomes(account, connector, label, n);
        }
        for ((account, connector), seconds) in latencies {
            metrics::attempt_latencies(account, connector, &seconds);
        }
        Ok(())
    }

    async fn bearer(&self, record: &ConnectorRecord) -> Result<Bearer, TokenFailure> {
        let result = self.tokens.bearer(record).await;
        let outcome = match &result {
            Ok(b) if b.refreshed => "ok",
            Ok(_) => "cached",
            Err(TokenFailure::Transient { .. }) => "transient_failure",
            Err(TokenFailure::NeedsReauth { .. }) => "needs_reauth",
        };
        if outcome != "cached" {
            metrics::grant(&record.account_id.0, &record.name, outcome);
        }
        result
    }

    /// Send one delivery: token, signature, POST, and the outcome policy (DESIGN.md "Delivery:
    /// the rules"), including the one immediate retry after a 401.
    async fn deliver(&self, target: &Target, row: &ClaimedDelivery, claimed_at: i64) -> Outcome {
        let record = &target.record;
        let mut attempts: Vec<NewAttempt> = Vec::new();
        let mut bearer: Option<Bearer> = None;
        let mut refreshed_after_401 = false;
        loop {
            let authorization = match &target.auth {
                Auth::Unusable(why) => {
                    return Outcome::new(row, DeliveryStatus::Failed, attempts).error(why.clone());
                }
                Auth::Basic(value) => value.clone(),
                Auth::Bearer => {
                    let b = match self.bearer(record).await {
                        Ok(b) => b,
                        Err(failure) => {
                            return self.token_failure(target, row, attempts, failure).await
                        }
                    };
                    let value =
                        HeaderValue::from_str(&format!("Bearer {}", b.token.expose_secret()));
                    let Ok(mut value) = value else {
                        // The provider's token is unusable, not the delivery: wait, not fail.
                        return Outcome::new(row, DeliveryStatus::Pending, attempts)
                            .at(self.now() + CONFIG_PROBLEM_RETRY_MS)
                            .error("the token endpoint returned an access token that cannot be sent in a header");
                    };
                    value.set_sensitive(true);
                    bearer = Some(b);
                    value
                }
            };
            // Getting a token may have waited on another node's grant: if the lease could now
            // end mid-request, give the delivery back rather than race a second sender.
            let now = self.now();
            if !self.lease_left(claimed_at, now) {
                return Outcome::new(row, DeliveryStatus::Pending, attempts).at(now);
            }
            // What the receiver might echo back must not land in the attempt's excerpt.
            let credential = authorization
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .map(|(_, c)| c.to_owned())
                .filter(|c| c.len() >= 8);
            let refreshed = refreshed_after_401 || bearer.as_ref().is_some_and(|b| b.refreshed);
            let at = self.now();
            // The signature's timestamp is wall-clock time: receivers check it against theirs.
            let timestamp = chrono::Utc::now().timestamp();
            let headers = target
                .signer
                .headers(authorization, &row.id, timestamp, &row.payload);
            let sent = self
                .http
                .post(
                    &record.url,
                    headers,
                    row.payload.clone(),
                    self.opts.request_timeout,
                )
                .await;
            let verdict = match (&sent.failure, sent.status) {
                (Some((failure, _)), _) => classify_transport(*failure),
                (None, Some(status)) => classify_status(
                    status,
                    sent.retry_after
                        .as_deref()
                        .and_then(|r| parse_retry_after(r, self.now())),
                    sent.location.as_deref(),
                    &sent.excerpt,
                ),
                (None, None) => classify_transport(hookwarden_core::TransportFailure::Other),
            };
            let mut attempt = NewAttempt {
                delivery_id: row.id.clone(),
                at,
                status_code: sent.status.map(i64::from),
                duration_ms: sent.duration.as_millis() as i64,
                response_excerpt: (!sent.excerpt.is_empty()).then(|| match &credential {
                    Some(c) => sent.excerpt.replace(c.as_str(), "[redacted]"),
                    None => sent.excerpt.clone(),
                }),
                error: sent.failure.as_ref().map(|(_, message)| message.clone()),
                diagnosis: None,
                refreshed,
            };
            match verdict {
                Verdict::Delivered => {
                    attempts.push(attempt);
                    target.lane.on_success();
                    return Outcome::new(row, DeliveryStatus::Delivered, attempts);
                }
                Verdict::Unauthorized
                    if matches!(target.auth, Auth::Bearer) && !refreshed_after_401 =>
                {
                    attempt.diagnosis = Some("the endpoint refused the access token (401); it was invalidated and a new one requested at once".to_owned());
                    attempts.push(attempt);
                    if let Some(b) = &bearer {
                        self.tokens.invalidate(&record.id, b.version).await;
                    }
                    refreshed_after_401 = true;
                    continue;
                }
                Verdict::Unauthorized => {
                    let diagnosis = if matches!(target.auth, Auth::Basic(_)) {
                        "the listener refused the default callback's key (401): set the key it expects with POST /api/callback"
                    } else {
                        "the endpoint refused a freshly granted token (401): check that the connected app's scopes include api, \
                         that the token's user (or the Run As user) may run the Apex class, and that the key's host is this org"
                    };
                    attempt.diagnosis = Some(diagnosis.to_owned());
                    attempts.push(attempt);
                    if matches!(target.auth, Auth::Basic(_)) {
                        return Outcome::new(row, DeliveryStatus::Failed, attempts)
                            .error(diagnosis);
                    }
                    return self.retry_later(target, row, attempts, None, diagnosis.to_owned());
                }
                Verdict::Retry {
                    retry_after,
                    diagnosis,
                } => {
                    let message = diagnosis
                        .clone()
                        .or_else(|| attempt.error.clone())
                        .unwrap_or_else(|| {
                            format!("the endpoint answered {}", sent.status.unwrap_or(0))
                        });
                    attempt.diagnosis = diagnosis;
                    attempts.push(attempt);
                    if let Some(until) = target.lane.on_failure(self.now(), &self.opts) {
                        tracing::warn!(connector = %record.name, account = %record.account_id.0, "connector keeps failing; its deliveries back off as a whole");
                        if let Err(e) = self
                            .store
                            .defer_connector_deliveries(&record.id, until)
                            .await
                        {
                            tracing::warn!(error = %e, "deferring a failing connector's deliveries failed");
                        }
                    }
                    return self.retry_later(target, row, attempts, retry_after, message);
                }
                Verdict::Fail { diagnosis } => {
                    attempt.diagnosis = Some(diagnosis.clone());
                    attempts.push(attempt);
                    let message = sent
                        .failure
                        .as_ref()
                        .map(|(_, m)| m.clone())
                        .unwrap_or(diagnosis);
                    return Outcome::new(row, DeliveryStatus::Failed, attempts).error(message);
                }
                Verdict::Gone { diagnosis } => {
                    attempt.diagnosis = Some(diagnosis.clone());
                    attempts.push(attempt);
                    let now = self.now();
                    match self
                        .store
                        .set_connector_status_if_current(
                            &record.id,
                            record.credentials_version,
                            ConnectorStatus::Disabled,
                            now,
                        )
                        .await
                    {
                        Ok(_) => {
                            tracing::warn!(connector = %record.name, account = %record.account_id.0, "endpoint answered 410 Gone; connector disabled");
                        }
                        Err(e) => tracing::error!(error = %e, "disabling a connector failed"),
                    }
                    let _ = self.store.hold_connector_deliveries(&record.id, now).await;
                    return Outcome::new(row, DeliveryStatus::Held, attempts).error(diagnosis);
                }
            }
        }
    }

    fn retry_later(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        attempts: Vec<NewAttempt>,
        retry_after: Option<Duration>,
        message: String,
    ) -> Outcome {
        let made = u32::try_from(row.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        match target
            .schedule
            .delay_with_retry_after(made, (self.opts.random)(), retry_after)
        {
            Some(wait) => {
                let at = self.now() + wait.as_millis() as i64;
                Outcome::new(row, DeliveryStatus::Pending, attempts)
                    .at(at)
                    .error(message)
            }
            None => Outcome::new(row, DeliveryStatus::Failed, attempts)
                .error(format!("retries exhausted; last: {message}")),
        }
    }

    /// No token: a transient failure waits (not counted against the delivery's schedule); a
    /// permanent one holds the connector's deliveries until its credentials change.
    async fn token_failure(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        mut attempts: Vec<NewAttempt>,
        failure: TokenFailure,
    ) -> Outcome {
        let record = &target.record;
        let now = self.now();
        match failure {
            TokenFailure::Transient {
                retry_after,
                message,
            } => {
                attempts.push(NewAttempt {
                    delivery_id: row.id.clone(),
                    at: now,
                    status_code: None,
                    duration_ms: 0,
                    response_excerpt: None,
                    error: Some(format!("{TOKEN_ERROR_PREFIX}{message}")),
                    diagnosis: Some("no access token could be had for a reason that may pass; the delivery waits and tries again".to_owned()),
                    refreshed: false,
                });
                let wait = retry_after
                    .unwrap_or(TOKEN_RETRY)
                    .min(hookwarden_core::retry::MAX_RETRY_AFTER);
                Outcome::new(row, DeliveryStatus::Pending, attempts)
                    .at(now + wait.as_millis() as i64)
                    .error(format!("{TOKEN_ERROR_PREFIX}{message}"))
            }
            TokenFailure::NeedsReauth { message } => {
                if let Err(e) = self
                    .store
                    .set_connector_status_if_current(
                        &record.id,
                        record.credentials_version,
                        ConnectorStatus::NeedsReauth,
                        now,
                    )
                    .await
                {
                    tracing::error!(error = %e, "marking a connector needs_reauth failed");
                }
                let _ = self.store.hold_connector_deliveries(&record.id, now).await;
                Outcome::new(row, DeliveryStatus::Held, attempts).error(format!(
                    "held: the connector needs re-authentication: {message}"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lanes_room_grows_with_fast_answers_and_shrinks_with_slow_ones() {
        let opts = EngineOptions::default();
        assert_eq!(Lane::backlog_budget(&opts), Duration::from_secs(5));
        let lane = Lane::new(64, None, &opts);
        // Nothing measured yet: the cautious backlog.
        assert_eq!(lane.room(), 64 * LANE_BACKLOG);

        // Answers in 2 ms: 32 rounds of 64 take 0.13 s, far inside the 5 s budget.
        for _ in 0..64 {
            lane.took(Duration::from_millis(2));
        }
        assert_eq!(lane.room(), 64 * LANE_BACKLOG_FAST);

        // The endpoint slows to 400 ms an answer: 12 rounds fit in 5 s.
        for _ in 0..200 {
            lane.took(Duration::from_millis(400));
        }
        let avg = lane.latency_us.load(AtomicOrdering::Relaxed);
        assert!((399_000..=400_000).contains(&avg), "{avg}");
        assert_eq!(lane.room(), 64 * 12);

        // Timeouts (15 s): never below the cautious backlog.
        for _ in 0..200 {
            lane.took(Duration::from_secs(15));
        }
        assert_eq!(lane.room(), 64 * LANE_BACKLOG);

        // A wide connector gets at most half of the node's slots...
        let wide = Lane::new(256, None, &opts);
        wide.took(Duration::from_millis(1));
        assert_eq!(wide.room(), opts.max_in_flight / 2);
        // ...but never less than its cautious backlog.
        let wider = Lane::new(1024, None, &opts);
        wider.took(Duration::from_millis(1));
        assert_eq!(wider.room(), 1024 * LANE_BACKLOG);

        // max_per_second still bounds it: 30 s of sending at 10/s.
        let paced = Lane::new(64, Some(10.0), &opts);
        paced.took(Duration::from_millis(1));
        assert_eq!(paced.room(), 300);
    }
}
