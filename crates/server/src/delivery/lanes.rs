//! A connector's lane on this node: its concurrency, its rate pacing, how many claims it may
//! hold (its room), and its circuit breaker.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::options::EngineOptions;

/// Claimed deliveries a connector may hold per unit of its concurrency before it is left out
/// of further claims until it drains (one claim may still bring a whole batch), while how long
/// its requests take is not known yet, or when they are slow: at the 15 s timeout, 8 rounds
/// take the whole 120 s lease.
const LANE_BACKLOG: usize = 8;
/// The most a connector that answers quickly may hold per unit of concurrency: the claim that
/// refills it waits for the SQLite writer behind ingest groups of thousands of events (tens of
/// milliseconds), and at 8 a 64-wide connector answering in 1–2 ms ran dry first, leaving the
/// CPU idle a fifth of the time while ingest ran. Bounded so that a held backlog is sent within
/// `Lane::backlog_budget` at the connector's recent latency, and to half of the node's
/// `max_in_flight`, so that one connector never holds every slot (`Lane::room`).
const LANE_BACKLOG_FAST: usize = 32;
/// How much paced sending (`max_per_second`) a connector may hold claims for; well under the lease.
const PACED_BACKLOG: Duration = Duration::from_secs(30);

/// One connector's limits and health on this node.
pub(super) struct Lane {
    /// The connector's limits as this node applies them (its share of them among the nodes):
    /// changed in place by `resize`, so a lane keeps its pacing, claims and breaker through a
    /// change of share rather than a second lane sending beside the first.
    limits: Mutex<LaneLimits>,
    pub(super) permits: Arc<Semaphore>,
    /// Claimed deliveries of this connector that this node holds.
    pub(super) owned: AtomicUsize,
    breaker: Mutex<Breaker>,
    next_slot: Mutex<Option<tokio::time::Instant>>,
    /// Wakes deliveries waiting for a turn when the breaker opens, so they are given back at
    /// once rather than one per freed turn.
    pub(super) opened: Notify,
    /// A moving average of how long its successful deliveries take (µs; 0 before the first),
    /// and `Lane::backlog_budget` in µs.
    latency_us: AtomicU64,
    backlog_budget_us: u64,
    /// Half of the node's `max_in_flight` (or the cautious backlog, if that is more).
    max_room: usize,
    /// Set when a claim leaves this connector out for being full; the delivery that brings it
    /// below its room clears it and wakes the claimer.
    pub(super) left_out: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LaneLimits {
    pub(super) max_concurrency: usize,
    pub(super) max_per_second: Option<f64>,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: i64,
    cooldown_ms: i64,
}

impl Lane {
    /// The time a held backlog must be sendable in at the connector's recent latency: a
    /// quarter of the lease (if the connector slows down, what is left is handed back unsent
    /// before the lease ends), and half of the shutdown grace (what is left then is released).
    fn backlog_budget(opts: &EngineOptions) -> Duration {
        (opts.lease / 4).min(opts.shutdown_grace / 2)
    }

    pub(super) fn new(
        max_concurrency: usize,
        max_per_second: Option<f64>,
        opts: &EngineOptions,
    ) -> Self {
        Self {
            limits: Mutex::new(LaneLimits {
                max_concurrency,
                max_per_second,
            }),
            permits: Arc::new(Semaphore::new(max_concurrency)),
            owned: AtomicUsize::new(0),
            breaker: Mutex::new(Breaker::default()),
            next_slot: Mutex::new(None),
            opened: Notify::new(),
            latency_us: AtomicU64::new(0),
            backlog_budget_us: Self::backlog_budget(opts).as_micros() as u64,
            max_room: (opts.max_in_flight / 2).max(max_concurrency * LANE_BACKLOG),
            left_out: AtomicBool::new(false),
        }
    }

    /// Holds as many claims as it can work off well within a lease: `LANE_BACKLOG` rounds of
    /// its concurrency, up to `LANE_BACKLOG_FAST` rounds as long as they fit in the backlog
    /// budget at its recent latency and in half the node's slots, and with `max_per_second`
    /// no more than `PACED_BACKLOG` of sending.
    pub(super) fn limits(&self) -> LaneLimits {
        *self.limits.lock().expect("lane limits lock")
    }

    /// New limits for the same lane (this node's share changed, or the connector's settings):
    /// the pacer goes on from its next slot at the new rate, and the permits grow or shrink
    /// (shrinking takes back only permits not in use; the rest as they are returned is not
    /// tracked, so a lane may briefly run a few over a lowered concurrency).
    pub(super) fn resize(&self, max_concurrency: usize, max_per_second: Option<f64>) {
        let mut limits = self.limits.lock().expect("lane limits lock");
        let before = limits.max_concurrency;
        if max_concurrency > before {
            self.permits.add_permits(max_concurrency - before);
        } else if max_concurrency < before {
            self.permits.forget_permits(before - max_concurrency);
        }
        *limits = LaneLimits {
            max_concurrency,
            max_per_second,
        };
    }

    pub(super) fn room(&self) -> usize {
        let LaneLimits {
            max_concurrency,
            max_per_second,
        } = self.limits();
        let rounds = match self.latency_us.load(AtomicOrdering::Relaxed) {
            0 => LANE_BACKLOG,
            us => ((self.backlog_budget_us / us) as usize).clamp(LANE_BACKLOG, LANE_BACKLOG_FAST),
        };
        let cautious = max_concurrency * LANE_BACKLOG;
        let room = (max_concurrency * rounds).min(self.max_room).max(cautious);
        match max_per_second {
            Some(rate) => room.min(((rate * PACED_BACKLOG.as_secs_f64()).ceil() as usize).max(1)),
            None => room,
        }
    }

    /// Folds a delivered delivery's duration into the moving average (weight 1/16). Only
    /// successes count: an endpoint that refuses connections in a millisecond must not earn
    /// itself a larger backlog to hand back after each breaker cooldown.
    pub(super) fn took(&self, elapsed: Duration) {
        let sample = (elapsed.as_micros() as u64).max(1);
        let _ =
            self.latency_us
                .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |avg| {
                    Some(if avg == 0 {
                        sample
                    } else {
                        ((avg * 15 + sample) / 16).max(1)
                    })
                });
    }

    pub(super) fn saturated(&self) -> bool {
        self.owned.load(AtomicOrdering::Relaxed) >= self.room()
    }

    pub(super) fn open_until(&self, now: i64) -> Option<i64> {
        let b = self.breaker.lock().expect("breaker lock");
        (b.open_until > now).then_some(b.open_until)
    }

    /// `max_per_second`: each send takes the next free slot of the connector's schedule.
    pub(super) async fn pace(&self) {
        let Some(rate) = self.limits().max_per_second.filter(|r| *r > 0.0) else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let at = {
            let mut slot = self.next_slot.lock().expect("pacer lock");
            let now = tokio::time::Instant::now();
            let at = slot.map_or(now, |s| s.max(now));
            *slot = Some(at + interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Closes the breaker; true when it had opened since the last success (the connector
    /// recovered from `failing`).
    pub(super) fn on_success(&self) -> bool {
        let mut b = self.breaker.lock().expect("breaker lock");
        let had_opened = b.cooldown_ms != 0;
        b.failures = 0;
        b.cooldown_ms = 0;
        b.open_until = 0;
        had_opened
    }

    /// Counts a failure; `Some(until)` when this one opens (or re-opens) the breaker.
    pub(super) fn on_failure(&self, now: i64, opts: &EngineOptions) -> Option<i64> {
        let mut b = self.breaker.lock().expect("breaker lock");
        b.failures += 1;
        if b.failures < opts.breaker_threshold || b.open_until > now {
            return None;
        }
        let base = opts.breaker_cooldown.as_millis() as i64;
        let max = opts.breaker_max_cooldown.as_millis() as i64;
        b.cooldown_ms = if b.cooldown_ms == 0 {
            base
        } else {
            (b.cooldown_ms * 2).min(max)
        };
        b.open_until = now + b.cooldown_ms;
        self.opened.notify_waiters();
        Some(b.open_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lanes_room_grows_with_fast_answers_and_shrinks_with_slow_ones() {
        let opts = EngineOptions::default();
        assert_eq!(Lane::backlog_budget(&opts), Duration::from_secs(5));
        let lane = Lane::new(64, None, &opts);
        // Nothing measured yet: the cautious backlog.
        assert_eq!(lane.room(), 64 * LANE_BACKLOG);

        // Answers in 2 ms: 32 rounds of 64 take 0.13 s, far inside the 5 s budget.
        for _ in 0..64 {
            lane.took(Duration::from_millis(2));
        }
        assert_eq!(lane.room(), 64 * LANE_BACKLOG_FAST);

        // The endpoint slows to 400 ms an answer: 12 rounds fit in 5 s.
        for _ in 0..200 {
            lane.took(Duration::from_millis(400));
        }
        let avg = lane.latency_us.load(AtomicOrdering::Relaxed);
        assert!((399_000..=400_000).contains(&avg), "{avg}");
        assert_eq!(lane.room(), 64 * 12);

        // Timeouts (15 s): never below the cautious backlog.
        for _ in 0..200 {
            lane.took(Duration::from_secs(15));
        }
        assert_eq!(lane.room(), 64 * LANE_BACKLOG);

        // A wide connector gets at most half of the node's slots...
        let wide = Lane::new(256, None, &opts);
        wide.took(Duration::from_millis(1));
        assert_eq!(wide.room(), opts.max_in_flight / 2);
        // ...but never less than its cautious backlog.
        let wider = Lane::new(1024, None, &opts);
        wider.took(Duration::from_millis(1));
        assert_eq!(wider.room(), 1024 * LANE_BACKLOG);

        // max_per_second still bounds it: 30 s of sending at 10/s.
        let paced = Lane::new(64, Some(10.0), &opts);
        paced.took(Duration::from_millis(1));
        assert_eq!(paced.room(), 300);
    }
}
