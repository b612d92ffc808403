//! What an API key may do: its scopes, which scope a route's requirement is met by, and the
//! name a person gives a key to recognise it by.
//!
//! A leaked producer key must not be able to steal an org's tokens: a key carries only the
//! scopes its holder needs, and every `/api/**` route names the one scope it requires.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::Problem;

/// One thing a key may do. The order is from least to most: `admin` meets every requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Post events (`POST /api/events`, `POST /api/events/batch`), and nothing else: what a
    /// producer needs.
    Ingest,
    /// Every `GET` that only reads (connectors, deliveries, history, keys), and nothing that
    /// changes or starts anything.
    Read,
    /// Everything: connectors, their credentials and tokens, retries, keys.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether a key holding this scope meets a route's `required` one: `admin` meets all,
    /// any other only itself (`read` does not include `ingest`, nor the reverse).
    pub fn meets(self, required: Scope) -> bool {
        self == Self::Admin || self == required
    }

    /// The valid names, for messages: `ingest, read, admin`.
    pub fn names() -> String {
        Self::ALL.map(Scope::as_str).join(", ")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The scopes of one key: at least one when made through `parse`, each once, in `Scope`'s
/// order. A set of bits, so the key cache hands it out without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

fn bit(scope: Scope) -> u8 {
    1 << scope as u8
}

impl Scopes {
    /// What `accounts create` and `accounts new-key` make unless told otherwise, and what every
    /// key made before scopes existed became.
    pub fn admin() -> Self {
        Self(bit(Scope::Admin))
    }

    /// A key's scopes as a request or the command line gives them: one or more names.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, ApiKeyError> {
        if names.is_empty() {
            return Err(ApiKeyError::NoScopes);
        }
        names
            .iter()
            .map(|n| {
                let n = n.as_ref().trim();
                Scope::parse(n).ok_or_else(|| ApiKeyError::UnknownScope(n.to_owned()))
            })
            .collect()
    }

    /// As stored: the names joined by commas (`ingest,read`).
    pub fn to_stored(self) -> String {
        self.names().join(",")
    }

    /// From the stored text; a name this build does not know grants nothing (a key written by
    /// a newer version loses what it cannot be checked for, rather than gaining anything).
    pub fn from_stored(text: &str) -> Self {
        text.split(',')
            .filter_map(|n| Scope::parse(n.trim()))
            .collect()
    }

    /// Whether a key with these scopes meets a route's requirement.
    pub fn allow(self, required: Scope) -> bool {
        self.iter().any(|s| s.meets(required))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & bit(scope) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, s| bits | bit(s)))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_stored())
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// The longest name a key may have: a label for a list, not a description.
pub const KEY_NAME_MAX: usize = 100;

/// A name a person gives a key (`producer-eu`, `grafana`), to tell keys apart in lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

impl KeyName {
    /// 1 to `KEY_NAME_MAX` characters once trimmed, none of them a control character (a list
    /// prints it on one line).
    pub fn parse(raw: &str) -> Result<Self, ApiKeyError> {
        let name = raw.trim();
        let length = name.chars().count();
        if length == 0 || length > KEY_NAME_MAX || name.chars().any(char::is_control) {
            return Err(ApiKeyError::BadName(length));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a key's scopes or name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("no scope given")]
    NoScopes,
    #[error("{0:?} is not a scope")]
    UnknownScope(String),
    #[error("a key's name is 1 to {KEY_NAME_MAX} characters on one line")]
    BadName(usize),
}

impl Problem for ApiKeyError {
    fn code(&self) -> &'static str {
        match self {
            Self::NoScopes => "scopes_required",
            Self::UnknownScope(_) => "invalid_api_key_scope",
            Self::BadName(_) => "invalid_api_key_name",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::NoScopes => "scopes: a key needs at least one scope".to_owned(),
            Self::UnknownScope(name) => format!(
                "scopes: {:?} is not a scope",
                name.chars().take(40).collect::<String>()
            ),
            Self::BadName(length) => format!(
                "name: {length} characters, or a line break; a key's name is 1 to {KEY_NAME_MAX} characters on one line"
            ),
        }
    }

    fn fix(&self) -> String {
        match self {
            Self::NoScopes | Self::UnknownScope(_) => format!(
                "give scopes from {}: ingest posts events only, read reads everything, admin does everything",
                Scope::names()
            ),
            Self::BadName(_) => {
                "give a short label such as \"producer-eu\", or leave the name out".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_meets_every_requirement_and_the_others_only_their_own() {
        for required in Scope::ALL {
            assert!(Scope::Admin.meets(required));
        }
        assert!(Scope::Read.meets(Scope::Read));
        assert!(!Scope::Read.meets(Scope::Ingest));
        assert!(!Scope::Read.meets(Scope::Admin));
        assert!(Scope::Ingest.meets(Scope::Ingest));
        assert!(!Scope::Ingest.meets(Scope::Read));
        assert!(!Scope::Ingest.meets(Scope::Admin));
        let both = Scopes::parse(&["read", "ingest"]).unwrap();
        assert!(both.allow(Scope::Read) && both.allow(Scope::Ingest) && !both.allow(Scope::Admin));
    }

    #[test]
    fn scopes_parse_store_and_name_the_valid_ones() {
        let scopes = Scopes::parse(&["read", " ingest", "read"]).unwrap();
        assert_eq!(scopes.names(), ["ingest", "read"]);
        assert_eq!(scopes.to_stored(), "ingest,read");
        assert_eq!(Scopes::from_stored("ingest,read"), scopes);
        assert_eq!(
            serde_json::to_value(scopes).unwrap(),
            serde_json::json!(["ingest", "read"])
        );
        assert_eq!(Scopes::from_stored("admin"), Scopes::admin());
        assert!(
            Scopes::from_stored("superuser").names().is_empty(),
            "an unknown stored scope grants nothing"
        );
        let none: [&str; 0] = [];
        assert_eq!(Scopes::parse(&none), Err(ApiKeyError::NoScopes));
        let err = Scopes::parse(&["read", "write"]).unwrap_err();
        assert_eq!(err.code(), "invalid_api_key_scope");
        assert!(err.message().contains("\"write\""), "{}", err.message());
        assert!(
            err.fix().contains("ingest, read, admin"),
            "the valid ones are named: {}",
            err.fix()
        );
    }

    #[test]
    fn key_names_are_short_labels_on_one_line() {
        assert_eq!(
            KeyName::parse("  producer-eu ").unwrap().as_str(),
            "producer-eu"
        );
        for bad in ["", "   ", "two\nlines", &"x".repeat(KEY_NAME_MAX + 1)] {
            let err = KeyName::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_api_key_name", "{bad:?}");
        }
        assert!(KeyName::parse(&"é".repeat(KEY_NAME_MAX)).is_ok());
    }
}
