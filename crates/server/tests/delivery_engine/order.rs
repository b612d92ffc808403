//! Per-package order holds across nodes: two delivery engines (each with its own lanes, as two
//! nodes have) claim from one PostgreSQL database at once, and every package's callbacks still
//! reach the org in the order its events were posted.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use super::support::*;
use super::SF;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_keep_each_packages_order() {
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
        json!({"ordering": "per_package", "max_concurrency": 16}),
    )
    .await;
    let second = hookwarden_server::delivery::Engine::new(
        h.state.delivery.clone(),
        &h.settings,
        tokens_for(&h.state.store, &h.settings),
        hookwarden_server::delivery::EngineOptions {
            idle_poll: Duration::from_millis(5),
            ..Default::default()
        },
    )
    .unwrap();
    let a = h.engine.clone().spawn().await.unwrap();
    let b = second.spawn().await.unwrap();
    const PACKAGES: usize = 4;
    const EACH: usize = 40;
    for i in 0..EACH {
        let events: Vec<_> = (0..PACKAGES)
            .map(|p| json!({"name": "PACKAGE_COMPLETE", "packageId": format!("p{p}"), "origin": "OSS", "message": i.to_string()}))
            .collect();
        let r = h
            .req(reqwest::Method::POST, "/api/events/batch")
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    h.wait_for_callbacks(PACKAGES * EACH, Duration::from_secs(120))
        .await;
    a.shutdown().await;
    b.shutdown().await;
    let mut per_package: HashMap<String, Vec<usize>> = HashMap::new();
    for cb in h.org.callbacks() {
        per_package
            .entry(cb.body["packageId"].as_str().unwrap().to_owned())
            .or_default()
            .push(cb.body["message"].as_str().unwrap().parse().unwrap());
    }
    assert_eq!(per_package.len(), PACKAGES);
    for (package, messages) in per_package {
        assert_eq!(messages, (0..EACH).collect::<Vec<_>>(), "{package}");
    }
}
