//! `POST /api/events` and `POST /api/events/batch`: events in. `202` means committed: the
//! answer is sent only after the transaction holding the event and its deliveries commits.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookwarden_core::Scope::Ingest;
use hookwarden_core::{Event, EventError};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{needs, Authed};
use crate::delivery::{IngestError, IngestRequest, Shape};
use crate::error::{ApiError, ApiJson, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(needs(Ingest, routes!(post_event)))
        .routes(needs(Ingest, routes!(post_event_batch)))
}

/// The most events one batch request may carry; it is written in one transaction.
pub const MAX_BATCH: usize = 1000;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An event as a producer posts it (OneSpan Sign's callback fields).
#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct EventIn {
    /// `PACKAGE_COMPLETE`, `DOCUMENT_SIGNED`, ... or a custom `UPPER_SNAKE_CASE` name.
    name: String,
    packageId: String,
    /// Where it comes from, e.g. `OSS`; matched against each connector's `origins`.
    origin: String,
    sessionUser: Option<String>,
    documentId: Option<String>,
    message: Option<String>,
    /// RFC 3339; defaults to the time of ingest.
    createdDate: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct EventBatchIn {
    /// 1 to 1,000 events.
    events: Vec<EventIn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventAccepted {
    /// The event's id.
    pub id: String,
    /// One delivery per destination it was routed to; empty when none takes it.
    pub deliveries: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventBatchAccepted {
    pub events: Vec<EventAccepted>,
}

fn event_problem(e: &EventError) -> ApiError {
    ApiError::from_problem(e)
}

/// The Idempotency-Key header and a hash of the body it must come with.
fn idempotency(headers: &HeaderMap, body: &Value) -> ApiResult<Option<(String, String)>> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
            ),
            "send a unique value per logical request, e.g. a UUID",
        ));
    }
    // serde_json's map is ordered, so the same JSON with its keys in another order hashes the same.
    let hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    Ok(Some((key.to_owned(), hash)))
}

async fn ingest(state: &AppState, request: IngestRequest) -> ApiResult<(StatusCode, Json<Value>)> {
    match state.delivery.ingest(request).await {
        Ok(answer) => Ok((StatusCode::ACCEPTED, Json(answer))),
        Err(IngestError::Conflict) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different body",
            "use a new Idempotency-Key for a different request, or resend the original body unchanged",
        )),
        Err(IngestError::Store(e)) => Err(e.into()),
        Err(IngestError::Stopped) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down and takes no more events",
            "retry against another node or once it has restarted",
        )),
    }
}

/// Ingest one event. With an `Idempotency-Key`, the same key and body answer the same and
/// create nothing new; the same key with another body is a 409.
#[utoipa::path(post, path = "/api/events", tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried POST safe")),
    request_body = EventIn,
    responses((status = 202, body = EventAccepted), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn post_event(
    State(state): State<AppState>,
    authed: Authed,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let idempotency = idempotency(&headers, &body)?;
    let event = Event::from_json(&body, state.delivery.now_ms()).map_err(|e| event_problem(&e))?;
    ingest(
        &state,
        IngestRequest {
            account_name: authed.0.name,
            account: authed.0.id,
            events: vec![event],
            shape: Shape::Single,
            idempotency,
        },
    )
    .await
}

/// Ingest up to 1,000 events in one transaction: all of them or none.
#[utoipa::path(post, path = "/api/events/batch", tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried POST safe")),
    request_body = EventBatchIn,
    responses((status = 202, body = EventBatchAccepted), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn post_event_batch(
    State(state): State<AppState>,
    authed: Authed,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let idempotency = idempotency(&headers, &body)?;
    let Some(items) = body.get("events").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(
            "missing_field",
            "events: is required and must be a list",
            "send {\"events\": [{\"name\", \"packageId\", \"origin\"}, ...]}",
        ));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch_size",
            format!("events: {} given; send 1 to {MAX_BATCH}", items.len()),
            "split larger batches into several requests",
        ));
    }
    let now = state.delivery.now_ms();
    let events = items
        .iter()
        .enumerate()
        .map(|(i, v)| Event::from_json(v, now).map_err(|e| event_problem(&e.in_batch(i))))
        .collect::<ApiResult<Vec<_>>>()?;
    ingest(
        &state,
        IngestRequest {
            account_name: authed.0.name,
            account: authed.0.id,
            events,
            shape: Shape::Batch,
            idempotency,
        },
    )
    .await
}
