//! Deliveries: ingest, claims and their outcomes, and the queries that read them back, run on
//! in-memory SQLite always and on PostgreSQL when HOOKWARDEN_TEST_PG_URL is set.

use hookwarden_core::{ConnectorId, DeliveryStatus};
use hookwarden_store::testing::{self, HeldLoop, PlannedQuery};
use hookwarden_store::{
    ClaimedDelivery, Completion, DeliveryFilter, IdempotencyRecord, IngestOutcome, IngestWrite,
    MasterKey, MasterKeySource, NewAttempt, NewDelivery, NewEvent, Store, StoreError,
};

/// In-memory SQLite, and PostgreSQL when HOOKWARDEN_TEST_PG_URL is set.
async fn stores() -> Vec<Store> {
    let mut urls = vec!["sqlite::memory:".to_owned()];
    urls.extend(testing::fresh_postgres_url().await);
    let mut out = Vec::new();
    for url in urls {
        let key = MasterKeySource::Given(MasterKey::generate());
        out.push(Store::open(&url, key).await.unwrap());
    }
    out
}

/// A store on a database of its own, and its URL, when HOOKWARDEN_TEST_PG_URL is set.
async fn postgres_store() -> Option<(Store, String)> {
    let url = testing::fresh_postgres_url().await?;
    let key = MasterKeySource::Given(MasterKey::generate());
    Some((Store::open(&url, key).await.unwrap(), url))
}

fn write(n: usize, package: &str, ordered: bool, t: i64) -> IngestWrite {
    let mut w = IngestWrite {
        account_id: "acc".into(),
        idempotency: None,
        events: Vec::new(),
        deliveries: Vec::new(),
    };
    for i in 0..n {
        let id = format!("{package}-{i}");
        w.events.push(NewEvent {
            id: format!("evt-{id}").into(),
            account_id: "acc".into(),
            name: "E".into(),
            origin: "O".into(),
            package_id: package.into(),
            payload: format!("{{\"n\":{i}}}"),
            created_at: t,
        });
        w.deliveries.push(NewDelivery {
            id: format!("dlv-{id}").into(),
            account_id: "acc".into(),
            event_id: format!("evt-{id}").into(),
            event_name: "E".into(),
            connector_id: "con".into(),
            connector_name: "c".into(),
            package_id: package.into(),
            order_key: ordered.then(|| package.to_owned()),
            status: DeliveryStatus::Pending,
            created_at: t,
        });
    }
    w
}

fn done(c: &ClaimedDelivery, status: DeliveryStatus, next: Option<i64>) -> Completion {
    Completion {
        seq: c.seq,
        lease_token: c.lease_token.clone(),
        status,
        attempts_added: 1,
        next_attempt_at: next,
        last_error: None,
    }
}

#[tokio::test]
async fn per_package_deliveries_are_claimed_one_at_a_time_in_order() {
    for s in stores().await {
        s.commit_ingest(&[write(3, "p", true, 100), write(2, "q", false, 100)], 100)
            .await
            .unwrap();
        let first = s.claim_due(200, 10_000, "n:1", 100, &[]).await.unwrap();
        let ids: Vec<&str> = first.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["dlv-p-0", "dlv-q-0", "dlv-q-1"], "only the head of p");
        assert_eq!(first[0].payload, "{\"n\":0}");
        // A retry of the head keeps the rest of its package waiting.
        s.record_outcomes(
            &[done(&first[0], DeliveryStatus::Pending, Some(5_000))],
            &[],
            200,
        )
        .await
        .unwrap();
        assert!(s
            .claim_due(300, 10_000, "n:2", 100, &[])
            .await
            .unwrap()
            .is_empty());
        let again = s.claim_due(5_000, 20_000, "n:3", 100, &[]).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        s.record_outcomes(
            &[done(&again[0], DeliveryStatus::Delivered, None)],
            &[],
            5_000,
        )
        .await
        .unwrap();
        let next = s.claim_due(5_001, 20_000, "n:4", 100, &[]).await.unwrap();
        assert_eq!(next[0].id, "dlv-p-1");
    }
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_and_the_stale_completion_changes_nothing() {
    for s in stores().await {
        s.commit_ingest(&[write(1, "p", false, 100)], 100)
            .await
            .unwrap();
        let a = s.claim_due(100, 1_000, "a:1", 10, &[]).await.unwrap();
        assert!(
            s.claim_due(500, 1_500, "b:1", 10, &[])
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        // On PostgreSQL a lease ends by the database's clock (900 ms after the claim here),
        // whatever the claiming node's clock says: a node far ahead does not take it early.
        if s.is_postgres() {
            let far_ahead = 4_000_000_000_000;
            assert!(s
                .claim_due(far_ahead, far_ahead + 900, "b:ahead", 10, &[])
                .await
                .unwrap()
                .is_empty());
            tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
        }
        // The lease ran out (the node died): another claims it.
        let now = if s.is_postgres() {
            4_000_000_000_000
        } else {
            1_000
        };
        let b = s.claim_due(now, now + 1_000, "b:2", 10, &[]).await.unwrap();
        assert_eq!(b.len(), 1);
        s.record_outcomes(&[done(&a[0], DeliveryStatus::Failed, None)], &[], 1_100)
            .await
            .unwrap();
        let d = s
            .get_delivery(&"acc".into(), &"dlv-p-0".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.status, DeliveryStatus::Pending, "the stale claim lost");
        assert!(d.in_flight);
        s.record_outcomes(&[done(&b[0], DeliveryStatus::Delivered, None)], &[], 1_200)
            .await
            .unwrap();
        let d = s
            .get_delivery(&"acc".into(), &"dlv-p-0".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((d.status, d.in_flight), (DeliveryStatus::Delivered, false));
        // Excluded connectors are skipped; releasing a node's leases makes its claims due.
        s.commit_ingest(&[write(1, "r", false, 100)], 100)
            .await
            .unwrap();
        assert!(s
            .claim_due(2_000, 3_000, "c:1", 10, &["con".into()])
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.claim_due(2_000, 3_000, "c:1", 10, &[])
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(s.release_leases_of_node("c", 2_000).await.unwrap(), 1);
        assert_eq!(
            s.claim_due(2_000, 3_000, "d:1", 10, &[])
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

/// Batches past one statement's rows: whole chunks plus a padded tail (SQLite), and
/// every row written, claimed and completed exactly once.
#[tokio::test]
async fn large_batches_are_written_claimed_and_completed_whole() {
    for s in stores().await {
        let writes = [write(300, "p", false, 100), write(7, "q", false, 100)];
        s.commit_ingest(&writes, 100).await.unwrap();
        let mut claimed = Vec::new();
        for token in ["n:1", "n:2", "n:3"] {
            claimed.extend(s.claim_due(200, 10_000, token, 130, &[]).await.unwrap());
        }
        assert_eq!(claimed.len(), 307);
        let ids: std::collections::HashSet<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 307, "no delivery claimed twice");
        assert_eq!(claimed[0].payload, "{\"n\":0}");
        // Written in the batch's order (seq), so claimed in it: the 300 of "p", then "q"'s 7.
        let expected: Vec<String> = (0..300)
            .map(|i| format!("dlv-p-{i}"))
            .chain((0..7).map(|i| format!("dlv-q-{i}")))
            .collect();
        let in_order: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(in_order, expected);
        assert!(s
            .claim_due(300, 10_000, "n:4", 10, &[])
            .await
            .unwrap()
            .is_empty());
        let completions: Vec<Completion> = claimed
            .iter()
            .map(|c| done(c, DeliveryStatus::Delivered, None))
            .collect();
        let attempts: Vec<NewAttempt> = claimed
            .iter()
            .take(200)
            .map(|c| NewAttempt {
                delivery_id: c.id.clone(),
                at: 250,
                status_code: Some(200),
                duration_ms: 3,
                response_excerpt: Some("ok".into()),
                error: None,
                diagnosis: None,
                refreshed: false,
            })
            .collect();
        s.record_outcomes(&completions, &attempts, 300)
            .await
            .unwrap();
        for c in [&claimed[0], &claimed[150], &claimed[306]] {
            let d = s.get_delivery(&"acc".into(), &c.id).await.unwrap().unwrap();
            assert_eq!((d.status, d.in_flight), (DeliveryStatus::Delivered, false));
        }
        let recorded = s
            .attempts_of(&[claimed[199].id.clone(), claimed[200].id.clone()])
            .await
            .unwrap();
        assert_eq!(recorded.len(), 1, "attempts of the first 200 only");
    }
}

#[tokio::test]
async fn idempotency_keys_replay_or_conflict() {
    for s in stores().await {
        let mut w = write(1, "p", false, 100);
        w.idempotency = Some(IdempotencyRecord {
            key: "k".into(),
            request_hash: "h1".into(),
            response: "{\"id\":\"x\"}".into(),
        });
        assert_eq!(
            s.commit_ingest(&[w.clone()], 100).await.unwrap(),
            [IngestOutcome::Written]
        );
        let mut other = w.clone();
        other.idempotency.as_mut().unwrap().request_hash = "h2".into();
        // Same key in one group: the first is a replay of the stored answer, the second conflicts.
        assert_eq!(
            s.commit_ingest(&[w, other], 100).await.unwrap(),
            [
                IngestOutcome::Replay("{\"id\":\"x\"}".into()),
                IngestOutcome::Conflict
            ]
        );
        let all = s
            .list_deliveries(&DeliveryFilter {
                account_id: "acc".into(),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
    }
}

/// Status filters, queue depths and connector maintenance find open deliveries through
/// the indexes that leave delivered ones out, and still answer exactly.
#[tokio::test]
async fn open_deliveries_are_found_by_index_and_delivered_ones_by_history() {
    for s in stores().await {
        s.commit_ingest(&[write(3, "p", false, 100)], 100)
            .await
            .unwrap();
        let c = s.claim_due(100, 1_000, "n:1", 2, &[]).await.unwrap();
        s.record_outcomes(
            &[
                done(&c[0], DeliveryStatus::Delivered, None),
                done(&c[1], DeliveryStatus::Failed, None),
            ],
            &[],
            200,
        )
        .await
        .unwrap();
        let ids = |status| {
            let s = s.clone();
            async move {
                let filter = DeliveryFilter {
                    account_id: "acc".into(),
                    connector_name: None,
                    status,
                    package_id: None,
                    since_ms: None,
                    until_ms: None,
                    before_seq: None,
                    limit: 10,
                };
                let rows = s.list_deliveries(&filter).await.unwrap();
                rows.into_iter().map(|d| d.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(ids(Some(DeliveryStatus::Delivered)).await, ["dlv-p-0"]);
        assert_eq!(ids(Some(DeliveryStatus::Failed)).await, ["dlv-p-1"]);
        assert_eq!(ids(Some(DeliveryStatus::Pending)).await, ["dlv-p-2"]);
        assert_eq!(ids(None).await, ["dlv-p-2", "dlv-p-1", "dlv-p-0"]);
        let depths = s.connector_gauges(300).await.unwrap();
        assert!(depths.is_empty(), "no connector row, no gauge");
        assert_eq!(
            s.hold_connector_deliveries(&"con".into(), 300)
                .await
                .unwrap(),
            1
        );
        assert_eq!(ids(Some(DeliveryStatus::Held)).await, ["dlv-p-2"]);
        assert_eq!(
            s.replay_deliveries(&"acc".into(), "c", DeliveryStatus::Failed, 0, 1_000, 400)
                .await
                .unwrap(),
            1
        );
        assert_eq!(ids(Some(DeliveryStatus::Pending)).await, ["dlv-p-1"]);

        if s.is_postgres() {
            continue;
        }
        let plan = |query: PlannedQuery| {
            let s = &s;
            async move {
                testing::sqlite_query_plan(s, query)
                    .await
                    .unwrap()
                    .expect("a SQLite store")
            }
        };
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Held,
            DeliveryStatus::Failed,
        ] {
            let p = plan(PlannedQuery::ListDeliveries(Some(status))).await;
            assert!(
                p.contains("deliveries_open (account_id=? AND status=?)"),
                "{p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "read in order, not sorted: {p}");
        }
        let p = plan(PlannedQuery::ConnectorGauges).await;
        // Due, held, failed, and the oldest pending's seq: four probes of the connector index;
        // then that one delivery read by its key.
        assert_eq!(p.matches("deliveries_connector").count(), 4, "{p}");
        assert!(p.contains("USING INTEGER PRIMARY KEY"), "{p}");
    }
}

/// The maintenance tick's hold and resume find a connector's deliveries by index, also in a
/// new database whose tables PostgreSQL has no statistics of yet: planned as `IN (SELECT ...)`
/// there, the hold walked every pending delivery each tick on every worker.
#[tokio::test]
async fn holding_and_resuming_find_the_connectors_deliveries_by_index_without_statistics() {
    let Some((s, _)) = postgres_store().await else {
        return;
    };
    // Not analysed: a new database before autovacuum's first ANALYZE.
    for chunk in 0..10 {
        s.commit_ingest(&[write(500, &format!("p{chunk}"), false, 100)], 100)
            .await
            .unwrap();
    }
    for query in [PlannedQuery::ResumeHeld, PlannedQuery::HoldInactive] {
        let plan = testing::postgres_query_plan(&s, query)
            .await
            .unwrap()
            .expect("a PostgreSQL store");
        assert!(plan.contains("deliveries_connector"), "{query:?}: {plan}");
        assert!(!plan.contains("deliveries_due"), "{query:?}: {plan}");
        assert!(
            !plan.contains("Seq Scan on deliveries"),
            "{query:?}: {plan}"
        );
    }
}

/// The claim walks `deliveries_due` in order and stops at its limit. On the bench's young,
/// fast-growing tables PostgreSQL planned most claims as a bitmap scan of every due row, sorted,
/// then limited (the whole backlog read at each claim); the claimer's connection does not take
/// bitmap scans. (This test's own statistics do not lead the planner there by themselves: it
/// checks the plan here and the connection's setting.)
#[tokio::test]
async fn the_claim_walks_the_due_index_in_order_whatever_the_statistics() {
    use sqlx::Connection;
    let Some((s, url)) = postgres_store().await else {
        return;
    };
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("ALTER TABLE deliveries SET (autovacuum_enabled = off)")
        .execute(&mut admin)
        .await
        .unwrap();
    // Many delivered, a few due: then analysed.
    for chunk in 0..4 {
        s.commit_ingest(&[write(500, &format!("d{chunk}"), false, 50)], 50)
            .await
            .unwrap();
        let claimed = s.claim_due(60, 9_000, "n:0", 500, &[]).await.unwrap();
        let outcomes: Vec<Completion> = claimed
            .iter()
            .map(|c| done(c, DeliveryStatus::Delivered, None))
            .collect();
        s.record_outcomes(&outcomes, &[], 60).await.unwrap();
    }
    s.commit_ingest(&[write(200, "old", false, 100)], 100)
        .await
        .unwrap();
    sqlx::raw_sql("ANALYZE deliveries")
        .execute(&mut admin)
        .await
        .unwrap();
    for chunk in 0..10 {
        let at = 200 + chunk;
        s.commit_ingest(&[write(500, &format!("p{chunk}"), false, at)], at)
            .await
            .unwrap();
    }
    let plan = testing::postgres_query_plan(&s, PlannedQuery::Claim)
        .await
        .unwrap()
        .expect("a PostgreSQL store");
    assert!(
        plan.contains("Index Scan using deliveries_due on deliveries d"),
        "{plan}"
    );
    assert!(!plan.contains("Bitmap"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
    // The scan starts at the claimer's floor rather than reading up to it.
    assert!(
        plan.contains("Index Cond: ((next_attempt_at <= '10000'::bigint) AND (next_attempt_at >= "),
        "{plan}"
    );
    let bitmaps = testing::held_connection_setting(&s, HeldLoop::Claim, "enable_bitmapscan").await;
    assert_eq!(bitmaps.unwrap().as_deref(), Some("off"));
    // And it claims the earliest due.
    let claimed = s.claim_due(10_000, 20_000, "n:1", 3, &[]).await.unwrap();
    let ids: Vec<String> = claimed.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["dlv-old-0", "dlv-old-1", "dlv-old-2"]);
}

/// A batch of outcomes finds each delivery by its key, also a batch of hundreds on a table
/// PostgreSQL thinks small: there it chose a hash join over a sequential scan of `deliveries`
/// (in the bench, 2,400 buffers per outcome write on a table of 30,000 rows).
#[tokio::test]
async fn outcomes_find_their_deliveries_by_key_however_many() {
    let Some((s, _)) = postgres_store().await else {
        return;
    };
    for chunk in 0..4 {
        s.commit_ingest(&[write(500, &format!("p{chunk}"), false, 100)], 100)
            .await
            .unwrap();
    }
    let plan = testing::postgres_query_plan(&s, PlannedQuery::Completions)
        .await
        .unwrap()
        .expect("a PostgreSQL store");
    assert!(plan.contains("Nested Loop"), "{plan}");
    assert!(plan.contains("deliveries_pkey"), "{plan}");
    assert!(!plan.contains("Seq Scan on deliveries"), "{plan}");
    assert!(!plan.contains("Hash"), "{plan}");
}

/// Only the claim commits without waiting for the WAL flush: an ingest or an outcome that was
/// answered is on disk, a claim lost with a crash of the database is claimed again.
#[tokio::test]
async fn only_claims_commit_without_waiting_for_the_disk() {
    let Some((s, _)) = postgres_store().await else {
        return;
    };
    for (hot, expected) in [
        (HeldLoop::Claim, "off"),
        (HeldLoop::Ingest, "on"),
        (HeldLoop::Outcomes, "on"),
    ] {
        let value = testing::held_connection_setting(&s, hot, "synchronous_commit").await;
        assert_eq!(value.unwrap().as_deref(), Some(expected), "{hot:?}");
    }
}

/// The ingest writer, the claimer and the recorder each hold a PostgreSQL connection of their
/// own. When it dies (PostgreSQL restarted, the backend killed), the write that finds it dead
/// fails, as one on a pooled connection would, and the next one connects again.
#[tokio::test]
async fn the_hot_loops_connect_again_when_their_connection_dies() {
    use sqlx::Connection;
    let Some((s, url)) = postgres_store().await else {
        return;
    };
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    // Each loop's connection opened and used once.
    s.commit_ingest(&[write(3, "a", false, 100)], 100)
        .await
        .unwrap();
    let first = s.claim_due(1_000, 9_000, "n:1", 1, &[]).await.unwrap();
    s.record_outcomes(
        &[done(&first[0], DeliveryStatus::Delivered, None)],
        &[],
        1_000,
    )
    .await
    .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(killed.len() >= 3, "{killed:?}");

    let again = || write(2, "b", false, 200);
    assert!(s.commit_ingest(&[again()], 200).await.is_err());
    s.commit_ingest(&[again()], 200).await.unwrap();
    assert!(s.claim_due(1_000, 9_000, "n:2", 1, &[]).await.is_err());
    let second = s.claim_due(1_000, 9_000, "n:2", 1, &[]).await.unwrap();
    assert_eq!(second[0].id.to_string(), "dlv-a-1");
    let outcome = [done(&second[0], DeliveryStatus::Delivered, None)];
    assert!(s.record_outcomes(&outcome, &[], 1_000).await.is_err());
    s.record_outcomes(&outcome, &[], 1_000).await.unwrap();
    let left = s.claim_due(1_000, 9_000, "n:3", 10, &[]).await.unwrap();
    let ids: Vec<String> = left.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["dlv-a-2", "dlv-b-0", "dlv-b-1"]);
}

/// A claim that leaves connectors out takes the earliest due deliveries of the others
/// (per-package order kept, nothing not yet due), and on SQLite finds them per connector by
/// index instead of walking past the left-out connectors' backlog.
#[tokio::test]
async fn a_claim_that_leaves_connectors_out_takes_the_others_earliest_due() {
    let on = |mut w: IngestWrite, connector: &str| {
        for (d, e) in w.deliveries.iter_mut().zip(&mut w.events) {
            d.connector_id = connector.into();
            d.id = format!("{}-{connector}", d.id).into();
            e.id = format!("{}-{connector}", e.id).into();
            d.event_id = e.id.clone();
        }
        w
    };
    for s in stores().await {
        // The left-out connector's backlog is due first.
        for (w, connector, at) in [
            (write(20, "b", false, 100), "big", 100),
            (write(4, "y", false, 120), "y", 120),
            (write(3, "w", false, 130), "w", 130),
            // Two of one package, in order: only the first may go out.
            (write(2, "x", true, 150), "x", 150),
            // Not due yet.
            (write(1, "z", false, 5_000), "z", 5_000),
        ] {
            s.commit_ingest(&[on(w, connector)], at).await.unwrap();
        }
        let ids = |rows: Vec<ClaimedDelivery>| rows.into_iter().map(|c| c.id).collect::<Vec<_>>();
        let big = [ConnectorId::from("big")];
        // Eight are eligible (y's four, w's three, x's first); the five due earliest go.
        let first = s.claim_due(1_000, 9_000, "n:1", 5, &big).await.unwrap();
        assert_eq!(
            ids(first),
            [
                "dlv-y-0-y",
                "dlv-y-1-y",
                "dlv-y-2-y",
                "dlv-y-3-y",
                "dlv-w-0-w"
            ]
        );
        let second = s.claim_due(1_000, 9_000, "n:2", 5, &big).await.unwrap();
        assert_eq!(ids(second), ["dlv-w-1-w", "dlv-w-2-w", "dlv-x-0-x"]);
        let left_out = [ConnectorId::from("big"), ConnectorId::from("q")];
        let third = s
            .claim_due(1_000, 9_000, "n:3", 5, &left_out)
            .await
            .unwrap();
        assert!(third.is_empty(), "{:?}", ids(third));
        // Without leaving anyone out, the backlog comes first, in due order.
        let all = s.claim_due(1_000, 9_000, "n:4", 2, &[]).await.unwrap();
        assert_eq!(ids(all), ["dlv-b-0-big", "dlv-b-1-big"]);

        if s.is_postgres() {
            continue;
        }
        let plan = testing::sqlite_query_plan(&s, PlannedQuery::ClaimExcluding)
            .await
            .unwrap()
            .expect("a SQLite store");
        assert!(
            plan.contains(
                "SEARCH e USING INDEX deliveries_connector (connector_id=? AND status=?)"
            ),
            "each connector's pending rows by index: {plan}"
        );
        assert!(
            plan.contains("deliveries_connector (connector_id>?)"),
            "the connectors by a loose scan: {plan}"
        );
        assert!(
            !plan.contains("INDEX deliveries_due ("),
            "not the due index in due order: {plan}"
        );
    }
}

/// A full disk is told apart from other storage failures, so the API can say what to do.
#[tokio::test]
async fn a_database_that_cannot_grow_reports_a_full_disk() {
    let key = MasterKeySource::Given(MasterKey::generate());
    let s = Store::open("sqlite::memory:", key).await.unwrap();
    testing::cap_sqlite_pages(&s).await.unwrap();
    let err = s
        .commit_ingest(&[write(500, "p", false, 100)], 100)
        .await
        .unwrap_err();
    assert!(err.is_disk_full(), "{err:?}");
    assert!(!StoreError::Corrupt("x".into()).is_disk_full());
}
