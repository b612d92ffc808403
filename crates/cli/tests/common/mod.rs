//! What the tests that drive the CLI against a running server share.
#![allow(dead_code)]

use std::sync::Arc;

use assert_cmd::Command;
use hookwarden_core::{AddressPolicy, Clock, SystemClock};
use hookwarden_server::{RunningServer, Settings};
use hookwarden_store::{MasterKey, MasterKeySource};

/// The CLI, pointed at `base` with `api_key`.
pub fn cli(base: &str, api_key: &str) -> Command {
    let mut cmd = Command::cargo_bin("hookwarden").unwrap();
    cmd.env("HOOKWARDEN_SERVER", base)
        .env("HOOKWARDEN_API_KEY", api_key);
    cmd
}

/// A server (with its delivery workers) on 127.0.0.1:0 over `database`, allowed to reach
/// loopback over plain http (the fake org).
pub async fn spawn_server(database: &str, master_key: MasterKey) -> RunningServer {
    spawn_server_on(database, master_key, Arc::new(SystemClock)).await
}

/// `spawn_server` with a ring of master keys (or any other source).
pub async fn spawn_server_with_keys(database: &str, keys: MasterKeySource) -> RunningServer {
    spawn_server_from(database, keys, Arc::new(SystemClock)).await
}

/// `spawn_server` on `clock`.
pub async fn spawn_server_on(
    database: &str,
    master_key: MasterKey,
    clock: Arc<dyn Clock>,
) -> RunningServer {
    spawn_server_from(database, MasterKeySource::Given(master_key), clock).await
}

async fn spawn_server_from(
    database: &str,
    master_key: MasterKeySource,
    clock: Arc<dyn Clock>,
) -> RunningServer {
    hookwarden_server::spawn_with_clock(
        Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: None,
            database: database.to_owned(),
            master_key,
            allow_insecure_http: true,
            address_policy: AddressPolicy::parse_list("127.0.0.0/8").unwrap(),
            max_body_bytes: 1 << 20,
            history_retention_days: 30,
            metrics: Default::default(),
            limits: Default::default(),
            governance: Default::default(),
        },
        None,
        clock,
    )
    .await
    .unwrap()
}
