//! What a connector authenticates with: an OAuth 2.0 key parsed once, when it is read, or the
//! default callback's Basic key; and the three columns (`kind`, `flow`, the key's text) the
//! store keeps them in.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::connector::{ConnectorKind, Flow};
use crate::key::{Key, KeyError};
use crate::notification::NotificationFormat;

/// The `kind` stored for the account's default callback, beside the presets' names.
const DEFAULT_CALLBACK_KIND: &str = "default";
/// The `kind` stored for a notification endpoint; its `flow` column holds its format.
pub const NOTIFICATION_KIND: &str = "notification";

/// A connector's credentials. Build them with `from_key`, `basic` or `from_storage`, so that
/// `stored` is always the text the key is kept as.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// An OAuth 2.0 destination: its preset and its key, parsed once when read. `stored` is the
    /// key's text as read (or `key.to_storage_json()` for a new key): saving the connector
    /// writes it back as it is, byte for byte. The key is shared, not copied, by the clones of
    /// a record that the delivery workers and the token manager make.
    OAuth {
        kind: ConnectorKind,
        key: Arc<Key>,
        stored: SecretString,
    },
    /// A stored key that today's key rules refuse (written by an older version): kept as
    /// stored, with the flow stored beside it, so saving the connector writes both back
    /// unchanged, and shown as unreadable.
    Unreadable {
        kind: ConnectorKind,
        flow: Option<Flow>,
        stored: SecretString,
        error: KeyError,
    },
    /// The account's default callback: its key, sent as `Authorization: Basic <key>`.
    Basic(SecretString),
    /// A notification endpoint: no credential is sent (a `standard` one is signed, a `slack`
    /// one is not). `stored` is the format's name, sealed like any key.
    Notification {
        format: NotificationFormat,
        stored: SecretString,
    },
}

/// Why `Credentials::key` has no OAuth key to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoKey<'a> {
    /// The stored key fails today's key rules.
    #[error("{0}")]
    Unreadable(&'a KeyError),
    /// The default callback authenticates with a Basic key.
    #[error("the default callback has a Basic key, not an OAuth 2.0 key")]
    Basic,
    /// A notification endpoint sends no credential.
    #[error("a notification endpoint has no OAuth 2.0 key")]
    Notification,
}

impl NoKey<'_> {
    /// What the user should do about it.
    pub fn fix(&self) -> String {
        match self {
            Self::Unreadable(e) => e.fix(),
            Self::Basic => "the default callback needs no token; its key is sent as it is".into(),
            Self::Notification => "a notification endpoint needs no token".into(),
        }
    }
}

/// A `kind` or `flow` column holds a value this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{column} {value:?}")]
pub struct UnknownStoredValue {
    pub column: &'static str,
    pub value: String,
}

impl Credentials {
    /// A key parsed at the edge, for `kind`'s preset; stored as `key.to_storage_json()`.
    pub fn from_key(kind: ConnectorKind, key: Key) -> Self {
        let stored = SecretString::from(key.to_storage_json());
        Self::OAuth {
            kind,
            key: Arc::new(key),
            stored,
        }
    }

    /// The default callback's key.
    pub fn basic(key: SecretString) -> Self {
        Self::Basic(key)
    }

    /// A notification endpoint of `format`.
    pub fn notification(format: NotificationFormat) -> Self {
        Self::Notification {
            format,
            stored: SecretString::from(format.as_str().to_owned()),
        }
    }

    /// Credentials as the store keeps them: the `kind` column (a preset's name, or `default`
    /// for the default callback), the `flow` column and the key's text. The key is parsed for
    /// the stored kind; one that today's rules refuse is `Unreadable`, not an error. The flow
    /// column only counts for such a key: a readable key's flow is the key's own, which is
    /// what every writer stores. The default callback has no flow.
    pub fn from_storage(
        kind: &str,
        flow: Option<&str>,
        stored: SecretString,
    ) -> Result<Self, UnknownStoredValue> {
        if kind == DEFAULT_CALLBACK_KIND {
            return Ok(Self::Basic(stored));
        }
        if kind == NOTIFICATION_KIND {
            let format = NotificationFormat::parse(stored.expose_secret()).ok_or_else(|| {
                UnknownStoredValue {
                    column: "notification format",
                    value: stored.expose_secret().to_owned(),
                }
            })?;
            return Ok(Self::notification(format));
        }
        let kind = ConnectorKind::parse(kind).ok_or_else(|| UnknownStoredValue {
            column: "kind",
            value: kind.to_owned(),
        })?;
        let flow = flow
            .map(|f| {
                Flow::parse(f).ok_or_else(|| UnknownStoredValue {
                    column: "flow",
                    value: f.to_owned(),
                })
            })
            .transpose()?;
        Ok(match Key::from_storage_json(stored.expose_secret(), kind) {
            Ok(key) => Self::OAuth {
                kind,
                key: Arc::new(key),
                stored,
            },
            Err(error) => Self::Unreadable {
                kind,
                flow,
                stored,
                error,
            },
        })
    }

    /// The preset; `None` for the default callback.
    pub fn kind(&self) -> Option<ConnectorKind> {
        match self {
            Self::OAuth { kind, .. } | Self::Unreadable { kind, .. } => Some(*kind),
            Self::Basic(_) | Self::Notification { .. } => None,
        }
    }

    /// The `kind` column: the preset's name, `default` for the default callback,
    /// `notification` for a notification endpoint.
    pub fn storage_kind(&self) -> &'static str {
        match self {
            Self::Notification { .. } => NOTIFICATION_KIND,
            _ => self
                .kind()
                .map_or(DEFAULT_CALLBACK_KIND, ConnectorKind::as_str),
        }
    }

    /// A notification endpoint's format; `None` for every other destination.
    pub fn notification_format(&self) -> Option<NotificationFormat> {
        match self {
            Self::Notification { format, .. } => Some(*format),
            _ => None,
        }
    }

    /// How the connector gets its tokens (the `flow` column); `None` for the default callback.
    pub fn flow(&self) -> Option<Flow> {
        match self {
            Self::OAuth { key, .. } => Some(key.flow()),
            Self::Unreadable { flow, .. } => *flow,
            Self::Basic(_) | Self::Notification { .. } => None,
        }
    }

    /// The OAuth key, or why there is none.
    pub fn key(&self) -> Result<&Key, NoKey<'_>> {
        self.oauth().map(|(_, key)| key)
    }

    /// The preset and the OAuth key, or why there is none.
    pub fn oauth(&self) -> Result<(ConnectorKind, &Key), NoKey<'_>> {
        match self {
            Self::OAuth { kind, key, .. } => Ok((*kind, key)),
            Self::Unreadable { error, .. } => Err(NoKey::Unreadable(error)),
            Self::Basic(_) => Err(NoKey::Basic),
            Self::Notification { .. } => Err(NoKey::Notification),
        }
    }

    /// The text that is sealed into `key_sealed`: the key's storage JSON as stored, or the
    /// default callback's Basic key.
    pub fn stored(&self) -> &SecretString {
        match self {
            Self::OAuth { stored, .. }
            | Self::Unreadable { stored, .. }
            | Self::Basic(stored)
            | Self::Notification { stored, .. } => stored,
        }
    }

    /// Whether `key` is the very key these credentials hold: the same storage JSON.
    pub fn same_key(&self, key: &Key) -> bool {
        self.stored().expose_secret() == key.to_storage_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALESFORCE_KEY: &str =
        r#"{"client_id":"c","host":"acme.my.salesforce.com","refresh_token":"rt-123"}"#;

    fn stored(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn a_readable_key_is_parsed_for_the_stored_kind_and_keeps_its_text() {
        let c =
            Credentials::from_storage("salesforce", Some("refresh_token"), stored(SALESFORCE_KEY))
                .unwrap();
        assert_eq!(c.kind(), Some(ConnectorKind::Salesforce));
        assert_eq!(c.storage_kind(), "salesforce");
        assert_eq!(c.flow(), Some(Flow::RefreshToken));
        assert_eq!(
            c.key().unwrap().host.as_deref(),
            Some("acme.my.salesforce.com")
        );
        // Written back as it was read, not as the key would serialise today.
        assert_eq!(c.stored().expose_secret(), SALESFORCE_KEY);
        let again = Key::from_storage_json(SALESFORCE_KEY, ConnectorKind::Salesforce).unwrap();
        assert!(
            !c.same_key(&again),
            "the stored text is not the storage form of today"
        );
        let canonical = Credentials::from_key(ConnectorKind::Salesforce, again.clone());
        assert!(canonical.same_key(&again));
        assert_eq!(canonical.stored().expose_secret(), again.to_storage_json());
    }

    #[test]
    fn a_key_the_rules_refuse_is_unreadable_and_keeps_its_text_and_flow() {
        // A generic connector needs a token_url.
        let text = r#"{"client_id":"c","refresh_token":"rt"}"#;
        let c = Credentials::from_storage("generic", Some("refresh_token"), stored(text)).unwrap();
        assert_eq!(c.kind(), Some(ConnectorKind::Generic));
        assert_eq!(c.flow(), Some(Flow::RefreshToken));
        assert_eq!(c.stored().expose_secret(), text);
        let Err(NoKey::Unreadable(e)) = c.key() else {
            panic!("expected an unreadable key, got {c:?}");
        };
        assert_eq!(*e, KeyError::MissingTokenUrl);
        assert_eq!(c.key().unwrap_err().to_string(), e.to_string());
    }

    #[test]
    fn the_default_callback_is_basic_with_no_kind_nor_flow() {
        let c = Credentials::from_storage("default", None, stored("user:pass")).unwrap();
        assert!(matches!(c, Credentials::Basic(_)));
        assert_eq!((c.kind(), c.flow()), (None, None));
        assert_eq!(c.storage_kind(), "default");
        assert_eq!(c.stored().expose_secret(), "user:pass");
        assert_eq!(c.key().unwrap_err(), NoKey::Basic);
    }

    #[test]
    fn a_notification_endpoint_keeps_its_format_and_has_no_key() {
        let c = Credentials::from_storage("notification", None, stored("slack")).unwrap();
        assert_eq!(c.notification_format(), Some(NotificationFormat::Slack));
        assert_eq!(c.storage_kind(), "notification");
        assert_eq!((c.kind(), c.flow()), (None, None));
        assert_eq!(c.key().unwrap_err(), NoKey::Notification);
        let again = Credentials::notification(NotificationFormat::Standard);
        assert_eq!(again.stored().expose_secret(), "standard");
        assert!(Credentials::from_storage("notification", None, stored("teams")).is_err());
    }

    #[test]
    fn unknown_kinds_and_flows_are_refused() {
        let e = Credentials::from_storage("oracle", None, stored(SALESFORCE_KEY)).unwrap_err();
        assert_eq!(e.to_string(), "kind \"oracle\"");
        let e = Credentials::from_storage("salesforce", Some("password"), stored(SALESFORCE_KEY))
            .unwrap_err();
        assert_eq!(e.to_string(), "flow \"password\"");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Credentials::from_storage("salesforce", None, stored(SALESFORCE_KEY)).unwrap();
        assert!(!format!("{c:?}").contains("rt-123"));
        let b = Credentials::basic(stored("user:pass"));
        assert!(!format!("{b:?}").contains("user:pass"));
    }
}
