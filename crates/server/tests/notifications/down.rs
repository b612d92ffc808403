//! A notification endpoint that does not answer holds up nothing but its own notifications,
//! which go out when it is back.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::{event, json_of, sqlite, Harness};
use super::{add_endpoint, notices};

async fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_hangs_does_not_slow_callbacks_and_is_told_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(&sqlite(&dir), |o| {
        // Longer than the test: the hanging request does not end on its own, so the test does
        // not depend on the machine's speed.
        o.lease = Duration::from_secs(600);
        o.request_timeout = Duration::from_secs(240);
        o.shutdown_grace = Duration::from_millis(100);
    })
    .await;
    let (id, secret) = add_endpoint(&h, "/hang", json!({})).await;
    h.register(
        "gone",
        &h.receiver.url("/status/410"),
        &["GONE"],
        h.cc_key(),
        json!({}),
    )
    .await;
    h.register(
        "fast",
        &h.receiver.url("/fast"),
        &["FAST"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let running = h.engine.clone().spawn().await.unwrap();

    // The 410 disables `gone`; its notification goes to an endpoint that does not answer.
    h.post_event(event("GONE", "p0")).await;
    wait_for(
        "the notification to be in flight",
        Duration::from_secs(30),
        || h.receiver.hangs.load(Ordering::SeqCst) >= 1,
    )
    .await;

    // Meanwhile, callbacks to other connectors go out as usual.
    for i in 0..100 {
        h.post_event(event("FAST", &format!("p{i}"))).await;
    }
    wait_for("100 callbacks", Duration::from_secs(60), || {
        h.receiver.received("/fast").len() >= 100
    })
    .await;
    assert!(
        h.receiver.received("/hang").is_empty(),
        "every callback went out while the notification still waited for its answer"
    );

    // The endpoint is back: the notification it was sent is answered and recorded.
    h.receiver.release_hangs();
    wait_for("the notification", Duration::from_secs(60), || {
        !h.receiver.received("/hang").is_empty()
    })
    .await;
    let got = notices(&h, "/hang", secret.as_deref().unwrap());
    assert!(
        got.iter().all(|(_, b)| b["type"] == "connector.disabled"),
        "{got:?}"
    );
    let ids: std::collections::HashSet<&String> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids.len(),
        1,
        "one notification, however many attempts: {got:?}"
    );
    let start = Instant::now();
    loop {
        let (_, page) = json_of(
            h.req(
                reqwest::Method::GET,
                &format!("/api/notifications/{id}/deliveries"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        if page["deliveries"][0]["status"] == "delivered" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await;
}
