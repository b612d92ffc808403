//! What becomes of a delivery: the outcome the recorder writes, and the policy that turns an
//! endpoint's answer, or a token that could not be had, into delivered, retry later, failed or
//! held (DESIGN.md "Delivery: the rules").

use std::time::Duration;

use hookwarden_core::diagnosis::Code;
use hookwarden_core::{AccountId, ConnectorId, DeliveryId, DeliveryStatus, DiagnosisView, Verdict};
use hookwarden_store::{ClaimedDelivery, Completion, NewAttempt};

use super::http::Sent;
use super::target::{Auth, Target};
use super::workers::Workers;
use super::{TokenFailure, TokenSource};

/// A token endpoint that failed transiently without a Retry-After is asked again after this.
const TOKEN_RETRY: Duration = Duration::from_secs(5);
/// Starts the stored error text of an attempt (and a delivery) that got no token.
const TOKEN_ERROR_PREFIX: &str = "token: ";

/// What became of one claimed delivery, for the recorder.
pub(super) struct Outcome {
    pub(super) completion: Completion,
    pub(super) attempts: Vec<Attempt>,
    pub(super) account: AccountId,
    pub(super) connector: String,
    pub(super) connector_id: ConnectorId,
    pub(super) delivery_id: DeliveryId,
    pub(super) kind: OutcomeKind,
}

/// How a delivery's turn ended: what `run_once` counts and the outcome metric's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum OutcomeKind {
    Delivered,
    /// Pending again after an attempt.
    Retry,
    Failed,
    Held,
    /// Given back unattempted.
    Released,
}

impl OutcomeKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Retry => "retry",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Held => "held",
            OutcomeKind::Released => "released",
        }
    }
}

/// One attempt to record, and whether it used up a try of the delivery's retry schedule.
pub(super) struct Attempt {
    pub(super) record: NewAttempt,
    pub(super) kind: AttemptKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttemptKind {
    /// A request went to the endpoint, answered or not: one try of the schedule.
    Http,
    /// No access token could be had: recorded beside the tries, not counted against them.
    Token,
}

impl Attempt {
    pub(super) fn http(record: NewAttempt) -> Self {
        Self {
            record,
            kind: AttemptKind::Http,
        }
    }

    fn token(record: NewAttempt) -> Self {
        Self {
            record,
            kind: AttemptKind::Token,
        }
    }
}

impl Outcome {
    pub(super) fn new(
        row: &ClaimedDelivery,
        status: DeliveryStatus,
        attempts: Vec<Attempt>,
    ) -> Self {
        let kind = match status {
            DeliveryStatus::Delivered => OutcomeKind::Delivered,
            DeliveryStatus::Failed => OutcomeKind::Failed,
            DeliveryStatus::Held => OutcomeKind::Held,
            DeliveryStatus::Pending if attempts.is_empty() => OutcomeKind::Released,
            DeliveryStatus::Pending => OutcomeKind::Retry,
        };
        Self {
            completion: Completion {
                seq: row.seq,
                lease_token: row.lease_token.clone(),
                status,
                attempts_added: attempts
                    .iter()
                    .filter(|a| a.kind == AttemptKind::Http)
                    .count() as i64,
                next_attempt_at: None,
                last_error: None,
            },
            attempts,
            account: row.account_id.clone(),
            connector: row.connector_name.clone(),
            connector_id: row.connector_id.clone(),
            delivery_id: row.id.clone(),
            kind,
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

/// An endpoint's answer (or its absence) to one POST, what it means, and the attempt to record.
pub(super) struct Answer {
    pub(super) sent: Sent,
    pub(super) verdict: Verdict,
    pub(super) attempt: NewAttempt,
}

/// The policy's decision on an answer.
pub(super) enum Judged {
    Done(Outcome),
    /// The endpoint refused the access token (a first 401, or a second whose token had been
    /// granted before the first: see `Workers::deliver`): send again at once with another.
    /// The attempts so far come back, to be recorded with the next.
    Resend(Vec<Attempt>),
}

impl<T: TokenSource> Workers<T> {
    /// The outcome policy for an answer: delivered, retried later (counting towards the
    /// connector's breaker), failed, or held with the connector disabled (410 Gone).
    pub(super) async fn judge(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        mut attempts: Vec<Attempt>,
        answer: Answer,
        may_resend: bool,
    ) -> Judged {
        let record = &target.record;
        let Answer {
            sent,
            verdict,
            mut attempt,
        } = answer;
        match verdict {
            Verdict::Delivered => {
                attempts.push(Attempt::http(attempt));
                // Its breaker had opened here, or on another node (the record says so): the
                // first node to see a delivery through says it recovered.
                if target.lane.on_success() || record.failing_since.is_some() {
                    if let Err(e) = self.store.clear_failing(&record.id, self.now()).await {
                        tracing::warn!(error = %e, "recording a connector's recovery failed");
                    }
                }
                Judged::Done(Outcome::new(row, DeliveryStatus::Delivered, attempts))
            }
            Verdict::Unauthorized if matches!(target.auth, Auth::Bearer) && may_resend => {
                attempt.diagnosis = Some(
                    Code::InvalidSession
                        .diagnosis()
                        .with_cause("the endpoint refused the access token (401); it was invalidated and a new one requested at once")
                        .into(),
                );
                attempts.push(Attempt::http(attempt));
                Judged::Resend(attempts)
            }
            Verdict::Unauthorized if matches!(target.auth, Auth::Nothing) => {
                let message = "the notification endpoint answered 401; it takes no credential from hookwarden, so check that its url is the one it gave (a Slack webhook url revoked in Slack answers so)".to_owned();
                attempts.push(Attempt::http(attempt));
                Judged::Done(self.retry_later(target, row, attempts, None, message))
            }
            Verdict::Unauthorized => {
                let basic = matches!(target.auth, Auth::Basic(_));
                let diagnosis = if basic {
                    Code::CallbackKeyRefused.diagnosis()
                } else {
                    Code::FreshTokenRefused.diagnosis()
                };
                let message = diagnosis.cause.clone();
                attempt.diagnosis = Some(diagnosis.into());
                attempts.push(Attempt::http(attempt));
                if basic {
                    return Judged::Done(
                        Outcome::new(row, DeliveryStatus::Failed, attempts).error(message),
                    );
                }
                Judged::Done(self.retry_later(target, row, attempts, None, message))
            }
            Verdict::Retry {
                retry_after,
                diagnosis,
            } => {
                let message = diagnosis.cause.clone();
                attempt.diagnosis = Some(diagnosis.into());
                attempts.push(Attempt::http(attempt));
                if let Some(until) = target.lane.on_failure(self.now(), &self.opts) {
                    tracing::warn!(connector = %record.name, account = %record.account_id, "connector keeps failing; its deliveries back off as a whole");
                    if let Err(e) = self.store.mark_failing(&record.id, until, self.now()).await {
                        tracing::warn!(error = %e, "deferring a failing connector's deliveries failed");
                    }
                }
                Judged::Done(self.retry_later(target, row, attempts, retry_after, message))
            }
            Verdict::Fail { diagnosis } => {
                let message = sent
                    .failure
                    .as_ref()
                    .map(|(_, m)| m.clone())
                    .unwrap_or_else(|| diagnosis.cause.clone());
                attempt.diagnosis = Some(diagnosis.into());
                attempts.push(Attempt::http(attempt));
                Judged::Done(Outcome::new(row, DeliveryStatus::Failed, attempts).error(message))
            }
            Verdict::Gone { diagnosis } => {
                let message = diagnosis.cause.clone();
                let diagnosis = DiagnosisView::from(diagnosis);
                attempt.diagnosis = Some(diagnosis.clone());
                attempts.push(Attempt::http(attempt));
                match self
                    .store
                    .mark_gone(
                        &record.id,
                        record.credentials_version,
                        &diagnosis,
                        self.now(),
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::warn!(connector = %record.name, account = %record.account_id, "endpoint answered 410 Gone; connector disabled");
                    }
                    Err(e) => tracing::error!(error = %e, "disabling a connector failed"),
                }
                Judged::Done(Outcome::new(row, DeliveryStatus::Held, attempts).error(message))
            }
        }
    }

    /// Pending again after the schedule's next delay, or the endpoint's Retry-After if that is
    /// later; failed once the schedule is spent.
    pub(super) fn retry_later(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        attempts: Vec<Attempt>,
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
    pub(super) fn token_failure(
        &self,
        row: &ClaimedDelivery,
        mut attempts: Vec<Attempt>,
        failure: TokenFailure,
    ) -> Outcome {
        let now = self.now();
        match failure {
            TokenFailure::Transient {
                retry_after,
                message,
                diagnosis,
            } => {
                attempts.push(Attempt::token(NewAttempt {
                    delivery_id: row.id.clone(),
                    at: now,
                    status_code: None,
                    duration_ms: 0,
                    response_excerpt: None,
                    error: Some(format!("{TOKEN_ERROR_PREFIX}{message}")),
                    diagnosis: Some(diagnosis.into()),
                    refreshed: false,
                }));
                // A provider's Retry-After arrives capped (core::retry::parse_retry_after).
                let wait = retry_after.unwrap_or(TOKEN_RETRY);
                Outcome::new(row, DeliveryStatus::Pending, attempts)
                    .at(now + wait.as_millis() as i64)
                    .error(format!("{TOKEN_ERROR_PREFIX}{message}"))
            }
            // The token source has moved the connector to needs_reauth and held its other
            // deliveries; this one waits with them.
            TokenFailure::NeedsReauth { message } => {
                Outcome::new(row, DeliveryStatus::Held, attempts).error(format!(
                    "held: the connector needs re-authentication: {message}"
                ))
            }
            // Likewise disabled, its url not in the org: no token was sent anywhere.
            TokenFailure::Disabled { message } => Outcome::new(row, DeliveryStatus::Held, attempts)
                .error(format!("held: the connector is disabled: {message}")),
        }
    }
}
