//! `/api/keys`: the account's API keys. A new key is shown once; a leaked one is revoked here
//! (or with `hookwarden accounts revoke-key`). Keys are listed by id, the first 16 hex digits
//! of their SHA-256, never in full.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookwarden_store::{ApiKeyInfo, KeyRevocation};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rfc3339;
use crate::auth::Authed;
use crate::error::{ApiError, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// The first 16 hex digits of the key's SHA-256: names the key, cannot be used as one.
    pub id: String,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyOut {
    pub id: String,
    /// The key itself, shown this once: send it as `Authorization: Basic <api_key>`.
    pub api_key: String,
    pub created_at: String,
}

fn key_out(info: &ApiKeyInfo, current: &str) -> KeyOut {
    KeyOut {
        id: info.id.clone(),
        prefix: info.prefix.clone(),
        created_at: rfc3339(info.created_at),
        last_used_at: info.last_used_at.map(rfc3339),
        current: info.id == current,
    }
}

/// The account's API keys (ids, never the keys).
#[utoipa::path(get, path = "/api/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody)))]
pub async fn list_keys(State(state): State<AppState>, authed: Authed) -> ApiResult<Json<KeyList>> {
    let keys = state.store.list_api_keys(&authed.0.id).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(|k| key_out(k, &authed.1)).collect(),
    }))
}

/// A new API key for the account, shown once. Rotate by creating one, moving producers to it,
/// then revoking the old one.
#[utoipa::path(post, path = "/api/keys", tag = "keys",
    responses((status = 201, body = NewKeyOut), (status = 401, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    authed: Authed,
) -> ApiResult<(StatusCode, Json<NewKeyOut>)> {
    let (info, api_key) = state.store.create_api_key(&authed.0.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKeyOut {
            id: info.id,
            api_key,
            created_at: rfc3339(info.created_at),
        }),
    ))
}

/// Revoke one of the account's keys; requests with it are refused from then on (on other
/// nodes within seconds). The account's last admin key cannot be revoked.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "the key's id, as GET /api/keys lists it")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
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
