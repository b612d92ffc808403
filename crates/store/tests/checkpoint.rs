//! SQLite's WAL is copied back into the database file in the background (no writer's commit
//! does it): committed pages reach the file without anyone asking for a checkpoint.

use std::time::{Duration, Instant};

use hookwarden_core::DeliveryStatus;
use hookwarden_store::{IngestWrite, MasterKey, MasterKeySource, NewDelivery, NewEvent, Store};

fn write(n: usize) -> IngestWrite {
    let mut w = IngestWrite {
        account_id: "acc".into(),
        idempotency: None,
        events: Vec::new(),
        deliveries: Vec::new(),
    };
    for i in 0..n {
        w.events.push(NewEvent {
            id: format!("evt-{i}").into(),
            account_id: "acc".into(),
            name: "PACKAGE_COMPLETE".into(),
            origin: "OSS".into(),
            package_id: format!("pkg-{i}"),
            payload: format!(
                "{{\"packageId\":\"pkg-{i}\",\"pad\":\"{}\"}}",
                "x".repeat(200)
            ),
            created_at: 1,
        });
        w.deliveries.push(NewDelivery {
            id: format!("dlv-{i}").into(),
            account_id: "acc".into(),
            event_id: format!("evt-{i}").into(),
            event_name: "PACKAGE_COMPLETE".into(),
            connector_id: "con".into(),
            connector_name: "c".into(),
            package_id: format!("pkg-{i}"),
            order_key: None,
            status: DeliveryStatus::Pending,
            created_at: 1,
        });
    }
    w
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_without_a_checkpoint_in_any_commit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hw.db");
    let store = Store::open(
        &format!("sqlite://{}", file.display()),
        MasterKeySource::Given(MasterKey::generate()),
    )
    .await
    .unwrap();
    // Let the first background checkpoint copy the migrations, then measure from there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = std::fs::metadata(&file).unwrap().len();
    store.commit_ingest(&[write(2000)], 1).await.unwrap();
    let wal = std::fs::metadata(dir.path().join("hw.db-wal"))
        .unwrap()
        .len();
    assert!(wal > 500_000, "the rows are in the WAL first ({wal} bytes)");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = std::fs::metadata(&file).unwrap().len();
        if now > before + 500_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {now} bytes (was {before}): nothing checkpointed the WAL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimed = store
        .claim_due(2, 100_000, "n:1", 10_000, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2000);
    store.close().await;
}
