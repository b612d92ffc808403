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
    /// The access token's grant, for a bearer connector: invalidated if it is refused.
    bearer: Option<Bearer>,
}

/// Sent, and answered or not: the answer waits for the outcome policy.
struct Answered {
    attempts: Vec<Attempt>,
    answer: Answer,
    bearer: Option<Bearer>,
}

/// What is known of a token the endpoint refused (401): when it was granted, and when it was
/// refused (both ms).
#[derive(Debug, Clone, Copy)]
struct Refused {
    granted_at: Option<i64>,
    at: i64,
}

impl Refused {
    /// Whether a stored token granted at `granted_at` has, by the refusal, lived half as long
    /// as the refused one did (or its age or the refused token's lifetime is unknown).
    fn outlived_by(self, granted_at: Option<i64>) -> bool {
        match (self.granted_at, granted_at) {
            (Some(refused_granted), Some(granted)) => {
                let lived = self.at - refused_granted;
                let age = self.at - granted;
                age * 2 >= lived
            }
            _ => true,
        }
    }
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
    /// the rules"), including the one immediate retry after a 401.
    pub(super) async fn deliver(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        claimed_at: i64,
    ) -> Outcome {
        let mut refreshed_after_401 = false;
        // After a 401: when the refused token was granted, if known.
        let mut refused: Option<Refused> = None;
        let mut stage = Stage::Claimed(Vec::new());
        loop {
            stage = match stage {
                Stage::Claimed(attempts) => self.authorize(target, row, attempts, refused).await,
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
                    match self
                        .judge(target, row, attempts, answer, refreshed_after_401)
                        .await
                    {
                        Judged::Done(outcome) => Stage::Done(outcome),
                        Judged::Resend(attempts) => {
                            if let Some(b) = &bearer {
                                self.tokens.invalidate(&target.record.id, b.version).await;
                            }
                            refused = Some(Refused {
                                granted_at: bearer.as_ref().and_then(|b| b.granted_at),
                                at: self.now(),
                            });
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
    /// source. No token ends the delivery's turn (`token_failure`). After a 401 (`refused`)
    /// the replacement must not be as old as the refused token was: a stored token that an
    /// earlier grant made (another node's, or this node's for another delivery) is newer than
    /// the refused one, yet where sessions end by time it may be as near its end. The refused
    /// token lived from its grant to the 401; a stored one that has lived half of that already
    /// is dropped too and one more is asked for, granted now (or shared with a grant made
    /// since). A replacement granted moments ago, as when many deliveries meet the same
    /// session's end, is used as it is.
    async fn authorize(
        &self,
        target: &Target,
        row: &ClaimedDelivery,
        attempts: Vec<Attempt>,
        refused: Option<Refused>,
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
                let mut b = match self.bearer(record).await {
                    Ok(b) => b,
                    Err(failure) => return Stage::Done(self.token_failure(row, attempts, failure)),
                };
                if refused.is_some_and(|r| !b.refreshed && r.outlived_by(b.granted_at)) {
                    self.tokens.invalidate(&record.id, b.version).await;
                    b = match self.bearer(record).await {
                        Ok(b) => b,
                        Err(failure) => {
                            return Stage::Done(self.token_failure(row, attempts, failure))
                        }
                    };
                }
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

#[cfg(test)]
mod tests {
    use super::Refused;

    #[test]
    fn a_replacement_half_as_old_as_the_refused_token_lived_is_dropped() {
        // Refused 2 s after its grant.
        let r = Refused {
            granted_at: Some(10_000),
            at: 12_000,
        };
        assert!(!r.outlived_by(Some(11_950)), "granted moments ago: used");
        assert!(!r.outlived_by(Some(11_100)));
        assert!(r.outlived_by(Some(11_000)), "a second old: dropped");
        assert!(
            r.outlived_by(Some(10_050)),
            "nearly as old as the refused one"
        );
        assert!(r.outlived_by(None), "age unknown: dropped");
        let unknown = Refused {
            granted_at: None,
            at: 12_000,
        };
        assert!(unknown.outlived_by(Some(11_999)));
    }
}
