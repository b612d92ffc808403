//! Where a connector and a delivery stand: the status enums, with the text each is stored and
//! shown as.

use serde::{Deserialize, Serialize};

use crate::diagnosis::Code;

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

    /// The diagnosis a connector in this status shows when nothing more precise is known
    /// (its deliveries are held meanwhile); `None` when it is active.
    pub fn diagnosis_code(self) -> Option<Code> {
        match self {
            Self::Active => None,
            Self::NeedsReauth => Some(Code::ConnectorNeedsReauth),
            Self::Revoked => Some(Code::ConnectorRevoked),
            // A 410 Gone from the endpoint; a url outside the org (`url_not_in_org`) is
            // stored as the connector's own diagnosis.
            Self::Disabled => Some(Code::EndpointGone),
        }
    }

    /// What to do about a connector in this status; `None` when it is active.
    pub fn fix(self) -> Option<&'static str> {
        self.diagnosis_code().map(Code::fix)
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
