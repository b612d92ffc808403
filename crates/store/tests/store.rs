//! The Store's contract, run on SQLite always and on PostgreSQL when HOOKWARDEN_TEST_PG_URL is set.

use hookwarden_core::{ConnectorStatus, Credentials};
use hookwarden_store::{testing, MasterKey, MasterKeySource, NewConnector, Store, StoreError};
use secrecy::{ExposeSecret, SecretString};

fn new_connector(account: &hookwarden_core::AccountId, name: &str, secret: &str) -> NewConnector {
    NewConnector {
        account_id: account.clone(),
        name: name.to_owned(),
        url: "https://acme.my.salesforce.com/services/apexrest/OSS/callback".into(),
        events: vec!["PACKAGE_COMPLETE".into()],
        origins: vec!["OSS".into()],
        owner: None,
        settings: serde_json::json!({}),
        warnings: vec![],
        credentials: Credentials::from_storage(
            "salesforce",
            Some("client_credentials"),
            SecretString::from(format!(
                r#"{{"host":"acme.my.salesforce.com","client_id":"cid","client_secret":"{secret}"}}"#
            )),
        )
        .unwrap(),
    }
}

async fn each_database(test: impl AsyncFn(Store, &str)) {
    let dir = tempfile::tempdir().unwrap();
    for url in testing::databases(dir.path()).await {
        let key = MasterKeySource::Given(MasterKey::generate());
        let store = Store::open(&url, key).await.unwrap();
        test(store.clone(), &url).await;
        store.close().await;
    }
}

#[tokio::test]
async fn accounts_are_found_by_their_api_key_only() {
    each_database(async |store, _| {
        let (account, key) = store.create_account("acme").await.unwrap();
        let found = store.account_by_api_key(&key).await.unwrap().unwrap();
        assert_eq!(found.id, account.id);
        assert!(store
            .account_by_api_key("hwk_wrong")
            .await
            .unwrap()
            .is_none());
        assert!(store.account_by_api_key("").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn connectors_register_replace_rotate_and_delete() {
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let (other, _) = store.create_account("other").await.unwrap();

        let (first, created) = store
            .upsert_connector(new_connector(
                &acme.id,
                "salesforceOauth2",
                "secret-one-1234",
            ))
            .await
            .unwrap();
        assert!(created, "{url}");
        assert_eq!(first.status, ConnectorStatus::Active);
        assert!(first.signing_secret.expose_secret().starts_with("whsec_"));

        let (second, created) = store
            .upsert_connector(new_connector(
                &acme.id,
                "salesforceOauth2",
                "secret-two-5678",
            ))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(second.id, first.id, "a replace keeps the row");
        assert_eq!(second.credentials_version, first.credentials_version + 1);
        assert!(second
            .credentials
            .stored()
            .expose_secret()
            .contains("secret-two-5678"));
        assert_eq!(
            second.signing_secret.expose_secret(),
            first.signing_secret.expose_secret(),
            "a replace keeps the signing secret"
        );

        // Nothing crosses accounts.
        assert!(store
            .get_connector(&other.id, "salesforceOauth2")
            .await
            .unwrap()
            .is_none());
        assert!(!store
            .delete_connector(&other.id, "salesforceOauth2")
            .await
            .unwrap());

        let (rotated, fresh) = store
            .rotate_signing_secret(&acme.id, "salesforceOauth2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rotated.signing_secret.expose_secret(),
            fresh.expose_secret()
        );
        assert_eq!(
            rotated
                .previous_signing_secret
                .as_ref()
                .unwrap()
                .expose_secret(),
            first.signing_secret.expose_secret()
        );

        let mut changed = rotated.clone();
        changed.status = ConnectorStatus::NeedsReauth;
        changed.events.push("PACKAGE_CREATE".into());
        let saved = store
            .save_connector(&changed, false, rotated.seen())
            .await
            .unwrap();
        // A second writer that read before the first one wrote does not undo it.
        let mut stale = rotated.clone();
        stale.events = vec!["DOCUMENT_SIGNED".into()];
        assert!(matches!(
            store.save_connector(&stale, false, rotated.seen()).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(saved.status, ConnectorStatus::NeedsReauth);
        assert_eq!(saved.events.len(), 2);
        assert_eq!(saved.credentials_version, rotated.credentials_version);

        assert_eq!(store.list_connectors(&acme.id).await.unwrap().len(), 1);
        assert!(store
            .delete_connector(&acme.id, "salesforceOauth2")
            .await
            .unwrap());
        assert!(store.list_connectors(&acme.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_leave_one_connector() {
    each_database(async |store, _| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let c = new_connector(&acme.id, "race", &format!("secret-{i}-abcdef"));
                tokio::spawn(async move { store.upsert_connector(c).await })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            let (_, was_created) = t.await.unwrap().unwrap();
            created += usize::from(was_created);
        }
        assert_eq!(created, 1);
        assert_eq!(store.list_connectors(&acme.id).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plain.db").display());
    let store = Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap();
    let (acme, _) = store.create_account("acme").await.unwrap();
    let (record, _) = store
        .upsert_connector(new_connector(
            &acme.id,
            "salesforceOauth2",
            "Sup3rSecretValueXYZ",
        ))
        .await
        .unwrap();
    let signing = record.signing_secret.expose_secret().to_owned();
    store.close().await;

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("plain.db") && !path.to_string_lossy().ends_with(".key")
        {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    for needle in ["Sup3rSecretValueXYZ", signing.as_str(), &signing[6..]] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} found in the database file"
        );
    }

    // The key file was created 0600 beside the database, and reopening reads it back.
    let key_file = dir.path().join("plain.db.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let reopened = Store::open(&url, MasterKeySource::FileBesideDatabase)
        .await
        .unwrap();
    let again = reopened
        .get_connector(&acme.id, "salesforceOauth2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.signing_secret.expose_secret(), signing);

    // Another master key cannot open the secrets, and says so.
    let wrong = Store::open(&url, MasterKeySource::Given(MasterKey::generate()))
        .await
        .unwrap();
    assert!(matches!(
        wrong.get_connector(&acme.id, "salesforceOauth2").await,
        Err(StoreError::Decrypt(_))
    ));
}

#[tokio::test]
async fn postgres_needs_a_master_key_and_seals_its_secrets() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    assert!(matches!(
        Store::open(&url, MasterKeySource::FileBesideDatabase).await,
        Err(StoreError::MasterKey(_))
    ));
    let store = Store::open(&url, MasterKeySource::Given(MasterKey::generate()))
        .await
        .unwrap();
    let (acme, _) = store.create_account("acme").await.unwrap();
    store
        .upsert_connector(new_connector(
            &acme.id,
            "salesforceOauth2",
            "PgSecretValue0987",
        ))
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws('|', id, url, events, settings, encode(key_sealed, 'escape'), \
         encode(signing_sealed, 'escape')) FROM connectors",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dump.len(), 1);
    assert!(!dump[0].contains("PgSecretValue0987"));
    assert!(!dump[0].contains("whsec_"));
}

#[tokio::test]
async fn bad_urls_are_refused_with_a_clear_error() {
    let err = Store::open("mysql://x", MasterKeySource::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sqlite://"), "{err}");
}

#[tokio::test]
async fn two_stores_migrate_one_sqlite_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("twice.db").display());
    let key = MasterKey::generate();
    let (a, b) = tokio::join!(
        Store::open(&url, MasterKeySource::Given(key.clone())),
        Store::open(&url, MasterKeySource::Given(key.clone()))
    );
    a.unwrap();
    b.unwrap();
}

#[tokio::test]
async fn postgres_nodes_wake_each_other() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    let key = MasterKey::generate();
    let a = Store::open(&url, MasterKeySource::Given(key.clone()))
        .await
        .unwrap();
    let b = Store::open(&url, MasterKeySource::Given(key))
        .await
        .unwrap();
    let mut listener = a.deliveries_due_listener().await.unwrap().unwrap();
    b.notify_deliveries_due("node-b").await.unwrap();
    // Generous: this waits for a notification, not for the machine to be fast.
    let from = tokio::time::timeout(std::time::Duration::from_secs(30), listener.recv())
        .await
        .expect("node A was not woken")
        .unwrap();
    assert_eq!(from, "node-b");
}

#[tokio::test]
async fn sqlite_has_no_cross_node_wakeups() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("one.db").display());
    let store = Store::open(&url, MasterKeySource::Given(MasterKey::generate()))
        .await
        .unwrap();
    assert!(store.deliveries_due_listener().await.unwrap().is_none());
    store.notify_deliveries_due("node").await.unwrap();
}

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

        let depths = store.queue_depths(1_000).await.unwrap();
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
        let depths = store.queue_depths(1_000).await.unwrap();
        assert_eq!(depths.len(), 3, "{url}: {depths:?}");
        assert!(depths.iter().all(|d| d.connector_name != "gone"));
    })
    .await;
}

#[tokio::test]
async fn account_connectors_see_every_connector_write_at_once() {
    each_database(async |store, url| {
        let (acme, _) = store.create_account("acme").await.unwrap();
        let names = |list: &[hookwarden_store::ConnectorRecord]| {
            list.iter()
                .map(|c| (c.name.clone(), c.status))
                .collect::<Vec<_>>()
        };
        assert!(store.account_connectors(&acme.id).await.unwrap().is_empty());
        let (a, _) = store
            .upsert_connector(new_connector(&acme.id, "alpha", "secret-1234"))
            .await
            .unwrap();
        assert_eq!(
            names(&store.account_connectors(&acme.id).await.unwrap()),
            [("alpha".to_owned(), ConnectorStatus::Active)],
            "{url}"
        );
        // Read twice (cached), then a status change made through the store.
        store.account_connectors(&acme.id).await.unwrap();
        assert!(store
            .set_connector_status(&a.id, ConnectorStatus::NeedsReauth, None)
            .await
            .unwrap());
        assert_eq!(
            names(&store.account_connectors(&acme.id).await.unwrap()),
            [("alpha".to_owned(), ConnectorStatus::NeedsReauth)]
        );
        let mut replaced = new_connector(&acme.id, "alpha", "secret-5678");
        replaced.events = vec!["DOCUMENT_SIGNED".into()];
        store.upsert_connector(replaced).await.unwrap();
        let now = store.account_connectors(&acme.id).await.unwrap();
        assert_eq!(now[0].events, ["DOCUMENT_SIGNED"]);
        assert_eq!(now[0].status, ConnectorStatus::Active);
        assert!(store.delete_connector(&acme.id, "alpha").await.unwrap());
        assert!(store.account_connectors(&acme.id).await.unwrap().is_empty());
    })
    .await;
}

/// A database written by a version before migration 5 (events in a rowid table) opens, moves
/// its events into the WITHOUT ROWID table, and its pending deliveries still carry their payload.
#[tokio::test]
async fn events_written_before_the_without_rowid_migration_are_still_delivered() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let url = format!("sqlite://{}", path.display());
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        conn.execute(
            "CREATE TABLE hookwarden_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .await
        .unwrap();
        for (version, sql) in [
            (1, include_str!("../migrations/sqlite/0001_init.sql")),
            (2, include_str!("../migrations/sqlite/0002_tokens.sql")),
            (3, include_str!("../migrations/sqlite/0003_deliveries.sql")),
            (
                4,
                include_str!("../migrations/sqlite/0004_drop_deliveries_event_index.sql"),
            ),
        ] {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            sqlx::query("INSERT INTO hookwarden_schema VALUES ($1, 0)")
                .bind(version)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.execute(
            "INSERT INTO events VALUES ('evt-old', 'acc', 'PACKAGE_COMPLETE', 'OSS', 'pkg-1', \
               '{\"packageId\":\"pkg-1\"}', 10); \
             INSERT INTO deliveries (id, account_id, event_id, event_name, connector_id, \
               connector_name, package_id, status, next_attempt_at, created_at, updated_at) \
             VALUES ('dlv-old', 'acc', 'evt-old', 'PACKAGE_COMPLETE', 'con', 'alpha', 'pkg-1', \
               'pending', 10, 10, 10)",
        )
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let store = Store::open(&url, MasterKeySource::Given(MasterKey::generate()))
        .await
        .unwrap();
    let claimed = store
        .claim_due(1_000, 60_000, "n:1", 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, "dlv-old");
    assert_eq!(claimed[0].payload, r#"{"packageId":"pkg-1"}"#);
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'events'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM hookwarden_schema ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
}

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
