//! Keys that are refused: with which code, and with a message that names the field and never
//! repeats a secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hookwarden_core::key::MAX_KEY_LEN;
use hookwarden_core::{ConnectorKind, Key, KeyError, Problem};
use serde_json::{json, Value};

use ConnectorKind::{Dynamics, Generic, Salesforce};

use super::{b64, b64_text, REFRESH, SECRET};

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

#[test]
fn key_error_is_a_problem() {
    let e: KeyError = Key::parse("%%%", Salesforce).unwrap_err();
    let p: &dyn Problem = &e;
    assert_eq!(p.code(), "key_not_base64");
    assert!(p.message().contains("'%'"), "{}", p.message());
    assert!(p.fix().contains("base64 -w 0"));
}
