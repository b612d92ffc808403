//! HTTP handlers: the Salesforce-shaped endpoints and the `/_fake` control plane.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::ClientApp;
use crate::org::{grant_stats_key, ApexVerdict, Granted, OAuthError, ReceivedCallback};
use crate::wire::{
    basic_credentials, bearer_token, percent_encode, random_alnum, token_signature, Fresh, Params,
};
use crate::FakeOrgState;

const APEX_PREFIX: &str = "/services/apexrest";

pub(crate) fn routes(state: FakeOrgState) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", get(revoke).post(revoke))
        .route("/services/oauth2/introspect", post(introspect))
        .route("/services/oauth2/authorize", get(authorize).post(authorize))
        .route(APEX_PREFIX, any(apex))
        .route("/services/apexrest/", any(apex))
        .route("/services/apexrest/{*path}", any(apex))
        .route("/_fake/health", get(health))
        .route("/_fake/config", get(get_config).post(patch_config))
        .route("/_fake/clients", post(upsert_client))
        .route("/_fake/refresh-tokens", post(mint_refresh_token))
        .route("/_fake/access-tokens", post(mint_access_token))
        .route("/_fake/revoke-all", post(revoke_all))
        .route("/_fake/clock/advance", post(advance_clock))
        .route("/_fake/stats", get(stats))
        .route("/_fake/reset-stats", post(reset_stats))
        .route("/_fake/callbacks", get(callbacks))
        .fallback(not_found)
        .with_state(state)
}

// ---- shared answers ----

fn oauth_error(e: OAuthError) -> Response {
    (
        e.status,
        [(
            header::CACHE_CONTROL,
            "no-cache,must-revalidate,max-age=0,no-store,private",
        )],
        Json(json!({"error": e.error, "error_description": e.description})),
    )
        .into_response()
}

/// Salesforce REST errors are a JSON array of `{"message","errorCode"}`.
fn rest_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

fn invalid_session() -> Response {
    let mut r = rest_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    r
}

async fn not_found() -> Response {
    rest_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// An injected failure: status and `Retry-After`.
#[derive(Clone, Copy)]
pub(crate) struct Injected {
    status: StatusCode,
    retry_after_s: Option<u64>,
}

impl Injected {
    fn stats_key(self) -> String {
        format!("http_{}", self.status.as_u16())
    }

    fn finish(self, mut r: Response) -> Response {
        *r.status_mut() = self.status;
        let wants_retry_after = matches!(self.status.as_u16(), 429 | 503);
        if let (true, Some(secs)) = (wants_retry_after, self.retry_after_s) {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Endpoint {
    Token,
    Apex,
}

impl FakeOrgState {
    /// Apply the endpoint's fault knobs: decide under the lock, sleep outside it.
    async fn inject(&self, endpoint: Endpoint) -> Option<Injected> {
        let (latency_ms, injected) = {
            let mut org = self.lock();
            let faults = match endpoint {
                Endpoint::Token => &mut org.config.token_faults,
                Endpoint::Apex => &mut org.config.apex_faults,
            };
            let fail = if faults.fail_next > 0 {
                faults.fail_next -= 1;
                true
            } else {
                faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate
            };
            let injected = fail.then(|| Injected {
                status: StatusCode::from_u16(faults.status)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                retry_after_s: faults.retry_after_s,
            });
            (faults.latency_ms, injected)
        };
        if latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(latency_ms)).await;
        }
        injected
    }
}

// ---- token endpoint ----

#[derive(Serialize)]
struct TokenOut {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    signature: String,
    scope: String,
    instance_url: String,
    id: String,
    token_type: &'static str,
    /// Milliseconds since the epoch, as a string: Salesforce's shape, and no `expires_in`.
    issued_at: String,
}

fn granted(base: &str, g: Granted) -> Response {
    let id = format!("{base}/id/{}/{}", g.org_id, g.user_id);
    let issued_at = g.issued_at_ms.to_string();
    let signature = token_signature(&id, &issued_at);
    let out = TokenOut {
        access_token: g.access_token,
        refresh_token: g.refresh_token,
        signature,
        scope: g.scope,
        instance_url: base.to_owned(),
        id,
        token_type: "Bearer",
        issued_at,
    };
    (
        [(
            header::CACHE_CONTROL,
            "no-cache,must-revalidate,max-age=0,no-store,private",
        )],
        Json(out),
    )
        .into_response()
}

fn token_fault(f: Injected) -> Response {
    let (error, description) = match f.status.as_u16() {
        429 => ("rate_limit_exceeded", "rate limit exceeded"),
        503 => ("temporarily_unavailable", "service temporarily unavailable"),
        s if s >= 500 => ("server_error", "internal server error"),
        _ => ("invalid_request", "request rejected"),
    };
    f.finish(oauth_error(OAuthError {
        status: f.status,
        error,
        description,
    }))
}

async fn token(
    State(st): State<FakeOrgState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::parse(query.as_deref(), &body);
    if let Some(f) = st.inject(Endpoint::Token).await {
        let key = grant_stats_key(params.get("grant_type"));
        st.lock().count_grant(key, &f.stats_key());
        return token_fault(f);
    }
    let basic = basic_credentials(&headers);
    let fresh = Fresh::draw();
    let (base, result) = {
        let mut org = st.lock();
        let base = st.base_url_for(&org, &headers);
        (base, org.grant(&params, basic.as_ref(), &fresh))
    };
    match result {
        Ok(g) => granted(&base, g),
        Err(e) => {
            tracing::debug!(error = e.error, "fake org refused a grant");
            oauth_error(e)
        }
    }
}

// ---- authorize, revoke, introspect ----

async fn authorize(
    State(st): State<FakeOrgState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::parse(query.as_deref(), &body);
    let code_random = random_alnum(60);
    let outcome = st.lock().authorize(&params, &code_random);
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return oauth_error(e),
    };
    let mut location = outcome.redirect_uri;
    location.push(if location.contains('?') { '&' } else { '?' });
    match &outcome.result {
        Ok(code) => location.push_str(&format!("code={}", percent_encode(code))),
        Err((error, description)) => location.push_str(&format!(
            "error={error}&error_description={}",
            percent_encode(description)
        )),
    }
    if let Some(state) = params.get("state") {
        location.push_str(&format!("&state={}", percent_encode(state)));
    }
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        // A redirect_uri that cannot travel in a header cannot be a registered callback URL.
        Err(_) => oauth_error(OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "redirect_uri_mismatch",
            description: "redirect_uri must match configuration",
        }),
    }
}

async fn revoke(
    State(st): State<FakeOrgState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::parse(query.as_deref(), &body);
    if st.lock().revoke(params.get("token")) {
        StatusCode::OK.into_response()
    } else {
        oauth_error(OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_token",
            description: "invalid token",
        })
    }
}

async fn introspect(
    State(st): State<FakeOrgState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::parse(query.as_deref(), &body);
    let basic = basic_credentials(&headers);
    let result = {
        let mut org = st.lock();
        let base = st.base_url_for(&org, &headers);
        org.introspect(&params, basic.as_ref(), &base)
    };
    match result {
        Ok(i) => Json(i).into_response(),
        Err(e) => oauth_error(e),
    }
}

// ---- Apex REST ----

fn apex_fault(f: Injected) -> Response {
    let (code, message) = match f.status.as_u16() {
        // Salesforce answers an org that has used up its daily API requests with 403.
        403 | 429 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        503 => (
            "SERVER_UNAVAILABLE",
            "The server is temporarily unable to service your request.",
        ),
        s if s >= 500 => ("UNKNOWN_EXCEPTION", "An unexpected error occurred."),
        _ => ("BAD_REQUEST", "The request was rejected."),
    };
    f.finish(rest_error(f.status, code, message))
}

async fn apex(
    State(st): State<FakeOrgState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix(APEX_PREFIX).unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    if let Some(f) = st.inject(Endpoint::Apex).await {
        st.lock().count_apex_rejection(&f.stats_key());
        return apex_fault(f);
    }
    let token = bearer_token(&headers);
    // Parsed and copied before taking the lock, which then stays short.
    let parsed = serde_json::from_slice::<serde_json::Value>(&body);
    let mut recorded = BTreeMap::new();
    for (name, value) in &headers {
        if name == header::AUTHORIZATION {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        recorded
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }

    let mut org = st.lock();
    // Salesforce checks the session before it looks for the class.
    match org.apex_verdict(token, path) {
        ApexVerdict::InvalidSession => {
            org.count_apex_rejection("INVALID_SESSION_ID");
            return invalid_session();
        }
        ApexVerdict::NotFound => {
            org.count_apex_rejection("NOT_FOUND");
            return rest_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("Could not find a match for URL {path}"),
            );
        }
        ApexVerdict::Accepted => {}
    }
    if method != Method::POST {
        org.count_apex_rejection("METHOD_NOT_ALLOWED");
        return rest_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            &format!("HTTP Method '{method}' not allowed. Allowed are POST"),
        );
    }
    let body_json = match parsed {
        Ok(v) => v,
        Err(e) => {
            org.count_apex_rejection("JSON_PARSER_ERROR");
            return rest_error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                &format!("Malformed JSON in request body: {e}"),
            );
        }
    };
    let webhook_id = recorded.get("webhook-id").cloned();
    org.record_callback(ReceivedCallback {
        seq: 0,
        received_at: chrono::Utc::now(),
        path: path.to_owned(),
        access_token: token.unwrap_or_default().to_owned(),
        headers: recorded,
        webhook_id,
        body: body_json,
        raw_body: String::from_utf8_lossy(&body).into_owned(),
    });
    drop(org);
    Json("ok").into_response()
}

// ---- control plane ----

fn control_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "bad_request", "message": message.into()})),
    )
        .into_response()
}

/// Parse a JSON body; an empty body means `{}` so `curl -X POST` works for defaults.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|e| format!("invalid JSON body: {e}"))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn get_config(State(st): State<FakeOrgState>) -> Response {
    Json(st.config()).into_response()
}

async fn patch_config(State(st): State<FakeOrgState>, body: Bytes) -> Response {
    let patch: serde_json::Value = match json_body(&body) {
        Ok(p) => p,
        Err(e) => return control_error(e),
    };
    if !patch.is_object() {
        return control_error("the patch must be a JSON object");
    }
    match st.patch_config(patch) {
        Ok(config) => Json(config).into_response(),
        Err(e) => control_error(e),
    }
}

async fn upsert_client(State(st): State<FakeOrgState>, body: Bytes) -> Response {
    let app: ClientApp = match json_body(&body) {
        Ok(a) => a,
        Err(e) => return control_error(e),
    };
    if app.client_id.is_empty() {
        return control_error("client_id must not be empty");
    }
    st.upsert_client(app);
    Json(st.config().clients).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintIn {
    client_id: Option<String>,
    scope: Option<String>,
}

async fn mint_refresh_token(State(st): State<FakeOrgState>, body: Bytes) -> Response {
    let req: MintIn = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return control_error(e),
    };
    let client_id = req.client_id.unwrap_or_else(|| st.default_client_id());
    let (refresh_token, scope) = st.issue_refresh_token_with_scope(&client_id, req.scope);
    Json(json!({"refresh_token": refresh_token, "client_id": client_id, "scope": scope}))
        .into_response()
}

async fn mint_access_token(
    State(st): State<FakeOrgState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: MintIn = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return control_error(e),
    };
    if req.scope.is_some() {
        return control_error("scope is not supported here; access tokens get the allowed scopes");
    }
    let client_id = req.client_id.unwrap_or_else(|| st.default_client_id());
    let access_token = st.issue_access_token(&client_id);
    let base = st.base_url_for(&st.lock(), &headers);
    Json(json!({"access_token": access_token, "client_id": client_id, "instance_url": base}))
        .into_response()
}

async fn revoke_all(State(st): State<FakeOrgState>) -> Response {
    st.revoke_all_tokens();
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceIn {
    seconds: i64,
}

async fn advance_clock(State(st): State<FakeOrgState>, body: Bytes) -> Response {
    let req: AdvanceIn = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return control_error(e),
    };
    let offset = st.advance_clock_s(req.seconds);
    Json(json!({"clock_offset_s": offset})).into_response()
}

async fn stats(State(st): State<FakeOrgState>) -> Response {
    Json(st.stats()).into_response()
}

async fn reset_stats(State(st): State<FakeOrgState>) -> Response {
    st.reset_stats();
    Json(st.stats()).into_response()
}

#[derive(Deserialize)]
struct CallbacksQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

async fn callbacks(
    State(st): State<FakeOrgState>,
    query: Result<Query<CallbacksQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return control_error("since and limit must be non-negative integers");
    };
    let list = st.callbacks_since(q.since.unwrap_or(0), q.limit.unwrap_or(usize::MAX));
    Json(list).into_response()
}
