//! Two nodes claiming from one database at the same moment: every due delivery is claimed by
//! exactly one of them (PostgreSQL's `FOR UPDATE SKIP LOCKED`, SQLite's single writer).

use std::collections::HashMap;

use hookwarden_core::DeliveryStatus;
use hookwarden_store::{
    testing, IngestWrite, MasterKey, MasterKeySource, NewDelivery, NewEvent, Store,
};

const DELIVERIES: usize = 3_000;
const CLAIM: usize = 40;

fn backlog(t: i64) -> Vec<IngestWrite> {
    (0..DELIVERIES / 100)
        .map(|g| {
            let mut w = IngestWrite {
                account_id: "acc".into(),
                idempotency: None,
                events: Vec::new(),
                deliveries: Vec::new(),
            };
            for i in 0..100 {
                let id = format!("{g}-{i}");
                w.events.push(NewEvent {
                    id: format!("evt-{id}").into(),
                    account_id: "acc".into(),
                    name: "E".into(),
                    origin: "O".into(),
                    package_id: format!("pkg-{id}"),
                    payload: "{}".into(),
                    created_at: t,
                });
                w.deliveries.push(NewDelivery {
                    id: format!("dlv-{id}").into(),
                    account_id: "acc".into(),
                    event_id: format!("evt-{id}").into(),
                    event_name: "E".into(),
                    // Several connectors, so the claim's per-connector paths are raced too.
                    connector_id: format!("con-{}", i % 3).into(),
                    connector_name: format!("c{}", i % 3),
                    package_id: format!("pkg-{id}"),
                    order_key: None,
                    status: DeliveryStatus::Pending,
                    created_at: t,
                });
            }
            w
        })
        .collect()
}

#[tokio::test]
async fn two_nodes_racing_for_the_same_due_deliveries_claim_each_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKey::generate();
        let a = Store::open(&url, MasterKeySource::Given(key.clone()))
            .await
            .unwrap();
        a.commit_ingest(&backlog(100), 100).await.unwrap();
        // The second node: its own pool (its own connections) on the same database.
        let b = Store::open(&url, MasterKeySource::Given(key))
            .await
            .unwrap();

        // Rounds in which both nodes' claims are in flight at once, until neither gets any.
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        for round in 0.. {
            // Every claim has a lease token of its own, as the workers' claims do.
            let (lease_a, lease_b) = (format!("node-a:{round}"), format!("node-b:{round}"));
            let (x, y) = tokio::join!(
                a.claim_due(1_000, 1_000_000, &lease_a, CLAIM, &[]),
                b.claim_due(1_000, 1_000_000, &lease_b, CLAIM, &[]),
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            if x.is_empty() && y.is_empty() {
                break;
            }
            got_a.extend(x.into_iter().map(|c| c.id));
            got_b.extend(y.into_iter().map(|c| c.id));
        }

        let mut claims: HashMap<&str, u32> = HashMap::new();
        for id in got_a.iter().chain(&got_b) {
            *claims.entry(id.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = claims.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "{} deliveries claimed by both nodes on {url}, e.g. {:?}",
            twice.len(),
            &twice[..twice.len().min(5)]
        );
        assert_eq!(claims.len(), DELIVERIES, "every delivery claimed on {url}");
        assert!(
            !got_a.is_empty() && !got_b.is_empty(),
            "both nodes took a share on {url}: {} and {}",
            got_a.len(),
            got_b.len()
        );
    }
}
