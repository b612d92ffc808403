//! The OAuth endpoints over real HTTP: grant shapes, Salesforce's errors, rotation and reuse
//! detection, revocation, introspection, authorize → code → exchange with PKCE.

mod common;

use common::*;
use hookwarden_fake_org::{ClientApp, FakeOrg, Faults, RunningFakeOrg, DEFAULT_CLIENT_ID};

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

async fn client_credentials(org: &RunningFakeOrg, extra: &[(&str, &str)]) -> Answer {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    pairs.extend_from_slice(extra);
    post_form(&org.token_url(), &pairs).await
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

async fn authorize(org: &RunningFakeOrg, pairs: &[(&str, &str)]) -> Answer {
    get(&format!("{}?{}", org.authorize_url(), form(pairs))).await
}

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

#[tokio::test]
async fn authorize_code_exchange_with_pkce() {
    let org = FakeOrg::builder().start().await.unwrap();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more";
    let challenge = pkce_challenge(verifier);
    let start = |state: &'static str| {
        let challenge = challenge.clone();
        let org = &org;
        async move {
            let a = authorize(
                org,
                &[
                    ("response_type", "code"),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("redirect_uri", REDIRECT),
                    ("state", state),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                    ("scope", "api refresh_token"),
                ],
            )
            .await;
            assert_eq!(a.status, 302, "{}", a.text);
            let location = a.header("location").unwrap();
            assert!(
                location.starts_with(&format!("{REDIRECT}?code=")),
                "{location}"
            );
            assert_eq!(query_param(&location, "state").as_deref(), Some(state));
            query_param(&location, "code").unwrap()
        }
    };
    let exchange = |code: String, verifier: &'static str| {
        let url = org.token_url();
        async move {
            post_form(
                &url,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };

    let code = start("s t&1").await;
    let wrong = exchange(
        code.clone(),
        "this-is-not-the-verifier-that-made-the-challenge",
    )
    .await;
    assert_oauth_error(&wrong, 400, "invalid_grant", "invalid code verifier");
    // Codes are single use, failed attempts included.
    let again = exchange(code, verifier).await;
    assert_oauth_error(&again, 400, "invalid_grant", "invalid authorization code");

    let code = start("second").await;
    let ok = exchange(code.clone(), verifier).await;
    let body = assert_token_shape(&org, &ok);
    assert_eq!(body["scope"], "api refresh_token");
    let rt = body["refresh_token"]
        .as_str()
        .expect("code exchange returns a refresh token");
    assert_token_shape(&org, &refresh(&org, rt).await);
    let replay = exchange(code, verifier).await;
    assert_oauth_error(&replay, 400, "invalid_grant", "invalid authorization code");

    let code = start("third").await;
    let a = post_form(
        &org.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_oauth_error(
        &a,
        400,
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    );

    let stats = org.stats();
    assert_eq!(stats.authorizations.get("ok"), Some(&3));
    assert_eq!(stats.grant_count("authorization_code", "ok"), 1);
    assert_eq!(stats.grant_count("authorization_code", "invalid_grant"), 3);
}

#[tokio::test]
async fn code_exchange_without_pkce_needs_the_client_secret() {
    let org = FakeOrg::builder().start().await.unwrap();
    let code_for = |org: &RunningFakeOrg| {
        let url = format!(
            "{}?{}",
            org.authorize_url(),
            form(&[
                ("response_type", "code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", REDIRECT),
            ])
        );
        async move { query_param(&get(&url).await.header("location").unwrap(), "code").unwrap() }
    };
    let code = code_for(&org).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", DEFAULT_CLIENT_ID),
    ];
    let a = post_form(&org.token_url(), &pairs).await;
    assert_oauth_error(&a, 400, "invalid_client", "invalid client credentials");

    let code = code_for(&org).await;
    let a = post_form(
        &org.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await;
    let body = assert_token_shape(&org, &a);
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn authorize_refuses_bad_requests() {
    let org = FakeOrg::builder()
        .client(
            ClientApp::new("pkce-app", "s")
                .require_pkce(true)
                .redirect_uris([REDIRECT]),
        )
        .start()
        .await
        .unwrap();

    let a = authorize(
        &org,
        &[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client_id", "client identifier invalid");

    let a = authorize(
        &org,
        &[
            ("response_type", "code"),
            ("client_id", "pkce-app"),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    )
    .await;
    assert_oauth_error(
        &a,
        400,
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    );

    // Errors that can travel in the redirect do, with the state.
    let redirected_error = |a: Answer| {
        assert_eq!(a.status, 302, "{}", a.text);
        let location = a.header("location").unwrap();
        assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
        query_param(&location, "error").unwrap()
    };
    let base = [
        ("client_id", "pkce-app"),
        ("redirect_uri", REDIRECT),
        ("state", "xyz"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let a = authorize(&org, &with(&[("response_type", "token")])).await;
    assert_eq!(redirected_error(a), "unsupported_response_type");
    let a = authorize(&org, &with(&[("response_type", "code")])).await;
    assert_eq!(redirected_error(a), "invalid_request", "PKCE required");
    let a = authorize(
        &org,
        &with(&[
            ("response_type", "code"),
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ]),
    )
    .await;
    assert_eq!(redirected_error(a), "invalid_request");
    let a = authorize(
        &org,
        &with(&[
            ("response_type", "code"),
            ("code_challenge", "abc"),
            ("scope", "full"),
        ]),
    )
    .await;
    assert_eq!(redirected_error(a), "invalid_scope");
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
