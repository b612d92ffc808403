pub mod connectors;
pub mod default_callback;
pub mod deliveries;
pub mod events;
pub mod health;
pub mod keys;
pub mod tokens;
pub mod validate;

use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::error::ApiError;

/// Unknown `/api/**` paths answer JSON too.
pub async fn not_found() -> impl IntoResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_endpoint",
        "there is no such endpoint",
        "see GET /api/openapi.json for the endpoints this server has",
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
