//! `hookwarden keys ...` against a running server: keys made with scopes and a name, listed,
//! revoked, and what a key without the scope is told.

mod common;

use common::{cli, spawn_server};
use hookwarden_store::MasterKey;
use predicates::prelude::*;

async fn run(base: &str, api_key: &str, args: &[&str]) -> (bool, String, String) {
    common::run_cli(base, api_key, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_made_listed_and_revoked_with_their_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        &format!("sqlite://{}", dir.path().join("keys.db").display()),
        MasterKey::generate(),
    )
    .await;
    let (_, admin) = server.state.store.create_account("acme").await.unwrap();
    let base = server.base_url();

    // Made with the scopes and name given, printed once, alone on stdout.
    let (ok, ingest, err) = run(
        &base,
        &admin,
        &[
            "keys",
            "create",
            "--scope",
            "ingest",
            "--name",
            "producer-eu",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(ingest.lines().count(), 1, "{ingest}");
    let ingest = ingest.trim().to_owned();
    assert!(ingest.starts_with("hwk_"), "{ingest}");
    assert!(err.contains("(ingest)"), "{err}");
    let (ok, read, err) = run(&base, &admin, &["keys", "create", "--scope", "read"]).await;
    assert!(ok, "{err}");
    let read = read.trim().to_owned();

    // A table: a header, one line per key, the one in use marked.
    let (ok, table, err) = run(&base, &read, &["keys", "list"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 3, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "NAME", "SCOPES", "PREFIX", "CREATED", "LAST", "USED", "CURRENT"],
        "{table}"
    );
    let producer = lines
        .iter()
        .find(|l| l.contains("producer-eu"))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = producer.split_whitespace().collect();
    assert_eq!(cells[2], "ingest", "{table}");
    assert!(
        ingest.starts_with(cells[3].trim_end_matches('…')),
        "{table}"
    );
    let ingest_id = cells[0].to_owned();
    let current: Vec<&&str> = lines.iter().filter(|l| l.ends_with("yes")).collect();
    assert_eq!(current.len(), 1, "{table}");
    assert!(
        current[0].contains(" read "),
        "the read key is in use: {table}"
    );
    assert!(
        !table.contains(&ingest) && !table.contains(&read) && !table.contains(&admin),
        "never a key in full: {table}"
    );
    let (ok, json, err) = run(&base, &read, &["keys", "list", "--json"]).await;
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["keys"].as_array().unwrap().len(), 3, "{json}");

    // A key without the scope is told which one it needs, and exits 1.
    let (ok, out, err) = run(&base, &ingest, &["keys", "list"]).await;
    assert!(!ok && out.is_empty());
    assert!(
        err.contains("403") && err.contains("insufficient_scope") && err.contains("read"),
        "{err}"
    );
    let (ok, out, err) = run(&base, &read, &["keys", "create", "--scope", "admin"]).await;
    assert!(!ok && out.is_empty());
    assert!(
        err.contains("insufficient_scope") && err.contains("admin"),
        "{err}"
    );
    let (ok, _, err) = run(&base, &read, &["keys", "revoke", &ingest_id]).await;
    assert!(!ok);
    assert!(err.contains("insufficient_scope"), "{err}");
    // --scope is required, and only a scope.
    let (ok, _, err) = run(&base, &admin, &["keys", "create"]).await;
    assert!(!ok);
    assert!(err.contains("--scope"), "{err}");
    let (ok, _, err) = run(&base, &admin, &["keys", "create", "--scope", "write"]).await;
    assert!(!ok);
    assert!(err.contains("ingest, read, admin"), "{err}");

    // Revoked: refused at once. The last admin key is not revoked.
    let (ok, out, err) = run(&base, &admin, &["keys", "revoke", &ingest_id]).await;
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (ok, _, err) = run(&base, &ingest, &["keys", "list"]).await;
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    let admin_id = hookwarden_store::api_key_id(&admin);
    let (ok, _, err) = run(&base, &admin, &["keys", "revoke", &admin_id]).await;
    assert!(!ok);
    assert!(
        err.contains("last_api_key") && err.contains("admin"),
        "{err}"
    );
    tokio::task::spawn_blocking({
        let (base, read) = (base.clone(), read.clone());
        move || {
            cli(&base, &read)
                .args(["keys", "list"])
                .assert()
                .success()
                .stdout(predicate::str::contains(&admin_id));
        }
    })
    .await
    .unwrap();
    server.shutdown().await.unwrap();
}
