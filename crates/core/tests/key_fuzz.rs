//! Whatever arrives in the `key` field, `Key::parse` answers without panicking; whatever it
//! accepts can be stored and read back; whatever it refuses never repeats a secret.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hookwarden_core::{ConnectorKind, Key, Problem};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KINDS: [ConnectorKind; 3] = [
    ConnectorKind::Salesforce,
    ConnectorKind::Dynamics,
    ConnectorKind::Generic,
];

const FIELDS: [&str; 18] = [
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
    "instance_url",
    "",
];

fn parse_all_kinds(raw: &str) {
    for kind in KINDS {
        let _ = Key::parse(raw, kind);
    }
}

/// Plausible field values: the right words, near misses, wrong types.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "login.salesforce.com",
            "test.salesforce.com",
            "acme.my.salesforce.com",
            "https://acme.my.salesforce.com/",
            "https://acme.my.salesforce.com/x",
            "http://[::1]:80/",
            "refresh_token",
            "client_credentials",
            "offline_access",
            "api refresh_token",
            "client_secret_basic",
            "query",
            "fixed",
            "none",
            "auto",
            "https://idp.example.com/token",
            "http://127.0.0.1:1/t",
            "common",
            "",
            " ",
            "a@b",
            "[",
            "::",
            "xn--bcher-kva.example",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,40}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Array(vec![])),
    ]
}

/// A key that every kind accepts, with up to three fields overwritten by `value()`.
fn key_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value()), 0..4).prop_map(
        |pairs| {
            let mut obj = Map::new();
            for (k, v) in [
                ("client_id", "3MVG9dZJoxxx"),
                ("host", "acme.my.salesforce.com"),
                ("tenant", "contoso.onmicrosoft.com"),
                ("token_url", "https://idp.example.com/token"),
            ] {
                obj.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            for (k, v) in pairs {
                obj.insert(k.to_owned(), v);
            }
            obj
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Integration tests have no lib.rs beside them to persist regressions next to.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_strings_never_panic(raw in ".{0,300}") {
        parse_all_kinds(&raw);
    }

    #[test]
    fn base64_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        parse_all_kinds(&STANDARD.encode(&bytes));
        parse_all_kinds(&URL_SAFE_NO_PAD.encode(&bytes));
    }

    #[test]
    fn base64_of_json_ish_text_never_panics(text in r#"[{}\[\]":, a-z_0-9.\\/-]{0,120}"#) {
        parse_all_kinds(&STANDARD.encode(&text));
    }

    #[test]
    fn almost_right_keys_never_panic_and_round_trip(
        obj in key_object(),
        secret in "[A-Za-z0-9]{16,24}",
        refresh in "[A-Za-z0-9]{16,24}",
        with_refresh in any::<bool>(),
    ) {
        let mut obj = obj;
        obj.insert("client_secret".into(), Value::String(secret.clone()));
        if with_refresh {
            obj.insert("refresh_token".into(), Value::String(refresh.clone()));
        }
        let raw = STANDARD.encode(Value::Object(obj).to_string());
        for kind in KINDS {
            match Key::parse(&raw, kind) {
                Ok(parsed) => {
                    let stored = parsed.key.to_storage_json();
                    let back = Key::from_storage_json(&stored, kind);
                    prop_assert!(back.is_ok(), "stored key refused: {:?}", back.err());
                    prop_assert_eq!(back.map(|k| k.to_storage_json()).ok(), Some(stored));
                    let masked = parsed.key.masked().to_string();
                    prop_assert!(!masked.contains(&secret) && !masked.contains(&refresh));
                    for w in &parsed.warnings {
                        prop_assert!(!w.contains(&secret) && !w.contains(&refresh), "{}", w);
                    }
                    let _ = parsed.key.endpoints(kind);
                }
                Err(e) => {
                    for text in [e.message(), e.fix()] {
                        prop_assert!(!text.contains(&secret) && !text.contains(&refresh), "{}", text);
                    }
                }
            }
        }
    }
}
