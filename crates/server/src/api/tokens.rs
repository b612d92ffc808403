//! The token side of a connector: test it end to end (`test`), revoke it, re-authenticate it
//! (OAuth authorization code + PKCE, or a code obtained elsewhere), resume it (`resume`), and
//! read its history.

mod resume;
pub(crate) mod test;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use hookwarden_core::Problem;
use hookwarden_core::Scope::{Admin, Read};
use hookwarden_oauth::{RevokeOutcome, TokenError, TokenStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::connectors::{load_connector, to_out_with_token, ConnectorOut};
use super::{rfc3339, DiagnosisOut};
use crate::auth::{needs, Authed};
use crate::error::{ApiError, ApiPath, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(needs(Admin, routes!(test::test_connector)))
        .routes(needs(Admin, routes!(revoke_connector)))
        .routes(needs(Admin, routes!(resume::resume_connector)))
        .routes(needs(Admin, routes!(warm_token)))
        // A GET, but it starts a re-authentication.
        .routes(needs(Admin, routes!(authorization_url)))
        .routes(needs(Read, routes!(connector_history)))
        // No key: the provider sends the browser here, and the single-use state is the proof.
        .routes(routes!(oauth_callback))
}

/// Transient: 503 with the provider's Retry-After. A connector that cannot grant by its state
/// (revoked, needs_reauth) or whose status or flow does not allow the request: 409. Any other
/// refusal of the provider: 422, with its diagnosis.
impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        let status = if err.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else if err.awaits_credentials() || err.is_conflict() {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut api = ApiError::new(
            status,
            err.code(),
            Problem::message(&err),
            Problem::fix(&err),
        );
        api.retry_after = err.retry_after().map(|d| d.as_secs().max(1));
        api
    }
}

/// The connector after a revocation, and what the provider said.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeOut {
    #[serde(flatten)]
    pub connector: ConnectorOut,
    /// The provider confirmed that every token held here is revoked (true too when none was
    /// held). False when it refused, could not be reached or has no revocation endpoint: the
    /// tokens are wiped here all the same, but may stay valid at the provider until they expire.
    pub provider_confirmed: bool,
    /// What happened at the provider, and what to do when it did not confirm.
    pub detail: String,
    pub revocation: RevocationOut,
}

/// The details of a revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationOut {
    /// It was already revoked and held no token: nothing was sent.
    pub already_revoked: bool,
    pub refresh_token_revoked: bool,
    pub access_token_revoked: bool,
    /// The provider's revocation endpoint was called.
    pub provider_called: bool,
    /// Waiting deliveries this revocation held (they go out after new credentials).
    pub held_deliveries: u64,
}

impl RevocationOut {
    pub fn of(o: &RevokeOutcome) -> Self {
        Self {
            already_revoked: o.already_revoked,
            refresh_token_revoked: o.refresh_token_revoked,
            access_token_revoked: o.access_token_revoked,
            provider_called: o.provider_called,
            held_deliveries: o.held_deliveries,
        }
    }
}

/// Revoke, fail-safe: the tokens held here are wiped (including a refresh token in the key,
/// given or obtained by a code exchange), the connector becomes `revoked` and its waiting
/// deliveries are held, whatever the provider answers; then each token is revoked at the
/// provider (RFC 7009), and `provider_confirmed` and `detail` say whether it confirmed (the
/// history has each answer or network error). Only new credentials (`PATCH {"key"}` or a code
/// exchange) make it `active` again. Idempotent.
#[utoipa::path(post, path = "/api/callback/connectors/{name}/revoke", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = RevokeOut), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn revoke_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RevokeOut>> {
    let (name, record) = load_connector(&state, &authed, &name).await?;
    let outcome = state.tokens.revoke(&record).await?;
    let (_, record) = load_connector(&state, &authed, name.as_str()).await?;
    let connector = to_out_with_token(&state, &record).await;
    tracing::info!(account = %authed.0.id, connector = %name,
        provider_confirmed = outcome.provider_confirmed, "connector revoked");
    Ok(Json(RevokeOut {
        connector,
        provider_confirmed: outcome.provider_confirmed,
        revocation: RevocationOut::of(&outcome),
        detail: outcome.detail,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WarmOut {
    /// A grant was made for this call (false: a valid token was cached).
    pub refreshed: bool,
    #[schema(value_type = Object)]
    pub token: TokenStatus,
}

/// Make sure the connector holds a valid access token now (a grant only if none is cached or
/// it is about to expire). Never returns the token itself.
#[utoipa::path(post, path = "/api/callback/connectors/{name}/token", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = WarmOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn warm_token(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<WarmOut>> {
    let (_, record) = load_connector(&state, &authed, &name).await?;
    let token = state.tokens.token(&record).await?;
    Ok(Json(WarmOut {
        refreshed: token.refreshed,
        token: state.tokens.token_status(&record).await,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationUrlOut {
    /// Open it in a browser, sign in to the org and approve; the provider then redirects to
    /// `redirect_uri`, which completes the re-authentication.
    pub url: String,
    /// Register this as a callback URL of the connected app.
    pub redirect_uri: String,
}

pub(crate) fn redirect_uri(state: &AppState) -> String {
    format!("{}/oauth/callback", state.public_url())
}

/// The authorization URL (PKCE S256 + state) that re-authenticates a refresh-token connector.
/// A client-credentials connector gets its tokens with its client secret: `409 wrong_flow`,
/// and nothing changes.
#[utoipa::path(get, path = "/api/callback/connectors/{name}/oauth/url", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = AuthorizationUrlOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "wrong_flow, or limit_reached: max_pending_authorizations")))]
pub async fn authorization_url(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<AuthorizationUrlOut>> {
    let (_, record) = load_connector(&state, &authed, &name).await?;
    crate::caps::room_for_authorization(&state, &authed.0.id).await?;
    let redirect_uri = redirect_uri(&state);
    let url = state
        .tokens
        .authorization_url(&record, &redirect_uri)
        .await?;
    Ok(Json(AuthorizationUrlOut { url, redirect_uri }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    page_with_link(status, title, text, None)
}

/// The page, with a link (`href`, text) under its text.
fn page_with_link(
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    (
        status,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>hookwarden: {t}</title>\
             <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
             <h1>{t}</h1><p>{x}</p>{l}</body>",
            t = escape(title),
            x = escape(text),
            l = link
                .map(|(href, label)| format!(
                    "<p><a href=\"{}\">{}</a></p>",
                    escape(href),
                    escape(label)
                ))
                .unwrap_or_default()
        )),
    )
        .into_response()
}

/// Where the provider sends the browser after approval: completes the re-authentication that
/// `.../oauth/url` began. No API key: the single-use state is the proof.
#[utoipa::path(get, path = "/oauth/callback", tag = "tokens", params(CallbackParams),
    responses((status = 200, description = "re-authenticated (an HTML page)"),
              (status = 400, description = "denied, or an unknown or used state (an HTML page)")))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    params: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Malformed redirect",
                &format!(
                    "The provider's redirect could not be read ({}). Start again from the connector's oauth/url.",
                    rejection.body_text()
                ),
            )
        }
    };
    if let Some(error) = params.error.as_deref() {
        let description = params.error_description.as_deref().unwrap_or("");
        return page(
            StatusCode::BAD_REQUEST,
            "Authorization was not granted",
            &format!("The provider answered {error}: {description}. Start again from the connector's oauth/url."),
        );
    }
    let (Some(code), Some(oauth_state)) = (params.code.as_deref(), params.state.as_deref()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Incomplete redirect",
            "This address expects ?code=...&state=... from the provider. Start again from the connector's oauth/url.",
        );
    };
    match state
        .tokens
        .complete_authorization(None, oauth_state, code)
        .await
    {
        Ok(record) => {
            tracing::info!(connector = %record.name, "connector re-authenticated");
            page_with_link(
                StatusCode::OK,
                "Connector re-authenticated",
                &format!(
                    "{} is active again; held deliveries resume now. You can close this page.",
                    record.name
                ),
                Some((
                    &format!("/console/connectors/{}", record.name),
                    "Back to the connector in the console",
                )),
            )
        }
        Err(e) => page(
            StatusCode::BAD_REQUEST,
            "Re-authentication failed",
            &format!("{} — {}", Problem::message(&e), Problem::fix(&e)),
        ),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// At most this many entries (1 to 500, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryOut {
    pub id: String,
    pub at: String,
    /// grant, refresh, revoke, introspect, hook, code_exchange, test, or keep_alive (a refresh
    /// made only so that an idle refresh token is used: `keepalive_days`).
    pub kind: String,
    pub grant_type: Option<String>,
    pub outcome: String,
    pub http_status: Option<i64>,
    /// The provider's `error` / `errorCode`.
    pub provider_error: Option<String>,
    pub provider_error_description: Option<String>,
    pub diagnosis: Option<DiagnosisOut>,
    pub duration_ms: i64,
    /// The start of the provider's answer (≤ 1 KiB), secrets removed.
    pub excerpt: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    pub entries: Vec<HistoryEntryOut>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Every grant, refresh, revocation, introspection, hook call and test of a connector, newest
/// first.
#[utoipa::path(get, path = "/api/callback/connectors/{name}/history", tag = "tokens",
    params(("name" = String, Path), HistoryParams),
    responses((status = 200, body = HistoryOut), (status = 404, body = ErrorBody)))]
pub async fn connector_history(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<HistoryOut>> {
    let Query(params) = params?;
    let (_, record) = load_connector(&state, &authed, &name).await?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit: {limit} is not between 1 and 500"),
            "ask for 1 to 500 entries a page, and page on with `cursor`",
        ));
    }
    let entries = state
        .store
        .list_history(&record.id, limit, params.cursor.as_deref())
        .await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|e| HistoryEntryOut {
            diagnosis: e.entry.diagnosis().map(DiagnosisOut::from),
            id: e.id,
            at: rfc3339(e.entry.at),
            kind: e.entry.kind.as_str().to_owned(),
            grant_type: e.entry.grant_type,
            outcome: e.entry.outcome,
            http_status: e.entry.http_status,
            provider_error: e.entry.error,
            provider_error_description: e.entry.error_description,
            duration_ms: e.entry.duration_ms,
            excerpt: e.entry.excerpt,
        })
        .collect();
    Ok(Json(HistoryOut {
        entries,
        next_cursor,
    }))
}
