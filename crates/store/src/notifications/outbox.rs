//! The outbox: a notification is written in the transaction of the change it tells of, as one
//! event per format and one delivery per subscribed endpoint, so the delivery engine sends it
//! like any callback (durably, with its retry schedule) and no change commits without it.

use hookwarden_core::{
    ConnectorStatus, DiagnosisView, Notice, NotificationFormat, NotificationType,
};
use sqlx::Row;

use crate::connectors::key_aad;
use crate::crypto::Cipher;
use crate::StoreError;

/// Where every notification event says it comes from.
pub(crate) const NOTIFICATION_ORIGIN: &str = "hookwarden";

/// A notification before the connector it tells of is read: its type and what only its cause
/// knows.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) kind: NotificationType,
    /// Instead of the connector's own diagnosis (a failed delivery's).
    pub(crate) diagnosis: Option<DiagnosisView>,
    pub(crate) delivery_id: Option<String>,
    pub(crate) held: Option<u64>,
    /// Makes the notification's event ids, so that it is written once however often its cause
    /// is seen (a delivery failed at its nth attempt, a secret past a threshold); `None`: new
    /// ids (the cause's own conditional UPDATE decides it happened once).
    pub(crate) once: Option<String>,
}

impl Draft {
    pub(crate) fn new(kind: NotificationType) -> Self {
        Self {
            kind,
            diagnosis: None,
            delivery_id: None,
            held: None,
            once: None,
        }
    }

    pub(crate) fn held(mut self, held: u64) -> Self {
        self.held = Some(held);
        self
    }
}

/// An endpoint that takes a notification.
pub(crate) struct Recipient {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) format: NotificationFormat,
}

/// The connector a notification tells of, as the transaction sees it now; `None` for a
/// notification endpoint (no notifications about notifications).
pub(crate) fn notice_of(
    draft: &Draft,
    name: String,
    kind: &str,
    status: &str,
    stored_diagnosis: Option<&str>,
) -> Option<Notice> {
    if kind == hookwarden_core::credentials::NOTIFICATION_KIND {
        return None;
    }
    let status_now = ConnectorStatus::parse(status);
    let diagnosis = match draft.kind {
        NotificationType::Recovered => None,
        _ => draft.diagnosis.clone().or_else(|| {
            stored_diagnosis
                .map(DiagnosisView::from_stored)
                .or_else(|| {
                    status_now
                        .and_then(ConnectorStatus::diagnosis_code)
                        .map(DiagnosisView::from)
                })
        }),
    };
    Some(Notice {
        kind: draft.kind,
        connector: Some(name),
        status: Some(status.to_owned()),
        diagnosis,
        delivery_id: draft.delivery_id.clone(),
        held: draft.held,
    })
}

/// The endpoints among `rows` (id, name, types as JSON, sealed format) that take `kind`.
pub(crate) fn recipients(
    cipher: &Cipher,
    kind: NotificationType,
    rows: Vec<(String, String, String, Vec<u8>)>,
) -> Result<Vec<Recipient>, StoreError> {
    let mut out = Vec::new();
    for (id, name, types, sealed) in rows {
        let types: Vec<String> = serde_json::from_str(&types)
            .map_err(|e| StoreError::Corrupt(format!("notification endpoint {id} types: {e}")))?;
        if !types.iter().any(|t| t == kind.as_str()) {
            continue;
        }
        let stored = cipher.open_secret(&key_aad(&id), &sealed)?;
        let format = secrecy::ExposeSecret::expose_secret(&stored);
        let format = NotificationFormat::parse(format).ok_or_else(|| {
            StoreError::Corrupt(format!("notification endpoint {id} has format {format:?}"))
        })?;
        out.push(Recipient { id, name, format });
    }
    Ok(out)
}

/// The event id of a notification in one format.
pub(crate) fn event_id(once: Option<&str>, format: NotificationFormat) -> String {
    match once {
        Some(key) => format!("ntf_{key}_{}", format.as_str()),
        None => hookwarden_core::ids::new_id("evt"),
    }
}

/// Writes notifications inside a transaction that is already open.
pub(crate) trait Outbox {
    /// Write `draft` about the connector `subject` to every endpoint of its account subscribed
    /// to its type; the number of deliveries written. Nothing for a connector that does not
    /// exist, for a notification endpoint, or for a `once` key already written.
    async fn notify(
        &mut self,
        cipher: &Cipher,
        subject: &str,
        draft: &Draft,
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Write `notice` to the given endpoints of `account` (all of one account); the ids of
    /// the deliveries written.
    async fn send_notice(
        &mut self,
        account: &str,
        notice: &Notice,
        to: &[Recipient],
        once: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>, StoreError>;
}

const SUBJECT: &str =
    "SELECT account_id, name, kind, status, status_diagnosis FROM connectors WHERE id = $1";
/// Notification endpoints are the rows named `@notify:<id>`: a range of the (account, name) index.
const ENDPOINTS: &str = "SELECT id, name, events, key_sealed FROM connectors \
     WHERE account_id = $1 AND name >= '@notify:' AND name < '@notify;' AND kind = 'notification'";
const INSERT_EVENT: &str =
    "INSERT INTO events (id, account_id, name, origin, package_id, payload, created_at) \
     VALUES ($1, $2, $3, $4, '', $5, $6) ON CONFLICT (id) DO NOTHING";
const INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, account_id, event_id, event_name, \
     connector_id, connector_name, package_id, order_key, status, next_attempt_at, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $6, '', NULL, 'pending', $7, $7, $7)";

macro_rules! outbox_for {
    ($db:ty) => {
        impl Outbox for sqlx::Transaction<'_, $db> {
            async fn notify(
                &mut self,
                cipher: &Cipher,
                subject: &str,
                draft: &Draft,
                now: i64,
            ) -> Result<u64, StoreError> {
                let Some(row) = sqlx::query(SUBJECT)
                    .bind(subject)
                    .fetch_optional(&mut **self)
                    .await?
                else {
                    return Ok(0);
                };
                let account: String = row.try_get("account_id")?;
                let kind: String = row.try_get("kind")?;
                let status: String = row.try_get("status")?;
                let stored: Option<String> = row.try_get("status_diagnosis")?;
                let Some(notice) = notice_of(
                    draft,
                    row.try_get("name")?,
                    &kind,
                    &status,
                    stored.as_deref(),
                ) else {
                    return Ok(0);
                };
                let rows: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(ENDPOINTS)
                    .bind(&account)
                    .fetch_all(&mut **self)
                    .await?;
                let to = recipients(cipher, draft.kind, rows)?;
                let written = self
                    .send_notice(&account, &notice, &to, draft.once.as_deref(), now)
                    .await?;
                Ok(written.len() as u64)
            }

            async fn send_notice(
                &mut self,
                account: &str,
                notice: &Notice,
                to: &[Recipient],
                once: Option<&str>,
                now: i64,
            ) -> Result<Vec<String>, StoreError> {
                let mut written = Vec::new();
                for format in [NotificationFormat::Standard, NotificationFormat::Slack] {
                    if !to.iter().any(|r| r.format == format) {
                        continue;
                    }
                    let event = event_id(once, format);
                    let inserted = sqlx::query(INSERT_EVENT)
                        .bind(&event)
                        .bind(account)
                        .bind(notice.kind.as_str())
                        .bind(NOTIFICATION_ORIGIN)
                        .bind(notice.body(format, now))
                        .bind(now)
                        .execute(&mut **self)
                        .await?
                        .rows_affected();
                    if inserted == 0 {
                        continue;
                    }
                    for r in to.iter().filter(|r| r.format == format) {
                        let id = hookwarden_core::DeliveryId::generate();
                        sqlx::query(INSERT_DELIVERY)
                            .bind(id.as_str())
                            .bind(account)
                            .bind(&event)
                            .bind(notice.kind.as_str())
                            .bind(&r.id)
                            .bind(&r.name)
                            .bind(now)
                            .execute(&mut **self)
                            .await?;
                        written.push(String::from(id));
                    }
                }
                if !written.is_empty() {
                    crate::notify::WakeNodes::wake_nodes(self).await?;
                }
                Ok(written)
            }
        }
    };
}

outbox_for!(sqlx::Sqlite);
outbox_for!(sqlx::Postgres);
