//! The wire side of grants: building token, revocation, introspection and refresh-hook
//! requests from a key, and reading the answers (Salesforce's shapes included: no
//! `expires_in`, `issued_at` in milliseconds as a string, `instance_url`, error arrays).

use base64::Engine;
use hookwarden_core::session;
use hookwarden_core::{AuthMethod, Key, RequestStyle};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http::{Body, Outgoing};

/// Which grant to ask for.
pub(crate) enum GrantKind<'a> {
    RefreshToken(&'a SecretString),
    ClientCredentials,
    AuthorizationCode {
        code: &'a str,
        redirect_uri: Option<&'a str>,
        code_verifier: Option<&'a str>,
    },
}

impl GrantKind<'_> {
    pub(crate) fn grant_type(&self) -> &'static str {
        match self {
            Self::RefreshToken(_) => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode { .. } => "authorization_code",
        }
    }
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// RFC 6749 §2.3.1: id and secret are form-encoded before they go into Basic.
fn basic_pair(key: &Key, secret: &SecretString) -> (String, String) {
    let enc = |s: &str| form_encode(&[("", s)]).trim_start_matches('=').to_owned();
    (enc(&key.client_id), enc(secret.expose_secret()))
}

/// A form request to `url` with the key's client authentication and request style.
/// `params` must not hold client credentials; they are added here.
pub(crate) fn form_request(
    key: &Key,
    url: &str,
    field: &'static str,
    params: Vec<(&str, &str)>,
    style: RequestStyle,
) -> Outgoing {
    let mut pairs = params;
    let mut basic = None;
    match (&key.client_secret, key.auth_method) {
        (Some(secret), AuthMethod::ClientSecretBasic) => basic = Some(basic_pair(key, secret)),
        (Some(secret), AuthMethod::ClientSecretPost) => {
            pairs.push(("client_id", &key.client_id));
            pairs.push(("client_secret", secret.expose_secret()));
        }
        // A public client (refresh-token key without secret) identifies itself by id alone.
        (None, _) => pairs.push(("client_id", &key.client_id)),
    }
    let encoded = form_encode(&pairs);
    match style {
        RequestStyle::Body => Outgoing {
            url: url.to_owned(),
            field,
            body: Body::Form(encoded),
            basic,
        },
        // Seed 004's "URL Query String": the parameters travel in the URL, the body is empty.
        RequestStyle::Query => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Outgoing {
                url: format!("{url}{sep}{encoded}"),
                field,
                body: Body::Empty,
                basic,
            }
        }
    }
}

/// Parameters of a token request (without client authentication).
pub(crate) fn grant_params<'a>(
    key: &'a Key,
    grant: &'a GrantKind<'a>,
) -> Vec<(&'static str, &'a str)> {
    let mut p = vec![("grant_type", grant.grant_type())];
    match grant {
        GrantKind::RefreshToken(rt) => p.push(("refresh_token", rt.expose_secret())),
        GrantKind::ClientCredentials => {
            if let Some(scope) = key.scope.as_deref() {
                p.push(("scope", scope));
            }
        }
        GrantKind::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            p.push(("code", code));
            if let Some(r) = redirect_uri {
                p.push(("redirect_uri", r));
            }
            if let Some(v) = code_verifier {
                p.push(("code_verifier", v));
            }
        }
    }
    p
}

/// A successful token answer.
pub(crate) struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in_s: Option<i64>,
    /// Milliseconds since the epoch.
    pub issued_at_ms: Option<i64>,
    pub instance_url: Option<String>,
    pub scope: Option<String>,
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn nonempty_str(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Read a 2xx token answer; `Err` says what is unusable about it (never a secret).
pub(crate) fn parse_tokens(body: &str) -> Result<Tokens, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| "its body is not JSON".to_owned())?;
    let Some(obj) = v.as_object() else {
        return Err("its body is not a JSON object".to_owned());
    };
    let access_token = nonempty_str(obj.get("access_token"))
        .ok_or_else(|| "it holds no access_token".to_owned())?;
    // RFC 6749 §7.1: a client must not use a token whose type it does not understand. The
    // type is case-insensitive; an answer without one (a refresh hook may leave it out or empty) is
    // taken as Bearer, the only type a callback can carry.
    match obj.get("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t))
            if t.trim().is_empty() || t.trim().eq_ignore_ascii_case("bearer") => {}
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), |t| format!("\"{t}\""));
            return Err(format!(
                "its token_type is {shown}, not Bearer: hookwarden sends Bearer tokens only \
                 (RFC 6750), so configure this client at the provider to issue Bearer tokens"
            ));
        }
    }
    // Salesforce sends milliseconds; a provider sending seconds is read as seconds.
    let issued_at_ms = obj
        .get("issued_at")
        .and_then(as_i64)
        .map(session::issued_at_ms);
    Ok(Tokens {
        access_token: SecretString::from(access_token),
        refresh_token: nonempty_str(obj.get("refresh_token")).map(SecretString::from),
        expires_in_s: obj.get("expires_in").and_then(as_i64).filter(|s| *s > 0),
        issued_at_ms,
        instance_url: nonempty_str(obj.get("instance_url")),
        scope: nonempty_str(obj.get("scope")),
    })
}

/// `error` / `error_description` of a failed answer: OAuth's object, Salesforce REST's
/// `[{"errorCode","message"}]`, or nothing for HTML and other bodies.
pub(crate) fn parse_error(body: &str) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return (None, None);
    };
    let obj = match &v {
        Value::Array(items) => items.first(),
        other => Some(other),
    };
    let Some(obj) = obj.and_then(Value::as_object) else {
        return (None, None);
    };
    let code = nonempty_str(obj.get("error")).or_else(|| nonempty_str(obj.get("errorCode")));
    let desc =
        nonempty_str(obj.get("error_description")).or_else(|| nonempty_str(obj.get("message")));
    (code, desc)
}

/// The seed-004 refresh hook's input: the current values.
pub(crate) fn hook_input(
    key: &Key,
    access_token: Option<&SecretString>,
    refresh_token: Option<&SecretString>,
    token_url: &str,
) -> Value {
    json!({
        "access_token": access_token.map(|s| s.expose_secret()),
        "refresh_token": refresh_token.map(|s| s.expose_secret()),
        "client_id": key.client_id,
        "client_secret": key.client_secret.as_ref().map(|s| s.expose_secret()),
        "token_url": token_url,
        "scope": key.scope,
    })
}

/// The hook's `errorResponse`, when non-empty (a string, or any non-empty JSON value).
pub(crate) fn hook_error(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("errorResponse")?;
    match e {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(m) if m.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        other => Some(other.to_string()),
    }
}

/// Introspection's `active`, `exp`, `iat` (seconds).
pub(crate) fn parse_introspection(body: &str) -> Option<(bool, Option<i64>, Option<i64>)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let active = v.get("active")?.as_bool()?;
    Some((
        active,
        v.get("exp").and_then(as_i64),
        v.get("iat").and_then(as_i64),
    ))
}

/// A PKCE verifier (RFC 7636: 43 to 128 unreserved characters) and its S256 challenge.
pub(crate) fn pkce_pair() -> (String, String) {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let mut rng = rand::rngs::OsRng;
    let verifier: String = (0..64)
        .map(|_| CHARSET[rng.gen_range(0..CHARSET.len())] as char)
        .collect();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// An unguessable `state`.
pub(crate) fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn authorization_url(
    base: &str,
    key: &Key,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| e.to_string())?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &key.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(scope) = key.scope.as_deref() {
            q.append_pair("scope", scope);
        }
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_token_answer() {
        let t = parse_tokens(r#"{"access_token":"00D!AQx","instance_url":"https://a.my.salesforce.com","issued_at":"1700000000123","token_type":"Bearer","scope":"api"}"#).unwrap();
        assert_eq!(t.issued_at_ms, Some(1_700_000_000_123));
        assert_eq!(t.expires_in_s, None);
        assert!(t.refresh_token.is_none());
        assert!(parse_tokens("<html>").is_err());
        assert!(parse_tokens(r#"{"token_type":"Bearer"}"#).is_err());
    }

    #[test]
    fn token_type_must_be_bearer() {
        for ok in [
            r#"{"access_token":"a","token_type":"bearer"}"#,
            r#"{"access_token":"a","token_type":"BEARER"}"#,
            r#"{"access_token":"a"}"#,
            r#"{"access_token":"a","token_type":null}"#,
            r#"{"access_token":"a","token_type":""}"#,
        ] {
            assert!(parse_tokens(ok).is_ok(), "{ok}");
        }
        let why = parse_tokens(r#"{"access_token":"a","token_type":"DPoP"}"#)
            .err()
            .unwrap();
        assert!(why.contains("\"DPoP\"") && why.contains("Bearer"), "{why}");
        let why = parse_tokens(r#"{"access_token":"a","token_type":7}"#)
            .err()
            .unwrap();
        assert!(why.contains("token_type is 7"), "{why}");
    }

    #[test]
    fn error_shapes() {
        assert_eq!(
            parse_error(
                r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#
            ),
            (
                Some("invalid_grant".into()),
                Some("expired access/refresh token".into())
            )
        );
        assert_eq!(
            parse_error(
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
            )
            .0
            .as_deref(),
            Some("INVALID_SESSION_ID")
        );
        assert_eq!(parse_error("<html>503</html>"), (None, None));
        assert_eq!(hook_error(r#"{"errorResponse":""}"#), None);
        assert_eq!(
            hook_error(r#"{"errorResponse":"boom"}"#).as_deref(),
            Some("boom")
        );
    }

    #[test]
    fn pkce_is_s256_of_the_verifier() {
        let (v, c) = pkce_pair();
        assert_eq!(v.len(), 64);
        let expected =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
        assert_eq!(c, expected);
    }
}
