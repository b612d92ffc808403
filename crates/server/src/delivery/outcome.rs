//! What becomes of a delivery: the outcome the recorder writes, and the policy that turns an
//! endpoint's answer, or a token that could not be had, into delivered, retry later, failed or
//! held (DESIGN.md "Delivery: the rules").

use std::time::Duration;

use hookwarden_core::Verdict;
use hookwarden_store::{ClaimedDelivery, Completion, ConnectorStatus, DeliveryStatus, NewAttempt};

use super::http::Sent;
use super::target::{Auth, Target};
use super::workers::Workers;
use super::{TokenFailure, TokenSource};

/// A token endpoint that failed transiently without a Retry-After is asked again after this.
const TOKEN_RETRY: Duration = Duration::from_secs(5);
const TOKEN_ERROR_PREFIX: &str = "token: ";

/// What became of one claimed delivery, for the recorder.
pub(super) struct Outcome {
    pub(super) completion: Completion,
    pub(super) attempts: Vec<NewAttempt>,
    pub(super) account: String,
    pub(super) connector: String,
    pub(super) connector_id: String,
    pub(super) label: &'static str,
}

impl Outcome {
    pub(super) fn new(
        row: &ClaimedDelivery,
        status: DeliveryStatus,
        attempts: Vec<NewAttempt>,
    ) -> Self {
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

    pub(super) fn at(mut self, next_attempt_at: i64) -> Self {
        self.completion.next_attempt_at = Some(next_attempt_at);
        self
    }

    pub(super) fn error(mut self, message: impl Into<String>) -> Self {
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

/// An endpoint's answer (or its absence) to one POST, what it means, and the attempt to record.
pub(super) struct Answer {
    pub(super) sent: Sent,
    pub(super) verdict: Verdict,
    pub(super) attempt: NewAttempt,
}

/// The policy's decision on an answer.
pub(super) enum Judged {
    Done(Outcome),
    /// The endpoint refused the access token (a first 401): send again at once with a new
    /// one. The attempts so far come back, to be recorded with the next.
    Resend(Vec<NewAttempt>),
}

impl<T: TokenSource> Workers<T> {
    /// The outcome policy for an answer: delivered, retried later (counting towards the
    /// connector's breaker), failed, or held with the connector disabled (410 Gone).
    pub(super) async fn judge(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        mut attempts: Vec<NewAttempt>,
        answer: Answer,
        refreshed_after_401: bool,
    ) -> Judged {
        let record = &target.record;
        let Answer {
            sent,
            verdict,
            mut attempt,
        } = answer;
        match verdict {
            Verdict::Delivered => {
                attempts.push(attempt);
                target.lane.on_success();
                Judged::Done(Outcome::new(row, DeliveryStatus::Delivered, attempts))
            }
            Verdict::Unauthorized
                if matches!(target.auth, Auth::Bearer) && !refreshed_after_401 =>
            {
                attempt.diagnosis = Some("the endpoint refused the access token (401); it was invalidated and a new one requested at once".to_owned());
                attempts.push(attempt);
                Judged::Resend(attempts)
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
                    return Judged::Done(
                        Outcome::new(row, DeliveryStatus::Failed, attempts).error(diagnosis),
                    );
                }
                Judged::Done(self.retry_later(target, row, attempts, None, diagnosis.to_owned()))
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
                Judged::Done(self.retry_later(target, row, attempts, retry_after, message))
            }
            Verdict::Fail { diagnosis } => {
                attempt.diagnosis = Some(diagnosis.clone());
                attempts.push(attempt);
                let message = sent
                    .failure
                    .as_ref()
                    .map(|(_, m)| m.clone())
                    .unwrap_or(diagnosis);
                Judged::Done(Outcome::new(row, DeliveryStatus::Failed, attempts).error(message))
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
                Judged::Done(Outcome::new(row, DeliveryStatus::Held, attempts).error(diagnosis))
            }
        }
    }

    /// Pending again after the schedule's next delay, or the endpoint's Retry-After if that is
    /// later; failed once the schedule is spent.
    pub(super) fn retry_later(
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
    pub(super) async fn token_failure(
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
