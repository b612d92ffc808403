//! Ingest: the rows of many requests written in one transaction (group commit), with their
//! Idempotency-Keys (the rows themselves: `rows`).

use hookwarden_core::DeliveryStatus;
use sqlx::Row;

use super::rows::WriteRows;
use super::{IngestOutcome, IngestWrite, NewDelivery, NewEvent};
use crate::held::{in_hot_tx, Hot};
use crate::notify::WakeNodes;
use crate::{Store, StoreError};

const INSERT_IDEMPOTENCY: &str =
    "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, response, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, idem_key) DO NOTHING";
const SELECT_IDEMPOTENCY: &str =
    "SELECT request_hash, response FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2";

impl Store {
    /// Write the rows of many ingest requests in one transaction. Each request's outcome is
    /// returned in order; requests that replay or conflict write nothing.
    pub async fn commit_ingest(
        &self,
        writes: &[IngestWrite],
        now: i64,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        self.commit_ingest_waking(writes, now, None).await
    }

    /// `commit_ingest`, and on PostgreSQL, when it writes a due (pending) delivery, a NOTIFY
    /// with `notice` as its payload (the sending node; the server adds the group's number) to
    /// every node's workers inside the same transaction: PostgreSQL sends it at the commit, so
    /// it costs no connection, round trip or commit of its own, and it is never sent for rows
    /// that were rolled back.
    pub async fn commit_ingest_waking(
        &self,
        writes: &[IngestWrite],
        now: i64,
        notice: Option<&str>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events: Vec<&NewEvent> = Vec::new();
        let mut deliveries: Vec<&NewDelivery> = Vec::new();
        in_hot_tx!(self, Hot::Ingest, tx => {
            for write in writes {
                if let Some(idem) = &write.idempotency {
                    let inserted = sqlx::query(INSERT_IDEMPOTENCY)
                        .bind(write.account_id.as_str())
                        .bind(&idem.key)
                        .bind(&idem.request_hash)
                        .bind(&idem.response)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if inserted == 0 {
                        let row = sqlx::query(SELECT_IDEMPOTENCY)
                            .bind(write.account_id.as_str())
                            .bind(&idem.key)
                            .fetch_one(&mut *tx)
                            .await?;
                        let hash: String = row.try_get("request_hash")?;
                        outcomes.push(if hash == idem.request_hash {
                            IngestOutcome::Replay(row.try_get("response")?)
                        } else {
                            IngestOutcome::Conflict
                        });
                        continue;
                    }
                }
                outcomes.push(IngestOutcome::Written);
                events.extend(&write.events);
                deliveries.extend(&write.deliveries);
            }
            tx.insert_ingest_rows(&events, &deliveries).await?;
            if let Some(notice) = notice {
                if deliveries.iter().any(|d| d.status == DeliveryStatus::Pending) {
                    tx.wake_nodes_from(notice).await?;
                }
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(outcomes)
    }
}
