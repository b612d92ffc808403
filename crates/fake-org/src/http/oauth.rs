//! The Salesforce-shaped OAuth endpoints under `/services/oauth2/`: token, authorize, revoke,
//! introspect.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::{Endpoint, Injected};
use crate::org::{grant_stats_key, Granted, OAuthError, BAD_REDIRECT};
use crate::wire::{
    basic_credentials, percent_encode, random_alnum, token_signature, Fresh, Params,
};
use crate::FakeOrgState;

/// What Salesforce's token endpoint sends so that no cache keeps a token or its refusal.
const NO_STORE: (header::HeaderName, &str) = (
    header::CACHE_CONTROL,
    "no-cache,must-revalidate,max-age=0,no-store,private",
);

fn oauth_error(e: OAuthError) -> Response {
    (
        e.status,
        [NO_STORE],
        Json(json!({"error": e.error, "error_description": e.description})),
    )
        .into_response()
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
    ([NO_STORE], Json(out)).into_response()
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

pub(super) async fn token(
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

pub(super) async fn authorize(
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
        Err(_) => oauth_error(BAD_REDIRECT),
    }
}

pub(super) async fn revoke(
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

pub(super) async fn introspect(
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
