//! `hookwarden key encode|decode|check`: the key format without the pitfalls (seed 001's
//! line-wrapped `base64`), and the same findings the API would give, before anything is sent.

use std::io::Read;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use hookwarden_core::ConnectorKind;
use hookwarden_server::{Config, Overrides};
use serde_json::{Map, Value};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Build a key and print it as one line of base64, ready for the API's "key" field.
    #[command(group(ArgGroup::new("flow").required(true).args(["client_secret", "refresh_token"])))]
    Encode {
        /// Salesforce host without scheme: login.salesforce.com, test.salesforce.com or NAME.my.salesforce.com.
        #[arg(long)]
        host: Option<String>,
        /// Consumer key of the connected app / client id.
        #[arg(long)]
        client_id: String,
        /// Consumer secret: the client-credentials flow (or client authentication with a refresh token).
        #[arg(long)]
        client_secret: Option<String>,
        /// Refresh token: the refresh-token flow.
        #[arg(long)]
        refresh_token: Option<String>,
        /// Any other key field, e.g. --field token_url=https://... --field session_timeout_s=3600.
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// The connector the key is for (its name selects the preset's rules).
        #[arg(long, default_value = "salesforceOauth2")]
        connector: String,
        #[command(flatten)]
        preset: PresetArg,
    },
    /// Print a key's JSON with every secret masked. KEY may be `-` to read standard input.
    Decode {
        key: String,
        #[arg(long, default_value = "salesforceOauth2")]
        connector: String,
        #[command(flatten)]
        preset: PresetArg,
    },
    /// Check a key as the API would; exits 1 when the API would reject it. KEY may be `-`.
    Check {
        key: String,
        #[arg(long, default_value = "salesforceOauth2")]
        connector: String,
        #[command(flatten)]
        preset: PresetArg,
    },
}

/// The preset whose rules the key follows, as the API's `preset`: given, or the connector
/// name's.
#[derive(Args)]
pub struct PresetArg {
    /// salesforce, dynamics or generic (default: the one --connector's name selects).
    #[arg(long, value_parser = ["salesforce", "dynamics", "generic"])]
    preset: Option<String>,
}

impl PresetArg {
    fn kind(&self, connector: &str) -> ConnectorKind {
        self.preset
            .as_deref()
            .and_then(ConnectorKind::parse)
            .unwrap_or_else(|| ConnectorKind::of(connector))
    }
}

pub fn run(command: KeyCommand) -> ExitCode {
    match command {
        KeyCommand::Encode {
            host,
            client_id,
            client_secret,
            refresh_token,
            fields,
            connector,
            preset,
        } => {
            let mut json = Map::new();
            if let Some(host) = host {
                json.insert("host".into(), Value::String(host));
            }
            json.insert("client_id".into(), Value::String(client_id));
            if let Some(secret) = client_secret {
                json.insert("client_secret".into(), Value::String(secret));
            }
            if let Some(token) = refresh_token {
                json.insert("refresh_token".into(), Value::String(token));
            }
            for field in fields {
                let Some((name, value)) = field.split_once('=') else {
                    eprintln!("error: --field {field:?} is not NAME=VALUE");
                    return ExitCode::from(2);
                };
                let value = match (name, value.parse::<u64>()) {
                    ("session_timeout_s", Ok(n)) => Value::from(n),
                    _ => Value::String(value.to_owned()),
                };
                json.insert(name.to_owned(), value);
            }
            let encoded = hookwarden_core::key::encode(&Value::Object(json));
            // Never print a key the API would refuse.
            match check(&encoded, &connector, preset.kind(&connector)) {
                Ok(warnings) => {
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("{encoded}");
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        KeyCommand::Decode {
            key,
            connector,
            preset,
        } => {
            let Some(key) = read_arg(&key) else {
                return ExitCode::from(2);
            };
            let kind = preset.kind(&connector);
            match hookwarden_core::Key::parse(&key, kind) {
                Ok(parsed) => {
                    for w in &parsed.warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("{}", pretty(&parsed.key.masked()));
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    // Show what can be read, masked, so the user can see what is off.
                    if let Some(json) = hookwarden_core::key::decode_masked(&key) {
                        println!("{}", pretty(&json));
                    }
                    eprintln!("error [{}]: {err}\nfix: {}", err.code(), err.fix());
                    ExitCode::from(1)
                }
            }
        }
        KeyCommand::Check {
            key,
            connector,
            preset,
        } => {
            let Some(key) = read_arg(&key) else {
                return ExitCode::from(2);
            };
            match check(&key, &connector, preset.kind(&connector)) {
                Ok(warnings) => {
                    for w in &warnings {
                        println!("warning: {w}");
                    }
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
    }
}

/// The API's own checks (key rules and endpoint network rules under the current config).
/// Prints the verdict; returns the warnings, or the exit code for a rejection.
fn check(key: &str, connector: &str, kind: ConnectorKind) -> Result<Vec<String>, ExitCode> {
    let name = match hookwarden_core::ConnectorName::parse(connector) {
        Ok(name) => name,
        Err(e) => {
            eprintln!("error: --connector: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let settings = match Config::load(None, &Overrides::default()).and_then(|c| c.settings()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(2));
        }
    };
    match hookwarden_server::api::validate::key(key, kind, &settings) {
        Ok(parsed) => {
            let endpoints = parsed.key.endpoints(kind);
            eprintln!(
                "ok: {} flow for {name}, token endpoint {}",
                parsed.key.flow().as_str(),
                endpoints.token_url
            );
            Ok(parsed.warnings)
        }
        Err(err) => {
            println!("rejected [{}]: {}", err.code, err.message);
            println!("fix: {}", err.fix);
            Err(ExitCode::from(1))
        }
    }
}

fn read_arg(arg: &str) -> Option<String> {
    if arg != "-" {
        return Some(arg.to_owned());
    }
    let mut text = String::new();
    match std::io::stdin().read_to_string(&mut text) {
        Ok(_) => Some(text),
        Err(e) => {
            eprintln!("error: cannot read the key from standard input: {e}");
            None
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
