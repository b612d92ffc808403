//! `hookwarden notifications ...`: the account's notification endpoints on a running server
//! (`/api/notifications`): add one, list them, send a test, see what was sent, remove one.

use std::time::{Duration, Instant};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{diagnosis_of, print_json, segment, Api, ServerArgs};
use crate::table;

/// The types an endpoint can take, as `--type` takes them (the server's `NotificationType`).
const TYPES: [&str; 7] = [
    "connector.needs_reauth",
    "connector.revoked",
    "connector.recovered",
    "connector.disabled",
    "connector.failing",
    "delivery.failed",
    "credential.expiring",
];

#[derive(Subcommand)]
pub enum NotificationsCommand {
    /// Add an endpoint to be told when a connector breaks or recovers; prints its signing
    /// secret (one line on stdout, shown this once; none for --format slack). Needs an admin key.
    Add {
        /// Where notifications are POSTed (https).
        url: String,
        /// What it is told of [default: every type]. Repeat it, or separate with commas.
        #[arg(long = "type", value_name = "TYPE", value_delimiter = ',', value_parser = TYPES)]
        types: Vec<String>,
        /// standard: the Standard Webhooks payload, signed; slack: a Slack incoming webhook.
        #[arg(long, default_value = "standard", value_parser = ["standard", "slack"])]
        format: String,
        /// Print the server's JSON instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the account's endpoints: id, format, types, url (never their secrets).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Send `notification.test` to an endpoint and wait for its first answer; exits 1 unless
    /// it was delivered. Needs an admin key.
    Test {
        /// The endpoint's id, as `notifications list` shows it.
        id: String,
        /// How long to wait for the answer, in seconds.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// What was sent to an endpoint, newest first, with each one's last answer.
    Deliveries {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove an endpoint; what it was not yet sent is dropped. Needs an admin key.
    Remove {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(command: NotificationsCommand) -> anyhow::Result<()> {
    match command {
        NotificationsCommand::Add {
            url,
            types,
            format,
            json,
            server,
        } => {
            let mut body = json!({ "url": url, "format": format });
            if !types.is_empty() {
                body["types"] = json!(types);
            }
            let added = Api::new(&server)
                .send(Method::POST, "/api/notifications", Some(&body), None)
                .await?;
            if json {
                print_json(&added);
                return Ok(());
            }
            for w in added["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            eprintln!(
                "notification endpoint {} ({}): {}",
                added["id"].as_str().unwrap_or(""),
                added["format"].as_str().unwrap_or(""),
                type_list(&added["types"])
            );
            match added["signing_secret"].as_str() {
                Some(secret) => {
                    eprintln!("its signing secret (verify webhook-signature with it; shown once):");
                    println!("{secret}");
                }
                None => eprintln!("unsigned: a Slack incoming webhook checks no signature"),
            }
            Ok(())
        }
        NotificationsCommand::List { json, server } => {
            let list = Api::new(&server)
                .call(Method::GET, "/api/notifications")
                .await?;
            if json {
                print_json(&list);
                return Ok(());
            }
            let mut rows = table::new(&["id", "format", "types", "url", "created"]);
            for n in list["notifications"].as_array().into_iter().flatten() {
                let text = |field: &str| n[field].as_str().unwrap_or("-").to_owned();
                rows.add_row(vec![
                    text("id"),
                    text("format"),
                    type_list(&n["types"]),
                    text("url"),
                    text("created_at"),
                ]);
            }
            table::print(
                &rows,
                "no notification endpoints: add one with `hookwarden notifications add URL`",
            );
            Ok(())
        }
        NotificationsCommand::Test {
            id,
            wait,
            json,
            server,
        } => {
            let api = Api::new(&server);
            let sent = api
                .send(
                    Method::POST,
                    &format!("/api/notifications/{}/test", segment(id.trim())),
                    None,
                    None,
                )
                .await?;
            let delivery = sent["delivery_id"].as_str().unwrap_or_default().to_owned();
            let path = format!("/api/deliveries/{}", segment(&delivery));
            let deadline = Instant::now() + Duration::from_secs(wait);
            let d = loop {
                let d = api.call(Method::GET, &path).await?;
                let answered =
                    d["status"] != "pending" || !d["attempts"].as_array().is_none_or(Vec::is_empty);
                if answered || Instant::now() >= deadline {
                    break d;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            if json {
                print_json(&d);
            }
            let last = d["attempts"].as_array().and_then(|a| a.last());
            match (d["status"].as_str(), last) {
                (Some("delivered"), _) => {
                    if !json {
                        println!("delivered {delivery}: the endpoint answered {}", last.map_or(Value::Null, |a| a["status_code"].clone()));
                    }
                    Ok(())
                }
                (_, Some(a)) => {
                    let why = diagnosis_of(a)
                        .map(|d| format!("[{}] {}\nfix: {}", d.code, d.cause, d.fix))
                        .or_else(|| a["error"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("answered {}", a["status_code"]));
                    anyhow::bail!("test notification {delivery} not delivered: {why}")
                }
                (_, None) => anyhow::bail!(
                    "test notification {delivery} had no answer within {wait} s; follow it with `hookwarden deliveries show {delivery}`"
                ),
            }
        }
        NotificationsCommand::Deliveries { id, json, server } => {
            let page = Api::new(&server)
                .call(
                    Method::GET,
                    &format!("/api/notifications/{}/deliveries", segment(id.trim())),
                )
                .await?;
            if json {
                print_json(&page);
                return Ok(());
            }
            let mut rows =
                table::new(&["id", "type", "status", "attempts", "last answer", "created"]);
            for d in page["deliveries"].as_array().into_iter().flatten() {
                let attempts = d["attempts"].as_array().map_or(0, Vec::len);
                let last = d["attempts"].as_array().and_then(|a| a.last()).map_or_else(
                    || "-".to_owned(),
                    |a| match a["status_code"].as_i64() {
                        Some(code) => code.to_string(),
                        None => a["error"].as_str().unwrap_or("-").to_owned(),
                    },
                );
                let text = |field: &str| d[field].as_str().unwrap_or("-").to_owned();
                rows.add_row(vec![
                    text("id"),
                    text("event"),
                    text("status"),
                    attempts.to_string(),
                    last,
                    text("created_at"),
                ]);
            }
            table::print(&rows, "nothing sent to this endpoint yet");
            Ok(())
        }
        NotificationsCommand::Remove { id, server } => {
            Api::new(&server)
                .send(
                    Method::DELETE,
                    &format!("/api/notifications/{}", segment(id.trim())),
                    None,
                    None,
                )
                .await?;
            println!("removed {id}");
            Ok(())
        }
    }
}

/// The types as `a,b`, or `all` when it takes every one.
fn type_list(types: &Value) -> String {
    let names: Vec<&str> = types
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if names.len() == TYPES.len() {
        "all".to_owned()
    } else {
        names.join(",")
    }
}
