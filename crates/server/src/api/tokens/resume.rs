//! `POST …/resume`: one more grant with the stored credentials of a `needs_reauth` connector,
//! once the cause of the refusal is fixed at the provider; its held deliveries go out again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookwarden_core::Problem;
use hookwarden_oauth::TokenError;
use serde::Serialize;
use utoipa::ToSchema;

use super::super::connectors::{load_connector, to_out_with_token, ConnectorOut};
use super::super::DiagnosisOut;
use crate::auth::Authed;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeOut {
    /// The connector as `GET` shows it: `active` again.
    #[serde(flatten)]
    pub connector: ConnectorOut,
    /// Held deliveries that are due again.
    pub released: u64,
}

/// The provider refused the grant again: the usual error body, and its diagnosis.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeRefused {
    /// The diagnosis code, e.g. `no_run_as_user`.
    pub error: String,
    pub message: String,
    pub fix: String,
    pub diagnosis: DiagnosisOut,
}

/// After the cause of a refused grant was fixed at the provider (a Run As user set, a user
/// reactivated, an IP range relaxed): one grant with the stored credentials of a `needs_reauth`
/// connector. It answers the connector, `active` again, with the held deliveries `released`;
/// or `422` with the provider's refusal and its diagnosis, the connector still `needs_reauth`.
/// A `revoked` connector needs its credentials again (`409 credentials_required`); any other
/// status has nothing to resume (`409 nothing_to_resume`).
#[utoipa::path(post, path = "/api/callback/connectors/{name}/resume", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = ResumeOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`credentials_required` (revoked) or `nothing_to_resume` (not needs_reauth)"),
              (status = 422, body = ResumeRefused), (status = 503, body = ErrorBody)))]
pub async fn resume_connector(
    State(state): State<AppState>,
    authed: Authed,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ResumeOut>, Response> {
    let (name, record) = load_connector(&state, &authed, &name)
        .await
        .map_err(IntoResponse::into_response)?;
    let resumed = state.tokens.resume(&record).await.map_err(refused)?;
    if resumed.released > 0 {
        // Workers of every node start now rather than at their next poll.
        state.delivery.wake_all_nodes().await;
    }
    tracing::info!(account = %authed.0.id, connector = %name, released = resumed.released, "connector resumed");
    Ok(Json(ResumeOut {
        connector: to_out_with_token(&state, &resumed.connector).await,
        released: resumed.released,
    }))
}

/// A refusal by the provider (422) carries its diagnosis; other errors answer as everywhere.
fn refused(err: TokenError) -> Response {
    let api = ApiError::from(err.clone());
    if api.status != StatusCode::UNPROCESSABLE_ENTITY {
        return api.into_response();
    }
    let diagnosis = match err.diagnosis() {
        Some(d) => DiagnosisOut::from(d),
        // Our own refusal (an unusable stored key, an endpoint not allowed) diagnoses itself.
        None => DiagnosisOut {
            code: err.code().to_owned(),
            cause: Problem::message(&err),
            fix: Problem::fix(&err),
        },
    };
    let body = ResumeRefused {
        error: api.code,
        message: api.message,
        fix: api.fix,
        diagnosis,
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}
