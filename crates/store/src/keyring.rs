//! The master key ring over a database: which keys its sealed values name (checked when a
//! store opens, so a wrong key stops the server instead of failing every delivery), and
//! re-sealing every value under the ring's first key (`hookwarden master-key rotate`), row by
//! row beside running servers.

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::Row;

use crate::crypto::{Cipher, LEGACY_KEY_ID};
use crate::{connectors, on_db, tokens, Db, Store, StoreError};

/// Every column that holds a sealed value, with how its associated data is made.
struct SealedColumn {
    table: &'static str,
    column: &'static str,
    /// The row's primary key.
    key: &'static str,
    /// The connector the value belongs to.
    connector: &'static str,
    /// The associated data, from (row key, connector id).
    aad: fn(&str, &str) -> String,
}

const SEALED: &[SealedColumn] = &[
    SealedColumn {
        table: "connectors",
        column: "key_sealed",
        key: "id",
        connector: "id",
        aad: |_, c| connectors::key_aad(c),
    },
    SealedColumn {
        table: "connectors",
        column: "signing_sealed",
        key: "id",
        connector: "id",
        aad: |_, c| connectors::signing_aad(c),
    },
    SealedColumn {
        table: "connectors",
        column: "prev_signing_sealed",
        key: "id",
        connector: "id",
        aad: |_, c| connectors::prev_signing_aad(c),
    },
    SealedColumn {
        table: "token_state",
        column: "access_sealed",
        key: "connector_id",
        connector: "connector_id",
        aad: |_, c| tokens::access_aad(&c.to_owned().into()),
    },
    SealedColumn {
        table: "token_state",
        column: "refresh_sealed",
        key: "connector_id",
        connector: "connector_id",
        aad: |_, c| tokens::refresh_aad(&c.to_owned().into()),
    },
    SealedColumn {
        table: "oauth_states",
        column: "verifier_sealed",
        key: "state_hash",
        connector: "connector_id",
        aad: |k, c| tokens::verifier_aad(&c.to_owned().into(), k),
    },
];

/// The tables with sealed columns, in the order reports list them.
const TABLES: &[&str] = &["connectors", "token_state", "oauth_states"];

/// Rows read per query while re-sealing.
const PAGE: i64 = 200;
/// A row that changes this many times while it is being re-sealed is left for another run.
const MAX_TRIES: usize = 20;

/// The distinct key id bytes of the sealed values in the database (empty: it holds none).
pub(crate) async fn key_ids_present(db: &Db) -> Result<BTreeSet<u8>, StoreError> {
    let mut ids = BTreeSet::new();
    for c in SEALED {
        let sql = format!(
            "SELECT DISTINCT substr({col}, 1, 1) AS id FROM {table} WHERE {col} IS NOT NULL",
            col = c.column,
            table = c.table
        );
        let found: Vec<Vec<u8>> = on_db!(db, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        ids.extend(found.into_iter().filter_map(|b| b.first().copied()));
    }
    Ok(ids)
}

/// One value per key id present must open with the ring: a database written under another key
/// is refused at start, naming the key it needs.
pub(crate) async fn check_ring(
    db: &Db,
    cipher: &Cipher,
    present: &BTreeSet<u8>,
) -> Result<(), StoreError> {
    'ids: for &id in present {
        for c in SEALED {
            let sql = format!(
                "SELECT {key} AS k, {conn} AS c, {col} AS v FROM {table} \
                 WHERE {col} IS NOT NULL AND substr({col}, 1, 1) = $1 LIMIT 1",
                key = c.key,
                conn = c.connector,
                col = c.column,
                table = c.table
            );
            let row: Option<(String, String, Vec<u8>)> = on_db!(db, pool => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(vec![id])
                    .fetch_optional(pool)
                    .await?
                    .map(|r| Ok::<_, sqlx::Error>((r.try_get("k")?, r.try_get("c")?, r.try_get("v")?)))
                    .transpose()?
            });
            let Some((key, connector, sealed)) = row else {
                continue;
            };
            if cipher.open(&(c.aad)(&key, &connector), &sealed).is_ok() {
                continue 'ids;
            }
            return Err(StoreError::MasterKey(format!(
                "sealed values in this database were sealed with master key id 0x{id:02x}{}; the \
                 configured keys have ids {}; set HOOKWARDEN_MASTER_KEYS to include it (the \
                 configured keys first, that key after them)",
                if id == LEGACY_KEY_ID {
                    " (the key used before key rings)"
                } else {
                    ""
                },
                ids_text(&cipher.key_ids())
            )));
        }
    }
    Ok(())
}

fn ids_text(ids: &[u8]) -> String {
    ids.iter()
        .map(|i| format!("0x{i:02x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What re-sealing found in one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResealCount {
    pub table: &'static str,
    /// Values that were under another key and are now under the first (a dry run: would be).
    pub resealed: u64,
    /// Values already under the first key.
    pub already_first: u64,
    /// Values that no key of the ring opens.
    pub unopenable: u64,
}

/// A value no key of the ring opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unopenable {
    pub table: &'static str,
    pub column: &'static str,
    pub row: String,
    /// The key id byte it names, as `0x3a`.
    pub key_id: String,
}

/// The outcome of `Store::reseal_secrets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    pub dry_run: bool,
    /// The ids of the ring's keys, the sealing one first.
    pub key_ids: Vec<String>,
    pub tables: Vec<ResealCount>,
    pub unopenable: Vec<Unopenable>,
}

impl ResealReport {
    pub fn resealed(&self) -> u64 {
        self.tables.iter().map(|t| t.resealed).sum()
    }
}

/// One row's sealed value as read.
struct Sealed {
    key: String,
    connector: String,
    value: Vec<u8>,
}

impl Store {
    /// Re-seal every sealed value that is not under the ring's first key (`dry_run`: only count
    /// them). Row by row, each in its own statement that writes only if the value is still the
    /// one that was read, so a token or key written meanwhile by a server is never lost (the row
    /// is read again and tried again). Values no key opens are counted and listed, not changed.
    pub async fn reseal_secrets(&self, dry_run: bool) -> Result<ResealReport, StoreError> {
        let mut report = ResealReport {
            dry_run,
            key_ids: self
                .cipher
                .key_ids()
                .iter()
                .map(|i| format!("0x{i:02x}"))
                .collect(),
            tables: TABLES
                .iter()
                .map(|t| ResealCount {
                    table: t,
                    ..ResealCount::default()
                })
                .collect(),
            unopenable: Vec::new(),
        };
        for c in SEALED {
            let count = report
                .tables
                .iter_mut()
                .find(|t| t.table == c.table)
                .expect("every sealed column's table is listed");
            let mut after = String::new();
            loop {
                let page = self.sealed_page(c, &after).await?;
                let Some(last) = page.last() else { break };
                after = last.key.clone();
                for row in page {
                    self.reseal_row(c, row, dry_run, count, &mut report.unopenable)
                        .await?;
                }
            }
        }
        Ok(report)
    }

    async fn sealed_page(&self, c: &SealedColumn, after: &str) -> Result<Vec<Sealed>, StoreError> {
        let sql = format!(
            "SELECT {key} AS k, {conn} AS c, {col} AS v FROM {table} \
             WHERE {col} IS NOT NULL AND {key} > $1 ORDER BY {key} LIMIT $2",
            key = c.key,
            conn = c.connector,
            col = c.column,
            table = c.table
        );
        on_db!(&self.reads, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(PAGE)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Sealed {
                        key: r.try_get("k")?,
                        connector: r.try_get("c")?,
                        value: r.try_get("v")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }

    async fn reseal_row(
        &self,
        c: &SealedColumn,
        mut row: Sealed,
        dry_run: bool,
        count: &mut ResealCount,
        unopenable: &mut Vec<Unopenable>,
    ) -> Result<(), StoreError> {
        let aad = (c.aad)(&row.key, &row.connector);
        for _ in 0..MAX_TRIES {
            let opened = match self.cipher.open_keyed(&aad, &row.value) {
                Ok(opened) => opened,
                Err(_) => {
                    count.unopenable += 1;
                    unopenable.push(Unopenable {
                        table: c.table,
                        column: c.column,
                        row: row.key,
                        key_id: format!("0x{:02x}", row.value.first().copied().unwrap_or(0)),
                    });
                    return Ok(());
                }
            };
            if opened.under_first_key {
                count.already_first += 1;
                return Ok(());
            }
            if dry_run {
                count.resealed += 1;
                return Ok(());
            }
            let fresh = self.cipher.seal(&aad, &opened.plaintext);
            let sql = format!(
                "UPDATE {table} SET {col} = $1 WHERE {key} = $2 AND {col} = $3",
                table = c.table,
                col = c.column,
                key = c.key
            );
            let written = {
                let _turn = self.writes.enter().await;
                on_db!(&self.db, pool => {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&fresh)
                        .bind(&row.key)
                        .bind(&row.value)
                        .execute(pool)
                        .await?
                        .rows_affected()
                })
            };
            if written == 1 {
                count.resealed += 1;
                return Ok(());
            }
            // Written meanwhile (a new token, a new key): read it again and judge it afresh.
            let sql = format!(
                "SELECT {col} FROM {table} WHERE {key} = $1",
                col = c.column,
                table = c.table,
                key = c.key
            );
            let now: Option<Option<Vec<u8>>> = on_db!(&self.db, pool => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(&row.key)
                    .fetch_optional(pool)
                    .await?
            });
            match now.flatten() {
                Some(value) => row.value = value,
                // The row or its value is gone: nothing left to re-seal.
                None => return Ok(()),
            }
        }
        Err(StoreError::Conflict(format!(
            "{}.{} of row {} changed {MAX_TRIES} times while it was being re-sealed: run the rotation again",
            c.table, c.column, row.key
        )))
    }
}
