//! The token endpoints over HTTP against a real (fake) Salesforce org: test, revoke,
//! re-authentication through oauth/url and through PATCH {"code"}, resume, history.
//!
//! One test binary in five modules: the connector test, a connector's diagnosis, grants (a
//! permanent failure, a key registered again, a rate too small), revocation with
//! re-authentication, and resume. The keys and the registration every module uses stay here.

// The server harness shared with connectors_api, one directory up.
#[path = "../common/mod.rs"]
mod common;

mod connector_test;
mod diagnosis;
mod grants;
mod reauth;
mod resume;
mod revoke;

use common::*;
use hookwarden_fake_org::{RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::Method;
use serde_json::{json, Value};

const PATH: &str = "/api/callback/connectors/salesforceOauth2";

fn refresh_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "login.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
        "introspection_url": org.introspect_url(),
        "authorization_url": org.authorize_url(),
    }))
}

fn cc_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
    }))
}

async fn register(t: &TestServer, url: &str, key: String) -> Value {
    let (status, body) = json(
        t.req(Method::POST, PATH)
            .json(&json!({"url": url, "events": ["PACKAGE_COMPLETE"], "key": key}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}
