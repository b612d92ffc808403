//! `hookwarden keys ...`: the account's API keys on a running server (`/api/keys`): list them,
//! make one with the scopes it needs, revoke one.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{segment, Api, ServerArgs};
use crate::table;

/// The scopes a key can have, as `--scope` takes them (the server's `Scope`).
pub const SCOPES: [&str; 3] = ["ingest", "read", "admin"];

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the account's API keys: id, name, scopes, first characters, created, last used, and
    /// which one this is (never the keys).
    List {
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make an API key with these scopes and print it (one line on stdout, shown this once).
    /// Needs an admin key.
    Create {
        /// What it may do: ingest (post events only), read (read everything), admin
        /// (everything). Repeat it, or separate with commas, for more than one.
        #[arg(long = "scope", value_name = "SCOPE", required = true, value_delimiter = ',', value_parser = SCOPES)]
        scopes: Vec<String>,
        /// A name to tell it by in lists, e.g. producer-eu.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke one of the account's API keys (not its last admin key); the server refuses it at
    /// once, other nodes within 10 s. Needs an admin key.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List { json, server } => {
            let list = Api::new(&server).call(Method::GET, "/api/keys").await?;
            if json {
                println!("{list}");
                return Ok(());
            }
            let mut rows = table::new(&[
                "id",
                "name",
                "scopes",
                "prefix",
                "created",
                "last used",
                "current",
            ]);
            for k in list["keys"].as_array().into_iter().flatten() {
                let text = |field: &str, none: &str| k[field].as_str().unwrap_or(none).to_owned();
                rows.add_row(vec![
                    text("id", "-"),
                    text("name", "-"),
                    scope_list(&k["scopes"]),
                    k["prefix"]
                        .as_str()
                        .map_or_else(|| "-".to_owned(), |p| format!("{p}…")),
                    text("created_at", "-"),
                    text("last_used_at", "never"),
                    if k["current"] == true { "yes" } else { "" }.to_owned(),
                ]);
            }
            table::print(&rows, "no API keys");
            Ok(())
        }
        KeysCommand::Create {
            scopes,
            name,
            server,
        } => {
            let mut body = json!({ "scopes": scopes });
            if let Some(name) = name {
                body["name"] = Value::String(name);
            }
            let created = Api::new(&server)
                .send(Method::POST, "/api/keys", Some(&body), None)
                .await?;
            eprintln!(
                "new API key {} ({})",
                created["id"].as_str().unwrap_or(""),
                scope_list(&created["scopes"])
            );
            println!("{}", created["api_key"].as_str().unwrap_or(""));
            Ok(())
        }
        KeysCommand::Revoke { id, server } => {
            Api::new(&server)
                .send(
                    Method::DELETE,
                    &format!("/api/keys/{}", segment(id.trim())),
                    None,
                    None,
                )
                .await?;
            println!("revoked {id}; other servers refuse it within 10 s");
            Ok(())
        }
    }
}

/// `["ingest", "read"]` as `ingest,read`, as `--scope` takes them.
fn scope_list(scopes: &Value) -> String {
    let names: Vec<&str> = scopes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}
