//! The key's JSON fields: each one's type and value, the flow they select, and the rules that
//! combine fields (grant type, login host, scope, session), in a fixed order.

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::advice::{advise, Advice};
use super::host::{check_tenant, host_name_only, normalize_host};
use super::text::json_type;
use super::{shorten, AuthMethod, Key, KeyError, RequestStyle, SessionMode};
use crate::connector::{ConnectorKind, Flow};
use crate::session::SALESFORCE_SESSION_S;
// The same limit as callback URLs: one constant, so the two cannot drift apart.
use crate::url_rules::MAX_URL_LEN;

/// A session longer than a year is a typo; it also keeps later `Duration` arithmetic far from overflow.
const MAX_SESSION_TIMEOUT_S: u64 = 366 * 24 * 3600;
/// Salesforce refuses client credentials here: they need the org's My Domain (seed 001).
const SALESFORCE_LOGIN_HOSTS: [&str; 2] = ["login.salesforce.com", "test.salesforce.com"];
/// Scopes that only make sense for user-delegated flows (seed 001: "no valid scopes defined").
const USER_ONLY_SCOPES: [&str; 2] = ["refresh_token", "offline_access"];

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

/// `revoked_allowed`: a stored key may be a refresh-token key whose refresh token was revoked
/// (`grant_type: refresh_token` and no `refresh_token`); a key a person gives may not.
pub(super) fn check_fields(
    obj: &Map<String, Value>,
    kind: ConnectorKind,
    revoked_allowed: bool,
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
    let revoked = revoked_allowed
        && refresh_token.is_none()
        && grant_type.as_deref() == Some("refresh_token");
    if refresh_token.is_none() && client_secret.is_none() && !revoked {
        return Err(KeyError::NoFlow);
    }
    let flow = if refresh_token.is_some() || revoked {
        Flow::RefreshToken
    } else {
        Flow::ClientCredentials
    };
    if let (Some(gt), false) = (grant_type.as_deref(), revoked) {
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
                "`session` is fixed without `session_timeout_s`; Salesforce's default of {SALESFORCE_SESSION_S} s is used"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_items_split_on_spaces_and_commas() {
        let items: Vec<&str> = scope_items(" api,  refresh_token\toffline_access ,").collect();
        assert_eq!(items, ["api", "refresh_token", "offline_access"]);
    }
}
