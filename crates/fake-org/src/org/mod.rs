//! The org's state and rules: tokens, rotation families, codes, counters, received callbacks.
//! Everything here is synchronous and runs under one short-held lock; randomness and signatures
//! are computed by the handlers outside it.
//!
//! This parent holds the `Org`, its clock and the lookups its rules share; each child adds the
//! `impl Org` block of one job.

mod apex;
mod authorize;
mod errors;
mod grants;
mod introspect;
mod revoke;
mod stats;
mod tokens;

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::Utc;

use crate::config::{ClientApp, FakeOrgConfig};
use crate::wire::Params;

pub(crate) use apex::ApexVerdict;
pub use apex::ReceivedCallback;
pub(crate) use errors::{OAuthError, BAD_REDIRECT};
pub(crate) use grants::{grant_stats_key, Granted};
pub use stats::FakeOrgStats;

use authorize::AuthCode;
use tokens::{AccessToken, Family, RefreshToken, Subject, ACCESS_TOKEN_PURGE_FLOOR};

pub(crate) struct Org {
    pub config: FakeOrgConfig,
    refresh_tokens: HashMap<String, RefreshToken>,
    access_tokens: HashMap<String, AccessToken>,
    families: Vec<Family>,
    codes: HashMap<String, AuthCode>,
    pub stats: FakeOrgStats,
    /// Digests of the webhook-ids seen (8 bytes each, not the ids: a long-running demo
    /// receives millions).
    webhook_ids: HashSet<u64>,
    callbacks: VecDeque<ReceivedCallback>,
    next_seq: u64,
    purge_access_tokens_at: usize,
}

/// Client credentials as presented: body parameters, else HTTP Basic.
struct Presented<'a> {
    id: Option<&'a str>,
    secret: Option<&'a str>,
}

fn presented<'a>(p: &'a Params, basic: Option<&'a (String, String)>) -> Presented<'a> {
    match (p.get("client_id"), basic) {
        (Some(id), _) => Presented {
            id: Some(id),
            secret: p.get("client_secret"),
        },
        (None, Some((id, secret))) => Presented {
            id: Some(id.as_str()).filter(|s| !s.is_empty()),
            secret: Some(secret.as_str()).filter(|s| !s.is_empty()),
        },
        (None, None) => Presented {
            id: None,
            secret: p.get("client_secret"),
        },
    }
}

impl Org {
    pub(crate) fn new(config: FakeOrgConfig) -> Self {
        Self {
            config,
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            families: Vec::new(),
            codes: HashMap::new(),
            stats: FakeOrgStats::default(),
            webhook_ids: HashSet::new(),
            callbacks: VecDeque::new(),
            next_seq: 0,
            purge_access_tokens_at: ACCESS_TOKEN_PURGE_FLOOR,
        }
    }

    /// The org's clock, in milliseconds since the epoch (shifted by `clock_offset_s`).
    pub(crate) fn now_ms(&self) -> i64 {
        Utc::now()
            .timestamp_millis()
            .saturating_add(self.config.clock_offset_s.saturating_mul(1000))
    }

    fn client(&self, client_id: &str) -> Option<&ClientApp> {
        self.config.client(client_id)
    }

    fn default_user_scope(&self) -> String {
        self.config.allowed_scopes.join(" ")
    }

    /// The user a token of `subject` acts as: the one who authorized the app, or the Run As user.
    fn user_id(&self, subject: Subject) -> &str {
        match subject {
            Subject::User => &self.config.user_id,
            Subject::RunAs => &self.config.run_as_user_id,
        }
    }
}
