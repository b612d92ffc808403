//! Operational notifications: what happened to a connector, told to the account's notification
//! endpoints (DESIGN.md "Telling the owner"). The types, the two formats, and the body each
//! format sends. Pure: the store writes these bodies in the transaction of the change they
//! tell of, and the delivery engine sends them like any callback.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::diagnosis::DiagnosisView;

/// What a notification tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationType {
    /// A grant failed permanently; the connector's deliveries are held.
    #[serde(rename = "connector.needs_reauth")]
    NeedsReauth,
    /// Revoked by the API or the console.
    #[serde(rename = "connector.revoked")]
    Revoked,
    /// Active again after `needs_reauth`, `revoked`, `disabled` or a breaker that opened.
    #[serde(rename = "connector.recovered")]
    Recovered,
    /// The endpoint answered 410, or the connector's url is not in the org.
    #[serde(rename = "connector.disabled")]
    Disabled,
    /// The circuit breaker opened: the endpoint keeps failing.
    #[serde(rename = "connector.failing")]
    Failing,
    /// A delivery used up its retry schedule (or failed for good).
    #[serde(rename = "delivery.failed")]
    DeliveryFailed,
    /// A secret older than `secret_max_age_days`, or a refresh token about to idle out.
    #[serde(rename = "credential.expiring")]
    CredentialExpiring,
    /// Sent by `POST /api/notifications/{id}/test`, whatever the endpoint's `types`.
    #[serde(rename = "notification.test")]
    Test,
}

impl NotificationType {
    /// Every type an endpoint can subscribe to (the default `types`); `notification.test` is
    /// sent on request only.
    pub const SUBSCRIBABLE: [NotificationType; 7] = [
        Self::NeedsReauth,
        Self::Revoked,
        Self::Recovered,
        Self::Disabled,
        Self::Failing,
        Self::DeliveryFailed,
        Self::CredentialExpiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsReauth => "connector.needs_reauth",
            Self::Revoked => "connector.revoked",
            Self::Recovered => "connector.recovered",
            Self::Disabled => "connector.disabled",
            Self::Failing => "connector.failing",
            Self::DeliveryFailed => "delivery.failed",
            Self::CredentialExpiring => "credential.expiring",
            Self::Test => "notification.test",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::SUBSCRIBABLE
            .into_iter()
            .chain([Self::Test])
            .find(|t| t.as_str() == raw)
    }

    /// What happened, for a person (Slack's line, the console).
    fn happened(self) -> &'static str {
        match self {
            Self::NeedsReauth => "needs re-authentication; its deliveries are held",
            Self::Revoked => "was revoked; its deliveries are held",
            Self::Recovered => "is active again",
            Self::Disabled => "was disabled; its deliveries are held",
            Self::Failing => "keeps failing; its deliveries back off",
            Self::DeliveryFailed => "could not deliver a callback",
            Self::CredentialExpiring => "has a credential about to expire",
            Self::Test => "sent a test notification",
        }
    }
}

impl fmt::Display for NotificationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an endpoint wants its notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationFormat {
    /// The Standard Webhooks payload, signed with the endpoint's `whsec_` secret.
    #[default]
    Standard,
    /// `{"text": "..."}` for a Slack incoming webhook, unsigned.
    Slack,
}

impl NotificationFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Slack => "slack",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "standard" => Some(Self::Standard),
            "slack" => Some(Self::Slack),
            _ => None,
        }
    }
}

/// One notification: its type and the connector it tells of, as it stands after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NotificationType,
    /// The connector's name (`@default` for the default callback); `None` for a test.
    pub connector: Option<String>,
    /// The connector's status now; `None` for a test.
    pub status: Option<String>,
    pub diagnosis: Option<DiagnosisView>,
    pub delivery_id: Option<String>,
    /// Deliveries held by the change, or released by a recovery.
    pub held: Option<u64>,
}

impl Notice {
    /// The body sent to an endpoint of `format`, `at` milliseconds since the epoch.
    pub fn body(&self, format: NotificationFormat, at: i64) -> String {
        match format {
            NotificationFormat::Standard => self.standard(at).to_string(),
            NotificationFormat::Slack => json!({ "text": self.line() }).to_string(),
        }
    }

    /// `{"type", "timestamp", "data": {...}}`: the Standard Webhooks payload shape.
    pub fn standard(&self, at: i64) -> Value {
        let mut data = json!({
            "connector": self.connector,
            "status": self.status,
            "diagnosis": self.diagnosis,
        });
        if let Some(id) = &self.delivery_id {
            data["delivery_id"] = json!(id);
        }
        if let Some(held) = self.held {
            data["held"] = json!(held);
        }
        json!({
            "type": self.kind.as_str(),
            "timestamp": timestamp(at),
            "data": data,
        })
    }

    /// One line for a person: the connector, what happened, the cause and the fix.
    pub fn line(&self) -> String {
        let mut line = match &self.connector {
            Some(name) => format!("hookwarden: connector {name} {}", self.kind.happened()),
            None => format!("hookwarden {}", self.kind.happened()),
        };
        match (self.kind, self.held) {
            (NotificationType::Recovered, Some(n)) if n > 0 => {
                line.push_str(&format!(" ({n} held deliveries released)"))
            }
            (NotificationType::Recovered, _) => {}
            (_, Some(n)) if n > 0 => line.push_str(&format!(" ({n} held)")),
            _ => {}
        }
        if let Some(id) = &self.delivery_id {
            line.push_str(&format!(" [delivery {id}]"));
        }
        if let Some(d) = &self.diagnosis {
            line.push_str(&format!(". {}: {}. Fix: {}", d.code, d.cause, d.fix));
        }
        line
    }
}

/// What a `credential.expiring` notification tells of; its diagnosis's code is the governance
/// review's check of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// The connector's key has not changed for longer than `secret_max_age_days`.
    Credentials { age_days: i64, max_age_days: i64 },
    /// Its signing secret has not been rotated for longer than `secret_max_age_days`.
    SigningSecret { age_days: i64, max_age_days: i64 },
    /// Its refresh token is about to pass the org's "expire if not used" policy (or has).
    RefreshTokenIdle {
        idle_days: i64,
        policy_days: i64,
        expired: bool,
    },
}

impl Expiring {
    /// The diagnosis, its fix naming the connector `name`.
    pub fn diagnosis(self, name: &str) -> DiagnosisView {
        let (code, cause, fix) = match self {
            Self::Credentials { age_days, max_age_days } => (
                "secret_age",
                format!("the connector's credentials are {age_days} days old, past secret_max_age_days ({max_age_days})"),
                format!("rotate the client secret (or the refresh token) at the provider and give the new key: PATCH /api/callback/connectors/{name} {{\"key\"}}, or `hookwarden connectors update {name} --key-file F`"),
            ),
            Self::SigningSecret { age_days, max_age_days } => (
                "signing_secret_age",
                format!("the connector's signing secret is {age_days} days old, past secret_max_age_days ({max_age_days})"),
                format!("rotate it (POST /api/callback/connectors/{name}/signing-secret/rotate, or `hookwarden connectors rotate-secret {name}`) and give the new one to the receiver within 24 h, while both sign"),
            ),
            Self::RefreshTokenIdle { idle_days, policy_days, expired } => (
                "refresh_token_idle",
                if expired {
                    format!("the refresh token has not been used for {idle_days} days; the org expires refresh tokens unused for {policy_days} days, so it has most likely been revoked")
                } else {
                    format!("the refresh token has not been used for {idle_days} days; the org expires refresh tokens unused for {policy_days} days")
                },
                format!("let the keep-alive refresh it (keepalive_days shorter than the org's policy), or test the connector now: POST /api/callback/connectors/{name}/test; if it has expired, re-authenticate: GET /api/callback/connectors/{name}/oauth/url"),
            ),
        };
        DiagnosisView {
            code: code.to_owned(),
            cause,
            fix,
        }
    }
}

/// RFC 3339 in UTC with milliseconds, as Standard Webhooks payloads carry it.
fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            kind: NotificationType::NeedsReauth,
            connector: Some("acme".into()),
            status: Some("needs_reauth".into()),
            diagnosis: Some(DiagnosisView {
                code: "refresh_token_revoked".into(),
                cause: "the org revoked the refresh token".into(),
                fix: "re-authenticate".into(),
            }),
            delivery_id: None,
            held: Some(10),
        }
    }

    #[test]
    fn types_read_back_their_names_and_test_is_not_subscribable() {
        for t in NotificationType::SUBSCRIBABLE {
            assert_eq!(NotificationType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(
            NotificationType::parse("notification.test"),
            Some(NotificationType::Test)
        );
        assert!(!NotificationType::SUBSCRIBABLE.contains(&NotificationType::Test));
        assert_eq!(NotificationType::parse("connector.exploded"), None);
    }

    #[test]
    fn the_standard_body_has_type_timestamp_and_data() {
        let body: Value =
            serde_json::from_str(&notice().body(NotificationFormat::Standard, 1_700_000_000_123))
                .unwrap();
        assert_eq!(
            body,
            json!({
                "type": "connector.needs_reauth",
                "timestamp": "2023-11-14T22:13:20.123Z",
                "data": {
                    "connector": "acme",
                    "status": "needs_reauth",
                    "diagnosis": {
                        "code": "refresh_token_revoked",
                        "cause": "the org revoked the refresh token",
                        "fix": "re-authenticate"
                    },
                    "held": 10
                }
            })
        );
        let mut n = notice();
        n.diagnosis = None;
        n.held = None;
        n.delivery_id = Some("del_1".into());
        let body = n.standard(0);
        assert_eq!(body["data"]["diagnosis"], Value::Null);
        assert_eq!(body["data"]["delivery_id"], "del_1");
        assert!(body["data"].get("held").is_none());
    }

    #[test]
    fn the_slack_body_is_one_line_with_the_fix() {
        let body: Value =
            serde_json::from_str(&notice().body(NotificationFormat::Slack, 0)).unwrap();
        let text = body["text"].as_str().unwrap();
        assert_eq!(body.as_object().unwrap().len(), 1);
        assert!(!text.contains('\n'));
        assert!(text.contains("acme"), "{text}");
        assert!(text.contains("needs re-authentication"), "{text}");
        assert!(text.contains("(10 held)"), "{text}");
        assert!(text.contains("Fix: re-authenticate"), "{text}");
        let recovered = Notice {
            kind: NotificationType::Recovered,
            status: Some("active".into()),
            diagnosis: None,
            ..notice()
        };
        assert!(recovered
            .line()
            .contains("is active again (10 held deliveries released)"));
    }
}
