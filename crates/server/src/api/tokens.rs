//! The token side of a connector: test it end to end, revoke it, re-authenticate it (OAuth
//! authorization code + PKCE, or a code obtained elsewhere), resume it (`resume`), and read its
//! history.

mod resume;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use hookwarden_core::diagnosis::{
    diagnose_answer, diagnose_transport, unusable_response, Code, TransportFailure,
};
use hookwarden_core::{ConnectorStatus, Event, Problem};
use hookwarden_oauth::{RevokeOutcome, TokenError, TokenStatus};
use hookwarden_store::{ConnectorRecord, HistoryKind, NewHistoryEntry};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::connectors::{load_connector, to_out_with_token, ConnectorOut};
use super::{rfc3339, DiagnosisOut};
use crate::auth::Authed;
use crate::delivery::signing::Signer;
use crate::error::{ApiError, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_connector))
        .routes(routes!(revoke_connector))
        .routes(routes!(resume::resume_connector))
        .routes(routes!(warm_token))
        .routes(routes!(authorization_url))
        .routes(routes!(connector_history))
        .routes(routes!(oauth_callback))
}

/// How long a harmless test event may take at the endpoint.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Transient: 503 with the provider's Retry-After. A connector that cannot grant by its state
/// (revoked, needs_reauth) or whose status or flow does not allow the request: 409. Any other
/// refusal of the provider: 422, with its diagnosis.
impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        let status = if err.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else if err.awaits_credentials() || err.is_conflict() {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut api = ApiError::new(
            status,
            err.code(),
            Problem::message(&err),
            Problem::fix(&err),
        );
        api.retry_after = err.retry_after().map(|d| d.as_secs().max(1));
        api
    }
}

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
    let mut checks = Vec::new();

    // The stored kind: `ConnectorKind::of(name)` until records carried it, which every
    // connector written so far has as its kind.
    let key = match record.credentials.oauth() {
        Ok((kind, key)) => {
            let endpoints = key.endpoints(kind);
            let settings = super::connectors::settings_of(&record);
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
        match state.tokens.force_grant(&record).await {
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
        Some(token) => checks.push(probe(&state, &record, token.secret.expose_secret()).await),
        None => {
            let blocked = blocking(&checks);
            checks.push(
                check("endpoint", false, "skipped: no token to send", None).with_diagnosis(blocked),
            )
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    Ok(Json(TestReport { ok, checks }))
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
    let headers = Signer::for_connector(record).headers(authorization, &id, timestamp, &body);
    let sent = state
        .delivery_client
        .post(&record.url, headers, body, PROBE_TIMEOUT)
        .await;
    let duration_ms = i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX);
    let (result, http_status, diagnosis) = match (sent.status, &sent.failure) {
        (Some(status), _) if (200..300).contains(&status) => (
            check("endpoint", true, format!("{} accepted a test event ({status})", record.url), None),
            Some(status),
            None,
        ),
        (Some(status), _) => {
            let d = diagnose_answer(status, sent.location.as_deref(), &sent.excerpt);
            let detail = match &d {
                Some(d) => format!("{} answered {status}: {}", record.url, d.cause),
                None => format!("{} answered {status}", record.url),
            };
            let fix = d.as_ref().map(|d| d.fix.clone());
            (check("endpoint", false, detail, fix), Some(status), d)
        }
        (None, Some((failure, message))) => (
            check(
                "endpoint",
                false,
                format!("{} could not be reached: {message}", record.url),
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
        excerpt: Some(sent.excerpt.replace(token, "[redacted]")),
    };
    if let Err(e) = state.store.record_history(&entry).await {
        tracing::warn!(error = %e, "could not record the connector test in the history");
    }
    result
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeOut {
    #[serde(flatten)]
    pub connector: ConnectorOut,
    #[schema(value_type = Object)]
    pub revocation: RevokeOutcome,
}

/// Revoke the refresh and access tokens at the provider (RFC 7009), wipe them, and stop
/// granting until new credentials arrive. Idempotent.
#[utoipa::path(post, path = "/api/callback/connectors/{name}/revoke", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = RevokeOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn revoke_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RevokeOut>> {
    let (name, record) = load_connector(&state, &authed, &name).await?;
    let outcome = state.tokens.revoke(&record).await?;
    let (_, record) = load_connector(&state, &authed, name.as_str()).await?;
    let connector = to_out_with_token(&state, &record).await;
    tracing::info!(account = %authed.0.id, connector = %name, "connector revoked");
    Ok(Json(RevokeOut {
        connector,
        revocation: outcome,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WarmOut {
    /// A grant was made for this call (false: a valid token was cached).
    pub refreshed: bool,
    #[schema(value_type = Object)]
    pub token: TokenStatus,
}

/// Make sure the connector holds a valid access token now (a grant only if none is cached or
/// it is about to expire). Never returns the token itself.
#[utoipa::path(post, path = "/api/callback/connectors/{name}/token", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = WarmOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn warm_token(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<WarmOut>> {
    let (_, record) = load_connector(&state, &authed, &name).await?;
    let token = state.tokens.token(&record).await?;
    Ok(Json(WarmOut {
        refreshed: token.refreshed,
        token: state.tokens.token_status(&record).await,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationUrlOut {
    /// Open it in a browser, sign in to the org and approve; the provider then redirects to
    /// `redirect_uri`, which completes the re-authentication.
    pub url: String,
    /// Register this as a callback URL of the connected app.
    pub redirect_uri: String,
}

pub(crate) fn redirect_uri(state: &AppState) -> String {
    format!("{}/oauth/callback", state.public_url())
}

/// The authorization URL (PKCE S256 + state) that re-authenticates a refresh-token connector.
/// A client-credentials connector gets its tokens with its client secret: `409 wrong_flow`,
/// and nothing changes.
#[utoipa::path(get, path = "/api/callback/connectors/{name}/oauth/url", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = AuthorizationUrlOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn authorization_url(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<AuthorizationUrlOut>> {
    let (_, record) = load_connector(&state, &authed, &name).await?;
    let redirect_uri = redirect_uri(&state);
    let url = state
        .tokens
        .authorization_url(&record, &redirect_uri)
        .await?;
    Ok(Json(AuthorizationUrlOut { url, redirect_uri }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    (
        status,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>hookwarden: {t}</title>\
             <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
             <h1>{t}</h1><p>{x}</p></body>",
            t = escape(title),
            x = escape(text)
        )),
    )
        .into_response()
}

/// Where the provider sends the browser after approval: completes the re-authentication that
/// `.../oauth/url` began. No API key: the single-use state is the proof.
#[utoipa::path(get, path = "/oauth/callback", tag = "tokens", params(CallbackParams),
    responses((status = 200, description = "re-authenticated (an HTML page)"),
              (status = 400, description = "denied, or an unknown or used state (an HTML page)")))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    params: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Malformed redirect",
                &format!(
                    "The provider's redirect could not be read ({}). Start again from the connector's oauth/url.",
                    rejection.body_text()
                ),
            )
        }
    };
    if let Some(error) = params.error.as_deref() {
        let description = params.error_description.as_deref().unwrap_or("");
        return page(
            StatusCode::BAD_REQUEST,
            "Authorization was not granted",
            &format!("The provider answered {error}: {description}. Start again from the connector's oauth/url."),
        );
    }
    let (Some(code), Some(oauth_state)) = (params.code.as_deref(), params.state.as_deref()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Incomplete redirect",
            "This address expects ?code=...&state=... from the provider. Start again from the connector's oauth/url.",
        );
    };
    match state
        .tokens
        .complete_authorization(None, oauth_state, code)
        .await
    {
        Ok(record) => {
            tracing::info!(connector = %record.name, "connector re-authenticated");
            page(
                StatusCode::OK,
                "Connector re-authenticated",
                &format!(
                    "{} is active again; held deliveries resume now. You can close this page.",
                    record.name
                ),
            )
        }
        Err(e) => page(
            StatusCode::BAD_REQUEST,
            "Re-authentication failed",
            &format!("{} — {}", Problem::message(&e), Problem::fix(&e)),
        ),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// At most this many entries (1 to 500, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryOut {
    pub id: String,
    pub at: String,
    /// grant, refresh, revoke, introspect, hook, code_exchange or test.
    pub kind: String,
    pub grant_type: Option<String>,
    pub outcome: String,
    pub http_status: Option<i64>,
    /// The provider's `error` / `errorCode`.
    pub provider_error: Option<String>,
    pub provider_error_description: Option<String>,
    pub diagnosis: Option<DiagnosisOut>,
    pub duration_ms: i64,
    /// The start of the provider's answer (≤ 1 KiB), secrets removed.
    pub excerpt: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    pub entries: Vec<HistoryEntryOut>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Every grant, refresh, revocation, introspection, hook call and test of a connector, newest
/// first.
#[utoipa::path(get, path = "/api/callback/connectors/{name}/history", tag = "tokens",
    params(("name" = String, Path), HistoryParams),
    responses((status = 200, body = HistoryOut), (status = 404, body = ErrorBody)))]
pub async fn connector_history(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<HistoryOut>> {
    let Query(params) = params?;
    let (_, record) = load_connector(&state, &authed, &name).await?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit: {limit} is not between 1 and 500"),
            "ask for 1 to 500 entries a page, and page on with `cursor`",
        ));
    }
    let entries = state
        .store
        .list_history(&record.id, limit, params.cursor.as_deref())
        .await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|e| HistoryEntryOut {
            diagnosis: e.entry.diagnosis().map(DiagnosisOut::from),
            id: e.id,
            at: rfc3339(e.entry.at),
            kind: e.entry.kind.as_str().to_owned(),
            grant_type: e.entry.grant_type,
            outcome: e.entry.outcome,
            http_status: e.entry.http_status,
            provider_error: e.entry.error,
            provider_error_description: e.entry.error_description,
            duration_ms: e.entry.duration_ms,
            excerpt: e.entry.excerpt,
        })
        .collect();
    Ok(Json(HistoryOut {
        entries,
        next_cursor,
    }))
}
