//! `PATCH /api/callback/connectors/{name}`: change only the fields given, a code exchange
//! (`{"code"}`), a new key, or a url that may move the destination (only with its key).

use axum::extract::State;
use axum::Json;
use hookwarden_core::{ConnectorStatus, Credentials, ParsedKey};

use super::super::{destination, validate};
use super::{load_connector, settings_of, to_out, to_out_with_token, ConnectorOut, ConnectorPatch};
use crate::auth::Authed;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

/// Change only the fields given. `{"key": ...}` rotates the credentials and makes a
/// `needs_reauth` or `revoked` connector `active` again; `{"url": ...}` makes a `disabled` one
/// `active` again. A url on another host needs the key in the same request (`409
/// credentials_required`), unless it is on the host of the org's last `instance_url`.
#[utoipa::path(patch, path = "/api/callback/connectors/{name}", tag = "connectors",
    params(("name" = String, Path)), request_body = ConnectorPatch,
    responses((status = 200, body = ConnectorOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn patch_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<ConnectorPatch>,
) -> ApiResult<Json<ConnectorOut>> {
    let (name, mut record) = load_connector(&state, &authed, &name).await?;
    if patch.preset.is_some() {
        return Err(ApiError::bad_request(
            "preset_not_patchable",
            "preset: a PATCH cannot change a connector's preset, since its key follows the preset's rules",
            "register the connector again with the key and the new preset: POST or PUT /api/callback/connectors/{name}",
        ));
    }
    let kind = record.credentials.kind().unwrap_or_else(|| name.kind());
    let seen = record.seen();
    if let Some(code) = patch.code.as_deref() {
        if patch.changes_settings() {
            return Err(ApiError::bad_request(
                "code_not_alone",
                "code: an authorization code is exchanged on its own",
                "send {\"code\", \"redirect_uri\"?, \"code_verifier\"?} in one PATCH and the other changes in another",
            ));
        }
        if code.trim().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_code",
                "code: empty",
                "give the `code` the provider put in its redirect",
            ));
        }
        let exchanged = state
            .tokens
            .exchange_code(
                &record,
                code.trim(),
                patch.redirect_uri.as_deref(),
                patch.code_verifier.as_deref(),
            )
            .await?;
        tracing::info!(account = %authed.0.id, connector = %name, "connector re-authenticated with a code");
        return Ok(Json(to_out_with_token(&state, &exchanged).await));
    }
    let mut delivery = settings_of(&record);

    let url_given = patch.url.is_some();
    let url_raw = patch.url.map_or_else(
        || record.url.clone(),
        |u| destination::given_url(&u, Some(&record.url)),
    );
    let (url, mut warnings) = validate::url(&url_raw, kind, &state.settings)?;
    if url_given {
        // The org's own host is where its tokens already go (a disabled connector's way back).
        let org = state.tokens.token_status(&record).await.instance_url;
        destination::move_allowed(
            &record.url,
            &url,
            patch.key.is_some(),
            org.as_deref(),
            "send the key with the url in one PATCH: {\"url\": ..., \"key\": ...}",
        )?;
    }
    let (events, event_warnings) = validate::events(patch.events.unwrap_or(record.events.clone()))?;
    if patch.origins.is_some() {
        record.origins = validate::origins(patch.origins, kind)?;
    }
    if patch.owner.is_some() {
        record.owner = validate::owner(patch.owner)?;
    }
    if patch.refresh_token_idle_days.is_some() {
        record.refresh_token_idle_days =
            validate::refresh_token_idle_days(patch.refresh_token_idle_days)?;
    }
    if let Some(ordering) = patch.ordering {
        delivery.ordering = ordering;
    }
    if let Some(retry) = patch.retry {
        validate::retry(&retry)?;
        delivery.retry = Some(retry);
    }
    if patch.max_per_second.is_some() {
        delivery.max_per_second = validate::max_per_second(patch.max_per_second)?;
    }
    if patch.max_concurrency.is_some() {
        delivery.max_concurrency = validate::max_concurrency(patch.max_concurrency)?;
    }
    // A disabled connector (its endpoint answered 410, or its url was not in its org) comes
    // back with a new url; the next grant checks it against the org.
    if url_given && record.status == ConnectorStatus::Disabled {
        record.status = ConnectorStatus::Active;
    }
    let mut credentials_changed = false;
    if let Some(raw_key) = &patch.key {
        let ParsedKey {
            key,
            warnings: key_warnings,
            repairs,
        } = validate::key(raw_key, kind, &state.settings)?;
        // The very key the connector has, whose refresh token the provider has rotated since:
        // "changing" to it would send a spent refresh token. Leave the credentials alone.
        let same_key = record.credentials.same_key(&key);
        let rotated = same_key
            && state
                .tokens
                .token_status(&record)
                .await
                .refresh_token_rotated;
        credentials_changed = !rotated;
        delivery.key_warnings = key_warnings;
        delivery.key_line_wrapped = repairs.line_breaks;
        if credentials_changed {
            record.credentials = Credentials::from_key(kind, key);
            // New credentials are the way out of needs_reauth and revoked (DESIGN.md, Revocation).
            if matches!(
                record.status,
                ConnectorStatus::NeedsReauth | ConnectorStatus::Revoked
            ) {
                record.status = ConnectorStatus::Active;
            }
        }
    }
    if url_given || patch.key.is_some() {
        if let Ok((kind, key)) = record.credentials.oauth() {
            destination::url_in_key_org(&url, key, kind)?;
        }
    }
    warnings.extend(delivery.key_warnings.iter().cloned());
    warnings.extend(event_warnings);
    warnings.extend(validate::unknown_fields(&patch.extra));

    record.url = url;
    record.events = events;
    record.warnings = warnings;
    record.settings = serde_json::to_value(&delivery).expect("settings serialise");
    let saved = state
        .store
        .save_connector(&record, credentials_changed, seen)
        .await?;
    Ok(Json(to_out(&saved, None)))
}
