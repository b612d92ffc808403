//! Settings read as text: a CIDR list, and master keys that are never printed nor serialized.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A CIDR list as a TOML list or as one comma-separated string (what an env var holds).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CidrList {
    #[default]
    #[serde(skip)]
    Empty,
    One(String),
    Many(Vec<String>),
}

impl CidrList {
    pub(super) fn joined(&self) -> String {
        match self {
            Self::Empty => String::new(),
            Self::One(s) => s.clone(),
            Self::Many(v) => v.join(","),
        }
    }
}

/// A master key as configured. Its `Debug` prints `[redacted]`, it has no `Serialize` (a
/// `Config` cannot print or serialize it; its fields carry `skip_serializing`), and reading it
/// takes any scalar, so a malformed value's error never echoes the value.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyText(pub(super) String);

impl KeyText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 key")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        d.deserialize_any(Scalar)
    }
}

/// `master_keys`: a TOML list, or one comma-separated string (what an env var holds).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum KeyList {
    Many(Vec<KeyText>),
    One(KeyText),
}

impl KeyList {
    /// The keys as `HOOKWARDEN_MASTER_KEYS` writes them; empty when none is given.
    pub(super) fn joined(&self) -> String {
        match self {
            Self::One(k) => k.0.clone(),
            Self::Many(v) => v.iter().map(|k| k.0.as_str()).collect::<Vec<_>>().join(","),
        }
    }
}
