use std::fmt;

use serde::{Deserialize, Serialize};

/// A connector's name as it appears in `/api/callback/connectors/{name}`: `[A-Za-z0-9_-]{1,64}`.
/// Deserialising goes through `ConnectorName::parse` too, so no unchecked name can exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ConnectorName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connector name {0:?} is not valid: use 1 to 64 letters, digits, '_' or '-'")]
pub struct ConnectorNameError(pub String);

impl ConnectorName {
    pub fn parse(raw: &str) -> Result<Self, ConnectorNameError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            // Truncate so a 1 MiB path segment does not come back in the error.
            Err(ConnectorNameError(raw.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> ConnectorKind {
        ConnectorKind::of(&self.0)
    }
}

impl TryFrom<String> for ConnectorName {
    type Error = ConnectorNameError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ConnectorName> for String {
    fn from(name: ConnectorName) -> String {
        name.0
    }
}

impl fmt::Display for ConnectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which preset a connector uses: given at registration (`preset`), or by default the one its
/// name selects, as in OneSpan's callback API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// `salesforceOauth2`: endpoints derived from `host`.
    Salesforce,
    /// `dynamicsOauth2`: Microsoft identity platform, endpoints derived from `tenant`.
    Dynamics,
    /// Any other name: a generic OAuth 2.0 destination, `token_url` required.
    Generic,
}

impl ConnectorKind {
    /// The preset a name selects when registration gives none: `salesforceOauth2` and
    /// `dynamicsOauth2` (OneSpan's names), any other name generic.
    pub fn of(name: &str) -> Self {
        match name {
            "salesforceOauth2" => Self::Salesforce,
            "dynamicsOauth2" => Self::Dynamics,
            _ => Self::Generic,
        }
    }

    /// The preset's name, as stored and shown (`preset` in the API).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Salesforce => "salesforce",
            Self::Dynamics => "dynamics",
            Self::Generic => "generic",
        }
    }

    /// The preset of this name (`as_str`'s inverse).
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "salesforce" => Self::Salesforce,
            "dynamics" => Self::Dynamics,
            "generic" => Self::Generic,
            _ => return None,
        })
    }

    /// Origins a connector listens to when registration names none.
    pub fn default_origins(self) -> Vec<String> {
        match self {
            Self::Salesforce => vec!["OSS".to_owned()],
            _ => vec!["*".to_owned()],
        }
    }
}

/// How a connector gets its access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    RefreshToken,
    ClientCredentials,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// The flow of this name (`as_str`'s inverse).
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "refresh_token" => Self::RefreshToken,
            "client_credentials" => Self::ClientCredentials,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_their_preset() {
        assert_eq!(
            ConnectorKind::of("salesforceOauth2"),
            ConnectorKind::Salesforce
        );
        assert_eq!(ConnectorKind::of("dynamicsOauth2"), ConnectorKind::Dynamics);
        assert_eq!(ConnectorKind::of("sharepoint"), ConnectorKind::Generic);
    }

    #[test]
    fn kinds_and_flows_read_back_their_names() {
        for kind in [
            ConnectorKind::Salesforce,
            ConnectorKind::Dynamics,
            ConnectorKind::Generic,
        ] {
            assert_eq!(ConnectorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ConnectorKind::Salesforce.as_str(), "salesforce");
        assert_eq!(ConnectorKind::parse("default"), None);
        for flow in [Flow::RefreshToken, Flow::ClientCredentials] {
            assert_eq!(Flow::parse(flow.as_str()), Some(flow));
        }
        assert_eq!(Flow::parse("password"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(ConnectorName::parse("my-hook_1").is_ok());
        assert!(ConnectorName::parse("").is_err());
        assert!(ConnectorName::parse("a/b").is_err());
        assert!(ConnectorName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn deserialised_names_are_checked_too() {
        let ok: ConnectorName = serde_json::from_str("\"my-hook_1\"").unwrap();
        assert_eq!(ok.as_str(), "my-hook_1");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"my-hook_1\"");
        assert!(serde_json::from_str::<ConnectorName>("\"a/b\"").is_err());
        assert!(serde_json::from_str::<ConnectorName>("\"\"").is_err());
    }
}
