//! The delivery engines sharing this database, by their heartbeats: how many there are decides
//! each one's share of a connector's `max_per_second` and `max_concurrency`. On PostgreSQL the
//! heartbeats are stamped and aged by the database's clock, as leases are.

use crate::deliveries::pg_now_ms;
use crate::{on_db, Store, StoreError};

/// A node whose last heartbeat is older than this no longer counts.
pub const NODE_TTL_MS: i64 = 10_000;
/// Rows of nodes gone this long are removed.
const FORGET_AFTER_MS: i64 = 3_600_000;

/// The delivery engines alive by their heartbeats, and one's place among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Engines alive, the one that asked included (at least 1).
    pub nodes: usize,
    /// The asking engine's place among them by id (0-based; 0 if it is not listed).
    pub index: usize,
}

impl Store {
    /// Note that engine `node` is alive (at `now`, ms, on SQLite; the database's clock on
    /// PostgreSQL): the engines alive, itself included, and its place among them.
    pub async fn heartbeat(&self, node: &str, now: i64) -> Result<Liveness, StoreError> {
        let live: Vec<String> = match &self.db {
            crate::Db::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO worker_nodes (id, started_at, seen_at) VALUES ($1, $2, $2) \
                     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                )
                .bind(node)
                .bind(now)
                .execute(pool)
                .await?;
                sqlx::query("DELETE FROM worker_nodes WHERE seen_at < $1")
                    .bind(now - FORGET_AFTER_MS)
                    .execute(pool)
                    .await?;
                sqlx::query_scalar("SELECT id FROM worker_nodes WHERE seen_at > $1 ORDER BY id")
                    .bind(now - NODE_TTL_MS)
                    .fetch_all(pool)
                    .await?
            }
            crate::Db::Postgres(pool) => {
                sqlx::query(concat!(
                    "INSERT INTO worker_nodes (id, started_at, seen_at) VALUES ($1, ",
                    pg_now_ms!(),
                    ", ",
                    pg_now_ms!(),
                    ") ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at"
                ))
                .bind(node)
                .execute(pool)
                .await?;
                sqlx::query(concat!(
                    "DELETE FROM worker_nodes WHERE seen_at < ",
                    pg_now_ms!(),
                    " - $1"
                ))
                .bind(FORGET_AFTER_MS)
                .execute(pool)
                .await?;
                sqlx::query_scalar(concat!(
                    "SELECT id FROM worker_nodes WHERE seen_at > ",
                    pg_now_ms!(),
                    " - $1 ORDER BY id"
                ))
                .bind(NODE_TTL_MS)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(Liveness {
            nodes: live.len().max(1),
            index: live.iter().position(|id| id == node).unwrap_or(0),
        })
    }

    /// Engine `node` stops: the others take its share at their next heartbeat.
    pub async fn forget_node(&self, node: &str) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM worker_nodes WHERE id = $1")
                .bind(node)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
