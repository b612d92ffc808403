//! Many deliveries and connectors at once: rotation under load, a hanging endpoint beside a
//! healthy one, a failing connector's breaker (and the history's pages), two nodes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hookwarden_server::delivery::EngineOptions;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;
use crate::SF;

/// Sessions run out again and again while a thousand events go out, and every refresh rotates
/// the refresh token: each event is delivered once, and no refresh token is used twice. The
/// org's clock (and the engine's) moves past the session between batches; nothing waits for
/// a session to run out.
#[tokio::test]
async fn a_thousand_events_through_expiring_sessions_and_rotating_refresh_tokens() {
    // Longer than any run of this test, so a session ends only when the clock is moved on.
    const SESSION: Duration = Duration::from_secs(3600);
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.org.set_rotate_refresh_tokens(true);
    h.org.set_session_timeout_s(SESSION.as_secs());
    h.register(
        SF,
        &h.org.callback_url(),
        &["PACKAGE_COMPLETE"],
        h.rt_key(),
        json!({}),
    )
    .await;
    // Ten batches, ten sessions: each batch's deliveries go out together, meet the ended
    // session's 401 and share one refresh (the token manager still believes the key's
    // two-hour session, so the org's answer is what ends it).
    for batch in 0..10 {
        let events: Vec<Value> = (0..100)
            .map(|i| event("PACKAGE_COMPLETE", &format!("pkg-{batch}-{i}")))
            .collect();
        let (s, _) = json_of(
            h.req(Method::POST, "/api/events/batch")
                .json(&json!({ "events": events }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 202);
        h.engine.run_until_idle().await.unwrap();
        let past_the_session = SESSION + Duration::from_secs(1);
        h.org.advance_clock_s(past_the_session.as_secs() as i64);
        h.clock.advance(past_the_session);
    }
    let stats = h.org.stats();
    assert!(stats.callbacks_received >= 1000, "{stats:?}");
    assert_eq!(stats.reuse_detections, 0);
    assert!(
        stats.grants_ok("refresh_token") >= 2,
        "sessions expired and were refreshed: {stats:?}"
    );
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for cb in h.org.callbacks() {
        ids.entry(cb.body["packageId"].as_str().unwrap().to_owned())
            .or_default()
            .insert(cb.webhook_id.clone().unwrap());
    }
    assert_eq!(ids.len(), 1000, "every event delivered");
    assert!(
        ids.values().all(|s| s.len() == 1),
        "one webhook-id per event"
    );
    assert_eq!(h.list("status=delivered&limit=1000").await.len(), 1000);
}

/// Another connector's deliveries all go out while a hanging endpoint holds every slot of its
/// own connector (and no more). The hanging requests end when the test releases them.
#[tokio::test]
async fn a_hanging_endpoint_does_not_slow_another_connector() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(&sqlite(&dir), |o| {
        // Longer than any run of this test, so no hanging request ends on its own (a timeout
        // would free its slot and make the test depend on the machine's speed).
        o.lease = Duration::from_secs(600);
        o.request_timeout = Duration::from_secs(240);
        o.shutdown_grace = Duration::from_millis(100);
    })
    .await;
    h.register(
        "hanging",
        &h.receiver.url("/hang"),
        &["SLOW_EVENT"],
        h.cc_key(),
        json!({}),
    )
    .await;
    h.register(
        "healthy",
        &h.receiver.url("/ok"),
        &["FAST_EVENT"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let handle = h.engine.clone().spawn().await.unwrap();
    let receiver = &h.receiver;
    let hangs = || receiver.hangs.load(std::sync::atomic::Ordering::SeqCst);
    // Generous: this bounds a failure, it is not what the test measures.
    let deadline = Instant::now() + Duration::from_secs(60);

    let events: Vec<Value> = (0..300)
        .map(|i| event("SLOW_EVENT", &format!("s{i}")))
        .collect();
    let (s, _) = json_of(
        h.req(Method::POST, "/api/events/batch")
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 202);
    while hangs() < 8 {
        assert!(
            Instant::now() < deadline,
            "{} requests hang, not 8",
            hangs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    for i in 0..25 {
        h.post_event(event("FAST_EVENT", &format!("f{i}"))).await;
    }
    while h
        .list("connector=healthy&status=delivered&limit=100")
        .await
        .len()
        < 25
    {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(receiver.received("/ok").len(), 25);
    // The hanging connector took its whole concurrency and no more...
    assert_eq!(hangs(), 8);
    // ...and held it all along: not one of its deliveries has come back.
    let hanging = h.list("connector=hanging&limit=1000").await;
    assert_eq!(hanging.len(), 300);
    assert!(
        hanging
            .iter()
            .all(|d| d["status"] == "pending" && d["attempts"].as_array().unwrap().is_empty()),
        "a hanging request ended"
    );
    receiver.release_hangs();
    handle.shutdown().await;
}

#[tokio::test]
async fn a_failing_connector_backs_off_as_a_whole_and_pages_of_history() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(&sqlite(&dir), |o| {
        o.breaker_threshold = 3;
        o.breaker_cooldown = Duration::from_secs(60);
    })
    .await;
    h.register(
        "down",
        &h.receiver.url("/status/502"),
        &["DOWN"],
        h.cc_key(),
        json!({"max_concurrency": 1}),
    )
    .await;
    for i in 0..10 {
        h.post_event(event("DOWN", &format!("p{i}"))).await;
    }
    let report = h.engine.run_until_idle().await.unwrap();
    // One at a time (max_concurrency 1): after 3 failures the breaker opens, and the rest are
    // given back untried, due only after the cooldown.
    assert_eq!(h.receiver.received("/status/502").len(), 3, "{report:?}");
    assert_eq!(report.retried, 3, "{report:?}");
    assert_eq!(
        h.engine.run_once().await.unwrap().claimed,
        0,
        "nothing is due meanwhile"
    );
    h.clock.advance(Duration::from_secs(61));
    h.engine.run_once().await.unwrap();
    assert!(
        h.receiver.received("/status/502").len() > 3,
        "tried again after the cooldown"
    );

    // Cursor pagination, newest first.
    let (s, page1) = json_of(
        h.req(Method::GET, "/api/deliveries?limit=4")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = json_of(
        h.req(
            Method::GET,
            &format!("/api/deliveries?limit=4&cursor={cursor}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let ids = |p: &Value| -> Vec<String> {
        p["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (ids(&page1), ids(&page2));
    assert_eq!((a.len(), b.len()), (4, 4));
    assert!(a.iter().all(|x| !b.contains(x)));
    assert!(a[3] > b[0], "newest first");
    let (s, e) = json_of(
        h.req(Method::GET, "/api/deliveries?status=lost")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_status")));
    // A misspelt filter is refused, not ignored (which would list everything).
    let (s, e) = json_of(
        h.req(Method::GET, "/api/deliveries?stauts=failed")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_query")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("stauts"), "{e}");
    assert_eq!(h.list("packageId=p3").await.len(), 1);
    assert_eq!(
        h.list("package_id=p3").await.len(),
        1,
        "named as the field it filters"
    );
    // A time window: `since` and `until` (created before it).
    assert!(h.list("until=2000-01-01T00:00:00Z").await.is_empty());
    let all = h.list("limit=1000").await.len();
    assert_eq!(
        h.list("since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z&limit=1000")
            .await
            .len(),
        all
    );
}

/// Two nodes on one PostgreSQL: node A takes the events and runs no workers; node B, whose
/// own poll comes only once a minute, delivers them within seconds because A's commit
/// notifies it (LISTEN/NOTIFY).
#[tokio::test]
async fn another_node_is_woken_by_the_ingesting_nodes_notification() {
    let Some(pg) = hookwarden_store::testing::fresh_postgres_url().await else {
        return;
    };
    let a = Harness::start(&pg).await;
    a.register(
        SF,
        &a.org.callback_url(),
        &["PACKAGE_COMPLETE"],
        a.cc_key(),
        json!({}),
    )
    .await;
    // Node B: the same database and master key, its own store, hub and workers.
    let store_b = hookwarden_store::Store::open(&pg, a.settings.master_key.clone())
        .await
        .unwrap();
    let state_b = hookwarden_server::AppState::new(store_b.clone(), a.settings.clone());
    let node_b = hookwarden_server::delivery::start_with(
        &state_b,
        tokens_for(&store_b, &a.settings),
        EngineOptions {
            idle_poll: Duration::from_secs(60),
            ..EngineOptions::default()
        },
    )
    .await
    .unwrap();
    // B's first claim, at start, comes before or after this first event; either way B delivers
    // it. Once its outcome is written, B has claimed and found nothing more: from now on only a
    // wake-up brings it back.
    let first = a.post_event(event("PACKAGE_COMPLETE", "pkg-first")).await;
    let first = first["deliveries"][0].as_str().unwrap().to_owned();
    let started = Instant::now();
    while a.delivery(&first).await["status"] != "delivered" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node B did not deliver the first event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.org.reset_stats();
    let started = Instant::now();
    for i in 0..5 {
        a.post_event(
            json!({"name": "PACKAGE_COMPLETE", "packageId": format!("pkg-{i}"), "origin": "OSS"}),
        )
        .await;
    }
    while a.org.callbacks().len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node B did not deliver within 20 s (its poll is 60 s): {} of 5",
            a.org.callbacks().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not `close`: B's LISTEN connection stays out of the pool until its hub is gone.
    node_b.shutdown().await;
}

/// The operator's metrics, labelled by the account's and the connector's names: each
/// connector's status as a 0/1 gauge an alert can fire on, seconds until its token expires, the
/// age of its oldest pending delivery, and the events each account ingested.
#[tokio::test]
async fn metrics_show_each_connectors_status_token_and_oldest_pending_delivery() {
    // The recorder, installed before anything is recorded (a server does it as it starts).
    hookwarden_server::metrics::handle();
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    // An account of its own: the recorder is shared by every test of this process.
    let account = format!("metrics-{}", std::process::id());
    let (_, key) = h.state.store.create_account(&account).await.unwrap();
    let call = |method: Method, path: &str, body: Value| {
        h.http
            .request(method, format!("{}{path}", h.base))
            .header("Authorization", format!("Basic {key}"))
            .json(&body)
    };
    let broken_key = b64(&json!({
        "host": "acme.my.salesforce.com", "client_id": hookwarden_fake_org::DEFAULT_CLIENT_ID,
        "refresh_token": "not-a-token-the-org-issued", "token_url": h.org.token_url(),
    }));
    for (name, k) in [("good", h.cc_key()), ("broken", broken_key)] {
        let (s, body) = json_of(
            call(
                Method::POST,
                &format!("/api/callback/connectors/{name}"),
                json!({"url": h.org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": k, "preset": "salesforce"}),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(s, 201, "{body}");
    }
    let post = || async {
        let (s, body) = json_of(
            call(
                Method::POST,
                "/api/events",
                event("PACKAGE_COMPLETE", "m-1"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(s, 202, "{body}");
    };
    post().await;
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(
        h.connector_of(&key, "broken").await["status"],
        "needs_reauth"
    );
    // One more event, left waiting a minute.
    post().await;
    h.clock.advance(Duration::from_secs(60));
    h.engine.publish_gauges().await.unwrap();

    let text = hookwarden_server::metrics::handle().render();
    let value = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!("{metric}{{"))
                    && labels
                        .iter()
                        .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .unwrap_or_else(|| panic!("no {metric} {labels:?} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let of = |connector| [("account", account.as_str()), ("connector", connector)];
    let status = |connector, status| {
        let mut l = of(connector).to_vec();
        l.push(("status", status));
        value("hookwarden_connector_status", &l)
    };
    assert_eq!(status("broken", "needs_reauth"), 1.0);
    assert_eq!(status("broken", "active"), 0.0);
    assert_eq!(status("good", "active"), 1.0);
    assert_eq!(status("good", "needs_reauth"), 0.0);
    // The fake org's sessions last 7,200 s; a minute of it has gone.
    let expires = value("hookwarden_token_expires_in_seconds", &of("good"));
    assert!((7_000.0..=7_141.0).contains(&expires), "{expires}");
    let oldest = value(
        "hookwarden_oldest_pending_delivery_age_seconds",
        &of("good"),
    );
    assert!((59.0..120.0).contains(&oldest), "{oldest}");
    assert_eq!(
        value("hookwarden_events_ingested_total", &[("account", &account)]),
        2.0
    );
    // The delivery counter names the account too, once its name is known.
    let delivered = value(
        "hookwarden_deliveries_total",
        &[
            ("account", &account),
            ("connector", "good"),
            ("outcome", "delivered"),
        ],
    );
    assert!(delivered >= 1.0, "{delivered}");
}
