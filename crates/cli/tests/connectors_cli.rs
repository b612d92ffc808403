//! `hookwarden connectors ...` against a running server and a fake org.

mod common;

use std::sync::Arc;

use assert_cmd::Command;
use common::{cli, spawn_server, spawn_server_on};
use hookwarden_core::OffsetClock;
use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_store::MasterKey;
use predicates::prelude::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_revoke_reauth_and_history_from_the_command_line() {
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
        "revocation_url": org.revoke_url(),
        "authorization_url": org.authorize_url(),
    }));
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/callback/connectors/salesforceOauth2"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(&json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let refresh_key = hookwarden_core::key::encode(&json!({
        "client_id": DEFAULT_CLIENT_ID,
        "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
        "token_url": org.token_url(),
        "authorization_url": org.authorize_url(),
    }));
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/callback/connectors/refreshing"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(
            &json!({"url": org.callback_url(), "events": ["DOCUMENT_SIGNED"], "key": refresh_key}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let (b, k) = (base.clone(), api_key.clone());
    let db_url = format!("sqlite://{}", dir.path().join("cli.db").display());
    tokio::task::spawn_blocking(move || {
        cli(&b, &k)
            .args(["connectors", "test", "salesforceOauth2"])
            .assert()
            .success()
            .stdout(predicate::str::contains("ok   token"))
            .stdout(predicate::str::contains("ok   endpoint"));
        cli(&b, &k)
            .args(["connectors", "list"])
            .assert()
            .success()
            .stdout(predicate::str::contains("salesforceOauth2"));
        cli(&b, &k)
            .args(["connectors", "revoke", "salesforceOauth2"])
            .assert()
            .success()
            .stdout(predicate::str::contains("revoked"))
            .stdout(predicate::str::contains("provider: confirmed"));
        // The doctor, pointed at the running server with the account's key, names it too,
        // and the way back of a client-credentials connector: its key again.
        let listen = b.trim_start_matches("http://").to_owned();
        cli(&b, &k)
            .args(["doctor", "--listen", &listen, "--database", &db_url])
            .assert()
            .failure()
            .stdout(predicate::str::contains("a hookwarden server answers"))
            .stdout(predicate::str::contains(
                "FAIL connector    salesforceOauth2: revoked",
            ))
            .stdout(predicate::str::contains("give the key again (PATCH"))
            .stdout(predicate::str::contains("reauth-url salesforceOauth2").not());
        // Wherever serve would listen, the doctor asks the server HOOKWARDEN_SERVER names.
        cli(&b, &k)
            .args(["doctor", "--listen", "127.0.0.1:0", "--database", &db_url])
            .assert()
            .failure()
            .stdout(predicate::str::contains(format!(
                "ok   server       a hookwarden server answers at {b}"
            )))
            .stdout(predicate::str::contains(
                "FAIL connector    salesforceOauth2: revoked",
            ));
        // A server named but not answering: the doctor says so and fails, rather than
        // skipping the connectors it was asked to check.
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        cli(&gone, &k)
            .args(["doctor", "--listen", "127.0.0.1:0", "--database", &db_url])
            .assert()
            .failure()
            .stdout(predicate::str::contains("FAIL server"))
            .stdout(predicate::str::contains("HOOKWARDEN_SERVER"));
        // A revoked connector fails its test, and says what to do.
        cli(&b, &k)
            .args(["connectors", "test", "salesforceOauth2"])
            .assert()
            .failure()
            .stdout(predicate::str::contains("FAIL status"))
            .stdout(predicate::str::contains("fix:"));
        // Re-authentication in a browser is for refresh-token connectors.
        cli(&b, &k)
            .args(["connectors", "reauth-url", "salesforceOauth2"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("409"))
            .stderr(predicate::str::contains("[wrong_flow]"))
            .stderr(predicate::str::contains("fix: "));
        cli(&b, &k)
            .args(["connectors", "reauth-url", "refreshing"])
            .assert()
            .success()
            .stdout(predicate::str::contains("code_challenge="));
        cli(&b, &k)
            .args(["connectors", "history", "salesforceOauth2"])
            .assert()
            .success()
            .stdout(predicate::str::contains("revoke"))
            .stdout(predicate::str::contains("grant"));
        cli(&b, "hwk_wrong")
            .args(["connectors", "list"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("unauthorized"));
        cli(&b, &k)
            .args(["connectors", "get", "nope"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("404"));
    })
    .await
    .unwrap();
    assert!(org.stats().revocations_ok() >= 1);
    server.shutdown().await.unwrap();
}

/// A connector the provider refused shows why, with its code and fix, in each command that
/// shows it: test, get (JSON on stdout, the diagnosis on stderr), list and history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connector_shows_its_diagnosis_from_the_command_line() {
    let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
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
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/callback/connectors/salesforceOauth2"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(&json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let fix = hookwarden_core::diagnosis::Code::NoRunAsUser.fix();

    let (b, k) = (base.clone(), api_key.clone());
    tokio::task::spawn_blocking(move || {
        cli(&b, &k)
            .args(["connectors", "test", "salesforceOauth2"])
            .assert()
            .failure()
            .stdout(predicate::str::contains(
                "FAIL token      [no_run_as_user] ",
            ))
            .stdout(predicate::str::contains(format!("fix: {fix}")));
        let got = cli(&b, &k)
            .args(["connectors", "get", "salesforceOauth2"])
            .assert()
            .success()
            .stderr(predicate::str::contains(
                "salesforceOauth2 is needs_reauth [no_run_as_user]: ",
            ))
            .stderr(predicate::str::contains(format!("fix: {fix}")));
        let shown: serde_json::Value =
            serde_json::from_slice(&got.get_output().stdout).expect("stdout is still JSON");
        assert_eq!(shown["diagnosis"]["code"], "no_run_as_user");
        cli(&b, &k)
            .args(["connectors", "list"])
            .assert()
            .success()
            .stdout(predicate::str::contains("[no_run_as_user]"));
        cli(&b, &k)
            .args(["connectors", "history", "salesforceOauth2"])
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "[no_run_as_user] no \"Run As\" user",
            ))
            .stdout(predicate::str::contains(format!(
                "fix [no_run_as_user]: {fix}"
            )));
    })
    .await
    .unwrap();
    server.shutdown().await.unwrap();
}

/// A key revoked with the CLI (another process, straight in the database) is refused by a
/// running server once its cached verdict is 10 s old, and the other key keeps working. The
/// server's clock is moved past the 10 s instead of waiting for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_from_the_command_line_is_refused_by_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let db_url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let clock = Arc::new(OffsetClock::new());
    let server = spawn_server_on(&db_url, key.clone(), clock.clone()).await;
    let store = &server.state.store;
    let (acme, old_key) = store.create_account("acme").await.unwrap();
    let (_, new_key) = store.create_api_key(&acme.id).await.unwrap();
    let http = reqwest::Client::new();
    let status_with = |api_key: String| {
        let (http, url) = (http.clone(), format!("{}/api/keys", server.base_url()));
        async move {
            http.get(url)
                .header("Authorization", format!("Basic {api_key}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Seen valid, so cached.
    assert_eq!(status_with(old_key.clone()).await, 200);

    let (db, id, master) = (
        db_url.clone(),
        hookwarden_store::api_key_id(&old_key),
        key.to_base64(),
    );
    tokio::task::spawn_blocking(move || {
        Command::cargo_bin("hookwarden")
            .unwrap()
            .args(["accounts", "revoke-key", "acme", &id, "--database", &db])
            .env("HOOKWARDEN_MASTER_KEY", master)
            .assert()
            .success()
            .stdout(predicate::str::contains("revoked"));
    })
    .await
    .unwrap();

    // The server may still take the key until its cached verdict is 10 s old.
    clock.advance(std::time::Duration::from_millis(10_100));
    assert_eq!(
        status_with(old_key.clone()).await,
        401,
        "the revoked key still works 10 s later"
    );
    assert_eq!(status_with(new_key).await, 200);
    server.shutdown().await.unwrap();
}

/// `connectors resume`: refused with the diagnosis while the org has no Run As user, then
/// active with the same credentials once it has one, and the held delivery goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_the_command_line() {
    let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        &format!("sqlite://{}", dir.path().join("resume.db").display()),
        MasterKey::generate(),
    )
    .await;
    let (_, api_key) = server.state.store.create_account("acme").await.unwrap();
    let base = server.base_url();
    let http = reqwest::Client::new();
    let key = hookwarden_core::key::encode(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
    }));
    let resp = http
        .post(format!("{base}/api/callback/connectors/salesforceOauth2"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(&json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = http
        .post(format!("{base}/api/events"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(&json!({"name": "PACKAGE_COMPLETE", "packageId": "p1", "origin": "OSS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // The grant is refused and the delivery waits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let list: serde_json::Value = http
            .get(format!("{base}/api/deliveries?status=held"))
            .header("Authorization", format!("Basic {api_key}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list["deliveries"].as_array().is_some_and(|d| d.len() == 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not held: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    let (b, k) = (base.clone(), api_key.clone());
    let db_url = format!("sqlite://{}", dir.path().join("resume.db").display());
    tokio::task::spawn_blocking(move || {
        // The doctor names the way back of a client-credentials connector.
        let listen = b.trim_start_matches("http://").to_owned();
        cli(&b, &k)
            .args(["doctor", "--listen", &listen, "--database", &db_url])
            .assert()
            .failure()
            .stdout(predicate::str::contains(
                "FAIL connector    salesforceOauth2: needs_reauth",
            ))
            .stdout(predicate::str::contains(
                "once the cause is fixed: `hookwarden connectors resume salesforceOauth2`",
            ))
            .stdout(predicate::str::contains("reauth-url").not());
        cli(&b, &k)
            .args(["connectors", "resume", "salesforceOauth2"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("422"))
            .stderr(predicate::str::contains("[no_run_as_user]"))
            .stderr(predicate::str::contains("fix: "));
    })
    .await
    .unwrap();
    org.set_run_as_user(Some("integration@fake-org.example"));
    let (b, k) = (base.clone(), api_key.clone());
    tokio::task::spawn_blocking(move || {
        cli(&b, &k)
            .args(["connectors", "resume", "salesforceOauth2"])
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "salesforceOauth2 is active; held deliveries released: 1",
            ));
        // Nothing more to resume: a 409 with its fix.
        cli(&b, &k)
            .args(["connectors", "resume", "salesforceOauth2"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("409"))
            .stderr(predicate::str::contains("[nothing_to_resume]"));
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while org.callbacks().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the held delivery never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(org.stats().grants_ok("client_credentials"), 1);
    server.shutdown().await.unwrap();
}

/// A connector's whole life from the command line: create (the signing secret shown once),
/// list (a table with a header), show (and its old name, get), update, rotate its signing
/// secret, delete; and each refusal with the server's code and fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_created_updated_and_deleted_from_the_command_line() {
    let org = FakeOrg::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        &format!("sqlite://{}", dir.path().join("crud.db").display()),
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
    let url = org.callback_url();
    tokio::task::spawn_blocking(move || {
        let json_of = |cmd: &mut Command| -> serde_json::Value {
            let out = cmd.assert().success().get_output().stdout.clone();
            serde_json::from_slice(&out).unwrap()
        };
        let created = json_of(
            cli(&base, &api_key)
                .args([
                    "connectors",
                    "create",
                    "acmeProd",
                    "--preset",
                    "salesforce",
                    "--url",
                    &url,
                    "--events",
                    "PACKAGE_COMPLETE,PACKAGE_CREATE",
                    "--key-file",
                    "-",
                ])
                .write_stdin(key.clone()),
        );
        assert_eq!(created["preset"], "salesforce", "{created}");
        assert_eq!(
            created["events"],
            json!(["PACKAGE_COMPLETE", "PACKAGE_CREATE"])
        );
        let secret = created["signing_secret"].as_str().unwrap().to_owned();
        assert!(
            secret.starts_with("whsec_"),
            "shown in full once: {created}"
        );

        let list = cli(&base, &api_key)
            .args(["connectors", "list"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let list = String::from_utf8(list).unwrap();
        let lines: Vec<&str> = list.lines().collect();
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("PRESET"),
            "{list}"
        );
        assert!(
            lines[1].starts_with("acmeProd") && lines[1].contains("salesforce"),
            "{list}"
        );

        for verb in ["show", "get"] {
            let shown = json_of(cli(&base, &api_key).args(["connectors", verb, "acmeProd"]));
            assert!(
                shown["signing_secret"]
                    .as_str()
                    .unwrap()
                    .starts_with("****"),
                "{shown}"
            );
        }
        let updated = json_of(cli(&base, &api_key).args([
            "connectors",
            "update",
            "acmeProd",
            "--events",
            "DOCUMENT_SIGNED",
            "--owner",
            "integration-team@acme.example",
        ]));
        assert_eq!(updated["events"], json!(["DOCUMENT_SIGNED"]), "{updated}");
        assert_eq!(updated["owner"], "integration-team@acme.example");
        assert_eq!(updated["url"], url.as_str(), "the rest is kept");

        let rotated = cli(&base, &api_key)
            .args(["connectors", "rotate-secret", "acmeProd"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let rotated = String::from_utf8(rotated).unwrap();
        assert!(
            rotated.trim().starts_with("whsec_") && rotated.trim() != secret,
            "{rotated}"
        );

        cli(&base, &api_key)
            .args(["connectors", "update", "acmeProd", "--url", "not a url"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("400"))
            .stderr(predicate::str::contains("fix: "));
        cli(&base, &api_key)
            .args(["connectors", "delete", "acmeProd"])
            .assert()
            .success()
            .stdout(predicate::str::contains("deleted acmeProd"));
        cli(&base, &api_key)
            .args(["connectors", "delete", "acmeProd"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("404"));
        cli(&base, &api_key)
            .args(["connectors", "list"])
            .assert()
            .success()
            .stdout(predicate::str::diff("no connectors\n"));
    })
    .await
    .unwrap();
    server.shutdown().await.unwrap();
}
