//! On PostgreSQL the claimer starts its scans at a floor (`delivery::floor`) rather than at the
//! oldest due time, past the dead index entries earlier claims left. What the floor can leave
//! behind is still delivered: here deliveries that another node stamped due well before it (its
//! clock a minute behind), found by the claims that start from the oldest.

use std::sync::Arc;
use std::time::Duration;

use hookwarden_core::clock::{Clock, SystemClock};
use hookwarden_core::Event;
use hookwarden_server::delivery::{Hub, IngestRequest, Shape};
use serde_json::json;

use super::support::*;
use super::SF;

/// A clock this many milliseconds behind the system's.
struct Behind(i64);

impl Clock for Behind {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() - self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_stamped_due_before_the_claimers_floor_are_still_delivered() {
    let Some(url) = hookwarden_store::testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    let h = Harness::start(&url).await;
    h.register(
        SF,
        &h.org.callback_url(),
        &["PACKAGE_COMPLETE"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let engine = h.engine.clone().spawn().await.unwrap();
    // Claims of what is ingested now move the floor up to about now.
    for i in 0..5 {
        h.post_event(event("PACKAGE_COMPLETE", &format!("now-{i}")))
            .await;
    }
    h.wait_for_callbacks(5, Duration::from_secs(20)).await;
    // Another API node, a minute behind: its deliveries are due a minute before the floor.
    let behind = Hub::with_clock(h.state.store.clone(), Arc::new(Behind(60_000)));
    for i in 0..3 {
        let late = Event::from_json(
            &event("PACKAGE_COMPLETE", &format!("behind-{i}")),
            SystemClock.now_ms() - 60_000,
        )
        .unwrap();
        behind
            .ingest(IngestRequest {
                account: h.account.clone(),
                account_name: "acme".to_owned(),
                events: vec![late],
                shape: Shape::Single,
                idempotency: None,
            })
            .await
            .unwrap();
        // Events ingested now keep the claims coming, each from the floor.
        h.post_event(event("PACKAGE_COMPLETE", &format!("now-later-{i}")))
            .await;
    }
    h.wait_for_callbacks(11, Duration::from_secs(20)).await;
    engine.shutdown().await;
    let mut packages: Vec<String> = h
        .org
        .callbacks()
        .iter()
        .map(|cb| cb.body["packageId"].as_str().unwrap().to_owned())
        .collect();
    packages.sort();
    packages.dedup();
    assert_eq!(packages.len(), 11, "{packages:?}");
}
