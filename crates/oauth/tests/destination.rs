//! A Salesforce token goes only to the org that issued it: a grant whose `instance_url` is not
//! where the connector's url points is not used, and the connector is disabled until its url
//! moves into the org — checked on every grant, including a code exchange and a cached token
//! whose connector moved.

mod common;

use common::*;
use hookwarden_core::ConnectorStatus;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg};
use hookwarden_oauth::Remedy;
use hookwarden_store::{ConnectorRecord, HistoryKind};
use serde_json::json;

/// Where the org now says it is: another host than the one the connectors were given.
const ELSEWHERE: &str = "https://acme.my.salesforce.com";

fn answer_from_elsewhere(org: &RunningFakeOrg) {
    org.update_config(|c| c.public_url = Some(ELSEWHERE.to_owned()))
        .unwrap();
}

/// The connector as stored now, moved to `url` with the same credentials (what a
/// `PATCH {"url"}` does), `active`.
async fn moved_to(env: &Env, c: &ConnectorRecord, url: &str) -> ConnectorRecord {
    let mut record = env.reload(c).await;
    let seen = record.seen();
    record.url = url.to_owned();
    record.status = ConnectorStatus::Active;
    env.store
        .save_connector(&record, false, seen)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_from_an_org_elsewhere_is_not_used_and_the_connector_waits_for_its_url() {
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
    answer_from_elsewhere(&org);

    let e = tokens.token(&c).await.unwrap_err();
    assert_eq!(e.code(), "url_not_in_org");
    assert_eq!(e.remedy(), Remedy::FixUrl);
    assert!(e.to_string().contains(ELSEWHERE), "{e}");
    assert_eq!(org.stats().grants_ok("refresh_token"), 1);

    let disabled = env.reload(&c).await;
    assert_eq!(disabled.status, ConnectorStatus::Disabled);
    let d = disabled.diagnosis().expect("a diagnosis");
    assert_eq!(d.code, "url_not_in_org");
    assert!(d.cause.contains(ELSEWHERE), "{}", d.cause);
    let status = tokens.token_status(&disabled).await;
    assert!(!status.has_access_token, "the token is not kept for use");
    assert_eq!(status.instance_url.as_deref(), Some(ELSEWHERE));
    assert!(
        status.refresh_token_rotated,
        "the rotated refresh token is kept"
    );

    let h = history(&env, &c).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].entry.kind, HistoryKind::Refresh);
    assert_eq!(h[0].entry.outcome, "failed");
    assert_eq!(h[0].entry.http_status, Some(200));
    assert_eq!(h[0].entry.diagnosis_code.as_deref(), Some("url_not_in_org"));

    // No further grant while it waits, for a delivery or a test.
    for result in [
        tokens.token(&disabled).await,
        tokens.force_grant(&disabled).await,
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.code(), "url_not_in_org");
        assert!(e.is_conflict(), "nothing was tried");
    }
    assert_eq!(org.stats().grants_total("refresh_token"), 1);

    // Its url moved into the org: the rotated refresh token grants, and the token is used.
    let home = moved_to(
        &env,
        &c,
        &format!("{ELSEWHERE}/services/apexrest/OSS/callback"),
    )
    .await;
    let t = tokens.token(&home).await.unwrap();
    assert!(t.refreshed);
    assert_eq!(org.stats().grants_ok("refresh_token"), 2);
    assert_eq!(org.stats().reuse_detections, 0);
}

#[tokio::test]
async fn a_cached_token_does_not_follow_its_connector_to_another_host() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", cc_key(&org, json!({})))
        .await;
    let tokens = env.manager();
    tokens.token(&c).await.unwrap();
    assert!(!tokens.token(&c).await.unwrap().refreshed, "cached");

    let away = moved_to(
        &env,
        &c,
        "https://elsewhere.example/services/apexrest/OSS/callback",
    )
    .await;
    let e = tokens.token(&away).await.unwrap_err();
    assert_eq!(e.code(), "url_not_in_org");
    assert_eq!(
        org.stats().grants_ok("client_credentials"),
        2,
        "the move was checked with a grant"
    );
    assert_eq!(env.reload(&c).await.status, ConnectorStatus::Disabled);
    // A worker still holding the record read before the move gets no token either: the
    // cached one is gone, and a grant reads the connector again.
    assert_eq!(tokens.token(&c).await.unwrap_err().code(), "url_not_in_org");
    assert_eq!(org.stats().grants_total("client_credentials"), 2);
}

#[tokio::test]
async fn a_generic_connector_is_not_held_to_an_org() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    // A generic provider names no org: its instance_url (if any) is not compared.
    let generic = env.connector("acmeGeneric", cc_key(&org, json!({}))).await;
    answer_from_elsewhere(&org);
    assert!(env.manager().token(&generic).await.is_ok());
    assert_eq!(env.reload(&generic).await.status, ConnectorStatus::Active);
}

#[tokio::test]
async fn a_code_exchange_from_an_org_elsewhere_keeps_the_credentials_but_not_the_token() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let tokens = env.manager();
    let redirect = "http://127.0.0.1:8080/oauth/callback";
    let url = tokens.authorization_url(&c, redirect).await.unwrap();
    let location = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap()
        .headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let param = |name: &str| {
        url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    answer_from_elsewhere(&org);

    let e = tokens
        .complete_authorization(Some(&env.account.id), &param("state"), &param("code"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "url_not_in_org");
    assert_eq!(org.stats().grants_ok("authorization_code"), 1);
    let after = env.reload(&c).await;
    assert!(
        after.credentials_version > c.credentials_version,
        "the new credentials are kept"
    );
    assert_eq!(after.status, ConnectorStatus::Disabled);
    assert!(!tokens.token_status(&after).await.has_access_token);
    let h = history(&env, &c).await;
    assert_eq!(h[0].entry.kind, HistoryKind::CodeExchange);
    assert_eq!(h[0].entry.diagnosis_code.as_deref(), Some("url_not_in_org"));
}

/// A refresh hook (seed 004) answers without an `instance_url`: nothing names the org that
/// issued its token, so there is nothing to compare the url with.
#[tokio::test]
async fn a_hooks_answer_names_no_org_and_its_token_is_used() {
    use axum::routing::post;
    let hook = axum::Router::new().route(
        "/refresh",
        post(|| async {
            axum::Json(
                json!({"access_token": "hook-at", "token_type": "Bearer", "expires_in": 3600}),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await });
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let k = key(
        &org,
        json!({"client_id": CLIENT_ID, "refresh_token": "rt", "refresh_hook": format!("{base}/refresh")}),
    );
    let c = env.connector("salesforceOauth2", k).await;
    let away = moved_to(
        &env,
        &c,
        "https://elsewhere.example/services/apexrest/OSS/callback",
    )
    .await;
    assert!(env.manager().token(&away).await.is_ok());
    assert_eq!(env.reload(&c).await.status, ConnectorStatus::Active);
}
