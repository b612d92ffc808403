//! The delivery queue: claims of the oldest due within a limit, queue depths per connector,
//! and the deliveries a deleted connector left behind.

use crate::{each_database, new_connector};

/// One event with one delivery to `connector` (id and name), due at `at`.
fn one_delivery(
    account: &hookwarden_core::AccountId,
    connector: &hookwarden_store::ConnectorRecord,
    n: usize,
    status: hookwarden_core::DeliveryStatus,
    at: i64,
) -> hookwarden_store::IngestWrite {
    let event_id = hookwarden_core::EventId::from(format!("evt-{}-{n}", connector.name));
    hookwarden_store::IngestWrite {
        account_id: account.clone(),
        idempotency: None,
        events: vec![hookwarden_store::NewEvent {
            id: event_id.clone(),
            account_id: account.clone(),
            name: "PACKAGE_COMPLETE".into(),
            origin: "OSS".into(),
            package_id: format!("pkg-{n}"),
            payload: "{}".into(),
            created_at: at,
        }],
        deliveries: vec![hookwarden_store::NewDelivery {
            id: format!("dlv-{}-{n}", connector.name).into(),
            account_id: account.clone(),
            event_id,
            event_name: "PACKAGE_COMPLETE".into(),
            connector_id: connector.id.clone(),
            connector_name: connector.name.clone(),
            package_id: format!("pkg-{n}"),
            order_key: None,
            status,
            created_at: at,
        }],
    }
}

#[tokio::test]
async fn claims_take_the_oldest_due_up_to_a_limit_that_changes_from_claim_to_claim() {
    use hookwarden_core::DeliveryStatus::Pending;
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let (alpha, _) = store
            .upsert_connector(new_connector(&acme.id, "alpha", "secret-1234"))
            .await
            .unwrap();
        let writes: Vec<_> = (0..7)
            .map(|n| one_delivery(&acme.id, &alpha, n, Pending, 100 + n as i64))
            .collect();
        store.commit_ingest(&writes, 100).await.unwrap();
        // The workers' claims vary in size with their lanes' free room; each is honoured.
        let mut taken = Vec::new();
        for (i, limit) in [2usize, 1, 3, 5].into_iter().enumerate() {
            let claimed = store
                .claim_due(1_000, 60_000, &format!("n:{i}"), limit, &[])
                .await
                .unwrap();
            let expected = limit.min(7 - taken.len());
            assert_eq!(claimed.len(), expected, "{url}: limit {limit}");
            taken.extend(claimed.into_iter().map(|c| c.id));
        }
        let oldest_first: Vec<String> = (0..7).map(|n| format!("dlv-alpha-{n}")).collect();
        assert_eq!(taken, oldest_first, "{url}");
    })
    .await;
}

/// A claim from a due time (the claimer's floor, on PostgreSQL) takes nothing due before it
/// and the oldest due from it on; what it left is there for a claim from the oldest. SQLite
/// reads from the oldest whatever the bound (its index keeps no dead entries to skip).
#[tokio::test]
async fn a_claim_from_a_due_time_leaves_what_was_due_before_it_on_postgres() {
    use hookwarden_core::DeliveryStatus::Pending;
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let (alpha, _) = store
            .upsert_connector(new_connector(&acme.id, "alpha", "secret-1234"))
            .await
            .unwrap();
        store
            .commit_ingest(&[one_delivery(&acme.id, &alpha, 0, Pending, 100)], 100)
            .await
            .unwrap();
        let later: Vec<_> = (1..3)
            .map(|n| one_delivery(&acme.id, &alpha, n, Pending, 5_000))
            .collect();
        store.commit_ingest(&later, 5_000).await.unwrap();
        let ids = |claimed: Vec<hookwarden_store::ClaimedDelivery>| -> Vec<String> {
            claimed.into_iter().map(|c| c.id.to_string()).collect()
        };
        let from_floor = store
            .claim_due_from(10_000, 60_000, "n:1", 10, &[], 4_000)
            .await
            .unwrap();
        if store.is_postgres() {
            assert_eq!(ids(from_floor), ["dlv-alpha-1", "dlv-alpha-2"], "{url}");
            let rest = store
                .claim_due(10_000, 60_000, "n:2", 10, &[])
                .await
                .unwrap();
            assert_eq!(ids(rest), ["dlv-alpha-0"], "{url}");
        } else {
            assert_eq!(
                ids(from_floor),
                ["dlv-alpha-0", "dlv-alpha-1", "dlv-alpha-2"],
                "{url}"
            );
        }
    })
    .await;
}

/// The maintenance tick's re-check: the waiting deliveries of a connector that is not active
/// are held (not one a worker holds the lease of), and come back due, in order, when it is
/// active again; the other connectors' deliveries are not touched.
#[tokio::test]
async fn deliveries_are_held_while_their_connector_is_not_active_and_due_again_after() {
    use hookwarden_core::{ConnectorStatus, DeliveryStatus::Pending};
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let (alpha, _) = store
            .upsert_connector(new_connector(&acme.id, "alpha", "secret-1234"))
            .await
            .unwrap();
        let (beta, _) = store
            .upsert_connector(new_connector(&acme.id, "beta", "secret-1234"))
            .await
            .unwrap();
        let mut writes: Vec<_> = (0..3)
            .map(|n| one_delivery(&acme.id, &alpha, n, Pending, 100 + n as i64))
            .collect();
        writes.push(one_delivery(&acme.id, &beta, 0, Pending, 100));
        store.commit_ingest(&writes, 100).await.unwrap();
        // Everything active: nothing to do.
        assert_eq!(
            store.sync_held_deliveries(200).await.unwrap(),
            (0, 0),
            "{url}"
        );
        // A worker holds alpha's first; then alpha needs re-authentication.
        let claimed = store.claim_due(1_000, 60_000, "n:1", 1, &[]).await.unwrap();
        assert_eq!(claimed[0].id.as_str(), "dlv-alpha-0", "{url}");
        store
            .set_connector_status(&alpha.id, ConnectorStatus::NeedsReauth, None)
            .await
            .unwrap();
        assert_eq!(
            store.sync_held_deliveries(300).await.unwrap(),
            (0, 2),
            "{url}"
        );
        assert_eq!(
            store.sync_held_deliveries(400).await.unwrap(),
            (0, 0),
            "{url}"
        );
        // Active again: both due now (the leased one's outcome decides its fate).
        store
            .set_connector_status(&alpha.id, ConnectorStatus::Active, None)
            .await
            .unwrap();
        assert_eq!(
            store.sync_held_deliveries(500).await.unwrap(),
            (2, 0),
            "{url}"
        );
        let due: Vec<String> = store
            .claim_due(1_000, 60_000, "n:2", 10, &[])
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id.as_str().to_owned())
            .collect();
        // (A claim lists what it took in ingest order.)
        assert_eq!(due, ["dlv-alpha-1", "dlv-alpha-2", "dlv-beta-0"], "{url}");
    })
    .await;
}

#[tokio::test]
async fn queue_depths_list_every_connector_and_orphans_are_failed_by_connector() {
    use hookwarden_core::DeliveryStatus::{Held, Pending};
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let mut connectors = Vec::new();
        for name in ["alpha", "beta", "gone", "idle"] {
            let (c, _) = store
                .upsert_connector(new_connector(&acme.id, name, "secret-1234"))
                .await
                .unwrap();
            connectors.push(c);
        }
        let [alpha, beta, gone, _idle] = &connectors[..] else {
            unreachable!()
        };
        let writes = vec![
            one_delivery(&acme.id, alpha, 0, Pending, 100),
            one_delivery(&acme.id, alpha, 1, Pending, 100),
            one_delivery(&acme.id, alpha, 2, Pending, 5_000),
            one_delivery(&acme.id, beta, 0, Held, 100),
            one_delivery(&acme.id, gone, 0, Pending, 100),
            one_delivery(&acme.id, gone, 1, Held, 100),
        ];
        store.commit_ingest(&writes, 100).await.unwrap();

        let depths = store.connector_gauges(1_000).await.unwrap();
        let of = |name: &str| {
            depths
                .iter()
                .find(|d| d.connector_name == name)
                .map(|d| (d.due, d.held, d.failed))
        };
        assert_eq!(
            of("alpha"),
            Some((2, 0, 0)),
            "{url}: not yet due is not due"
        );
        assert_eq!(of("beta"), Some((0, 1, 0)), "{url}");
        assert_eq!(of("idle"), Some((0, 0, 0)), "{url}: zeros are reported too");

        assert!(store.orphaned_connectors().await.unwrap().is_empty());
        // Deleted without failing its deliveries (the race the sweep is for).
        assert!(store.delete_connector(&acme.id, "gone").await.unwrap());
        assert_eq!(
            store.orphaned_connectors().await.unwrap(),
            vec![gone.id.clone()],
            "{url}"
        );
        assert_eq!(
            store
                .fail_connector_deliveries(&gone.id, "connector_deleted", 2_000)
                .await
                .unwrap(),
            2
        );
        assert!(store.orphaned_connectors().await.unwrap().is_empty());
        let d = store
            .get_delivery(&acme.id, &"dlv-gone-1".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.status, hookwarden_core::DeliveryStatus::Failed);
        assert_eq!(d.last_error.as_deref(), Some("connector_deleted"));
        // The others are untouched, and the deleted connector no longer has a gauge.
        let depths = store.connector_gauges(1_000).await.unwrap();
        assert_eq!(depths.len(), 3, "{url}: {depths:?}");
        assert!(depths.iter().all(|d| d.connector_name != "gone"));
    })
    .await;
}
