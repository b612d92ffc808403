//! The Apex REST receiver: which calls it accepts, and the log of the callbacks it received.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Org;

/// One callback the Apex endpoint accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedCallback {
    /// 1, 2, 3... in order of arrival; `GET /_fake/callbacks?since=N` returns those after N.
    pub seq: u64,
    pub received_at: DateTime<Utc>,
    /// The URL after `/services/apexrest`, e.g. `/OSS/callback`.
    pub path: String,
    /// The bearer token the call carried.
    pub access_token: String,
    /// Request headers (lower-case names, `Authorization` left out: see `access_token`).
    pub headers: BTreeMap<String, String>,
    pub webhook_id: Option<String>,
    /// The body parsed as JSON.
    pub body: serde_json::Value,
    /// The body exactly as sent: Standard Webhooks signatures are over these bytes.
    pub raw_body: String,
}

/// What the Apex endpoint decided about a call.
pub(crate) enum ApexVerdict {
    Accepted,
    InvalidSession,
    /// The org or the token's user has no API access.
    ApiDisabled,
    NotFound,
    /// The class is there, but the token's user may not run it.
    Forbidden,
}

impl Org {
    /// Decide on a call to `/services/apexrest{path}` (path with leading slash), in
    /// Salesforce's order: the session, the API access, the class, the user's access to it.
    pub(crate) fn apex_verdict(&mut self, token: Option<&str>, path: &str) -> ApexVerdict {
        if self.config.apex_invalid_session_next > 0 {
            self.config.apex_invalid_session_next -= 1;
            return ApexVerdict::InvalidSession;
        }
        let now = self.now_ms();
        if !token.is_some_and(|t| self.access_live(t, now)) {
            return ApexVerdict::InvalidSession;
        }
        if self.config.api_disabled {
            ApexVerdict::ApiDisabled
        } else if !self.class_deployed(path) {
            ApexVerdict::NotFound
        } else if self.config.apex_class_access_denied {
            ApexVerdict::Forbidden
        } else {
            ApexVerdict::Accepted
        }
    }

    fn class_deployed(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let path = match &self.config.namespace {
            // A namespaced class is only reachable under its prefix.
            Some(ns) => match path
                .strip_prefix(ns.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(rest) => rest,
                None => return false,
            },
            None => path,
        };
        self.config.deployed_classes.iter().any(|mapping| {
            let mapping = mapping.trim_start_matches('/');
            match mapping.strip_suffix("/*") {
                Some(prefix) => {
                    path == prefix
                        || path
                            .strip_prefix(prefix)
                            .is_some_and(|r| r.starts_with('/'))
                }
                None => path == mapping.trim_end_matches('/'),
            }
        })
    }

    pub(crate) fn record_callback(&mut self, mut cb: ReceivedCallback) {
        self.stats.callbacks_received += 1;
        if let Some(id) = &cb.webhook_id {
            if self.webhook_ids.insert(webhook_id_digest(id)) {
                self.stats.unique_webhook_ids += 1;
            }
        }
        self.next_seq += 1;
        cb.seq = self.next_seq;
        let capacity = self.config.callback_log_capacity;
        if capacity == 0 {
            return;
        }
        while self.callbacks.len() >= capacity {
            self.callbacks.pop_front();
        }
        self.callbacks.push_back(cb);
    }

    pub(crate) fn callbacks_since(&self, since: u64, limit: usize) -> Vec<ReceivedCallback> {
        // seq increases along the log, so a binary search finds the start.
        let start = self.callbacks.partition_point(|c| c.seq <= since);
        self.callbacks.range(start..).take(limit).cloned().collect()
    }
}

/// A webhook-id as the unique-id count keeps it: a 64-bit digest, with which two of a few
/// million ids collide with a probability below one in a million.
fn webhook_id_digest(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same id gives the same digest for the life of the org.
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FakeOrgConfig;

    #[test]
    fn apex_paths_match_like_url_mappings() {
        let mut org = Org::new(FakeOrgConfig::default());
        assert!(org.class_deployed("/OSS/callback"));
        assert!(org.class_deployed("/OSS/callback/"));
        assert!(!org.class_deployed("/oss/callback"));
        assert!(!org.class_deployed("/OSS/callback/extra"));
        org.config.namespace = Some("ONSS".into());
        assert!(org.class_deployed("/ONSS/OSS/callback"));
        assert!(!org.class_deployed("/OSS/callback"));
        assert!(!org.class_deployed("/ONSSOSS/callback"));
    }
}
