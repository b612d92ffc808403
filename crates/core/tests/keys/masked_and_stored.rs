//! What is shown of a key (secrets masked) and what is stored (everything, read back unchanged).

use hookwarden_core::key::mask_secret;
use hookwarden_core::{ConnectorKind, Key, RequestStyle};
use secrecy::ExposeSecret;
use serde_json::json;

use ConnectorKind::{Dynamics, Generic, Salesforce};

use super::{b64, sf_key, REFRESH, SECRET};

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
fn a_revoked_refresh_token_leaves_the_key_keeping_its_flow_until_it_is_authorized_again() {
    use hookwarden_core::Flow;
    // A public client (no secret) and a confidential one: both stay refresh-token keys.
    for json in [
        json!({"host": "acme.my.salesforce.com", "client_id": "c", "refresh_token": REFRESH}),
        json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": SECRET, "refresh_token": REFRESH}),
    ] {
        let key = Key::parse(&b64(&json), Salesforce).unwrap().key;
        let stored = key.to_storage_json();
        let wiped = Key::without_refresh_token(&stored).unwrap();
        assert!(!wiped.contains(REFRESH), "{wiped}");
        let back = Key::from_storage_json(&wiped, Salesforce).unwrap();
        assert!(back.refresh_token.is_none());
        assert_eq!(
            back.flow(),
            Flow::RefreshToken,
            "not silently client credentials"
        );
        assert_eq!(back.masked()["grant_type"], "refresh_token");
        // Nothing more to take out.
        assert_eq!(Key::without_refresh_token(&wiped), None);
        // A person may not give such a key: it cannot mint anything.
        assert_eq!(
            Key::parse(&b64(&serde_json::from_str(&wiped).unwrap()), Salesforce)
                .unwrap_err()
                .code(),
            if json.get("client_secret").is_some() {
                "key_grant_type_mismatch"
            } else {
                "key_no_flow"
            }
        );
        // A code exchange writes a refresh token back into it: a valid key again.
        let mut doc: serde_json::Value = serde_json::from_str(&wiped).unwrap();
        doc["refresh_token"] = json!("5Aep-new-refresh-token-from-a-code");
        let again = Key::from_storage_json(&doc.to_string(), Salesforce).unwrap();
        assert_eq!(again.flow(), Flow::RefreshToken);
        assert!(Key::parse(&b64(&doc), Salesforce).is_ok());
    }
    // A client-credentials key holds no refresh token: nothing to take out.
    let cc = json!({"client_id": "c", "client_secret": SECRET, "token_url": "https://idp.example.com/token"});
    let stored = Key::parse(&b64(&cc), Generic)
        .unwrap()
        .key
        .to_storage_json();
    assert_eq!(Key::without_refresh_token(&stored), None);
}
