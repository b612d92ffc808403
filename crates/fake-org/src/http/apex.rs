//! The Apex REST receiver under `/services/apexrest/`: session and class checks, then the
//! callback recorded.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{rest_error, Endpoint, Injected, APEX_PREFIX};
use crate::org::{ApexVerdict, ReceivedCallback};
use crate::wire::bearer_token;
use crate::FakeOrgState;

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

pub(super) async fn apex(
    State(st): State<FakeOrgState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix(APEX_PREFIX).unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    st.hold_apex().await;
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
        ApexVerdict::ApiDisabled => {
            org.count_apex_rejection("API_DISABLED_FOR_ORG");
            return rest_error(
                StatusCode::FORBIDDEN,
                "API_DISABLED_FOR_ORG",
                "The REST API is not enabled for this Organization.",
            );
        }
        ApexVerdict::Forbidden => {
            org.count_apex_rejection("FORBIDDEN");
            return rest_error(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "You do not have access to the Apex class named 'OssCallbackResource'.",
            );
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
