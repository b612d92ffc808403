//! `cargo run --release -p hookwarden-bench`: hookwarden's delivery rate against the raw
//! loopback baseline, on one machine, in one run. Prints the figures and ends with one JSON line.
//!
//! (a) baseline: the same HTTP client settings POST the same body to the same receiver (the
//!     fake org's Apex endpoint) at the same concurrency, without hookwarden;
//! (b) hookwarden on SQLite, events ingested through the batch API, delivered with bearer
//!     tokens from the fake org and Standard Webhooks signatures;
//! (c) as (b) with every event posted alone to `POST /api/events` over 64 keep-alive connections
//!     (bare hyper connections, as a load generator drives a server: see `Producer`);
//! then ingest→delivered latency at half of (c)'s rate, and peak RSS with 100,000 pending.
//!
//! `HOOKWARDEN_BENCH_N` sets the deliveries per phase (default 50,000);
//! `HOOKWARDEN_BENCH_ROUNDS` how many times (a), (b) and (c) each run (default 3; each prints
//! its rate, and the median is the phase's figure);
//! `HOOKWARDEN_BENCH_PHASES` picks phases (default `ambcl`: a, memory, b, c, latency), for
//! profiling one of them; `HOOKWARDEN_WORKER_NICENESS` as for the server (default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use hookwarden_core::AddressPolicy;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_oauth::{TokenManager, TokenOptions};
use hookwarden_server::delivery::{Engine, EngineOptions};
use hookwarden_server::{AppState, Settings};
use hookwarden_store::{MasterKey, MasterKeySource, Store};
use serde_json::{json, Value};

/// In-flight requests to the one destination, for the baseline and for hookwarden alike.
const CONCURRENCY: usize = 64;
const BATCH: usize = 1000;
const PENDING_FOR_RSS: usize = 100_000;

fn body(i: usize) -> Value {
    json!({"name": "PACKAGE_COMPLETE", "packageId": format!("pkg-{i}"), "origin": "OSS"})
}

fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this process has used (user + system), in seconds: per delivery, the figure that
/// other load on a shared machine disturbs least.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

async fn wait_delivered(
    org: &RunningFakeOrg,
    target: u64,
    limit: Duration,
) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        if org.stats().callbacks_received >= target {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "only {} of {target} delivered",
            org.stats().callbacks_received
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// (a): what the machine does without hookwarden.
async fn baseline(org: &RunningFakeOrg, n: usize) -> anyhow::Result<f64> {
    // The settings of hookwarden's delivery client (`delivery::http::DeliveryClient`), the
    // per-request total timeout included; only its guarded resolver is left out (the url is an
    // IP literal, which never reaches a resolver).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("hookwarden/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let token = org.issue_access_token(DEFAULT_CLIENT_ID);
    let url = Arc::new(org.callback_url());
    // The very body hookwarden sends for the events of (b) and (c).
    let event = hookwarden_core::Event::from_json(&body(0), chrono::Utc::now().timestamp_millis())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = Arc::new(event.onespan_body());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, payload, next, token) = (
            client.clone(),
            url.clone(),
            payload.clone(),
            next.clone(),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let r = client
                    .post(url.as_str())
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .header("webhook-id", "msg_baseline")
                    .header("webhook-timestamp", "1700000000")
                    .header(
                        "webhook-signature",
                        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                    )
                    .body(payload.as_str().to_owned())
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

struct Hookwarden {
    base: String,
    api_key: String,
    http: reqwest::Client,
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Hookwarden {
    async fn start(org: &RunningFakeOrg) -> anyhow::Result<(Self, Engine<TokenManager>)> {
        let dir = tempfile::tempdir()?;
        // From the defaults, so settings added later keep their default here.
        let mut settings: Settings = hookwarden_server::Config::defaults().settings()?;
        settings.database = format!("sqlite://{}", dir.path().join("bench.db").display());
        settings.master_key = MasterKeySource::Given(MasterKey::generate());
        settings.allow_insecure_http = true;
        settings.address_policy =
            AddressPolicy::parse_list("127.0.0.0/8").map_err(|e| anyhow::anyhow!("{e}"))?;
        settings.max_body_bytes = 4 * 1024 * 1024;
        let store = Store::open(&settings.database, settings.master_key.clone()).await?;
        let state = AppState::new(store.clone(), settings.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app = hookwarden_server::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let (_, api_key) = store.create_account("bench").await?;
        let tokens = TokenManager::new(
            store.clone(),
            TokenOptions {
                allow_insecure_http: true,
                address_policy: settings.address_policy.clone(),
                ..TokenOptions::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let engine = Engine::new(
            state.delivery.clone(),
            &settings,
            tokens,
            EngineOptions::default(),
        )?;
        let me = Self {
            base,
            api_key,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(128)
                .build()?,
            state,
            _dir: dir,
        };
        let key = base64::engine::general_purpose::STANDARD.encode(
            json!({"host": "bench.my.salesforce.com", "client_id": DEFAULT_CLIENT_ID,
                   "client_secret": DEFAULT_CLIENT_SECRET, "token_url": org.token_url(),
                   "revocation_url": org.revoke_url(), "introspection_url": org.introspect_url()})
            .to_string(),
        );
        let r = me
            .http
            .post(format!(
                "{}/api/callback/connectors/salesforceOauth2",
                me.base
            ))
            .header("authorization", format!("Basic {}", me.api_key))
            .json(
                &json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key,
                          "max_concurrency": CONCURRENCY}),
            )
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "registration failed: {}",
            r.text().await?
        );
        Ok((me, engine))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", format!("Basic {}", self.api_key))
            .json(body)
            .send()
            .await?;
        let status = r.status();
        anyhow::ensure!(
            status.as_u16() == 202,
            "ingest answered {status}: {}",
            r.text().await?
        );
        Ok(())
    }

    /// Until no delivery is pending (claimed ones included), as `GET /api/deliveries` says.
    async fn wait_settled(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let page: Value = self
                .http
                .get(format!(
                    "{}/api/deliveries?status=pending&limit=1",
                    self.base
                ))
                .header("authorization", format!("Basic {}", self.api_key))
                .send()
                .await?
                .json()
                .await?;
            let pending = page["deliveries"].as_array().map_or(0, Vec::len);
            if pending == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "deliveries still pending after a minute: {page}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `n` events in batches of 1,000, four requests at a time.
    async fn ingest_batches(self: &Arc<Self>, n: usize, offset: usize) -> anyhow::Result<()> {
        let mut tasks = Vec::new();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..4 {
            let (me, next) = (self.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let from = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                    if from >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let events: Vec<Value> = (from..(from + BATCH).min(n))
                        .map(|i| body(offset + i))
                        .collect();
                    me.post("/api/events/batch", &json!({ "events": events }))
                        .await?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }

    /// `n` events, one request each, over `CONCURRENCY` keep-alive connections.
    async fn ingest_singles(self: &Arc<Self>, n: usize, offset: usize) -> anyhow::Result<()> {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let mut producer = Producer::connect(&self.base, &self.api_key).await?;
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    producer.post_event(event_body(offset + i, None)).await?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
}

/// One keep-alive HTTP/1.1 connection to `POST /api/events`, driven by hyper's bare connection
/// API, as a load generator (wrk, k6) drives a server: (c) shares the machine's two cores with
/// its producer, and a full client (pool, URL parsing, redirect layer) there would be counted
/// against hookwarden.
struct Producer {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    authority: String,
    authorization: String,
}

impl Producer {
    async fn connect(base: &str, api_key: &str) -> anyhow::Result<Self> {
        let authority = base
            .strip_prefix("http://")
            .context("the bench's server is plain http")?
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            authority,
            authorization: format!("Basic {api_key}"),
        })
    }

    /// Post one event; anything but `202` is an error that stops the run.
    async fn post_event(&mut self, body: String) -> anyhow::Result<()> {
        use http_body_util::BodyExt;
        let request = hyper::Request::post("/api/events")
            .header("host", &self.authority)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.as_u16() == 202,
            "ingest answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        Ok(())
    }
}

/// The event of `body`, as JSON text, with an optional message.
fn event_body(i: usize, message: Option<&str>) -> String {
    match message {
        Some(m) => format!(
            r#"{{"name":"PACKAGE_COMPLETE","packageId":"lat","origin":"OSS","message":"{m}"}}"#
        ),
        None => format!(r#"{{"name":"PACKAGE_COMPLETE","packageId":"pkg-{i}","origin":"OSS"}}"#),
    }
}

/// `rounds` runs of `ingest(round)` (which posts `n` new events), each timed until the fake org
/// has received all `n` and settled before the next; prints each round's rate and CPU per
/// delivery (`what` says what that CPU includes) and returns the median rate.
async fn delivery_rounds<F, Fut>(
    org: &RunningFakeOrg,
    hw: &Hookwarden,
    n: usize,
    rounds: usize,
    what: &str,
    mut ingest: F,
) -> anyhow::Result<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut rates = Vec::new();
    for round in 0..rounds {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        ingest(round).await?;
        let done = wait_delivered(org, n as u64, Duration::from_secs(300)).await?;
        let rate = n as f64 / done.duration_since(start).as_secs_f64();
        let cpu_us = (cpu_seconds() - cpu) * 1e6 / n as f64;
        println!("    {rate:.0}/s ({cpu_us:.0} µs of CPU per delivery, {what})");
        rates.push(rate);
        // The last outcomes are written before the next round starts.
        hw.wait_settled().await?;
        org.reset_stats();
    }
    let median = median(rates);
    println!("    median of {rounds}: {median:.0}/s");
    Ok(median)
}

/// The middle of an odd number of rates (the upper middle of an even number): the figure of a
/// phase run several times, so that one lucky or unlucky run on a shared VM does not decide it.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(|a, b| a.total_cmp(b));
    rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `p` quantile of sorted values (NaN for none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Ingest→delivered latency at `rate` single events a second, posted the way (c) posts them,
/// each carrying its send time: (p50, p99) in ms.
async fn latency(
    org: &RunningFakeOrg,
    hw: &Arc<Hookwarden>,
    rate: f64,
) -> anyhow::Result<(f64, f64)> {
    let seconds = 4.0;
    let count = (rate * seconds) as usize;
    println!("    latency at {rate:.0}/s for {seconds} s ({count} events)");
    org.update_config(|c| c.callback_log_capacity = count + 1000)
        .map_err(|e| anyhow::anyhow!(e))?;
    let epoch = Instant::now();
    let wall0 = chrono::Utc::now();
    let mut tasks = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let per_tick =
        1.max((Duration::from_millis(1).as_secs_f64() / interval.as_secs_f64()) as usize);
    let mut sent = 0usize;
    // The same 64 connections as (c): a request that finds none free waits its turn.
    let (free_tx, free_rx) = tokio::sync::mpsc::channel::<Producer>(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        free_tx
            .send(Producer::connect(&hw.base, &hw.api_key).await?)
            .await
            .map_err(|_| anyhow::anyhow!("connection pool closed"))?;
    }
    let free_rx = Arc::new(tokio::sync::Mutex::new(free_rx));
    while sent < count {
        let due = epoch + interval * sent as u32;
        tokio::time::sleep_until(due.into()).await;
        for _ in 0..per_tick.min(count - sent) {
            let sent_us = epoch.elapsed().as_micros() as f64;
            let micros = sent_us.to_string();
            let (free_tx, free_rx) = (free_tx.clone(), free_rx.clone());
            tasks.push(tokio::spawn(async move {
                let producer = free_rx.lock().await.recv().await;
                let mut producer = producer.context("connection pool closed")?;
                producer.post_event(event_body(0, Some(&micros))).await?;
                let _ = free_tx.send(producer).await;
                // When the 202 came back: splits the latency into ingest and delivery.
                Ok::<_, anyhow::Error>((sent_us, epoch.elapsed().as_secs_f64() * 1e6))
            }));
            sent += 1;
        }
    }
    let mut acks = Vec::with_capacity(tasks.len());
    for t in tasks {
        acks.push(t.await??);
    }
    wait_delivered(org, count as u64, Duration::from_secs(120)).await?;
    let mut slowest = vec![0f64; seconds as usize + 2];
    let mut latencies: Vec<f64> = org
        .callbacks()
        .iter()
        .filter_map(|cb| {
            let sent_us: f64 = cb.body["message"].as_str()?.parse().ok()?;
            let received_us = (cb.received_at - wall0).num_microseconds()? as f64;
            let ms = (received_us - sent_us) / 1000.0;
            let slot = ((sent_us / 1e6) as usize).min(slowest.len() - 1);
            slowest[slot] = slowest[slot].max(ms);
            Some(ms)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let (p50_ms, p99_ms) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    println!(
        "    ingest→delivered p50 {p50_ms:.1} ms, p99 {p99_ms:.1} ms; slowest per second: {:?}",
        slowest.iter().map(|w| w.round()).collect::<Vec<_>>()
    );
    // The same events' send→202 times (the ingest side, connection wait included), and the
    // worst second of the run: a spread-out p99 and one stall look alike in the figure above.
    let mut acked: Vec<f64> = Vec::with_capacity(acks.len());
    let mut worst = vec![0f64; seconds as usize + 2];
    for (sent_us, ack_us) in acks {
        let ms = (ack_us - sent_us) / 1000.0;
        acked.push(ms);
        let slot = ((sent_us / 1e6) as usize).min(worst.len() - 1);
        worst[slot] = worst[slot].max(ms);
    }
    acked.sort_by(|a, b| a.total_cmp(b));
    println!(
        "    of which ingest (send→202) p50 {:.1} ms, p99 {:.1} ms; slowest 202 per second: {:?}",
        percentile(&acked, 0.5),
        percentile(&acked, 0.99),
        worst.iter().map(|w| w.round()).collect::<Vec<_>>()
    );
    Ok((p50_ms, p99_ms))
}

/// The allocator the `hookwarden` binary runs with (see its main.rs), so that the figures are
/// the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// On the runtime `hookwarden serve` runs on (its threads below the SQLite writer's priority,
/// see `hookwarden_server::runtime`), so that the figures are the product's.
/// `HOOKWARDEN_WORKER_NICENESS` as the server reads it (0 to compare with normal priority).
fn main() -> anyhow::Result<()> {
    let niceness = match std::env::var("HOOKWARDEN_WORKER_NICENESS") {
        Ok(v) => v
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 19)
            .with_context(|| format!("HOOKWARDEN_WORKER_NICENESS={v:?}: use 0 to 19"))?,
        Err(_) => hookwarden_server::runtime::DEFAULT_WORKER_NICENESS,
    };
    hookwarden_server::runtime::build(niceness)?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    // Warnings and errors only: a failing run says why.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let n: usize = std::env::var("HOOKWARDEN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    // A short log: the counters are what is read, and a long log would be counted as our RSS.
    let org = FakeOrg::builder()
        .callback_log_capacity(1000)
        .start()
        .await?;

    let phases = std::env::var("HOOKWARDEN_BENCH_PHASES").unwrap_or_else(|_| "ambcl".to_owned());
    let run = |phase: char| phases.contains(phase);

    let rounds: usize = std::env::var("HOOKWARDEN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3);

    let mut baseline_per_s = None;
    if run('a') {
        println!(
            "(a) baseline: {n} POSTs at concurrency {CONCURRENCY} to the fake org's Apex endpoint"
        );
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let cpu = cpu_seconds();
            let rate = baseline(&org, n).await?;
            let cpu_us = (cpu_seconds() - cpu) * 1e6 / n as f64;
            println!("    {rate:.0}/s ({cpu_us:.0} µs of CPU per request, receiver included)");
            rates.push(rate);
            org.reset_stats();
        }
        let median = median(rates);
        println!("    median of {rounds}: {median:.0}/s");
        baseline_per_s = Some(median);
    }

    let (hw, engine) = Hookwarden::start(&org).await?;
    let hw = Arc::new(hw);

    let mut rss_pending = None;
    let handle = if run('m') {
        // RSS with 100,000 deliveries pending: ingest with the workers stopped.
        hw.ingest_batches(PENDING_FOR_RSS, 10_000_000).await?;
        let rss = rss_mb("VmRSS:");
        println!("    RSS with {PENDING_FOR_RSS} deliveries pending: {rss:.1} MB");
        rss_pending = Some(rss);
        let handle = engine.clone().spawn().await?;
        wait_delivered(&org, PENDING_FOR_RSS as u64, Duration::from_secs(300))
            .await
            .context("draining the backlog")?;
        org.reset_stats();
        handle
    } else {
        engine.clone().spawn().await?
    };

    let mut hookwarden_per_s = None;
    if run('b') {
        println!("(b) hookwarden: {n} events through POST /api/events/batch, delivered with bearer tokens and signatures");
        let hw = hw.clone();
        let rate = delivery_rounds(&org, &hw, n, rounds, "receiver included", |round| {
            let hw = hw.clone();
            async move { hw.ingest_batches(n, round * n).await }
        })
        .await?;
        hookwarden_per_s = Some(rate);
    }

    let mut single_event_per_s = None;
    if run('c') {
        println!("(c) hookwarden: {n} events each alone through POST /api/events over {CONCURRENCY} connections");
        let hw = hw.clone();
        let what = "client and receiver included";
        let rate = delivery_rounds(&org, &hw, n, rounds, what, |round| {
            let hw = hw.clone();
            async move { hw.ingest_singles(n, (rounds + round) * n).await }
        })
        .await?;
        single_event_per_s = Some(rate);
    }

    let mut percentiles = None;
    if run('l') {
        // Steady state: (c)'s last outcomes written before the clock starts.
        hw.wait_settled().await?;
        // Half the measured maximum rate of single events (c): half of (b) can be more than
        // single events can sustain, which would measure a growing queue, not latency.
        let rate = single_event_per_s.map_or(1000.0, |r| (r / 2.0).max(100.0));
        percentiles = Some(latency(&org, &hw, rate).await?);
    }

    handle.shutdown().await;
    hw.state.store.close().await;
    let ratio = baseline_per_s.zip(hookwarden_per_s).map(|(a, b)| b / a);
    let rss_peak = rss_mb("VmHWM:");
    if let Some(ratio) = ratio {
        println!("ratio (b)/(a): {ratio:.2}");
    }
    println!("peak RSS of the whole run (fake org included): {rss_peak:.1} MB");
    let round = |v: Option<f64>, places: i32| {
        let scale = 10f64.powi(places);
        v.map(|v| (v * scale).round() / scale)
    };
    println!(
        "{}",
        json!({"baseline_per_s": round(baseline_per_s, 0), "hookwarden_per_s": round(hookwarden_per_s, 0),
               "single_event_per_s": round(single_event_per_s, 0), "ratio": round(ratio, 2),
               "p50_ms": round(percentiles.map(|p| p.0), 1), "p99_ms": round(percentiles.map(|p| p.1), 1),
               "rss_mb": round(rss_pending, 1)})
    );
    Ok(())
}
