//! Taking turns on another node's wake-up (PostgreSQL). Every worker node LISTENs, so each
//! ingest group's NOTIFY woke every worker and each claimed at once: with two workers, twice
//! the claims per delivery, each skipping the rows the other had just locked. An ingest NOTIFY
//! carries the group's number (`node:seq`); the worker whose turn it is, by its place among the
//! live workers (their heartbeats), claims at once; the others look a moment later
//! (`TURN_WAIT`) unless they have started a claim since, so a group is still claimed at once by
//! someone when the worker whose turn it was is busy, slow or gone. Other wake-ups (a retry,
//! a replay, a connector active again) carry no number and wake every worker.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How long a worker whose turn it is not waits before it looks for itself: longer than the
/// time between its own turns under load (a few ms), so that its next turn's claim makes the
/// look unneeded; short enough that a busy or dead worker's group waits little.
pub(crate) const TURN_WAIT: Duration = Duration::from_millis(50);

/// How many worker nodes are alive (by their heartbeats; each also takes that share of a
/// connector's limits), this node's place among them, and its claims started so far.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    nodes: AtomicUsize,
    index: AtomicUsize,
    claims: AtomicU64,
}

impl Turns {
    /// From a heartbeat: how many worker nodes are alive and this one's place among them. The
    /// count it had before.
    pub(crate) fn set(&self, nodes: usize, index: usize) -> usize {
        self.index.store(index, Ordering::Relaxed);
        self.nodes.swap(nodes, Ordering::Relaxed).max(1)
    }

    /// Worker nodes alive, this one included: 1 until a heartbeat says otherwise (and always
    /// on SQLite).
    pub(crate) fn nodes(&self) -> usize {
        self.nodes.load(Ordering::Relaxed).max(1)
    }

    pub(crate) fn claim_started(&self) {
        self.claims.fetch_add(1, Ordering::Relaxed);
    }

    /// Claims this node has started so far: a wake-up that waited its turn is dropped when a
    /// claim started meanwhile.
    pub(crate) fn claims(&self) -> u64 {
        self.claims.load(Ordering::Relaxed)
    }

    /// Whether a wake-up with `payload` is this node's to act on at once.
    pub(crate) fn mine(&self, payload: &str) -> bool {
        is_turn_of(
            payload,
            self.nodes.load(Ordering::Relaxed),
            self.index.load(Ordering::Relaxed),
        )
    }
}

/// The payload of an ingest group's NOTIFY: the sending node and the group's number.
pub(crate) fn payload(node: &str, seq: u64) -> String {
    format!("{node}:{seq}")
}

/// The node that sent `payload` (all of it when it carries no number).
pub(crate) fn sender(payload: &str) -> &str {
    match payload.rsplit_once(':') {
        Some((node, seq)) if seq.parse::<u64>().is_ok() => node,
        _ => payload,
    }
}

/// Whether the wake-up `payload` is the turn of the worker at `index` of `nodes`: always when
/// it carries no number or there is one worker; otherwise by the number, shifted by a hash of
/// the sender (stable across processes) so that two API nodes do not both start at worker 0.
fn is_turn_of(payload: &str, nodes: usize, index: usize) -> bool {
    if nodes <= 1 {
        return true;
    }
    let Some((node, seq)) = payload
        .rsplit_once(':')
        .and_then(|(node, seq)| Some((node, seq.parse::<u64>().ok()?)))
    else {
        return true;
    };
    // FNV-1a: the same on every node, unlike std's randomly keyed hasher.
    let shift = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (seq.wrapping_add(shift) % nodes as u64) as usize == index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_is_one_workers_turn_and_the_turns_alternate() {
        for nodes in [2, 3] {
            for seq in 0..12 {
                let p = payload("hub-a", seq);
                let owners = (0..nodes).filter(|&i| is_turn_of(&p, nodes, i)).count();
                assert_eq!(owners, 1, "{p} among {nodes}");
            }
            // Every worker gets its share of consecutive groups.
            for i in 0..nodes {
                let mine = (0..(nodes as u64 * 10))
                    .filter(|&seq| is_turn_of(&payload("hub-a", seq), nodes, i))
                    .count();
                assert_eq!(mine, 10, "worker {i} of {nodes}");
            }
        }
    }

    #[test]
    fn a_wake_up_without_a_number_or_a_lone_worker_acts_at_once() {
        assert!(is_turn_of("store", 2, 0) && is_turn_of("store", 2, 1));
        assert!(is_turn_of("hub-a:notanumber", 2, 1));
        assert!(is_turn_of(&payload("hub-a", 7), 1, 0));
    }

    #[test]
    fn the_sender_is_read_back_from_the_payload() {
        assert_eq!(sender(&payload("hub-1f2e", 42)), "hub-1f2e");
        assert_eq!(sender("store"), "store");
        assert_eq!(sender("hub-x"), "hub-x");
    }
}
