//! One delivery, stage by stage: claimed → authorized → answered → outcome, and back to
//! claimed once when the endpoint refuses the access token (401).

use axum::http::HeaderValue;
use hookwarden_core::retry::{classify_status, classify_transport, parse_retry_after};
use hookwarden_core::DeliveryStatus;
use hookwarden_store::{ClaimedDelivery, ConnectorRecord, NewAttempt};
use secrecy::ExposeSecret;

use super::metrics;
use super::outcome::{Answer, Attempt, Judged, Outcome};
use super::target::{Auth, Target};
use super::workers::Workers;
use super::{Bearer, TokenFailure, TokenSource};

/// How long a delivery waits when the provider's token cannot be used as a header.
const CONFIG_PROBLEM_RETRY_MS: i64 = 60_000;

/// Where one delivery stands. Each stage owns the attempts made so far and hands them on.
enum Stage {
    /// Its turn has come (again, after a 401); it has no credential yet.
    Claimed(Vec<Attempt>),
    Authorized(Authorized),
    /// Boxed: an answer carries its diagnosis, several times the size of the other stages.
    Answered(Box<Answered>),
    Done(Outcome),
}

/// A credential in hand, ready to send.
struct Authorized {
    attempts: Vec<Attempt>,
    /// `None` for a notification endpoint.
    authorization: Option<HeaderValue>,
    /// The access token's grant, for a bearer connector: reported to the token source if the
    /// endpoint refuses it.
    bearer: Option<Bearer>,
}

/// Sent, and answered or not: the answer waits for the outcome policy.
struct Answered {
    attempts: Vec<Attempt>,
    answer: Answer,
    bearer: Option<Bearer>,
}

impl<T: TokenSource> Workers<T> {
    async fn bearer(&self, record: &ConnectorRecord) -> Result<Bearer, TokenFailure> {
        let result = self.tokens.bearer(record).await;
        // A cached token is no grant: not counted.
        let outcome = match &result {
            Ok(b) if b.refreshed => Some("ok"),
            Ok(_) => None,
            Err(TokenFailure::Transient { .. }) => Some("transient_failure"),
            Err(TokenFailure::NeedsReauth { .. }) => Some("needs_reauth"),
            Err(TokenFailure::Disabled { .. }) => Some("url_not_in_org"),
        };
        if let Some(outcome) = outcome {
            metrics::grant(
                &self.account_label(&record.account_id).await,
                &record.name,
                outcome,
            );
        }
        result
    }

    /// Send one delivery: token, signature, POST, and the outcome policy (DESIGN.md "Delivery:
    /// the rules"), including the immediate retry after a 401: once with another token; once
    /// more if that token too was refused and had been granted before the first refusal (a
    /// stored token that was as stale, where sessions end by the clock), never after a token
    /// granted since: an endpoint that refuses a fresh token is not fixed by another
    /// (`fresh_token_refused`).
    pub(super) async fn deliver(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        claimed_at: i64,
    ) -> Outcome {
        let mut refreshed_after_401 = false;
        // When the endpoint first refused a token in this turn, and how many resends followed.
        let mut first_refusal: Option<i64> = None;
        let mut resends = 0;
        let mut stage = Stage::Claimed(Vec::new());
        loop {
            stage = match stage {
                Stage::Claimed(attempts) => self.authorize(target, row, attempts).await,
                Stage::Authorized(authorized) => {
                    self.send(target, row, claimed_at, authorized, refreshed_after_401)
                        .await
                }
                Stage::Answered(answered) => {
                    let Answered {
                        attempts,
                        answer,
                        bearer,
                    } = *answered;
                    let may_resend = match first_refusal {
                        None => true,
                        Some(at) => {
                            resends < 2
                                && bearer
                                    .as_ref()
                                    .and_then(|b| b.granted_at)
                                    .is_some_and(|granted| granted < at)
                        }
                    };
                    match self.judge(target, row, attempts, answer, may_resend).await {
                        Judged::Done(outcome) => Stage::Done(outcome),
                        Judged::Resend(attempts) => {
                            // The token engine then serves neither this token nor one as
                            // near its session's end (another node's grant made before this
                            // request was sent may be).
                            let now = self.now();
                            if let Some(b) = &bearer {
                                self.tokens.refused(&target.record.id, b, now).await;
                            }
                            first_refusal.get_or_insert(now);
                            resends += 1;
                            refreshed_after_401 = true;
                            Stage::Claimed(attempts)
                        }
                    }
                }
                Stage::Done(outcome) => return outcome,
            };
        }
    }

    /// The credential: the default callback's Basic key, or an access token from the token
    /// source (after a 401, one the token engine holds to be no nearer its end than the
    /// refused one: see `TokenSource::refused`). No token ends the delivery's turn
    /// (`token_failure`).
    async fn authorize(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        attempts: Vec<Attempt>,
    ) -> Stage {
        let record = &target.record;
        let mut bearer: Option<Bearer> = None;
        let authorization = match &target.auth {
            Auth::Unusable(why) => {
                return Stage::Done(
                    Outcome::new(row, DeliveryStatus::Failed, attempts).error(why.clone()),
                );
            }
            Auth::Basic(value) => Some(value.clone()),
            Auth::Nothing => None,
            Auth::Bearer => {
                let b = match self.bearer(record).await {
                    Ok(b) => b,
                    Err(failure) => return Stage::Done(self.token_failure(row, attempts, failure)),
                };
                let value = HeaderValue::from_str(&format!("Bearer {}", b.token.expose_secret()));
                let Ok(mut value) = value else {
                    // The provider's token is unusable, not the delivery: wait, not fail.
                    return Stage::Done(Outcome::new(row, DeliveryStatus::Pending, attempts)
                        .at(self.now() + CONFIG_PROBLEM_RETRY_MS)
                        .error("the token endpoint returned an access token that cannot be sent in a header"));
                };
                value.set_sensitive(true);
                bearer = Some(b);
                Some(value)
            }
        };
        Stage::Authorized(Authorized {
            attempts,
            authorization,
            bearer,
        })
    }

    /// Sign and POST, if the lease still leaves time for it; classify the answer and draft the
    /// attempt.
    async fn send(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        claimed_at: i64,
        authorized: Authorized,
        refreshed_after_401: bool,
    ) -> Stage {
        let record = &target.record;
        let Authorized {
            attempts,
            authorization,
            bearer,
        } = authorized;
        // `max_per_second`: the request's turn comes here, once its token is in hand, so that a
        // wait for a grant does not gather turns that then go out together.
        target.lane.pace().await;
        // Getting a token (or a turn) may have waited on another node's grant: if the lease
        // could now end mid-request, give the delivery back rather than race a second sender.
        let now = self.now();
        if !self.lease_left(claimed_at, now) {
            return Stage::Done(Outcome::new(row, DeliveryStatus::Pending, attempts).at(now));
        }
        // What the receiver might echo back must not land in the attempt's excerpt.
        let credential = authorization
            .as_ref()
            .and_then(|a| a.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .map(|(_, c)| c.to_owned())
            .filter(|c| c.len() >= 8);
        let refreshed = refreshed_after_401 || bearer.as_ref().is_some_and(|b| b.refreshed);
        let at = self.now();
        // The signature's timestamp is wall-clock time: receivers check it against theirs.
        let timestamp = chrono::Utc::now().timestamp();
        let headers =
            target
                .signer
                .headers(authorization, row.id.as_str(), timestamp, &row.payload);
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
                &sent.body,
            ),
            (None, None) => classify_transport(hookwarden_core::TransportFailure::Other),
        };
        let attempt = NewAttempt {
            delivery_id: row.id.clone(),
            at,
            status_code: sent.status.map(i64::from),
            duration_ms: sent.duration.as_millis() as i64,
            response_excerpt: (!sent.body.is_empty()).then(|| sent.excerpt(credential.as_deref())),
            error: sent.failure.as_ref().map(|(_, message)| message.clone()),
            diagnosis: None,
            refreshed,
        };
        Stage::Answered(Box::new(Answered {
            attempts,
            answer: Answer {
                sent,
                verdict,
                attempt,
            },
            bearer,
        }))
    }
}
