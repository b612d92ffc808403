//! `/api/keys`: the account's API keys and their scopes. A new key is shown once; a leaked one
//! is revoked here (or with `hookwarden accounts revoke-key`). Keys are listed by id, the first
//! 16 hex digits of their SHA-256, never in full.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookwarden_core::Scope::{Admin, Read};
use hookwarden_core::{KeyName, Scopes};
use hookwarden_store::{ApiKeyInfo, KeyRevocation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rfc3339;
use crate::auth::{needs, Authed};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Reading the list shows no key, only ids, names and scopes.
        .routes(needs(Read, routes!(list_keys)))
        .routes(needs(Admin, routes!(create_key)))
        .routes(needs(Admin, routes!(revoke_key)))
}

/// A scope, as the document shows it (requests name scopes as strings, checked by
/// `Scopes::parse`, so that an unknown one is a 400 naming the valid ones).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum ScopeName {
    /// `POST /api/events` and `POST /api/events/batch`, nothing else.
    Ingest,
    /// Every `GET` that only reads.
    Read,
    /// Everything.
    Admin,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// The first 16 hex digits of the key's SHA-256: names the key, cannot be used as one.
    pub id: String,
    /// What its maker called it, if anything.
    pub name: Option<String>,
    /// What it may do; keys made before scopes existed are `admin`.
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Scopes,
    /// The key's first characters (`hwk_` and 6 more), to recognise it by; `null` for keys
    /// made before they were kept.
    pub prefix: Option<String>,
    pub created_at: String,
    /// When a server last accepted it (noted at most once a minute); `null` if never since.
    pub last_used_at: Option<String>,
    /// This request was made with this key.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyOut>,
}

/// `POST /api/keys`: what the new key may do, and a name to tell it by.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// One or more of `ingest`, `read`, `admin` (required: a key gets only what is asked for).
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Option<Vec<String>>,
    /// E.g. `producer-eu`: 1 to 100 characters on one line.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyOut {
    pub id: String,
    /// The key itself, shown this once: send it as `Authorization: Basic <api_key>`.
    pub api_key: String,
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Scopes,
    pub name: Option<String>,
    pub created_at: String,
}

fn key_out(info: &ApiKeyInfo, current: &str) -> KeyOut {
    KeyOut {
        id: info.id.clone(),
        name: info.name.clone(),
        scopes: info.scopes,
        prefix: info.prefix.clone(),
        created_at: rfc3339(info.created_at),
        last_used_at: info.last_used_at.map(rfc3339),
        current: info.id == current,
    }
}

/// The account's API keys (ids, names and scopes, never the keys).
#[utoipa::path(get, path = "/api/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_keys(State(state): State<AppState>, authed: Authed) -> ApiResult<Json<KeyList>> {
    let keys = state.store.list_api_keys(&authed.0.id).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(|k| key_out(k, &authed.1)).collect(),
    }))
}

/// A new API key for the account with the scopes asked for, shown once. Give each producer an
/// `ingest` key and each dashboard a `read` one. Rotate by creating one, moving to it, then
/// revoking the old one.
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = KeyIn,
    responses((status = 201, body = NewKeyOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "limit_reached: max_keys_per_account")))]
pub async fn create_key(
    State(state): State<AppState>,
    authed: Authed,
    body: Option<ApiJson<KeyIn>>,
) -> ApiResult<(StatusCode, Json<NewKeyOut>)> {
    let input = body.map(|ApiJson(b)| b).unwrap_or_default();
    let scopes = Scopes::parse(input.scopes.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::from_problem(&e))?;
    let name = input
        .name
        .as_deref()
        .map(KeyName::parse)
        .transpose()
        .map_err(|e| ApiError::from_problem(&e))?;
    crate::caps::room_for_key(&state, &authed.0.id).await?;
    let (info, api_key) = state
        .store
        .create_scoped_api_key(&authed.0.id, scopes, name.as_ref())
        .await?;
    tracing::info!(account = %authed.0.id, key = %info.id, scopes = %info.scopes, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(NewKeyOut {
            id: info.id,
            api_key,
            scopes: info.scopes,
            name: info.name,
            created_at: rfc3339(info.created_at),
        }),
    ))
}

/// Revoke one of the account's keys; requests with it are refused from then on (on other
/// nodes within seconds). The account's last admin key cannot be revoked.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "the key's id, as GET /api/keys lists it")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    match state.store.revoke_api_key(&authed.0.id, id.trim()).await? {
        KeyRevocation::Revoked => {
            state.forget_api_keys();
            Ok(StatusCode::NO_CONTENT)
        }
        KeyRevocation::NotFound => Err(ApiError::not_found(
            format!("this account has no API key with id {id}"),
            "use an id from GET /api/keys (16 hex digits)",
        )),
        KeyRevocation::LastAdminKey => Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_api_key",
            "this is the account's last admin key: revoking it would leave no key that can manage the account",
            "create another admin key first (POST /api/keys {\"scopes\": [\"admin\"]}), move to it, then revoke this one",
        )),
    }
}
