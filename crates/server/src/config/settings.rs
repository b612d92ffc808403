//! `Settings`: the configuration, checked, as the rest of the server uses it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hookwarden_core::AddressPolicy;
use hookwarden_store::MasterKeySource;
use secrecy::SecretString;

/// The configuration, checked. `Debug` (below) shows no key and no database password.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `None`: derived from the bound address (`http://{addr}`).
    pub public_url: Option<String>,
    pub database: String,
    /// What this node runs: the API, the delivery workers, or both.
    pub role: super::Role,
    pub master_key: MasterKeySource,
    pub allow_insecure_http: bool,
    pub address_policy: AddressPolicy,
    pub max_body_bytes: usize,
    /// 0: keep every delivery forever.
    pub history_retention_days: u32,
    /// How long a claimed delivery is its node's: a node that dies leaves its claims to the
    /// others after this long (`delivery_lease_s`, 120 s).
    pub delivery_lease: std::time::Duration,
    /// How the database is opened: on PostgreSQL, this node's pool size
    /// (`database_max_connections`, 16).
    pub store: hookwarden_store::StoreOptions,
    /// Who may read `/metrics`, and where.
    pub metrics: MetricsAccess,
    pub limits: Limits,
    /// The governance review's thresholds and the refresh-token keep-alive.
    pub governance: Governance,
}

/// What the governance review holds a connector to, and how often an idle refresh token is
/// used so that an org's "expire if not used" policy does not kill it (`default-config.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Governance {
    /// Credentials and signing secrets older than this many days are a warning.
    pub secret_max_age_days: u32,
    /// A refresh-token connector with no grant for this many days makes one; 0: never.
    pub keepalive_days: u32,
}

impl Default for Governance {
    /// The defaults of `default-config.toml` (a unit test keeps them equal).
    fn default() -> Self {
        Self {
            secret_max_age_days: 90,
            keepalive_days: 7,
        }
    }
}

/// `/metrics` carries per-connector labels: for the operator only.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// `metrics_listen`: a second listener that serves `/metrics` with no key.
    pub listen: Option<SocketAddr>,
    /// `metrics_token`: on the API's listener `/metrics` needs `Authorization: Bearer <token>`;
    /// none: it answers 401 there.
    pub token: Option<SecretString>,
}

/// What one client or account may ask of the API (each in `default-config.toml` with its
/// reason). A 0 turns that limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second per API key (a token bucket); 0: no limit.
    pub api_rate_per_s: u32,
    /// The bucket's size; 0: `api_rate_per_s`.
    pub api_burst: u32,
    /// Failed authentications per client address and minute before it is refused (429).
    pub auth_failures_per_minute: u32,
    pub max_connectors_per_account: u32,
    pub max_keys_per_account: u32,
    pub max_pending_authorizations: u32,
    /// Longest an API request may take (503 timeout); zero: none.
    pub api_timeout: Duration,
    /// Requests served at once; more are answered 503 overloaded at once. 0: no limit.
    pub api_max_concurrency: usize,
}

impl Default for Limits {
    /// The defaults of `default-config.toml` (a unit test keeps them equal).
    fn default() -> Self {
        Self {
            api_rate_per_s: 0,
            api_burst: 0,
            auth_failures_per_minute: 20,
            max_connectors_per_account: 1000,
            max_keys_per_account: 100,
            max_pending_authorizations: 100,
            api_timeout: Duration::from_secs(60),
            api_max_concurrency: 512,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            listen,
            public_url,
            database,
            role,
            master_key,
            allow_insecure_http,
            address_policy,
            max_body_bytes,
            history_retention_days,
            delivery_lease,
            store,
            metrics,
            limits,
            governance,
        } = self;
        f.debug_struct("Settings")
            .field("listen", listen)
            .field("public_url", public_url)
            .field("database", &hookwarden_store::redact_url(database))
            .field("role", role)
            // MasterKeySource's Debug redacts every key.
            .field("master_key", master_key)
            .field("allow_insecure_http", allow_insecure_http)
            .field("address_policy", address_policy)
            .field("max_body_bytes", max_body_bytes)
            .field("history_retention_days", history_retention_days)
            .field("delivery_lease", delivery_lease)
            .field("store", store)
            // SecretString's Debug redacts the token.
            .field("metrics", metrics)
            .field("limits", limits)
            .field("governance", governance)
            .finish()
    }
}
