//! Crash safety: the server runs as a child process; 5,000 events are posted, the server is
//! killed with SIGKILL mid-delivery and started again on the same database. Every event is
//! delivered, and any duplicate carries the same webhook-id. The fake org holds its Apex calls
//! unanswered after the first 300 callbacks, so the kill lands mid-delivery however fast or
//! slow the machine is. And a notification: the server is killed the moment a connector goes
//! `needs_reauth`; after the restart its notification still arrives, under one webhook-id.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::json;

const EVENTS: usize = 5000;
/// Callbacks the fake org answers before it holds the rest unanswered.
const HELD_AFTER: u64 = 300;

fn hookwarden() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookwarden"));
    cmd.env(
        "HOOKWARDEN_MASTER_KEY",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .env("HOOKWARDEN_ALLOW_INSECURE_HTTP", "true")
    .env("HOOKWARDEN_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8")
    .env("RUST_LOG", "warn");
    cmd
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(database: &str, port: u16) -> Server {
    let child = hookwarden()
        .args([
            "serve",
            "--database",
            database,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let client = reqwest::Client::new();
    let start = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_delivery_loses_nothing_it_acknowledged() {
    // Callbacks after the 300th wait unanswered: deliveries are in flight when the kill comes.
    let org = FakeOrg::builder()
        .apex_hold_after(HELD_AFTER)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("crash.db").display());
    let created = hookwarden()
        .args(["accounts", "create", "crash", "--database", &database])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let api_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut server = serve(&database, port).await;
    let key = base64::engine::general_purpose::STANDARD.encode(
        json!({"host": "crash.my.salesforce.com", "client_id": DEFAULT_CLIENT_ID,
               "client_secret": DEFAULT_CLIENT_SECRET, "token_url": org.token_url(),
               "revocation_url": org.revoke_url(), "introspection_url": org.introspect_url()})
        .to_string(),
    );
    let r = http
        .post(format!("{base}/api/callback/connectors/salesforceOauth2"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(&json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for batch in 0..EVENTS / 1000 {
        let events: Vec<_> = (0..1000)
            .map(|i| json!({"name": "PACKAGE_COMPLETE", "packageId": format!("p-{batch}-{i}"), "origin": "OSS"}))
            .collect();
        let r = http
            .post(format!("{base}/api/events/batch"))
            .header("Authorization", format!("Basic {api_key}"))
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }

    let start = Instant::now();
    while org.stats().callbacks_received < HELD_AFTER {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no delivery started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().unwrap(); // SIGKILL: no graceful anything
    server.0.wait().unwrap();
    let at_kill = org.stats().callbacks_received;
    assert!(
        at_kill < EVENTS as u64,
        "the kill came too late to prove anything"
    );

    org.update_config(|c| c.apex_hold_after = None).unwrap();
    let _server = serve(&database, port).await;
    let start = Instant::now();
    while org.stats().unique_webhook_ids < EVENTS as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of {EVENTS} delivered after the restart",
            org.stats().unique_webhook_ids
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for cb in org.callbacks() {
        ids.entry(cb.body["packageId"].as_str().unwrap().to_owned())
            .or_default()
            .insert(cb.webhook_id.clone().unwrap());
    }
    assert_eq!(ids.len(), EVENTS, "every event delivered");
    assert!(
        ids.values().all(|set| set.len() == 1),
        "a duplicate carries the same webhook-id"
    );
}

/// A request to the running server as `api_key`.
fn api(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    http.request(method, format!("{base}{path}"))
        .header("Authorization", format!("Basic {api_key}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_right_after_a_connector_breaks_still_tells_the_owner() {
    let org = FakeOrg::builder().start().await.unwrap();
    // The endpoint is down (503) until the server has been killed and started again.
    let endpoint = common::Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("notify.db").display());
    let created = hookwarden()
        .args(["accounts", "create", "owner", "--database", &database])
        .output()
        .unwrap();
    assert!(created.status.success());
    let api_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = serve(&database, port).await;

    let r = api(
        &http,
        &base,
        &api_key,
        reqwest::Method::POST,
        "/api/notifications",
    )
    .json(&json!({"url": endpoint.url, "types": ["connector.needs_reauth"]}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let key = base64::engine::general_purpose::STANDARD.encode(
        json!({"host": "owner.my.salesforce.com", "client_id": DEFAULT_CLIENT_ID,
               "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
               "token_url": org.token_url(), "revocation_url": org.revoke_url(),
               "introspection_url": org.introspect_url()})
        .to_string(),
    );
    let r = api(
        &http,
        &base,
        &api_key,
        reqwest::Method::POST,
        "/api/callback/connectors/salesforceOauth2",
    )
    .json(&json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // The org revokes the refresh token; the next delivery's grant fails for good.
    org.revoke_all_tokens();
    let r = api(&http, &base, &api_key, reqwest::Method::POST, "/api/events")
        .json(&json!({"name": "PACKAGE_COMPLETE", "packageId": "p-1", "origin": "OSS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let start = Instant::now();
    loop {
        let c: serde_json::Value = api(
            &http,
            &base,
            &api_key,
            reqwest::Method::GET,
            "/api/callback/connectors/salesforceOauth2",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        if c["status"] == "needs_reauth" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{c}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.0.kill().unwrap(); // SIGKILL the moment it is seen
    server.0.wait().unwrap();

    endpoint.answer(200);
    let _server = serve(&database, port).await;
    let start = Instant::now();
    while !endpoint.got().iter().any(|g| g.answered == 200) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the notification never arrived: {:?}",
            endpoint.got()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything still in flight lands; then: one notification, however many tries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = endpoint.got();
    let ids: HashSet<Option<String>> = got.iter().map(|g| g.webhook_id.clone()).collect();
    assert_eq!(ids.len(), 1, "one webhook-id: {got:?}");
    assert!(ids.iter().all(Option::is_some));
    assert_eq!(
        got.iter().filter(|g| g.answered == 200).count(),
        1,
        "{got:?}"
    );
    assert!(got[0].body.contains("connector.needs_reauth"), "{got:?}");
}
