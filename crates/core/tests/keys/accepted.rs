//! Keys that are accepted, with the warnings that tell the user what was tolerated.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hookwarden_core::{AuthMethod, ConnectorKind, Flow, Key, RequestStyle, SessionMode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use ConnectorKind::{Generic, Salesforce};

use super::{b64, sf_key, REFRESH, SECRET};

/// Wrap like GNU `base64` without `-w 0`.
fn wrap76(s: &str, eol: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let lines: Vec<String> = chars.chunks(76).map(|c| c.iter().collect()).collect();
    lines.join(eol) + eol
}

#[test]
fn tolerated_quirks_are_accepted_with_warnings() {
    let json = json!({
        "host": "acme.my.salesforce.com",
        "client_id": "3MVG9dZJoxxxRyqipjGciXo561Fg",
        // '>' and '?' make '+' and '/' (or '-' and '_') appear in the encoding.
        "client_secret": "a>>>b???c>>>d???e>>>f???",
    });
    let text = json.to_string();
    let url_safe = URL_SAFE.encode(&text);
    assert!(url_safe.contains('-') || url_safe.contains('_'));
    let unpadded = STANDARD_NO_PAD.encode(&text);
    assert_ne!(
        unpadded.len() % 4,
        0,
        "choose a JSON whose encoding needs padding"
    );

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("canonical", STANDARD.encode(&text), vec![]),
        (
            "trailing newline from echo",
            STANDARD.encode(&text) + "\n",
            vec![],
        ),
        (
            "wrapped at 76",
            wrap76(&STANDARD.encode(&text), "\n"),
            vec!["line breaks"],
        ),
        (
            "wrapped at 76 with CRLF",
            wrap76(&STANDARD.encode(&text), "\r\n"),
            vec!["line breaks"],
        ),
        ("URL-safe", url_safe.clone(), vec!["URL-safe"]),
        ("no padding", unpadded.clone(), vec!["padding"]),
        (
            "URL-safe, no padding",
            URL_SAFE_NO_PAD.encode(&text),
            vec!["URL-safe", "padding"],
        ),
        (
            "spaces",
            {
                let mut s = STANDARD.encode(&text);
                s.insert(10, ' ');
                s
            },
            vec!["spaces"],
        ),
        (
            "everything at once",
            wrap76(&URL_SAFE_NO_PAD.encode(&text), "\n"),
            vec!["line breaks", "URL-safe", "padding"],
        ),
    ];
    for (name, raw, wanted) in cases {
        let parsed = Key::parse(&raw, Salesforce).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            parsed.warnings.len(),
            wanted.len(),
            "{name}: {:?}",
            parsed.warnings
        );
        for w in wanted {
            assert!(
                parsed.warnings.iter().any(|x| x.contains(w)),
                "{name}: no {w:?} in {:?}",
                parsed.warnings
            );
        }
        assert_eq!(
            parsed
                .key
                .client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("a>>>b???c>>>d???e>>>f???".to_owned()),
            "{name}"
        );
    }
}

#[test]
fn line_break_warning_says_how_to_fix_it() {
    let raw = wrap76(&b64(&sf_key()), "\n");
    let parsed = Key::parse(&raw, Salesforce).unwrap();
    assert!(
        parsed.warnings[0].contains("base64 -w 0"),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn field_quirks_are_accepted_with_warnings() {
    let base = |extra: Value| {
        let mut v = sf_key();
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    };
    let cases: Vec<(&str, ConnectorKind, Value, Option<&str>, &str)> = vec![
        (
            "scheme and slash stripped",
            Salesforce,
            base(json!({"host": "https://acme.my.salesforce.com/"})),
            Some("acme.my.salesforce.com"),
            "reduced to acme.my.salesforce.com",
        ),
        (
            "http scheme stripped",
            Salesforce,
            base(json!({"host": "http://acme.my.salesforce.com"})),
            Some("acme.my.salesforce.com"),
            "without https://",
        ),
        (
            "trailing slash stripped",
            Salesforce,
            base(json!({"host": "acme.my.salesforce.com/"})),
            Some("acme.my.salesforce.com"),
            "reduced to",
        ),
        (
            "upper case is lowered, whitespace trimmed",
            Salesforce,
            base(json!({"host": " Acme.My.Salesforce.com "})),
            Some("acme.my.salesforce.com"),
            "reduced to",
        ),
        (
            "unknown field",
            Salesforce,
            base(json!({"instance_url": "https://x"})),
            Some("acme.my.salesforce.com"),
            "`instance_url`",
        ),
        (
            "lightning domain",
            Salesforce,
            base(json!({"host": "acme.lightning.force.com"})),
            Some("acme.lightning.force.com"),
            "Lightning",
        ),
        (
            "fixed session on salesforce",
            Salesforce,
            base(json!({"session": "fixed"})),
            Some("acme.my.salesforce.com"),
            "7200",
        ),
        (
            "host on a generic connector",
            Generic,
            base(json!({"token_url": "https://idp.example.com/token"})),
            Some("acme.my.salesforce.com"),
            "ignored",
        ),
        (
            "client_secret with a trailing newline",
            Salesforce,
            base(json!({"client_secret": "abc\n"})),
            Some("acme.my.salesforce.com"),
            "whitespace",
        ),
    ];
    for (name, kind, json, host, wanted) in cases {
        let parsed = Key::parse(&b64(&json), kind).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.key.host.as_deref(), host, "{name}");
        assert!(
            parsed.warnings.iter().any(|w| w.contains(wanted)),
            "{name}: {:?}",
            parsed.warnings
        );
        for w in &parsed.warnings {
            assert!(!w.contains(REFRESH), "{name}: {w}");
        }
    }
}

#[test]
fn seed_000_key_decodes() {
    // The example key from seed 000, as OneSpan documents it.
    let raw = "eyJob3N0IjoibG9naW4uc2FsZXNmb3JjZS5jb20iLCJjbGllbnRfaWQiOiIzTVZHOWRaSm94eHhSeXFpcGpHY2lYbzU2MUZnIiwicmVmcmVzaF90b2tlbiI6IjVBZXA4NjF2eHh4UTYzeHE3MG85dXNEeiJ9";
    let parsed = Key::parse(raw, Salesforce).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let key = parsed.key;
    assert_eq!(key.host.as_deref(), Some("login.salesforce.com"));
    assert_eq!(key.client_id, "3MVG9dZJoxxxRyqipjGciXo561Fg");
    assert_eq!(key.flow(), Flow::RefreshToken);
    assert_eq!(
        key.refresh_token.as_ref().unwrap().expose_secret(),
        "5Aep861vxxxQ63xq70o9usDz"
    );
}

#[test]
fn seed_001_client_credentials_on_my_domain() {
    let json = json!({"host": "yourdomain.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "scope": "api"});
    let key = Key::parse(&b64(&json), Salesforce).unwrap().key;
    assert_eq!(key.flow(), Flow::ClientCredentials);
    assert_eq!(
        key.endpoints(Salesforce).token_url,
        "https://yourdomain.my.salesforce.com/services/oauth2/token"
    );
}

#[test]
fn client_credentials_against_an_explicit_token_url_ignore_the_login_host() {
    // Tests point a salesforceOauth2 connector at a fake org; the token_url decides.
    let json = json!({"host": "login.salesforce.com", "client_id": "c", "client_secret": SECRET, "token_url": "http://127.0.0.1:9999/services/oauth2/token"});
    let key = Key::parse(&b64(&json), Salesforce).unwrap().key;
    assert_eq!(
        key.endpoints(Salesforce).token_url,
        "http://127.0.0.1:9999/services/oauth2/token"
    );
}

#[test]
fn refresh_token_flow_may_name_user_scopes() {
    let mut json = sf_key();
    json["scope"] = json!("api refresh_token offline_access");
    json["client_secret"] = json!(SECRET);
    let key = Key::parse(&b64(&json), Salesforce).unwrap().key;
    assert_eq!(key.flow(), Flow::RefreshToken);
}

#[test]
fn optional_fields_are_read() {
    let json = json!({
        "host": "acme.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "refresh_token": REFRESH,
        "grant_type": "refresh_token", "auth_method": "client_secret_basic", "request_style": "query",
        "session": "fixed", "session_timeout_s": 900, "scope": "api refresh_token",
        "refresh_hook": "https://hooks.example.com/refresh",
    });
    let parsed = Key::parse(&b64(&json), Salesforce).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let k = parsed.key;
    assert_eq!(k.auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(k.request_style, RequestStyle::Query);
    assert_eq!(k.session, SessionMode::Fixed);
    assert_eq!(k.session_timeout_s, Some(900));
    assert_eq!(k.grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(
        k.refresh_hook.as_deref(),
        Some("https://hooks.example.com/refresh")
    );

    let defaults = Key::parse(&b64(&sf_key()), Salesforce).unwrap().key;
    assert_eq!(defaults.auth_method, AuthMethod::ClientSecretPost);
    assert_eq!(defaults.request_style, RequestStyle::Body);
    assert_eq!(defaults.session, SessionMode::Auto);
    assert_eq!(defaults.session_timeout_s, None);
}
