//! The recorder: writes outcomes and their attempts in batches under the write gate, wakes
//! the claimer for the next delivery of an ordered package, and counts the outcomes in metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookwarden_core::{AccountId, ConnectorId, DiagnosisView, NotificationType};
use hookwarden_store::{Completion, FailedDelivery, NewAttempt, StoreError};
use tokio::sync::mpsc;

use super::metrics;
use super::outcome::{Outcome, OutcomeKind};
use super::workers::Workers;
use super::TokenSource;

/// Outcomes written per transaction at most.
const RECORD_BATCH: usize = 1024;
/// A recorder that finds fewer outcomes than this waits `RECORD_GATHER` once for more, so
/// that outcomes are written a few hundred per transaction rather than a few.
const RECORD_SMALL: usize = 128;
const RECORD_GATHER: Duration = Duration::from_millis(2);

/// Writes outcomes as they come, a few hundred per transaction; ends when every sender is gone.
pub(super) async fn record_loop<T: TokenSource>(
    inner: Arc<Workers<T>>,
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
            match inner.record(&b).await {
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

impl<T: TokenSource> Workers<T> {
    pub(super) async fn record(&self, outcomes: &[Outcome]) -> Result<(), StoreError> {
        let completions: Vec<Completion> = outcomes.iter().map(|o| o.completion.clone()).collect();
        let attempts: Vec<NewAttempt> = outcomes
            .iter()
            .flat_map(|o| o.attempts.iter().map(|a| a.record.clone()))
            .collect();
        let failed = self.failed_to_tell(outcomes).await?;
        {
            let _turn = self.writes.enter().await;
            self.store
                .record_outcomes_noting(&completions, &attempts, &failed, self.now())
                .await?;
        }
        // The next delivery of a package may be due now that the one before it is done.
        {
            let ordered = self.ordered.lock().expect("ordered lock");
            if !ordered.is_empty() {
                let done: Vec<&ConnectorId> = outcomes
                    .iter()
                    .filter(|o| ordered.contains(&o.connector_id))
                    .map(|o| &o.connector_id)
                    .collect();
                drop(ordered);
                if !done.is_empty() {
                    self.hub.wake_for_waiting(done);
                }
            }
        }
        // Metrics per (account, connector): one lookup and no label strings per delivery.
        let mut counts: HashMap<(&AccountId, &str, OutcomeKind), u64> = HashMap::new();
        let mut latencies: HashMap<(&AccountId, &str), Vec<f64>> = HashMap::new();
        for o in outcomes {
            *counts
                .entry((&o.account, o.connector.as_str(), o.kind))
                .or_default() += 1;
            for a in o.attempts.iter().map(|a| &a.record) {
                if a.status_code.is_some() || a.duration_ms > 0 {
                    latencies
                        .entry((&o.account, o.connector.as_str()))
                        .or_default()
                        .push(a.duration_ms as f64 / 1000.0);
                }
            }
        }
        for ((account, connector, kind), n) in counts {
            metrics::delivery_outcomes(
                &self.account_label(account).await,
                connector,
                kind.label(),
                n,
            );
        }
        for ((account, connector), seconds) in latencies {
            metrics::attempt_latencies(&self.account_label(account).await, connector, &seconds);
        }
        Ok(())
    }

    /// The failed deliveries whose account has an endpoint that takes `delivery.failed`
    /// (none of a notification endpoint's own), with the diagnosis of their last attempt.
    async fn failed_to_tell(
        &self,
        outcomes: &[Outcome],
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        let mut told: HashMap<&AccountId, bool> = HashMap::new();
        let mut failed = Vec::new();
        for o in outcomes.iter().filter(|o| o.kind == OutcomeKind::Failed) {
            if !told.contains_key(&o.account) {
                let takes = self
                    .store
                    .account_connectors(&o.account)
                    .await?
                    .iter()
                    .any(|r| {
                        r.credentials.notification_format().is_some()
                            && r.events
                                .iter()
                                .any(|t| t == NotificationType::DeliveryFailed.as_str())
                    });
                told.insert(&o.account, takes);
            }
            if !told[&o.account] {
                continue;
            }
            let diagnosis = o
                .attempts
                .iter()
                .rev()
                .find_map(|a| a.record.diagnosis.clone())
                .or_else(|| {
                    o.completion
                        .last_error
                        .as_deref()
                        .map(|e| DiagnosisView::unclassified(e, None))
                });
            failed.push(FailedDelivery {
                delivery_id: o.delivery_id.clone(),
                connector_id: o.connector_id.clone(),
                diagnosis,
            });
        }
        Ok(failed)
    }
}
