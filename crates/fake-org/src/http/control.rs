//! The `/_fake` control plane: knobs, minted tokens, the clock, counters and received callbacks,
//! for tests that run the org in another process.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::config::ClientApp;
use crate::FakeOrgState;

/// One endpoint of the `/_fake` control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRoute {
    pub method: &'static str,
    pub path: &'static str,
    /// What it does, in one line.
    pub does: &'static str,
}

/// Every endpoint of the control plane. The router is built from this table, and
/// `hookwarden fake-org --help` and the README's table (a test compares) show it, so the docs
/// list exactly what is served.
pub const CONTROL_ROUTES: &[ControlRoute] = &[
    ControlRoute {
        method: "GET",
        path: "/_fake/health",
        does: "`{\"status\": \"ok\"}` once the org answers",
    },
    ControlRoute {
        method: "GET",
        path: "/_fake/config",
        does: "every knob and its value",
    },
    ControlRoute {
        method: "POST",
        path: "/_fake/config",
        does: "change the knobs a JSON object names (objects merge key by key, anything else \
               replaces, `null` unsets an optional knob); answers the new config, or 400 and \
               nothing changes",
    },
    ControlRoute {
        method: "POST",
        path: "/_fake/clients",
        does: "add a client app, or replace the one with its `client_id`: `{\"client_id\", \
               \"client_secret\", \"require_secret_for_refresh\"?, \"require_pkce\"?, \
               \"redirect_uris\"?}`; answers the clients",
    },
    ControlRoute {
        method: "POST",
        path: "/_fake/refresh-tokens",
        does: "a refresh token, as if the user had approved the app in a browser: \
               `{\"client_id\"?, \"scope\"?}` (default: the first client, the allowed scopes)",
    },
    ControlRoute {
        method: "POST",
        path: "/_fake/access-tokens",
        does: "a live access token acting as the org's user: `{\"client_id\"?}`",
    },
    ControlRoute {
        method: "POST",
        path: "/_fake/revoke-all",
        does: "revoke every token the org has issued, as an admin ending all sessions",
    },
    ControlRoute {
        method: "POST",
        path: "/_fake/clock/advance",
        does: "move the org's clock by `{\"seconds\": N}` (negative: back), to expire tokens \
               without waiting; answers the total offset",
    },
    ControlRoute {
        method: "GET",
        path: "/_fake/stats",
        does: "counters: grants by type and outcome, refresh-token reuse, revocations, \
               introspections, authorizations, callbacks received and their distinct \
               webhook-ids, Apex rejections",
    },
    ControlRoute {
        method: "POST",
        path: "/_fake/reset-stats",
        does: "zero the counters and forget the received callbacks; tokens and knobs stay",
    },
    ControlRoute {
        method: "GET",
        path: "/_fake/callbacks",
        does: "the received callbacks, oldest first, with their headers and raw bodies; \
               `?since=SEQ&limit=N`",
    },
];

/// The handler of a route of [`CONTROL_ROUTES`]. Only the table's routes are served, and a
/// route listed without a handler stops the first org that starts.
pub(super) fn handler(route: &ControlRoute) -> MethodRouter<FakeOrgState> {
    match (route.method, route.path) {
        ("GET", "/_fake/health") => get(health),
        ("GET", "/_fake/config") => get(get_config),
        ("POST", "/_fake/config") => post(patch_config),
        ("POST", "/_fake/clients") => post(upsert_client),
        ("POST", "/_fake/refresh-tokens") => post(mint_refresh_token),
        ("POST", "/_fake/access-tokens") => post(mint_access_token),
        ("POST", "/_fake/revoke-all") => post(revoke_all),
        ("POST", "/_fake/clock/advance") => post(advance_clock),
        ("GET", "/_fake/stats") => get(stats),
        ("POST", "/_fake/reset-stats") => post(reset_stats),
        ("GET", "/_fake/callbacks") => get(callbacks),
        (method, path) => panic!("CONTROL_ROUTES lists {method} {path}, which has no handler"),
    }
}

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
