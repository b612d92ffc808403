//! On PostgreSQL every change that makes deliveries due wakes the other nodes (NOTIFY), not
//! only ingest: a retry, a replay, a connector made active again, held deliveries released by
//! maintenance, claims given back at shutdown, a notification written by the outbox. Another
//! node's listener must hear each one.

use std::time::Duration;

use hookwarden_store::notify::DueListener;
use hookwarden_store::Store;
use reqwest::Method;
use serde_json::json;

use super::support::*;

/// Whether a wake-up arrives within a generous limit (a failure waits it out; a pass does not).
async fn woken(listener: &mut DueListener) -> bool {
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Forget what was heard so far.
async fn drain(listener: &mut DueListener) {
    while tokio::time::timeout(Duration::from_millis(300), listener.recv())
        .await
        .is_ok()
    {}
}

#[tokio::test]
async fn every_change_that_makes_deliveries_due_wakes_the_other_nodes() {
    let Some(url) = hookwarden_store::testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    let h = Harness::start(&url).await;
    let other = Store::open(&url, h.settings.master_key.clone())
        .await
        .unwrap();
    let mut listener = other.deliveries_due_listener().await.unwrap().unwrap();

    // A retry and a replay of a failed delivery.
    h.register(
        "refusing",
        &h.receiver.url("/status/400"),
        &["REFUSED"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let id = h.post_event(event("REFUSED", "p1")).await["deliveries"][0]
        .as_str()
        .unwrap()
        .to_owned();
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.delivery(&id).await["status"], "failed");
    drain(&mut listener).await;
    let r = h
        .req(Method::POST, &format!("/api/deliveries/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    assert!(woken(&mut listener).await, "a retry");
    h.engine.run_until_idle().await.unwrap();
    drain(&mut listener).await;
    let (s, out) = json_of(
        h.req(Method::POST, "/api/callback/connectors/refusing/replay")
            .json(&json!({"since": "2000-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, out["replayed"].as_u64()), (200, Some(1)), "{out}");
    assert!(woken(&mut listener).await, "a replay");

    // Held deliveries of a connector made active again by a new key.
    h.register(
        "broken",
        &h.org.callback_url(),
        &["BROKEN"],
        h.rt_key(),
        json!({}),
    )
    .await;
    h.org.revoke_all_tokens();
    h.post_event(event("BROKEN", "p1")).await;
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.connector("broken").await["status"], "needs_reauth");
    drain(&mut listener).await;
    let (s, c) = json_of(
        h.req(Method::PATCH, "/api/callback/connectors/broken")
            .json(&json!({"key": h.rt_key()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("active")), "{c}");
    assert!(woken(&mut listener).await, "a connector active again");
    h.engine.run_until_idle().await.unwrap();

    // Held deliveries of an active connector, released by the maintenance pass.
    let held_id = h.post_event(event("REFUSED", "p2")).await["deliveries"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let refusing = h
        .state
        .store
        .get_connector(&h.account, "refusing")
        .await
        .unwrap()
        .unwrap();
    h.state
        .store
        .hold_connector_deliveries(&refusing.id, 0)
        .await
        .unwrap();
    assert_eq!(h.delivery(&held_id).await["status"], "held");
    drain(&mut listener).await;
    h.engine.run_once().await.unwrap();
    assert!(woken(&mut listener).await, "held deliveries released");
    h.engine.run_until_idle().await.unwrap();

    // A notification the outbox writes (the endpoint answers 410: it disables the connector).
    let (s, _) = json_of(
        h.req(Method::POST, "/api/notifications")
            .json(&json!({"url": h.receiver.url("/notify")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);
    h.register(
        "gone",
        &h.receiver.url("/status/410"),
        &["GONE"],
        h.cc_key(),
        json!({}),
    )
    .await;
    h.post_event(event("GONE", "p1")).await;
    drain(&mut listener).await;
    h.engine.run_once().await.unwrap();
    assert_eq!(h.connector("gone").await["status"], "disabled");
    assert!(woken(&mut listener).await, "a notification written");
}
