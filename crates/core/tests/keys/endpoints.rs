//! The endpoints a key leads to: derived from the preset, overridden by the key.

use hookwarden_core::{ConnectorKind, Key};
use serde_json::json;

use ConnectorKind::{Dynamics, Generic, Salesforce};

use super::{b64, sf_key, REFRESH, SECRET};

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
