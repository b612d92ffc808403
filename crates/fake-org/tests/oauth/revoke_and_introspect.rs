//! Revocation (a refresh token takes its access tokens with it, an access token goes alone)
//! and introspection (client authentication, live and dead tokens).

use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID};

use crate::common::*;
use crate::{apex_status, assert_token_shape, refresh, CLIENT_SECRET};

#[tokio::test]
async fn revoking_a_refresh_token_kills_its_access_tokens() {
    let org = FakeOrg::builder().start().await.unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    let at_a = refresh(&org, &rt).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let unrelated = org.issue_access_token(DEFAULT_CLIENT_ID);

    let a = post_form(&org.revoke_url(), &[("token", &rt)]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text, "");

    let a = refresh(&org, &rt).await;
    assert_oauth_error(&a, 400, "invalid_grant", "expired access/refresh token");
    assert_eq!(apex_status(&org, &at_a).await, 401);
    assert_eq!(apex_status(&org, &unrelated).await, 200);

    // Already gone: Salesforce answers invalid_token.
    let a = post_form(&org.revoke_url(), &[("token", &rt)]).await;
    assert_oauth_error(&a, 400, "invalid_token", "invalid token");
    let a = post_form(&org.revoke_url(), &[("token", "never-issued")]).await;
    assert_oauth_error(&a, 400, "invalid_token", "invalid token");
    let a = post_form(&org.revoke_url(), &[]).await;
    assert_oauth_error(&a, 400, "invalid_token", "invalid token");

    let stats = org.stats();
    assert_eq!(stats.revocations.get("ok"), Some(&1));
    assert_eq!(stats.revocations.get("invalid_token"), Some(&3));
}

#[tokio::test]
async fn revoking_an_access_token_kills_only_that_token() {
    let org = FakeOrg::builder().start().await.unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    let at_a = refresh(&org, &rt).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let at_b = refresh(&org, &rt).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // As a browser would (seed 000): GET with the token in the query string.
    let a = get(&format!("{}?token={}", org.revoke_url(), enc(&at_a))).await;
    assert_eq!(a.status, 200, "{}", a.text);

    assert_eq!(apex_status(&org, &at_a).await, 401);
    assert_eq!(apex_status(&org, &at_b).await, 200);
    assert_token_shape(&org, &refresh(&org, &rt).await);
    let a = post_form(&org.revoke_url(), &[("token", &at_a)]).await;
    assert_oauth_error(&a, 400, "invalid_token", "invalid token");
}

#[tokio::test]
async fn introspection_requires_client_authentication() {
    let org = FakeOrg::builder().start().await.unwrap();
    let at = org.issue_access_token(DEFAULT_CLIENT_ID);
    let url = org.introspect_url();

    let a = post_form(&url, &[("token", &at)]).await;
    assert_oauth_error(&a, 401, "invalid_client", "invalid client credentials");
    let a = post_form(
        &url,
        &[
            ("token", &at),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_oauth_error(&a, 401, "invalid_client", "invalid client credentials");
    let a = post_form(
        &url,
        &[
            ("token", &at),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client_id", "client identifier invalid");

    let stats = org.stats();
    assert_eq!(stats.introspections.get("invalid_client"), Some(&2));
    assert_eq!(stats.introspections_total(), 3);
}

#[tokio::test]
async fn introspection_reports_live_tokens_and_forgets_dead_ones() {
    let org = FakeOrg::builder()
        .session_timeout_s(900)
        .start()
        .await
        .unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    let at = refresh(&org, &rt).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let introspect = |token: String| {
        let url = org.introspect_url();
        async move {
            send(
                http()
                    .post(url)
                    .basic_auth(DEFAULT_CLIENT_ID, Some(CLIENT_SECRET))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("token", &token),
                        ("token_type_hint", "access_token"),
                    ])),
            )
            .await
            .json()
        }
    };

    let body = introspect(at.clone()).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "access_token");
    assert_eq!(body["client_id"], DEFAULT_CLIENT_ID);
    assert_eq!(body["username"], "admin@fake-org.example");
    assert_eq!(body["scope"], "api refresh_token offline_access");
    assert!(body["sub"].as_str().unwrap().contains("/id/00D"));
    let iat = body["iat"].as_i64().unwrap();
    assert_eq!(body["exp"].as_i64().unwrap() - iat, 900);
    assert_eq!(body["nbf"].as_i64().unwrap(), iat);
    assert!((chrono::Utc::now().timestamp() - iat).abs() < 60, "seconds");

    let body = introspect(rt.clone()).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "refresh_token");

    assert_eq!(
        introspect("garbage".into()).await,
        serde_json::json!({"active": false})
    );

    // Older than the session timeout: inactive, and refused at the Apex endpoint.
    org.advance_clock_s(901);
    assert_eq!(
        introspect(at.clone()).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(apex_status(&org, &at).await, 401);
    // The refresh token still works and gives a fresh session.
    let fresh = refresh(&org, &rt).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(fresh).await["active"], true);

    post_form(&org.revoke_url(), &[("token", &rt)]).await;
    assert_eq!(introspect(rt).await, serde_json::json!({"active": false}));
    let stats = org.stats();
    assert_eq!(stats.introspections.get("active"), Some(&3));
    assert_eq!(stats.introspections.get("inactive"), Some(&3));
}
