//! Ingest with group commit: one writer task gathers the events of concurrent requests, routes
//! them, writes them in one transaction with multi-row statements, and only then answers each
//! request. A `202` therefore means committed, and a burst of small requests costs a handful
//! of statements instead of a transaction each (DESIGN.md "Performance notes").

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use hookwarden_core::routing::{route, Destination};
use hookwarden_core::{
    AccountId, ConnectorId, ConnectorStatus, DeliveryId, DeliveryStatus, Event, EventId,
};
use hookwarden_store::{
    ConnectorRecord, IdempotencyRecord, IngestOutcome, IngestWrite, NewDelivery, NewEvent, Store,
    StoreError, WriteGate, DEFAULT_CALLBACK_NAME,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::api::validate::{DeliverySettings, Ordering};
use hookwarden_core::clock::{Clock, SystemClock};

/// Events one transaction gathers at most; bounds the transaction's size and latency.
const MAX_GROUP_EVENTS: usize = 4096;
/// Requests waiting for the writer before new ones wait for room (backpressure).
const QUEUE_DEPTH: usize = 4096;
/// Under concurrent load a group of fewer events than this yields to the other tasks up to
/// `GATHER_YIELDS` times for more (no timer, so no latency floor): a transaction costs a
/// handful of statements whatever its size, so a few dozen requests per transaction rather
/// than a few is much of the ingest rate of single-event requests.
const GATHER_BELOW: usize = 48;
const GATHER_YIELDS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("this Idempotency-Key was used with another body")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the ingest writer stopped")]
    Stopped,
}

/// What the caller asked for: one event (`POST /api/events`) or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Single,
    Batch,
}

pub struct IngestRequest {
    pub account: AccountId,
    /// For the metrics' labels.
    pub account_name: String,
    pub events: Vec<Event>,
    pub shape: Shape,
    /// (Idempotency-Key, hash of the body).
    pub idempotency: Option<(String, String)>,
}

struct Job {
    request: IngestRequest,
    reply: oneshot::Sender<Result<Value, IngestError>>,
}

/// The delivery side's handle in `AppState`: ingest, and the wake-up of this node's workers.
pub struct Hub {
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    writer: OnceLock<mpsc::Sender<Job>>,
    writes: Arc<WriteGate>,
    hints: Arc<Mutex<Hints>>,
    /// Names this node in PostgreSQL wake-ups, so it can ignore its own.
    node: String,
    /// This node's turns on other nodes' wake-ups (PostgreSQL).
    turns: Arc<super::turns::Turns>,
}

/// What the workers were told may be due since they last looked: the connectors that ingest
/// (or a finished per-package delivery) made due, or `any` when it could be anything (a
/// manual retry, held deliveries resumed). Lets the claimer skip a claim that could only find
/// deliveries of connectors it leaves out anyway (saturated here): such a claim scans the
/// whole backlog of those connectors to find nothing.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    pub any: bool,
    pub connectors: HashSet<ConnectorId>,
    /// What may be due now was due before the claimer's floor (`floor`): the next delivery
    /// of a package whose earlier one just finished.
    pub from_start: bool,
}

impl Hub {
    pub fn new(store: Store) -> Self {
        Self::with_clock(store, Arc::new(SystemClock))
    }

    /// Ingest stamping events and deliveries with `clock`.
    pub fn with_clock(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            wake: Arc::new(Notify::new()),
            writer: OnceLock::new(),
            writes: store.write_gate(),
            hints: Arc::new(Mutex::new(Hints::default())),
            node: format!("hub-{}", uuid::Uuid::new_v4().simple()),
            turns: Arc::default(),
            store,
        }
    }

    /// This node's name in cross-node wake-ups.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn turns(&self) -> &super::turns::Turns {
        &self.turns
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tell this node's workers that something may be due now.
    pub fn wake_workers(&self) {
        self.hints.lock().expect("hints lock").any = true;
        self.wake.notify_one();
    }

    /// Tell the workers of every node that something may be due now: this node's at once, the
    /// others' on PostgreSQL through NOTIFY (a retry, a replay, held deliveries released,
    /// claims given back). A lost notification costs a poll interval, not a delivery.
    pub async fn wake_all_nodes(&self) {
        self.wake_workers();
        if self.store.is_postgres() {
            if let Err(e) = self.store.notify_deliveries_due(&self.node).await {
                tracing::warn!(error = %e, "could not tell other nodes that deliveries are due; they find them at their next poll");
            }
        }
    }

    /// Tell this node's workers that deliveries of these connectors may be due now, and may
    /// have been due for a while (a package's next delivery, once the one before it is done):
    /// the next claim looks from the oldest due time.
    pub(crate) fn wake_for_waiting<'a>(
        &self,
        connectors: impl IntoIterator<Item = &'a ConnectorId>,
    ) {
        self.hints.lock().expect("hints lock").from_start = true;
        wake_for(&self.hints, &self.wake, connectors);
    }

    pub(crate) fn take_hints(&self) -> Hints {
        std::mem::take(&mut *self.hints.lock().expect("hints lock"))
    }

    pub(crate) fn wake_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub(crate) fn write_gate(&self) -> Arc<WriteGate> {
        self.writes.clone()
    }

    /// Route and commit; the answer (`{"id","deliveries"}` or `{"events":[...]}`) once durable.
    pub async fn ingest(&self, request: IngestRequest) -> Result<Value, IngestError> {
        let writer = self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            tokio::spawn(run_writer(
                self.store.clone(),
                self.clock.clone(),
                self.wake.clone(),
                self.hints.clone(),
                self.writes.clone(),
                self.node.clone(),
                rx,
            ));
            tx
        });
        let (reply, answer) = oneshot::channel();
        writer
            .send(Job { request, reply })
            .await
            .map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?
    }
}

fn wake_for<'a>(
    hints: &Mutex<Hints>,
    wake: &Notify,
    connectors: impl IntoIterator<Item = &'a ConnectorId>,
) {
    let mut woke = false;
    {
        let mut h = hints.lock().expect("hints lock");
        for c in connectors {
            if !h.connectors.contains(c) {
                h.connectors.insert(c.clone());
            }
            woke = true;
        }
    }
    if woke {
        wake.notify_one();
    }
}

async fn run_writer(
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    hints: Arc<Mutex<Hints>>,
    writes: Arc<WriteGate>,
    node: String,
    mut rx: mpsc::Receiver<Job>,
) {
    // Requests in the previous group: more than one means concurrent producers, whose next
    // requests are worth a moment's wait.
    let mut last_jobs = 0usize;
    // Groups written: each one's NOTIFY carries its number, whose worker claims it first.
    let mut groups = 0u64;
    while let Some(first) = rx.recv().await {
        let mut size = first.request.events.len();
        let mut jobs = vec![first];
        let mut gathered = 0;
        loop {
            while size < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.request.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            if gathered >= GATHER_YIELDS || last_jobs <= 1 || size >= GATHER_BELOW {
                break;
            }
            gathered += 1;
            // Let the request handlers that are ready run first: their events join this group.
            tokio::task::yield_now().await;
        }
        last_jobs = jobs.len();
        groups += 1;
        let notice = super::turns::payload(&node, groups);
        let result = write_group(&store, &writes, &notice, clock.now_ms(), &jobs).await;
        match result {
            Ok((answers, due)) => {
                wake_for(&hints, &wake, &due);
                for (job, answer) in jobs.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = jobs.len(), "ingest transaction failed");
                let message = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(IngestError::Store(StoreError::Corrupt(
                        message.clone(),
                    ))));
                }
            }
        }
    }
}

/// A destination as routing and ingest see it.
struct Target {
    record: ConnectorRecord,
    per_package: bool,
}

async fn targets_of(store: &Store, account: &AccountId) -> Result<Vec<Target>, StoreError> {
    let records = store.account_connectors(account).await?;
    // Notification endpoints are destinations of the engine, not of routing.
    Ok(records
        .iter()
        .filter(|r| r.credentials.notification_format().is_none())
        .cloned()
        .map(|record| {
            let settings: DeliverySettings =
                serde_json::from_value(record.settings.clone()).unwrap_or_default();
            Target {
                per_package: settings.ordering == Ordering::PerPackage,
                record,
            }
        })
        .collect())
}

/// The answers, in the order of `jobs`, and the connectors that now have deliveries due.
type GroupOutcome = (Vec<Result<Value, IngestError>>, HashSet<ConnectorId>);

async fn write_group(
    store: &Store,
    writes: &WriteGate,
    notice: &str,
    now: i64,
    jobs: &[Job],
) -> Result<GroupOutcome, StoreError> {
    let mut targets: HashMap<&AccountId, Vec<Target>> = HashMap::new();
    for job in jobs {
        let account = &job.request.account;
        if !targets.contains_key(account) {
            targets.insert(account, targets_of(store, account).await?);
        }
    }
    let mut batch = Vec::with_capacity(jobs.len());
    let mut answers = Vec::with_capacity(jobs.len());
    let mut due: HashSet<ConnectorId> = HashSet::new();
    for job in jobs {
        let request = &job.request;
        let account = &request.account;
        let dests = &targets[account];
        let destinations: Vec<Destination<'_>> = dests
            .iter()
            .map(|t| Destination {
                events: &t.record.events,
                origins: &t.record.origins,
                is_default: t.record.name == DEFAULT_CALLBACK_NAME,
            })
            .collect();
        let mut write = IngestWrite {
            account_id: account.clone(),
            idempotency: None,
            events: Vec::with_capacity(request.events.len()),
            deliveries: Vec::with_capacity(request.events.len()),
        };
        let mut answered = Vec::with_capacity(request.events.len());
        for event in &request.events {
            let event_id = EventId::generate();
            let mut delivery_ids = Vec::new();
            for index in route(event.name.as_str(), &event.origin, &destinations) {
                let target = &dests[index];
                let active = target.record.status == ConnectorStatus::Active;
                if active && !due.contains(&target.record.id) {
                    due.insert(target.record.id.clone());
                }
                let id = DeliveryId::generate();
                delivery_ids.push(id.clone());
                write.deliveries.push(NewDelivery {
                    id,
                    account_id: account.clone(),
                    event_id: event_id.clone(),
                    event_name: event.name.as_str().to_owned(),
                    connector_id: target.record.id.clone(),
                    connector_name: target.record.name.clone(),
                    package_id: event.package_id.clone(),
                    order_key: target.per_package.then(|| event.package_id.clone()),
                    status: if active {
                        DeliveryStatus::Pending
                    } else {
                        DeliveryStatus::Held
                    },
                    created_at: now,
                });
            }
            write.events.push(NewEvent {
                id: event_id.clone(),
                account_id: account.clone(),
                name: event.name.as_str().to_owned(),
                origin: event.origin.clone(),
                package_id: event.package_id.clone(),
                payload: event.onespan_body(),
                created_at: now,
            });
            answered.push(json!({"id": event_id, "deliveries": delivery_ids}));
        }
        let answer = match request.shape {
            Shape::Single => answered.pop().unwrap_or(Value::Null),
            Shape::Batch => json!({ "events": answered }),
        };
        write.idempotency = request
            .idempotency
            .as_ref()
            .map(|(key, hash)| IdempotencyRecord {
                key: key.clone(),
                request_hash: hash.clone(),
                response: answer.to_string(),
            });
        batch.push(write);
        answers.push(answer);
    }
    let outcomes = {
        let _turn = writes.enter().await;
        // Other nodes on the same PostgreSQL start at once, not at their next poll: the NOTIFY
        // goes out with the commit.
        store
            .commit_ingest_waking(&batch, now, Some(notice))
            .await?
    };
    // Events ingested per account: those written now, not an Idempotency-Key's replay.
    let mut ingested: HashMap<&str, u64> = HashMap::new();
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        if matches!(outcome, IngestOutcome::Written) {
            *ingested.entry(&job.request.account_name).or_default() +=
                job.request.events.len() as u64;
        }
    }
    for (account, n) in ingested {
        super::metrics::events_ingested(account, n);
    }
    let answers = outcomes
        .into_iter()
        .zip(answers)
        .map(|(outcome, answer)| match outcome {
            IngestOutcome::Written => Ok(answer),
            IngestOutcome::Replay(stored) => {
                serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(e.to_string()).into())
            }
            IngestOutcome::Conflict => Err(IngestError::Conflict),
        })
        .collect();
    Ok((answers, due))
}
