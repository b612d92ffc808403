//! The key as JSON: verbatim for storage, or with secrets and URL credentials masked for display.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::{AuthMethod, Key, RequestStyle, SessionMode};

/// The JSON form of a key. Unmasked it is the storage form and reads back through `from_json`
/// unchanged; masked it is what the API shows.
pub(super) fn to_json(key: &Key, masked: bool) -> Value {
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
pub(super) fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 12 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    } else {
        "****".to_owned()
    }
}

/// A URL as answers show it: a password and every query value masked (`mask`), the rest as it is.
/// The key's endpoint URLs and a connector's callback `url` are shown this way.
pub fn mask_url(raw: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_masking_keeps_the_shape() {
        assert_eq!(
            mask_url("https://u:p@x.example/refresh?code=abcdefghijklmnop&n=1"),
            "https://u:****@x.example/refresh?code=****mnop&n=****"
        );
        assert_eq!(mask_url("https://x.example/t"), "https://x.example/t");
    }
}
