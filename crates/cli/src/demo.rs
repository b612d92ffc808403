//! `hookwarden fake-org` and `hookwarden serve --demo`: a Salesforce-shaped org on loopback, so
//! a new user sees the whole flow (registration, tokens, callbacks) without a Salesforce org.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use hookwarden_core::AddressPolicy;
use hookwarden_fake_org::{
    FakeOrgConfig, RunningFakeOrg, CONTROL_ROUTES, DEFAULT_SESSION_TIMEOUT_S,
};
use hookwarden_server::{RunningServer, Settings};
use serde_json::json;

/// Where `fake-org` listens unless told otherwise (`serve --demo` starts its org there too).
const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// The width `fake-org --help` wraps the control plane's descriptions to.
const HELP_WIDTH: usize = 100;

#[derive(Args)]
#[command(
    after_help = "The org's knobs change at run time over HTTP under /_fake/: see --help.",
    after_long_help = control_plane_help()
)]
pub struct FakeOrgArgs {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Access-token lifetime in seconds (the org's session timeout; knob `session_timeout_s`).
    #[arg(long, default_value_t = DEFAULT_SESSION_TIMEOUT_S)]
    session_timeout_s: u64,
    /// Rotate refresh tokens on every refresh, with reuse detection (knob `rotate_refresh_tokens`).
    #[arg(long)]
    rotate_refresh_tokens: bool,
    /// No "Run As" user: client-credentials grants fail as in a misconfigured org (knob
    /// `run_as_user` set to null).
    #[arg(long)]
    no_run_as_user: bool,
    /// Act as login.salesforce.com: client-credentials grants are refused (knob `login_host`).
    #[arg(long)]
    login_host: bool,
    /// The user is inactive: grants fail with inactive_user (knob `user_inactive`).
    #[arg(long)]
    inactive_user: bool,
    /// Namespace prefix of the Apex class (the endpoint becomes /services/apexrest/NS/OSS/callback;
    /// knob `namespace`).
    #[arg(long)]
    namespace: Option<String>,
    /// Scopes the connected app allows (space-separated; knob `allowed_scopes`).
    #[arg(long)]
    scopes: Option<String>,
}

/// `fake-org --help`'s epilogue: the control plane, from the table the org's router serves, and
/// how to change a knob.
fn control_plane_help() -> String {
    let paragraph = |text: &str| wrap(text, HELP_WIDTH).join("\n") + "\n";
    let mut help = paragraph(&format!(
        "The control plane: the org's knobs, tokens, clock and counters over HTTP, under its base \
         URL (http://{DEFAULT_LISTEN} by default, as in `serve --demo`). Each flag above sets a \
         knob at start; every knob can be changed at run time."
    ));
    help.push('\n');
    for route in CONTROL_ROUTES {
        help.push_str(&format!("  {:<5}{}\n", route.method, route.path));
        for line in wrap(route.does, HELP_WIDTH - 6) {
            help.push_str(&format!("      {line}\n"));
        }
    }
    help.push('\n');
    help.push_str(&paragraph(
        "Change a knob at run time: POST the knobs to change, the others stay (null unsets an \
         optional one):",
    ));
    help.push_str(&format!(
        "  curl -X POST http://{DEFAULT_LISTEN}/_fake/config -H 'Content-Type: application/json' \
         -d '{{\"run_as_user\": null}}'\n  \
         curl http://{DEFAULT_LISTEN}/_fake/config      # every knob and its value\n\n"
    ));
    help.push_str(&paragraph(
        "Every knob with its type, default and effect, and which knob causes which diagnosis: the \
         README's section \"The fake org\".",
    ));
    help
}

/// `text` in lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

pub async fn run_fake_org(args: FakeOrgArgs) -> anyhow::Result<()> {
    let mut config = FakeOrgConfig {
        session_timeout_s: args.session_timeout_s,
        rotate_refresh_tokens: args.rotate_refresh_tokens,
        login_host: args.login_host,
        user_inactive: args.inactive_user,
        namespace: args.namespace,
        ..FakeOrgConfig::default()
    };
    if args.no_run_as_user {
        config.run_as_user = None;
    }
    if let Some(scopes) = args.scopes {
        config.allowed_scopes = scopes.split_whitespace().map(str::to_owned).collect();
    }
    let org = hookwarden_fake_org::FakeOrg::builder()
        .config(config)
        .listen(args.listen)
        .start()
        .await
        .with_context(|| format!("cannot start the fake org on {}", args.listen))?;
    let refresh_token = org.issue_refresh_token(hookwarden_fake_org::DEFAULT_CLIENT_ID);
    say(&format!(
        "fake org on {base}\n  client_id      {id}\n  client_secret  {secret}\n  \
         refresh_token  {refresh_token}\n  token URL      {token}\n  Apex endpoint  {apex}\n  \
         counters       {base}/_fake/stats\n",
        base = org.base_url(),
        id = hookwarden_fake_org::DEFAULT_CLIENT_ID,
        secret = hookwarden_fake_org::DEFAULT_CLIENT_SECRET,
        token = org.token_url(),
        apex = org.callback_url(),
    ));
    tokio::signal::ctrl_c().await?;
    org.shutdown().await;
    Ok(())
}

/// Start the demo org and let the server reach it (plain http on loopback).
pub async fn start_org(listen: &str, settings: &mut Settings) -> anyhow::Result<RunningFakeOrg> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--demo-org-listen {listen:?} is not an address"))?;
    // A small callback log: the tour looks at the last few, and a demo left running under
    // load should not grow by a copy of every callback it received.
    let org = hookwarden_fake_org::FakeOrg::builder()
        .listen(addr)
        .callback_log_capacity(1000)
        .start()
        .await
        .with_context(|| format!("cannot start the demo's fake org on {addr}"))?;
    settings.allow_insecure_http = true;
    let loopback = AddressPolicy::parse_list("127.0.0.0/8, ::1/128").expect("static CIDRs parse");
    settings.address_policy.allowed.extend(loopback.allowed);
    Ok(org)
}

/// Create a demo account and register a client-credentials Salesforce connector that points at
/// the fake org, through the server's own API, then say how to look around.
/// A token for `/metrics` on the demo's API listener: 32 random bytes, in hex.
pub fn metrics_token() -> String {
    (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// `metrics_token`: the one the demo made (printed), none when the configuration gave one.
pub async fn register(
    server: &RunningServer,
    org: &RunningFakeOrg,
    metrics_token: Option<&str>,
) -> anyhow::Result<()> {
    // A second demo on the same database keeps its account (names are unique), with a new key.
    let store = &server.state.store;
    let api_key = match store.account_named("demo").await? {
        Some(account) => store.create_api_key(&account.id).await?.1,
        None => store.create_account("demo").await?.1,
    };
    // A My Domain as host, as a client-credentials key for a real org must have (the
    // governance review checks it); the endpoints below are the fake org's.
    let key = hookwarden_core::key::encode(&json!({
        "host": "demo.my.salesforce.com",
        "client_id": hookwarden_fake_org::DEFAULT_CLIENT_ID,
        "client_secret": hookwarden_fake_org::DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
        "introspection_url": org.introspect_url(),
        "authorization_url": org.authorize_url(),
    }));
    let base = server.base_url();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/callback/connectors/salesforceOauth2"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(&json!({
            "url": org.callback_url(),
            "events": ["PACKAGE_CREATE", "PACKAGE_COMPLETE", "DOCUMENT_SIGNED"],
            "key": key,
            "owner": "demo@example.com",
        }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "registering the demo connector failed: {}",
        response.text().await.unwrap_or_default()
    );
    let org_url = org.base_url();
    let (metrics_line, metrics_try) = match metrics_token {
        Some(token) => (
            format!("  metrics token: {token}\n"),
            format!("  curl -s -H 'Authorization: Bearer {token}' {base}/metrics\n"),
        ),
        None => (String::new(), String::new()),
    };
    say(&format!(
        "\nDemo ready.\n  fake Salesforce org: {org_url}\n  API key (account \"demo\"): {api_key}\n  \
         console: {base}/console (log in with the API key)\n{metrics_line}\n\
         Try:\n  \
         curl -s -H 'Authorization: Basic {api_key}' {base}/api/callback/connectors/salesforceOauth2\n  \
         curl -s -X POST {base}/api/events -H 'Authorization: Basic {api_key}' -H 'Content-Type: application/json' \\\n       \
         -d '{{\"name\": \"PACKAGE_COMPLETE\", \"packageId\": \"pkg-1\", \"origin\": \"OSS\"}}'\n  \
         curl -s -H 'Authorization: Basic {api_key}' '{base}/api/deliveries?limit=5'\n  \
         curl -s {org_url}/_fake/stats\n{metrics_try}\n"
    ));
    Ok(())
}

/// Writes the banner to stdout, once and whole. A server keeps running when nobody reads its
/// stdout any more (`hookwarden demo | head`, a test that stops reading at the key): `println!`
/// panics on a closed pipe, which took the whole demo down.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use clap::{Args, Command};

    use super::*;

    #[test]
    fn fake_org_long_help_lists_every_control_route_and_how_to_change_a_knob() {
        let help = FakeOrgArgs::augment_args(Command::new("fake-org"))
            .render_long_help()
            .to_string();
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for route in CONTROL_ROUTES {
            let does = route.does.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                words.contains(&format!("{} {} {does}", route.method, route.path)),
                "{} {} is missing from:\n{help}",
                route.method,
                route.path
            );
        }
        assert!(help.contains(
            "curl -X POST http://127.0.0.1:8081/_fake/config -H 'Content-Type: application/json' \
             -d '{\"run_as_user\": null}'"
        ));
        assert!(help.contains("\"The fake org\""));
        assert!(!FakeOrgArgs::augment_args(Command::new("fake-org"))
            .render_help()
            .to_string()
            .contains("/_fake/config"));
    }

    #[test]
    fn wrap_keeps_every_word_within_the_width() {
        let text = "a bb ccc dddd eeeee ffffffffffffffff g";
        let lines = wrap(text, 10);
        assert_eq!(
            lines,
            ["a bb ccc", "dddd eeeee", "ffffffffffffffff", "g"],
            "a word longer than the width stands alone"
        );
        assert_eq!(lines.join(" "), text);
        assert!(wrap("", 10).is_empty());
    }
}
