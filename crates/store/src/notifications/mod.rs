//! Notification endpoints (operational webhooks) and the outbox that writes to them.
//!
//! An endpoint is kept as a row of `connectors` named `@notify:<id>` (a name the API cannot
//! give a connector), of kind `notification`, its `events` the types it takes and no origin, so
//! routing never picks it: the delivery engine then sends, retries, signs and records its
//! notifications exactly as it does callbacks, under the same network rules.

use hookwarden_core::{AccountId, Credentials, Notice, NotificationFormat, NotificationType};
use secrecy::SecretString;

use crate::connectors::{ConnectorRecord, NewConnector};
use crate::{now_ms, on_db, BeginWrite, Store, StoreError};

mod expiring;
pub(crate) mod outbox;

pub use expiring::idle_warning_ms;

pub(crate) use outbox::{Draft, Outbox};

/// In a transaction that just made a connector `active` again: its held deliveries are due now
/// and `connector.recovered` says how many.
macro_rules! released_and_recovered {
    ($store:expr, $tx:ident, $id:expr, $now:expr) => {{
        let released = sqlx::query(crate::deliveries::RELEASE_CONNECTOR_DELIVERIES)
            .bind($id)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if released > 0 {
            $crate::notify::WakeNodes::wake_nodes(&mut $tx).await?;
        }
        let draft = $crate::notifications::Draft::new(hookwarden_core::NotificationType::Recovered)
            .held(released);
        $crate::notifications::Outbox::notify(&mut $tx, &$store.cipher, $id, &draft, $now).await?;
    }};
}

pub(crate) use released_and_recovered;

/// The name of the row that keeps the endpoint `id`.
const PREFIX: &str = "@notify:";

/// One notification endpoint, as the API shows it (never its secret).
#[derive(Debug, Clone)]
pub struct NotificationEndpoint {
    /// `ntf_` + UUIDv7.
    pub id: String,
    pub url: String,
    pub types: Vec<NotificationType>,
    pub format: NotificationFormat,
    pub created_at: i64,
    /// The row's name: what its deliveries carry as their connector.
    pub destination: String,
}

impl NotificationEndpoint {
    fn of(record: &ConnectorRecord) -> Option<Self> {
        let format = record.credentials.notification_format()?;
        let id = record.name.strip_prefix(PREFIX)?.to_owned();
        Some(Self {
            id,
            url: record.url.clone(),
            types: record
                .events
                .iter()
                .filter_map(|t| NotificationType::parse(t))
                .collect(),
            format,
            created_at: record.created_at,
            destination: record.name.clone(),
        })
    }
}

/// The destination name of the endpoint `id`; `None` for text that is no endpoint id.
pub fn notification_destination(id: &str) -> Option<String> {
    let ok = id.starts_with("ntf_")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then(|| format!("{PREFIX}{id}"))
}

impl Store {
    /// A new endpoint; its signing secret is returned once (a `slack` endpoint's is never sent).
    pub async fn create_notification_endpoint(
        &self,
        account: &AccountId,
        url: &str,
        types: &[NotificationType],
        format: NotificationFormat,
    ) -> Result<(NotificationEndpoint, SecretString), StoreError> {
        let id = hookwarden_core::ids::new_id("ntf");
        let (record, _) = self
            .upsert_connector(NewConnector {
                account_id: account.clone(),
                name: format!("{PREFIX}{id}"),
                url: url.to_owned(),
                events: types.iter().map(|t| t.as_str().to_owned()).collect(),
                origins: Vec::new(),
                owner: None,
                refresh_token_idle_days: None,
                settings: serde_json::json!({}),
                warnings: Vec::new(),
                credentials: Credentials::notification(format),
            })
            .await?;
        let endpoint = NotificationEndpoint::of(&record).ok_or_else(|| {
            StoreError::Corrupt("a new notification endpoint reads back as none".into())
        })?;
        Ok((endpoint, record.signing_secret))
    }

    /// The account's endpoints, oldest first.
    pub async fn notification_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<NotificationEndpoint>, StoreError> {
        let mut all: Vec<NotificationEndpoint> = self
            .account_connectors(account)
            .await?
            .iter()
            .filter_map(NotificationEndpoint::of)
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    pub async fn notification_endpoint(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<NotificationEndpoint>, StoreError> {
        let Some(name) = notification_destination(id) else {
            return Ok(None);
        };
        Ok(self
            .get_connector(account, &name)
            .await?
            .as_ref()
            .and_then(NotificationEndpoint::of))
    }

    /// Remove an endpoint; its notifications not yet sent are failed. False when there was none.
    pub async fn delete_notification_endpoint(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<bool, StoreError> {
        let Some(name) = notification_destination(id) else {
            return Ok(false);
        };
        let Some(record) = self.get_connector(account, &name).await? else {
            return Ok(false);
        };
        if !self.delete_connector(account, &name).await? {
            return Ok(false);
        }
        self.fail_connector_deliveries(&record.id, "notification endpoint deleted", now_ms())
            .await?;
        Ok(true)
    }

    /// `notification.test` to one endpoint, whatever its types; the delivery's id.
    pub async fn send_test_notification(
        &self,
        account: &AccountId,
        endpoint: &NotificationEndpoint,
    ) -> Result<Option<String>, StoreError> {
        let Some(record) = self.get_connector(account, &endpoint.destination).await? else {
            return Ok(None);
        };
        let notice = Notice {
            kind: NotificationType::Test,
            connector: None,
            status: None,
            diagnosis: None,
            delivery_id: None,
            held: None,
        };
        let to = [outbox::Recipient {
            id: record.id.as_str().to_owned(),
            name: record.name.clone(),
            format: endpoint.format,
        }];
        let now = now_ms();
        let written = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let written = tx.send_notice(account.as_str(), &notice, &to, None, now).await?;
            tx.commit().await?;
            written
        });
        Ok(written.into_iter().next())
    }
}
