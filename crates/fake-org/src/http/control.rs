//! The `/_fake` control plane: knobs, minted tokens, the clock, counters and received callbacks,
//! for tests that run the org in another process.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::config::ClientApp;
use crate::FakeOrgState;

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

pub(super) async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub(super) async fn get_config(State(st): State<FakeOrgState>) -> Response {
    Json(st.config()).into_response()
}

pub(super) async fn patch_config(State(st): State<FakeOrgState>, body: Bytes) -> Response {
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

pub(super) async fn upsert_client(State(st): State<FakeOrgState>, body: Bytes) -> Response {
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

pub(super) async fn mint_refresh_token(State(st): State<FakeOrgState>, body: Bytes) -> Response {
    let req: MintIn = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return control_error(e),
    };
    let client_id = req.client_id.unwrap_or_else(|| st.default_client_id());
    let (refresh_token, scope) = st.issue_refresh_token_with_scope(&client_id, req.scope);
    Json(json!({"refresh_token": refresh_token, "client_id": client_id, "scope": scope}))
        .into_response()
}

pub(super) async fn mint_access_token(
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

pub(super) async fn revoke_all(State(st): State<FakeOrgState>) -> Response {
    st.revoke_all_tokens();
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceIn {
    seconds: i64,
}

pub(super) async fn advance_clock(State(st): State<FakeOrgState>, body: Bytes) -> Response {
    let req: AdvanceIn = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return control_error(e),
    };
    let offset = st.advance_clock_s(req.seconds);
    Json(json!({"clock_offset_s": offset})).into_response()
}

pub(super) async fn stats(State(st): State<FakeOrgState>) -> Response {
    Json(st.stats()).into_response()
}

pub(super) async fn reset_stats(State(st): State<FakeOrgState>) -> Response {
    st.reset_stats();
    Json(st.stats()).into_response()
}

#[derive(Deserialize)]
pub(super) struct CallbacksQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn callbacks(
    State(st): State<FakeOrgState>,
    query: Result<Query<CallbacksQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return control_error("since and limit must be non-negative integers");
    };
    let list = st.callbacks_since(q.since.unwrap_or(0), q.limit.unwrap_or(usize::MAX));
    Json(list).into_response()
}
