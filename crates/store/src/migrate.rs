//! A small migration runner over embedded SQL, so the one binary carries its schema and
//! nodes starting at the same time do not race (PostgreSQL advisory lock, SQLite write lock).

use crate::{Db, StoreError};

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration's version, in order (what a database is at once migrated).
pub(crate) fn versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_tokens.sql"),
        postgres: include_str!("../migrations/postgres/0002_tokens.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_deliveries.sql"),
        postgres: include_str!("../migrations/postgres/0003_deliveries.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_drop_deliveries_event_index.sql"),
        postgres: include_str!("../migrations/postgres/0004_drop_deliveries_event_index.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_events_without_rowid.sql"),
        postgres: include_str!("../migrations/postgres/0005_events_without_rowid.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_open_deliveries_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0006_open_deliveries_indexes.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/sqlite/0007_idempotency_keys_by_age.sql"),
        postgres: include_str!("../migrations/postgres/0007_idempotency_keys_by_age.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("../migrations/sqlite/0008_key_line_wrapped_flag.sql"),
        postgres: include_str!("../migrations/postgres/0008_key_line_wrapped_flag.sql"),
    },
    Migration {
        version: 9,
        sqlite: include_str!("../migrations/sqlite/0009_diagnosis_codes.sql"),
        postgres: include_str!("../migrations/postgres/0009_diagnosis_codes.sql"),
    },
    Migration {
        version: 10,
        sqlite: include_str!("../migrations/sqlite/0010_unique_account_names.sql"),
        postgres: include_str!("../migrations/postgres/0010_unique_account_names.sql"),
    },
    Migration {
        version: 11,
        sqlite: include_str!("../migrations/sqlite/0011_api_key_prefix_and_last_use.sql"),
        postgres: include_str!("../migrations/postgres/0011_api_key_prefix_and_last_use.sql"),
    },
    Migration {
        version: 12,
        sqlite: include_str!("../migrations/sqlite/0012_api_key_scopes_and_name.sql"),
        postgres: include_str!("../migrations/postgres/0012_api_key_scopes_and_name.sql"),
    },
    Migration {
        version: 13,
        sqlite: include_str!("../migrations/sqlite/0013_console_sessions.sql"),
        postgres: include_str!("../migrations/postgres/0013_console_sessions.sql"),
    },
    Migration {
        version: 14,
        sqlite: include_str!("../migrations/sqlite/0014_credentials_changed_at.sql"),
        postgres: include_str!("../migrations/postgres/0014_credentials_changed_at.sql"),
    },
    Migration {
        version: 15,
        sqlite: include_str!("../migrations/sqlite/0015_notifications.sql"),
        postgres: include_str!("../migrations/postgres/0015_notifications.sql"),
    },
    Migration {
        version: 16,
        sqlite: include_str!("../migrations/sqlite/0016_worker_nodes.sql"),
        postgres: include_str!("../migrations/postgres/0016_worker_nodes.sql"),
    },
];

const RECORD: &str = "INSERT INTO hookwarden_schema (version, applied_at) VALUES ($1, $2)";

/// Any constant; all hookwarden nodes agree on it.
const PG_LOCK_KEY: i64 = 0x686f_6f6b_7761_7264;

pub(crate) async fn run(db: &Db) -> Result<(), StoreError> {
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            // BEGIN IMMEDIATE takes the write lock up front: a second process waits, then sees
            // the versions the first one applied.
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            let result = apply_sqlite(&mut conn).await;
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            sqlx::raw_sql(end).execute(&mut *conn).await?;
            result
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS hookwarden_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM hookwarden_schema")
                .fetch_all(&mut *tx)
                .await?;
            for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
                sqlx::raw_sql(m.postgres)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration {
                        version: m.version,
                        source,
                    })?;
                sqlx::query(RECORD)
                    .bind(m.version)
                    .bind(crate::now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
    }
}

async fn apply_sqlite(conn: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS hookwarden_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM hookwarden_schema")
        .fetch_all(&mut *conn)
        .await?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(m.sqlite)
            .execute(&mut *conn)
            .await
            .map_err(|source| StoreError::Migration {
                version: m.version,
                source,
            })?;
        sqlx::query(RECORD)
            .bind(m.version)
            .bind(crate::now_ms())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
