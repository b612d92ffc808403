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

pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

/// A CIDR list as a TOML list or as one comma-separated string (what an env var holds).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CidrList {
    #[default]
    #[serde(skip)]
    Empty,
    One(String),
    Many(Vec<String>),
}

impl CidrList {
    fn joined(&self) -> String {
        match self {
            Self::Empty => String::new(),
            Self::One(s) => s.clone(),
            Self::Many(v) => v.join(","),
        }
    }
}

/// A master key as configured. Its `Debug` prints `[redacted]`, it has no `Serialize` (a
/// `Config` cannot print or serialize it; its fields carry `skip_serializing`), and reading it
/// takes any scalar, so a malformed value's error never echoes the value.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyText(String);

impl KeyText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 key")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        d.deserialize_any(Scalar)
    }
}

/// `master_keys`: a TOML list, or one comma-separated string (what an env var holds).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum KeyList {
    Many(Vec<KeyText>),
    One(KeyText),
}

impl KeyList {
    /// The keys as `HOOKWARDEN_MASTER_KEYS` writes them; empty when none is given.
    fn joined(&self) -> String {
        match self {
            Self::One(k) => k.0.clone(),
            Self::Many(v) => v.iter().map(|k| k.0.as_str()).collect::<Vec<_>>().join(","),
        }
    }
}

/// `Debug` is written out below: it shows no master key and no database password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database: String,
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
    pub worker_niceness: u8,
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
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a setting added later cannot be left out (or printed) unseen.
        let Self {
            listen,
            database,
            master_key,
            master_keys,
            public_url,
            allow_insecure_http,
            allow_private_networks,
            log_format,
            max_body_bytes,
            history_retention_days,
            worker_niceness,
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
        } = self;
        let given = |set: bool| if set { "[redacted]" } else { "none" };
        f.debug_struct("Config")
            .field("listen", listen)
            .field("database", &hookwarden_store::redact_url(database))
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
            .field("worker_niceness", worker_niceness)
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
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { listen, database } = self;
        f.debug_struct("Overrides")
            .field("listen", listen)
            .field(
                "database",
                &database.as_deref().map(hookwarden_store::redact_url),
            )
            .finish()
    }
}

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
    #[error("log_format = {0:?}: use \"json\" or \"pretty\"")]
    LogFormat(String),
    #[error("worker_niceness = {0}: use 0 (normal priority) to 19")]
    WorkerNiceness(u8),
    #[error("metrics_listen = {0:?} is not an address such as 127.0.0.1:9464")]
    MetricsListen(String),
    #[error(
        "metrics_token / HOOKWARDEN_METRICS_TOKEN: give at least {MIN_METRICS_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`), or leave it unset"
    )]
    MetricsToken,
}

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
                "master_key",
                "master_keys",
                "public_url",
                "allow_insecure_http",
                "allow_private_networks",
                "log_format",
                "max_body_bytes",
                "history_retention_days",
                "worker_niceness",
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

    pub fn settings(&self) -> Result<Settings, ConfigError> {
        self.runtime_niceness()?;
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| ConfigError::Listen(self.listen.clone()))?;
        let policy = AddressPolicy::parse_list(&self.allow_private_networks.joined())
            .map_err(|e| ConfigError::Networks(e.to_string()))?;
        let master_key = self.master_key_source()?;
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
            master_key,
            allow_insecure_http: self.allow_insecure_http,
            address_policy: policy,
            max_body_bytes: self.max_body_bytes,
            history_retention_days: self.history_retention_days,
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

/// The configuration, checked. `Debug` (below) shows no key and no database password.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `None`: derived from the bound address (`http://{addr}`).
    pub public_url: Option<String>,
    pub database: String,
    pub master_key: MasterKeySource,
    pub allow_insecure_http: bool,
    pub address_policy: AddressPolicy,
    pub max_body_bytes: usize,
    /// 0: keep every delivery forever.
    pub history_retention_days: u32,
    /// Who may read `/metrics`, and where.
    pub metrics: MetricsAccess,
    pub limits: Limits,
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
            master_key,
            allow_insecure_http,
            address_policy,
            max_body_bytes,
            history_retention_days,
            metrics,
            limits,
        } = self;
        f.debug_struct("Settings")
            .field("listen", listen)
            .field("public_url", public_url)
            .field("database", &hookwarden_store::redact_url(database))
            // MasterKeySource's Debug redacts every key.
            .field("master_key", master_key)
            .field("allow_insecure_http", allow_insecure_http)
            .field("address_policy", address_policy)
            .field("max_body_bytes", max_body_bytes)
            .field("history_retention_days", history_retention_days)
            // SecretString's Debug redacts the token.
            .field("metrics", metrics)
            .field("limits", limits)
            .finish()
    }
}

#[cfg(test)]
// figment's Jail closures return figment's own (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "hw.toml",
                "listen = \"127.0.0.1:9000\"\ndatabase = \"sqlite://from-file.db\"\nallow_private_networks = [\"10.0.0.0/8\"]\n",
            )?;
            let file = Some(Path::new("hw.toml"));
            let c = Config::load(file, &Overrides::default()).unwrap();
            assert_eq!(c.listen, "127.0.0.1:9000");
            assert_eq!(c.database, "sqlite://from-file.db");
            assert!(!c.allow_insecure_http);

            jail.set_env("HOOKWARDEN_DATABASE", "sqlite://from-env.db");
            jail.set_env("HOOKWARDEN_ALLOW_INSECURE_HTTP", "true");
            jail.set_env("HOOKWARDEN_HISTORY_RETENTION_DAYS", "7");
            jail.set_env("HOOKWARDEN_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8,::1/128");
            // Not a setting: belongs to the CLI client, and must not break the server.
            jail.set_env("HOOKWARDEN_API_KEY", "hwk_x");
            let c = Config::load(file, &Overrides::default()).unwrap();
            assert_eq!(c.database, "sqlite://from-env.db");
            assert!(c.allow_insecure_http);
            assert_eq!(c.history_retention_days, 7);
            let s = c.settings().unwrap();
            assert_eq!(s.address_policy.allowed.len(), 2);

            let c = Config::load(
                file,
                &Overrides {
                    listen: Some("127.0.0.1:9100".into()),
                    database: None,
                },
            )
            .unwrap();
            assert_eq!(c.listen, "127.0.0.1:9100");
            assert_eq!(c.database, "sqlite://from-env.db");
            Ok(())
        });
    }

    #[test]
    fn worker_niceness_applies_to_sqlite_only_and_is_bounded() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert!(c.database.starts_with("sqlite:"));
            assert_eq!(c.runtime_niceness().unwrap(), 5);

            jail.set_env("HOOKWARDEN_WORKER_NICENESS", "0");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.runtime_niceness().unwrap(), 0);

            jail.set_env("HOOKWARDEN_WORKER_NICENESS", "7");
            jail.set_env("HOOKWARDEN_DATABASE", "postgres://db.internal/hookwarden");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(
                c.runtime_niceness().unwrap(),
                0,
                "PostgreSQL: no writer thread here"
            );

            jail.set_env("HOOKWARDEN_WORKER_NICENESS", "20");
            let c = Config::load(None, &Overrides::default()).unwrap();
            let e = c.settings().unwrap_err().to_string();
            assert!(
                e.contains("worker_niceness = 20") && e.contains("0 (normal priority) to 19"),
                "{e}"
            );

            jail.set_env("HOOKWARDEN_WORKER_NICENESS", "-1");
            let e = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.to_lowercase().contains("worker_niceness"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_settings_in_a_file_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("hw.toml", "listne = \"127.0.0.1:9000\"\n")?;
            let err = Config::load(Some(Path::new("hw.toml")), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("listne"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_embedded_defaults_are_the_documented_ones() {
        let c = Config::defaults();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.database, "sqlite://hookwarden.db");
        assert!(!c.allow_insecure_http);
        assert!(c.settings().unwrap().address_policy.allowed.is_empty());
        let s = c.settings().unwrap();
        assert_eq!(s.limits, Limits::default());
        assert_eq!(
            s.limits.api_rate_per_s, 0,
            "off: the bench posts with one key"
        );
        assert_eq!(s.limits.auth_failures_per_minute, 20);
        assert_eq!(s.limits.max_connectors_per_account, 1000);
        assert_eq!(s.limits.max_keys_per_account, 100);
        assert_eq!(s.limits.max_pending_authorizations, 100);
        assert_eq!(s.limits.api_timeout, Duration::from_secs(60));
        assert_eq!(s.limits.api_max_concurrency, 512);
        assert!(s.metrics.listen.is_none() && s.metrics.token.is_none());
    }

    #[test]
    fn limits_and_metrics_access_load_from_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "hw.toml",
                "api_rate_per_s = 50\napi_burst = 100\nmax_keys_per_account = 5\n\
                 metrics_listen = \"127.0.0.1:9464\"\napi_timeout_s = 30\n",
            )?;
            let file = Some(Path::new("hw.toml"));
            let s = Config::load(file, &Overrides::default())
                .unwrap()
                .settings()
                .unwrap();
            assert_eq!((s.limits.api_rate_per_s, s.limits.api_burst), (50, 100));
            assert_eq!(s.limits.max_keys_per_account, 5);
            assert_eq!(s.limits.api_timeout, Duration::from_secs(30));
            assert_eq!(s.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));

            for (var, value) in [
                ("HOOKWARDEN_API_RATE_PER_S", "7"),
                ("HOOKWARDEN_API_BURST", "9"),
                ("HOOKWARDEN_AUTH_FAILURES_PER_MINUTE", "3"),
                ("HOOKWARDEN_MAX_CONNECTORS_PER_ACCOUNT", "11"),
                ("HOOKWARDEN_MAX_KEYS_PER_ACCOUNT", "12"),
                ("HOOKWARDEN_MAX_PENDING_AUTHORIZATIONS", "13"),
                ("HOOKWARDEN_API_TIMEOUT_S", "14"),
                ("HOOKWARDEN_API_MAX_CONCURRENCY", "15"),
                ("HOOKWARDEN_METRICS_LISTEN", "127.0.0.1:9999"),
                ("HOOKWARDEN_METRICS_TOKEN", "0123456789abcdef-token"),
            ] {
                jail.set_env(var, value);
            }
            let s = Config::load(file, &Overrides::default())
                .unwrap()
                .settings()
                .unwrap();
            assert_eq!(
                s.limits,
                Limits {
                    api_rate_per_s: 7,
                    api_burst: 9,
                    auth_failures_per_minute: 3,
                    max_connectors_per_account: 11,
                    max_keys_per_account: 12,
                    max_pending_authorizations: 13,
                    api_timeout: Duration::from_secs(14),
                    api_max_concurrency: 15,
                }
            );
            assert_eq!(s.metrics.listen, Some("127.0.0.1:9999".parse().unwrap()));
            use secrecy::ExposeSecret;
            assert_eq!(
                s.metrics
                    .token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                Some("0123456789abcdef-token".to_owned())
            );

            jail.set_env("HOOKWARDEN_METRICS_TOKEN", "short");
            let e = Config::load(file, &Overrides::default())
                .unwrap()
                .settings()
                .unwrap_err()
                .to_string();
            assert!(e.contains("metrics_token") && e.contains("16"), "{e}");
            jail.set_env("HOOKWARDEN_METRICS_TOKEN", "");
            jail.set_env("HOOKWARDEN_METRICS_LISTEN", "nowhere");
            let e = Config::load(file, &Overrides::default())
                .unwrap()
                .settings()
                .unwrap_err()
                .to_string();
            assert!(e.contains("metrics_listen = \"nowhere\""), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_ring_of_master_keys_from_env_or_file_and_master_key_must_agree_with_it() {
        let (new, old) = (MasterKey::generate(), MasterKey::generate());
        let (new64, old64) = (new.to_base64(), old.to_base64());
        figment::Jail::expect_with(|jail| {
            let ids = |c: &Config| match c.settings().unwrap().master_key {
                MasterKeySource::Ring(r) => r.keys().iter().map(MasterKey::id).collect::<Vec<_>>(),
                MasterKeySource::Given(k) => vec![k.id()],
                MasterKeySource::FileBesideDatabase => vec![],
            };
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(ids(&c), Vec::<u8>::new(), "the key file by default");

            // A list in a file.
            jail.create_file(
                "hw.toml",
                &format!("master_keys = [\"{old64}\", \"{new64}\"]\n"),
            )?;
            let c = Config::load(Some(Path::new("hw.toml")), &Overrides::default()).unwrap();
            assert_eq!(ids(&c), vec![old.id(), new.id()]);

            jail.set_env("HOOKWARDEN_MASTER_KEYS", format!("{new64},{old64}"));
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(ids(&c), vec![new.id(), old.id()]);

            // master_key too: fine when it is the sealing key, refused otherwise.
            jail.set_env("HOOKWARDEN_MASTER_KEY", &new64);
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(ids(&c), vec![new.id(), old.id()]);
            jail.set_env("HOOKWARDEN_MASTER_KEY", &old64);
            let e = Config::load(None, &Overrides::default())
                .unwrap()
                .settings()
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("not the first key of master_keys") && e.contains("remove master_key"),
                "{e}"
            );

            jail.set_env("HOOKWARDEN_MASTER_KEYS", format!("{new64},AAAA"));
            let e = Config::load(None, &Overrides::default())
                .unwrap()
                .settings()
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("master_keys") && e.contains("key 2 of the list"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn no_master_key_nor_metrics_token_is_printed_or_serialized() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        figment::Jail::expect_with(|jail| {
            jail.set_env("HOOKWARDEN_MASTER_KEY", a.to_base64());
            jail.set_env(
                "HOOKWARDEN_MASTER_KEYS",
                format!("{},{}", a.to_base64(), b.to_base64()),
            );
            jail.set_env(
                "HOOKWARDEN_DATABASE",
                "postgres://app:Pa55word@db.internal/hw",
            );
            jail.set_env("HOOKWARDEN_METRICS_TOKEN", "metrics-token-0123456789abcdef");
            let c = Config::load(None, &Overrides::default()).unwrap();
            let settings = c.settings().unwrap();
            let flags = Overrides {
                listen: None,
                database: Some("postgres://app:Pa55word@db.internal/hw".into()),
            };
            let debug = format!("{c:?} {settings:?} {flags:?}");
            assert!(
                !debug.contains("Pa55word") && debug.contains("postgres://app:***@db.internal/hw"),
                "{debug}"
            );
            let shown = format!(
                "{c:?} {c:#?} {settings:?} {}",
                serde_json::to_string(&c).unwrap()
            );
            for key in [&a, &b] {
                let b64 = key.to_base64();
                assert!(
                    !shown.contains(&b64) && !shown.contains(&b64[..20]),
                    "{shown}"
                );
            }
            assert!(shown.contains("[redacted]"), "{shown}");
            assert!(!shown.contains("metrics-token-0123"), "{shown}");
            assert!(settings.metrics.token.is_some());

            // A value that is no key: the error names the setting, never the value.
            jail.set_env("HOOKWARDEN_MASTER_KEYS", "");
            jail.set_env("HOOKWARDEN_MASTER_KEY", "123456789012345");
            let e = match Config::load(None, &Overrides::default()) {
                Ok(c) => c.settings().unwrap_err().to_string(),
                Err(e) => e.to_string(),
            };
            assert!(
                !e.contains("123456789012345") && e.contains("master_key"),
                "{e}"
            );
            Ok(())
        });
    }
}
