//! Where the claimer's scan of the due deliveries starts (PostgreSQL). Every claim leaves in
//! PostgreSQL's due index a dead entry for each row it took, at the time the row was due, and
//! nothing clears them until VACUUM (autovacuum: a minute or more apart): a claim that starts
//! from the oldest due time walks all of them. In the benchmark's single events that walk grew
//! to 1,500 buffers a claim within 90,000 deliveries with two worker nodes (and 500 with one),
//! more than the 35 rows each claim took cost. So the claimer keeps a floor: after a claim
//! that took less than it asked for, nothing due before that claim's time is left unclaimed,
//! except what the claim could not take then:
//!
//! - deliveries of connectors it left out (saturated here, backing off);
//! - the next delivery of a package whose earlier one was still open;
//! - rows locked by another node's claim that then failed, and rows written before the claim
//!   but committed after it (an ingest group's commit; another node's clock behind this one's).
//!
//! The next claims start at the floor, `SETTLE_MS` before that claim's time (for the last
//! kind); a claim starts from the oldest again when a connector left out since the last such
//! claim is back, when a finished package delivery may have made its next one due, after a
//! claim that took all it asked for from the oldest (more may be due anywhere), after an
//! error, and at least every `FROM_START_EVERY`, which bounds how late any of the above is
//! found. SQLite keeps no dead entries: there every claim starts from the oldest.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hookwarden_core::ConnectorId;

/// How long before a claim's time its floor lies: rows stamped due before a claim but
/// committed after it (an ingest group's transaction, milliseconds; a peer's clock running
/// behind) are still found by the next claim when they are this late at most.
pub(crate) const SETTLE_MS: i64 = 500;

/// The longest time between two claims that start from the oldest due delivery.
pub(crate) const FROM_START_EVERY: Duration = Duration::from_millis(250);

/// A claim's lower bound on the due time: `FROM_START` is none.
pub(crate) const FROM_START: i64 = i64::MIN;

#[derive(Debug)]
pub(crate) struct Floor {
    enabled: bool,
    /// No delivery due before this is left to claim, except those the module lists.
    floor: Option<i64>,
    /// When the last claim from the oldest started.
    from_start_at: Option<Instant>,
    /// Connectors left out of any claim since the last one from the oldest: their due
    /// deliveries may lie below the floor.
    left_out: HashSet<ConnectorId>,
    /// Whether the claim under way started from the oldest.
    started_from_start: bool,
}

impl Floor {
    /// A floor that is used when `enabled` (PostgreSQL); otherwise every claim is from the
    /// oldest.
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            floor: None,
            from_start_at: None,
            left_out: HashSet::new(),
            started_from_start: true,
        }
    }

    /// The lower bound of the claim starting `at`, leaving `excluded` out; `rescan` when a
    /// wake-up asked for a claim from the oldest (a package's next delivery may be due).
    pub(crate) fn bound(&mut self, at: Instant, excluded: &[ConnectorId], rescan: bool) -> i64 {
        let back = self.left_out.iter().any(|c| !excluded.contains(c));
        let stale = self
            .from_start_at
            .is_none_or(|t| at.saturating_duration_since(t) >= FROM_START_EVERY);
        match self.floor {
            Some(floor) if self.enabled && !back && !stale && !rescan => {
                self.left_out.extend(excluded.iter().cloned());
                self.started_from_start = false;
                floor
            }
            _ => {
                self.from_start_at = Some(at);
                self.left_out = excluded.iter().cloned().collect();
                self.started_from_start = true;
                FROM_START
            }
        }
    }

    /// The claim started by the last `bound`, by the due time `now`, took `taken` of `limit`.
    pub(crate) fn claimed(&mut self, now: i64, taken: usize, limit: usize) {
        if taken < limit {
            self.floor = Some(now.saturating_sub(SETTLE_MS));
        } else if self.started_from_start {
            // More is due, and some of it may lie anywhere below.
            self.floor = None;
        }
    }

    /// The claim failed: start from the oldest next time.
    pub(crate) fn failed(&mut self) {
        self.floor = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str) -> ConnectorId {
        ConnectorId::from(id.to_owned())
    }

    #[test]
    fn a_short_claim_sets_the_floor_a_settling_time_before_it() {
        let mut f = Floor::new(true);
        let t0 = Instant::now();
        assert_eq!(f.bound(t0, &[], false), FROM_START);
        f.claimed(10_000, 3, 64);
        assert_eq!(f.bound(t0, &[], false), 10_000 - SETTLE_MS);
        // Later short claims move it on.
        f.claimed(10_040, 0, 64);
        assert_eq!(f.bound(t0, &[], false), 10_040 - SETTLE_MS);
    }

    #[test]
    fn sqlite_claims_always_start_from_the_oldest() {
        let mut f = Floor::new(false);
        let t0 = Instant::now();
        assert_eq!(f.bound(t0, &[], false), FROM_START);
        f.claimed(10_000, 3, 64);
        assert_eq!(f.bound(t0, &[], false), FROM_START);
    }

    #[test]
    fn claims_start_from_the_oldest_again_after_a_while_a_rescan_or_an_error() {
        let mut f = Floor::new(true);
        let t0 = Instant::now();
        f.bound(t0, &[], false);
        f.claimed(10_000, 3, 64);
        let later = t0 + FROM_START_EVERY;
        assert_eq!(f.bound(later, &[], false), FROM_START);
        f.claimed(10_300, 3, 64);
        assert_eq!(f.bound(later, &[], false), 10_300 - SETTLE_MS);
        assert_eq!(f.bound(later, &[], true), FROM_START);
        f.claimed(10_310, 3, 64);
        assert_eq!(f.bound(later, &[], false), 10_310 - SETTLE_MS);
        f.failed();
        assert_eq!(f.bound(later, &[], false), FROM_START);
    }

    #[test]
    fn a_connector_left_out_and_back_makes_the_next_claim_start_from_the_oldest() {
        let mut f = Floor::new(true);
        let t0 = Instant::now();
        f.bound(t0, &[], false);
        f.claimed(10_000, 3, 64);
        // Left out by a claim from the floor: its rows may lie below the floor from now on.
        assert_eq!(f.bound(t0, &[c("a")], false), 10_000 - SETTLE_MS);
        f.claimed(10_010, 3, 64);
        assert_eq!(f.bound(t0, &[c("a")], false), 10_010 - SETTLE_MS);
        f.claimed(10_020, 3, 64);
        // Back in: from the oldest, and then from the floor again.
        assert_eq!(f.bound(t0, &[], false), FROM_START);
        f.claimed(10_030, 3, 64);
        assert_eq!(f.bound(t0, &[], false), 10_030 - SETTLE_MS);
    }

    #[test]
    fn a_full_claim_from_the_oldest_keeps_the_next_from_the_oldest_too() {
        let mut f = Floor::new(true);
        let t0 = Instant::now();
        f.bound(t0, &[], false);
        f.claimed(10_000, 3, 64);
        // From the floor and full: what is left is above the floor, which holds.
        assert_eq!(f.bound(t0, &[], false), 10_000 - SETTLE_MS);
        f.claimed(10_010, 64, 64);
        assert_eq!(f.bound(t0, &[], false), 10_000 - SETTLE_MS);
        // From the oldest and full: what is left may be anywhere.
        assert_eq!(f.bound(t0, &[], true), FROM_START);
        f.claimed(10_020, 64, 64);
        assert_eq!(f.bound(t0, &[], false), FROM_START);
        f.claimed(10_030, 10, 64);
        assert_eq!(f.bound(t0, &[], false), 10_030 - SETTLE_MS);
    }
}
