//! The client_credentials grant: its shape with the secret in the body or as HTTP Basic, and
//! its errors as Salesforce's troubleshooting table lists them.

use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID};

use crate::common::*;
use crate::{apex_status, assert_token_shape, CLIENT_SECRET};

async fn client_credentials(org: &RunningFakeOrg, extra: &[(&str, &str)]) -> Answer {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    pairs.extend_from_slice(extra);
    post_form(&org.token_url(), &pairs).await
}

#[tokio::test]
async fn client_credentials_grant_shape_body_and_basic() {
    let org = FakeOrg::builder().start().await.unwrap();
    let a = client_credentials(&org, &[]).await;
    let body = assert_token_shape(&org, &a);
    assert!(body.get("refresh_token").is_none());
    // The delegated-only scopes of the app are not granted to a machine identity.
    assert_eq!(body["scope"], "api");
    assert!(body["id"]
        .as_str()
        .unwrap()
        .ends_with("/005000000000002AAA"));

    let basic = send(
        http()
            .post(org.token_url())
            .basic_auth(DEFAULT_CLIENT_ID, Some(CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=api"),
    )
    .await;
    assert_token_shape(&org, &basic);
    let token = basic.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(apex_status(&org, &token).await, 200);
    assert_eq!(org.stats().grants_ok("client_credentials"), 2);
}

#[tokio::test]
async fn client_credentials_errors_follow_the_troubleshooting_table() {
    let org = FakeOrg::builder().start().await.unwrap();

    let a = client_credentials(&org, &[("scope", "api refresh_token")]).await;
    assert_oauth_error(&a, 400, "invalid_grant", "no valid scopes defined");
    let a = client_credentials(&org, &[("scope", "offline_access")]).await;
    assert_oauth_error(&a, 400, "invalid_grant", "no valid scopes defined");
    let a = client_credentials(&org, &[("scope", "full")]).await;
    assert_oauth_error(&a, 400, "invalid_grant", "no valid scopes defined");
    org.set_allowed_scopes(["refresh_token", "offline_access"]);
    let a = client_credentials(&org, &[]).await;
    assert_oauth_error(&a, 400, "invalid_grant", "no valid scopes defined");
    org.set_allowed_scopes(["api"]);

    org.set_run_as_user(None);
    let a = client_credentials(&org, &[]).await;
    assert_oauth_error(
        &a,
        400,
        "invalid_grant",
        "no client credentials user enabled",
    );
    org.set_run_as_user(Some("integration@example.com"));

    org.set_login_host(true);
    let a = client_credentials(&org, &[]).await;
    assert_oauth_error(
        &a,
        400,
        "invalid_grant",
        "request not supported on this domain",
    );
    org.set_login_host(false);

    let a = post_form(
        &org.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client", "invalid client credentials");
    let a = post_form(
        &org.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client", "invalid client credentials");
    let a = post_form(
        &org.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "unknown"),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client_id", "client identifier invalid");

    org.set_user_inactive(true);
    let a = client_credentials(&org, &[]).await;
    assert_oauth_error(&a, 400, "inactive_user", "user is inactive");
    org.set_user_inactive(false);

    assert_token_shape(&org, &client_credentials(&org, &[]).await);
    let stats = org.stats();
    assert_eq!(stats.grant_count("client_credentials", "invalid_grant"), 6);
    assert_eq!(stats.grants_ok("client_credentials"), 1);
    assert_eq!(stats.grants_total("client_credentials"), 11);
}
