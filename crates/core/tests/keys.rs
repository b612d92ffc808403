//! The connector key as a user meets it: what is refused (with which code), what is accepted
//! (with which warnings), what is shown (masked) and what is stored.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hookwarden_core::key::{encode, mask_secret, MAX_KEY_LEN};
use hookwarden_core::{
    AuthMethod, ConnectorKind, Flow, Key, KeyError, Problem, RequestStyle, SessionMode,
};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use ConnectorKind::{Dynamics, Generic, Salesforce};

const SECRET: &str = "Sup3rS3cretClientValue9876";
const REFRESH: &str = "5Aep861vxxxQ63xq70o9usDzRefreshToken4321";

fn b64(json: &Value) -> String {
    encode(json)
}

fn b64_text(text: &str) -> String {
    STANDARD.encode(text)
}

/// Every refusal a user could plausibly provoke, with the code the API must answer.
fn malformed() -> Vec<(&'static str, ConnectorKind, String, &'static str)> {
    let my = "acme.my.salesforce.com";
    vec![
        ("empty", Salesforce, String::new(), "key_empty"),
        ("only whitespace", Salesforce, " \n\t ".into(), "key_empty"),
        (
            "not base64",
            Salesforce,
            "this is not base64!".into(),
            "key_not_base64",
        ),
        (
            "raw JSON instead of base64",
            Salesforce,
            json!({"host": my, "client_id": "c", "client_secret": SECRET}).to_string(),
            "key_not_base64",
        ),
        (
            "wrapped in quotes",
            Salesforce,
            format!(
                "\"{}\"",
                b64(&json!({"host": my, "client_id": "c", "client_secret": SECRET}))
            ),
            "key_not_base64",
        ),
        (
            "truncated base64",
            Salesforce,
            "eyJob3N0Ijoi".to_owned() + "Y",
            "key_not_base64",
        ),
        (
            "padding in the middle",
            Salesforce,
            "eyJh==eyJh".into(),
            "key_not_base64",
        ),
        (
            "too large",
            Salesforce,
            "A".repeat(100 * 1024),
            "key_too_large",
        ),
        (
            "just over the limit",
            Salesforce,
            "A".repeat(MAX_KEY_LEN + 1),
            "key_too_large",
        ),
        (
            "base64 of non-JSON",
            Salesforce,
            b64_text("hello world"),
            "key_not_json",
        ),
        (
            "base64 of nothing JSON-ish",
            Salesforce,
            b64_text("{\"client_id\": "),
            "key_not_json",
        ),
        (
            "single quotes",
            Salesforce,
            b64_text("{'client_id': 'c'}"),
            "key_not_json",
        ),
        (
            "encoded twice",
            Salesforce,
            b64_text(&b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET}),
            )),
            "key_not_json",
        ),
        (
            "invalid UTF-8",
            Salesforce,
            STANDARD.encode([b'{', 0xff, 0xfe, b'}']),
            "key_not_utf8",
        ),
        (
            "UTF-16 from PowerShell",
            Salesforce,
            STANDARD.encode(
                "{\"client_id\":\"c\"}"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<u8>>(),
            ),
            "key_not_utf8",
        ),
        (
            "a JSON array",
            Salesforce,
            b64(&json!(["client_id", "c"])),
            "key_not_object",
        ),
        (
            "a JSON string",
            Salesforce,
            b64(&json!("client_id")),
            "key_not_object",
        ),
        ("null", Salesforce, b64_text("null"), "key_not_object"),
        (
            "no client_id",
            Salesforce,
            b64(&json!({"host": my, "client_secret": SECRET})),
            "key_missing_client_id",
        ),
        (
            "client_id null",
            Salesforce,
            b64(&json!({"host": my, "client_id": null, "client_secret": SECRET})),
            "key_missing_client_id",
        ),
        (
            "client_id a number",
            Salesforce,
            b64(&json!({"host": my, "client_id": 12345, "client_secret": SECRET})),
            "key_field_type",
        ),
        (
            "client_secret a number",
            Salesforce,
            b64(&json!({"host": my, "client_id": "c", "client_secret": 42})),
            "key_field_type",
        ),
        (
            "host an object",
            Salesforce,
            b64(&json!({"host": {"name": my}, "client_id": "c", "client_secret": SECRET})),
            "key_field_type",
        ),
        (
            "session_timeout_s a string",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "session_timeout_s": "3600"}),
            ),
            "key_field_type",
        ),
        (
            "session_timeout_s a fraction",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "session_timeout_s": 1.5}),
            ),
            "key_bad_value",
        ),
        (
            "session_timeout_s zero",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "session_timeout_s": 0}),
            ),
            "key_bad_value",
        ),
        (
            "session_timeout_s negative",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "session_timeout_s": -5}),
            ),
            "key_bad_value",
        ),
        (
            "empty client_id",
            Salesforce,
            b64(&json!({"host": my, "client_id": "", "client_secret": SECRET})),
            "key_empty_field",
        ),
        (
            "empty client_secret",
            Salesforce,
            b64(&json!({"host": my, "client_id": "c", "client_secret": ""})),
            "key_empty_field",
        ),
        (
            "blank refresh_token",
            Salesforce,
            b64(&json!({"host": my, "client_id": "c", "refresh_token": "   "})),
            "key_empty_field",
        ),
        (
            "empty host",
            Salesforce,
            b64(&json!({"host": "", "client_id": "c", "refresh_token": REFRESH})),
            "key_empty_field",
        ),
        (
            "empty scope",
            Salesforce,
            b64(&json!({"host": my, "client_id": "c", "refresh_token": REFRESH, "scope": ""})),
            "key_empty_field",
        ),
        (
            "neither flow",
            Salesforce,
            b64(&json!({"host": my, "client_id": "c"})),
            "key_no_flow",
        ),
        (
            "grant_type refresh_token without one",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "grant_type": "refresh_token"}),
            ),
            "key_grant_type_mismatch",
        ),
        (
            "grant_type client_credentials without a secret",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "refresh_token": REFRESH, "grant_type": "client_credentials"}),
            ),
            "key_grant_type_mismatch",
        ),
        (
            "grant_type client_credentials beside a refresh token",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "refresh_token": REFRESH, "grant_type": "client_credentials"}),
            ),
            "key_grant_type_mismatch",
        ),
        (
            "unknown grant_type",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "grant_type": "password"}),
            ),
            "key_bad_value",
        ),
        (
            "unknown auth_method",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "auth_method": "basic"}),
            ),
            "key_bad_value",
        ),
        (
            "unknown request_style",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "request_style": "header"}),
            ),
            "key_bad_value",
        ),
        (
            "unknown session",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "session": "sometimes"}),
            ),
            "key_bad_value",
        ),
        (
            "scheme and path in host",
            Salesforce,
            b64(
                &json!({"host": "https://acme.my.salesforce.com/services/oauth2/token", "client_id": "c", "refresh_token": REFRESH}),
            ),
            "key_host_invalid",
        ),
        (
            "query in host",
            Salesforce,
            b64(
                &json!({"host": "acme.my.salesforce.com?x=1", "client_id": "c", "refresh_token": REFRESH}),
            ),
            "key_host_invalid",
        ),
        (
            "user-info in host",
            Salesforce,
            b64(
                &json!({"host": "admin@acme.my.salesforce.com", "client_id": "c", "refresh_token": REFRESH}),
            ),
            "key_host_invalid",
        ),
        (
            "space in host",
            Salesforce,
            b64(
                &json!({"host": "acme my.salesforce.com", "client_id": "c", "refresh_token": REFRESH}),
            ),
            "key_host_invalid",
        ),
        (
            "underscore in host",
            Salesforce,
            b64(
                &json!({"host": "acme_corp.my.salesforce.com", "client_id": "c", "refresh_token": REFRESH}),
            ),
            "key_host_invalid",
        ),
        (
            "ftp scheme in host",
            Salesforce,
            b64(
                &json!({"host": "ftp://acme.my.salesforce.com", "client_id": "c", "refresh_token": REFRESH}),
            ),
            "key_host_invalid",
        ),
        (
            "bad port in host",
            Salesforce,
            b64(
                &json!({"host": "acme.my.salesforce.com:99999", "client_id": "c", "refresh_token": REFRESH}),
            ),
            "key_host_invalid",
        ),
        (
            "only a scheme in host",
            Salesforce,
            b64(&json!({"host": "https://", "client_id": "c", "refresh_token": REFRESH})),
            "key_host_invalid",
        ),
        (
            "client credentials on login.salesforce.com",
            Salesforce,
            b64(
                &json!({"host": "login.salesforce.com", "client_id": "c", "client_secret": SECRET}),
            ),
            "key_client_credentials_on_login_host",
        ),
        (
            "client credentials on test.salesforce.com",
            Salesforce,
            b64(&json!({"host": "test.salesforce.com", "client_id": "c", "client_secret": SECRET})),
            "key_client_credentials_on_login_host",
        ),
        (
            "client credentials on a login host written as a URL",
            Salesforce,
            b64(
                &json!({"host": "https://Login.Salesforce.com/", "client_id": "c", "client_secret": SECRET}),
            ),
            "key_client_credentials_on_login_host",
        ),
        (
            "offline_access in a client credentials scope",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "scope": "api offline_access"}),
            ),
            "key_scope_forbidden",
        ),
        (
            "refresh_token in a comma-separated client credentials scope",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "client_secret": SECRET, "scope": "api,refresh_token"}),
            ),
            "key_scope_forbidden",
        ),
        (
            "salesforce without host",
            Salesforce,
            b64(&json!({"client_id": "c", "refresh_token": REFRESH})),
            "key_missing_host",
        ),
        (
            "dynamics without tenant",
            Dynamics,
            b64(&json!({"client_id": "c", "client_secret": SECRET})),
            "key_missing_tenant",
        ),
        (
            "dynamics with a bad tenant",
            Dynamics,
            b64(&json!({"client_id": "c", "client_secret": SECRET, "tenant": "contoso/../x"})),
            "key_bad_value",
        ),
        (
            "generic without token_url",
            Generic,
            b64(&json!({"client_id": "c", "client_secret": SECRET})),
            "key_missing_token_url",
        ),
        (
            "relative token_url",
            Generic,
            b64(&json!({"client_id": "c", "client_secret": SECRET, "token_url": "/oauth/token"})),
            "key_url_invalid",
        ),
        (
            "ftp token_url",
            Generic,
            b64(
                &json!({"client_id": "c", "client_secret": SECRET, "token_url": "ftp://idp.example.com/token"}),
            ),
            "key_url_invalid",
        ),
        (
            "revocation_url not a URL",
            Salesforce,
            b64(
                &json!({"host": my, "client_id": "c", "refresh_token": REFRESH, "revocation_url": "revoke please"}),
            ),
            "key_url_invalid",
        ),
        (
            "fixed session without timeout, generic",
            Generic,
            b64(
                &json!({"client_id": "c", "client_secret": SECRET, "token_url": "https://idp.example.com/token", "session": "fixed"}),
            ),
            "key_session_timeout_required",
        ),
    ]
}

#[test]
fn malformed_keys_are_refused_with_their_code() {
    let cases = malformed();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (name, kind, raw, want) in &cases {
        match Key::parse(raw, *kind) {
            Ok(_) => failures.push(format!("{name}: accepted, wanted {want}")),
            Err(e) if e.code() != *want => {
                failures.push(format!("{name}: got {} ({e}), wanted {want}", e.code()))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_error_message_or_fix_contains_a_secret() {
    for (name, kind, raw, _) in malformed() {
        if let Err(e) = Key::parse(&raw, kind) {
            for text in [e.message(), e.fix(), format!("{e:?}")] {
                assert!(!text.contains(SECRET), "{name}: {text}");
                assert!(!text.contains(REFRESH), "{name}: {text}");
            }
        }
    }
}

#[test]
fn messages_name_the_field() {
    let cases: [(Value, &str); 7] = [
        (
            json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": 7}),
            "client_secret",
        ),
        (
            json!({"host": "acme.my.salesforce.com", "client_id": "", "client_secret": SECRET}),
            "client_id",
        ),
        (
            json!({"host": "a b", "client_id": "c", "client_secret": SECRET}),
            "host",
        ),
        (
            json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "scope": "offline_access"}),
            "scope",
        ),
        (
            json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "session": "x"}),
            "session",
        ),
        (
            json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "grant_type": "refresh_token"}),
            "grant_type",
        ),
        (
            json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "token_url": "nope"}),
            "token_url",
        ),
    ];
    for (json, field) in cases {
        let e = Key::parse(&b64(&json), Salesforce).expect_err(field);
        assert!(e.message().contains(&format!("`{field}`")), "{field}: {e}");
        assert!(!e.fix().is_empty());
    }
}

#[test]
fn specific_messages_and_fixes() {
    let e = Key::parse(
        &b64(&json!({"host": "login.salesforce.com", "client_id": "c", "client_secret": SECRET})),
        Salesforce,
    )
    .unwrap_err();
    assert!(e.fix().contains("<name>.my.salesforce.com"), "{}", e.fix());

    let e = Key::parse(
        &b64(&json!({"host": "x.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "grant_type": "implicit"})),
        Salesforce,
    )
    .unwrap_err();
    assert!(
        e.message().contains("refresh_token") && e.message().contains("client_credentials"),
        "{e}"
    );

    let e = Key::parse(
        &b64(&json!({"host": "x.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "scope": "api offline_access"})),
        Salesforce,
    )
    .unwrap_err();
    assert!(e.message().contains("offline_access"), "{e}");
    assert!(e.fix().contains("no valid scopes defined"), "{}", e.fix());

    let e = Key::parse(&b64_text(&b64(&json!({"client_id": "c"}))), Salesforce).unwrap_err();
    assert!(e.message().contains("encoded twice"), "{e}");

    let e = Key::parse("A".repeat(MAX_KEY_LEN + 1).as_str(), Salesforce).unwrap_err();
    assert!(e.message().contains("16384"), "{e}");
}

fn sf_key() -> Value {
    json!({"host": "acme.my.salesforce.com", "client_id": "3MVG9dZJoxxxRyqipjGciXo561Fg", "refresh_token": REFRESH})
}

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

#[test]
fn masking_shows_at_most_the_last_four() {
    assert_eq!(mask_secret("abcdefghijkl"), "****ijkl");
    assert_eq!(mask_secret("abcdefghijk"), "****");
    assert_eq!(mask_secret("abcd"), "****");
    assert_eq!(mask_secret(""), "****");
    assert_eq!(mask_secret("ééééééééééé€xyz"), "****€xyz");
}

#[test]
fn masked_key_hides_secrets_and_omits_absent_fields() {
    let json = json!({"host": "acme.my.salesforce.com", "client_id": "3MVG9dZJ", "client_secret": "short", "refresh_token": REFRESH});
    let key = Key::parse(&b64(&json), Salesforce).unwrap().key;
    let masked = key.masked();
    assert_eq!(masked["client_secret"], "****");
    assert_eq!(masked["refresh_token"], "****4321");
    assert_eq!(masked["client_id"], "3MVG9dZJ");
    assert_eq!(masked["host"], "acme.my.salesforce.com");
    assert_eq!(masked["session"], "auto");
    let obj = masked.as_object().unwrap();
    for absent in [
        "tenant",
        "token_url",
        "scope",
        "grant_type",
        "session_timeout_s",
        "refresh_hook",
    ] {
        assert!(!obj.contains_key(absent), "{absent} should be omitted");
    }
    let text = masked.to_string();
    assert!(!text.contains(REFRESH) && !text.contains("short"), "{text}");
    // Debug must not leak either.
    let debug = format!("{key:?}");
    assert!(
        !debug.contains(REFRESH) && !debug.contains("\"short\""),
        "{debug}"
    );
}

#[test]
fn masked_key_hides_credentials_in_endpoint_urls() {
    let json = json!({"client_id": "c", "client_secret": SECRET, "token_url": "https://idp.example.com/token",
        "refresh_hook": "https://fn.example.net/api/refresh?code=functionkeyabcdefgh1234&x=1"});
    let key = Key::parse(&b64(&json), Generic).unwrap().key;
    let hook = key.masked()["refresh_hook"].as_str().unwrap().to_owned();
    assert!(!hook.contains("functionkeyabcdefgh1234"), "{hook}");
    assert!(hook.contains("code=****1234"), "{hook}");
    assert!(key.to_storage_json().contains("functionkeyabcdefgh1234"));
}

#[test]
fn storage_json_round_trips_losslessly() {
    let json = json!({
        "host": "https://Acme.my.salesforce.com/", "client_id": "c-ïd", "client_secret": SECRET, "refresh_token": REFRESH,
        "grant_type": "refresh_token", "token_url": "https://acme.my.salesforce.com/services/oauth2/token",
        "revocation_url": "https://r.example.com/revoke", "introspection_url": "https://r.example.com/introspect",
        "authorization_url": "https://r.example.com/authorize", "scope": "api refresh_token",
        "auth_method": "client_secret_basic", "request_style": "query", "session": "fixed",
        "session_timeout_s": 1800, "refresh_hook": "https://hooks.example.com/refresh?code=k",
    });
    let key = Key::parse(&b64(&json), Salesforce).unwrap().key;
    let stored = key.to_storage_json();
    let back = Key::from_storage_json(&stored, Salesforce).unwrap();
    assert_eq!(back.to_storage_json(), stored);
    assert_eq!(back.client_secret.unwrap().expose_secret(), SECRET);
    assert_eq!(back.refresh_token.unwrap().expose_secret(), REFRESH);
    assert_eq!(back.host.as_deref(), Some("acme.my.salesforce.com"));
    assert_eq!(back.session_timeout_s, Some(1800));
    assert_eq!(back.request_style, RequestStyle::Query);

    // The minimal key too, for every kind.
    for (kind, json) in [
        (Salesforce, sf_key()),
        (
            Dynamics,
            json!({"client_id": "c", "client_secret": SECRET, "tenant": "contoso.onmicrosoft.com", "scope": "https://acme.crm.dynamics.com/.default"}),
        ),
        (
            Generic,
            json!({"client_id": "c", "client_secret": SECRET, "token_url": "https://idp.example.com/token"}),
        ),
    ] {
        let key = Key::parse(&b64(&json), kind).unwrap().key;
        let stored = key.to_storage_json();
        assert_eq!(
            Key::from_storage_json(&stored, kind)
                .unwrap()
                .to_storage_json(),
            stored
        );
    }
}

#[test]
fn salesforce_endpoints_derive_from_host() {
    let key = Key::parse(&b64(&sf_key()), Salesforce).unwrap().key;
    let e = key.endpoints(Salesforce);
    assert_eq!(
        e.token_url,
        "https://acme.my.salesforce.com/services/oauth2/token"
    );
    assert_eq!(
        e.revocation_url.as_deref(),
        Some("https://acme.my.salesforce.com/services/oauth2/revoke")
    );
    assert_eq!(
        e.introspection_url.as_deref(),
        Some("https://acme.my.salesforce.com/services/oauth2/introspect")
    );
    assert_eq!(
        e.authorization_url.as_deref(),
        Some("https://acme.my.salesforce.com/services/oauth2/authorize")
    );
}

#[test]
fn explicit_endpoints_override_the_preset() {
    let mut json = sf_key();
    json["token_url"] = json!("http://127.0.0.1:4000/services/oauth2/token");
    json["introspection_url"] = json!("http://127.0.0.1:4000/services/oauth2/introspect");
    let e = Key::parse(&b64(&json), Salesforce)
        .unwrap()
        .key
        .endpoints(Salesforce);
    assert_eq!(e.token_url, "http://127.0.0.1:4000/services/oauth2/token");
    assert_eq!(
        e.introspection_url.as_deref(),
        Some("http://127.0.0.1:4000/services/oauth2/introspect")
    );
    assert_eq!(
        e.revocation_url.as_deref(),
        Some("https://acme.my.salesforce.com/services/oauth2/revoke")
    );
}

#[test]
fn salesforce_with_only_a_token_url_has_no_other_endpoints() {
    let json = json!({"client_id": "c", "refresh_token": REFRESH, "token_url": "https://fake.example.com/token"});
    let e = Key::parse(&b64(&json), Salesforce)
        .unwrap()
        .key
        .endpoints(Salesforce);
    assert_eq!(e.token_url, "https://fake.example.com/token");
    assert_eq!(e.revocation_url, None);
    assert_eq!(e.authorization_url, None);
}

#[test]
fn microsoft_endpoints_derive_from_tenant() {
    let json = json!({"client_id": "c", "client_secret": SECRET, "tenant": "contoso.onmicrosoft.com", "scope": "https://acme.crm.dynamics.com/.default"});
    let parsed = Key::parse(&b64(&json), Dynamics).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let e = parsed.key.endpoints(Dynamics);
    assert_eq!(
        e.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        e.authorization_url.as_deref(),
        Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize")
    );
    assert_eq!(e.revocation_url, None);
    assert_eq!(e.introspection_url, None);
}

#[test]
fn microsoft_client_credentials_without_default_scope_is_warned() {
    let json = json!({"client_id": "c", "client_secret": SECRET, "tenant": "common"});
    let parsed = Key::parse(&b64(&json), Dynamics).unwrap();
    assert!(
        parsed.warnings.iter().any(|w| w.contains(".default")),
        "{:?}",
        parsed.warnings
    );
    assert!(
        parsed.warnings.iter().any(|w| w.contains("\"common\"")),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn generic_endpoints_are_what_the_key_gives() {
    let json = json!({"client_id": "c", "client_secret": SECRET, "token_url": "https://idp.example.com/oauth2/token",
        "revocation_url": "https://idp.example.com/oauth2/revoke"});
    let e = Key::parse(&b64(&json), Generic)
        .unwrap()
        .key
        .endpoints(Generic);
    assert_eq!(e.token_url, "https://idp.example.com/oauth2/token");
    assert_eq!(
        e.revocation_url.as_deref(),
        Some("https://idp.example.com/oauth2/revoke")
    );
    assert_eq!(e.introspection_url, None);
    assert_eq!(e.authorization_url, None);
}

#[test]
fn key_error_is_a_problem() {
    let e: KeyError = Key::parse("%%%", Salesforce).unwrap_err();
    let p: &dyn Problem = &e;
    assert_eq!(p.code(), "key_not_base64");
    assert!(p.message().contains("'%'"), "{}", p.message());
    assert!(p.fix().contains("base64 -w 0"));
}
