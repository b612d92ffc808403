//! Configuration: the defaults in `default-config.toml`, then a TOML file, then `HOOKWARDEN_*`
//! env vars, then flags. Parsed once into `Settings`, the form the rest of the server uses.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use hookwarden_core::AddressPolicy;
use hookwarden_store::{MasterKey, MasterKeySource};
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
    pub api_rate_per_s: u32,
    pub api_burst: u32,
    pub auth_failures_per_minute: u32,
    pub max_connectors_per_account: u32,
    pub max_keys_per_account: u32,
    pub max_pending_authorizations: u32,
    pub api_timeout_s: u64,
    pub api_max_concurrency: usize,
}

/// Flags given on the command line; they win over everything else.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
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
        let master_key = match self.master_key.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => MasterKeySource::Given(
                MasterKey::from_base64(raw).map_err(|e| ConfigError::MasterKey(e.to_string()))?,
            ),
            _ => MasterKeySource::FileBesideDatabase,
        };
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
        let metrics_token = match self.metrics_token.as_deref().map(str::trim) {
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

/// The configuration, checked.
#[derive(Debug, Clone)]
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
}
