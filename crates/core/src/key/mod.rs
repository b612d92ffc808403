//! The connector `key`: base64 of a JSON object (OneSpan's format), decoded, checked and
//! normalised at the edge. Past `Key::parse` nothing about a key is re-checked.
//! Decoding, checking, masking and storing keys: DESIGN.md "The key".
//!
//! The order of checks is fixed so a key with several faults always gets the same, most basic
//! complaint first: size, base64, UTF-8, JSON, object, field types, client_id, flow, values,
//! then the rules that combine fields.

mod advice;
mod base64;
mod error;
mod fields;
mod host;
mod mask;
pub use mask::mask_url;
mod preset;
mod text;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::base64::decode_base64;
use crate::connector::{ConnectorKind, Flow};
use fields::check_fields;
use mask::mask;
use text::{decode_text, json_type, not_json};

pub use error::KeyError;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    #[default]
    ClientSecretPost,
    ClientSecretBasic,
}

/// Where grant parameters go: the form body (default) or the URL query string (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStyle {
    #[default]
    Body,
    Query,
}

/// Session management (seed 004): when an access token is considered for refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    #[default]
    Auto,
    Fixed,
    None,
}

/// A decoded, validated key. Secrets are `SecretString` (Debug prints `[REDACTED]`).
#[derive(Debug, Clone)]
pub struct Key {
    /// Salesforce host without scheme, e.g. `acme.my.salesforce.com`; `None` when not given.
    pub host: Option<String>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub grant_type: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub introspection_url: Option<String>,
    pub authorization_url: Option<String>,
    pub scope: Option<String>,
    pub tenant: Option<String>,
    pub auth_method: AuthMethod,
    pub request_style: RequestStyle,
    pub session: SessionMode,
    pub session_timeout_s: Option<u64>,
    pub refresh_hook: Option<String>,
}

/// The endpoints a connector talks to: explicit ones from the key, else the preset's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    pub token_url: String,
    pub revocation_url: Option<String>,
    pub introspection_url: Option<String>,
    pub authorization_url: Option<String>,
}

/// A key plus what the parser tolerated and wants the user to know (line breaks, URL-safe
/// alphabet, missing padding, a stripped scheme in `host`, ...).
#[derive(Debug, Clone)]
pub struct ParsedKey {
    pub key: Key,
    pub warnings: Vec<String>,
    pub repairs: KeyRepairs,
}

/// What the base64 decoder had to repair in a key as it was given (each also a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyRepairs {
    /// Wrapped lines: `base64` without `-w 0` (seed 001's pitfall).
    pub line_breaks: bool,
    pub blanks: bool,
    pub url_safe: bool,
    pub missing_padding: bool,
}

impl Key {
    /// Decode and check a key as it arrives in the API (`"key"` field) or on the CLI.
    pub fn parse(raw: &str, kind: ConnectorKind) -> Result<ParsedKey, KeyError> {
        let mut warnings = Vec::new();
        let (bytes, repairs) = decode_base64(raw, &mut warnings)?;
        let mut parsed = from_json(&bytes, kind, Origin::Given)?;
        warnings.append(&mut parsed.warnings);
        parsed.warnings = warnings;
        parsed.repairs = repairs;
        Ok(parsed)
    }

    /// Re-read a key from its storage form (`to_storage_json`). Runs the same checks as
    /// `parse`, since a stored key was valid when it was written, and accepts one form `parse`
    /// does not: a refresh-token key whose refresh token was revoked and taken out
    /// (`without_refresh_token`), which keeps its flow until it is authorized again.
    pub fn from_storage_json(json: &str, kind: ConnectorKind) -> Result<Key, KeyError> {
        from_json(json.as_bytes(), kind, Origin::Stored).map(|p| p.key)
    }

    /// The storage form `stored` without its refresh token (given with the key or obtained by
    /// a code exchange), for a revocation: nothing that can mint a token stays. The key keeps
    /// the refresh-token flow (`grant_type: refresh_token`), so it can be authorized again
    /// (`…/oauth/url`) and shows what it was. `None` when it holds no refresh token, or is not
    /// a JSON object (it is then unusable anyway and stays as it is).
    pub fn without_refresh_token(stored: &str) -> Option<String> {
        let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(stored) else {
            return None;
        };
        obj.remove("refresh_token")?;
        obj.insert("grant_type".into(), Value::String("refresh_token".into()));
        Some(Value::Object(obj).to_string())
    }

    /// The full key as JSON, secrets included: only for encryption at rest.
    pub fn to_storage_json(&self) -> String {
        mask::to_json(self, false).to_string()
    }

    /// The key as JSON with every secret masked (at most the last 4 characters visible).
    pub fn masked(&self) -> serde_json::Value {
        mask::to_json(self, true)
    }

    /// `refresh_token` when the key holds one (or held one that was revoked: `grant_type`
    /// says so), else `client_credentials`.
    pub fn flow(&self) -> Flow {
        if self.refresh_token.is_some() || self.grant_type.as_deref() == Some("refresh_token") {
            Flow::RefreshToken
        } else {
            Flow::ClientCredentials
        }
    }

    /// Endpoints after presets: Salesforce from `host`, Microsoft from `tenant`, generic from
    /// `token_url`; an explicit endpoint in the key always wins.
    pub fn endpoints(&self, kind: ConnectorKind) -> Endpoints {
        preset::endpoints(self, kind)
    }
}

/// Encode a key JSON object the way `hookwarden key encode` prints it: standard base64, one
/// line, padded (the `base64 -w 0` pitfall of seed 001, solved).
pub fn encode(json: &serde_json::Value) -> String {
    // `::base64` is the crate; plain `base64` here is the child module that repairs keys.
    use ::base64::Engine;
    ::base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

/// Mask a secret for display: `****` plus its last 4 characters when it has 12 or more,
/// else `****` alone. The same rule as `Key::masked`, for signing secrets and Basic keys.
pub fn mask_secret(secret: &str) -> String {
    mask(secret)
}

/// The JSON object a key decodes to, secrets masked, even when the key rules reject it;
/// `None` when it is not base64 of a JSON object. It is what `hookwarden key decode` shows so
/// the user can see what is off.
pub fn decode_masked(raw: &str) -> Option<serde_json::Value> {
    let mut ignored = Vec::new();
    let (bytes, _) = decode_base64(raw, &mut ignored).ok()?;
    let text = decode_text(&bytes, &mut ignored).ok()?;
    let Value::Object(mut map) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    for (name, value) in map.iter_mut() {
        if matches!(
            name.as_str(),
            "client_secret" | "refresh_token" | "access_token" | "password"
        ) {
            if let Value::String(s) = value {
                *value = Value::String(mask(s));
            }
        }
    }
    Some(Value::Object(map))
}

/// Longest `key` accepted, in bytes, before decoding. A key is a few hundred bytes; 16 KiB
/// leaves room for long JWT-style refresh tokens while bounding the work a hostile request can
/// cause.
pub const MAX_KEY_LEN: usize = 16 * 1024;
/// Values longer than this are cut when echoed in an error or warning.
const ECHO_LIMIT: usize = 64;

/// Where a key's JSON comes from: a person (every rule) or the store (which also holds keys
/// whose refresh token was revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Given,
    Stored,
}

/// Check the decoded text of a key, or the storage form written by `to_json`.
fn from_json(bytes: &[u8], kind: ConnectorKind, origin: Origin) -> Result<ParsedKey, KeyError> {
    let mut warnings = Vec::new();
    let text = decode_text(bytes, &mut warnings)?;
    let value: Value = serde_json::from_str(text).map_err(|e| not_json(&e, text))?;
    let obj = match value {
        Value::Object(obj) => obj,
        other => {
            return Err(KeyError::NotObject {
                found: json_type(&other),
            })
        }
    };
    let key = check_fields(&obj, kind, origin == Origin::Stored, &mut warnings)?;
    Ok(ParsedKey {
        key,
        warnings,
        repairs: KeyRepairs::default(),
    })
}

/// A value as echoed in an error or warning: cut at `ECHO_LIMIT` characters.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(ECHO_LIMIT).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
