//! The refresh-token keep-alive with a driven clock, against a real (fake) org: one refresh
//! after `keepalive_days` without a grant and none before, recorded as `keep_alive`; only
//! active refresh-token connectors; and on PostgreSQL, two nodes sharing the database make one
//! refresh between them. SQLite and (when configured) PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_server::delivery::OffsetClock;
use hookwarden_server::keepalive::{keep_alive_pass, KeepAliveReport};
use hookwarden_server::RunningServer;
use reqwest::Method;
use serde_json::{json, Value};

const DAY: Duration = Duration::from_secs(86_400);

async fn start(db: &str, clock: Arc<OffsetClock>) -> (RunningServer, String) {
    let server = hookwarden_server::spawn_with_clock(settings(db, true), None, clock)
        .await
        .unwrap();
    let (_, key) = server.state.store.create_account("acme").await.unwrap();
    (server, key)
}

fn rt_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "login.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
        "introspection_url": org.introspect_url(),
    }))
}

fn cc_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
    }))
}

async fn call(base: &str, key: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .header("Authorization", format!("Basic {key}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let (status, answer) = json(req.send().await.unwrap()).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

/// Register and make one grant now (`…/token`).
async fn register(base: &str, key: &str, name: &str, org: &RunningFakeOrg, connector_key: String) {
    let path = format!("/api/callback/connectors/{name}");
    call(
        base,
        key,
        Method::POST,
        &path,
        Some(
            json!({"preset": "salesforce", "url": org.callback_url(), "key": connector_key,
                    "events": ["PACKAGE_COMPLETE"]}),
        ),
    )
    .await;
    call(base, key, Method::POST, &format!("{path}/token"), None).await;
}

async fn history_kinds(base: &str, key: &str, name: &str) -> Vec<(String, String)> {
    let history = call(
        base,
        key,
        Method::GET,
        &format!("/api/callback/connectors/{name}/history"),
        None,
    )
    .await;
    history["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_idle_refresh_token_is_refreshed_once_after_keepalive_days_and_not_before() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let clock = Arc::new(OffsetClock::new());
        let (server, key) = start(&db, clock.clone()).await;
        let base = server.base_url();
        register(&base, &key, "idle", &org, rt_key(&org)).await;
        register(&base, &key, "clientCredentials", &org, cc_key(&org)).await;
        register(&base, &key, "revoked", &org, rt_key(&org)).await;
        call(
            &base,
            &key,
            Method::POST,
            "/api/callback/connectors/revoked/revoke",
            None,
        )
        .await;
        let refreshes = || org.stats().grants_ok("refresh_token");
        assert_eq!(refreshes(), 2, "idle's and revoked's first grants");
        let cc_grants = org.stats().grants_ok("client_credentials");

        // Six days without a grant: nothing to do yet.
        clock.advance(6 * DAY);
        assert_eq!(
            keep_alive_pass(&server.state).await.unwrap(),
            KeepAliveReport::default()
        );
        assert_eq!(refreshes(), 2, "{db}");

        // Past seven: one refresh, in the history as a keep-alive.
        clock.advance(2 * DAY);
        let report = keep_alive_pass(&server.state).await.unwrap();
        assert_eq!(report.refreshed, 1, "{report:?} on {db}");
        assert_eq!(report.failed, 0, "{report:?}");
        assert_eq!(refreshes(), 3, "{db}");
        let kinds = history_kinds(&base, &key, "idle").await;
        // The newest call to the token endpoint (an introspection follows a grant).
        let newest = kinds.iter().find(|(k, _)| k != "introspect").unwrap();
        assert_eq!(
            newest,
            &("keep_alive".to_owned(), "ok".to_owned()),
            "{kinds:?}"
        );
        assert_eq!(kinds.iter().filter(|(k, _)| k == "keep_alive").count(), 1);
        // Neither the client-credentials connector nor the revoked one was touched.
        assert_eq!(org.stats().grants_ok("client_credentials"), cc_grants);
        assert!(history_kinds(&base, &key, "revoked")
            .await
            .iter()
            .all(|(k, _)| k != "keep_alive"));

        // Used now: not again at once, nor six days on; again past seven.
        assert_eq!(keep_alive_pass(&server.state).await.unwrap().refreshed, 0);
        clock.advance(6 * DAY);
        assert_eq!(keep_alive_pass(&server.state).await.unwrap().refreshed, 0);
        assert_eq!(refreshes(), 3);
        clock.advance(2 * DAY);
        assert_eq!(keep_alive_pass(&server.state).await.unwrap().refreshed, 1);
        assert_eq!(refreshes(), 4);

        // A grant for a delivery counts as use: no keep-alive after it.
        clock.advance(8 * DAY);
        call(
            &base,
            &key,
            Method::POST,
            "/api/callback/connectors/idle/token",
            None,
        )
        .await;
        let before = refreshes();
        clock.advance(DAY);
        assert_eq!(keep_alive_pass(&server.state).await.unwrap().refreshed, 0);
        assert_eq!(refreshes(), before);
        server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn keepalive_days_0_turns_it_off() {
    let (urls, _dir) = each_database().await;
    let db = &urls[0];
    let org = FakeOrg::builder().start().await.unwrap();
    let clock = Arc::new(OffsetClock::new());
    let mut s = settings(db, true);
    s.governance.keepalive_days = 0;
    let server = hookwarden_server::spawn_with_clock(s, None, clock.clone())
        .await
        .unwrap();
    let (_, key) = server.state.store.create_account("acme").await.unwrap();
    register(&server.base_url(), &key, "idle", &org, rt_key(&org)).await;
    clock.advance(400 * DAY);
    assert_eq!(
        keep_alive_pass(&server.state).await.unwrap(),
        KeepAliveReport::default()
    );
    assert_eq!(org.stats().grants_ok("refresh_token"), 1);
    server.shutdown().await.unwrap();
}

/// Two nodes on one PostgreSQL database, each with its own token engine, pass at the same
/// time: one refresh between them (the grant lease, and the re-read under it).
#[tokio::test]
async fn two_nodes_make_one_keep_alive_refresh() {
    let (urls, _dir) = each_database().await;
    let Some(db) = urls.iter().find(|u| u.starts_with("postgres")) else {
        return;
    };
    let org = FakeOrg::builder().start().await.unwrap();
    let clock = Arc::new(OffsetClock::new());
    let mut s = settings(db, true);
    let (a, key) = start(db, clock.clone()).await;
    s.master_key = a.state.settings.master_key.clone();
    let b = hookwarden_server::spawn_with_clock(s, None, clock.clone())
        .await
        .unwrap();
    for i in 0..5 {
        register(&a.base_url(), &key, &format!("idle{i}"), &org, rt_key(&org)).await;
    }
    assert_eq!(org.stats().grants_ok("refresh_token"), 5);
    clock.advance(8 * DAY);
    let (ra, rb) = tokio::join!(keep_alive_pass(&a.state), keep_alive_pass(&b.state));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.refreshed + rb.refreshed, 5, "{ra:?} {rb:?}");
    assert_eq!(ra.failed + rb.failed, 0, "{ra:?} {rb:?}");
    assert_eq!(
        org.stats().grants_ok("refresh_token"),
        10,
        "one refresh per connector: {ra:?} {rb:?}"
    );
    for i in 0..5 {
        let kinds = history_kinds(&a.base_url(), &key, &format!("idle{i}")).await;
        assert_eq!(
            kinds.iter().filter(|(k, _)| k == "keep_alive").count(),
            1,
            "{kinds:?}"
        );
    }
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
