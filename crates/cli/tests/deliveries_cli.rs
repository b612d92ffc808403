//! `hookwarden events send`, `hookwarden deliveries ...` and `hookwarden connectors replay`
//! against a running server (with its delivery workers) and a fake org.

use std::time::{Duration, Instant};

mod common;

use assert_cmd::Command;
use common::{cli, spawn_server};
use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_store::MasterKey;
use predicates::prelude::*;
use serde_json::{json, Value};

/// Run the command (it must succeed) and return its stdout.
fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// Until `deliveries list --status STATUS --json --all` holds `count` deliveries.
fn wait_for_status(base: &str, key: &str, status: &str, count: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let out = stdout_of(cli(base, key).args([
            "deliveries",
            "list",
            "--status",
            status,
            "--all",
            "--json",
        ]));
        let found: Vec<Value> = out
            .lines()
            .flat_map(|page| {
                serde_json::from_str::<Value>(page).unwrap()["deliveries"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {count} deliveries are {status} after 30 s",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_out_and_deliveries_are_followed_retried_and_replayed_from_the_command_line() {
    let org = FakeOrg::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        &format!("sqlite://{}", dir.path().join("cli.db").display()),
        MasterKey::generate(),
    )
    .await;
    let (_, api_key) = server.state.store.create_account("acme").await.unwrap();
    let base = server.base_url();
    let key = hookwarden_core::key::encode(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
    }));
    let http = reqwest::Client::new();
    // One connector that works, one whose Apex class is not deployed (404 NOT_FOUND).
    for (name, url, events) in [
        (
            "salesforceOauth2",
            org.callback_url(),
            json!(["PACKAGE_COMPLETE", "DOCUMENT_SIGNED"]),
        ),
        (
            "missingClass",
            org.apex_url("NoSuchClass/callback"),
            json!(["PACKAGE_DECLINE"]),
        ),
    ] {
        let resp = http
            .post(format!("{base}/api/callback/connectors/{name}"))
            .header("Authorization", format!("Basic {api_key}"))
            .json(&json!({"url": url, "events": events, "key": key, "origins": ["OSS"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let events_file = dir.path().join("events.json");
    std::fs::write(
        &events_file,
        json!({"events": [
            {"name": "DOCUMENT_SIGNED", "packageId": "pkg-2", "origin": "OSS", "documentId": "doc-1"},
            {"name": "PACKAGE_COMPLETE", "packageId": "pkg-2", "origin": "OSS"},
            {"name": "PACKAGE_DECLINE", "packageId": "pkg-3", "origin": "OSS"},
            {"name": "PACKAGE_CREATE", "packageId": "pkg-4", "origin": "OSS"},
        ]})
        .to_string(),
    )
    .unwrap();

    let (b, k) = (base.clone(), api_key.clone());
    let received = tokio::task::spawn_blocking(move || {
        // One event from flags: its id, then its one delivery's id.
        let first_event = [
            "events",
            "send",
            "--name",
            "PACKAGE_COMPLETE",
            "--package-id",
            "pkg-1",
            "--session-user",
            "signer@example.com",
            "--idempotency-key",
            "cli-1",
        ];
        let out = stdout_of(cli(&b, &k).args(first_event));
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words.len(), 2, "{out}");
        let first_delivery = words[1].to_owned();
        // The same key and body: the same answer, no new delivery.
        let again = stdout_of(cli(&b, &k).args(first_event));
        assert_eq!(again, out);

        // A file of four: three routed, one (PACKAGE_CREATE) taken by no connector.
        let out = stdout_of(cli(&b, &k).args([
            "events",
            "send",
            "--file",
            events_file.to_str().unwrap(),
        ]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[3].ends_with("(no destination takes it)"), "{out}");
        let failing = lines[2].split_whitespace().nth(1).unwrap().to_owned();

        // The same from standard input, as an array.
        cli(&b, &k)
            .args(["events", "send", "--file", "-"])
            .write_stdin(
                json!([{"name": "PACKAGE_COMPLETE", "packageId": "pkg-5", "origin": "OSS"}])
                    .to_string(),
            )
            .assert()
            .success();

        // Page by page (two at a time) to all four delivered ones.
        let delivered = wait_for_status(&b, &k, "delivered", 4);
        assert_eq!(delivered.len(), 4);
        let failed = wait_for_status(&b, &k, "failed", 1);
        assert_eq!(failed[0]["id"], failing.as_str());
        let table =
            stdout_of(cli(&b, &k).args(["deliveries", "list", "--connector", "missingClass"]));
        assert!(table.contains(&failing), "{table}");
        assert!(table.contains("failed"), "{table}");
        assert!(table.contains(" 404"), "{table}");
        let all = stdout_of(cli(&b, &k).args(["deliveries", "list", "--limit", "2", "--all"]));
        assert_eq!(
            all.lines().count(),
            1 + 5,
            "one header over all the pages: {all}"
        );
        assert!(all.starts_with("ID "), "{all}");
        // Nothing found says so, instead of printing an empty table.
        let none = stdout_of(cli(&b, &k).args(["deliveries", "list", "--status", "held"]));
        assert_eq!(none.trim(), "no deliveries", "{none}");

        // One delivery with its attempts, as JSON.
        let get = |id: &str| -> Value {
            serde_json::from_str(&stdout_of(cli(&b, &k).args(["deliveries", "get", id]))).unwrap()
        };
        let shown = get(&failing);
        assert_eq!(shown["status"], "failed");
        assert_eq!(shown["attempts"][0]["status_code"], 404);
        assert!(shown["attempts"][0]["diagnosis"]["code"].as_str().is_some());

        // Retry one, replay the connector: each is one more attempt.
        cli(&b, &k)
            .args(["deliveries", "retry", &failing])
            .assert()
            .success()
            .stdout(predicate::str::contains("pending"));
        // A delivered one is not sent again by mistake: it asks for --force.
        cli(&b, &k)
            .args(["deliveries", "retry", &first_delivery])
            .assert()
            .failure()
            .stderr(predicate::str::contains("already_delivered"))
            .stderr(predicate::str::contains("--force"));
        let wait_for_attempts = |n: usize| {
            let start = Instant::now();
            while get(&failing)["attempts"].as_array().unwrap().len() < n {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "attempt {n} never came"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_for_attempts(2);
        wait_for_status(&b, &k, "failed", 1);
        cli(&b, &k)
            .args([
                "connectors",
                "replay",
                "missingClass",
                "--since",
                "2020-01-01T00:00:00Z",
            ])
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "1 deliveries of missingClass queued again",
            ));
        wait_for_attempts(3);

        // What is wrong is said, by the server or before anything is sent.
        cli(&b, &k)
            .args(["deliveries", "get", "nope"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("404"));
        cli(&b, &k)
            .args(["events", "send", "--name", "bad name", "--package-id", "p"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("400"))
            .stderr(predicate::str::contains("name"));
        cli(&b, &k)
            .args(["events", "send", "--file", "-"])
            .write_stdin("[1, 2]")
            .assert()
            .failure()
            .stderr(predicate::str::contains("event 0 is not a JSON object"));
        // A file's events without an origin get --origin's, as flags do (the server needs one).
        cli(&b, &k)
            .args(["events", "send", "--file", "-"])
            .write_stdin(r#"[{"name": "PACKAGE_CREATE", "packageId": "pkg-9"}]"#)
            .assert()
            .success()
            .stdout(predicate::str::contains("(no destination takes it)"));
        // A bad event is named by its place in the file, and nothing is sent.
        cli(&b, &k)
            .args(["events", "send", "--file", "-"])
            .write_stdin(
                r#"[{"name": "PACKAGE_CREATE", "packageId": "a"},
                    {"name": "PACKAGE_CREATE", "packageId": "b"},
                    {"name": "bad name", "packageId": "c"}]"#,
            )
            .assert()
            .failure()
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains("event 2: name"))
            .stderr(predicate::str::contains("nothing was sent"));
        cli(&b, &k)
            .args(["events", "send", "--package-id", "p"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("--name"));
        cli(&b, &k)
            .args([
                "connectors",
                "replay",
                "missingClass",
                "--since",
                "yesterday",
            ])
            .assert()
            .code(2)
            // Refused before it is sent, naming the forms a time may take.
            .stderr(predicate::str::contains("is not a time"))
            .stderr(predicate::str::contains("2d"));
        first_delivery
    })
    .await
    .unwrap();

    // The org saw the first event once, under its delivery id, with the flags' fields.
    let cb = org
        .callbacks()
        .into_iter()
        .find(|c| c.webhook_id.as_deref() == Some(received.as_str()))
        .expect("the first event reached the org");
    assert_eq!(cb.body["packageId"], "pkg-1");
    assert_eq!(cb.body["sessionUser"], "signer@example.com");
    assert_eq!(org.stats().unique_webhook_ids, 4);
    server.shutdown().await.unwrap();
}
