//! A connector's `max_per_second` holds for the cluster: two delivery engines on one
//! PostgreSQL database (two nodes, each with its own lanes) learn from their heartbeats that
//! they are two and send at half the rate each. An upper bound only: a slow machine sends
//! slower, never faster.

use std::time::{Duration, Instant};

use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_together_hold_a_connectors_rate() {
    let Some(url) = hookwarden_store::testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    const RATE: usize = 50;
    const EVENTS: usize = 150;
    let h = Harness::start(&url).await;
    h.register(
        "paced",
        &h.receiver.url("/paced"),
        &["PACED"],
        h.cc_key(),
        json!({"max_per_second": RATE, "max_concurrency": 16}),
    )
    .await;
    let node = || {
        hookwarden_server::delivery::Engine::new(
            h.state.delivery.clone(),
            &h.settings,
            tokens_for(&h.state.store, &h.settings),
            hookwarden_server::delivery::EngineOptions {
                idle_poll: Duration::from_millis(5),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let a = node().spawn().await.unwrap();
    let b = node().spawn().await.unwrap();
    // Each has seen the other's heartbeat (one every 2 s) before the first delivery.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // One event a request: each ingest wakes both nodes, and each claims what it finds, so
    // both are sending the connector's deliveries at the same time.
    for i in 0..EVENTS {
        h.post_event(event("PACED", &format!("p{i}"))).await;
    }
    let start = Instant::now();
    while h.receiver.received("/paced").len() < EVENTS {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not all delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
    let mut at: Vec<Instant> = h.receiver.received("/paced").iter().map(|r| r.at).collect();
    at.sort();
    // The most that arrived within any one second.
    let mut most = 0;
    let mut first = 0;
    for last in 0..at.len() {
        while at[last].duration_since(at[first]) >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    let allowed = RATE + RATE / 10;
    eprintln!("at most {most} callbacks within one second ({RATE}/s allowed)");
    assert!(
        most <= allowed,
        "{most} callbacks within one second; the connector allows {RATE}/s (+10 %: {allowed})"
    );
}
