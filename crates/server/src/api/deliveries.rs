//! `/api/deliveries`: every delivery with every attempt, one more attempt on demand, and
//! `POST /api/callback/connectors/{name}/replay` to re-queue a connector's failed deliveries.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use hookwarden_core::Scope::{Admin, Read};
use hookwarden_core::{AccountId, ConnectorName, DeliveryId, DeliveryStatus};
use hookwarden_store::{AttemptRecord, DeliveryFilter, DeliveryRecord, RetryOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::connectors::find_connector;
use super::{rfc3339, DiagnosisOut};
use crate::auth::{needs, Authed};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(needs(Read, routes!(list_deliveries)))
        .routes(needs(Read, routes!(get_delivery)))
        .routes(needs(Admin, routes!(retry_delivery)))
        .routes(needs(Admin, routes!(replay_connector)))
}

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// One HTTP try of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    pub at: String,
    /// `null` when no answer came (timeout, network, refused address, no token).
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    /// At most 1 KiB of the answer.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    /// What the answer means and what to do about it; `null` for a success.
    pub diagnosis: Option<DiagnosisOut>,
    /// A token grant happened for this try.
    pub refreshed: bool,
}

/// One event for one destination.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// Also the `webhook-id` the receiver sees, the same on every attempt.
    pub id: String,
    pub event_id: String,
    /// The event's name.
    pub event: String,
    /// The connector's name; `@default` for the default callback.
    pub connector: String,
    pub package_id: String,
    /// `pending`, `held`, `delivered` or `failed`.
    pub status: String,
    pub attempts: Vec<AttemptOut>,
    /// When the next attempt is planned; `null` when none is, or while one is under way.
    pub next_attempt_at: Option<String>,
    /// A worker is attempting it right now.
    pub in_flight: bool,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryOut>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Unknown parameters are refused: a misspelt filter (`?stauts=failed`) would otherwise list
/// every delivery as if it had matched.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// A connector's name (`@default` for the default callback).
    pub connector: Option<String>,
    /// `pending`, `held`, `delivered` or `failed`.
    pub status: Option<String>,
    /// The package the deliveries are about, as `package_id` shows it (`packageId`, the
    /// event's own name for it, is accepted too).
    #[serde(alias = "packageId")]
    pub package_id: Option<String>,
    /// RFC 3339: deliveries created at or after it.
    pub since: Option<String>,
    /// RFC 3339: deliveries created before it.
    pub until: Option<String>,
    /// 1 to 1000, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// RFC 3339: deliveries created at or after it.
    pub since: String,
    /// RFC 3339: and before it; default now.
    pub until: Option<String>,
    /// `failed` (default) or `delivered`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    /// How many deliveries were queued again, each with a fresh retry schedule.
    pub replayed: u64,
}

fn attempt_out(a: &AttemptRecord) -> AttemptOut {
    AttemptOut {
        at: rfc3339(a.at),
        status_code: a.status_code,
        duration_ms: a.duration_ms,
        response_excerpt: a.response_excerpt.clone(),
        error: a.error.clone(),
        diagnosis: a.diagnosis.clone().map(DiagnosisOut::from),
        refreshed: a.refreshed,
    }
}

fn delivery_out(d: &DeliveryRecord, attempts: Vec<AttemptOut>) -> DeliveryOut {
    DeliveryOut {
        id: d.id.as_str().to_owned(),
        event_id: d.event_id.as_str().to_owned(),
        event: d.event_name.clone(),
        connector: d.connector_name.clone(),
        package_id: d.package_id.clone(),
        status: d.status.as_str().to_owned(),
        attempts,
        next_attempt_at: match d.status {
            DeliveryStatus::Pending => d.next_attempt_at.map(rfc3339),
            _ => None,
        },
        in_flight: d.in_flight,
        last_error: d.last_error.clone(),
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
    }
}

async fn with_attempts(
    state: &AppState,
    records: &[DeliveryRecord],
) -> ApiResult<Vec<DeliveryOut>> {
    let ids: Vec<DeliveryId> = records.iter().map(|d| d.id.clone()).collect();
    let mut by_delivery: HashMap<DeliveryId, Vec<AttemptOut>> = HashMap::new();
    for a in state.store.attempts_of(&ids).await? {
        by_delivery
            .entry(a.delivery_id.clone())
            .or_default()
            .push(attempt_out(&a));
    }
    Ok(records
        .iter()
        .map(|d| delivery_out(d, by_delivery.remove(&d.id).unwrap_or_default()))
        .collect())
}

fn parse_time(field: &str, raw: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_time",
                format!(
                    "{field}: {:?} is not an RFC 3339 time",
                    raw.chars().take(80).collect::<String>()
                ),
                "give a time such as 2024-05-01T00:00:00Z",
            )
        })
}

fn parse_status(raw: &str) -> ApiResult<DeliveryStatus> {
    DeliveryStatus::parse(raw).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_status",
            format!(
                "status: {:?} is not a delivery status",
                raw.chars().take(40).collect::<String>()
            ),
            "use pending, held, delivered or failed",
        )
    })
}

fn no_such_delivery() -> ApiError {
    ApiError::not_found(
        "there is no delivery with this id",
        "list deliveries with GET /api/deliveries",
    )
}

/// Deliveries, newest first, with their attempts.
#[utoipa::path(get, path = "/api/deliveries", tag = "deliveries",
    params(DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    authed: Authed,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> ApiResult<Json<DeliveryList>> {
    let Query(q) = query?;
    Ok(Json(list_page(&state, &authed.0.id, q).await?))
}

/// One page of the account's deliveries that `q` selects (also a notification endpoint's).
pub(crate) async fn list_page(
    state: &AppState,
    account: &AccountId,
    q: DeliveryQuery,
) -> ApiResult<DeliveryList> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit: {limit} is not between 1 and {MAX_LIMIT}"),
            "page through more with cursor",
        ));
    }
    let before_seq = match &q.cursor {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor: not a cursor this server gave out",
                "pass next_cursor from the previous page unchanged",
            )
        })?),
    };
    let filter = DeliveryFilter {
        account_id: account.clone(),
        connector_name: q.connector.clone(),
        status: q.status.as_deref().map(parse_status).transpose()?,
        package_id: q.package_id.clone(),
        since_ms: q
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until_ms: q
            .until
            .as_deref()
            .map(|u| parse_time("until", u))
            .transpose()?,
        before_seq,
        limit,
    };
    let records = state.store.list_deliveries(&filter).await?;
    let next_cursor = (records.len() as i64 == limit)
        .then(|| records.last().map(|d| d.seq.to_string()))
        .flatten();
    Ok(DeliveryList {
        deliveries: with_attempts(state, &records).await?,
        next_cursor,
    })
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/api/deliveries/{id}", tag = "deliveries",
    params(("id" = String, Path)),
    responses((status = 200, body = DeliveryOut), (status = 404, body = ErrorBody)))]
pub async fn get_delivery(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeliveryOut>> {
    let record = state
        .store
        .get_delivery(&authed.0.id, &DeliveryId::from(id))
        .await?
        .ok_or_else(no_such_delivery)?;
    let mut out = with_attempts(&state, std::slice::from_ref(&record)).await?;
    Ok(Json(out.remove(0)))
}

/// `POST /api/deliveries/{id}/retry`'s body, optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryIn {
    /// Send a delivered delivery again (the receiver gets it twice, with the same webhook-id).
    #[serde(default)]
    pub force: bool,
}

/// One more attempt now. A failed delivery gets one attempt (replay a connector for a fresh
/// schedule); a pending one skips the rest of its wait; a delivered one only with
/// `{"force": true}`.
#[utoipa::path(post, path = "/api/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = String, Path)), request_body(content = Option<RetryIn>),
    responses((status = 202, body = DeliveryOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(id): ApiPath<String>,
    body: Option<ApiJson<RetryIn>>,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    let account = &authed.0.id;
    let id = DeliveryId::from(id);
    let force = body.is_some_and(|ApiJson(b)| b.force);
    match state
        .store
        .retry_delivery(account, &id, state.delivery.now_ms(), force)
        .await?
    {
        RetryOutcome::Queued => {}
        RetryOutcome::NotFound => return Err(no_such_delivery()),
        RetryOutcome::AlreadyDelivered => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_delivered",
                "this delivery was delivered already; another attempt would send it again",
                "to send it again anyway, POST {\"force\": true} (hookwarden deliveries retry ID --force); the receiver gets the same webhook-id and can tell it is a repeat",
            ))
        }
        RetryOutcome::InFlight => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "delivery_in_flight",
                "this delivery is being attempted right now",
                "wait for the attempt to finish, then look at GET /api/deliveries/{id}",
            ))
        }
        RetryOutcome::Held => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "delivery_held",
                "this delivery is held because its connector is not active (needs_reauth, revoked or disabled)",
                "give the connector new credentials (PATCH {\"key\"}) or register it again; held deliveries then go out by themselves",
            ))
        }
    }
    state.delivery.wake_all_nodes().await;
    let record = state
        .store
        .get_delivery(account, &id)
        .await?
        .ok_or_else(no_such_delivery)?;
    let mut out = with_attempts(&state, std::slice::from_ref(&record)).await?;
    Ok((StatusCode::ACCEPTED, Json(out.remove(0))))
}

/// Re-queue a connector's failed (or delivered) deliveries created in `[since, until)`.
#[utoipa::path(post, path = "/api/callback/connectors/{name}/replay", tag = "deliveries",
    params(("name" = String, Path)), request_body = ReplayIn,
    responses((status = 200, body = ReplayOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn replay_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
    ApiJson(input): ApiJson<ReplayIn>,
) -> ApiResult<Json<ReplayOut>> {
    let name = ConnectorName::parse(&name).map_err(|e| {
        ApiError::bad_request(
            "invalid_connector_name",
            e.to_string(),
            "use the name the connector was registered under",
        )
    })?;
    find_connector(&state, &authed, &name).await?;
    let now = state.delivery.now_ms();
    let since = parse_time("since", &input.since)?;
    let until = input
        .until
        .as_deref()
        .map(|u| parse_time("until", u))
        .transpose()?
        .unwrap_or(now + 1);
    if until <= since {
        return Err(ApiError::bad_request(
            "invalid_time_range",
            format!(
                "until ({}) is not after since ({})",
                input.until.as_deref().unwrap_or("now"),
                input.since
            ),
            "give an until later than since, or leave until out to replay up to now",
        ));
    }
    let status = match input.status.as_deref() {
        None => DeliveryStatus::Failed,
        Some(raw) => match parse_status(raw)? {
            s @ (DeliveryStatus::Failed | DeliveryStatus::Delivered) => s,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_status",
                    "status: only failed or delivered deliveries can be replayed",
                    "leave status out to replay failed deliveries",
                ))
            }
        },
    };
    let replayed = state
        .store
        .replay_deliveries(&authed.0.id, name.as_str(), status, since, until, now)
        .await?;
    if replayed > 0 {
        state.delivery.wake_all_nodes().await;
    }
    Ok(Json(ReplayOut { replayed }))
}
