//! How long the console's pages take with 10,000 deliveries in the account.
//!
//! A fresh SQLite database, the whole server (API, delivery engine) and the fake Salesforce
//! org on loopback; 10 connectors, each taking every event; 1,000 events, so 10,000
//! deliveries: 900 events delivered, then 100 refused by the org (403, so 1,000 failed
//! deliveries with their attempt, diagnosis and excerpt). Then each page is asked for through
//! the server's router in process (no network: the server's own time, middleware included) and
//! its median, 95th percentile and slowest time printed. A figure to read, not a test:
//!
//! ```text
//! cargo run --release -p hookwarden-server --example console_bench
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use hookwarden_core::AddressPolicy;
use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_store::{MasterKey, MasterKeySource};
use serde_json::{json, Value};
use tower::ServiceExt;

const CONNECTORS: usize = 10;
const EVENTS: usize = 1_000;
const REFUSED: usize = 100;
const RUNS: usize = 30;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = hookwarden_server::Config::defaults().settings()?;
    settings.listen = "127.0.0.1:0".parse()?;
    settings.database = format!("sqlite://{}", dir.path().join("bench.db").display());
    settings.master_key = MasterKeySource::Given(MasterKey::generate());
    settings.allow_insecure_http = true;
    settings.address_policy = AddressPolicy::parse_list("127.0.0.0/8")?;
    settings.max_body_bytes = 4 * 1024 * 1024;
    let server = hookwarden_server::spawn(settings, None).await?;
    let state = server.state.clone();
    let (_, key) = state.store.create_account("acme").await?;
    let org = FakeOrg::builder().start().await?;
    let http = reqwest::Client::new();
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", server.base_url()))
            .header("Authorization", format!("Basic {key}"))
    };

    let credentials = base64_json(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
    }));
    for i in 0..CONNECTORS {
        let resp = api(
            reqwest::Method::POST,
            &format!("/api/callback/connectors/sf{i:02}"),
        )
        .json(&json!({"preset": "salesforce", "url": org.callback_url(),
                      "events": ["PACKAGE_COMPLETE"], "key": credentials}))
        .send()
        .await?;
        if resp.status() != 201 {
            bail!("register sf{i:02}: {}", resp.text().await?);
        }
    }

    let started = Instant::now();
    let send = |from: usize, to: usize| {
        let events: Vec<Value> = (from..to)
            .map(|i| json!({"name": "PACKAGE_COMPLETE", "packageId": format!("pkg-{i:04}"), "origin": "OSS"}))
            .collect();
        api(reqwest::Method::POST, "/api/events/batch").json(&json!({ "events": events }))
    };
    let resp = send(0, EVENTS - REFUSED).send().await?;
    if resp.status() != 202 {
        bail!("ingest: {}", resp.text().await?);
    }
    wait_until_settled(&api).await?;
    org.set_apex_class_access_denied(true);
    let resp = send(EVENTS - REFUSED, EVENTS).send().await?;
    if resp.status() != 202 {
        bail!("ingest: {}", resp.text().await?);
    }
    wait_until_settled(&api).await?;
    let total: Value = api(
        reqwest::Method::GET,
        "/api/deliveries?limit=1000&status=failed",
    )
    .send()
    .await?
    .json()
    .await?;
    let failed = total["deliveries"].as_array().map_or(0, Vec::len);
    let failed_id = total["deliveries"][0]["id"]
        .as_str()
        .context("a failed delivery")?
        .to_owned();
    println!(
        "{} deliveries ({failed} failed) to {CONNECTORS} connectors, ingested and attempted in {:.1} s",
        CONNECTORS * EVENTS,
        started.elapsed().as_secs_f64()
    );

    // The pages, through the router in process.
    let router = hookwarden_server::router(state.clone());
    let login = router
        .clone()
        .oneshot(
            Request::post("/console/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("api_key={key}")))?,
        )
        .await?;
    let cookie = login
        .headers()
        .get(header::SET_COOKIE)
        .context("a session cookie")?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let get = |path: String| {
        let (router, cookie) = (router.clone(), cookie.clone());
        async move {
            let at = Instant::now();
            let resp = router
                .oneshot(
                    Request::get(&path)
                        .header(header::COOKIE, &cookie)
                        .body(Body::empty())?,
                )
                .await?;
            let status = resp.status();
            let html = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
            let took = at.elapsed();
            if status != StatusCode::OK {
                bail!("{path}: {status}");
            }
            anyhow::Ok((took, String::from_utf8_lossy(&html).into_owned()))
        }
    };
    let (_, first) = get("/console/deliveries".to_owned()).await?;
    let older = first
        .split("rel=\"next\"")
        .next()
        .and_then(|before| before.rsplit("href=\"").next())
        .map(|href| href.trim_end_matches(['"', ' ']).replace("&amp;", "&"))
        .context("an Older link")?;
    let pages = [
        "/console/connectors".to_owned(),
        "/console/connectors/sf05".to_owned(),
        "/console/keys".to_owned(),
        "/console/deliveries".to_owned(),
        older,
        "/console/deliveries?status=failed".to_owned(),
        "/console/deliveries?connector=sf05".to_owned(),
        "/console/deliveries?package=pkg-0500".to_owned(),
        "/console/deliveries?since=2000-01-01&until=2999-01-01".to_owned(),
        format!("/console/deliveries/{failed_id}"),
        "/console/events/new".to_owned(),
    ];
    println!(
        "\nserver time per page, {RUNS} runs each (in process, SQLite, {} build):",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!("{:<62} {:>8} {:>8} {:>8}", "page", "median", "p95", "max");
    let mut slowest = Duration::ZERO;
    for path in &pages {
        get(path.clone()).await?; // warm
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            times.push(get(path.clone()).await?.0);
        }
        times.sort();
        let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let shown: String = path.chars().take(62).collect();
        println!(
            "{shown:<62} {:>8} {:>8} {:>8}",
            ms(pick(0.5)),
            ms(pick(0.95)),
            ms(*times.last().unwrap())
        );
        slowest = slowest.max(pick(0.95));
    }
    println!(
        "\nslowest page's p95: {} (the aim: under 50 ms)",
        ms(slowest)
    );
    server.shutdown().await?;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn base64_json(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

/// Until no delivery is pending (or in flight).
async fn wait_until_settled<F>(api: &F) -> anyhow::Result<()>
where
    F: Fn(reqwest::Method, &str) -> reqwest::RequestBuilder,
{
    let start = Instant::now();
    loop {
        let pending: Value = api(
            reqwest::Method::GET,
            "/api/deliveries?status=pending&limit=1",
        )
        .send()
        .await?
        .json()
        .await?;
        if pending["deliveries"].as_array().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("deliveries still pending after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
