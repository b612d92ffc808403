//! HTTP handlers: the Salesforce-shaped endpoints and the `/_fake` control plane.
//!
//! This parent holds the route table (the control plane's built from [`CONTROL_ROUTES`]) and what
//! the endpoints share: the REST error shape and the fault injection; the handlers live with their
//! endpoints.

mod apex;
mod control;
mod oauth;

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::FakeOrgState;

pub use control::{ControlRoute, CONTROL_ROUTES};

const APEX_PREFIX: &str = "/services/apexrest";

pub(crate) fn routes(state: FakeOrgState) -> Router {
    let router = Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/revoke",
            get(oauth::revoke).post(oauth::revoke),
        )
        .route("/services/oauth2/introspect", post(oauth::introspect))
        .route(
            "/services/oauth2/authorize",
            get(oauth::authorize).post(oauth::authorize),
        )
        .route(APEX_PREFIX, any(apex::apex))
        .route("/services/apexrest/", any(apex::apex))
        .route("/services/apexrest/{*path}", any(apex::apex));
    // Two rows of one path (GET and POST /_fake/config) merge into one route.
    let router = CONTROL_ROUTES.iter().fold(router, |router, route| {
        router.route(route.path, control::handler(route))
    });
    router.fallback(not_found).with_state(state)
}

// ---- shared answers ----

/// Salesforce REST errors are a JSON array of `{"message","errorCode"}`.
fn rest_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

async fn not_found() -> Response {
    rest_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// An injected failure: status and `Retry-After`.
#[derive(Clone, Copy)]
pub(crate) struct Injected {
    status: StatusCode,
    retry_after_s: Option<u64>,
}

impl Injected {
    fn stats_key(self) -> String {
        format!("http_{}", self.status.as_u16())
    }

    fn finish(self, mut r: Response) -> Response {
        *r.status_mut() = self.status;
        let wants_retry_after = matches!(self.status.as_u16(), 429 | 503);
        if let (true, Some(secs)) = (wants_retry_after, self.retry_after_s) {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Endpoint {
    Token,
    Apex,
}

/// How often a held Apex call looks whether it may go on.
const HOLD_POLL: Duration = Duration::from_millis(10);

impl FakeOrgState {
    /// Wait while `apex_hold_after` holds Apex calls (the caller may give up meanwhile: a
    /// dropped connection drops this future).
    async fn hold_apex(&self) {
        loop {
            let held = {
                let org = self.lock();
                org.config
                    .apex_hold_after
                    .is_some_and(|n| org.stats.callbacks_received >= n)
            };
            if !held {
                return;
            }
            tokio::time::sleep(HOLD_POLL).await;
        }
    }

    /// Apply the endpoint's fault knobs: decide under the lock, sleep outside it.
    async fn inject(&self, endpoint: Endpoint) -> Option<Injected> {
        let (latency_ms, injected) = {
            let mut org = self.lock();
            let faults = match endpoint {
                Endpoint::Token => &mut org.config.token_faults,
                Endpoint::Apex => &mut org.config.apex_faults,
            };
            let fail = if faults.fail_next > 0 {
                faults.fail_next -= 1;
                true
            } else {
                faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate
            };
            let injected = fail.then(|| Injected {
                status: StatusCode::from_u16(faults.status)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                retry_after_s: faults.retry_after_s,
            });
            (faults.latency_ms, injected)
        };
        if latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(latency_ms)).await;
        }
        injected
    }
}
