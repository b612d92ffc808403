//! Retention: finished history older than the cutoff is pruned a chunk at a time; open
//! deliveries and each connector's latest token calls stay.

use crate::{each_database, new_connector};

/// Retention removes finished deliveries older than the cutoff with their attempts, their
/// events (and events that went nowhere) and old Idempotency-Keys, a chunk per call; an open
/// delivery stays whatever its age, and so does the event it will send.
#[tokio::test]
async fn history_older_than_the_cutoff_is_pruned_and_open_deliveries_stay() {
    use hookwarden_core::DeliveryStatus;
    use hookwarden_store::{
        Completion, IdempotencyRecord, IngestWrite, NewAttempt, NewDelivery, NewEvent, Pruned,
    };
    each_database(async |store, _| {
        let day = 86_400_000_i64;
        let old = 1_700_000_000_000_i64;
        let new = old + 40 * day;
        // Ids as the server makes them: a prefix and a UUIDv7, which starts with its time.
        let id = |prefix: &str, ms: i64, n: u32| format!("{prefix}_{ms:012x}{n:020x}");
        let write = |ms: i64, n: u32, routed: bool, idem: Option<&str>| IngestWrite {
            account_id: "acc".into(),
            idempotency: idem.map(|k| IdempotencyRecord {
                key: k.into(),
                request_hash: "h".into(),
                response: "{}".into(),
            }),
            events: vec![NewEvent {
                id: id("evt", ms, n).into(),
                account_id: "acc".into(),
                name: "PACKAGE_COMPLETE".into(),
                origin: "OSS".into(),
                package_id: format!("pkg-{n}"),
                payload: format!("{{\"n\":{n}}}"),
                created_at: ms,
            }],
            deliveries: if routed {
                vec![NewDelivery {
                    id: id("dlv", ms, n).into(),
                    account_id: "acc".into(),
                    event_id: id("evt", ms, n).into(),
                    event_name: "PACKAGE_COMPLETE".into(),
                    connector_id: "con".into(),
                    connector_name: "c".into(),
                    package_id: format!("pkg-{n}"),
                    order_key: None,
                    status: DeliveryStatus::Pending,
                    created_at: ms,
                }]
            } else {
                vec![]
            },
        };
        let finish = async |at: i64, token: &str, limit: usize, outcomes: &[DeliveryStatus]| {
            let claimed = store
                .claim_due(at, at + 60_000, token, limit, &[])
                .await
                .unwrap();
            assert_eq!(claimed.len(), outcomes.len());
            let completions: Vec<Completion> = claimed
                .iter()
                .zip(outcomes)
                .map(|(c, s)| Completion {
                    seq: c.seq,
                    lease_token: c.lease_token.clone(),
                    status: *s,
                    attempts_added: 1,
                    next_attempt_at: None,
                    last_error: None,
                })
                .collect();
            let attempts: Vec<NewAttempt> = claimed
                .iter()
                .map(|c| NewAttempt {
                    delivery_id: c.id.clone(),
                    at,
                    status_code: Some(200),
                    duration_ms: 1,
                    response_excerpt: None,
                    error: None,
                    diagnosis: None,
                    refreshed: false,
                })
                .collect();
            store
                .record_outcomes(&completions, &attempts, at)
                .await
                .unwrap();
        };
        store
            .commit_ingest(
                &[
                    write(old, 0, true, Some("key-0")),
                    write(old, 1, true, None),
                    write(old, 2, true, None),
                    write(old, 3, false, None),
                ],
                old,
            )
            .await
            .unwrap();
        // Delivered and failed; the third stays pending, unclaimed.
        finish(
            old + 1,
            "n:1",
            2,
            &[DeliveryStatus::Delivered, DeliveryStatus::Failed],
        )
        .await;
        store
            .commit_ingest(&[write(new, 4, true, Some("key-4"))], new)
            .await
            .unwrap();

        let cutoff = new - 30 * day;
        let mut total = Pruned::default();
        let mut calls = 0;
        loop {
            let (pruned, more) = store.prune_history(cutoff, 1).await.unwrap();
            total.add(pruned);
            calls += 1;
            assert!(calls < 20, "pruning never finished: {total:?}");
            if !more {
                break;
            }
        }
        assert_eq!(
            total,
            Pruned {
                deliveries: 2,
                attempts: 2,
                events: 3,
                idempotency_keys: 1,
                token_calls: 0
            }
        );
        assert!(calls > 2, "one chunk of one row per call");
        assert_eq!(
            store.prune_history(cutoff, 1000).await.unwrap(),
            (Pruned::default(), false),
            "nothing left to prune"
        );
        for gone in [id("dlv", old, 0), id("dlv", old, 1)] {
            assert!(store
                .get_delivery(&"acc".into(), &gone.into())
                .await
                .unwrap()
                .is_none());
        }
        // The old open delivery and the new one are still there; the old one still has its
        // event's body to send.
        let claimed = store
            .claim_due(new + 1, new + 60_000, "n:2", 10, &[])
            .await
            .unwrap();
        let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, [id("dlv", old, 2), id("dlv", new, 4)]);
        assert_eq!(claimed[0].payload, "{\"n\":2}");
        // Once every delivery is older than the cutoff and finished, all of it goes.
        let done: Vec<Completion> = claimed
            .iter()
            .map(|c| Completion {
                seq: c.seq,
                lease_token: c.lease_token.clone(),
                status: DeliveryStatus::Delivered,
                attempts_added: 1,
                next_attempt_at: None,
                last_error: None,
            })
            .collect();
        store.record_outcomes(&done, &[], new + 2).await.unwrap();
        let (pruned, more) = store.prune_history(new + 2 * day, 1000).await.unwrap();
        assert_eq!(
            (pruned.deliveries, pruned.events, more),
            (2, 2, false),
            "{pruned:?}"
        );
    })
    .await;
}

/// Token calls older than the cutoff go, except each connector's newest few, which say why a
/// connector broken for longer than the retention is in its state.
#[tokio::test]
async fn old_token_calls_are_pruned_but_each_connectors_latest_stay() {
    use hookwarden_store::retention::KEPT_TOKEN_CALLS;
    use hookwarden_store::{HistoryKind, NewHistoryEntry};
    each_database(async |store, _| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let mut ids = Vec::new();
        for name in ["busy", "quiet"] {
            let (record, _) = store
                .upsert_connector(new_connector(&acme.id, name, "secret-1234"))
                .await
                .unwrap();
            ids.push(record.id);
        }
        let entry = |connector_id: &hookwarden_core::ConnectorId| NewHistoryEntry {
            connector_id: connector_id.clone(),
            account_id: acme.id.clone(),
            at: 1_000,
            kind: HistoryKind::Refresh,
            grant_type: Some("refresh_token".into()),
            outcome: "ok".into(),
            http_status: Some(200),
            error: None,
            error_description: None,
            diagnosis_code: None,
            cause: None,
            fix: None,
            duration_ms: 5,
            excerpt: None,
        };
        let busy_calls = KEPT_TOKEN_CALLS as usize + 5;
        for _ in 0..busy_calls {
            store.record_history(&entry(&ids[0])).await.unwrap();
        }
        for _ in 0..3 {
            store.record_history(&entry(&ids[1])).await.unwrap();
        }
        // A cutoff after every entry: all are old, only the newest of each connector stay.
        let cutoff = chrono::Utc::now().timestamp_millis() + 86_400_000;
        let (pruned, more) = store.prune_history(cutoff, 1000).await.unwrap();
        assert_eq!((pruned.token_calls, more), (5, false), "{pruned:?}");
        let page = store.list_history(&ids[0], 500, None).await.unwrap();
        assert_eq!(page.len(), KEPT_TOKEN_CALLS as usize);
        assert_eq!(
            store.list_history(&ids[1], 500, None).await.unwrap().len(),
            3
        );
    })
    .await;
}
