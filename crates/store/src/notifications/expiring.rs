//! `credential.expiring`: a connector's credentials or signing secret older than
//! `secret_max_age_days`, or a refresh token about to pass its org's "expire if not used"
//! policy (`refresh_token_idle_days`). Written once per secret and threshold: the notification's
//! event id names the connector, the threshold and the time the secret arrived (or was last
//! used), so a pass that finds it again, on this node or another, writes nothing.

use hookwarden_core::{notification::Expiring, DiagnosisView, NotificationType};

use sqlx::Row as _;

use super::{Draft, Outbox};
use crate::{on_db, BeginWrite, Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// How long before a refresh token idles out it is told of: a quarter of the policy, at least
/// one day and at most three.
pub fn idle_warning_ms(idle_days: i64) -> i64 {
    (idle_days * DAY_MS / 4).clamp(DAY_MS, 3 * DAY_MS)
}

/// One connector as the pass reads it.
struct Row {
    id: String,
    name: String,
    flow: Option<String>,
    credentials_changed_at: Option<i64>,
    signing_secret_changed_at: Option<i64>,
    refresh_token_idle_days: Option<i64>,
    last_grant_at: Option<i64>,
    created_at: i64,
}

/// What is expiring about one connector at `now`: (what, once-key, diagnosis).
fn expiring(row: &Row, now: i64, max_age_days: i64) -> Vec<(String, DiagnosisView)> {
    let mut out = Vec::new();
    let max_age = max_age_days * DAY_MS;
    let credentials_at = row.credentials_changed_at.unwrap_or(row.created_at);
    if max_age > 0 && now - credentials_at >= max_age {
        out.push((
            format!("credentials_{}_{credentials_at}", row.id),
            Expiring::Credentials {
                age_days: (now - credentials_at) / DAY_MS,
                max_age_days,
            }
            .diagnosis(&row.name),
        ));
    }
    let signing_at = row.signing_secret_changed_at.unwrap_or(row.created_at);
    if max_age > 0 && now - signing_at >= max_age {
        out.push((
            format!("signing_{}_{signing_at}", row.id),
            Expiring::SigningSecret {
                age_days: (now - signing_at) / DAY_MS,
                max_age_days,
            }
            .diagnosis(&row.name),
        ));
    }
    if let (Some("refresh_token"), Some(days)) = (row.flow.as_deref(), row.refresh_token_idle_days)
    {
        let used = row
            .last_grant_at
            .unwrap_or(credentials_at)
            .max(credentials_at);
        let expires = used + days * DAY_MS;
        if days > 0 && now >= expires - idle_warning_ms(days) {
            out.push((
                format!("idle_{}_{used}", row.id),
                Expiring::RefreshTokenIdle {
                    idle_days: (now - used) / DAY_MS,
                    policy_days: days,
                    expired: now >= expires,
                }
                .diagnosis(&row.name),
            ));
        }
    }
    out
}

impl Store {
    /// Write `credential.expiring` for every active connector (not a default callback nor a
    /// notification endpoint) of an account that has an endpoint taking it, once per secret
    /// and threshold; how many notifications were written.
    pub async fn notify_expiring(&self, now: i64, max_age_days: u32) -> Result<u64, StoreError> {
        const SQL: &str =
            "SELECT c.id, c.name, c.flow, c.credentials_changed_at, c.signing_secret_changed_at, \
               c.refresh_token_idle_days, t.last_grant_at, c.created_at \
             FROM connectors c LEFT JOIN token_state t ON t.connector_id = c.id \
             WHERE c.status = 'active' AND c.name NOT LIKE '@%' \
               AND EXISTS (SELECT 1 FROM connectors n WHERE n.account_id = c.account_id \
                 AND n.kind = 'notification' AND n.events LIKE '%\"credential.expiring\"%') \
             ORDER BY c.id";
        let rows: Vec<Row> = on_db!(&self.reads, pool => {
            let mut rows = Vec::new();
            for r in sqlx::query(SQL).fetch_all(pool).await? {
                rows.push(Row {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    flow: r.try_get("flow")?,
                    credentials_changed_at: r.try_get("credentials_changed_at")?,
                    signing_secret_changed_at: r.try_get("signing_secret_changed_at")?,
                    refresh_token_idle_days: r.try_get("refresh_token_idle_days")?,
                    last_grant_at: r.try_get("last_grant_at")?,
                    created_at: r.try_get("created_at")?,
                });
            }
            rows
        });
        let mut written = 0;
        for row in &rows {
            for (once, diagnosis) in expiring(row, now, i64::from(max_age_days)) {
                let draft = Draft {
                    kind: NotificationType::CredentialExpiring,
                    diagnosis: Some(diagnosis),
                    delivery_id: None,
                    held: None,
                    once: Some(once),
                };
                written += on_db!(&self.db, pool => {
                    let mut tx = pool.begin_write().await?;
                    let n = tx.notify(&self.cipher, &row.id, &draft, now).await?;
                    tx.commit().await?;
                    n
                });
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            id: "con_1".into(),
            name: "acme".into(),
            flow: Some("refresh_token".into()),
            credentials_changed_at: Some(0),
            signing_secret_changed_at: Some(0),
            refresh_token_idle_days: None,
            last_grant_at: None,
            created_at: 0,
        }
    }

    #[test]
    fn secrets_past_the_maximum_age_each_once_per_secret() {
        let r = row();
        assert!(expiring(&r, 89 * DAY_MS, 90).is_empty());
        let found = expiring(&r, 90 * DAY_MS, 90);
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["credentials_con_1_0", "signing_con_1_0"]);
        assert_eq!(found[0].1.code, "secret_age");
        assert_eq!(found[1].1.code, "signing_secret_age");
        // A new key is a new secret: its own key, and not yet old.
        let renewed = Row {
            credentials_changed_at: Some(50 * DAY_MS),
            ..row()
        };
        let found = expiring(&renewed, 100 * DAY_MS, 90);
        assert_eq!(found.len(), 1, "only the signing secret");
        // 0 days: no maximum.
        assert!(expiring(&r, 1000 * DAY_MS, 0).is_empty());
    }

    #[test]
    fn a_refresh_token_is_told_of_before_it_idles_out() {
        let r = Row {
            refresh_token_idle_days: Some(30),
            last_grant_at: Some(10 * DAY_MS),
            ..row()
        };
        // Used on day 10 with a 30-day policy: it idles out on day 40, told from day 37.
        assert!(expiring(&r, 36 * DAY_MS, 0).is_empty());
        let found = expiring(&r, 37 * DAY_MS, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, format!("idle_con_1_{}", 10 * DAY_MS));
        assert_eq!(found[0].1.code, "refresh_token_idle");
        // Not for a client-credentials connector, nor without a policy.
        let cc = Row {
            flow: Some("client_credentials".into()),
            ..r
        };
        assert!(expiring(&cc, 37 * DAY_MS, 0).is_empty());
        assert!(expiring(&row(), 1000 * DAY_MS, 0).is_empty());
        assert_eq!(idle_warning_ms(2), DAY_MS);
        assert_eq!(idle_warning_ms(90), 3 * DAY_MS);
    }
}
