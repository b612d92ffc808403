use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` (with status 503) when the database does not answer.
    pub status: String,
    /// What this node runs: `api`, `worker` or `all`.
    #[schema(example = "all")]
    pub role: String,
    /// `sqlite` or `postgres`; whether it answers is `status`.
    #[schema(example = "postgres")]
    pub database: String,
    /// This server's version.
    pub version: String,
}

/// Liveness, the node's role and the database's reachability (no authentication). Served on
/// every role's node.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = if state.store.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let (code, status) = match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
    };
    (
        code,
        Json(Health {
            status: status.to_owned(),
            role: state.settings.role.to_string(),
            database: database.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }),
    )
}
