//! Grants through `…/token` and the credentials behind them: a permanent failure diagnosed and
//! cleared by a new key, the same key registered again keeping the rotated refresh token; and a
//! rate too small to schedule refused at registration.

use hookwarden_fake_org::FakeOrg;
use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::{cc_key, refresh_key, register, PATH};

#[tokio::test]
async fn a_permanent_grant_failure_is_diagnosed_over_the_api() {
    let (urls, _dir) = each_database().await;
    let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
    let t = TestServer::start(&urls[0]).await;
    register(&t, &org.callback_url(), cc_key(&org)).await;
    let (status, err) = json(
        t.req(Method::POST, &format!("{PATH}/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["fix"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("run as"),
        "{err}"
    );
    let (_, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
    assert_eq!(got["status"], "needs_reauth");
    // No further grant until the credentials change.
    let (status, err) = json(
        t.req(Method::POST, &format!("{PATH}/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 409, "connector_needs_reauth");
    assert_eq!(org.stats().grants_total("client_credentials"), 1);
    let (_, history) = json(
        t.req(Method::GET, &format!("{PATH}/history?limit=10"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let first = &history["entries"][0];
    assert_eq!(first["provider_error"], "invalid_grant", "{history}");
    assert_eq!(first["http_status"], 400);

    // Fix the org, give the key again: active, and a grant works.
    org.set_run_as_user(Some("integration@fake-org.example"));
    let (status, patched) = json(
        t.req(Method::PATCH, PATH)
            .json(&json!({"key": cc_key(&org)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["status"], "active");
    let (status, warm) = json(
        t.req(Method::POST, &format!("{PATH}/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{warm}");
    assert_eq!(warm["refreshed"], true);
    let (status, err) = json(
        t.req(Method::GET, &format!("{PATH}/history?limit=0"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 400, "invalid_limit");
}

#[tokio::test]
async fn registering_the_same_key_again_keeps_the_rotated_refresh_token() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder()
            .rotate_refresh_tokens(true)
            .start()
            .await
            .unwrap();
        let t = TestServer::start(&db).await;
        let key = refresh_key(&org);
        let body = json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key});
        assert_eq!(
            t.req(Method::POST, PATH)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        // The first refresh rotates the key's refresh token out.
        let (status, _) = json(
            t.req(Method::POST, &format!("{PATH}/token"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        // Provisioning scripts re-send the same registration, and PATCH the same key.
        let (status, again) =
            json(t.req(Method::POST, PATH).json(&body).send().await.unwrap()).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            again["credentials_version"], 1,
            "the same key is not new credentials"
        );
        let (status, patched) = json(
            t.req(Method::PATCH, PATH)
                .json(&json!({"key": key}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["credentials_version"], 1);
        // The next grant uses the rotated token: no reuse detected, still active.
        let (_, report) = json(
            t.req(Method::POST, &format!("{PATH}/test"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(org.stats().reuse_detections, 0);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_rate_limit_too_small_to_schedule_is_refused() {
    let (urls, _dir) = each_database().await;
    let org = FakeOrg::builder().start().await.unwrap();
    let t = TestServer::start(&urls[0]).await;
    let (status, err) = json(
        t.req(Method::POST, PATH)
            .json(&json!({"url": org.callback_url(), "key": cc_key(&org), "max_per_second": 1e-20}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 400, "invalid_rate");
}
