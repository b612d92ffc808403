//! Ingest with group commit: one writer task gathers the events of concurrent requests, routes
//! them, writes them in one transaction with multi-row statements, and only then answers each
//! request. A `202` therefore means committed, and a burst of small requests costs a handful
//! of statements instead of a transaction each (DESIGN.md "Performance notes").

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use hookwarden_core::routing::{route, Destination};
use hookwarden_core::Event;
use hookwarden_store::{
    AccountId, ConnectorRecord, ConnectorStatus, DeliveryStatus, IdempotencyRecord, IngestOutcome,
    IngestWrite, NewDelivery, NewEvent, Store, StoreError, DEFAULT_CALLBACK_NAME,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};

use super::clock::{Clock, SystemClock};
use crate::api::validate::{DeliverySettings, Ordering};

/// Events one transaction gathers at most; bounds the transaction's size and latency.
const MAX_GROUP_EVENTS: usize = 4096;
/// Requests waiting for the writer before new ones wait for room (backpressure).
const QUEUE_DEPTH: usize = 4096;

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
}

/// SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's
/// busy handler (up to 100 ms a nap). The hot writers (ingest, claims, outcomes) queue here
/// instead, in order and without naps. PostgreSQL needs no gate.
pub(crate) struct WriteGate {
    gate: Option<tokio::sync::Mutex<()>>,
}

impl WriteGate {
    pub(crate) async fn enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.gate {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }
}

impl Hub {
    pub fn new(store: Store) -> Self {
        Self {
            clock: Arc::new(SystemClock),
            wake: Arc::new(Notify::new()),
            writer: OnceLock::new(),
            writes: Arc::new(WriteGate {
                gate: (!store.is_postgres()).then(|| tokio::sync::Mutex::new(())),
            }),
            store,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tell this node's workers that something may be due now.
    pub fn wake_workers(&self) {
        self.wake.notify_one();
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
                self.writes.clone(),
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

async fn run_writer(
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    writes: Arc<WriteGate>,
    mut rx: mpsc::Receiver<Job>,
) {
    while let Some(first) = rx.recv().await {
        let mut size = first.request.events.len();
        let mut jobs = vec![first];
        while size < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.request.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let result = write_group(&store, &writes, clock.now_ms(), &jobs).await;
        match result {
            Ok(answers) => {
                wake.notify_one();
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
    let mut records = store.list_connectors(account).await?;
    if let Some(default) = store.get_connector(account, DEFAULT_CALLBACK_NAME).await? {
        records.push(default);
    }
    Ok(records
        .into_iter()
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

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

async fn write_group(
    store: &Store,
    writes: &WriteGate,
    now: i64,
    jobs: &[Job],
) -> Result<Vec<Result<Value, IngestError>>, StoreError> {
    let mut targets: HashMap<&AccountId, Vec<Target>> = HashMap::new();
    for job in jobs {
        let account = &job.request.account;
        if !targets.contains_key(account) {
            targets.insert(account, targets_of(store, account).await?);
        }
    }
    let mut batch = Vec::with_capacity(jobs.len());
    let mut answers = Vec::with_capacity(jobs.len());
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
            account_id: account.0.clone(),
            idempotency: None,
            events: Vec::with_capacity(request.events.len()),
            deliveries: Vec::with_capacity(request.events.len()),
        };
        let mut answered = Vec::with_capacity(request.events.len());
        for event in &request.events {
            let event_id = new_id("evt");
            let mut delivery_ids = Vec::new();
            for index in route(event.name.as_str(), &event.origin, &destinations) {
                let target = &dests[index];
                let id = new_id("dlv");
                delivery_ids.push(id.clone());
                write.deliveries.push(NewDelivery {
                    id,
                    account_id: account.0.clone(),
                    event_id: event_id.clone(),
                    event_name: event.name.as_str().to_owned(),
                    connector_id: target.record.id.clone(),
                    connector_name: target.record.name.clone(),
                    package_id: event.package_id.clone(),
                    order_key: target.per_package.then(|| event.package_id.clone()),
                    status: if target.record.status == ConnectorStatus::Active {
                        DeliveryStatus::Pending
                    } else {
                        DeliveryStatus::Held
                    },
                    created_at: now,
                });
            }
            write.events.push(NewEvent {
                id: event_id.clone(),
                account_id: account.0.clone(),
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
        store.commit_ingest(&batch, now).await?
    };
    Ok(outcomes
        .into_iter()
        .zip(answers)
        .map(|(outcome, answer)| match outcome {
            IngestOutcome::Written => Ok(answer),
            IngestOutcome::Replay(stored) => {
                serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(e.to_string()).into())
            }
            IngestOutcome::Conflict => Err(IngestError::Conflict),
        })
        .collect())
}
