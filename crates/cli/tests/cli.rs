//! The binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn hookwarden() -> Command {
    let mut cmd = Command::cargo_bin("hookwarden").unwrap();
    // Tests must not pick up a developer's settings.
    for var in [
        "HOOKWARDEN_DATABASE",
        "HOOKWARDEN_LISTEN",
        "HOOKWARDEN_MASTER_KEY",
        "HOOKWARDEN_ALLOW_INSECURE_HTTP",
        "HOOKWARDEN_ALLOW_PRIVATE_NETWORKS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn key_encode_prints_one_line_that_the_api_accepts() {
    let out = hookwarden()
        .args([
            "key",
            "encode",
            "--host",
            "acme.my.salesforce.com",
            "--client-id",
            "3MVG9abc",
            "--client-secret",
            "SecretValue-123456",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let key = text.trim();
    assert!(
        key.len() > 76,
        "long enough that base64 would have wrapped it"
    );
    hookwarden().args(["key", "check", key]).assert().success();
    hookwarden()
        .args(["key", "decode", key])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"client_secret\": \"****3456\""))
        .stdout(predicate::str::contains("SecretValue").not());
}

#[test]
fn key_encode_refuses_what_the_api_would_refuse() {
    hookwarden()
        .args([
            "key",
            "encode",
            "--host",
            "login.salesforce.com",
            "--client-id",
            "x",
            "--client-secret",
            "SecretValue-123456",
        ])
        .assert()
        .failure()
        .stdout(predicate::str::contains(
            "key_client_credentials_on_login_host",
        ))
        .stdout(predicate::str::contains("my.salesforce.com"));
    hookwarden()
        .args([
            "key",
            "encode",
            "--host",
            "acme.my.salesforce.com",
            "--client-id",
            "x",
        ])
        .assert()
        .failure();
    hookwarden()
        .args([
            "key",
            "encode",
            "--client-id",
            "x",
            "--client-secret",
            "SecretValue-123456",
            "--connector",
            "my-erp",
            "--field",
            "token_url=https://auth.example.com/token",
            "--field",
            "session_timeout_s=900",
        ])
        .assert()
        .success();
}

#[test]
fn key_check_explains_a_line_wrapped_key_and_rejects_garbage() {
    let key = String::from_utf8(
        hookwarden()
            .args([
                "key",
                "encode",
                "--host",
                "login.salesforce.com",
                "--client-id",
                "3MVG9abcdefghijklmnopqrstuvwxyz",
                "--refresh-token",
                "5Aep861-refresh-token-value-abcdefghij",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    let wrapped: String = key
        .trim()
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    hookwarden()
        .args(["key", "check", "-"])
        .write_stdin(wrapped)
        .assert()
        .success()
        .stdout(predicate::str::contains("line break"));
    hookwarden()
        .args(["key", "check", "%%%not-base64%%%"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("key_not_base64"))
        .stdout(predicate::str::contains("fix:"));
    // decode shows what it can of a rejected key, secrets masked.
    let no_client_id = "eyJob3N0IjoibG9naW4uc2FsZXNmb3JjZS5jb20iLCJyZWZyZXNoX3Rva2VuIjoiNUFlcDg2MXZ4eHhRNjN4cTcwbzl1c0R6In0";
    hookwarden()
        .args(["key", "decode", no_client_id])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("login.salesforce.com"))
        .stdout(predicate::str::contains("5Aep861vxxxQ63xq70o9usDz").not())
        .stderr(predicate::str::contains("key_missing_client_id"));
}

#[test]
fn accounts_create_prints_one_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let out = hookwarden()
        .args(["accounts", "create", "acme", "--database", &db])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("hwk_"), "{text}");
    let second = hookwarden()
        .args(["accounts", "create", "globex", "--database", &db])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_ne!(text, String::from_utf8(second).unwrap());
    hookwarden()
        .args(["accounts", "create", "x", "--database", "mysql://nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("sqlite://"));
}

/// `serve` on a fresh directory: creates the database (WAL) and a 0600 key file, answers
/// /healthz, and accepts the API key `accounts create` printed.
#[test]
fn serve_creates_its_database_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("served.db").display());
    let key = String::from_utf8(
        hookwarden()
            .args(["accounts", "create", "acme", "--database", &db])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    let key = key.trim().to_owned();

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args([
            "serve",
            "--database",
            &db,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("HOOKWARDEN_MASTER_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on") => {
                ready = true;
                break;
            }
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    assert!(ready, "serve did not say it was listening");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (health, list) = rt.block_on(async {
        let http = reqwest::Client::new();
        let health = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        let list = http
            .get(format!("http://127.0.0.1:{port}/api/callback/connectors"))
            .header("Authorization", format!("Basic {key}"))
            .send()
            .await
            .unwrap()
            .status();
        (health, list)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health, 200);
    assert_eq!(list, 200);
    let key_file = dir.path().join("served.db.key");
    assert!(key_file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        dir.path().join("served.db-wal").exists(),
        "SQLite runs in WAL mode"
    );
}

#[test]
fn serve_refuses_a_bad_configuration_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = \"nowhere\"\n").unwrap();
    hookwarden()
        .args(["serve", "--config", config.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("listen"));
    std::fs::write(&config, "allow_private_networks = [\"10.0.0.0/33\"]\n").unwrap();
    hookwarden()
        .args(["serve", "--config", config.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("allow_private_networks"));
    hookwarden()
        .args(["serve", "--config", "/nonexistent/hookwarden.toml"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
    hookwarden()
        .args([
            "serve",
            "--database",
            &format!("sqlite://{}", dir.path().join("x.db").display()),
        ])
        .env("HOOKWARDEN_MASTER_KEY", "too-short")
        .assert()
        .failure()
        .stderr(predicate::str::contains("HOOKWARDEN_MASTER_KEY"));
}

/// `hookwarden doctor` on a fresh directory, a database with its key, a database whose key
/// file is gone, secrets sealed under another master key, and a listen address in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_serve_would_trip_on_and_how_to_fix_it() {
    use hookwarden_store::{MasterKey, MasterKeySource, NewConnector, Store};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hw.db");
    let url = format!("sqlite://{}", db.display());
    let doctor = |extra: &[&str]| {
        let mut cmd = hookwarden();
        cmd.args(["doctor", "--database", &url, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("HOOKWARDEN_API_KEY");
        cmd
    };
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap())
    };

    let (ok, text) = run(&mut doctor(&[]));
    assert!(ok, "{text}");
    assert!(text.contains("does not exist yet"), "{text}");
    assert!(!db.exists(), "doctor created the database");

    // A database written under one master key, with a connector whose secrets it sealed.
    let key = MasterKey::generate();
    let store = Store::open(&url, MasterKeySource::Given(key.clone()))
        .await
        .unwrap();
    let (acme, _) = store.create_account("acme").await.unwrap();
    store
        .upsert_connector(NewConnector {
            account_id: acme.id.clone(),
            name: "salesforceOauth2".into(),
            url: "https://acme.my.salesforce.com/services/apexrest/OSS/callback".into(),
            events: vec!["PACKAGE_COMPLETE".into()],
            origins: vec!["OSS".into()],
            owner: None,
            settings: serde_json::json!({}),
            warnings: vec![],
            credentials: hookwarden_core::Credentials::from_storage(
                "salesforce",
                Some("client_credentials"),
                secrecy::SecretString::from(
                    r#"{"host":"acme.my.salesforce.com","client_id":"cid","client_secret":"s3cret-value"}"#,
                ),
            )
            .unwrap(),
        })
        .await
        .unwrap();
    store.close().await;

    let (ok, text) = run(doctor(&[]).env("HOOKWARDEN_MASTER_KEY", key.to_base64()));
    assert!(ok, "{text}");
    assert!(
        text.contains("opens the secrets of all 1 connector(s)"),
        "{text}"
    );
    assert!(text.contains("ok   retention    finished deliveries, their events and token calls are kept 30 days; the database file is"), "{text}");
    // Keeping everything works, and is said to cost disk.
    let (ok, text) = run(doctor(&[])
        .env("HOOKWARDEN_MASTER_KEY", key.to_base64())
        .env("HOOKWARDEN_HISTORY_RETENTION_DAYS", "0"));
    assert!(ok, "{text}");
    assert!(
        text.contains("warn retention    history_retention_days = 0"),
        "{text}"
    );
    assert!(text.contains("fix: set history_retention_days"), "{text}");

    // Without the key: no key file beside the database either.
    let (ok, text) = run(&mut doctor(&[]));
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL master key"), "{text}");
    assert!(text.contains("fix: restore the key file"), "{text}");

    // Another key opens the database but not the secrets, and names the connector.
    let (ok, text) =
        run(doctor(&[]).env("HOOKWARDEN_MASTER_KEY", MasterKey::generate().to_base64()));
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL secrets"), "{text}");
    assert!(text.contains("salesforceOauth2"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    // A listen address someone else holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, text) = run(hookwarden()
        .args(["doctor", "--database", &url, "--listen", &addr])
        .env("HOOKWARDEN_MASTER_KEY", key.to_base64())
        .env_remove("HOOKWARDEN_API_KEY"));
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL listen"), "{text}");
    assert!(text.contains("fix: stop what uses it"), "{text}");

    // PostgreSQL without a master key is refused before any connection is tried.
    let (ok, text) = run(hookwarden()
        .args([
            "doctor",
            "--database",
            "postgres://nobody@127.0.0.1:1/none",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("HOOKWARDEN_API_KEY"));
    assert!(!ok, "{text}");
    assert!(
        text.contains("PostgreSQL needs HOOKWARDEN_MASTER_KEY"),
        "{text}"
    );
}

/// `accounts list/keys/new-key/revoke-key` on the database a server would use.
#[test]
fn api_keys_are_added_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hw.db").display());
    let run = |args: &[&str]| {
        let out = hookwarden()
            .args(args)
            .args(["--database", &url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, first_key, err) = run(&["accounts", "create", "acme"]);
    assert!(ok, "{err}");
    let (ok, list, err) = run(&["accounts", "list"]);
    assert!(ok, "{err}");
    assert!(list.contains("acme") && list.contains("1 key"), "{list}");
    let account_id = list.split_whitespace().next().unwrap().to_owned();
    assert!(account_id.starts_with("acc_"), "{list}");

    // By name or by id.
    let (ok, second_key, err) = run(&["accounts", "new-key", "acme"]);
    assert!(ok, "{err}");
    assert!(second_key.trim().starts_with("hwk_"));
    assert_ne!(second_key, first_key);
    let (ok, keys, err) = run(&["accounts", "keys", &account_id]);
    assert!(ok, "{err}");
    assert_eq!(keys.lines().count(), 2, "{keys}");
    assert!(!keys.contains("hwk_"), "keys are listed by id only: {keys}");
    let first_id = keys.split_whitespace().next().unwrap().to_owned();

    let (ok, out, err) = run(&["accounts", "revoke-key", "acme", &first_id]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (_, keys, _) = run(&["accounts", "keys", "acme"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let last_id = keys.split_whitespace().next().unwrap().to_owned();

    // What cannot be done says why and what to do instead.
    let (ok, _, err) = run(&["accounts", "revoke-key", "acme", &last_id]);
    assert!(!ok);
    assert!(
        err.contains("only API key") && err.contains("new-key"),
        "{err}"
    );
    let (ok, _, err) = run(&["accounts", "revoke-key", "acme", &first_id]);
    assert!(!ok);
    assert!(err.contains("no API key with id"), "{err}");
    let (ok, _, err) = run(&["accounts", "keys", "nobody"]);
    assert!(!ok);
    assert!(err.contains("accounts list"), "{err}");
}

/// The README's first command, as a new user runs it (here as `demo`, its short form): the
/// demo account's key is printed, and an event sent with the CLI reaches the fake org.
#[test]
fn the_demo_delivers_an_event_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (port, org_port) = (free_port(), free_port());
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--demo-org-listen",
            &format!("127.0.0.1:{org_port}"),
        ])
        .current_dir(dir.path())
        .env_remove("HOOKWARDEN_DATABASE")
        .env_remove("HOOKWARDEN_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut api_key = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(key) = line.split("API key (account \"demo\"): ").nth(1) {
            api_key = Some(key.trim().to_owned());
            break;
        }
    }
    let Some(api_key) = api_key else {
        let _ = child.kill();
        panic!("the demo printed no API key");
    };
    let server = format!("http://127.0.0.1:{port}");
    let cli = |args: &[&str]| {
        hookwarden()
            .args(args)
            .env("HOOKWARDEN_SERVER", &server)
            .env("HOOKWARDEN_API_KEY", &api_key)
            .output()
            .unwrap()
    };
    let sent = cli(&[
        "events",
        "send",
        "--name",
        "PACKAGE_COMPLETE",
        "--package-id",
        "pkg-1",
    ]);
    let sent_text = String::from_utf8_lossy(&sent.stdout).to_string();
    let delivery = sent_text.split_whitespace().nth(1).map(str::to_owned);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delivered = false;
    while let Some(id) = &delivery {
        let out = cli(&["deliveries", "list", "--status", "delivered"]);
        if String::from_utf8_lossy(&out.stdout).contains(id.as_str()) {
            delivered = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("http://127.0.0.1:{org_port}/_fake/stats"))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(sent.status.success(), "{sent_text}");
    assert!(
        delivered,
        "the demo's delivery of {delivery:?} never became delivered"
    );
    assert_eq!(stats["callbacks_received"], 1, "{stats}");
    assert!(dir.path().join("hookwarden.db").exists());
}

/// A server whose stdout nobody reads any more (`hookwarden fake-org | head`, a supervisor that
/// closed the pipe) keeps serving: its banner goes to a closed pipe without taking it down.
#[test]
fn a_closed_stdout_does_not_stop_a_server() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args(["fake-org", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Close the reading end before the banner is written.
    drop(child.stdout.take());
    let stats = format!("http://127.0.0.1:{port}/_fake/stats");
    let up = || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            reqwest::get(&stats)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up() {
        assert!(
            Instant::now() < deadline,
            "the fake org never answered on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The banner is written right after the listener is bound: give it time to hit the pipe.
    std::thread::sleep(Duration::from_millis(500));
    let exited = child.try_wait().unwrap();
    let still_up = up();
    let _ = child.kill();
    let _ = child.wait();
    assert!(exited.is_none(), "the server exited: {exited:?}");
    assert!(still_up, "the server stopped answering");
}
