//! `hookwarden serve` and `hookwarden doctor`: a fresh database created and served, a bad
//! configuration refused clearly, and what doctor says serve would trip on.

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

use crate::hookwarden;

/// `serve` on a fresh directory: creates the database (WAL) and a 0600 key file, answers
/// /healthz, accepts the API key `accounts create` printed, and serves the OpenAPI document
/// `hookwarden openapi` prints.
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
    let (health, list, served_doc) = rt.block_on(async {
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
        let doc: serde_json::Value = http
            .get(format!("http://127.0.0.1:{port}/api/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (health, list, doc)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health, 200);
    assert_eq!(list, 200);
    // `hookwarden openapi` prints the document the server serves (CI validates that one).
    let printed = hookwarden().arg("openapi").assert().success();
    let printed: serde_json::Value = serde_json::from_slice(&printed.get_output().stdout).unwrap();
    assert_eq!(printed, served_doc);
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

/// `serve --role api|worker` (or HOOKWARDEN_ROLE) on SQLite exits at once with what, why and
/// the fix, before it creates the database; the doctor says the same, and shows the role.
#[test]
fn serve_refuses_a_role_other_than_all_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.db");
    let db = format!("sqlite://{}", file.display());
    let serve = ["serve", "--database", &db, "--listen", "127.0.0.1:0"];
    let refused = hookwarden()
        .args(serve)
        .args(["--role", "worker"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let refused = String::from_utf8(refused).unwrap();
    assert!(
        refused.contains("error: role worker needs PostgreSQL, and the database is SQLite")
            && refused.contains("run this node with role all")
            && refused.contains("postgres://"),
        "{refused}"
    );
    hookwarden()
        .args(serve)
        .env("HOOKWARDEN_ROLE", "api")
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("role api needs PostgreSQL"));
    assert!(!file.exists(), "a refused serve created the database");
    // Not a role at all: the flag names the three, the variable is refused by name.
    hookwarden()
        .args(serve)
        .args(["--role", "both"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("api, worker, all"));
    hookwarden()
        .args(serve)
        .env("HOOKWARDEN_ROLE", "both")
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("role = \"both\""));

    let doctor = |role: Option<&str>| {
        let mut cmd = hookwarden();
        cmd.args(["doctor", "--database", &db, "--listen", "127.0.0.1:0"])
            .env_remove("HOOKWARDEN_API_KEY");
        if let Some(role) = role {
            cmd.args(["--role", role]);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, text) = doctor(None);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ok   role         all: this node runs the API and the delivery workers"),
        "{text}"
    );
    let (code, text) = doctor(Some("worker"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL role         role worker needs PostgreSQL")
            && text.contains("fix: run this node with role all"),
        "{text}"
    );
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
            refresh_token_idle_days: None,
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
    assert!(
        text.contains(&format!(
            "ok   key ring     all 2 sealed value(s) are under the first master key (0x{:02x})",
            key.id()
        )),
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

    // Another key does not open the database, and names the key it needs.
    let other = MasterKey::generate();
    let (ok, text) = run(doctor(&[]).env("HOOKWARDEN_MASTER_KEY", other.to_base64()));
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "FAIL master key   master key: sealed values in this database were sealed with master key id 0x{:02x}",
            key.id()
        )),
        "{text}"
    );
    assert!(text.contains("fix: run with the key(s)"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    // A ring with a new key first: the secrets open, and are said to be under the old one.
    let ring = format!("{},{}", other.to_base64(), key.to_base64());
    let (ok, text) = run(doctor(&[]).env("HOOKWARDEN_MASTER_KEYS", &ring));
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "warn key ring     2 sealed value(s) are under a key other than the first (0x{:02x}), or from before key ids: 2 in connectors; 0 under the first",
            other.id()
        )),
        "{text}"
    );
    assert!(
        text.contains("fix: run `hookwarden master-key rotate`"),
        "{text}"
    );

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
