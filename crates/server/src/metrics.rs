//! Prometheus metrics. The recorder is process-wide (the `metrics` facade allows one), so every
//! server in a process — tests start many — shares it.
//!
//! `/metrics` carries per-connector labels (the account's and the connector's names), so it is
//! the operator's: on the API's listener it needs `Authorization: Bearer <metrics_token>`, and
//! `metrics_listen` serves it without a key on an address of its own.
//!
//! The exporter cannot remove one label set, so a deleted connector's series would be shown
//! for as long as the process runs. `/metrics` therefore shows a per-connector series only
//! while that connector exists in the database (any node may have deleted it): the label
//! values shown stay bounded by the connectors there are. A deleted connector's series stay in
//! this process's memory, unshown, until it restarts (a few hundred bytes each).

use std::collections::HashSet;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header::{self, AUTHORIZATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::formatting::sanitize_label_value;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::MetricsAccess;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from loopback (sub-millisecond) to the 15 s request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];

/// The OpenAPI security scheme of `/metrics` on the API's listener.
pub const SECURITY_SCHEME: &str = "metrics_token";

pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // If something else installed a recorder first, our handle renders what we record
        // through it only; that is better than no /metrics at all.
        let _ = metrics::set_global_recorder(recorder);
        crate::delivery::metrics::describe();
        handle
    })
}

/// Prometheus metrics (text format), for the operator: with `Authorization: Bearer
/// <metrics_token>` here, or without a key on `metrics_listen`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security(("metrics_token" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
              (status = 401, body = ErrorBody,
               description = "no metrics token, a wrong one, or none configured (metrics_token)")))]
pub async fn metrics_with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match check_token(&state.settings.metrics, &headers) {
        Ok(()) => render(&state).await,
        Err(e) => e.into_response(),
    }
}

/// `/metrics` on `metrics_listen`: no key (the address is the protection).
pub async fn metrics_open(State(state): State<AppState>) -> Response {
    render(&state).await
}

/// What `metrics_listen` serves: `/metrics` and nothing else, a few scrapes at a time within
/// the API's timeout (`limits::with_metrics_limits`).
pub fn listener_router(state: AppState) -> Router {
    let limits = state.settings.limits.clone();
    let router = Router::new()
        .route("/metrics", get(metrics_open))
        .fallback(crate::api::not_found)
        .with_state(state);
    crate::limits::with_metrics_limits(router, &limits)
}

async fn render(state: &AppState) -> Response {
    let live = match state.store.connector_labels().await {
        Ok(labels) => labels
            .iter()
            .map(|l| {
                (
                    sanitize_label_value(&crate::delivery::metrics::label(&l.account_name)),
                    sanitize_label_value(&crate::delivery::metrics::label(&l.connector_name)),
                )
            })
            .collect::<HashSet<_>>(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        only_existing_connectors(&handle().render(), &live),
    )
        .into_response()
}

fn check_token(access: &MetricsAccess, headers: &HeaderMap) -> Result<(), ApiError> {
    let fix = "send `Authorization: Bearer <metrics_token>` with the server's metrics_token \
               (HOOKWARDEN_METRICS_TOKEN), or read /metrics without a key on the address \
               metrics_listen (HOOKWARDEN_METRICS_LISTEN) names";
    let Some(token) = &access.token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "/metrics on the API's listener needs the operator's metrics token, and this server has none (metrics_token is unset)",
            fix,
        ));
    };
    let sent = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credential)| credential.trim());
    // Compared as digests, in constant time: neither the token's characters nor its length
    // show in how long a refusal takes.
    let matches = sent.is_some_and(|sent| {
        let sent = Sha256::digest(sent.as_bytes());
        let want = Sha256::digest(token.expose_secret().as_bytes());
        bool::from(sent.as_slice().ct_eq(want.as_slice()))
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "/metrics needs the operator's metrics token: it is missing or wrong",
            fix,
        ))
    }
}

/// The exposition `text` without the samples of connectors not in `live` (account and
/// connector label values, as the exporter escapes them).
fn only_existing_connectors(text: &str, live: &HashSet<(String, String)>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let keep = line.starts_with('#')
            || match connector_of(line) {
                Some(pair) => live.contains(&pair),
                None => true,
            };
        if keep {
            out.push_str(line);
        }
    }
    out
}

/// The (account, connector) label values of a sample line that has both.
fn connector_of(line: &str) -> Option<(String, String)> {
    let labels = &line[line.find('{')? + 1..];
    let (mut account, mut connector) = (None, None);
    let mut rest = labels;
    loop {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => {
                    value.push('\\');
                    value.push(chars.next()?.1);
                }
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        match name {
            "account" => account = Some(value),
            "connector" => connector = Some(value),
            _ => {}
        }
        rest = &after[end + 1..];
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None => break,
        }
    }
    Some((account?, connector?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_connectors_that_no_longer_exist_are_left_out() {
        let text = "# TYPE hookwarden_deliveries_total counter\n\
            hookwarden_deliveries_total{account=\"acme\",connector=\"kept\",outcome=\"delivered\"} 3\n\
            hookwarden_deliveries_total{account=\"acme\",connector=\"gone\",outcome=\"delivered\"} 1\n\
            hookwarden_deliveries_total{account=\"a \\\"q\\\" b\",connector=\"gone\",outcome=\"delivered\"} 2\n\
            hookwarden_events_ingested_total{account=\"acme\"} 4\n\
            hookwarden_history_pruned_total{kind=\"events\"} 0\n";
        let live: HashSet<_> = [
            ("acme".to_owned(), "kept".to_owned()),
            (sanitize_label_value("a \"q\" b"), "gone".to_owned()),
        ]
        .into_iter()
        .collect();
        let shown = only_existing_connectors(text, &live);
        assert!(shown.contains("connector=\"kept\""), "{shown}");
        assert!(
            !shown.contains("account=\"acme\",connector=\"gone\""),
            "{shown}"
        );
        assert!(
            shown.contains("a \\\"q\\\" b\",connector=\"gone\""),
            "{shown}"
        );
        assert!(shown.contains("hookwarden_events_ingested_total{account=\"acme\"} 4"));
        assert!(shown.contains("kind=\"events\""));
        assert!(shown.starts_with("# TYPE"));
    }

    #[test]
    fn the_token_is_compared_whole() {
        let access = MetricsAccess {
            listen: None,
            token: Some("0123456789abcdef".to_owned().into()),
        };
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v.parse().unwrap());
            check_token(&access, &h)
        };
        assert!(with("Bearer 0123456789abcdef").is_ok());
        assert!(with("bearer 0123456789abcdef").is_ok());
        assert!(with("Bearer 0123456789abcde").is_err());
        assert!(with("Basic 0123456789abcdef").is_err());
        assert!(check_token(&access, &HeaderMap::new()).is_err());
        assert!(check_token(&MetricsAccess::default(), &HeaderMap::new()).is_err());
    }
}
