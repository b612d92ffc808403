//! Configuration: the defaults in `default-config.toml`, then a TOML file, then `HOOKWARDEN_*`
//! env vars, then flags. Parsed once into `Settings`, the form the rest of the server uses.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use hookwarden_core::AddressPolicy;
use hookwarden_store::{MasterKey, MasterKeySource};
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
}

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
        Ok(Settings {
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
    }
}
