pub mod connectors;
pub mod default_callback;
pub mod deliveries;
mod destination;
pub mod events;
pub mod health;
pub mod keys;
pub mod notifications;
pub mod review;
pub mod tokens;
pub mod validate;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookwarden_core::{Diagnosis, DiagnosisView};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A diagnosis, wherever one is shown (a history entry, an attempt, a connector test's check,
/// a connector that is not `active`): a code of the README's table of diagnoses, what is
/// wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DiagnosisOut {
    /// Stable, e.g. `no_run_as_user`; `unclassified` for one recorded before codes were.
    pub code: String,
    pub cause: String,
    pub fix: String,
}

impl From<DiagnosisView> for DiagnosisOut {
    fn from(d: DiagnosisView) -> Self {
        Self {
            code: d.code,
            cause: d.cause,
            fix: d.fix,
        }
    }
}

impl From<&Diagnosis> for DiagnosisOut {
    fn from(d: &Diagnosis) -> Self {
        DiagnosisView::from(d).into()
    }
}

/// Unknown `/api/**` paths answer JSON too.
pub async fn not_found() -> impl IntoResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_endpoint",
        "there is no such endpoint",
        "see GET /api/openapi.json for the endpoints this server has",
    )
}

/// What a `worker` node answers on every path but `/healthz` and `/metrics`.
pub fn wrong_role(role: crate::Role) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "wrong_role",
        format!(
            "this node runs with role {role}: it delivers events and refreshes tokens, and \
             answers only /healthz and /metrics"
        ),
        "send API and console requests to a node with role api or all (behind your load \
         balancer), not to a worker node",
    )
}

pub async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that HTTP method",
        "see GET /api/openapi.json for the methods each endpoint takes",
    )
}

pub use hookwarden_core::clock::rfc3339;
