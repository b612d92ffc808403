//! `cargo run --release -p hookwarden-store --example pipeline_bench [sqlite|postgres-url]`: the
//! storage side of one delivery, alone: ingest (groups of 1,000), claims (256 at a time) and
//! outcomes with one attempt each (256 at a time). Prints the time each stage costs per
//! delivery, so that a change to the SQL or the schema can be judged without the HTTP around it.
//! `HOOKWARDEN_BENCH_N` sets the deliveries (default 50,000).

use std::time::Instant;

use hookwarden_core::{ConnectorId, DeliveryId, DeliveryStatus, EventId};
use hookwarden_store::{
    Completion, IngestWrite, MasterKey, MasterKeySource, NewAttempt, NewDelivery, NewEvent, Store,
};

const GROUP: usize = 1000;
const CLAIM: usize = 256;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("HOOKWARDEN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir()?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = Store::open(&url, MasterKeySource::Given(MasterKey::generate())).await?;
    let (account, _) = store.create_account("bench").await?;
    let gate = store.write_gate();
    let account = account.id;
    let connector = ConnectorId::generate();
    let body = r#"{"@class":"com.silanis.esl.packages.event.ESLProcessEvent","name":"PACKAGE_COMPLETE","sessionUser":null,"packageId":"pkg-000000","message":null,"documentId":null,"createdDate":"2026-11-30T12:00:00.000Z"}"#;

    let now = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    for group in 0..n.div_ceil(GROUP) {
        let count = GROUP.min(n - group * GROUP);
        let mut write = IngestWrite {
            account_id: account.clone(),
            idempotency: None,
            events: Vec::with_capacity(count),
            deliveries: Vec::with_capacity(count),
        };
        for i in 0..count {
            let event = EventId::generate();
            let package = format!("pkg-{}", group * GROUP + i);
            write.deliveries.push(NewDelivery {
                id: DeliveryId::generate(),
                account_id: account.clone(),
                event_id: event.clone(),
                event_name: "PACKAGE_COMPLETE".into(),
                connector_id: connector.clone(),
                connector_name: "salesforceOauth2".into(),
                package_id: package.clone(),
                order_key: None,
                status: DeliveryStatus::Pending,
                created_at: now,
            });
            write.events.push(NewEvent {
                id: event,
                account_id: account.clone(),
                name: "PACKAGE_COMPLETE".into(),
                origin: "OSS".into(),
                package_id: package,
                payload: body.into(),
                created_at: now,
            });
        }
        // Writers take their turn at the store's write gate, as the server's do.
        let _turn = gate.enter().await;
        store.commit_ingest(&[write], now).await?;
    }
    let ingest = started.elapsed();

    let (mut claim, mut record, mut done) =
        (std::time::Duration::ZERO, std::time::Duration::ZERO, 0usize);
    let mut batch = 0;
    loop {
        let t = Instant::now();
        let rows = store
            .claim_due(
                now + 1,
                now + 120_000,
                &format!("bench:{batch}"),
                CLAIM,
                &[],
            )
            .await?;
        claim += t.elapsed();
        batch += 1;
        if rows.is_empty() {
            break;
        }
        let completions: Vec<Completion> = rows
            .iter()
            .map(|r| Completion {
                seq: r.seq,
                lease_token: r.lease_token.clone(),
                status: DeliveryStatus::Delivered,
                attempts_added: 1,
                next_attempt_at: None,
                last_error: None,
            })
            .collect();
        let attempts: Vec<NewAttempt> = rows
            .iter()
            .map(|r| NewAttempt {
                delivery_id: r.id.clone(),
                at: now,
                status_code: Some(200),
                duration_ms: 3,
                response_excerpt: Some("\"ok\"".into()),
                error: None,
                diagnosis: None,
                refreshed: false,
            })
            .collect();
        let t = Instant::now();
        {
            let _turn = gate.enter().await;
            store.record_outcomes(&completions, &attempts, now).await?;
        }
        record += t.elapsed();
        done += rows.len();
    }
    assert_eq!(done, n, "every delivery is claimed once");
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "{n} deliveries: ingest {:.1} µs, claim {:.1} µs, outcome {:.1} µs per delivery; total {:.1} µs ({:.0}/s)",
        per(ingest),
        per(claim),
        per(record),
        per(ingest + claim + record),
        n as f64 / (ingest + claim + record).as_secs_f64()
    );
    store.close().await;
    Ok(())
}
