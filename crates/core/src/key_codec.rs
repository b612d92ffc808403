//! Decoding, checking, masking and storing connector keys (DESIGN.md "The key").
//!
//! The order of checks is fixed so a key with several faults always gets the same, most basic
//! complaint first: size, base64, UTF-8, JSON, object, field types, client_id, flow, values,
//! then the rules that combine fields.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::connector::{ConnectorKind, Flow};
use crate::key::{AuthMethod, Endpoints, Key, ParsedKey, RequestStyle, SessionMode};
use crate::key_error::KeyError;

/// A key is a few hundred bytes; 16 KiB leaves room for long JWT-style refresh tokens while
/// bounding the work a hostile request can cause.
pub(crate) const MAX_KEY_LEN: usize = 16 * 1024;
/// Same limit as callback URLs (url_rules).
const MAX_URL_LEN: usize = 2048;
/// A session longer than a year is a typo; it also keeps later `Duration` arithmetic far from overflow.
const MAX_SESSION_TIMEOUT_S: u64 = 366 * 24 * 3600;
/// Salesforce's default session timeout (DESIGN.md "Expiry").
const SALESFORCE_DEFAULT_SESSION_S: u64 = 7200;
/// Salesforce refuses client credentials here: they need the org's My Domain (seed 001).
const SALESFORCE_LOGIN_HOSTS: [&str; 2] = ["login.salesforce.com", "test.salesforce.com"];
/// Scopes that only make sense for user-delegated flows (seed 001: "no valid scopes defined").
const USER_ONLY_SCOPES: [&str; 2] = ["refresh_token", "offline_access"];
/// Values longer than this are cut when echoed in an error or warning.
const ECHO_LIMIT: usize = 64;

const KNOWN_FIELDS: [&str; 16] = [
    "client_id",
    "host",
    "client_secret",
    "refresh_token",
    "grant_type",
    "token_url",
    "revocation_url",
    "introspection_url",
    "authorization_url",
    "scope",
    "tenant",
    "auth_method",
    "request_style",
    "session",
    "session_timeout_s",
    "refresh_hook",
];

const LINE_BREAK_WARNING: &str = "the key contains line breaks (base64 without -w 0); they were removed — encode with `base64 -w 0` or `hookwarden key encode`";

pub(crate) fn parse(raw: &str, kind: ConnectorKind) -> Result<ParsedKey, KeyError> {
    let mut warnings = Vec::new();
    let bytes = decode_base64(raw, &mut warnings)?;
    let mut parsed = from_json(&bytes, kind)?;
    warnings.append(&mut parsed.warnings);
    parsed.warnings = warnings;
    Ok(parsed)
}

/// Whatever JSON object a key decodes to, with its secret fields masked, even when the key
/// rules reject it: what `hookwarden key decode` shows so the user can see what is off.
pub(crate) fn decode_masked(raw: &str) -> Option<Value> {
    let mut ignored = Vec::new();
    let bytes = decode_base64(raw, &mut ignored).ok()?;
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

/// Base64 as people actually produce it: wrapped at 76 columns, URL-safe, unpadded.
fn decode_base64(raw: &str, warnings: &mut Vec<String>) -> Result<Vec<u8>, KeyError> {
    if raw.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLarge {
            len: raw.len(),
            max: MAX_KEY_LEN,
        });
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(KeyError::Empty);
    }
    if trimmed.starts_with('{') {
        return Err(KeyError::NotBase64 {
            reason: "it is JSON text; the key is the base64 encoding of that JSON".to_owned(),
        });
    }

    let mut clean = String::with_capacity(trimmed.len());
    let (mut line_breaks, mut blanks, mut url_safe) = (false, false, false);
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' | '=' => clean.push(c),
            '-' => {
                url_safe = true;
                clean.push('+');
            }
            '_' => {
                url_safe = true;
                clean.push('/');
            }
            '\n' | '\r' => line_breaks = true,
            ' ' | '\t' => blanks = true,
            other => {
                return Err(KeyError::NotBase64 {
                    reason: bad_char_reason(other, i + 1, trimmed),
                })
            }
        }
    }

    let body = clean.trim_end_matches('=');
    let padding = clean.len() - body.len();
    if let Some(pos) = body.find('=') {
        return Err(KeyError::NotBase64 {
            reason: format!(
                "'=' padding at position {} is not at the end (two keys pasted together?)",
                pos + 1
            ),
        });
    }
    if body.len() % 4 == 1 {
        return Err(KeyError::NotBase64 {
            reason: format!(
                "{} base64 characters cannot be a whole key: it looks truncated",
                body.len()
            ),
        });
    }
    let expected_padding = (4 - body.len() % 4) % 4;
    let missing_padding = padding == 0 && expected_padding != 0;
    if padding != 0 && padding != expected_padding {
        return Err(KeyError::NotBase64 {
            reason: format!("it ends with {padding} '=' where {expected_padding} belong: it looks truncated or altered"),
        });
    }

    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(body)
        .map_err(|e| KeyError::NotBase64 {
            reason: match e {
                base64::DecodeError::InvalidLastSymbol(..) => {
                    "its last character does not fit: the key looks truncated or altered".to_owned()
                }
                // Other cases were ruled out above; keep the library's wording (it holds no key data).
                other => other.to_string(),
            },
        })?;

    if line_breaks {
        warnings.push(LINE_BREAK_WARNING.to_owned());
    }
    if blanks {
        warnings.push(
            "the key contains spaces or tabs; they were removed — encode with `base64 -w 0` or `hookwarden key encode`"
                .to_owned(),
        );
    }
    if url_safe {
        warnings.push(
            "the key uses the URL-safe base64 alphabet ('-' and '_'); it was accepted, standard base64 is expected"
                .to_owned(),
        );
    }
    if missing_padding {
        warnings.push("the key lacks its '=' base64 padding; it was accepted".to_owned());
    }
    Ok(bytes)
}

/// Name the offending character (one character reveals nothing of a secret) and guess why.
fn bad_char_reason(c: char, position: usize, key: &str) -> String {
    let shown = if c.is_ascii_graphic() {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", c as u32)
    };
    let hint = match c {
        '"' | '\'' if key.ends_with(c) => " — the key is wrapped in quotes; remove them",
        '%' => " — the key looks URL-encoded (%3D is '='); decode it first",
        '.' if key.split('.').count() == 3 => " — this looks like a JWT, not a key",
        _ => "",
    };
    format!("character {shown} at position {position} is not in the base64 alphabet{hint}")
}

/// Check the decoded text of a key, or the storage form written by `to_json`.
pub(crate) fn from_json(bytes: &[u8], kind: ConnectorKind) -> Result<ParsedKey, KeyError> {
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
    let key = check_fields(&obj, kind, &mut warnings)?;
    Ok(ParsedKey { key, warnings })
}

fn decode_text<'a>(bytes: &'a [u8], warnings: &mut Vec<String>) -> Result<&'a str, KeyError> {
    const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
    let (body, skipped) = match bytes.strip_prefix(&BOM) {
        Some(rest) => {
            warnings.push(
                "the decoded key starts with a UTF-8 byte order mark (Windows editors add it); it was removed"
                    .to_owned(),
            );
            (rest, BOM.len())
        }
        None => (bytes, 0),
    };
    // PowerShell's Encoding::Unicode gives UTF-16LE: ASCII JSON with a NUL after every byte.
    let utf16 = body.starts_with(&[0xFF, 0xFE])
        || body.starts_with(&[0xFE, 0xFF])
        || (body.len() >= 2 && (body[0] == 0) != (body[1] == 0));
    if utf16 {
        return Err(KeyError::NotUtf8 {
            offset: skipped,
            utf16: true,
        });
    }
    std::str::from_utf8(body).map_err(|e| KeyError::NotUtf8 {
        offset: skipped + e.valid_up_to(),
        utf16: false,
    })
}

fn not_json(e: &serde_json::Error, text: &str) -> KeyError {
    use serde_json::error::Category;
    let detail = match e.classify() {
        // serde_json's syntax messages are fixed phrases plus a position: no key data in them.
        Category::Syntax | Category::Eof => e.to_string(),
        _ => format!("invalid JSON at line {} column {}", e.line(), e.column()),
    };
    let t = text.trim_start();
    let hint = if t.is_empty() {
        Some("the decoded text is empty")
    } else if t.starts_with("eyJ") {
        Some("the decoded text is base64 again: the key was encoded twice")
    } else if t.starts_with("{'") {
        Some("JSON needs double quotes around names and strings, not single quotes")
    } else if !t.starts_with('{') && t.contains('=') {
        Some("it looks like form fields (name=value); the key must be a JSON object")
    } else {
        None
    };
    KeyError::NotJson { detail, hint }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A string field: absent or `null` is `None`; empty or blank is an error; other types are errors.
fn string_field(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, KeyError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(KeyError::EmptyField { field }),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(KeyError::FieldType {
            field,
            expected: "a string",
            found: json_type(other),
        }),
    }
}

fn session_timeout_field(obj: &Map<String, Value>) -> Result<Option<u64>, KeyError> {
    const FIELD: &str = "session_timeout_s";
    match obj.get(FIELD) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) if (1..=MAX_SESSION_TIMEOUT_S).contains(&s) => Ok(Some(s)),
            _ => Err(KeyError::BadValue {
                field: FIELD,
                value: shorten(&n.to_string()),
                accepted: format!("a whole number of seconds from 1 to {MAX_SESSION_TIMEOUT_S}"),
            }),
        },
        Some(other) => Err(KeyError::FieldType {
            field: FIELD,
            expected: "a positive integer (a JSON number of seconds)",
            found: json_type(other),
        }),
    }
}

fn enum_field<T: Copy + Default>(
    value: Option<&str>,
    field: &'static str,
    choices: &[(&str, T)],
) -> Result<T, KeyError> {
    let Some(value) = value else {
        return Ok(T::default());
    };
    choices
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| KeyError::BadValue {
            field,
            value: shorten(value),
            accepted: one_of(choices.iter().map(|(name, _)| *name)),
        })
}

fn one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    format!("one of {}", quoted.join(", "))
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(ECHO_LIMIT).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn check_fields(
    obj: &Map<String, Value>,
    kind: ConnectorKind,
    warnings: &mut Vec<String>,
) -> Result<Key, KeyError> {
    let client_id = string_field(obj, "client_id")?.ok_or(KeyError::MissingClientId)?;
    let host = string_field(obj, "host")?;
    let client_secret = string_field(obj, "client_secret")?;
    let refresh_token = string_field(obj, "refresh_token")?;
    let grant_type = string_field(obj, "grant_type")?;
    let token_url = string_field(obj, "token_url")?;
    let revocation_url = string_field(obj, "revocation_url")?;
    let introspection_url = string_field(obj, "introspection_url")?;
    let authorization_url = string_field(obj, "authorization_url")?;
    let scope = string_field(obj, "scope")?;
    let tenant = string_field(obj, "tenant")?;
    let auth_method = string_field(obj, "auth_method")?;
    let request_style = string_field(obj, "request_style")?;
    let session = string_field(obj, "session")?;
    let session_timeout_s = session_timeout_field(obj)?;
    let refresh_hook = string_field(obj, "refresh_hook")?;

    // The flow: refresh_token when present, else client_credentials (Key::flow).
    if refresh_token.is_none() && client_secret.is_none() {
        return Err(KeyError::NoFlow);
    }
    let flow = if refresh_token.is_some() {
        Flow::RefreshToken
    } else {
        Flow::ClientCredentials
    };
    if let Some(gt) = grant_type.as_deref() {
        check_grant_type(gt, refresh_token.is_some(), client_secret.is_some())?;
    }

    let auth_method = enum_field(
        auth_method.as_deref(),
        "auth_method",
        &[
            ("client_secret_post", AuthMethod::ClientSecretPost),
            ("client_secret_basic", AuthMethod::ClientSecretBasic),
        ],
    )?;
    let request_style = enum_field(
        request_style.as_deref(),
        "request_style",
        &[("body", RequestStyle::Body), ("query", RequestStyle::Query)],
    )?;
    let session = enum_field(
        session.as_deref(),
        "session",
        &[
            ("auto", SessionMode::Auto),
            ("fixed", SessionMode::Fixed),
            ("none", SessionMode::None),
        ],
    )?;

    let host = host
        .map(|h| normalize_host(&h, kind, warnings))
        .transpose()?;
    let tenant = tenant.map(|t| check_tenant(&t)).transpose()?;
    for (field, value) in [
        ("token_url", &token_url),
        ("revocation_url", &revocation_url),
        ("introspection_url", &introspection_url),
        ("authorization_url", &authorization_url),
        ("refresh_hook", &refresh_hook),
    ] {
        if let Some(v) = value {
            check_url_syntax(field, v)?;
        }
    }

    match kind {
        ConnectorKind::Salesforce if host.is_none() && token_url.is_none() => {
            return Err(KeyError::MissingHost)
        }
        ConnectorKind::Dynamics if tenant.is_none() && token_url.is_none() => {
            return Err(KeyError::MissingTenant)
        }
        ConnectorKind::Generic if token_url.is_none() => return Err(KeyError::MissingTokenUrl),
        _ => {}
    }

    // Only when the token endpoint is derived from `host`: an explicit token_url decides alone.
    if kind == ConnectorKind::Salesforce && flow == Flow::ClientCredentials && token_url.is_none() {
        if let Some(h) = host.as_deref() {
            let name = host_name_only(h);
            if SALESFORCE_LOGIN_HOSTS.contains(&name) {
                return Err(KeyError::ClientCredentialsOnLoginHost {
                    host: name.to_owned(),
                });
            }
        }
    }

    if flow == Flow::ClientCredentials {
        if let Some(s) = scope.as_deref() {
            let forbidden = scope_items(s).find_map(|item| {
                USER_ONLY_SCOPES
                    .iter()
                    .find(|f| f.eq_ignore_ascii_case(item))
                    .copied()
            });
            if let Some(scope) = forbidden {
                return Err(KeyError::ScopeForbidden { scope });
            }
        }
    }

    if session == SessionMode::Fixed && session_timeout_s.is_none() {
        if kind == ConnectorKind::Salesforce {
            warnings.push(format!(
                "`session` is fixed without `session_timeout_s`; Salesforce's default of {SALESFORCE_DEFAULT_SESSION_S} s is used"
            ));
        } else {
            return Err(KeyError::SessionTimeoutRequired);
        }
    }

    advise(
        &Advice {
            obj,
            kind,
            flow,
            host: host.as_deref(),
            tenant: tenant.as_deref(),
            scope: scope.as_deref(),
            has_secret: client_secret.is_some(),
            auth_method,
            session,
            session_timeout_s,
        },
        warnings,
    );
    for (field, value) in [
        ("client_id", Some(&client_id)),
        ("client_secret", client_secret.as_ref()),
        ("refresh_token", refresh_token.as_ref()),
    ] {
        if value.is_some_and(|v| v.trim().len() != v.len()) {
            warnings.push(format!(
                "`{field}` has leading or trailing whitespace; it was kept as given — check that it was copied exactly"
            ));
        }
    }

    Ok(Key {
        host,
        client_id,
        client_secret: client_secret.map(SecretString::from),
        refresh_token: refresh_token.map(SecretString::from),
        grant_type,
        token_url,
        revocation_url,
        introspection_url,
        authorization_url,
        scope,
        tenant,
        auth_method,
        request_style,
        session,
        session_timeout_s,
        refresh_hook,
    })
}

fn check_grant_type(gt: &str, has_refresh_token: bool, has_secret: bool) -> Result<(), KeyError> {
    match gt {
        "refresh_token" if !has_refresh_token => Err(KeyError::GrantTypeMismatch {
            grant_type: "refresh_token",
            reason: "the key has no `refresh_token`",
        }),
        "client_credentials" if !has_secret => Err(KeyError::GrantTypeMismatch {
            grant_type: "client_credentials",
            reason: "the key has no `client_secret`",
        }),
        "client_credentials" if has_refresh_token => Err(KeyError::GrantTypeMismatch {
            grant_type: "client_credentials",
            reason: "the key also holds a `refresh_token`, which selects the refresh token flow",
        }),
        "refresh_token" | "client_credentials" => Ok(()),
        other => Err(KeyError::BadValue {
            field: "grant_type",
            value: shorten(other),
            accepted: one_of(["refresh_token", "client_credentials"].into_iter()),
        }),
    }
}

/// Scopes are space-separated (RFC 6749); commas creep in from UIs, so split on both.
fn scope_items(scope: &str) -> impl Iterator<Item = &str> {
    scope
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
}

/// Everything worth saying about a key that is nevertheless accepted.
struct Advice<'a> {
    obj: &'a Map<String, Value>,
    kind: ConnectorKind,
    flow: Flow,
    host: Option<&'a str>,
    tenant: Option<&'a str>,
    scope: Option<&'a str>,
    has_secret: bool,
    auth_method: AuthMethod,
    session: SessionMode,
    session_timeout_s: Option<u64>,
}

fn advise(a: &Advice<'_>, warnings: &mut Vec<String>) {
    let unknown: Vec<String> = a
        .obj
        .keys()
        .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|k| format!("`{}`", shorten(k)))
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).map(String::as_str).collect();
        let more = if unknown.len() > 5 {
            format!(" and {} more", unknown.len() - 5)
        } else {
            String::new()
        };
        warnings.push(format!(
            "unknown field(s) {}{more} in the key were ignored",
            shown.join(", ")
        ));
    }
    if a.host.is_some() && a.kind != ConnectorKind::Salesforce {
        warnings
            .push("`host` is only used by salesforceOauth2 connectors; it was ignored".to_owned());
    }
    if a.tenant.is_some() && a.kind != ConnectorKind::Dynamics {
        warnings
            .push("`tenant` is only used by dynamicsOauth2 connectors; it was ignored".to_owned());
    }
    if a.kind == ConnectorKind::Salesforce {
        if let Some(h) = a.host {
            if host_name_only(h).ends_with(".lightning.force.com") {
                warnings.push("`host` is a Lightning Experience domain; OAuth endpoints live on your My Domain, `<name>.my.salesforce.com`".to_owned());
            }
        }
    }
    if a.kind == ConnectorKind::Dynamics && a.flow == Flow::ClientCredentials {
        if !a.scope.is_some_and(|s| s.trim_end().ends_with("/.default")) {
            warnings.push("Microsoft's client credentials flow needs `scope` of the form `https://<org>.crm.dynamics.com/.default`".to_owned());
        }
        if let Some(t) = a.tenant {
            if ["common", "organizations", "consumers"].contains(&t.to_ascii_lowercase().as_str()) {
                warnings.push(format!("`tenant` {t:?} does not work with the client credentials flow; give your tenant id or domain"));
            }
        }
    }
    if a.auth_method == AuthMethod::ClientSecretBasic && !a.has_secret {
        warnings.push(
            "`auth_method` client_secret_basic has no effect without `client_secret`".to_owned(),
        );
    }
    if a.session == SessionMode::None && a.session_timeout_s.is_some() {
        warnings.push("`session_timeout_s` is ignored with `session: none` (tokens are refreshed only on 401)".to_owned());
    }
}

/// Reduce `host` to a host name (and optional port), stripping what is unambiguous.
fn normalize_host(
    raw: &str,
    kind: ConnectorKind,
    warnings: &mut Vec<String>,
) -> Result<String, KeyError> {
    let invalid = |reason: &str| KeyError::HostInvalid {
        host: shorten(raw),
        reason: reason.to_owned(),
    };
    let mut h = raw.trim();
    let mut stripped = h.len() != raw.len();
    if let Some(idx) = h.find("://") {
        let scheme = h[..idx].to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(invalid("it starts with a URL scheme other than https://"));
        }
        h = &h[idx + 3..];
        stripped = true;
    }
    if h.contains('@') {
        return Err(invalid("it contains user-info (`user@`)"));
    }
    if h.contains('?') || h.contains('#') {
        return Err(invalid("it contains a query or fragment"));
    }
    if let Some(slash) = h.find('/') {
        if h[slash..].chars().any(|c| c != '/') {
            return Err(invalid(
                "it contains a path; a custom token endpoint goes in `token_url`",
            ));
        }
        h = &h[..slash];
        stripped = true;
    }
    if h.is_empty() {
        return Err(invalid("there is no host name in it"));
    }
    if h.chars().any(char::is_whitespace) {
        return Err(invalid("it contains spaces"));
    }
    let (name, port) = split_port(h).map_err(invalid)?;
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(n) if n > 0) {
            return Err(invalid("its port is not a number from 1 to 65535"));
        }
    }
    check_host_name(name).map_err(invalid)?;

    // A trailing dot is valid DNS but breaks TLS name checks at some providers.
    let bare = name.strip_suffix('.').unwrap_or(name);
    stripped |= bare.len() != name.len();
    let normalized = match port {
        Some(p) => format!("{bare}:{p}"),
        None => bare.to_owned(),
    }
    .to_ascii_lowercase();
    if stripped {
        warnings.push(format!(
            "`host` was given as {:?}; it was reduced to {normalized} — give the host name only, without https:// or a path",
            shorten(raw)
        ));
    }
    if kind == ConnectorKind::Salesforce && port.is_some() {
        warnings.push("`host` has a port; Salesforce endpoints are on 443".to_owned());
    }
    Ok(normalized)
}

fn split_port(h: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = h.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("it has an unclosed '['");
        };
        let after = &rest[end + 1..];
        return match after {
            "" => Ok((&h[..end + 2], None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((&h[..end + 2], Some(port))),
                None => Err("unexpected characters after ']'"),
            },
        };
    }
    match h.matches(':').count() {
        0 => Ok((h, None)),
        1 => h
            .split_once(':')
            .map(|(n, p)| (n, Some(p)))
            .ok_or("it has an unexpected ':'"),
        _ => Err("it has several ':' (an IPv6 address needs brackets)"),
    }
}

fn check_host_name(name: &str) -> Result<(), &'static str> {
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "the bracketed part is not an IPv6 address");
    }
    if !name.is_ascii() {
        return Err("it has non-ASCII characters; use the punycode (xn--) form");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters");
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(
                "it has characters a host name cannot have (letters, digits, '-' and '.' only)",
            );
        }
    }
    Ok(())
}

/// `host` without port and trailing dot, for comparisons.
fn host_name_only(host: &str) -> &str {
    let name = match split_port(host) {
        Ok((name, _)) => name,
        Err(_) => host,
    };
    name.strip_suffix('.').unwrap_or(name)
}

fn check_tenant(raw: &str) -> Result<String, KeyError> {
    let t = raw.trim();
    let ok = t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(KeyError::BadValue {
            field: "tenant",
            value: shorten(raw),
            accepted: "a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com".to_owned(),
        })
    }
}

/// Syntax only: whether the address may be used is url_rules::check_endpoint's call, with the
/// server's policy.
fn check_url_syntax(field: &'static str, value: &str) -> Result<(), KeyError> {
    let invalid = |reason: String| KeyError::UrlInvalid { field, reason };
    if value.len() > MAX_URL_LEN {
        return Err(invalid(format!(
            "it is longer than {MAX_URL_LEN} characters"
        )));
    }
    let url = url::Url::parse(value).map_err(|e| {
        invalid(match e {
            url::ParseError::RelativeUrlWithoutBase => {
                "it is not absolute (it needs https:// and a host)".to_owned()
            }
            // url's messages are fixed phrases ("invalid port number", ...), free of input.
            other => other.to_string(),
        })
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("its scheme is not https".to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".to_owned()));
    }
    Ok(())
}

/// The JSON form of a key. Unmasked it is the storage form and reads back through `from_json`
/// unchanged; masked it is what the API shows.
pub(crate) fn to_json(key: &Key, masked: bool) -> Value {
    let mut m = Map::new();
    let mut put = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(name.to_owned(), Value::String(v));
        }
    };
    let secret = |s: &Option<SecretString>| {
        s.as_ref().map(|s| {
            if masked {
                mask(s.expose_secret())
            } else {
                s.expose_secret().to_owned()
            }
        })
    };
    // URLs may carry credentials in their query (e.g. an Azure Functions `code=`).
    let url = |u: &Option<String>| {
        u.as_ref()
            .map(|u| if masked { mask_url(u) } else { u.clone() })
    };
    put("host", key.host.clone());
    put("client_id", Some(key.client_id.clone()));
    put("client_secret", secret(&key.client_secret));
    put("refresh_token", secret(&key.refresh_token));
    put("grant_type", key.grant_type.clone());
    put("token_url", url(&key.token_url));
    put("revocation_url", url(&key.revocation_url));
    put("introspection_url", url(&key.introspection_url));
    put("authorization_url", url(&key.authorization_url));
    put("scope", key.scope.clone());
    put("tenant", key.tenant.clone());
    put("refresh_hook", url(&key.refresh_hook));
    put(
        "auth_method",
        Some(
            match key.auth_method {
                AuthMethod::ClientSecretPost => "client_secret_post",
                AuthMethod::ClientSecretBasic => "client_secret_basic",
            }
            .to_owned(),
        ),
    );
    put(
        "request_style",
        Some(
            match key.request_style {
                RequestStyle::Body => "body",
                RequestStyle::Query => "query",
            }
            .to_owned(),
        ),
    );
    put(
        "session",
        Some(
            match key.session {
                SessionMode::Auto => "auto",
                SessionMode::Fixed => "fixed",
                SessionMode::None => "none",
            }
            .to_owned(),
        ),
    );
    if let Some(s) = key.session_timeout_s {
        m.insert("session_timeout_s".to_owned(), Value::from(s));
    }
    Value::Object(m)
}

/// `****` plus the last 4 characters, only when the secret is long enough (12+) that 4
/// characters leave at least 8 unknown.
pub(crate) fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 12 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    } else {
        "****".to_owned()
    }
}

fn mask_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_owned();
    };
    if url.password().is_some() {
        // Infallible for http(s) URLs with a host; ignore the error for the others.
        let _ = url.set_password(Some("****"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), mask(&v)))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

struct Preset {
    token_url: String,
    revocation_url: Option<String>,
    introspection_url: Option<String>,
    authorization_url: Option<String>,
}

/// Preset endpoints, overridden field by field by the key. A key built by hand without the
/// required fields yields an empty `token_url` rather than a panic.
pub(crate) fn endpoints(key: &Key, kind: ConnectorKind) -> Endpoints {
    let preset = match kind {
        ConnectorKind::Salesforce => key.host.as_ref().map(|h| {
            let base = format!("https://{h}/services/oauth2");
            Preset {
                token_url: format!("{base}/token"),
                revocation_url: Some(format!("{base}/revoke")),
                introspection_url: Some(format!("{base}/introspect")),
                authorization_url: Some(format!("{base}/authorize")),
            }
        }),
        ConnectorKind::Dynamics => key.tenant.as_ref().map(|t| {
            let base = format!("https://login.microsoftonline.com/{t}/oauth2/v2.0");
            Preset {
                token_url: format!("{base}/token"),
                revocation_url: None,
                introspection_url: None,
                authorization_url: Some(format!("{base}/authorize")),
            }
        }),
        ConnectorKind::Generic => None,
    };
    let (token_url, revocation_url, introspection_url, authorization_url) = match preset {
        Some(p) => (
            Some(p.token_url),
            p.revocation_url,
            p.introspection_url,
            p.authorization_url,
        ),
        None => (None, None, None, None),
    };
    Endpoints {
        token_url: key.token_url.clone().or(token_url).unwrap_or_default(),
        revocation_url: key.revocation_url.clone().or(revocation_url),
        introspection_url: key.introspection_url.clone().or(introspection_url),
        authorization_url: key.authorization_url.clone().or(authorization_url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(raw: &str) -> Result<(String, Vec<String>), &'static str> {
        let mut w = Vec::new();
        normalize_host(raw, ConnectorKind::Salesforce, &mut w)
            .map(|h| (h, w))
            .map_err(|e| e.code())
    }

    #[test]
    fn hosts_are_normalised_or_refused() {
        assert_eq!(
            host("acme.my.salesforce.com").unwrap(),
            ("acme.my.salesforce.com".into(), vec![])
        );
        assert_eq!(
            host("acme.my.salesforce.com.").unwrap().0,
            "acme.my.salesforce.com"
        );
        assert_eq!(
            host("HTTPS://ACME.my.salesforce.com//").unwrap().0,
            "acme.my.salesforce.com"
        );
        assert_eq!(host("[::1]:8443").unwrap().0, "[::1]:8443");
        assert_eq!(host("127.0.0.1:9000").unwrap().0, "127.0.0.1:9000");
        for bad in [
            "::1",
            "[::1",
            "[zz]",
            "a..b",
            "-a.com",
            "a-.com",
            "bücher.de",
            "a:b:c",
            "x.com:0",
            "x.com:",
        ] {
            assert_eq!(host(bad).err(), Some("key_host_invalid"), "{bad}");
        }
    }

    #[test]
    fn login_host_comparison_ignores_port_and_trailing_dot() {
        assert_eq!(
            host_name_only("login.salesforce.com.:443"),
            "login.salesforce.com"
        );
        assert_eq!(host_name_only("[::1]:80"), "[::1]");
    }

    #[test]
    fn url_masking_keeps_the_shape() {
        assert_eq!(
            mask_url("https://u:p@x.example/refresh?code=abcdefghijklmnop&n=1"),
            "https://u:****@x.example/refresh?code=****mnop&n=****"
        );
        assert_eq!(mask_url("https://x.example/t"), "https://x.example/t");
    }

    #[test]
    fn scope_items_split_on_spaces_and_commas() {
        let items: Vec<&str> = scope_items(" api,  refresh_token\toffline_access ,").collect();
        assert_eq!(items, ["api", "refresh_token", "offline_access"]);
    }
}
