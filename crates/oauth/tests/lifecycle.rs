//! Revocation, re-authentication (authorization code + PKCE through the org's authorize
//! endpoint) and the custom refresh hook of seed 004.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use hookwarden_core::ConnectorStatus;
use hookwarden_fake_org::FakeOrg;
use hookwarden_store::HistoryKind;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

/// Follow nothing: read the authorize endpoint's redirect.
async fn authorize(url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn revoke_then_reauthenticate() {
    let org = FakeOrg::builder()
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let tokens = env.manager();
    tokens.token(&c).await.unwrap();
    tokens.force_grant(&c).await.unwrap(); // rotated: the current refresh token is the state's

    let out = tokens.revoke(&c).await.unwrap();
    assert!(out.provider_called && out.refresh_token_revoked && out.access_token_revoked);
    assert!(!out.already_revoked);
    assert!(
        org.stats().revocations_ok() >= 1,
        "{:?}",
        org.stats().revocations
    );
    let revoked = env.reload(&c).await;
    assert_eq!(revoked.status, ConnectorStatus::Revoked);
    let status = tokens.token_status(&revoked).await;
    assert!(!status.has_access_token && !status.refresh_token_rotated);

    // No grant until re-authentication, with the old record or the new one.
    let grants = org.stats().grants_total("refresh_token");
    assert_eq!(
        tokens.token(&c).await.unwrap_err().code(),
        "connector_revoked"
    );
    assert_eq!(
        tokens.token(&revoked).await.unwrap_err().code(),
        "connector_revoked"
    );
    assert_eq!(
        tokens.force_grant(&revoked).await.unwrap_err().code(),
        "connector_revoked"
    );
    assert_eq!(org.stats().grants_total("refresh_token"), grants);

    // Idempotent: nothing more is sent.
    let revocations = org.stats().revocations.clone();
    let again = tokens.revoke(&revoked).await.unwrap();
    assert!(again.already_revoked && !again.provider_called);
    assert_eq!(org.stats().revocations, revocations);

    // Re-authentication: oauth/url → authorize → callback.
    let redirect = "http://127.0.0.1:8080/oauth/callback";
    let url = tokens.authorization_url(&revoked, redirect).await.unwrap();
    assert!(url.contains("code_challenge_method=S256"));
    let location = authorize(&url).await;
    assert!(location.starts_with(redirect));
    let code = query_param(&location, "code").expect("code");
    let state = query_param(&location, "state").expect("state");
    let back = tokens
        .complete_authorization(Some(&env.account.id), &state, &code)
        .await
        .unwrap();
    assert_eq!(back.status, ConnectorStatus::Active);
    assert_eq!(
        back.credentials.flow().map(|f| f.as_str()),
        Some("refresh_token")
    );
    assert!(back.credentials_version > revoked.credentials_version);
    assert_eq!(org.stats().grants_ok("authorization_code"), 1);

    // The exchange seeded the token: no further grant for the first use.
    let t = tokens.token(&back).await.unwrap();
    assert!(!t.refreshed);
    assert_eq!(org.stats().grants_total("refresh_token"), grants);
    // And the new refresh token (now the key's) works.
    let forced = tokens.force_grant(&back).await.unwrap();
    assert!(forced.refreshed);
    assert_eq!(org.stats().reuse_detections, 0);

    // A state is single use.
    let e = tokens
        .complete_authorization(None, &state, &code)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oauth_state_invalid");

    let kinds: Vec<HistoryKind> = history(&env, &c)
        .await
        .iter()
        .map(|h| h.entry.kind)
        .collect();
    assert!(kinds.contains(&HistoryKind::Revoke) && kinds.contains(&HistoryKind::CodeExchange));
}

#[tokio::test]
async fn reauthentication_lifts_needs_reauth() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let bad = key(
        &org,
        json!({"client_id": CLIENT_ID, "refresh_token": "5Aep861expired-one"}),
    );
    let c = env.connector("salesforceOauth2", bad).await;
    let tokens = env.manager();
    assert!(tokens.token(&c).await.is_err());
    let c = env.reload(&c).await;
    assert_eq!(c.status, ConnectorStatus::NeedsReauth);
    let url = tokens
        .authorization_url(&c, "https://hookwarden.example/oauth/callback")
        .await
        .unwrap();
    let location = authorize(&url).await;
    let back = tokens
        .complete_authorization(
            None,
            &query_param(&location, "state").unwrap(),
            &query_param(&location, "code").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(back.status, ConnectorStatus::Active);
    assert!(tokens.token(&back).await.is_ok());
}

#[tokio::test]
async fn a_client_credentials_connector_is_not_reauthenticated_in_a_browser() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", cc_key(&org, json!({})))
        .await;
    let tokens = env.manager();
    let e = tokens
        .authorization_url(&c, "https://hookwarden.example/oauth/callback")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "wrong_flow");
    assert!(e.is_conflict());
    // A flow an older version began for it cannot finish either.
    env.store
        .put_oauth_state(
            "state-of-an-older-version",
            &hookwarden_store::OAuthState {
                connector_id: c.id.clone(),
                account_id: c.account_id.clone(),
                connector_name: c.name.clone(),
                code_verifier: secrecy::SecretString::from("v".repeat(64)),
                redirect_uri: "https://hookwarden.example/oauth/callback".into(),
                expires_at: chrono::Utc::now().timestamp_millis() + 600_000,
            },
        )
        .await
        .unwrap();
    let e = tokens
        .complete_authorization(None, "state-of-an-older-version", "some-code")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "wrong_flow");
    assert_eq!(org.stats().grants_total("authorization_code"), 0);
    let after = env.reload(&c).await;
    assert_eq!(
        (
            after.status,
            after.credentials_version,
            after.credentials.flow()
        ),
        (c.status, c.credentials_version, c.credentials.flow())
    );
    assert_eq!(
        after.credentials.stored().expose_secret(),
        c.credentials.stored().expose_secret()
    );
    assert!(history(&env, &c).await.is_empty());
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_and_recorded() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let tokens = env.manager();
    let redirect = "https://hookwarden.example/oauth/callback";
    let url = tokens.authorization_url(&c, redirect).await.unwrap();
    let code = query_param(&authorize(&url).await, "code").unwrap();
    let verifier = "x".repeat(64);
    let e = tokens
        .exchange_code(&c, &code, Some(redirect), Some(&verifier))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_code_verifier");
    // A failed exchange does not touch the working credentials.
    assert_eq!(env.reload(&c).await.status, ConnectorStatus::Active);
    let h = history(&env, &c).await;
    assert_eq!(h[0].entry.kind, HistoryKind::CodeExchange);
    assert_eq!(h[0].entry.outcome, "failed");
}

// ---- the custom refresh hook (seed 004) ----

#[derive(Clone, Default)]
struct Hook {
    seen: Arc<Mutex<Vec<Value>>>,
}

async fn hook_ok(State(h): State<Hook>, Json(input): Json<Value>) -> Json<Value> {
    let n = {
        let mut seen = h.seen.lock().unwrap();
        seen.push(input);
        seen.len()
    };
    Json(json!({
        "access_token": format!("hook-access-token-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": format!("hook-refresh-token-{n}"),
        "scope": "api",
        "errorResponse": ""
    }))
}

async fn hook_error(State(h): State<Hook>, Json(input): Json<Value>) -> Json<Value> {
    h.seen.lock().unwrap().push(input);
    Json(json!({"access_token": "", "errorResponse": "backend said: account locked"}))
}

async fn hook_forbidden(State(h): State<Hook>, Json(input): Json<Value>) -> (StatusCode, String) {
    h.seen.lock().unwrap().push(input);
    (
        StatusCode::FORBIDDEN,
        "<html><body>403 Forbidden by policy</body></html>".into(),
    )
}

async fn start_hook() -> (String, Hook) {
    let hook = Hook::default();
    let app = Router::new()
        .route("/ok", post(hook_ok))
        .route("/error", post(hook_error))
        .route("/forbidden", post(hook_forbidden))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hook)
}

fn hook_key(org: &hookwarden_fake_org::RunningFakeOrg, hook: &str, rt: &str) -> Value {
    json!({
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": rt,
        "token_url": org.token_url(),
        "scope": "api",
        "refresh_hook": hook,
    })
}

#[tokio::test]
async fn refresh_hook_success_rotates_and_is_in_the_history() {
    let org = FakeOrg::builder().start().await.unwrap();
    let (base, hook) = start_hook().await;
    let env = sqlite_env().await;
    let c = env
        .connector(
            "hooked",
            hook_key(&org, &format!("{base}/ok"), "original-refresh-token"),
        )
        .await;
    let tokens = env.manager();
    let t = tokens.token(&c).await.unwrap();
    assert_eq!(t.secret.expose_secret(), "hook-access-token-1");
    let s = env.store.get_token_state(&c.id).await.unwrap().unwrap();
    // expires_in (3600 s) from the hook's answer.
    let lifetime = s.access_expires_at.unwrap() - s.last_grant_at.unwrap();
    assert!((3_500_000..=3_600_000).contains(&lifetime), "{lifetime}");

    // The second call sends the current values: the first access token and the rotated refresh token.
    tokens.force_grant(&c).await.unwrap();
    let seen = hook.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["refresh_token"], "original-refresh-token");
    assert_eq!(seen[0]["client_id"], CLIENT_ID);
    assert_eq!(seen[0]["client_secret"], CLIENT_SECRET);
    assert_eq!(seen[0]["token_url"], org.token_url());
    assert_eq!(seen[0]["scope"], "api");
    assert_eq!(seen[1]["refresh_token"], "hook-refresh-token-1");
    assert_eq!(seen[1]["access_token"], "hook-access-token-1");
    assert_eq!(
        org.stats().grants_total("refresh_token"),
        0,
        "the hook replaces the token endpoint"
    );

    let h = history(&env, &c).await;
    assert_eq!(h.len(), 2);
    for e in &h {
        assert_eq!(
            (e.entry.kind, e.entry.outcome.as_str(), e.entry.http_status),
            (HistoryKind::Hook, "ok", Some(200))
        );
        let excerpt = e.entry.excerpt.as_deref().unwrap();
        assert!(
            excerpt.contains("\"token_type\":\"Bearer\"") && !excerpt.contains("hook-access-token")
        );
    }
}

#[tokio::test]
async fn refresh_hook_error_response_is_a_failed_grant() {
    let org = FakeOrg::builder().start().await.unwrap();
    let (base, _) = start_hook().await;
    let env = sqlite_env().await;
    let c = env
        .connector(
            "hooked",
            hook_key(&org, &format!("{base}/error"), "some-refresh-token"),
        )
        .await;
    let e = env.manager().token(&c).await.unwrap_err();
    assert_eq!(e.code(), "hook_error_response");
    assert!(e.to_string().contains("account locked"));
    let h = history(&env, &c).await;
    assert_eq!(h.len(), 1);
    let entry = &h[0].entry;
    assert_eq!(
        (entry.kind, entry.outcome.as_str(), entry.http_status),
        (HistoryKind::Hook, "failed", Some(200))
    );
    assert!(entry.excerpt.as_deref().unwrap().contains("account locked"));
    assert!(entry.cause.as_deref().unwrap().contains("account locked"));
    assert_eq!(env.reload(&c).await.status, ConnectorStatus::NeedsReauth);
}

#[tokio::test]
async fn refresh_hook_403_is_in_the_history_with_its_body() {
    let org = FakeOrg::builder().start().await.unwrap();
    let (base, _) = start_hook().await;
    let env = sqlite_env().await;
    let c = env
        .connector(
            "hooked",
            hook_key(&org, &format!("{base}/forbidden"), "some-refresh-token"),
        )
        .await;
    let e = env.manager().token(&c).await.unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("forbidden", Some(403)));
    let h = history(&env, &c).await;
    assert_eq!(
        h.len(),
        1,
        "the seed-004 user saw nothing in the history; here it is"
    );
    let entry = &h[0].entry;
    assert_eq!(
        (entry.kind, entry.http_status),
        (HistoryKind::Hook, Some(403))
    );
    assert_eq!(entry.grant_type.as_deref(), Some("refresh_hook"));
    assert!(entry
        .excerpt
        .as_deref()
        .unwrap()
        .contains("403 Forbidden by policy"));
    assert!(entry.fix.is_some());
}
