//! `hookwarden connectors ...`: a client of a running server's API.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::table;

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The hookwarden server's base URL.
    #[arg(
        long,
        env = "HOOKWARDEN_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// An API key from `hookwarden accounts create`.
    #[arg(long, env = "HOOKWARDEN_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Subcommand)]
pub enum ConnectorsCommand {
    /// List the account's connectors: name, status, preset, flow, url, and why one is not active.
    List {
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one connector (secrets masked), as JSON; why it is not active on stderr.
    #[command(alias = "get")]
    Show {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Check a connector end to end: key, one token grant, an endpoint probe. Exits 1 when a check fails.
    Test {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Wipe the connector's tokens here and make it `revoked` (its deliveries held), then
    /// revoke the tokens at the provider; says whether the provider confirmed (idempotent).
    Revoke {
        name: String,
        /// Print the server's JSON instead of the summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Once the cause of a refused grant is fixed at the provider (a Run As user set, a user
    /// reactivated, an IP range relaxed): one grant with the stored credentials of a
    /// `needs_reauth` connector, which then becomes active and sends its held deliveries.
    Resume {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the authorization URL that re-authenticates the connector (open it in a browser).
    ReauthUrl {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Queue the connector's failed deliveries (or, with --status delivered, delivered ones) again.
    Replay {
        name: String,
        /// Deliveries created at or after it: RFC 3339 (2026-12-01T00:00:00Z), a date
        /// (2026-12-01) or how long ago (1h, 2d).
        #[arg(long, value_parser = crate::time_arg::parse)]
        since: String,
        /// And before it [default: now]: RFC 3339, a date or how long ago.
        #[arg(long, value_parser = crate::time_arg::parse)]
        until: Option<String>,
        /// `failed` (default) or `delivered`.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every grant, refresh, revocation and hook call of the connector, newest first.
    History {
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Register a connector (or replace the one of that name) and print it, with its signing
    /// secret in full this once.
    Create {
        name: String,
        #[command(flatten)]
        settings: ConnectorSettings,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Change only the settings given; a new key rotates the credentials.
    Update {
        name: String,
        #[command(flatten)]
        settings: ConnectorSettings,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a connector: its tokens are revoked at the provider first (best effort), then it
    /// is deleted and its pending deliveries fail with connector_deleted.
    Delete {
        name: String,
        /// Print the server's JSON instead of the summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// A new signing secret (whsec_...), printed once; the old one keeps signing beside it for
    /// 24 hours.
    RotateSecret {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A connector's settings as `create` and `update` take them (the API's field names).
#[derive(Args, Clone)]
pub struct ConnectorSettings {
    /// The destination, e.g. https://acme.my.salesforce.com/services/apexrest/OSS/callback.
    #[arg(long)]
    url: Option<String>,
    /// The key (base64 of its JSON, as `hookwarden key encode` prints it).
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// Read the key from FILE (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
    /// Event names, comma-separated: PACKAGE_COMPLETE,PACKAGE_CREATE.
    #[arg(long, value_delimiter = ',')]
    events: Option<Vec<String>>,
    /// salesforce, dynamics or generic [default: the connector's, or the one its name selects].
    #[arg(long, value_parser = ["salesforce", "dynamics", "generic"])]
    preset: Option<String>,
    /// Origins whose events it takes, comma-separated [default: OSS for salesforce, else *].
    #[arg(long, value_delimiter = ',')]
    origins: Option<Vec<String>>,
    /// Who answers for it.
    #[arg(long)]
    owner: Option<String>,
    /// The org's "expire refresh token if not used for" policy in days (0: none); the review checks it.
    #[arg(long, value_name = "DAYS")]
    refresh_token_idle_days: Option<u32>,
    /// `none` or `per_package`.
    #[arg(long, value_parser = ["none", "per_package"])]
    ordering: Option<String>,
    #[arg(long)]
    max_per_second: Option<f64>,
    #[arg(long)]
    max_concurrency: Option<u32>,
}

impl ConnectorSettings {
    /// The JSON body: only the settings given.
    fn body(&self) -> anyhow::Result<Value> {
        let key = match (&self.key, &self.key_file) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(file)) => Some(read_text(file).context("--key-file")?.trim().to_owned()),
            (None, None) => None,
        };
        let mut body = serde_json::Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                body.insert(name.to_owned(), value);
            }
        };
        put("url", self.url.clone().map(Value::from));
        put("key", key.map(Value::from));
        put("events", self.events.clone().map(Value::from));
        put("preset", self.preset.clone().map(Value::from));
        put("origins", self.origins.clone().map(Value::from));
        put("owner", self.owner.clone().map(Value::from));
        put(
            "refresh_token_idle_days",
            self.refresh_token_idle_days.map(Value::from),
        );
        put("ordering", self.ordering.clone().map(Value::from));
        put("max_per_second", self.max_per_second.map(Value::from));
        put("max_concurrency", self.max_concurrency.map(Value::from));
        Ok(Value::Object(body))
    }
}

/// A file's text, or standard input's for `-`.
pub(crate) fn read_text(file: &std::path::Path) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

impl Api {
    pub(crate) fn new(args: &ServerArgs) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: args.server.trim_end_matches('/').to_owned(),
            api_key: args.api_key.clone(),
        }
    }

    /// Send, and turn an error answer into the server's own message and fix.
    pub(crate) async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        self.send(method, path, None, None).await
    }

    /// Send with an optional JSON body and `Idempotency-Key`; errors as in [`Api::call`].
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .header("Authorization", format!("Basic {}", self.api_key));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}: is `hookwarden serve` running there?"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(body);
        }
        match (body["error"].as_str(), body["message"].as_str()) {
            (Some(code), Some(message)) => anyhow::bail!(
                "{status} [{code}]: {message}\nfix: {}",
                body["fix"].as_str().unwrap_or("")
            ),
            _ => anyhow::bail!("{status}: {body}"),
        }
    }
}

/// `name` as one URL path segment (or query value): everything but unreserved bytes escaped.
pub(crate) fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The provider's side of a revocation: confirmed, or what to do because it was not.
fn print_provider_answer(answer: &Value) {
    let detail = answer["detail"].as_str().unwrap_or("");
    if answer["provider_confirmed"].as_bool() == Some(true) {
        println!("provider: confirmed ({detail})");
    } else {
        println!("provider: NOT confirmed: {detail}");
    }
}

pub(crate) fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A `{"code","cause","fix"}` diagnosis as the API shows it, when there is one.
pub(crate) struct Shown<'a> {
    pub(crate) code: &'a str,
    pub(crate) cause: &'a str,
    pub(crate) fix: &'a str,
}

pub(crate) fn diagnosis_of(value: &Value) -> Option<Shown<'_>> {
    let d = &value["diagnosis"];
    Some(Shown {
        code: d["code"].as_str()?,
        cause: d["cause"].as_str().unwrap_or(""),
        fix: d["fix"].as_str().unwrap_or(""),
    })
}

/// Beside JSON on stdout, what a person should read first: `what [code]: cause` and the fix,
/// on stderr so that scripts still parse stdout.
pub(crate) fn tell_diagnosis(what: &str, shown: &Shown<'_>) {
    eprintln!("{what} [{}]: {}", shown.code, shown.cause);
    if !shown.fix.is_empty() {
        eprintln!("fix: {}", shown.fix);
    }
}

pub async fn run(command: ConnectorsCommand) -> anyhow::Result<bool> {
    use reqwest::Method;
    match command {
        ConnectorsCommand::List { json, server } => {
            let list = Api::new(&server)
                .call(Method::GET, "/api/callback/connectors")
                .await?;
            if json {
                println!("{list}");
                return Ok(true);
            }
            let mut rows = table::new(&["name", "status", "preset", "flow", "url", "diagnosis"]);
            for c in list["connectors"].as_array().into_iter().flatten() {
                let text = |field: &str| c[field].as_str().unwrap_or("-").to_owned();
                let code = diagnosis_of(c)
                    .map(|d| format!("[{}]", d.code))
                    .unwrap_or_default();
                rows.add_row(vec![
                    text("name"),
                    text("status"),
                    text("preset"),
                    text("flow"),
                    text("url"),
                    code,
                ]);
            }
            table::print(&rows, "no connectors");
            Ok(true)
        }
        ConnectorsCommand::Show { name, server } => {
            let c = Api::new(&server)
                .call(
                    Method::GET,
                    &format!("/api/callback/connectors/{}", segment(&name)),
                )
                .await?;
            print_json(&c);
            if let Some(d) = diagnosis_of(&c) {
                let status = c["status"].as_str().unwrap_or("not active");
                tell_diagnosis(&format!("{name} is {status}"), &d);
            }
            Ok(true)
        }
        ConnectorsCommand::Test { name, server } => {
            let report = Api::new(&server)
                .call(
                    Method::POST,
                    &format!("/api/callback/connectors/{}/test", segment(&name)),
                )
                .await?;
            for check in report["checks"].as_array().into_iter().flatten() {
                let ok = check["ok"].as_bool().unwrap_or(false);
                let code = diagnosis_of(check)
                    .map(|d| format!("[{}] ", d.code))
                    .unwrap_or_default();
                println!(
                    "{} {:<10} {code}{}",
                    if ok { "ok  " } else { "FAIL" },
                    check["name"].as_str().unwrap_or(""),
                    check["detail"].as_str().unwrap_or("")
                );
                if let Some(fix) = check["fix"].as_str().filter(|f| !f.is_empty()) {
                    println!("     fix: {fix}");
                }
            }
            Ok(report["ok"].as_bool().unwrap_or(false))
        }
        ConnectorsCommand::Revoke { name, json, server } => {
            let c = Api::new(&server)
                .call(
                    Method::POST,
                    &format!("/api/callback/connectors/{}/revoke", segment(&name)),
                )
                .await?;
            if json {
                print_json(&c);
            } else {
                println!("{} is {}", name, c["status"].as_str().unwrap_or("revoked"));
                print_provider_answer(&c);
                let held = c["revocation"]["held_deliveries"].as_u64().unwrap_or(0);
                if held > 0 {
                    println!("held deliveries: {held} (they go out once it has credentials again)");
                }
            }
            // Revoked here either way; exit 1 says a person still has to act at the provider.
            Ok(c["provider_confirmed"].as_bool() == Some(true))
        }
        ConnectorsCommand::Resume { name, server } => {
            let c = Api::new(&server)
                .call(
                    Method::POST,
                    &format!("/api/callback/connectors/{}/resume", segment(&name)),
                )
                .await?;
            println!(
                "{name} is {}; held deliveries released: {}",
                c["status"].as_str().unwrap_or("active"),
                c["released"].as_u64().unwrap_or(0)
            );
            Ok(true)
        }
        ConnectorsCommand::ReauthUrl { name, server } => {
            let answer = Api::new(&server)
                .call(
                    Method::GET,
                    &format!("/api/callback/connectors/{}/oauth/url", segment(&name)),
                )
                .await?;
            println!("{}", answer["url"].as_str().unwrap_or(""));
            Ok(true)
        }
        ConnectorsCommand::Replay {
            name,
            since,
            until,
            status,
            server,
        } => {
            let mut body = serde_json::json!({ "since": since });
            if let Some(until) = until {
                body["until"] = Value::String(until);
            }
            if let Some(status) = status {
                body["status"] = Value::String(status);
            }
            let answer = Api::new(&server)
                .send(
                    Method::POST,
                    &format!("/api/callback/connectors/{}/replay", segment(&name)),
                    Some(&body),
                    None,
                )
                .await?;
            println!(
                "{} deliveries of {name} queued again",
                answer["replayed"].as_u64().unwrap_or(0)
            );
            Ok(true)
        }
        ConnectorsCommand::History {
            name,
            limit,
            json,
            server,
        } => {
            let history = Api::new(&server)
                .call(
                    Method::GET,
                    &format!(
                        "/api/callback/connectors/{}/history?limit={limit}",
                        segment(&name)
                    ),
                )
                .await?;
            if json {
                println!("{history}");
                return Ok(true);
            }
            let entries: Vec<&Value> = history["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            let mut rows = table::new(&["at", "kind", "outcome", "http", "took", "diagnosis"]);
            // Each diagnosis's fix once, under the table: one line per entry above it.
            let mut fixes: Vec<(String, String)> = Vec::new();
            for e in &entries {
                let diagnosis = diagnosis_of(e);
                let said = match &diagnosis {
                    Some(d) => format!("[{}] {}", d.code, d.cause),
                    None => e["provider_error"].as_str().unwrap_or("").to_owned(),
                };
                if let Some(d) = diagnosis.filter(|d| !d.fix.is_empty()) {
                    if !fixes.iter().any(|(code, _)| code == d.code) {
                        fixes.push((d.code.to_owned(), d.fix.to_owned()));
                    }
                }
                rows.add_row(vec![
                    e["at"].as_str().unwrap_or("").to_owned(),
                    e["kind"].as_str().unwrap_or("").to_owned(),
                    e["outcome"].as_str().unwrap_or("").to_owned(),
                    e["http_status"]
                        .as_i64()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    format!("{}ms", e["duration_ms"].as_i64().unwrap_or(0)),
                    said,
                ]);
            }
            table::print(&rows, "no calls to the provider yet");
            for (code, fix) in fixes {
                println!("fix [{code}]: {fix}");
            }
            Ok(true)
        }
        ConnectorsCommand::Create {
            name,
            settings,
            server,
        } => write_connector(Method::POST, &name, &settings, &server).await,
        ConnectorsCommand::Update {
            name,
            settings,
            server,
        } => write_connector(Method::PATCH, &name, &settings, &server).await,
        ConnectorsCommand::Delete { name, json, server } => {
            let c = Api::new(&server)
                .send(
                    Method::DELETE,
                    &format!("/api/callback/connectors/{}", segment(&name)),
                    None,
                    None,
                )
                .await?;
            if json {
                print_json(&c);
            } else {
                println!("deleted {name}");
                print_provider_answer(&c);
                let failed = c["failed_deliveries"].as_u64().unwrap_or(0);
                if failed > 0 {
                    println!("failed deliveries: {failed} (connector_deleted)");
                }
            }
            Ok(c["provider_confirmed"].as_bool() == Some(true))
        }
        ConnectorsCommand::RotateSecret { name, server } => {
            let c = Api::new(&server)
                .call(
                    Method::POST,
                    &format!(
                        "/api/callback/connectors/{}/signing-secret/rotate",
                        segment(&name)
                    ),
                )
                .await?;
            println!("{}", c["signing_secret"].as_str().unwrap_or(""));
            eprintln!("the old secret keeps signing beside it for 24 hours");
            Ok(true)
        }
    }
}

/// `create` (POST) or `update` (PATCH): the connector as the server answers it, its warnings,
/// and why it is not active, if it is not.
async fn write_connector(
    method: reqwest::Method,
    name: &str,
    settings: &ConnectorSettings,
    server: &ServerArgs,
) -> anyhow::Result<bool> {
    let c = Api::new(server)
        .send(
            method,
            &format!("/api/callback/connectors/{}", segment(name)),
            Some(&settings.body()?),
            None,
        )
        .await?;
    print_json(&c);
    for w in c["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", w.as_str().unwrap_or(""));
    }
    if let Some(d) = diagnosis_of(&c) {
        let status = c["status"].as_str().unwrap_or("not active");
        tell_diagnosis(&format!("{name} is {status}"), &d);
    }
    Ok(true)
}
