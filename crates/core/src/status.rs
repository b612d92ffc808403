//! Where a connector and a delivery stand: the status enums, with the text each is stored and
//! shown as.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorStatus {
    Active,
    NeedsReauth,
    Revoked,
    Disabled,
}

impl ConnectorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
            Self::Revoked => "revoked",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "active" => Self::Active,
            "needs_reauth" => Self::NeedsReauth,
            "revoked" => Self::Revoked,
            "disabled" => Self::Disabled,
            _ => return None,
        })
    }

    /// What to do about a connector in this status (its deliveries are held meanwhile);
    /// `None` when it is active.
    pub fn fix(self) -> Option<&'static str> {
        match self {
            Self::Active => None,
            Self::NeedsReauth => Some("re-authenticate: GET .../oauth/url and approve, or PATCH {\"key\": ...} with new credentials"),
            Self::Revoked => Some("its tokens were revoked: re-authenticate (GET .../oauth/url) or PATCH {\"key\": ...}"),
            Self::Disabled => Some("the endpoint answered 410 Gone: register the current url (PATCH {\"url\": ...})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    /// The connector is `needs_reauth`, `revoked` or `disabled`: not attempted, not failed.
    Held,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "held" => Self::Held,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}
