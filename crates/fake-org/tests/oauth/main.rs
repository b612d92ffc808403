//! The OAuth endpoints over real HTTP: grant shapes, Salesforce's errors, rotation and reuse
//! detection, revocation, introspection, authorize → code → exchange with PKCE.
//!
//! One test binary in four modules: the refresh_token grant (with the token endpoint's answers
//! to malformed requests and faults), the client_credentials grant, revocation and
//! introspection, and authorize → code → exchange. The helpers every module uses stay here.

// The helpers shared with apex_and_control.rs, one directory up.
#[path = "../common/mod.rs"]
mod common;

mod authorize;
mod client_credentials;
mod refresh_token;
mod revoke_and_introspect;

use common::*;
use hookwarden_fake_org::{RunningFakeOrg, DEFAULT_CLIENT_ID};

const CLIENT_SECRET: &str = "fake-client-secret";

async fn refresh(org: &RunningFakeOrg, refresh_token: &str) -> Answer {
    post_form(
        &org.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn apex_status(org: &RunningFakeOrg, token: &str) -> u16 {
    post_callback(&org.callback_url(), Some(token), "wh-1")
        .await
        .status
}

/// The parts every Salesforce token answer shares, and the absence of `expires_in`.
fn assert_token_shape(org: &RunningFakeOrg, a: &Answer) -> serde_json::Value {
    assert_eq!(a.status, 200, "body: {}", a.text);
    let body = a.json();
    let base = org.base_url();
    assert!(body.get("expires_in").is_none(), "no expires_in: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], base.as_str());
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{base}/id/00D")), "{id}");
    assert!(id.contains("/005"), "{id}");
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    let issued_at: i64 = issued_at.parse().unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!(
        (now_ms - issued_at).abs() < 60_000,
        "milliseconds: {issued_at}"
    );
    assert!(!body["access_token"].as_str().unwrap().is_empty());
    assert!(!body["signature"].as_str().unwrap().is_empty());
    assert!(body["scope"].is_string());
    body
}
