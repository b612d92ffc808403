//! The token cache hit path: ns per `TokenManager::token` call for a fresh, cached token with
//! 10,000 connectors cached. Target: under 1 µs.
//!
//! `cargo run --release -p hookwarden-oauth --example token_cache_bench`

use std::time::Instant;

use futures::StreamExt;
use hookwarden_core::{AddressPolicy, ConnectorKind, Credentials, Key};
use hookwarden_fake_org::FakeOrg;
use hookwarden_oauth::{TokenManager, TokenOptions};
use hookwarden_store::{MasterKey, MasterKeySource, NewConnector, Store};
use serde_json::json;

const CONNECTORS: usize = 10_000;
const CALLS: usize = 5_000_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let org = FakeOrg::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url, MasterKeySource::Given(MasterKey::generate())).await?;
    let (account, _) = store.create_account("bench").await?;
    let tokens = TokenManager::new(
        store.clone(),
        TokenOptions {
            allow_insecure_http: true,
            address_policy: AddressPolicy::parse_list("127.0.0.0/8")?,
            ..TokenOptions::default()
        },
    )?;

    let started = Instant::now();
    let mut connectors = Vec::with_capacity(CONNECTORS);
    for i in 0..CONNECTORS {
        let key = json!({
            "client_id": hookwarden_fake_org::DEFAULT_CLIENT_ID,
            "refresh_token": org.issue_refresh_token(hookwarden_fake_org::DEFAULT_CLIENT_ID),
            "token_url": org.token_url(),
        });
        let name = format!("bench-{i}");
        let kind = ConnectorKind::of(&name);
        let parsed = Key::parse(&hookwarden_core::key::encode(&key), kind)?;
        let (c, _) = store
            .upsert_connector(NewConnector {
                account_id: account.id.clone(),
                name,
                url: "https://example.com/hook".into(),
                events: vec![],
                origins: vec!["*".into()],
                owner: None,
                refresh_token_idle_days: None,
                settings: json!({}),
                warnings: vec![],
                credentials: Credentials::from_key(kind, parsed.key),
            })
            .await?;
        connectors.push(c);
    }
    // Fill the cache: one grant per connector, 32 at a time.
    let results: Vec<_> = futures::stream::iter(connectors.iter().map(|c| tokens.token(c)))
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!(
        "setup: {CONNECTORS} connectors, {} grants ({failed} failed) in {:.1} s",
        org.stats().grants_ok("refresh_token"),
        started.elapsed().as_secs_f64()
    );

    // Hits spread over all connectors (a stride that visits them all, defeating the CPU cache
    // as a delivery worker's mix would).
    let mut sum = 0usize;
    let t = Instant::now();
    for i in 0..CALLS {
        let c = &connectors[(i * 7919) % CONNECTORS];
        let token = tokens.token(c).await?;
        sum = sum.wrapping_add(token.version as usize);
    }
    let spread = t.elapsed().as_nanos() as f64 / CALLS as f64;

    // One hot connector.
    let t = Instant::now();
    for _ in 0..CALLS {
        let token = tokens.token(&connectors[0]).await?;
        sum = sum.wrapping_add(token.version as usize);
    }
    let hot = t.elapsed().as_nanos() as f64 / CALLS as f64;

    // Two threads at once, each over all connectors.
    let t = Instant::now();
    let mut handles = Vec::new();
    for worker in 0..2 {
        let (tokens, connectors) = (tokens.clone(), connectors.clone());
        handles.push(tokio::spawn(async move {
            let mut s = 0usize;
            for i in 0..CALLS / 2 {
                let c = &connectors[(i * 7919 + worker) % CONNECTORS];
                if let Ok(t) = tokens.token(c).await {
                    s = s.wrapping_add(t.version as usize);
                }
            }
            s
        }));
    }
    for h in handles {
        sum = sum.wrapping_add(h.await?);
    }
    let parallel = t.elapsed().as_nanos() as f64 / CALLS as f64;

    println!("token() cache hit, {CONNECTORS} connectors cached:");
    println!("  spread over all connectors, 1 task : {spread:.0} ns/call");
    println!("  one hot connector, 1 task          : {hot:.0} ns/call");
    println!("  spread, 2 tasks in parallel        : {parallel:.0} ns/call (wall time / calls)");
    println!(
        "  grants during the measurement      : {}",
        org.stats().grants_ok("refresh_token") - CONNECTORS as u64
    );
    std::hint::black_box(sum);
    Ok(())
}
