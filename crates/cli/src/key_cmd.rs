//! `hookwarden key encode|decode|check`: the key format without the pitfalls (seed 001's
//! line-wrapped `base64`), and the same findings the API would give, before anything is sent.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use hookwarden_core::ConnectorKind;
use hookwarden_server::{Config, Overrides};
use serde_json::{Map, Value};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Build a key and print it as one line of base64, ready for the API's "key" field.
    /// A rejected key prints nothing on standard output, its error on standard error, and
    /// exits 1, so `KEY=$(hookwarden key encode ...)` never captures an error as a key.
    #[command(group(ArgGroup::new("flow").required(true).args(["client_secret", "client_secret_file", "refresh_token", "refresh_token_file"])))]
    Encode {
        /// Salesforce host without scheme: login.salesforce.com, test.salesforce.com or NAME.my.salesforce.com.
        #[arg(long)]
        host: Option<String>,
        /// Consumer key of the connected app / client id.
        #[arg(long)]
        client_id: String,
        /// Consumer secret: the client-credentials flow (or client authentication with a refresh
        /// token). On the command line it lands in the shell's history: prefer --client-secret-file.
        #[arg(long, conflicts_with = "client_secret_file")]
        client_secret: Option<String>,
        /// Read the consumer secret from FILE (`-`: standard input), one line.
        #[arg(long, value_name = "FILE")]
        client_secret_file: Option<PathBuf>,
        /// Refresh token: the refresh-token flow. Prefer --refresh-token-file.
        #[arg(long, conflicts_with = "refresh_token_file")]
        refresh_token: Option<String>,
        /// Read the refresh token from FILE (`-`: standard input), one line.
        #[arg(long, value_name = "FILE")]
        refresh_token_file: Option<PathBuf>,
        /// Any other key field, e.g. --field token_url=https://... --field session_timeout_s=3600.
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// The connector the key is for (its name selects the preset's rules).
        #[arg(long, default_value = "salesforceOauth2")]
        connector: String,
        #[command(flatten)]
        preset: PresetArg,
        /// The configuration whose network rules the key's endpoints must pass (as `serve`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
        /// The configuration whose network rules the key's endpoints must pass (as `serve`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
            client_secret_file,
            refresh_token,
            refresh_token_file,
            fields,
            connector,
            preset,
            config,
        } => {
            let Some(client_secret) =
                secret_arg(client_secret, client_secret_file, "--client-secret-file")
            else {
                return ExitCode::from(2);
            };
            let Some(refresh_token) =
                secret_arg(refresh_token, refresh_token_file, "--refresh-token-file")
            else {
                return ExitCode::from(2);
            };
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
            // Never print a key the API would refuse: the verdict goes to standard error.
            match check(
                &encoded,
                &connector,
                preset.kind(&connector),
                config.as_deref(),
            ) {
                Ok(warnings) => {
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("{encoded}");
                    ExitCode::SUCCESS
                }
                Err(Refused::Rejected { code, message, fix }) => {
                    eprintln!("rejected [{code}]: {message}");
                    eprintln!("fix: {fix}");
                    ExitCode::from(1)
                }
                Err(Refused::Usage) => ExitCode::from(2),
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
            config,
        } => {
            let Some(key) = read_arg(&key) else {
                return ExitCode::from(2);
            };
            // `check` answers a question: its verdict is its output, on standard output.
            match check(&key, &connector, preset.kind(&connector), config.as_deref()) {
                Ok(warnings) => {
                    for w in &warnings {
                        println!("warning: {w}");
                    }
                    ExitCode::SUCCESS
                }
                Err(Refused::Rejected { code, message, fix }) => {
                    println!("rejected [{code}]: {message}");
                    println!("fix: {fix}");
                    ExitCode::from(1)
                }
                Err(Refused::Usage) => ExitCode::from(2),
            }
        }
    }
}

/// Why `check` refused: the key (what the API would answer), or the command's own arguments
/// (already said on standard error).
enum Refused {
    Rejected {
        code: String,
        message: String,
        fix: String,
    },
    Usage,
}

/// The API's own checks (key rules, and endpoint network rules under the configuration `serve`
/// would run with). Says on standard error which flow and token endpoint an accepted key
/// gets; returns its warnings, or why it was refused.
fn check(
    key: &str,
    connector: &str,
    kind: ConnectorKind,
    config: Option<&std::path::Path>,
) -> Result<Vec<String>, Refused> {
    let name = match hookwarden_core::ConnectorName::parse(connector) {
        Ok(name) => name,
        Err(e) => {
            eprintln!("error: --connector: {e}");
            return Err(Refused::Usage);
        }
    };
    let settings = match Config::load(config, &Overrides::default()).and_then(|c| c.settings()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(Refused::Usage);
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
        Err(err) => Err(Refused::Rejected {
            code: err.code.to_string(),
            message: err.message,
            fix: err.fix,
        }),
    }
}

/// A secret given on the command line, or read from a file (`-`: standard input), its
/// trailing line break dropped. `None` (said on standard error) when the file cannot be read.
fn secret_arg(given: Option<String>, file: Option<PathBuf>, flag: &str) -> Option<Option<String>> {
    let Some(file) = file else {
        return Some(given);
    };
    let read = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(&file)
    };
    match read {
        Ok(text) => Some(Some(text.trim_end_matches(['\r', '\n']).to_owned())),
        Err(e) => {
            eprintln!("error: {flag} {}: {e}", file.display());
            None
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
