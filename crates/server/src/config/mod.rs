//! Configuration: the defaults in `default-config.toml`, then a TOML file, then `HOOKWARDEN_*`
//! env vars, then flags. Parsed once into `Settings`, the form the rest of the server uses.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use hookwarden_core::AddressPolicy;
use hookwarden_store::{MasterKey, MasterKeyRing, MasterKeySource};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

mod role;
mod settings;
mod text;

pub use role::{Role, RoleNeedsPostgres};
pub use settings::{Governance, Limits, MetricsAccess, Settings};
pub use text::{CidrList, KeyList, KeyText};

pub const DEFAULT_CONFIG: &str = include_str!("../default-config.toml");

/// `Debug` is written out below: it shows no master key and no database password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database: String,
    /// `api`, `worker` or `all`: see `Role`.
    pub role: String,
    #[serde(default, skip_serializing)]
    pub master_key: Option<KeyText>,
    #[serde(default, skip_serializing)]
    pub master_keys: Option<KeyList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub allow_insecure_http: bool,
    pub allow_private_networks: CidrList,
    pub log_format: String,
    pub max_body_bytes: usize,
    pub history_retention_days: u32,
    pub delivery_lease_s: u64,
    pub database_max_connections: u32,
    pub worker_niceness: u8,
    pub runtime_threads: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// A secret like the master keys: never printed nor serialized.
    #[serde(default, skip_serializing)]
    pub metrics_token: Option<KeyText>,
    pub api_rate_per_s: u32,
    pub api_burst: u32,
    pub auth_failures_per_minute: u32,
    pub max_connectors_per_account: u32,
    pub max_keys_per_account: u32,
    pub max_pending_authorizations: u32,
    pub api_timeout_s: u64,
    pub api_max_concurrency: usize,
    pub secret_max_age_days: u32,
    pub keepalive_days: u32,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a setting added later cannot be left out (or printed) unseen.
        let Self {
            listen,
            database,
            role,
            master_key,
            master_keys,
            public_url,
            allow_insecure_http,
            allow_private_networks,
            log_format,
            max_body_bytes,
            history_retention_days,
            delivery_lease_s,
            database_max_connections,
            worker_niceness,
            runtime_threads,
            metrics_listen,
            metrics_token,
            api_rate_per_s,
            api_burst,
            auth_failures_per_minute,
            max_connectors_per_account,
            max_keys_per_account,
            max_pending_authorizations,
            api_timeout_s,
            api_max_concurrency,
            secret_max_age_days,
            keepalive_days,
        } = self;
        let given = |set: bool| if set { "[redacted]" } else { "none" };
        f.debug_struct("Config")
            .field("listen", listen)
            .field("database", &hookwarden_store::redact_url(database))
            .field("role", role)
            .field(
                "master_key",
                &format_args!("{}", given(master_key.is_some())),
            )
            .field(
                "master_keys",
                &format_args!("{}", given(master_keys.is_some())),
            )
            .field("public_url", public_url)
            .field("allow_insecure_http", allow_insecure_http)
            .field("allow_private_networks", allow_private_networks)
            .field("log_format", log_format)
            .field("max_body_bytes", max_body_bytes)
            .field("history_retention_days", history_retention_days)
            .field("delivery_lease_s", delivery_lease_s)
            .field("database_max_connections", database_max_connections)
            .field("worker_niceness", worker_niceness)
            .field("runtime_threads", runtime_threads)
            .field("metrics_listen", metrics_listen)
            .field(
                "metrics_token",
                &format_args!("{}", given(metrics_token.is_some())),
            )
            .field("api_rate_per_s", api_rate_per_s)
            .field("api_burst", api_burst)
            .field("auth_failures_per_minute", auth_failures_per_minute)
            .field("max_connectors_per_account", max_connectors_per_account)
            .field("max_keys_per_account", max_keys_per_account)
            .field("max_pending_authorizations", max_pending_authorizations)
            .field("api_timeout_s", api_timeout_s)
            .field("api_max_concurrency", api_max_concurrency)
            .field("secret_max_age_days", secret_max_age_days)
            .field("keepalive_days", keepalive_days)
            .finish()
    }
}

/// Flags given on the command line; they win over everything else. (Serialized only into the
/// layered configuration; its `Debug` shows no database password.)
#[derive(Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            listen,
            database,
            role,
        } = self;
        f.debug_struct("Overrides")
            .field("listen", listen)
            .field("role", role)
            .field(
                "database",
                &database.as_deref().map(hookwarden_store::redact_url),
            )
            .finish()
    }
}

/// The shortest delivery lease: a claim is sent only while two request timeouts (15 s each) and a
/// second are left of its lease, so a shorter one would never send anything.
pub const MIN_LEASE_S: u64 = 35;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(String),
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    #[error("listen = {0:?} is not an address such as 127.0.0.1:8080")]
    Listen(String),
    #[error("allow_private_networks: {0}")]
    Networks(String),
    #[error("master_key / HOOKWARDEN_MASTER_KEY: {0}")]
    MasterKey(String),
    #[error("master_keys / HOOKWARDEN_MASTER_KEYS: {0}")]
    MasterKeys(String),
    #[error(
        "public_url = {0:?}: give an absolute http(s) URL such as https://hookwarden.example.com"
    )]
    PublicUrl(String),
    #[error("role = {0:?}: use \"api\" (API only), \"worker\" (deliveries only) or \"all\" (both, the default)")]
    Role(String),
    #[error("log_format = {0:?}: use \"json\" or \"pretty\"")]
    LogFormat(String),
    #[error("worker_niceness = {0}: use 0 (normal priority) to 19")]
    WorkerNiceness(u8),
    #[error("runtime_threads = {0}: use 0 (one per core) to {MAX_RUNTIME_THREADS}")]
    RuntimeThreads(u32),
    #[error("delivery_lease_s = {0}: use {MIN_LEASE_S} to 3600 (a lease must outlast two 15-second requests)")]
    DeliveryLease(u64),
    #[error("database_max_connections = {0}: use {MIN_PG_CONNECTIONS} to 1000 (a node holds one each for its ingest writer, claimer and recorder, one to LISTEN, and needs one more for maintenance and reads)")]
    DatabaseConnections(u32),
    #[error("metrics_listen = {0:?} is not an address such as 127.0.0.1:9464")]
    MetricsListen(String),
    #[error(
        "metrics_token / HOOKWARDEN_METRICS_TOKEN: give at least {MIN_METRICS_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`), or leave it unset"
    )]
    MetricsToken,
}

/// The fewest PostgreSQL connections a node may be given (`database_max_connections`).
pub const MIN_PG_CONNECTIONS: u32 = 5;

/// The most runtime threads a node may be given (`runtime_threads`).
pub const MAX_RUNTIME_THREADS: u32 = 1024;

/// A metrics token shorter than this is refused: it is a password on the API's listener.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;

impl Config {
    /// The layered configuration. Env vars that are not settings (HOOKWARDEN_SERVER,
    /// HOOKWARDEN_API_KEY, HOOKWARDEN_TEST_PG_URL, ...) belong to other tools and are ignored.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(Env::prefixed("HOOKWARDEN_").only(&[
                "listen",
                "database",
                "role",
                "master_key",
                "master_keys",
                "public_url",
                "allow_insecure_http",
                "allow_private_networks",
                "log_format",
                "max_body_bytes",
                "history_retention_days",
                "delivery_lease_s",
                "database_max_connections",
                "worker_niceness",
                "runtime_threads",
                "metrics_listen",
                "metrics_token",
                "api_rate_per_s",
                "api_burst",
                "auth_failures_per_minute",
                "max_connectors_per_account",
                "max_keys_per_account",
                "max_pending_authorizations",
                "api_timeout_s",
                "api_max_concurrency",
                "secret_max_age_days",
                "keepalive_days",
            ]))
            .merge(Serialized::defaults(overrides));
        figment
            .extract()
            .map_err(|e| ConfigError::Figment(e.to_string()))
    }

    /// The defaults alone (tests build on this).
    pub fn defaults() -> Self {
        Figment::from(Toml::string(DEFAULT_CONFIG))
            .extract()
            .expect("the embedded default configuration is valid")
    }

    /// How many steps below normal priority the runtime's threads run (see `runtime`): the
    /// configured `worker_niceness` with SQLite, whose one writer thread they make way for;
    /// 0 with PostgreSQL, where there is no such thread in this process.
    pub fn runtime_niceness(&self) -> Result<u8, ConfigError> {
        if self.worker_niceness > 19 {
            return Err(ConfigError::WorkerNiceness(self.worker_niceness));
        }
        Ok(if self.database.starts_with("sqlite:") {
            self.worker_niceness
        } else {
            0
        })
    }

    /// How many worker threads the runtime gets: `None` (one per core) for 0.
    pub fn runtime_threads(&self) -> Result<Option<usize>, ConfigError> {
        match self.runtime_threads {
            0 => Ok(None),
            n if n <= MAX_RUNTIME_THREADS => Ok(Some(n as usize)),
            n => Err(ConfigError::RuntimeThreads(n)),
        }
    }

    pub fn settings(&self) -> Result<Settings, ConfigError> {
        self.runtime_niceness()?;
        self.runtime_threads()?;
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| ConfigError::Listen(self.listen.clone()))?;
        let policy = AddressPolicy::parse_list(&self.allow_private_networks.joined())
            .map_err(|e| ConfigError::Networks(e.to_string()))?;
        let master_key = self.master_key_source()?;
        let role = Role::parse(&self.role).ok_or_else(|| ConfigError::Role(self.role.clone()))?;
        if !(MIN_LEASE_S..=3600).contains(&self.delivery_lease_s) {
            return Err(ConfigError::DeliveryLease(self.delivery_lease_s));
        }
        if !(MIN_PG_CONNECTIONS..=1000).contains(&self.database_max_connections) {
            return Err(ConfigError::DatabaseConnections(
                self.database_max_connections,
            ));
        }
        if !matches!(self.log_format.as_str(), "json" | "pretty") {
            return Err(ConfigError::LogFormat(self.log_format.clone()));
        }
        let public_url = match self.public_url.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => {
                let ok = url::Url::parse(raw)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    return Err(ConfigError::PublicUrl(raw.to_owned()));
                }
                Some(raw.trim_end_matches('/').to_owned())
            }
            _ => None,
        };
        let metrics_listen = match self.metrics_listen.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => Some(
                raw.parse()
                    .map_err(|_| ConfigError::MetricsListen(raw.to_owned()))?,
            ),
            _ => None,
        };
        let metrics_token = match self.metrics_token.as_ref().map(|t| t.0.trim()) {
            Some(raw) if raw.chars().count() >= MIN_METRICS_TOKEN_CHARS => {
                Some(SecretString::from(raw.to_owned()))
            }
            Some("") | None => None,
            Some(_) => return Err(ConfigError::MetricsToken),
        };
        Ok(Settings {
            metrics: MetricsAccess {
                listen: metrics_listen,
                token: metrics_token,
            },
            limits: Limits {
                api_rate_per_s: self.api_rate_per_s,
                api_burst: self.api_burst,
                auth_failures_per_minute: self.auth_failures_per_minute,
                max_connectors_per_account: self.max_connectors_per_account,
                max_keys_per_account: self.max_keys_per_account,
                max_pending_authorizations: self.max_pending_authorizations,
                api_timeout: Duration::from_secs(self.api_timeout_s),
                api_max_concurrency: self.api_max_concurrency,
            },
            listen,
            public_url,
            database: self.database.clone(),
            role,
            master_key,
            allow_insecure_http: self.allow_insecure_http,
            address_policy: policy,
            max_body_bytes: self.max_body_bytes,
            history_retention_days: self.history_retention_days,
            delivery_lease: Duration::from_secs(self.delivery_lease_s),
            store: hookwarden_store::StoreOptions {
                pg_max_connections: self.database_max_connections,
            },
            governance: Governance {
                secret_max_age_days: self.secret_max_age_days,
                keepalive_days: self.keepalive_days,
            },
        })
    }
}

impl Config {
    /// `master_keys` (a ring), else `master_key` (a ring of one), else the key file. Both given
    /// must agree: `master_key` is then the ring's first key, the one that seals; any other
    /// combination would leave it unclear which key seals, so it is refused.
    fn master_key_source(&self) -> Result<MasterKeySource, ConfigError> {
        let single = match self.master_key.as_ref().map(|k| k.0.trim()) {
            Some(raw) if !raw.is_empty() => Some(
                MasterKey::from_base64(raw).map_err(|e| ConfigError::MasterKey(e.to_string()))?,
            ),
            _ => None,
        };
        let list = self.master_keys.as_ref().map(KeyList::joined);
        let ring = match list.as_deref().map(str::trim) {
            Some(raw) if !raw.trim_matches(',').trim().is_empty() => Some(
                MasterKeyRing::parse_list(raw)
                    .map_err(|e| ConfigError::MasterKeys(e.to_string()))?,
            ),
            _ => None,
        };
        Ok(match (single, ring) {
            (None, None) => MasterKeySource::FileBesideDatabase,
            (Some(key), None) => MasterKeySource::Given(key),
            (None, Some(ring)) => MasterKeySource::Ring(ring),
            (Some(key), Some(ring)) if key.same_key(ring.first()) => MasterKeySource::Ring(ring),
            (Some(_), Some(_)) => return Err(ConfigError::MasterKeys(
                "master_key (HOOKWARDEN_MASTER_KEY) is given too, and it is not the first key of \
                     master_keys, the one that seals: give master_keys alone (remove master_key), \
                     the sealing key first"
                    .into(),
            )),
        })
    }
}

#[cfg(test)]
mod tests;
