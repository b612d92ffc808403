//! Wake-ups across nodes on PostgreSQL: a node that commits new due deliveries NOTIFYs, and every
//! node LISTENs, so another node's workers start at once instead of at their next poll. On
//! SQLite there is one node; its workers are woken in-process.

use sqlx::postgres::PgListener;

use crate::{Db, Store, StoreError};

/// Wakes every node's workers when the transaction it runs in commits: on PostgreSQL a NOTIFY
/// (delivered at commit, dropped at rollback), on SQLite nothing (one node, which polls). For
/// store writes that make deliveries due without a server's hand on them: a notification
/// written by the outbox, a connector made active again by a registration or a write-back.
pub(crate) trait WakeNodes {
    async fn wake_nodes(&mut self) -> Result<(), StoreError>;

    /// The same, naming the node that sends it (whose own listener then ignores it).
    async fn wake_nodes_from(&mut self, from: &str) -> Result<(), StoreError>;
}

impl WakeNodes for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn wake_nodes(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn wake_nodes_from(&mut self, _from: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

impl WakeNodes for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn wake_nodes(&mut self) -> Result<(), StoreError> {
        // The payload names no node: the one that wrote wakes too, which its poll would do.
        self.wake_nodes_from("store").await
    }

    async fn wake_nodes_from(&mut self, from: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(DELIVERIES_DUE_CHANNEL)
            .bind(from)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

/// The channel every hookwarden node listens on.
pub const DELIVERIES_DUE_CHANNEL: &str = "hookwarden_deliveries_due";

/// A LISTEN connection; `recv` returns at each notification.
pub struct DueListener(PgListener);

impl DueListener {
    /// The next notification's sender (what it passed to `notify_deliveries_due`). After a
    /// dropped connection sqlx reconnects and re-LISTENs; a notification sent meanwhile is lost,
    /// which the workers' poll covers.
    pub async fn recv(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}

impl Store {
    /// Tell every node that deliveries are due (PostgreSQL; nothing on SQLite). Delivered to
    /// listeners when the sender's transaction, if any, commits.
    pub async fn notify_deliveries_due(&self, from: &str) -> Result<(), StoreError> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(DELIVERIES_DUE_CHANNEL)
                .bind(from)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// A listener for `notify_deliveries_due`; `None` on SQLite.
    pub async fn deliveries_due_listener(&self) -> Result<Option<DueListener>, StoreError> {
        match &self.db {
            Db::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(DELIVERIES_DUE_CHANNEL).await?;
                Ok(Some(DueListener(listener)))
            }
            Db::Sqlite(_) => Ok(None),
        }
    }
}
