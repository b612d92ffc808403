//! Prometheus metrics of the delivery engine, through the `metrics` facade. The server mounts
//! `/metrics` with the handle `install_recorder` returns.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub const DELIVERIES: &str = "hookwarden_deliveries_total";
pub const ATTEMPT_SECONDS: &str = "hookwarden_attempt_duration_seconds";
pub const QUEUE_DEPTH: &str = "hookwarden_queue_depth";
pub const GRANTS: &str = "hookwarden_grants_total";

/// Loopback answers take well under a millisecond; real org endpoints up to the 15 s timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];

/// Install the process-wide Prometheus recorder; call once, at start-up.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(ATTEMPT_SECONDS.to_owned()), LATENCY_BUCKETS)?
        .install_recorder()?;
    metrics::describe_counter!(
        DELIVERIES,
        "Deliveries by outcome (delivered, retry, failed, held) per connector"
    );
    metrics::describe_histogram!(
        ATTEMPT_SECONDS,
        metrics::Unit::Seconds,
        "HTTP attempt latency per connector"
    );
    metrics::describe_gauge!(
        QUEUE_DEPTH,
        "Deliveries due now, held, and failed, per connector"
    );
    metrics::describe_counter!(
        GRANTS,
        "Token grants seen by the delivery workers, by outcome, per connector"
    );
    Ok(handle)
}

pub(crate) fn delivery_outcome(account: &str, connector: &str, outcome: &'static str) {
    counter!(DELIVERIES, "account" => account.to_owned(), "connector" => connector.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub(crate) fn attempt_latency(account: &str, connector: &str, seconds: f64) {
    histogram!(ATTEMPT_SECONDS, "account" => account.to_owned(), "connector" => connector.to_owned())
        .record(seconds);
}

pub(crate) fn grant(account: &str, connector: &str, outcome: &'static str) {
    counter!(GRANTS, "account" => account.to_owned(), "connector" => connector.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub(crate) fn queue_depth(account: &str, connector: &str, state: &'static str, value: i64) {
    gauge!(QUEUE_DEPTH, "account" => account.to_owned(), "connector" => connector.to_owned(), "state" => state)
        .set(value as f64);
}
