//! Opening a database: the URLs refused, two stores migrating one file at once, a file written
//! before a migration, and the wake-ups between nodes sharing a database.

use hookwarden_store::{testing, MasterKey, MasterKeySource, Store};

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
            (1, include_str!("../../migrations/sqlite/0001_init.sql")),
            (2, include_str!("../../migrations/sqlite/0002_tokens.sql")),
            (
                3,
                include_str!("../../migrations/sqlite/0003_deliveries.sql"),
            ),
            (
                4,
                include_str!("../../migrations/sqlite/0004_drop_deliveries_event_index.sql"),
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
    assert_eq!(
        versions,
        testing::migration_versions(),
        "every migration ran"
    );
    assert_eq!(&versions[..7], [1, 2, 3, 4, 5, 6, 7]);
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
