//! The claimer: claims due deliveries in batches (with a lease), leaving out connectors that
//! are full here or backing off, and dispatches each claimed delivery: failed (connector
//! gone), held (not active), given back (breaker open, lease too short) or sent in its lane.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use hookwarden_core::{AccountId, ConnectorId, ConnectorStatus, DeliveryStatus};
use hookwarden_store::{ClaimedDelivery, StoreError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::floor::{Floor, FROM_START};
use super::outcome::Outcome;
use super::target::Target;
use super::workers::Workers;
use super::TokenSource;

/// Claims while this node has room and a claim may find something; otherwise waits for a
/// wake-up (ingest, another node, an ordered package), a lane with room again, or the idle poll.
pub(super) async fn claim_loop<T: TokenSource>(
    inner: Arc<Workers<T>>,
    sink: mpsc::UnboundedSender<Outcome>,
    mut stop: watch::Receiver<bool>,
) {
    let wake = inner.hub.wake_signal();
    // What may be due: `any` connector, or these. A claim that leaves some connectors out
    // (saturated here, or backing off) is made only when a connector it would not leave out
    // may have due work: otherwise it would scan the left-out connectors' backlog for nothing.
    let mut any = true;
    let mut candidates: HashSet<ConnectorId> = HashSet::new();
    let mut floor = Floor::new(inner.store.is_postgres());
    let mut rescan = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let hints = inner.hub.take_hints();
        any |= hints.any;
        rescan |= hints.from_start;
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
        let due_from = floor.bound(std::time::Instant::now(), &excluded, rescan);
        rescan = false;
        let claimed = inner.claim_excluding(limit, excluded, due_from).await;
        match &claimed {
            Ok(rows) => floor.claimed(now, rows.len(), limit),
            Err(_) => floor.failed(),
        }
        match claimed {
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
                let _ = inner.dispatch(rows, &sink).await;
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

impl<T: TokenSource> Workers<T> {
    /// Connectors to leave out of the next claim: saturated here, or backing off.
    fn excluded(&self, now: i64) -> Vec<ConnectorId> {
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

    pub(super) async fn claim(&self, limit: usize) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let now = self.now();
        let excluded = self.excluded(now);
        self.claim_excluding(limit, excluded, FROM_START).await
    }

    /// Claims what is due when the claim gets its turn to write, not when it asked for it: the
    /// wait at the write gate is tens of milliseconds behind an ingest group under load, and
    /// what came due meanwhile (retries, rows stamped later) belongs in this claim.
    /// Nothing due before `due_from` is taken (the claimer's floor).
    async fn claim_excluding(
        &self,
        limit: usize,
        excluded: Vec<ConnectorId>,
        due_from: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let token = format!(
            "{}:{}",
            self.node,
            self.batches.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let lease_ms = self.opts.lease.as_millis() as i64;
        self.hub.turns().claim_started();
        let _turn = self.writes.enter().await;
        let now = self.now();
        self.store
            .claim_due_from(now, now + lease_ms, &token, limit, &excluded, due_from)
            .await
    }

    /// Decide each claimed delivery: fail (connector gone), hold (not active), give back
    /// (breaker open) or start sending. Returns the sending tasks.
    pub(super) async fn dispatch(
        self: &Arc<Self>,
        rows: Vec<ClaimedDelivery>,
        sink: &mpsc::UnboundedSender<Outcome>,
    ) -> Vec<JoinHandle<()>> {
        self.owned.fetch_add(rows.len(), AtomicOrdering::SeqCst);
        let mut targets: HashMap<(AccountId, String), Option<Arc<Target>>> = HashMap::new();
        let mut tasks = Vec::new();
        let now = self.now();
        for row in rows {
            let key = (row.account_id.clone(), row.connector_name.clone());
            if !targets.contains_key(&key) {
                let loaded = match self.store.account_connectors(&row.account_id).await {
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

    fn finish(&self, outcome: Outcome, sink: &mpsc::UnboundedSender<Outcome>) {
        let _ = sink.send(outcome);
        self.owned.fetch_sub(1, AtomicOrdering::SeqCst);
        self.capacity.notify_one();
    }
}
