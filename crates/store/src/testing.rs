//! Test support shared by every crate's integration tests: a fresh database per test, so tests
//! run in parallel. PostgreSQL tests run when `HOOKWARDEN_TEST_PG_URL` is set (CI sets it).
//! Also a few test-only looks into a store (`sqlite_query_plan`, `cap_sqlite_pages`), so that
//! the store's own tests can live in `tests/` while its SQL and connections stay private.

use std::time::{SystemTime, UNIX_EPOCH};

use hookwarden_core::DeliveryStatus;
use sqlx::{Connection, Row};

use crate::{deliveries, Store, StoreError};

/// Databases left behind by tests (a killed run cannot drop them) are removed after this long.
const STALE_AFTER_S: u64 = 3 * 3600;

/// Create a new, empty PostgreSQL database and return its URL; `None` when
/// `HOOKWARDEN_TEST_PG_URL` is not set, which the test run's output says once per test binary.
/// Under CI (`CI=true`, as `.ci/run` exports) a missing database fails the test instead.
pub async fn fresh_postgres_url() -> Option<String> {
    let Some(base) = std::env::var("HOOKWARDEN_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        postgres_missing(std::env::var("CI").ok().as_deref());
        return None;
    };
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("HOOKWARDEN_TEST_PG_URL={base} does not connect: {e}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = format!("hwt_{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    drop_stale(&mut conn, now).await;
    let _ = conn.close().await;
    let (prefix, _) = base.rsplit_once('/').expect("a postgres URL has a path");
    Some(format!("{prefix}/{name}"))
}

/// Panic under CI; otherwise tell the person running the tests, once per test binary, that
/// the PostgreSQL variants did not run. Written to stderr directly: the test harness captures
/// `eprintln!` of passing tests, and a skip nobody sees reads as a pass.
fn postgres_missing(ci: Option<&str>) {
    if is_ci(ci) {
        panic!(
            "CI={} but HOOKWARDEN_TEST_PG_URL is not set: the PostgreSQL variant of this test \
             cannot run (.ci/run starts PostgreSQL and exports it)",
            ci.unwrap_or_default()
        );
    }
    static TOLD: std::sync::Once = std::sync::Once::new();
    TOLD.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: HOOKWARDEN_TEST_PG_URL is not set: the PostgreSQL variants of these tests are \
             SKIPPED (set it to e.g. postgres://postgres@127.0.0.1:5432/test to run them)"
        );
    });
}

/// `CI` as CI systems set it: anything but empty, `0` or `false` means a CI run.
fn is_ci(ci: Option<&str>) -> bool {
    ci.is_some_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

async fn drop_stale(conn: &mut sqlx::PgConnection, now: u64) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE datname LIKE 'hwt\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return;
    };
    for name in names {
        let created = name
            .split('_')
            .nth(1)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > STALE_AFTER_S {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// Every database a test should run against: a fresh SQLite file in `dir`, and a fresh
/// PostgreSQL database when one is configured.
pub async fn databases(dir: &std::path::Path) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}", dir.join("test.db").display())];
    if let Some(pg) = fresh_postgres_url().await {
        urls.push(pg);
    }
    urls
}

/// Test only: the versions of every migration this build carries, in order: what
/// `hookwarden_schema` lists once a database is migrated.
pub fn migration_versions() -> Vec<i64> {
    crate::migrate::versions()
}

/// One of the store's own statements, for `sqlite_query_plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedQuery {
    /// `Store::list_deliveries` with this status filter.
    ListDeliveries(Option<DeliveryStatus>),
    /// `Store::connector_gauges`.
    ConnectorGauges,
    /// The UPDATE of `Store::claim_due` on SQLite when it leaves connectors out.
    ClaimExcluding,
    /// `Store::sync_held_deliveries` on PostgreSQL: the resume, and the hold (run only when
    /// some connector is not active).
    ResumeHeld,
    HoldInactive,
    /// `Store::claim_due` on PostgreSQL (due at 10,000, up to 64, no connector left out), on the
    /// connection the claimer holds.
    Claim,
    /// The completions of `Store::record_outcomes` on PostgreSQL, a batch of 400 (deliveries
    /// 1-400), on the connection the recorder holds.
    Completions,
}

/// Test only: SQLite's `EXPLAIN QUERY PLAN` of one of the store's statements (panics for a
/// PostgreSQL one), run on the writer's connection with every parameter NULL, as its rows'
/// `detail` joined by "; "; `None` on PostgreSQL. Tests check by it that a query takes the
/// index it was written for.
pub async fn sqlite_query_plan(
    store: &Store,
    query: PlannedQuery,
) -> Result<Option<String>, StoreError> {
    let crate::Db::Sqlite(pool) = &store.db else {
        return Ok(None);
    };
    let (sql, params) = match query {
        PlannedQuery::ListDeliveries(status) => (deliveries::list_sql(status), 8),
        PlannedQuery::ConnectorGauges => (deliveries::DEPTHS.to_owned(), 1),
        // The claim's text is its UPDATE, then the read-back of what it took.
        PlannedQuery::ResumeHeld
        | PlannedQuery::HoldInactive
        | PlannedQuery::Claim
        | PlannedQuery::Completions => {
            panic!("{query:?} is a statement of PostgreSQL's: see postgres_query_plan")
        }
        PlannedQuery::ClaimExcluding => {
            let (update, _) = deliveries::CLAIM_EXCLUDING_AND_READ_SQLITE
                .split_once("; ")
                .expect("the claim, then its read-back");
            (update.to_owned(), 5)
        }
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
    for _ in 0..params {
        q = q.bind(None::<String>);
    }
    let mut details = Vec::new();
    for row in q.fetch_all(pool).await? {
        details.push(row.try_get::<String, _>("detail")?);
    }
    Ok(Some(details.join("; ")))
}

/// Test only: PostgreSQL's `EXPLAIN` of one of the store's statements (now 0, one connector
/// "con"), as its lines joined by "; "; `None` on SQLite. Panics for a SQLite statement.
pub async fn postgres_query_plan(
    store: &Store,
    query: PlannedQuery,
) -> Result<Option<String>, StoreError> {
    let crate::Db::Postgres(pool) = &store.db else {
        return Ok(None);
    };
    let explain = |sql: &str| format!("EXPLAIN {sql}");
    let n = 400_usize;
    // Each statement on the connection that runs it: the hot loops' own, or the pool.
    let (q, hot) = match query {
        PlannedQuery::ResumeHeld => (
            sqlx::query_scalar(sqlx::AssertSqlSafe(explain(deliveries::RESUME_HELD_PG)))
                .bind(0_i64),
            None,
        ),
        // Holding the deliveries of one connector that is not active.
        PlannedQuery::HoldInactive => (
            sqlx::query_scalar(sqlx::AssertSqlSafe(explain(deliveries::HOLD_INACTIVE_PG)))
                .bind(0_i64)
                .bind(vec!["con".to_owned()]),
            None,
        ),
        PlannedQuery::Claim => (
            sqlx::query_scalar(sqlx::AssertSqlSafe(explain(deliveries::CLAIM_PG)))
                .bind(20_000_i64)
                .bind("node:1")
                .bind(10_000_i64)
                .bind(64_i64)
                .bind("[]")
                .bind(i64::MIN),
            Some(HeldLoop::Claim),
        ),
        PlannedQuery::Completions => (
            sqlx::query_scalar(sqlx::AssertSqlSafe(explain(deliveries::COMPLETE_PG)))
                .bind((1..=n as i64).collect::<Vec<i64>>())
                .bind(vec!["node:1".to_owned(); n])
                .bind(vec!["delivered".to_owned(); n])
                .bind(vec![1_i64; n])
                .bind(vec![0_i64; n])
                .bind(vec![None::<String>; n])
                .bind(10_000_i64),
            Some(HeldLoop::Outcomes),
        ),
        other => panic!("{other:?} is a statement of SQLite's: see sqlite_query_plan"),
    };
    let lines: Vec<String> = match hot {
        Some(hot) => q.fetch_all(store.held(hot).await?.conn()).await?,
        None => q.fetch_all(pool).await?,
    };
    Ok(Some(lines.join("; ")))
}

pub use crate::held::Hot as HeldLoop;

/// Test only: a setting (`SHOW name`) of the connection a hot loop holds on PostgreSQL; `None`
/// on SQLite.
pub async fn held_connection_setting(
    store: &Store,
    hot: HeldLoop,
    name: &str,
) -> Result<Option<String>, StoreError> {
    if !store.is_postgres() {
        return Ok(None);
    }
    let mut held = store.held(hot).await?;
    let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
        .fetch_one(held.conn())
        .await?;
    Ok(Some(value))
}

/// Test only: cap a SQLite database at the pages it has now (`PRAGMA max_page_count` on the
/// writer's connection, the one every write goes through), so that the next write that needs
/// a new page fails as on a full disk. Panics on PostgreSQL.
pub async fn cap_sqlite_pages(store: &Store) -> Result<(), StoreError> {
    let crate::Db::Sqlite(pool) = &store.db else {
        panic!("cap_sqlite_pages needs a SQLite store");
    };
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(pool)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA max_page_count = {pages}"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_told_apart_from_a_developer_run() {
        assert!(is_ci(Some("true")));
        assert!(is_ci(Some("1")));
        assert!(!is_ci(None));
        assert!(!is_ci(Some("")));
        assert!(!is_ci(Some("false")));
        assert!(!is_ci(Some("0")));
    }

    #[test]
    #[should_panic(expected = "HOOKWARDEN_TEST_PG_URL is not set")]
    fn a_missing_database_fails_under_ci() {
        postgres_missing(Some("true"));
    }
}
