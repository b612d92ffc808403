//! One call to a provider: sent through the guarded client, diagnosed when refused, and written
//! as a line of the connector's history (grants, hooks, introspection, revocation, codes).

use std::time::Duration;

use hookwarden_core::diagnosis::{self, Code, Diagnosis, ProviderFailure};
use hookwarden_store::{HistoryKind, NewHistoryEntry};

use super::{Ctx, Inner};
use crate::error::TokenError;
use crate::grant::{self, Tokens};
use crate::http::{Outgoing, Reply};

/// Which call an answer belongs to.
#[derive(Clone, Copy)]
pub(super) struct Attempt<'a> {
    pub(super) kind: HistoryKind,
    pub(super) grant_type: &'a str,
    pub(super) what: &'a str,
}

/// An answer `exchange` lets through: a 2xx, or an error code the caller accepts.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) duration: Duration,
}

/// One finished call, for the history.
pub(super) struct Call {
    pub(super) http_status: Option<u16>,
    pub(super) error: Option<String>,
    pub(super) error_description: Option<String>,
    pub(super) duration: Duration,
    pub(super) excerpt: Option<String>,
}

impl Call {
    /// An answer as the history shows it: its status, its time and its body's excerpt with the
    /// connector's secrets redacted.
    pub(super) fn answered(ctx: &Ctx, answer: &Answer) -> Self {
        Call {
            http_status: Some(answer.status),
            error: None,
            error_description: None,
            duration: answer.duration,
            excerpt: ctx.redactor.excerpt(&answer.body),
        }
    }
}

impl Inner {
    pub(super) async fn record(
        &self,
        ctx: &Ctx,
        kind: HistoryKind,
        grant_type: Option<&str>,
        outcome: &str,
        call: &Call,
        diagnosis: Option<&Diagnosis>,
    ) {
        let entry = NewHistoryEntry {
            connector_id: ctx.record.id.clone(),
            account_id: ctx.record.account_id.clone(),
            at: self.now_ms(),
            kind,
            grant_type: grant_type.map(str::to_owned),
            outcome: outcome.to_owned(),
            http_status: call.http_status.map(i64::from),
            error: call.error.clone(),
            error_description: call.error_description.clone(),
            diagnosis_code: diagnosis.map(|d| d.code.to_owned()),
            cause: diagnosis.map(|d| d.cause.clone()),
            fix: diagnosis.map(|d| d.fix.clone()),
            duration_ms: i64::try_from(call.duration.as_millis()).unwrap_or(i64::MAX),
            excerpt: call.excerpt.clone(),
        };
        if let Err(e) = self.store.record_history(&entry).await {
            tracing::warn!(connector = %ctx.record.id, error = %e, "could not record history");
        }
    }

    /// The history line of one call of `attempt`, under its grant type.
    pub(super) async fn record_attempt(
        &self,
        ctx: &Ctx,
        attempt: Attempt<'_>,
        outcome: &str,
        call: &Call,
        diagnosis: Option<&Diagnosis>,
    ) {
        let grant_type = Some(attempt.grant_type);
        self.record(ctx, attempt.kind, grant_type, outcome, call, diagnosis)
            .await;
    }

    /// Record a usable answer: the attempt went `ok`.
    pub(super) async fn record_ok(&self, ctx: &Ctx, attempt: Attempt<'_>, answer: &Answer) {
        let call = Call::answered(ctx, answer);
        self.record_attempt(ctx, attempt, "ok", &call, None).await;
    }

    /// Send, and turn anything but a 2xx (or an accepted error code) into a recorded,
    /// diagnosed `TokenError`. A 2xx is returned unrecorded: the caller records it once it
    /// knows whether the answer is usable.
    pub(super) async fn exchange(
        &self,
        ctx: &Ctx,
        attempt: Attempt<'_>,
        out: Outgoing,
        accepted_errors: &[&str],
    ) -> Result<Answer, TokenError> {
        let grant_type = attempt.grant_type;
        match self.http.post(out).await {
            Reply::Answer {
                status,
                retry_after,
                body,
                duration,
            } => {
                let answer = Answer {
                    status,
                    body,
                    duration,
                };
                let (error, description) = grant::parse_error(&answer.body);
                let accepted = error
                    .as_deref()
                    .is_some_and(|e| accepted_errors.contains(&e));
                if (200..300).contains(&status) || accepted {
                    return Ok(answer);
                }
                let description = description.map(|d| ctx.redactor.text(&d));
                let host = ctx.host();
                let diagnosis = diagnosis::diagnose(&ProviderFailure {
                    http_status: Some(status),
                    error: error.as_deref(),
                    error_description: description.as_deref(),
                    grant_type: Some(grant_type),
                    host: host.as_deref(),
                    timed_out: false,
                });
                let call = Call {
                    error: error.clone(),
                    error_description: description.clone(),
                    ..Call::answered(ctx, &answer)
                };
                self.record_attempt(ctx, attempt, "failed", &call, Some(&diagnosis))
                    .await;
                tracing::info!(connector = %ctx.record.id, grant_type, status, error = error.as_deref().unwrap_or(""), diagnosis = diagnosis.code, "provider refused the call");
                let detail = match (&error, &description) {
                    (Some(e), Some(d)) => Some(format!("HTTP {status} {e}: {d}")),
                    (Some(e), None) => Some(format!("HTTP {status} {e}")),
                    _ => Some(format!("HTTP {status}")),
                };
                Err(TokenError::diagnosed(
                    attempt.what,
                    diagnosis,
                    detail,
                    Some(status),
                    retry_after,
                ))
            }
            Reply::NoAnswer {
                refused,
                timed_out,
                message,
                duration,
            } => {
                let diagnosis = match refused {
                    // Our own URL rules: the two a configuration change can newly break have
                    // codes of their own; the rest were checked when the key was given.
                    Some((code, cause, fix)) => Code::parse(code)
                        .filter(|c| matches!(c, Code::UrlNotHttps | Code::UrlAddressRefused))
                        .unwrap_or(Code::UrlRefused)
                        .diagnosis()
                        .with_cause(cause)
                        .with_fix(fix),
                    None => diagnosis::diagnose(&ProviderFailure {
                        timed_out,
                        grant_type: Some(grant_type),
                        ..Default::default()
                    }),
                };
                let message = ctx.redactor.text(&message);
                let call = Call {
                    http_status: None,
                    error: Some(diagnosis.code.to_owned()),
                    error_description: Some(message.clone()),
                    duration,
                    excerpt: None,
                };
                self.record_attempt(ctx, attempt, "failed", &call, Some(&diagnosis))
                    .await;
                tracing::info!(connector = %ctx.record.id, grant_type, diagnosis = diagnosis.code, "provider call got no answer");
                let mut e =
                    TokenError::diagnosed(attempt.what, diagnosis, Some(message), None, None);
                if e.is_transient() {
                    e = e.with_retry_after(Duration::from_secs(1));
                }
                Err(e)
            }
        }
    }

    /// The tokens of a grant's answer, which from now on are redacted wherever the connector's
    /// secrets are; an answer without usable tokens is recorded and becomes the error.
    pub(super) async fn tokens_of(
        &self,
        ctx: &mut Ctx,
        attempt: Attempt<'_>,
        answer: &Answer,
    ) -> Result<Tokens, TokenError> {
        match grant::parse_tokens(&answer.body) {
            Ok(tokens) => {
                ctx.redactor.add(Some(&tokens.access_token));
                ctx.redactor.add(tokens.refresh_token.as_ref());
                Ok(tokens)
            }
            Err(why) => Err(self
                .unusable(ctx, attempt, answer, diagnosis::unusable_response(&why))
                .await),
        }
    }

    /// Record a 2xx answer that cannot be used, and make it the error.
    pub(super) async fn unusable(
        &self,
        ctx: &Ctx,
        attempt: Attempt<'_>,
        answer: &Answer,
        diagnosis: Diagnosis,
    ) -> TokenError {
        let status = answer.status;
        let call = Call {
            http_status: Some(status),
            error: Some(diagnosis.code.to_owned()),
            error_description: None,
            duration: answer.duration,
            // A 2xx answer that is not JSON may hold tokens the field redaction cannot find.
            excerpt: if (200..300).contains(&status)
                && serde_json::from_str::<serde_json::Value>(&answer.body).is_err()
            {
                None
            } else {
                ctx.redactor.excerpt(&answer.body)
            },
        };
        self.record_attempt(ctx, attempt, "failed", &call, Some(&diagnosis))
            .await;
        TokenError::diagnosed(
            attempt.what,
            diagnosis,
            Some(format!("HTTP {status}")),
            Some(status),
            None,
        )
    }
}
