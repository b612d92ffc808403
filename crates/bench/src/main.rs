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
//!
//! `HOOKWARDEN_BENCH_DB=postgres` (or a `postgres://` URL of the server; `postgres` is
//! `postgres://postgres@127.0.0.1:5432/postgres`) runs (b), (c) and the latency phase on
//! PostgreSQL instead, in three topologies of node processes, each on a fresh database: one
//! `all` node, an API node and one worker, an API node and two workers; then, untimed, (b) and
//! (c) once more through a proxy that counts statements, round trips and commits. See
//! `postgres`.

mod baseline;
mod cluster;
mod hookwarden;
mod latency;
mod measure;
mod pgwire;
mod postgres;
mod producer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg};
use serde_json::{json, Value};

use hookwarden::Hookwarden;
use measure::{cpu_seconds, median, rss_mb, Meter, Usage};

/// In-flight requests to the one destination, for the baseline and for hookwarden alike.
pub(crate) const CONCURRENCY: usize = 64;
pub(crate) const BATCH: usize = 1000;
const PENDING_FOR_RSS: usize = 100_000;

pub(crate) fn body(i: usize) -> Value {
    json!({"name": "PACKAGE_COMPLETE", "packageId": format!("pkg-{i}"), "origin": "OSS"})
}

pub(crate) async fn wait_delivered(
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

/// `rounds` runs of `ingest(round)` (which posts `n` new events), each timed until the fake org
/// has received all `n` and settled before the next; prints each round's rate and CPU per
/// delivery (`what` says what the bench's own CPU includes; `meter` whose CPU is counted) and
/// returns the median rate with the CPU of that round.
async fn delivery_rounds<F, Fut>(
    org: &RunningFakeOrg,
    hw: &Hookwarden,
    n: usize,
    rounds: usize,
    what: &str,
    meter: &Meter,
    mut ingest: F,
) -> anyhow::Result<(f64, Usage)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut results = Vec::new();
    for round in 0..rounds {
        let (start, before) = (Instant::now(), meter.sample());
        ingest(round).await?;
        let done = wait_delivered(org, n as u64, Duration::from_secs(300)).await?;
        let rate = n as f64 / done.duration_since(start).as_secs_f64();
        let usage = before.usage_until(&meter.sample(), n);
        if meter.is_in_process() {
            let cpu_us = usage.bench_us;
            println!("    {rate:.0}/s ({cpu_us:.0} µs of CPU per delivery, {what})");
        } else {
            println!(
                "    {rate:.0}/s (CPU per delivery: hookwarden {:.0} µs, PostgreSQL {:.0} µs, \
                 the bench's process {:.0} µs ({what}); machine idle {:.0}%, stolen {:.0}%)",
                usage.nodes_us,
                usage.postgres_us,
                usage.bench_us,
                usage.idle * 100.0,
                usage.steal * 100.0
            );
        }
        results.push((rate, usage));
        // The last outcomes are written before the next round starts.
        hw.wait_settled().await?;
        org.reset_stats();
    }
    let median = median(results.iter().map(|r| r.0).collect());
    println!("    median of {rounds}: {median:.0}/s");
    let usage = results
        .iter()
        .find(|r| r.0 == median)
        .map(|r| r.1)
        .unwrap_or_default();
    Ok((median, usage))
}

/// (a), `rounds` times: the median rate.
async fn baseline_rounds(org: &RunningFakeOrg, n: usize, rounds: usize) -> anyhow::Result<f64> {
    println!(
        "(a) baseline: {n} POSTs at concurrency {CONCURRENCY} to the fake org's Apex endpoint"
    );
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let cpu = cpu_seconds();
        let rate = baseline::baseline(org, n).await?;
        let cpu_us = (cpu_seconds() - cpu) * 1e6 / n as f64;
        println!("    {rate:.0}/s ({cpu_us:.0} µs of CPU per request, receiver included)");
        rates.push(rate);
        org.reset_stats();
    }
    let median = median(rates);
    println!("    median of {rounds}: {median:.0}/s");
    Ok(median)
}

/// The allocator the `hookwarden` binary runs with (see its main.rs), so that the figures are
/// the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// On the runtime `hookwarden serve` runs on (its threads below the SQLite writer's priority,
/// see `hookwarden_server::runtime`), so that the figures are the product's.
/// `HOOKWARDEN_WORKER_NICENESS` as the server reads it (0 to compare with normal priority).
fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("node") {
        return cluster::node_main();
    }
    let niceness = match std::env::var("HOOKWARDEN_WORKER_NICENESS") {
        Ok(v) => v
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 19)
            .with_context(|| format!("HOOKWARDEN_WORKER_NICENESS={v:?}: use 0 to 19"))?,
        // On PostgreSQL there is no SQLite writer to make way for: normal priority, as the
        // nodes (and `serve` on PostgreSQL) run.
        Err(_) if postgres::database_from_env()?.is_some() => 0,
        Err(_) => hookwarden_server::runtime::DEFAULT_WORKER_NICENESS,
    };
    hookwarden_server::runtime::build(niceness, None)?.block_on(run())
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

    let postgres = postgres::database_from_env()?;
    let phases = std::env::var("HOOKWARDEN_BENCH_PHASES").unwrap_or_else(|_| {
        let default = if postgres.is_some() { "abclw" } else { "ambcl" };
        default.to_owned()
    });
    let run = |phase: char| phases.contains(phase);

    let rounds: usize = std::env::var("HOOKWARDEN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3);

    let baseline_per_s = if run('a') {
        Some(baseline_rounds(&org, n, rounds).await?)
    } else {
        None
    };
    if let Some(db) = postgres {
        return postgres::run(&org, &db, n, rounds, &phases, baseline_per_s).await;
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
        let meter = Meter::default();
        let what = "receiver included";
        let (rate, _) = delivery_rounds(&org, &hw, n, rounds, what, &meter, |round| {
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
        let (rate, _) = delivery_rounds(&org, &hw, n, rounds, what, &Meter::default(), |round| {
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
        percentiles = Some(latency::latency(&org, &hw, rate).await?);
    }

    handle.shutdown().await;
    if let Some(state) = &hw.state {
        state.store.close().await;
    }
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
