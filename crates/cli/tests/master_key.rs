//! `hookwarden master-key rotate` beside a running server: the server holds the ring [new, old]
//! and keeps delivering to a fake org while the command re-seals every secret under the new
//! key; no delivery fails, and afterwards the new key alone opens everything. SQLite and
//! PostgreSQL.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use assert_cmd::Command;
use common::spawn_server_with_keys;
use hookwarden_core::{AccountId, DeliveryStatus};
use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_store::{testing, DeliveryFilter, MasterKey, MasterKeyRing, MasterKeySource, Store};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const CONNECTORS: usize = 8;

fn ring(keys: &[&MasterKey]) -> MasterKeySource {
    MasterKeySource::Ring(MasterKeyRing::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap())
}

fn keys_env(keys: &[&MasterKey]) -> String {
    keys.iter()
        .map(|k| k.to_base64())
        .collect::<Vec<_>>()
        .join(",")
}

fn rotate(database: &str, keys: &[&MasterKey], extra: &[&str]) -> (bool, String, String) {
    let out = Command::cargo_bin("hookwarden")
        .unwrap()
        .args(["master-key", "rotate", "--database", database])
        .args(extra)
        .env("HOOKWARDEN_MASTER_KEYS", keys_env(keys))
        .env_remove("HOOKWARDEN_MASTER_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn count(store: &Store, account: &AccountId, status: DeliveryStatus) -> usize {
    store
        .list_deliveries(&DeliveryFilter {
            account_id: account.clone(),
            connector_name: None,
            status: Some(status),
            package_id: None,
            since_ms: None,
            until_ms: None,
            before_seq: None,
            limit: 10_000,
        })
        .await
        .unwrap()
        .len()
}

/// Until `want` deliveries are delivered (none may fail on the way).
async fn wait_delivered(store: &Store, account: &AccountId, want: usize) {
    let start = Instant::now();
    loop {
        assert_eq!(count(store, account, DeliveryStatus::Failed).await, 0);
        let delivered = count(store, account, DeliveryStatus::Delivered).await;
        if delivered >= want {
            assert_eq!(delivered, want);
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{delivered} of {want} delivered after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_event(http: &reqwest::Client, base: &str, api_key: &str, n: usize) {
    let resp = http
        .post(format!("{base}/api/events"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(
            &json!({"name": "PACKAGE_COMPLETE", "packageId": format!("pkg-{n}"), "origin": "OSS"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_leaves_every_secret_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        rotation_while_delivering(&url).await;
    }
}

async fn rotation_while_delivering(url: &str) {
    let org = FakeOrg::builder().start().await.unwrap();
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let http = reqwest::Client::new();

    // Under the old key alone: connectors, their tokens (a first delivery each) and a
    // rotated signing secret (so a previous one is sealed too).
    let server = spawn_server_with_keys(url, ring(&[&old])).await;
    let store = server.state.store.clone();
    let (acme, api_key) = store.create_account("acme").await.unwrap();
    let base = server.base_url();
    let key = hookwarden_core::key::encode(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
    }));
    for i in 0..CONNECTORS {
        let resp = http
            .post(format!("{base}/api/callback/connectors/sf{i}"))
            .header("Authorization", format!("Basic {api_key}"))
            .json(&json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key, "origins": ["OSS"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    store.rotate_signing_secret(&acme.id, "sf0").await.unwrap();
    post_event(&http, &base, &api_key, 0).await;
    wait_delivered(&store, &acme.id, CONNECTORS).await;
    server.shutdown().await.unwrap();

    // The ring [new, old]: events keep flowing while the command re-seals. Short-lived tokens
    // make the server write new ones meanwhile.
    org.set_session_timeout_s(2);
    let server = spawn_server_with_keys(url, ring(&[&new, &old])).await;
    let store = server.state.store.clone();
    let base = server.base_url();
    let posting = Arc::new(AtomicBool::new(true));
    let posted = Arc::new(AtomicUsize::new(1));
    let producer = {
        let (posting, posted, http, base, api_key) = (
            posting.clone(),
            posted.clone(),
            http.clone(),
            base.clone(),
            api_key.clone(),
        );
        tokio::spawn(async move {
            while posting.load(Ordering::SeqCst) {
                let n = posted.fetch_add(1, Ordering::SeqCst);
                post_event(&http, &base, &api_key, n).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = url.to_owned();
    let (n, o) = (new.clone(), old.clone());
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || rotate(&db, &[&n, &o], &["--json"]))
            .await
            .unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let tables = report["tables"].as_array().unwrap();
    let connectors = &tables[0];
    assert_eq!(connectors["table"], "connectors");
    // Each connector's key and signing secret, and sf0's previous signing secret, were under
    // the old key (the default callback has none).
    assert_eq!(
        connectors["resealed"].as_u64().unwrap() + connectors["already_first"].as_u64().unwrap(),
        2 * CONNECTORS as u64 + 1,
        "{report}"
    );
    assert!(connectors["resealed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(tables[1]["table"], "token_state");
    assert!(report["unopenable"].as_array().unwrap().is_empty());
    // A little more traffic after the rotation, then every event is delivered, none failed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    posting.store(false, Ordering::SeqCst);
    producer.await.unwrap();
    // Event 0 before, then 1.. from the producer: `posted` events in all.
    let events = posted.load(Ordering::SeqCst);
    wait_delivered(&store, &acme.id, events * CONNECTORS).await;
    server.shutdown().await.unwrap();

    // Nothing is left under the old key: a dry run with the new key alone finds all under it.
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let (db, n) = (url.to_owned(), new.clone());
        move || rotate(&db, &[&n], &["--dry-run"])
    })
    .await
    .unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("0 value(s) would be re-sealed"), "{stdout}");

    // The new key alone opens every connector, token and signing secret, and delivers.
    let alone = Store::open(url, ring(&[&new])).await.unwrap();
    for c in alone.list_connectors(&acme.id).await.unwrap() {
        assert!(c.signing_secret.expose_secret().starts_with("whsec_"));
        if let Some(state) = alone.get_token_state(&c.id).await.unwrap() {
            assert!(state.access_token.is_some(), "{}", c.name);
        }
    }
    let sf0 = alone.get_connector(&acme.id, "sf0").await.unwrap().unwrap();
    assert!(sf0.previous_signing_secret.is_some());
    alone.close().await;
    let server = spawn_server_with_keys(url, ring(&[&new])).await;
    let store = server.state.store.clone();
    let before = count(&store, &acme.id, DeliveryStatus::Delivered).await;
    post_event(&http, &server.base_url(), &api_key, 999_999).await;
    wait_delivered(&store, &acme.id, before + CONNECTORS).await;
    server.shutdown().await.unwrap();

    // And the old key alone no longer opens the database: serve stops, naming the key it needs.
    let (db, old64, new_id) = (url.to_owned(), old.to_base64(), new.id());
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("hookwarden")
            .unwrap()
            .args(["serve", "--database", &db, "--listen", "127.0.0.1:0"])
            .env("HOOKWARDEN_MASTER_KEY", old64)
            .env_remove("HOOKWARDEN_MASTER_KEYS")
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "sealed values in this database were sealed with master key id 0x{new_id:02x}; the configured keys have ids 0x{:02x}; set HOOKWARDEN_MASTER_KEYS to include it",
            old.id()
        )),
        "{stderr}"
    );
}

/// A value no key of the ring opens: listed, left alone, and the command exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_no_key_opens_fails_the_rotation_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hw.db").display());
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let store = Store::open(&url, ring(&[&old])).await.unwrap();
    let (acme, _) = store.create_account("acme").await.unwrap();
    let (c, _) = store
        .upsert_connector(hookwarden_store::NewConnector {
            account_id: acme.id.clone(),
            name: "sf".into(),
            url: "https://acme.my.salesforce.com/services/apexrest/OSS/callback".into(),
            events: vec!["PACKAGE_COMPLETE".into()],
            origins: vec!["OSS".into()],
            owner: None,
            refresh_token_idle_days: None,
            settings: json!({}),
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
    // Its signing secret damaged (the check at open samples its key, which opens).
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut v: Vec<u8> = sqlx::query_scalar("SELECT signing_sealed FROM connectors")
        .fetch_one(&pool)
        .await
        .unwrap();
    let last = v.len() - 1;
    v[last] ^= 0xff;
    sqlx::query("UPDATE connectors SET signing_sealed = $1")
        .bind(&v)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let old_id = old.id();
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || rotate(&url, &[&new, &old], &[]))
            .await
            .unwrap();
    assert!(!ok, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("TABLE")
            && lines[0].contains("RE-SEALED")
            && lines[0].contains("UNOPENABLE"),
        "{stdout}"
    );
    let connectors: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(connectors, ["connectors", "1", "0", "1"], "{stdout}");
    assert!(
        stdout.contains(&format!(
            "unopenable: connectors.signing_sealed of row {} (sealed with master key id 0x{:02x})",
            c.id, old_id
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 sealed value(s) open with no key of the ring"),
        "{stderr}"
    );
}
