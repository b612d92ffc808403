//! Each diagnosis from the fake org's real answer, one test each; permanent failures make the
//! connector `needs_reauth` and stop grants until the credentials change; transient ones back off.

mod common;

use common::*;
use hookwarden_core::diagnosis::{diagnose_endpoint, FailureClass};
use hookwarden_core::{ConnectorStatus, Problem};
use hookwarden_fake_org::{FakeOrg, FakeOrgBuilder, Faults};
use serde_json::{json, Value};

/// Grant once with `key` against an org built by `org`; the error must carry `code`, be
/// permanent, be in the history with its cause and fix, and put the connector in needs_reauth.
async fn permanent(
    org: FakeOrgBuilder,
    key: impl Fn(&hookwarden_fake_org::RunningFakeOrg) -> Value,
    code: &str,
) {
    let org = org.start().await.unwrap();
    let env = sqlite_env().await;
    let c = env.connector("salesforceOauth2", key(&org)).await;
    let tokens = env.manager();
    let e = tokens.token(&c).await.unwrap_err();
    assert_eq!(e.code(), code, "{e}");
    assert_eq!(e.class(), FailureClass::Permanent);
    assert_eq!(e.http_status(), Some(400));
    let d = e.diagnosis().expect("a diagnosis");
    assert!(!d.cause.is_empty() && !e.fix().is_empty());

    let h = history(&env, &c).await;
    assert_eq!(h.len(), 1);
    let entry = &h[0].entry;
    assert_eq!(entry.outcome, "failed");
    assert_eq!(entry.http_status, Some(400));
    assert_eq!(entry.cause.as_deref(), Some(d.cause.as_str()));
    assert_eq!(entry.fix.as_deref(), Some(d.fix.as_str()));
    assert!(entry
        .excerpt
        .as_deref()
        .is_some_and(|x| x.contains("error")));

    let stored = env.reload(&c).await;
    assert_eq!(stored.status, ConnectorStatus::NeedsReauth);
    // No further grant, whether the caller passes the old record or the new one.
    let grants =
        org.stats().grants_total("refresh_token") + org.stats().grants_total("client_credentials");
    assert!(tokens.token(&c).await.is_err());
    let e2 = tokens.token(&stored).await.unwrap_err();
    assert_eq!(e2.code(), "connector_needs_reauth");
    let after =
        org.stats().grants_total("refresh_token") + org.stats().grants_total("client_credentials");
    assert_eq!(after, grants, "no grant attempted while needs_reauth");
}

#[tokio::test]
async fn wrong_host() {
    permanent(
        FakeOrg::builder().login_host(true),
        |o| cc_key(o, json!({})),
        "wrong_host",
    )
    .await;
}

#[tokio::test]
async fn no_valid_scopes() {
    permanent(
        FakeOrg::builder().allowed_scopes(["refresh_token", "offline_access"]),
        |o| cc_key(o, json!({})),
        "no_valid_scopes",
    )
    .await;
}

#[tokio::test]
async fn no_run_as_user() {
    permanent(
        FakeOrg::builder().run_as_user(None),
        |o| cc_key(o, json!({})),
        "no_run_as_user",
    )
    .await;
}

#[tokio::test]
async fn expired_or_revoked_refresh_token() {
    permanent(
        FakeOrg::builder(),
        |o| {
            key(
                o,
                json!({"client_id": CLIENT_ID, "refresh_token": "5Aep861notknowntotheorg"}),
            )
        },
        "refresh_token_expired",
    )
    .await;
}

#[tokio::test]
async fn wrong_client_secret() {
    permanent(
        FakeOrg::builder(),
        |o| cc_key(o, json!({"client_secret": "not-the-secret"})),
        "wrong_client_secret",
    )
    .await;
}

#[tokio::test]
async fn wrong_client_id() {
    permanent(
        FakeOrg::builder(),
        |o| cc_key(o, json!({"client_id": "3MVG9unknown"})),
        "wrong_client_id",
    )
    .await;
}

#[tokio::test]
async fn inactive_user() {
    permanent(
        FakeOrg::builder().user_inactive(true),
        |o| refresh_key(o, json!({})),
        "inactive_user",
    )
    .await;
}

#[tokio::test]
async fn new_credentials_lift_needs_reauth() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let bad = key(
        &org,
        json!({"client_id": CLIENT_ID, "refresh_token": "5Aep861gone-gone"}),
    );
    let c = env.connector("salesforceOauth2", bad).await;
    let tokens = env.manager();
    assert!(tokens.token(&c).await.is_err());
    // PATCH {"key"} replaces the credentials: active again, and a grant happens.
    let c2 = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    assert_eq!(c2.status, ConnectorStatus::Active);
    assert!(c2.credentials_version > c.credentials_version);
    assert!(tokens.token(&c2).await.unwrap().refreshed);
}

async fn transient(status: u16, code: &str) {
    let org = FakeOrg::builder()
        .token_faults(Faults::fail_next(1, status).with_retry_after_s(Some(2)))
        .start()
        .await
        .unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let mut clocks = Clocks::new(&org);
    let tokens = env.manager_on(clocks.manager.clone());
    let e = tokens.token(&c).await.unwrap_err();
    assert_eq!(e.code(), code);
    assert!(e.is_transient());
    assert_eq!(
        e.retry_after(),
        Some(std::time::Duration::from_secs(2)),
        "Retry-After honoured"
    );
    // Backing off: the next call does not reach the org.
    let e2 = tokens.token(&c).await.unwrap_err();
    assert!(e2.is_transient() && e2.retry_after().is_some());
    assert_eq!(org.stats().grants_total("refresh_token"), 1);
    assert_eq!(env.reload(&c).await.status, ConnectorStatus::Active);
    let status = tokens.token_status(&c).await;
    assert!(status.backoff_until.is_some() && status.consecutive_failures == 1);
    // After the backoff the grant succeeds.
    clocks.advance(std::time::Duration::from_millis(2100));
    assert!(tokens.token(&c).await.is_ok());
    assert_eq!(tokens.token_status(&c).await.consecutive_failures, 0);
}

#[tokio::test]
async fn unavailable_503_backs_off() {
    transient(503, "provider_unavailable").await;
}

#[tokio::test]
async fn rate_limited_429_backs_off() {
    transient(429, "rate_limited").await;
}

#[tokio::test]
async fn unreachable_token_endpoint_is_transient() {
    let env = sqlite_env().await;
    // Nothing listens on port 9 of loopback.
    let c = env
        .connector(
            "generic",
            json!({"client_id": "x", "client_secret": "y-secret", "token_url": "http://127.0.0.1:9/token"}),
        )
        .await;
    let e = env.manager().token(&c).await.unwrap_err();
    assert_eq!(e.code(), "provider_unreachable");
    assert!(e.is_transient());
    assert_eq!(history(&env, &c).await[0].entry.http_status, None);
}

#[tokio::test]
async fn a_wrong_token_url_is_permanent_not_apex() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let wrong = format!("{}/services/oauth2/tokn", org.base_url());
    let c = env
        .connector(
            "generic",
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token_url": wrong}),
        )
        .await;
    let e = env.manager().token(&c).await.unwrap_err();
    // The org's 404 says NOT_FOUND, but at a token URL that means a wrong URL, not Apex.
    assert_eq!(e.code(), "wrong_endpoint");
    assert!(e.is_permanent());
    assert_eq!(e.http_status(), Some(404));
}

async fn apex_answer(url: &str, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn apex_class_not_deployed_or_namespace_missing() {
    let org = FakeOrg::builder()
        .namespace(Some("ONSS"))
        .start()
        .await
        .unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let t = env.manager().token(&c).await.unwrap();
    use secrecy::ExposeSecret;
    // The URL without the namespace prefix.
    let url = format!("{}/services/apexrest/OSS/callback", org.base_url());
    let (status, body) = apex_answer(&url, t.secret.expose_secret()).await;
    let d = diagnose_endpoint(status, &body).expect("a failure");
    assert_eq!((status, d.code), (404, "apex_class_not_found"));
    assert!(d.cause.contains("namespace prefix"));
    let (status, _) = apex_answer(&org.callback_url(), t.secret.expose_secret()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invalid_session_id() {
    let org = FakeOrg::builder().start().await.unwrap();
    let (status, body) = apex_answer(&org.callback_url(), "00Dnot-a-live-token").await;
    let d = diagnose_endpoint(status, &body).expect("a failure");
    assert_eq!(
        (status, d.code, d.class),
        (401, "invalid_session", FailureClass::Transient)
    );
}
