//! `hookwarden connectors ...`: a client of a running server's API.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

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
    /// List the account's connectors.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one connector (secrets masked).
    Get {
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
    /// Revoke the connector's tokens at the provider and stop using them (idempotent).
    Revoke {
        name: String,
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
        #[command(flatten)]
        server: ServerArgs,
    },
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
        ConnectorsCommand::List { server } => {
            let list = Api::new(&server)
                .call(Method::GET, "/api/callback/connectors")
                .await?;
            for c in list["connectors"].as_array().into_iter().flatten() {
                let code = diagnosis_of(c)
                    .map(|d| format!(" [{}]", d.code))
                    .unwrap_or_default();
                println!(
                    "{:<24} {:<14} {:<20} {}{code}",
                    c["name"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                    c["flow"].as_str().unwrap_or("-"),
                    c["url"].as_str().unwrap_or("")
                );
            }
            Ok(true)
        }
        ConnectorsCommand::Get { name, server } => {
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
        ConnectorsCommand::Revoke { name, server } => {
            let c = Api::new(&server)
                .call(
                    Method::POST,
                    &format!("/api/callback/connectors/{}/revoke", segment(&name)),
                )
                .await?;
            println!("{} is {}", name, c["status"].as_str().unwrap_or("revoked"));
            Ok(true)
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
            for e in history["entries"].as_array().into_iter().flatten() {
                let diagnosis = diagnosis_of(e);
                let said = match &diagnosis {
                    Some(d) => format!("[{}] {}", d.code, d.cause),
                    None => e["provider_error"].as_str().unwrap_or("").to_owned(),
                };
                println!(
                    "{} {:<14} {:<10} {:>4} {:>6}ms {said}",
                    e["at"].as_str().unwrap_or(""),
                    e["kind"].as_str().unwrap_or(""),
                    e["outcome"].as_str().unwrap_or(""),
                    e["http_status"]
                        .as_i64()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    e["duration_ms"].as_i64().unwrap_or(0),
                );
                if let Some(d) = diagnosis.filter(|d| !d.fix.is_empty()) {
                    println!("     fix: {}", d.fix);
                }
            }
            Ok(true)
        }
    }
}
