//! Node roles (DESIGN.md "Scale"): an `api` node and a `worker` node on one PostgreSQL
//! database split the work — the api node ingests and delivers nothing by itself, the worker
//! delivers what it ingested and answers only `/healthz` and `/metrics` (`503 wrong_role`
//! elsewhere) — and a role other than `all` is refused on SQLite.

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_server::{RunningServer, Settings};
use hookwarden_store::{MasterKey, MasterKeySource};
use reqwest::Method;
use serde_json::{json, Value};

const CONNECTOR: &str = "/api/callback/connectors/orders";
const METRICS_TOKEN: &str = "metrics-token-for-the-roles-test";

fn node(database: &str, role: &str, master_key: &MasterKey) -> Settings {
    let mut s = settings(database, true);
    s.role = hookwarden_server::Role::parse(role).unwrap();
    s.master_key = MasterKeySource::Given(master_key.clone());
    s
}

fn cc_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
    }))
}

async fn call(
    server: &RunningServer,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base_url()))
        .header("Authorization", format!("Basic {key}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    json(req.send().await.unwrap()).await
}

async fn post_event(api: &RunningServer, key: &str, package: &str) {
    let (status, answer) = call(
        api,
        key,
        Method::POST,
        "/api/events",
        Some(json!({"name": "PACKAGE_COMPLETE", "packageId": package, "origin": "OSS"})),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
}

/// The deliveries' statuses, as the api node's API lists them.
async fn statuses(api: &RunningServer, key: &str) -> Vec<String> {
    let (status, list) = call(api, key, Method::GET, "/api/deliveries", None).await;
    assert_eq!(status, 200, "{list}");
    list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn healthz(server: &RunningServer) -> (u16, Value) {
    json(
        reqwest::get(format!("{}/healthz", server.base_url()))
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn an_api_node_ingests_and_a_worker_node_delivers() {
    let Some(db) = hookwarden_store::testing::fresh_postgres_url().await else {
        return;
    };
    let org = FakeOrg::builder().start().await.unwrap();
    let master_key = MasterKey::generate();
    let api = hookwarden_server::spawn(node(&db, "api", &master_key), None)
        .await
        .unwrap();
    let (_, key) = api.state.store.create_account("acme").await.unwrap();
    let (status, registered) = call(
        &api,
        &key,
        Method::POST,
        CONNECTOR,
        Some(json!({"preset": "salesforce", "url": org.callback_url(),
                    "key": cc_key(&org), "events": ["PACKAGE_COMPLETE"]})),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let (status, health) = healthz(&api).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["role"], "api", "{health}");
    assert_eq!(health["database"], "postgres", "{health}");

    // No worker runs: the api node commits the event and delivers nothing by itself.
    post_event(&api, &key, "p1").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(statuses(&api, &key).await, ["pending"]);
    assert!(org.callbacks().is_empty(), "the api node delivered");
    assert_eq!(org.stats().grants_total("client_credentials"), 0);

    // A worker node on the same database delivers it, and what is posted next.
    let mut worker_settings = node(&db, "worker", &master_key);
    worker_settings.metrics.token = Some(METRICS_TOKEN.to_owned().into());
    let worker = hookwarden_server::spawn(worker_settings, None)
        .await
        .unwrap();
    post_event(&api, &key, "p2").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while statuses(&api, &key).await != ["delivered", "delivered"] {
        assert!(
            Instant::now() < deadline,
            "not delivered by the worker node within 15 s: {:?}",
            statuses(&api, &key).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut packages: Vec<String> = org
        .callbacks()
        .iter()
        .map(|c| c.body["packageId"].as_str().unwrap_or_default().to_owned())
        .collect();
    packages.sort();
    assert_eq!(packages, ["p1", "p2"], "{:?}", org.callbacks());

    // The worker answers what a load balancer and Prometheus ask, and nothing else.
    let (status, health) = healthz(&worker).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["role"], "worker", "{health}");
    assert_eq!(health["database"], "postgres", "{health}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
    for (method, path) in [
        (Method::POST, "/api/events"),
        (Method::GET, "/api/callback/connectors"),
        (Method::GET, "/api/openapi.json"),
    ] {
        let (status, answer) = call(&worker, &key, method, path, None).await;
        assert_error(status, &answer, 503, "wrong_role");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("role worker"), "{path}: {answer}");
        let fix = answer["fix"].as_str().unwrap();
        assert!(fix.contains("api or all"), "{path}: {answer}");
    }
    // A browser on the console gets a page saying the same, not JSON.
    for path in ["/console", "/console/connectors"] {
        let page = reqwest::Client::new()
            .get(format!("{}{path}", worker.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 503, "{path}");
        let kind = page.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("The console is not on this node")
                && html.contains("role worker")
                && html.contains("api or all"),
            "{path}: {html}"
        );
    }
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", worker.base_url()))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("hookwarden_deliveries_total"), "{text}");

    worker.shutdown().await.unwrap();
    api.shutdown().await.unwrap();
}

#[tokio::test]
async fn api_and_worker_roles_are_refused_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("one.db").display());
    let key = MasterKey::generate();
    for role in ["api", "worker"] {
        let e = match hookwarden_server::spawn(node(&db, role, &key), None).await {
            Ok(_) => panic!("role {role} started on SQLite"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(&format!("role {role} needs PostgreSQL")) && e.contains("role all"),
            "{e}"
        );
        assert!(
            !dir.path().join("one.db").exists(),
            "refused before the database is created"
        );
    }
    let all = hookwarden_server::spawn(node(&db, "all", &key), None)
        .await
        .unwrap();
    let (status, health) = healthz(&all).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["role"], "all", "{health}");
    assert_eq!(health["database"], "sqlite", "{health}");
    all.shutdown().await.unwrap();
}
