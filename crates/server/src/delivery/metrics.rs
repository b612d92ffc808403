//! Prometheus metrics of the delivery engine, through the `metrics` facade; `/metrics` renders
//! them (`crate::metrics`).

use metrics::{counter, gauge, histogram};

pub const DELIVERIES: &str = "hookwarden_deliveries_total";
pub const ATTEMPT_SECONDS: &str = "hookwarden_attempt_duration_seconds";
pub const QUEUE_DEPTH: &str = "hookwarden_queue_depth";
pub const GRANTS: &str = "hookwarden_grants_total";
pub const PRUNED: &str = "hookwarden_history_pruned_total";

/// Say what each metric is; called once when the process-wide recorder is installed
/// (`crate::metrics::handle`).
pub fn describe() {
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
        PRUNED,
        "Rows removed by history retention: deliveries, attempts, events, idempotency_keys, token_calls"
    );
    metrics::describe_counter!(
        GRANTS,
        "Token grants seen by the delivery workers, by outcome, per connector"
    );
}

/// `n` deliveries of one connector reached `outcome` (the recorder counts a batch at once).
pub(crate) fn delivery_outcomes(account: &str, connector: &str, outcome: &'static str, n: u64) {
    counter!(DELIVERIES, "account" => account.to_owned(), "connector" => connector.to_owned(), "outcome" => outcome)
        .increment(n);
}

/// Attempt latencies of one connector, recorded with one histogram lookup.
pub(crate) fn attempt_latencies(account: &str, connector: &str, seconds: &[f64]) {
    let h = histogram!(ATTEMPT_SECONDS, "account" => account.to_owned(), "connector" => connector.to_owned());
    for s in seconds {
        h.record(*s);
    }
}

pub(crate) fn grant(account: &str, connector: &str, outcome: &'static str) {
    counter!(GRANTS, "account" => account.to_owned(), "connector" => connector.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub(crate) fn history_pruned(p: &hookwarden_store::Pruned) {
    for (kind, n) in [
        ("deliveries", p.deliveries),
        ("attempts", p.attempts),
        ("events", p.events),
        ("idempotency_keys", p.idempotency_keys),
        ("token_calls", p.token_calls),
    ] {
        counter!(PRUNED, "kind" => kind).increment(n);
    }
}

pub(crate) fn queue_depth(account: &str, connector: &str, state: &'static str, value: i64) {
    gauge!(QUEUE_DEPTH, "account" => account.to_owned(), "connector" => connector.to_owned(), "state" => state)
        .set(value as f64);
}
