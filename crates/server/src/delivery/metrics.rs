//! Prometheus metrics of the delivery engine, through the `metrics` facade; `/metrics` renders
//! them (`crate::metrics`).

use hookwarden_core::ConnectorStatus;
use metrics::{counter, gauge, histogram};

pub const DELIVERIES: &str = "hookwarden_deliveries_total";
pub const ATTEMPT_SECONDS: &str = "hookwarden_attempt_duration_seconds";
pub const QUEUE_DEPTH: &str = "hookwarden_queue_depth";
pub const GRANTS: &str = "hookwarden_grants_total";
pub const PRUNED: &str = "hookwarden_history_pruned_total";
pub const CONNECTOR_STATUS: &str = "hookwarden_connector_status";
pub const TOKEN_EXPIRES: &str = "hookwarden_token_expires_in_seconds";
pub const OLDEST_PENDING: &str = "hookwarden_oldest_pending_delivery_age_seconds";
pub const EVENTS: &str = "hookwarden_events_ingested_total";

/// Label values are names people read (the account's and the connector's), cut to this many
/// characters: an account name may be 200, and a label is repeated in every sample.
const MAX_LABEL_CHARS: usize = 64;

/// A name as a label value.
pub(crate) fn label(name: &str) -> String {
    name.chars().take(MAX_LABEL_CHARS).collect()
}

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
    metrics::describe_gauge!(
        CONNECTOR_STATUS,
        "1 for a connector's current status (active, needs_reauth, revoked, disabled), 0 for the others: alert on status=\"needs_reauth\" == 1"
    );
    metrics::describe_gauge!(
        TOKEN_EXPIRES,
        metrics::Unit::Seconds,
        "Seconds until the connector's access token expires (negative: expired; absent: none held)"
    );
    metrics::describe_gauge!(
        OLDEST_PENDING,
        metrics::Unit::Seconds,
        "Age of the connector's oldest pending delivery (0: none pending)"
    );
    metrics::describe_counter!(EVENTS, "Events ingested, per account");
}

/// `n` deliveries of one connector reached `outcome` (the recorder counts a batch at once).
pub(crate) fn delivery_outcomes(account: &str, connector: &str, outcome: &'static str, n: u64) {
    counter!(DELIVERIES, "account" => label(account), "connector" => label(connector), "outcome" => outcome)
        .increment(n);
}

/// Attempt latencies of one connector, recorded with one histogram lookup.
pub(crate) fn attempt_latencies(account: &str, connector: &str, seconds: &[f64]) {
    let h =
        histogram!(ATTEMPT_SECONDS, "account" => label(account), "connector" => label(connector));
    for s in seconds {
        h.record(*s);
    }
}

pub(crate) fn grant(account: &str, connector: &str, outcome: &'static str) {
    counter!(GRANTS, "account" => label(account), "connector" => label(connector), "outcome" => outcome)
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

/// One connector's gauges (see `Store::connector_gauges`), at `now`.
pub(crate) fn connector(g: &hookwarden_store::ConnectorGauges, now: i64) {
    let (account, connector) = (label(&g.account_name), label(&g.connector_name));
    for (state, value) in [("due", g.due), ("held", g.held), ("failed", g.failed)] {
        gauge!(QUEUE_DEPTH, "account" => account.clone(), "connector" => connector.clone(), "state" => state)
            .set(value as f64);
    }
    for status in [
        ConnectorStatus::Active,
        ConnectorStatus::NeedsReauth,
        ConnectorStatus::Revoked,
        ConnectorStatus::Disabled,
    ] {
        gauge!(CONNECTOR_STATUS, "account" => account.clone(), "connector" => connector.clone(), "status" => status.as_str())
            .set(if g.status == status { 1.0 } else { 0.0 });
    }
    let age = g
        .oldest_pending_at
        .map_or(0, |at| now.saturating_sub(at).max(0));
    gauge!(OLDEST_PENDING, "account" => account.clone(), "connector" => connector.clone())
        .set(age as f64 / 1000.0);
    let expires = gauge!(TOKEN_EXPIRES, "account" => account, "connector" => connector);
    match g.token_expires_at {
        Some(at) => expires.set(at.saturating_sub(now) as f64 / 1000.0),
        // No token held: the series says nothing rather than a misleading number.
        None => expires.set(f64::NAN),
    }
}

/// `n` events of an account were ingested.
pub fn events_ingested(account_name: &str, n: u64) {
    counter!(EVENTS, "account" => label(account_name)).increment(n);
}
