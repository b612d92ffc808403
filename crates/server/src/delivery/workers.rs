//! What this node's claimer, recorder, maintenance loop and delivery tasks share: the store, the
//! token source, the HTTP client, the options, the lanes and the counts of claims held.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use hookwarden_core::{AccountId, ConnectorId};
use hookwarden_store::Store;
use tokio::sync::Notify;

use super::http::DeliveryClient;
use super::ingest::Hub;
use super::lanes::Lane;
use super::options::EngineOptions;
use super::TokenSource;

/// The state behind an `Engine`: one per node, borrowed by every loop and delivery task.
pub(super) struct Workers<T> {
    pub(super) store: Store,
    pub(super) writes: Arc<hookwarden_store::WriteGate>,
    pub(super) hub: Arc<Hub>,
    pub(super) tokens: T,
    pub(super) http: DeliveryClient,
    pub(super) opts: EngineOptions,
    pub(super) lanes: Mutex<HashMap<ConnectorId, Arc<Lane>>>,
    /// Connectors that order per package: when one of their deliveries is done, the next of
    /// its package may be due, and the claimer is told.
    pub(super) ordered: Mutex<HashSet<ConnectorId>>,
    /// Claimed deliveries this node holds, all connectors.
    pub(super) owned: AtomicUsize,
    pub(super) capacity: Notify,
    /// A saturated connector has room again.
    pub(super) lane_drained: Notify,
    /// Lease tokens are `<node>:<batch>`.
    pub(super) node: String,
    pub(super) batches: AtomicU64,
    /// Days finished deliveries are kept (`history_retention_days`); 0 keeps them all.
    pub(super) retention_days: u32,
    /// Account names for the metrics' labels, learnt with the connectors' gauges and when an
    /// account is first seen.
    pub(super) account_names: Mutex<HashMap<AccountId, String>>,
}

impl<T: TokenSource> Workers<T> {
    /// The account's name as a metrics label. An account not seen before has the names read
    /// again (once per new account); its id stands in only if that read fails.
    pub(super) async fn account_label(&self, account: &AccountId) -> String {
        if let Some(name) = self.known_account_name(account) {
            return name;
        }
        if let Ok(accounts) = self.store.list_accounts().await {
            let mut names = self.account_names.lock().expect("account names lock");
            for a in accounts {
                names.insert(a.id, a.name);
            }
        }
        self.known_account_name(account)
            .unwrap_or_else(|| account.as_str().to_owned())
    }

    fn known_account_name(&self, account: &AccountId) -> Option<String> {
        self.account_names
            .lock()
            .expect("account names lock")
            .get(account)
            .cloned()
    }

    pub(super) fn learn_account_names(&self, gauges: &[hookwarden_store::ConnectorGauges]) {
        let mut names = self.account_names.lock().expect("account names lock");
        for g in gauges {
            if names.get(&g.account_id) != Some(&g.account_name) {
                names.insert(g.account_id.clone(), g.account_name.clone());
            }
        }
    }

    /// On PostgreSQL, note that this node is alive and learn how many are, and its place among
    /// them (`Hub::turns`: each takes its share of a connector's `max_per_second` and
    /// `max_concurrency`); a failure keeps the count it had.
    pub(super) async fn heartbeat(&self) {
        if !self.store.is_postgres() {
            return;
        }
        match self.store.heartbeat(&self.node, self.now()).await {
            Ok(live) => {
                let n = live.nodes;
                let before = self.hub.turns().set(live.nodes, live.index);
                if before != n {
                    tracing::info!(nodes = n, "delivery nodes on this database; each takes its share of the connectors' limits");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; the node count stays as it was")
            }
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.opts.clock.now_ms()
    }

    /// Whether a delivery claimed at `claimed_at` can still be sent (twice, after a 401) and
    /// answered before its lease ends.
    pub(super) fn lease_left(&self, claimed_at: i64, now: i64) -> bool {
        let needed = 2 * self.opts.request_timeout.as_millis() as i64 + 1000;
        claimed_at + self.opts.lease.as_millis() as i64 - now > needed
    }
}
