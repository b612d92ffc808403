//! `/api/notifications`: the account's notification endpoints (operational webhooks). Each is
//! told, durably and once per change, when a connector breaks or recovers (DESIGN.md "Telling
//! the owner"); its notifications are deliveries like any other, listed with their attempts.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use hookwarden_core::Scope::{Admin, Read};
use hookwarden_core::{ConnectorKind, NotificationFormat, NotificationType};
use hookwarden_store::NotificationEndpoint;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::{list_page, DeliveryList, DeliveryQuery};
use super::{rfc3339, validate};
use crate::auth::{needs, Authed};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

/// Endpoints an account may have.
pub const MAX_ENDPOINTS: usize = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(needs(Read, routes!(list_notifications)))
        .routes(needs(Read, routes!(notification_deliveries)))
        .routes(needs(Admin, routes!(add_notification)))
        .routes(needs(Admin, routes!(delete_notification)))
        .routes(needs(Admin, routes!(test_notification)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NotificationIn {
    /// Where notifications are POSTed: https (the network rules of destinations apply).
    pub url: String,
    /// What it is told of; default every type: `connector.needs_reauth`, `connector.revoked`,
    /// `connector.recovered`, `connector.disabled`, `connector.failing`, `delivery.failed`,
    /// `credential.expiring`.
    pub types: Option<Vec<String>>,
    /// `standard` (default): the Standard Webhooks payload, signed; `slack`: `{"text"}` for a
    /// Slack incoming webhook, unsigned.
    pub format: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationOut {
    /// `ntf_…`.
    pub id: String,
    /// With any credential in its query string masked.
    pub url: String,
    pub types: Vec<String>,
    /// `standard` or `slack`.
    pub format: String,
    /// `whsec_…`, only in the answer to `POST` (shown once); `null` for a `slack` endpoint and
    /// in lists.
    pub signing_secret: Option<String>,
    pub created_at: String,
    /// Unknown fields of the request, ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationTestOut {
    /// The test notification's delivery (`GET /api/deliveries/{id}` shows its attempts).
    pub delivery_id: String,
}

/// `GET /api/notifications/{id}/deliveries` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationDeliveriesQuery {
    /// `pending`, `held`, `delivered` or `failed`.
    pub status: Option<String>,
    /// 1 to 1000, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn to_out(e: &NotificationEndpoint, secret: Option<String>) -> NotificationOut {
    NotificationOut {
        id: e.id.clone(),
        url: hookwarden_core::key::mask_url(&e.url),
        types: e.types.iter().map(|t| t.as_str().to_owned()).collect(),
        format: e.format.as_str().to_owned(),
        signing_secret: secret,
        created_at: rfc3339(e.created_at),
        warnings: Vec::new(),
    }
}

fn no_such_endpoint() -> ApiError {
    ApiError::not_found(
        "this account has no notification endpoint with this id",
        "list them with GET /api/notifications",
    )
}

fn parse_types(raw: Option<Vec<String>>) -> Result<Vec<NotificationType>, ApiError> {
    let Some(raw) = raw else {
        return Ok(NotificationType::SUBSCRIBABLE.to_vec());
    };
    let all = NotificationType::SUBSCRIBABLE
        .map(NotificationType::as_str)
        .join(", ");
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_notification_types",
            "types: empty; an endpoint told of nothing would never be sent anything",
            format!("leave types out for all of them, or list some of: {all}"),
        ));
    }
    let mut types = Vec::new();
    for t in &raw {
        match NotificationType::parse(t.trim()) {
            Some(NotificationType::Test) | None => {
                return Err(ApiError::bad_request(
                    "invalid_notification_types",
                    format!("types: {t:?} is not a notification type"),
                    format!("use some of: {all} (notification.test is sent by POST /api/notifications/{{id}}/test)"),
                ))
            }
            Some(t) if !types.contains(&t) => types.push(t),
            Some(_) => {}
        }
    }
    Ok(types)
}

/// Add a notification endpoint. Its `signing_secret` is in this answer only.
#[utoipa::path(post, path = "/api/notifications", tag = "notifications",
    request_body = NotificationIn,
    responses((status = 201, body = NotificationOut), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn add_notification(
    State(state): State<AppState>,
    authed: Authed,
    ApiJson(input): ApiJson<NotificationIn>,
) -> ApiResult<(StatusCode, Json<NotificationOut>)> {
    let account = &authed.0.id;
    let (url, mut warnings) = validate::url(&input.url, ConnectorKind::Generic, &state.settings)?;
    let types = parse_types(input.types)?;
    let format = match input.format.as_deref().map(str::trim) {
        None => NotificationFormat::Standard,
        Some(raw) => NotificationFormat::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_notification_format",
                format!("format: {raw:?} is not a format"),
                "use standard (signed Standard Webhooks) or slack (a Slack incoming webhook url)",
            )
        })?,
    };
    if state.store.notification_endpoints(account).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "limit_reached",
            format!("this account has {MAX_ENDPOINTS} notification endpoints, as many as it may"),
            "delete one it no longer needs (DELETE /api/notifications/{id}); one endpoint can take every type",
        ));
    }
    warnings.extend(validate::unknown_fields(&input.extra));
    let (endpoint, secret) = state
        .store
        .create_notification_endpoint(account, &url, &types, format)
        .await?;
    let secret =
        (format == NotificationFormat::Standard).then(|| secret.expose_secret().to_owned());
    let mut out = to_out(&endpoint, secret);
    out.warnings = warnings;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The account's notification endpoints, oldest first (never their secrets).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications",
    responses((status = 200, body = NotificationList), (status = 401, body = ErrorBody)))]
pub async fn list_notifications(
    State(state): State<AppState>,
    authed: Authed,
) -> ApiResult<Json<NotificationList>> {
    let endpoints = state.store.notification_endpoints(&authed.0.id).await?;
    Ok(Json(NotificationList {
        notifications: endpoints.iter().map(|e| to_out(e, None)).collect(),
    }))
}

/// Remove a notification endpoint; its notifications not yet sent are failed.
#[utoipa::path(delete, path = "/api/notifications/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_notification(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_notification_endpoint(&authed.0.id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_endpoint())
    }
}

/// Send `notification.test` to the endpoint now, whatever its types; delivered (and retried)
/// like any notification.
#[utoipa::path(post, path = "/api/notifications/{id}/test", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 202, body = NotificationTestOut), (status = 404, body = ErrorBody)))]
pub async fn test_notification(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<NotificationTestOut>)> {
    let endpoint = state
        .store
        .notification_endpoint(&authed.0.id, &id)
        .await?
        .ok_or_else(no_such_endpoint)?;
    let delivery_id = state
        .store
        .send_test_notification(&authed.0.id, &endpoint)
        .await?
        .ok_or_else(no_such_endpoint)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(NotificationTestOut { delivery_id }),
    ))
}

/// The endpoint's notifications, newest first, each with its attempts.
#[utoipa::path(get, path = "/api/notifications/{id}/deliveries", tag = "notifications",
    params(("id" = String, Path), NotificationDeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn notification_deliveries(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<NotificationDeliveriesQuery>, QueryRejection>,
) -> ApiResult<Json<DeliveryList>> {
    let Query(q) = query?;
    let endpoint = state
        .store
        .notification_endpoint(&authed.0.id, &id)
        .await?
        .ok_or_else(no_such_endpoint)?;
    let page = list_page(
        &state,
        &authed.0.id,
        DeliveryQuery {
            connector: Some(endpoint.destination),
            status: q.status,
            package_id: None,
            since: None,
            until: None,
            limit: q.limit,
            cursor: q.cursor,
        },
    )
    .await?;
    Ok(Json(page))
}
