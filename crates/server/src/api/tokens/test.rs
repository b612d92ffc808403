//! `POST …/test`: a connector checked end to end before it is trusted — its key, its status,
//! one real token grant and a harmless test event at its url — each check with its fix and
//! diagnosis, and the test recorded in the connector's history.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::Json;
use hookwarden_core::diagnosis::{
    diagnose_answer, diagnose_transport, unusable_response, Code, TransportFailure,
};
use hookwarden_core::{ConnectorStatus, Event, Problem};
use hookwarden_store::{ConnectorRecord, HistoryKind, NewHistoryEntry};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::super::connectors::load_connector;
use super::super::{rfc3339, DiagnosisOut};
use crate::auth::Authed;
use crate::delivery::signing::Signer;
use crate::error::{ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

/// How long a harmless test event may take at the endpoint.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// One line of a connector test.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `key`, `status`, `token`, `host` or `endpoint`.
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when `ok` is false (or about a warning).
    pub fix: Option<String>,
    /// A failed check's diagnosis (a check skipped for an earlier one's failure carries that
    /// one's); also a warning's. `null` otherwise.
    pub diagnosis: Option<DiagnosisOut>,
}

impl Check {
    fn with_diagnosis(mut self, diagnosis: Option<DiagnosisOut>) -> Self {
        self.diagnosis = diagnosis;
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestReport {
    /// Every check passed.
    pub ok: bool,
    pub checks: Vec<Check>,
}

fn check(name: &str, ok: bool, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        name: name.to_owned(),
        ok,
        detail: detail.into(),
        fix,
        diagnosis: None,
    }
}

/// The diagnosis of the last failed check: why a later check was skipped.
fn blocking(checks: &[Check]) -> Option<DiagnosisOut> {
    checks
        .iter()
        .rev()
        .find(|c| !c.ok)
        .and_then(|c| c.diagnosis.clone())
}

/// Check a connector before trusting it: its key, one real token grant, and a harmless test
/// event POSTed to its url. Each failed check says how to fix it.
#[utoipa::path(post, path = "/api/callback/connectors/{name}/test", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = TestReport), (status = 404, body = ErrorBody)))]
pub async fn test_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TestReport>> {
    let (_, record) = load_connector(&state, &authed, &name).await?;
    Ok(Json(run_test(&state, &record).await))
}

/// The test of one connector, as `…/test` answers it (the governance review's probe too).
pub(crate) async fn run_test(state: &AppState, record: &ConnectorRecord) -> TestReport {
    let mut checks = Vec::new();

    // The stored kind: `ConnectorKind::of(name)` until records carried it, which every
    // connector written so far has as its kind.
    let key = match record.credentials.oauth() {
        Ok((kind, key)) => {
            let endpoints = key.endpoints(kind);
            let settings = super::super::connectors::settings_of(record);
            let (detail, fix, diagnosis) = if settings.key_line_wrapped {
                let d = hookwarden_core::diagnosis::line_wrapped_key();
                (
                    format!(
                        "{} flow, token endpoint {}; {}",
                        key.flow().as_str(),
                        endpoints.token_url,
                        d.cause
                    ),
                    Some(d.fix.clone()),
                    Some(DiagnosisOut::from(&d)),
                )
            } else {
                (
                    format!(
                        "{} flow, token endpoint {}",
                        key.flow().as_str(),
                        endpoints.token_url
                    ),
                    None,
                    None,
                )
            };
            checks.push(check("key", true, detail, fix).with_diagnosis(diagnosis));
            Some(key)
        }
        Err(e) => {
            let d = Code::StoredKeyInvalid
                .diagnosis()
                .with_cause(e.to_string())
                .with_fix(e.fix());
            checks.push(
                check("key", false, e.to_string(), Some(e.fix()))
                    .with_diagnosis(Some(DiagnosisOut::from(&d))),
            );
            None
        }
    };

    let status_fix = record.status.fix().map(str::to_owned);
    let status_ok = status_fix.is_none();
    checks.push(
        check("status", status_ok, record.status.as_str(), status_fix)
            .with_diagnosis(record.diagnosis().map(DiagnosisOut::from)),
    );

    let token = if key.is_some() && status_ok {
        match state.tokens.force_grant(record).await {
            Ok(token) => {
                let expiry = token
                    .expires_at_ms
                    .map(|t| format!(", valid until {}", rfc3339(t)))
                    .unwrap_or_default();
                checks.push(check(
                    "token",
                    true,
                    format!("the provider granted a token{expiry}"),
                    None,
                ));
                Some(token)
            }
            Err(e) => {
                checks.push(
                    check("token", false, Problem::message(&e), Some(Problem::fix(&e)))
                        .with_diagnosis(Some(DiagnosisOut::from(&e.explained()))),
                );
                None
            }
        }
    } else if key.is_some() && record.status == ConnectorStatus::NeedsReauth {
        // The way back when the credentials were fine and the provider's setup was not; the
        // diagnosis is the refusal's, as the status check shows it.
        let refused = blocking(&checks);
        checks.push(
            check(
                "token",
                false,
                "skipped: a grant was refused, and none is tried until the cause is fixed",
                Some(format!(
                    "fix the cause at the provider (the history has the diagnosis), then POST /api/callback/connectors/{name}/resume (`hookwarden connectors resume {name}`)",
                    name = record.name
                )),
            )
            .with_diagnosis(refused),
        );
        None
    } else {
        let blocked = blocking(&checks);
        checks.push(
            check("token", false, "skipped: fix the checks above first", None)
                .with_diagnosis(blocked),
        );
        None
    };

    // The destination should be in the org that issues the tokens.
    let org_host = token
        .as_ref()
        .and_then(|t| t.instance_url.as_deref())
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
        .or_else(|| {
            key.as_ref()
                .and_then(|k| k.host.clone())
                .filter(|h| h.ends_with(".my.salesforce.com"))
        });
    let url_host = url::Url::parse(&record.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    if let (Some(org), Some(dest)) = (&org_host, &url_host) {
        if !org.eq_ignore_ascii_case(dest) {
            checks.push(check(
                "host",
                true,
                format!("warning: the url's host {dest} is not the org's host {org}"),
                Some(
                    "make sure the url points at the org whose credentials are in the key"
                        .to_owned(),
                ),
            ));
        }
    }

    match token {
        Some(token) => checks.push(probe(state, record, token.secret.expose_secret()).await),
        None => {
            let blocked = blocking(&checks);
            // The grant's org is not the url's: the probe would carry its token there.
            let (detail, fix) = match &blocked {
                Some(d) if d.code == Code::UrlNotInOrg.as_str() => (
                    "skipped: the url is not in the org whose credentials the connector holds, so no token is sent there",
                    Some(d.fix.clone()),
                ),
                _ => ("skipped: no token to send", None),
            };
            checks.push(check("endpoint", false, detail, fix).with_diagnosis(blocked))
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    TestReport { ok, checks }
}

/// POST a harmless test event, signed and with the token, as a delivery would.
async fn probe(state: &AppState, record: &ConnectorRecord, token: &str) -> Check {
    let now = chrono::Utc::now();
    let id = hookwarden_core::ids::new_id("msg_test");
    let body = Event::connector_test(now.timestamp_millis()).onespan_body();
    let timestamp = now.timestamp();
    let Ok(mut authorization) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        let d = unusable_response("its access token cannot be sent in a header");
        return check(
            "endpoint",
            false,
            "the access token cannot be sent in a header",
            Some("check the token endpoint's answers in the connector's history".to_owned()),
        )
        .with_diagnosis(Some(DiagnosisOut::from(&d)));
    };
    authorization.set_sensitive(true);
    let headers = Signer::for_connector(record).headers(Some(authorization), &id, timestamp, &body);
    let sent = state
        .delivery_client
        .post(&record.url, headers, body, PROBE_TIMEOUT)
        .await;
    let duration_ms = i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX);
    // As answers show a url: query values masked.
    let shown_url = hookwarden_core::key::mask_url(&record.url);
    let (result, http_status, diagnosis) = match (sent.status, &sent.failure) {
        (Some(status), _) if (200..300).contains(&status) => (
            check("endpoint", true, format!("{} accepted a test event ({status})", shown_url), None),
            Some(status),
            None,
        ),
        (Some(status), _) => {
            let d = diagnose_answer(status, sent.location.as_deref(), &sent.body);
            let detail = match &d {
                Some(d) => format!("{} answered {status}: {}", shown_url, d.cause),
                None => format!("{} answered {status}", shown_url),
            };
            let fix = d.as_ref().map(|d| d.fix.clone());
            (check("endpoint", false, detail, fix), Some(status), d)
        }
        (None, Some((failure, message))) => (
            check(
                "endpoint",
                false,
                format!("{} could not be reached: {message}", shown_url),
                Some("check the url, that the host resolves to an allowed address, and that it listens".to_owned()),
            ),
            None,
            Some(diagnose_transport(*failure)),
        ),
        (None, None) => (
            check("endpoint", false, "no answer", None),
            None,
            Some(diagnose_transport(TransportFailure::Other)),
        ),
    };
    let result = result.with_diagnosis(diagnosis.as_ref().map(DiagnosisOut::from));
    let entry = NewHistoryEntry {
        connector_id: record.id.clone(),
        account_id: record.account_id.clone(),
        at: now.timestamp_millis(),
        kind: HistoryKind::Test,
        grant_type: None,
        outcome: if result.ok { "ok" } else { "failed" }.to_owned(),
        http_status: http_status.map(i64::from),
        error: diagnosis.as_ref().map(|d| d.code.to_owned()),
        error_description: None,
        diagnosis_code: diagnosis.as_ref().map(|d| d.code.to_owned()),
        cause: diagnosis.as_ref().map(|d| d.cause.clone()),
        fix: diagnosis.as_ref().map(|d| d.fix.clone()),
        duration_ms,
        excerpt: Some(sent.excerpt(Some(token))),
    };
    if let Err(e) = state.store.record_history(&entry).await {
        tracing::warn!(error = %e, "could not record the connector test in the history");
    }
    result
}
