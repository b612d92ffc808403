//! The org's counters: what `GET /_fake/stats` shows and how each outcome is counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Org;

/// Counters, readable over HTTP (`GET /_fake/stats`) and in Rust.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeOrgStats {
    /// grant type → outcome (`ok` or the OAuth `error`, or `http_503` for injected faults) → count.
    /// Unknown or missing grant types count under `unsupported`.
    pub grants: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rotated-out refresh tokens presented again (each revoked its whole family).
    pub reuse_detections: u64,
    /// outcome (`ok`, `invalid_token`) → count.
    pub revocations: BTreeMap<String, u64>,
    /// outcome (`active`, `inactive`, `invalid_client`, ...) → count.
    pub introspections: BTreeMap<String, u64>,
    /// outcome (`ok` or the error) → count.
    pub authorizations: BTreeMap<String, u64>,
    /// Callbacks accepted by the Apex endpoint (200).
    pub callbacks_received: u64,
    /// Distinct `webhook-id`s among them, to see duplicates of at-least-once delivery.
    pub unique_webhook_ids: u64,
    /// Apex calls refused: `errorCode` (`INVALID_SESSION_ID`, `NOT_FOUND`, ...) or `http_503` → count.
    pub apex_rejections: BTreeMap<String, u64>,
}

impl FakeOrgStats {
    pub fn grant_count(&self, grant_type: &str, outcome: &str) -> u64 {
        self.grants
            .get(grant_type)
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Successful grants of one type.
    pub fn grants_ok(&self, grant_type: &str) -> u64 {
        self.grant_count(grant_type, "ok")
    }

    /// All grants of one type, whatever their outcome.
    pub fn grants_total(&self, grant_type: &str) -> u64 {
        self.grants
            .get(grant_type)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    pub fn revocations_ok(&self) -> u64 {
        self.revocations.get("ok").copied().unwrap_or(0)
    }

    pub fn introspections_total(&self) -> u64 {
        self.introspections.values().sum()
    }

    pub fn apex_rejection_count(&self, code: &str) -> u64 {
        self.apex_rejections.get(code).copied().unwrap_or(0)
    }
}

pub(super) fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

impl Org {
    pub(crate) fn count_grant(&mut self, key: &str, outcome: &str) {
        let per_type = match self.stats.grants.get_mut(key) {
            Some(m) => m,
            None => self.stats.grants.entry(key.to_owned()).or_default(),
        };
        bump(per_type, outcome);
    }

    pub(crate) fn count_apex_rejection(&mut self, code: &str) {
        bump(&mut self.stats.apex_rejections, code);
    }

    /// Zero the counters and forget received callbacks; tokens and config stay.
    pub(crate) fn reset_stats(&mut self) {
        self.stats = FakeOrgStats::default();
        self.webhook_ids.clear();
        self.callbacks.clear();
    }
}
