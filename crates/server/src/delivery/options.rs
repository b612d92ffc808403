//! The engine's knobs and their defaults: the clock, timeouts, the lease, batch and in-flight
//! sizes, polls, and the circuit breaker's policy.

use std::sync::Arc;
use std::time::Duration;

use hookwarden_core::clock::{Clock, SystemClock};

/// How long a claim is ours. A claim that waited so long for its connector's turn that its
/// lease could end mid-request is given back instead of sent (see `lease_left`).
const DEFAULT_LEASE: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct EngineOptions {
    pub clock: Arc<dyn Clock>,
    /// Uniform in [0, 1): the retry jitter's randomness, injectable for exact tests.
    pub random: Arc<dyn Fn() -> f64 + Send + Sync>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub lease: Duration,
    /// Deliveries claimed per statement at most: a claim waits its turn at the SQLite writer,
    /// so one claim should carry a busy connector through the wait.
    pub batch_size: usize,
    /// Claimed deliveries this node holds at once at most (waiting or in flight).
    pub max_in_flight: usize,
    /// How often an idle claimer looks for due work it was not woken for (retries coming due,
    /// other nodes' ingest on PostgreSQL).
    pub idle_poll: Duration,
    /// How often held deliveries are re-checked against their connector's status.
    pub maintenance_every: Duration,
    /// Consecutive failures (5xx, 429, timeouts, network) that open a connector's breaker.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    pub breaker_max_cooldown: Duration,
    /// At shutdown, how long in-flight attempts may finish.
    pub shutdown_grace: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            random: Arc::new(rand::random::<f64>),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            lease: DEFAULT_LEASE,
            batch_size: 1024,
            max_in_flight: 4096,
            idle_poll: Duration::from_millis(250),
            maintenance_every: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            breaker_max_cooldown: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
