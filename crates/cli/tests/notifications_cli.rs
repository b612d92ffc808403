//! `hookwarden notifications ...` against a running server: an endpoint added (secret once on
//! stdout), listed as a table and as JSON, tested (exit 0 when delivered, 1 when refused),
//! its deliveries, removed; a read key is told it may not.

mod common;

use common::{spawn_server, Receiver};
use hookwarden_store::MasterKey;

async fn run(base: &str, api_key: &str, args: &[&str]) -> (bool, String, String) {
    common::run_cli(base, api_key, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_added_listed_tested_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        &format!("sqlite://{}", dir.path().join("n.db").display()),
        MasterKey::generate(),
    )
    .await;
    let (_, admin) = server.state.store.create_account("acme").await.unwrap();
    let base = server.base_url();
    let received = Receiver::start(200).await;
    let good = received.url.clone();
    let bad = Receiver::start(400).await.url;

    // The secret alone on stdout.
    let (ok, secret, err) = run(
        &base,
        &admin,
        &[
            "notifications",
            "add",
            &good,
            "--type",
            "connector.needs_reauth,delivery.failed",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(secret.lines().count(), 1, "{secret}");
    assert!(secret.trim().starts_with("whsec_"), "{secret}");
    assert!(
        err.contains("connector.needs_reauth,delivery.failed"),
        "{err}"
    );
    let (ok, slack, err) = run(
        &base,
        &admin,
        &["notifications", "add", &bad, "--format", "slack"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(slack.is_empty(), "a slack endpoint has no secret: {slack}");

    let (ok, list, err) = run(&base, &admin, &["notifications", "list", "--json"]).await;
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let all = list["notifications"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{list}");
    let good_id = all[0]["id"].as_str().unwrap().to_owned();
    let bad_id = all[1]["id"].as_str().unwrap().to_owned();
    assert_eq!(all[1]["types"].as_array().unwrap().len(), 7);

    let (ok, table, err) = run(&base, &admin, &["notifications", "list"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "FORMAT", "TYPES", "URL", "CREATED"]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&bad_id) && l.contains("slack") && l.contains(" all ")),
        "{table}"
    );
    assert!(!table.contains("whsec_"), "{table}");

    // A test that is delivered exits 0; one the endpoint refuses exits 1 with its answer.
    let (ok, out, err) = run(&base, &admin, &["notifications", "test", &good_id]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("delivered"), "{out}");
    assert_eq!(received.got().len(), 1);
    assert!(received.got()[0].body.contains("notification.test"));
    let (ok, out, err) = run(&base, &admin, &["notifications", "test", &bad_id]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("not delivered"), "{err}");

    let (ok, sent, err) = run(&base, &admin, &["notifications", "deliveries", &good_id]).await;
    assert!(ok, "{err}");
    assert!(
        sent.contains("notification.test") && sent.contains("delivered") && sent.contains("200"),
        "{sent}"
    );

    // A read key may list but not change.
    let (ok, read, err) = run(&base, &admin, &["keys", "create", "--scope", "read"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&base, read.trim(), &["notifications", "remove", &good_id]).await;
    assert!(!ok);
    assert!(err.contains("403"), "{err}");
    let (ok, _, err) = run(&base, read.trim(), &["notifications", "list"]).await;
    assert!(ok, "{err}");

    let (ok, out, err) = run(&base, &admin, &["notifications", "remove", &good_id]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&good_id));
    let (ok, _, err) = run(&base, &admin, &["notifications", "remove", &good_id]).await;
    assert!(!ok);
    assert!(err.contains("404") && err.contains("fix:"), "{err}");
    let (ok, _, err) = run(
        &base,
        &admin,
        &[
            "notifications",
            "add",
            &good,
            "--type",
            "connector.exploded",
        ],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("connector.exploded"), "{err}");
}
