//! `/api/callback/connectors/{name}`: register, read, replace, update, delete and rotate the
//! signing secret of OAuth 2.0 connectors (OneSpan Sign's callback connector API).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookwarden_core::key::mask_secret;
use hookwarden_core::Scope::{Admin, Read};
use hookwarden_core::{ConnectorKind, ConnectorName, Credentials, ParsedKey};
use hookwarden_oauth::TokenStatus;
use hookwarden_store::{ConnectorRecord, NewConnector};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::validate::{self, DeliverySettings, Ordering, RetryPolicy};
use super::{destination, rfc3339, DiagnosisOut};
use crate::auth::{needs, Authed};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

mod patch;
pub use patch::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(needs(Read, routes!(list_connectors)))
        .routes(needs(Read, routes!(get_connector)))
        .routes(needs(
            Admin,
            routes!(
                register_connector,
                replace_connector,
                patch_connector,
                delete_connector
            ),
        ))
        .routes(needs(Admin, routes!(rotate_signing_secret)))
}

/// Register or replace a connector.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectorIn {
    /// The destination, e.g. `https://acme.my.salesforce.com/services/apexrest/OSS/callback`.
    pub url: String,
    /// Base64 of the key JSON (`host`, `client_id`, `refresh_token` or `client_secret`, ...).
    pub key: String,
    /// Event names this connector receives.
    #[serde(default)]
    pub events: Vec<String>,
    /// Origins whose events it takes; default `["OSS"]` for the salesforce preset, else `["*"]`.
    pub origins: Option<Vec<String>>,
    pub owner: Option<String>,
    /// The org's "expire refresh token if not used for N days" policy (1 to 3650, 0 or
    /// absent for none): the governance review warns before it would expire the token.
    pub refresh_token_idle_days: Option<u32>,
    pub ordering: Option<Ordering>,
    pub retry: Option<RetryPolicy>,
    pub max_per_second: Option<f64>,
    pub max_concurrency: Option<u32>,
    /// `salesforce`, `dynamics` or `generic`: the rules and endpoints the key follows. By
    /// default the connector's current preset, or for a new one the preset its name selects
    /// (`salesforceOauth2` → salesforce, `dynamicsOauth2` → dynamics, any other → generic), so
    /// one account can hold several Salesforce orgs under names of its own.
    pub preset: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A partial update: only the fields given change. `key` rotates the credentials.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectorPatch {
    pub url: Option<String>,
    pub key: Option<String>,
    pub events: Option<Vec<String>>,
    pub origins: Option<Vec<String>>,
    pub owner: Option<String>,
    /// The org's refresh-token idle policy in days; 0 removes it.
    pub refresh_token_idle_days: Option<u32>,
    pub ordering: Option<Ordering>,
    pub retry: Option<RetryPolicy>,
    pub max_per_second: Option<f64>,
    pub max_concurrency: Option<u32>,
    /// An authorization code to exchange (re-authentication with a code obtained elsewhere);
    /// sent alone, with `redirect_uri` and `code_verifier` when the authorization used them.
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    /// Not changed by a PATCH: the key's rules depend on it (see `ConnectorIn::preset`).
    #[schema(ignore)]
    pub preset: Option<serde_json::Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ConnectorPatch {
    fn changes_settings(&self) -> bool {
        self.url.is_some()
            || self.key.is_some()
            || self.events.is_some()
            || self.origins.is_some()
            || self.owner.is_some()
            || self.refresh_token_idle_days.is_some()
            || self.ordering.is_some()
            || self.retry.is_some()
            || self.max_per_second.is_some()
            || self.max_concurrency.is_some()
    }
}

/// A connector as the API shows it: secrets masked, the signing secret in full only once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorOut {
    pub name: String,
    /// `salesforce`, `dynamics` or `generic`: given at registration, or the one its name selects.
    pub preset: String,
    pub url: String,
    pub events: Vec<String>,
    pub origins: Vec<String>,
    pub owner: Option<String>,
    /// The org's "expire refresh token if not used for N days" policy, when given.
    pub refresh_token_idle_days: Option<u32>,
    /// `refresh_token` or `client_credentials`.
    pub flow: Option<String>,
    /// `active`, `needs_reauth`, `revoked` or `disabled`.
    pub status: String,
    /// Why it is not `active` and what to do (the grant failure behind a `needs_reauth`, the
    /// endpoint's 410 behind a `disabled`); `null` while it is active.
    pub diagnosis: Option<DiagnosisOut>,
    /// The decoded key, every secret masked.
    #[schema(value_type = Object)]
    pub key: serde_json::Value,
    pub warnings: Vec<String>,
    /// The Standard Webhooks secret (`whsec_...`): in full only in the answer to the first
    /// registration and to a rotation, masked otherwise.
    pub signing_secret: String,
    pub ordering: Ordering,
    pub retry: Option<RetryPolicy>,
    pub max_per_second: Option<f64>,
    pub max_concurrency: u32,
    pub credentials_version: i64,
    /// When the credentials last changed: registration, a new key, a code exchange.
    pub credentials_changed_at: String,
    /// When the signing secret was made or last rotated.
    pub signing_secret_changed_at: String,
    pub created_at: String,
    pub updated_at: String,
    /// The token state (never a token): whether one is held, until when, the last grant and
    /// error, any backoff.
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorList {
    pub connectors: Vec<ConnectorOut>,
}

pub(crate) fn settings_of(record: &ConnectorRecord) -> DeliverySettings {
    serde_json::from_value(record.settings.clone()).unwrap_or_default()
}

pub(crate) fn to_out(
    record: &ConnectorRecord,
    full_signing_secret: Option<&SecretString>,
) -> ConnectorOut {
    let settings = settings_of(record);
    let key = match record.credentials.key() {
        Ok(key) => key.masked(),
        // A key stored by an older version that today's rules reject is still shown, masked.
        Err(_) => {
            serde_json::json!({"unreadable": "the stored key no longer passes the key rules; register a new key"})
        }
    };
    ConnectorOut {
        name: record.name.clone(),
        preset: record.credentials.storage_kind().to_owned(),
        url: hookwarden_core::key::mask_url(&record.url),
        events: record.events.clone(),
        origins: record.origins.clone(),
        owner: record.owner.clone(),
        refresh_token_idle_days: record.refresh_token_idle_days,
        flow: record.credentials.flow().map(|f| f.as_str().to_owned()),
        status: record.status.as_str().to_owned(),
        diagnosis: record.diagnosis().map(DiagnosisOut::from),
        key,
        warnings: record.warnings.clone(),
        signing_secret: match full_signing_secret {
            Some(secret) => secret.expose_secret().to_owned(),
            None => mask_secret(record.signing_secret.expose_secret()),
        },
        ordering: settings.ordering,
        retry: settings.retry,
        max_per_second: settings.max_per_second,
        max_concurrency: settings.max_concurrency,
        credentials_version: record.credentials_version,
        credentials_changed_at: rfc3339(record.credentials_changed_at),
        signing_secret_changed_at: rfc3339(record.signing_secret_changed_at),
        created_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
        token: None,
    }
}

/// The answer for a stored connector, with its token state.
pub(crate) async fn to_out_with_token(state: &AppState, record: &ConnectorRecord) -> ConnectorOut {
    let mut out = to_out(record, None);
    out.token = Some(state.tokens.token_status(record).await);
    out
}

pub(crate) fn parse_name(raw: &str) -> ApiResult<ConnectorName> {
    ConnectorName::parse(raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_connector_name",
            e.to_string(),
            "use salesforceOauth2, dynamicsOauth2, or a name of your own made of letters, digits, '_' and '-'",
        )
    })
}

pub(crate) fn no_such_connector(name: &ConnectorName) -> ApiError {
    ApiError::not_found(
        format!("there is no connector named {name}"),
        format!("register it first: POST /api/callback/connectors/{name}"),
    )
}

/// The account's connector of that name, or 404.
pub(crate) async fn find_connector(
    state: &AppState,
    authed: &Authed,
    name: &ConnectorName,
) -> ApiResult<ConnectorRecord> {
    state
        .store
        .get_connector(&authed.0.id, name.as_str())
        .await?
        .ok_or_else(|| no_such_connector(name))
}

/// The connector a path names: 400 for a name no connector can have, 404 for none of it.
pub(crate) async fn load_connector(
    state: &AppState,
    authed: &Authed,
    raw_name: &str,
) -> ApiResult<(ConnectorName, ConnectorRecord)> {
    let name = parse_name(raw_name)?;
    let record = find_connector(state, authed, &name).await?;
    Ok((name, record))
}

/// The preset of a registration: the one given, else the connector's current one (a replace
/// keeps it), else the one its name selects.
fn preset_of(
    given: Option<&str>,
    existing: Option<&ConnectorRecord>,
    name: &ConnectorName,
) -> ApiResult<ConnectorKind> {
    match given {
        Some(raw) => ConnectorKind::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_preset",
                format!(
                    "preset: {:?} is not a preset",
                    raw.chars().take(40).collect::<String>()
                ),
                "use \"salesforce\", \"dynamics\" or \"generic\", or leave it out to use the one the connector's name selects",
            )
        }),
        None => Ok(existing
            .and_then(|r| r.credentials.kind())
            .unwrap_or_else(|| name.kind())),
    }
}

/// Everything a full registration checks, as a `NewConnector`.
fn validate_full(
    state: &AppState,
    authed: &Authed,
    name: &ConnectorName,
    existing: Option<&ConnectorRecord>,
    input: ConnectorIn,
) -> ApiResult<NewConnector> {
    let kind = preset_of(input.preset.as_deref(), existing, name)?;
    let settings = &state.settings;
    let url_raw = destination::given_url(&input.url, existing.map(|r| r.url.as_str()));
    let (url, mut warnings) = validate::url(&url_raw, kind, settings)?;
    let (events, event_warnings) = validate::events(input.events)?;
    let origins = validate::origins(input.origins, kind)?;
    let owner = validate::owner(input.owner)?;
    let refresh_token_idle_days = validate::refresh_token_idle_days(input.refresh_token_idle_days)?;
    if let Some(retry) = &input.retry {
        validate::retry(retry)?;
    }
    let max_per_second = validate::max_per_second(input.max_per_second)?;
    let max_concurrency = validate::max_concurrency(input.max_concurrency)?;
    let ParsedKey {
        key,
        warnings: key_warnings,
        repairs,
    } = validate::key(&input.key, kind, settings)?;
    destination::url_in_key_org(&url, &key, kind)?;

    warnings.extend(key_warnings.iter().cloned());
    warnings.extend(event_warnings);
    warnings.extend(validate::unknown_fields(&input.extra));
    let delivery = DeliverySettings {
        ordering: input.ordering.unwrap_or_default(),
        retry: input.retry,
        max_per_second,
        max_concurrency,
        key_warnings,
        key_line_wrapped: repairs.line_breaks,
    };
    Ok(NewConnector {
        account_id: authed.0.id.clone(),
        name: name.as_str().to_owned(),
        url,
        events,
        origins,
        owner,
        refresh_token_idle_days,
        settings: serde_json::to_value(&delivery).expect("settings serialise"),
        warnings,
        credentials: Credentials::from_key(kind, key),
    })
}

/// Register a connector, or replace the one of that name.
///
/// Answers 201 with the full `signing_secret` on first registration, 200 on a replace (which
/// keeps the signing secret and makes the connector `active` with the new credentials). A
/// salesforce key whose `host` is a My Domain and that overrides no endpoint keeps the url on
/// that host (`400 url_not_in_org`).
#[utoipa::path(post, path = "/api/callback/connectors/{name}", tag = "connectors",
    params(("name" = String, Path, description = "salesforceOauth2, dynamicsOauth2 or any [A-Za-z0-9_-]{1,64}")),
    request_body = ConnectorIn,
    responses((status = 201, body = ConnectorOut), (status = 200, body = ConnectorOut),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "limit_reached: max_connectors_per_account")))]
pub async fn register_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
    ApiJson(input): ApiJson<ConnectorIn>,
) -> ApiResult<(StatusCode, Json<ConnectorOut>)> {
    let name = parse_name(&name)?;
    let existing = state
        .store
        .get_connector(&authed.0.id, name.as_str())
        .await?;
    let new = validate_full(&state, &authed, &name, existing.as_ref(), input)?;
    if existing.is_none() {
        crate::caps::room_for_connector(&state, &authed.0.id).await?;
    }
    let (record, created) = state.store.upsert_connector(new).await?;
    tracing::info!(account = %authed.0.id, connector = %name, created, "connector registered");
    if created {
        let secret = record.signing_secret.clone();
        Ok((StatusCode::CREATED, Json(to_out(&record, Some(&secret)))))
    } else {
        Ok((StatusCode::OK, Json(to_out(&record, None))))
    }
}

/// A connector's settings and status; secrets masked, never a token.
#[utoipa::path(get, path = "/api/callback/connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    responses((status = 200, body = ConnectorOut), (status = 404, body = ErrorBody)))]
pub async fn get_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ConnectorOut>> {
    let (_, record) = load_connector(&state, &authed, &name).await?;
    Ok(Json(to_out_with_token(&state, &record).await))
}

/// Every connector of the account (the default callback is at `/api/callback`).
#[utoipa::path(get, path = "/api/callback/connectors", tag = "connectors",
    responses((status = 200, body = ConnectorList), (status = 401, body = ErrorBody)))]
pub async fn list_connectors(
    State(state): State<AppState>,
    authed: Authed,
) -> ApiResult<Json<ConnectorList>> {
    let records = state.store.list_connectors(&authed.0.id).await?;
    let mut connectors = Vec::with_capacity(records.len());
    for record in &records {
        connectors.push(to_out_with_token(&state, record).await);
    }
    Ok(Json(ConnectorList { connectors }))
}

/// Replace an existing connector in full (404 when there is none: register it with POST).
#[utoipa::path(put, path = "/api/callback/connectors/{name}", tag = "connectors",
    params(("name" = String, Path)), request_body = ConnectorIn,
    responses((status = 200, body = ConnectorOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn replace_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
    ApiJson(input): ApiJson<ConnectorIn>,
) -> ApiResult<Json<ConnectorOut>> {
    let (name, existing) = load_connector(&state, &authed, &name).await?;
    let new = validate_full(&state, &authed, &name, Some(&existing), input)?;
    let (record, _) = state.store.upsert_connector(new).await?;
    Ok(Json(to_out(&record, None)))
}

/// What deleting a connector did at the provider and to its deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteOut {
    /// The provider confirmed the revocation of every token held here (true too when none was
    /// held); false when it refused, could not be reached or has no revocation endpoint.
    pub provider_confirmed: bool,
    /// What happened at the provider, and what to do when it did not confirm.
    pub detail: String,
    /// Waiting deliveries ended as `failed` (`connector_deleted`); they stay in the delivery
    /// history.
    pub failed_deliveries: u64,
}

/// Remove a connector: its tokens are revoked at the provider first (best effort, as
/// `…/revoke` does), then the connector, its tokens and its history are deleted, and its
/// waiting deliveries end as `failed`.
#[utoipa::path(delete, path = "/api/callback/connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    responses((status = 200, body = DeleteOut), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<DeleteOut>> {
    let (name, record) = load_connector(&state, &authed, &name).await?;
    // Revoked first, so a delete that fails halfway leaves a revoked connector, not live tokens.
    let revoked = state.tokens.revoke(&record).await?;
    if !state
        .store
        .delete_connector(&authed.0.id, name.as_str())
        .await?
    {
        return Err(no_such_connector(&name));
    }
    // Its waiting deliveries end visibly (and stay replayable in the history), not silently.
    let failed = state
        .store
        .fail_connector_deliveries(
            &record.id,
            "connector_deleted",
            chrono::Utc::now().timestamp_millis(),
        )
        .await?;
    tracing::info!(account = %authed.0.id, connector = %name, failed_deliveries = failed,
        provider_confirmed = revoked.provider_confirmed, detail = %revoked.detail, "connector deleted");
    Ok(Json(DeleteOut {
        provider_confirmed: revoked.provider_confirmed,
        detail: revoked.detail,
        failed_deliveries: failed,
    }))
}

/// A new `whsec_` signing secret, returned once; the old one keeps signing beside it for 24 h.
#[utoipa::path(post, path = "/api/callback/connectors/{name}/signing-secret/rotate", tag = "connectors",
    params(("name" = String, Path)),
    responses((status = 200, body = ConnectorOut), (status = 404, body = ErrorBody)))]
pub async fn rotate_signing_secret(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ConnectorOut>> {
    let name = parse_name(&name)?;
    let (record, fresh) = state
        .store
        .rotate_signing_secret(&authed.0.id, name.as_str())
        .await?
        .ok_or_else(|| no_such_connector(&name))?;
    Ok(Json(to_out(&record, Some(&fresh))))
}
