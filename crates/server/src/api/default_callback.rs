//! `/api/callback`: the account's default callback. Its `key` reaches the listener as
//! `Authorization: Basic <key>`; it receives the events that no connector took.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookwarden_core::key::mask_secret;
use hookwarden_core::Scope::{Admin, Read};
use hookwarden_core::{ConnectorKind, Credentials};
use hookwarden_store::{ConnectorRecord, NewConnector, DEFAULT_CALLBACK_NAME};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::validate::{self, DeliverySettings};
use super::{destination, rfc3339, DiagnosisOut};
use crate::auth::{needs, Authed};
use crate::error::{ApiError, ApiJson, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(needs(Read, routes!(get_default_callback)))
        .routes(needs(
            Admin,
            routes!(set_default_callback, delete_default_callback),
        ))
}

const MAX_BASIC_KEY: usize = 4096;

#[derive(Debug, Deserialize, ToSchema)]
pub struct DefaultCallbackIn {
    pub url: String,
    /// Sent to the listener as `Authorization: Basic <key>`. Required to set one; a replace
    /// without it keeps the current key, on the same host only: a url on another host needs
    /// the key in the same request (`409 credentials_required`).
    pub key: Option<String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DefaultCallbackOut {
    pub url: String,
    pub events: Vec<String>,
    /// The Basic key, masked.
    pub key: String,
    pub status: String,
    /// Why it is not `active` and what to do; `null` while it is.
    pub diagnosis: Option<DiagnosisOut>,
    pub warnings: Vec<String>,
    /// In full only in the answer to the first registration.
    pub signing_secret: String,
    pub created_at: String,
    pub updated_at: String,
}

fn to_out(record: &ConnectorRecord, full_signing_secret: bool) -> DefaultCallbackOut {
    DefaultCallbackOut {
        url: hookwarden_core::key::mask_url(&record.url),
        events: record.events.clone(),
        key: mask_secret(record.credentials.stored().expose_secret()),
        status: record.status.as_str().to_owned(),
        diagnosis: record.diagnosis().map(DiagnosisOut::from),
        warnings: record.warnings.clone(),
        signing_secret: if full_signing_secret {
            record.signing_secret.expose_secret().to_owned()
        } else {
            mask_secret(record.signing_secret.expose_secret())
        },
        created_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
    }
}

fn none_set() -> ApiError {
    ApiError::not_found(
        "this account has no default callback",
        "set one: POST /api/callback {\"url\", \"key\", \"events\"}",
    )
}

/// Set or replace the default callback. A replace without `key` keeps the current key, for a
/// url on the same host: moving it to another host needs the key (`409 credentials_required`).
#[utoipa::path(post, path = "/api/callback", tag = "default callback",
    request_body = DefaultCallbackIn,
    responses((status = 201, body = DefaultCallbackOut), (status = 200, body = DefaultCallbackOut),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_default_callback(
    State(state): State<AppState>,
    authed: Authed,
    ApiJson(input): ApiJson<DefaultCallbackIn>,
) -> ApiResult<(StatusCode, Json<DefaultCallbackOut>)> {
    let existing = state
        .store
        .get_connector(&authed.0.id, DEFAULT_CALLBACK_NAME)
        .await?;
    let url_raw = destination::given_url(&input.url, existing.as_ref().map(|r| r.url.as_str()));
    let (url, mut warnings) = validate::url(&url_raw, ConnectorKind::Generic, &state.settings)?;
    let (events, event_warnings) = validate::events(input.events)?;
    let credentials = match input.key.as_deref().map(str::trim) {
        Some(key) => {
            if key.is_empty() || key.len() > MAX_BASIC_KEY || key.chars().any(char::is_control) {
                return Err(ApiError::bad_request(
                    "invalid_callback_key",
                    format!("key: must be 1 to {MAX_BASIC_KEY} printable characters"),
                    "give the value your listener expects after `Authorization: Basic `",
                ));
            }
            Credentials::basic(SecretString::from(key.to_owned()))
        }
        None => {
            let current = existing.ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_callback_key",
                        "key: missing; a new default callback needs the key its listener expects",
                        "give {\"url\", \"key\", \"events\"}: the key is sent as `Authorization: Basic <key>`",
                    )
                })?;
            // Its key goes wherever its url points: only its holder moves it to another host.
            destination::move_allowed(
                &current.url,
                &url,
                false,
                None,
                "send the key with the url: POST /api/callback {\"url\", \"key\", \"events\"}",
            )?;
            current.credentials
        }
    };
    warnings.extend(event_warnings);
    warnings.extend(validate::unknown_fields(&input.extra));
    let new = NewConnector {
        account_id: authed.0.id.clone(),
        name: DEFAULT_CALLBACK_NAME.to_owned(),
        url,
        events,
        origins: vec!["*".to_owned()],
        owner: None,
        refresh_token_idle_days: None,
        settings: serde_json::to_value(DeliverySettings {
            max_concurrency: validate::default_concurrency(),
            ..Default::default()
        })
        .expect("settings serialise"),
        warnings,
        credentials,
    };
    let (record, created) = state.store.upsert_connector(new).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(to_out(&record, created))))
}

/// The default callback (key masked).
#[utoipa::path(get, path = "/api/callback", tag = "default callback",
    responses((status = 200, body = DefaultCallbackOut), (status = 404, body = ErrorBody)))]
pub async fn get_default_callback(
    State(state): State<AppState>,
    authed: Authed,
) -> ApiResult<Json<DefaultCallbackOut>> {
    let record = state
        .store
        .get_connector(&authed.0.id, DEFAULT_CALLBACK_NAME)
        .await?
        .ok_or_else(none_set)?;
    Ok(Json(to_out(&record, false)))
}

/// Remove the default callback.
#[utoipa::path(delete, path = "/api/callback", tag = "default callback",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_default_callback(
    State(state): State<AppState>,
    authed: Authed,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_connector(&authed.0.id, DEFAULT_CALLBACK_NAME)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(none_set())
    }
}
