//! `cargo run --release -p hookwarden-server --example console_pages`: how long the console's
//! pages take with 10,000 deliveries in the account (the console's target: under 50 ms each).
//!
//! A server in this process on a fresh SQLite file (or the PostgreSQL URL given as the first
//! argument), a fake Salesforce org, two connectors — one delivering to the org, one whose
//! endpoint is down, so its deliveries wait for a retry — and `HOOKWARDEN_BENCH_N` deliveries
//! (default 10,000) made by batches of events. Once the org has its callbacks, each page is
//! fetched `ROUNDS` times over loopback, one at a time; the figures are those round trips (an
//! upper bound of the server's time). One JSON line a page, then a summary line.

use std::time::{Duration, Instant};

use base64::Engine;
use hookwarden_core::AddressPolicy;
use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_server::Settings;
use hookwarden_store::{MasterKey, MasterKeySource};
use serde_json::{json, Value};

const ROUNDS: usize = 30;
const BATCH: usize = 1000;

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("HOOKWARDEN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let database = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("console.db").display()));
    let org = FakeOrg::builder().start().await?;
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        public_url: None,
        database,
        master_key: MasterKeySource::Given(MasterKey::generate()),
        allow_insecure_http: true,
        address_policy: AddressPolicy::parse_list("127.0.0.0/8")?,
        max_body_bytes: 2 * 1024 * 1024,
        history_retention_days: 30,
        metrics: Default::default(),
        limits: Default::default(),
    };
    let server = hookwarden_server::spawn(settings, None).await?;
    let base = server.base_url();
    let (_, key) = server.state.store.create_account("bench").await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .header("Authorization", format!("Basic {key}"))
    };

    // Two connectors on the same events: the org's, and one whose endpoint refuses.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    for (name, url) in [
        ("salesforceOauth2", org.callback_url()),
        ("downstream", format!("http://{down}/hooks")),
    ] {
        let k = b64(&json!({
            "host": "acme.my.salesforce.com",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "token_url": org.token_url(),
        }));
        let resp = api(
            reqwest::Method::POST,
            &format!("/api/callback/connectors/{name}"),
        )
        .json(
            &json!({"preset": "salesforce", "url": url, "events": ["PACKAGE_COMPLETE"], "key": k}),
        )
        .send()
        .await?;
        if !resp.status().is_success() {
            return Err(format!("registering {name}: {}", resp.text().await?).into());
        }
    }
    let events = n / 2;
    let started = Instant::now();
    let mut sent = 0;
    while sent < events {
        let count = BATCH.min(events - sent);
        let batch: Vec<Value> = (sent..sent + count)
            .map(|i| json!({"name": "PACKAGE_COMPLETE", "packageId": format!("pkg-{i}"), "origin": "OSS"}))
            .collect();
        let resp = api(reqwest::Method::POST, "/api/events/batch")
            .json(&json!({ "events": batch }))
            .send()
            .await?;
        if resp.status() != 202 {
            return Err(format!("ingest: {}", resp.text().await?).into());
        }
        sent += count;
    }
    // Until the org has its callbacks (the other half waits for a retry).
    let deadline = Instant::now() + Duration::from_secs(300);
    while org.stats().callbacks_received < events as u64 {
        if Instant::now() > deadline {
            return Err("the org did not get its callbacks in 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let filled = started.elapsed();

    let login = http
        .post(format!("{base}/console/login"))
        .form(&[("api_key", key.as_str())])
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no session cookie")?
        .to_owned();
    let pages = [
        "/console/connectors",
        "/console/connectors/salesforceOauth2",
        "/console/connectors/downstream",
        "/console/keys",
    ];
    let mut worst: f64 = 0.0;
    for path in pages {
        let mut ms = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let resp = http
                .get(format!("{base}{path}"))
                .header("Cookie", &cookie)
                .send()
                .await?;
            let status = resp.status();
            let _ = resp.bytes().await?;
            if status != 200 {
                return Err(format!("{path}: {status}").into());
            }
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let median = ms[ROUNDS / 2];
        let p95 = ms[ROUNDS * 95 / 100];
        worst = worst.max(p95);
        println!(
            "{}",
            json!({"page": path, "median_ms": (median * 100.0).round() / 100.0, "p95_ms": (p95 * 100.0).round() / 100.0})
        );
    }
    println!(
        "{}",
        json!({"deliveries": events * 2, "fill_s": filled.as_secs_f64().round(), "worst_p95_ms": (worst * 100.0).round() / 100.0, "target_ms": 50})
    );
    server.shutdown().await?;
    Ok(())
}
