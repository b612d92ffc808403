//! The history of every call the token engine makes to a provider (grant, refresh, revoke,
//! introspection, refresh hook, code exchange, test), with its diagnosis. Entries are written
//! already redacted by the caller; the store only bounds the excerpt.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use hookwarden_core::ids::new_id;
use hookwarden_core::{AccountId, ConnectorId, DiagnosisView};

use crate::{on_db, Store, StoreError};

/// Longest response excerpt kept, in bytes.
pub const MAX_EXCERPT_BYTES: usize = 1024;
/// Largest page of `list_history`.
pub const MAX_HISTORY_PAGE: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    Grant,
    Refresh,
    Revoke,
    Introspect,
    Hook,
    CodeExchange,
    Test,
    /// A refresh made only so that an idle refresh token is used (`keepalive_days`).
    KeepAlive,
}

impl HistoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Refresh => "refresh",
            Self::Revoke => "revoke",
            Self::Introspect => "introspect",
            Self::Hook => "hook",
            Self::CodeExchange => "code_exchange",
            Self::Test => "test",
            Self::KeepAlive => "keep_alive",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "grant" => Self::Grant,
            "refresh" => Self::Refresh,
            "revoke" => Self::Revoke,
            "introspect" => Self::Introspect,
            "hook" => Self::Hook,
            "code_exchange" => Self::CodeExchange,
            "test" => Self::Test,
            "keep_alive" => Self::KeepAlive,
            _ => return None,
        })
    }
}

/// What the token engine records. `excerpt` must already be free of secrets.
#[derive(Debug, Clone, Serialize)]
pub struct NewHistoryEntry {
    pub connector_id: ConnectorId,
    pub account_id: AccountId,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub kind: HistoryKind,
    pub grant_type: Option<String>,
    /// `ok`, `failed`, `revoked`, `already_revoked`, ...
    pub outcome: String,
    pub http_status: Option<i64>,
    /// The provider's `error` / `errorCode`.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The diagnosis of a failed call: its code (`None` in entries written before codes were
    /// kept), cause and fix. See `NewHistoryEntry::diagnosis`.
    pub diagnosis_code: Option<String>,
    pub cause: Option<String>,
    pub fix: Option<String>,
    pub duration_ms: i64,
    pub excerpt: Option<String>,
}

impl NewHistoryEntry {
    /// The entry's diagnosis as it is shown; one recorded before codes were kept is
    /// `unclassified`.
    pub fn diagnosis(&self) -> Option<DiagnosisView> {
        let cause = self.cause.as_deref()?;
        Some(match &self.diagnosis_code {
            Some(code) => DiagnosisView {
                code: code.clone(),
                cause: cause.to_owned(),
                fix: self.fix.clone().unwrap_or_default(),
            },
            None => DiagnosisView::unclassified(cause, self.fix.as_deref()),
        })
    }
}

/// A stored entry: the new entry plus its id (`his_` + UUIDv7: sorts by time, serves as cursor).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub id: String,
    #[serde(flatten)]
    pub entry: NewHistoryEntry,
}

/// Cut at a character boundary at most `max` bytes in: how the history bounds what it keeps,
/// and how the token engine cuts an excerpt to `MAX_EXCERPT_BYTES` before it gets here.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl Store {
    /// Append an entry; returns its id.
    pub async fn record_history(&self, e: &NewHistoryEntry) -> Result<String, StoreError> {
        let id = new_id("his");
        let excerpt = e.excerpt.as_deref().map(|x| truncate(x, MAX_EXCERPT_BYTES));
        on_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO history (id, connector_id, account_id, at, kind, grant_type, outcome, \
                 http_status, error, error_description, cause, fix, duration_ms, excerpt, diagnosis_code) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&id)
            .bind(e.connector_id.as_str())
            .bind(e.account_id.as_str())
            .bind(e.at)
            .bind(e.kind.as_str())
            .bind(&e.grant_type)
            .bind(&e.outcome)
            .bind(e.http_status)
            .bind(e.error.as_deref().map(|x| truncate(x, 256)))
            .bind(e.error_description.as_deref().map(|x| truncate(x, MAX_EXCERPT_BYTES)))
            .bind(&e.cause)
            .bind(&e.fix)
            .bind(e.duration_ms)
            .bind(excerpt)
            .bind(&e.diagnosis_code)
            .execute(pool)
            .await?;
        });
        Ok(id)
    }

    /// A connector's history, newest first: at most `limit` entries older than `before` (an
    /// entry id from the previous page; `None` for the first page).
    pub async fn list_history(
        &self,
        connector_id: &ConnectorId,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let entries = on_db!(&self.reads, pool => {
            let rows = sqlx::query(
                "SELECT id, connector_id, account_id, at, kind, grant_type, outcome, http_status, \
                 error, error_description, diagnosis_code, cause, fix, duration_ms, excerpt FROM history \
                 WHERE connector_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
            )
            .bind(connector_id.as_str())
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let kind: String = row.try_get("kind")?;
                out.push(HistoryEntry {
                    id: row.try_get("id")?,
                    entry: NewHistoryEntry {
                        connector_id: row.try_get::<String, _>("connector_id")?.into(),
                        account_id: row.try_get::<String, _>("account_id")?.into(),
                        at: row.try_get("at")?,
                        kind: HistoryKind::parse(&kind)
                            .ok_or_else(|| StoreError::Corrupt(format!("history kind {kind:?}")))?,
                        grant_type: row.try_get("grant_type")?,
                        outcome: row.try_get("outcome")?,
                        http_status: row.try_get("http_status")?,
                        error: row.try_get("error")?,
                        error_description: row.try_get("error_description")?,
                        diagnosis_code: row.try_get("diagnosis_code")?,
                        cause: row.try_get("cause")?,
                        fix: row.try_get("fix")?,
                        duration_ms: row.try_get("duration_ms")?,
                        excerpt: row.try_get("excerpt")?,
                    },
                });
            }
            out
        });
        Ok(entries)
    }
}
