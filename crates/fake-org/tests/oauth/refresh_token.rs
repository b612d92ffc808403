//! The refresh_token grant: its Salesforce shape, its errors, rotation and reuse detection;
//! and the token endpoint's answers to malformed requests and injected faults.

use hookwarden_fake_org::{ClientApp, FakeOrg, Faults, DEFAULT_CLIENT_ID};

use crate::common::*;
use crate::{apex_status, assert_token_shape, refresh};

#[tokio::test]
async fn refresh_grant_has_salesforce_shape_without_rotation() {
    let org = FakeOrg::builder().start().await.unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);

    let first = refresh(&org, &rt).await;
    let body = assert_token_shape(&org, &first);
    assert!(body.get("refresh_token").is_none(), "no rotation: {body}");
    assert_eq!(body["scope"], "api refresh_token offline_access");

    // Without rotation the same refresh token keeps working, and signatures are stable.
    let second = refresh(&org, &rt).await;
    assert_token_shape(&org, &second);
    assert_ne!(second.json()["access_token"], body["access_token"]);
    assert_eq!(org.stats().grant_count("refresh_token", "ok"), 2);
}

#[tokio::test]
async fn token_parameters_are_accepted_in_the_query_string() {
    let org = FakeOrg::builder().start().await.unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    let url = format!(
        "{}?{}",
        org.token_url(),
        form(&[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("refresh_token", &rt),
        ])
    );
    let a = send(http().post(&url)).await;
    assert_token_shape(&org, &a);
}

#[tokio::test]
async fn refresh_grant_errors_are_salesforce_shaped() {
    let org = FakeOrg::builder()
        .client(ClientApp::new("strict-app", "strict-secret").require_secret_for_refresh(true))
        .start()
        .await
        .unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    let url = org.token_url();

    let a = refresh(&org, "5Aep861unknown").await;
    assert_oauth_error(&a, 400, "invalid_grant", "expired access/refresh token");

    let a = post_form(
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "nobody"),
            ("refresh_token", &rt),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client_id", "client identifier invalid");

    let a = post_form(
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "wrong"),
            ("refresh_token", &rt),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client", "invalid client credentials");

    // An app that requires its secret for the refresh flow refuses a request without it...
    let strict_rt = org.issue_refresh_token("strict-app");
    let pairs = [
        ("grant_type", "refresh_token"),
        ("client_id", "strict-app"),
        ("refresh_token", strict_rt.as_str()),
    ];
    let a = post_form(&url, &pairs).await;
    assert_oauth_error(&a, 400, "invalid_client", "invalid client credentials");
    // ...and takes it with the secret, in the body or as HTTP Basic.
    let mut with_secret = pairs.to_vec();
    with_secret.push(("client_secret", "strict-secret"));
    assert_token_shape(&org, &post_form(&url, &with_secret).await);
    let basic = send(
        http()
            .post(&url)
            .basic_auth("strict-app", Some("strict-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &strict_rt),
            ])),
    )
    .await;
    assert_token_shape(&org, &basic);

    // A token of one app is no good for another.
    let a = post_form(
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "strict-app"),
            ("client_secret", "strict-secret"),
            ("refresh_token", &rt),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_grant", "expired access/refresh token");

    org.set_user_inactive(true);
    let a = refresh(&org, &rt).await;
    assert_oauth_error(&a, 400, "inactive_user", "user is inactive");
    org.set_user_inactive(false);

    let a = post_form(
        &url,
        &[("grant_type", "password"), ("client_id", DEFAULT_CLIENT_ID)],
    )
    .await;
    assert_oauth_error(
        &a,
        400,
        "unsupported_grant_type",
        "grant type not supported",
    );

    let stats = org.stats();
    assert_eq!(stats.grant_count("refresh_token", "invalid_grant"), 2);
    assert_eq!(stats.grant_count("refresh_token", "invalid_client_id"), 1);
    assert_eq!(stats.grant_count("refresh_token", "invalid_client"), 2);
    assert_eq!(stats.grant_count("refresh_token", "inactive_user"), 1);
    assert_eq!(stats.grant_count("refresh_token", "ok"), 2);
    assert_eq!(
        stats.grant_count("unsupported", "unsupported_grant_type"),
        1
    );
}

#[tokio::test]
async fn rotation_retires_old_tokens_and_reuse_revokes_the_family() {
    let org = FakeOrg::builder()
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let rt0 = org.issue_refresh_token(DEFAULT_CLIENT_ID);

    let first = refresh(&org, &rt0).await;
    let body = assert_token_shape(&org, &first);
    let rt1 = body["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(rt1, rt0);
    let at1 = body["access_token"].as_str().unwrap().to_owned();

    let second = refresh(&org, &rt1).await;
    let rt2 = assert_token_shape(&org, &second)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(apex_status(&org, &at1).await, 200);

    // rt0 was rotated out: presenting it again is reuse, which kills the whole family.
    let reuse = refresh(&org, &rt0).await;
    assert_oauth_error(&reuse, 400, "invalid_grant", "expired access/refresh token");
    assert_eq!(org.stats().reuse_detections, 1);
    let a = refresh(&org, &rt2).await;
    assert_oauth_error(&a, 400, "invalid_grant", "expired access/refresh token");
    assert_eq!(apex_status(&org, &at1).await, 401);

    // Another family is untouched.
    let other = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    assert_token_shape(&org, &refresh(&org, &other).await);
    let stats = org.stats();
    assert_eq!(stats.reuse_detections, 1);
    assert_eq!(stats.grant_count("refresh_token", "ok"), 3);
    assert_eq!(stats.grant_count("refresh_token", "invalid_grant"), 2);
}

#[tokio::test]
async fn malformed_token_requests_get_400_not_500() {
    let org = FakeOrg::builder().start().await.unwrap();
    let url = org.token_url();
    let bodies: [&[u8]; 5] = [
        b"",
        b"{\"grant_type\":\"refresh_token\"}",
        b"grant_type=%ZZ&&&==&client_id",
        b"\xff\xfe\x00garbage",
        b"grant_type=refresh_token",
    ];
    for body in bodies {
        let a = send(http().post(&url).body(body.to_vec())).await;
        assert_eq!(a.status, 400, "body {body:?} answered {}", a.text);
        assert!(a.json()["error"].is_string());
    }
    let a = post_form(
        &url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEFAULT_CLIENT_ID),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_grant", "invalid authorization code");
}

#[tokio::test]
async fn token_endpoint_faults_and_latency() {
    let org = FakeOrg::builder()
        .token_faults(Faults::fail_next(2, 429).with_retry_after_s(Some(7)))
        .start()
        .await
        .unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    for _ in 0..2 {
        let a = refresh(&org, &rt).await;
        assert_eq!(a.status, 429, "{}", a.text);
        assert_eq!(a.header("retry-after").as_deref(), Some("7"));
        assert!(a.json()["error"].is_string());
    }
    assert_token_shape(&org, &refresh(&org, &rt).await);

    org.set_token_faults(Faults::error_rate(1.0, 503)).unwrap();
    let a = refresh(&org, &rt).await;
    assert_oauth_error(
        &a,
        503,
        "temporarily_unavailable",
        "service temporarily unavailable",
    );
    assert_eq!(a.header("retry-after").as_deref(), Some("1"));
    org.set_token_faults(Faults::fail_next(1, 500)).unwrap();
    let a = refresh(&org, &rt).await;
    assert_eq!(a.status, 500);
    assert!(a.header("retry-after").is_none());

    org.set_token_faults(Faults::latency_ms(300)).unwrap();
    let started = std::time::Instant::now();
    assert_token_shape(&org, &refresh(&org, &rt).await);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));

    let stats = org.stats();
    assert_eq!(stats.grant_count("refresh_token", "http_429"), 2);
    assert_eq!(stats.grant_count("refresh_token", "http_503"), 1);
    assert_eq!(stats.grant_count("refresh_token", "http_500"), 1);
    assert_eq!(stats.grants_ok("refresh_token"), 2);
    assert!(org.set_token_faults(Faults::error_rate(2.0, 503)).is_err());
    assert!(org.set_token_faults(Faults::fail_next(1, 200)).is_err());
}

/// An org's login policies, worded as Salesforce words them: IP ranges or hours refuse every
/// grant; an app for pre-authorized users refuses the user's grants but not the Run As user's.
#[tokio::test]
async fn login_policies_refuse_grants_as_salesforce_words_them() {
    let org = FakeOrg::builder()
        .ip_restricted(true)
        .start()
        .await
        .unwrap();
    let rt = org.issue_refresh_token(DEFAULT_CLIENT_ID);
    let token_url = org.token_url();
    let cc = || {
        post_form(
            &token_url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", crate::CLIENT_SECRET),
            ],
        )
    };
    let ip = "ip restricted or invalid login hours";
    assert_oauth_error(&refresh(&org, &rt).await, 400, "invalid_grant", ip);
    assert_oauth_error(&cc().await, 400, "invalid_grant", ip);

    org.set_ip_restricted(false);
    org.set_app_not_approved(true);
    let a = refresh(&org, &rt).await;
    assert_oauth_error(
        &a,
        400,
        "invalid_grant",
        "user hasn't approved this consumer",
    );
    assert_eq!(cc().await.status, 200, "the Run As user needs no approval");

    org.set_app_not_approved(false);
    assert_eq!(refresh(&org, &rt).await.status, 200);
    let stats = org.stats();
    assert_eq!(stats.grant_count("refresh_token", "invalid_grant"), 2);
    assert_eq!(stats.grants_ok("refresh_token"), 1);
}
