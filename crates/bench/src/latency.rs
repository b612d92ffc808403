//! Ingest→delivered latency at a steady rate of single events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hookwarden_fake_org::RunningFakeOrg;

use crate::hookwarden::Hookwarden;
use crate::measure::percentile;
use crate::producer::{event_body, Producer};
use crate::{wait_delivered, CONCURRENCY};

/// Ingest→delivered latency at `rate` single events a second, posted the way (c) posts them,
/// each carrying its send time: (p50, p99) in ms.
pub(crate) async fn latency(
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
