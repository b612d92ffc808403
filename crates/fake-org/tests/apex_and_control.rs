//! The Apex REST receiver and the `/_fake` control plane over real HTTP, as a test running the
//! org in another process would drive it.

mod common;

use common::*;
use hookwarden_fake_org::{
    FakeOrg, FakeOrgConfig, FakeOrgStats, ReceivedCallback, DEFAULT_CLIENT_ID,
};
use serde_json::json;

const INVALID_SESSION: &str =
    r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;

async fn mint_access_token(base: &str) -> String {
    let a = post_json(&format!("{base}/_fake/access-tokens"), json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["access_token"].as_str().unwrap().to_owned()
}

async fn patch(base: &str, body: serde_json::Value) -> Answer {
    post_json(&format!("{base}/_fake/config"), body).await
}

async fn stats(base: &str) -> FakeOrgStats {
    serde_json::from_value(get(&format!("{base}/_fake/stats")).await.json()).unwrap()
}

#[tokio::test]
async fn apex_accepts_a_live_token_and_records_the_callback() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token = mint_access_token(&base).await;
    assert_eq!(
        org.callback_url(),
        format!("{base}/services/apexrest/OSS/callback")
    );

    let a = post_callback(&org.callback_url(), Some(&token), "msg_1").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), json!("ok"));
    // Salesforce also takes the older `OAuth` scheme.
    let a = send(
        http()
            .post(org.callback_url())
            .header("authorization", format!("OAuth {token}"))
            .body("{}"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);

    let list: Vec<ReceivedCallback> =
        serde_json::from_value(get(&format!("{base}/_fake/callbacks")).await.json()).unwrap();
    assert_eq!(list.len(), 2);
    let first = &list[0];
    assert_eq!(first.seq, 1);
    assert_eq!(first.path, "/OSS/callback");
    assert_eq!(first.access_token, token);
    assert_eq!(first.webhook_id.as_deref(), Some("msg_1"));
    assert_eq!(first.headers["webhook-timestamp"], "1700000000");
    assert_eq!(first.headers["webhook-signature"], "v1,c2lnbmF0dXJl");
    assert!(
        !first.headers.contains_key("authorization"),
        "token kept out of headers"
    );
    assert_eq!(first.body["name"], "PACKAGE_COMPLETE");
    assert!(
        first.raw_body.starts_with(r#"{"@class":"#),
        "raw bytes kept for signatures"
    );

    let later: Vec<ReceivedCallback> =
        serde_json::from_value(get(&format!("{base}/_fake/callbacks?since=1")).await.json())
            .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].seq, 2);
    assert_eq!(org.callbacks().len(), 2);
    assert_eq!(stats(&base).await.callbacks_received, 2);
}

#[tokio::test]
async fn apex_refuses_missing_wrong_and_expired_sessions() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token = mint_access_token(&base).await;

    let a = post_callback(&org.callback_url(), None, "a").await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.json(),
        serde_json::from_str::<serde_json::Value>(INVALID_SESSION).unwrap()
    );
    let a = post_callback(&org.callback_url(), Some("00Dbogus!AQ"), "b").await;
    assert_eq!(a.status, 401);
    // Session checked before the class lookup, as Salesforce does.
    let a = post_callback(
        &format!("{base}/services/apexrest/Nope"),
        Some("bogus"),
        "c",
    )
    .await;
    assert_eq!(a.status, 401);

    // Session timeout knob over HTTP: 60 s, then the org's clock moves 61 s on.
    let a = patch(&base, json!({"session_timeout_s": 60})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        post_callback(&org.callback_url(), Some(&token), "d")
            .await
            .status,
        200
    );
    let a = post_json(
        &format!("{base}/_fake/clock/advance"),
        json!({"seconds": 61}),
    )
    .await;
    assert_eq!(a.json()["clock_offset_s"], 61);
    assert_eq!(
        post_callback(&org.callback_url(), Some(&token), "e")
            .await
            .status,
        401
    );

    let s = stats(&base).await;
    assert_eq!(s.apex_rejection_count("INVALID_SESSION_ID"), 4);
    assert_eq!(s.callbacks_received, 1);
}

#[tokio::test]
async fn apex_unknown_class_is_not_found_with_the_url() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token = mint_access_token(&base).await;
    let a = post_callback(
        &format!("{base}/services/apexrest/OSS/callbak"),
        Some(&token),
        "x",
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.json(),
        json!([{"errorCode": "NOT_FOUND", "message": "Could not find a match for URL /OSS/callbak"}])
    );

    // Wrong method and a body the Apex class cannot deserialize.
    let a = send(http().get(org.callback_url()).bearer_auth(&token)).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.json()[0]["errorCode"], "METHOD_NOT_ALLOWED");
    let a = send(
        http()
            .post(org.callback_url())
            .bearer_auth(&token)
            .body("not json"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()[0]["errorCode"], "JSON_PARSER_ERROR");

    // Deployed classes over HTTP, with an Apex-style wildcard.
    let a = patch(&base, json!({"deployed_classes": ["OSS/*"]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = post_callback(
        &format!("{base}/services/apexrest/OSS/callbak"),
        Some(&token),
        "y",
    )
    .await;
    assert_eq!(a.status, 200);
    let a = post_callback(&format!("{base}/services/apexrest/OSSX"), Some(&token), "z").await;
    assert_eq!(a.status, 404);

    let s = stats(&base).await;
    assert_eq!(s.apex_rejection_count("NOT_FOUND"), 2);
    assert_eq!(s.apex_rejection_count("METHOD_NOT_ALLOWED"), 1);
    assert_eq!(s.apex_rejection_count("JSON_PARSER_ERROR"), 1);
    assert_eq!(s.callbacks_received, 1);
}

/// An org without API access, and a user without access to the class, over `/_fake/config`:
/// Salesforce's 403s, each after the session check.
#[tokio::test]
async fn api_access_and_apex_class_access_refusals() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token = mint_access_token(&base).await;
    let a = patch(&base, json!({"api_disabled": true})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = post_callback(&org.callback_url(), Some(&token), "a").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()[0]["errorCode"], "API_DISABLED_FOR_ORG");
    let a = post_callback(&org.callback_url(), Some("00Dnot-live"), "b").await;
    assert_eq!(a.status, 401, "the session first");

    patch(
        &base,
        json!({"api_disabled": false, "apex_class_access_denied": true}),
    )
    .await;
    let a = post_callback(&org.callback_url(), Some(&token), "c").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()[0]["errorCode"], "FORBIDDEN");
    assert!(a.text.contains("OssCallbackResource"), "{}", a.text);
    let missing = format!("{base}/services/apexrest/OSS/other");
    assert_eq!(post_callback(&missing, Some(&token), "d").await.status, 404);

    org.set_apex_class_access_denied(false);
    assert_eq!(
        post_callback(&org.callback_url(), Some(&token), "e")
            .await
            .status,
        200
    );
    let s = stats(&base).await;
    assert_eq!(s.apex_rejection_count("API_DISABLED_FOR_ORG"), 1);
    assert_eq!(s.apex_rejection_count("FORBIDDEN"), 1);
    assert_eq!(s.callbacks_received, 1);
}

#[tokio::test]
async fn namespace_moves_the_class_under_its_prefix() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token = mint_access_token(&base).await;
    let a = patch(&base, json!({"namespace": "ONSS"})).await;
    assert_eq!(a.status, 200, "{}", a.text);

    let bare = format!("{base}/services/apexrest/OSS/callback");
    let a = post_callback(&bare, Some(&token), "1").await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.json()[0]["message"],
        "Could not find a match for URL /OSS/callback"
    );
    let prefixed = format!("{base}/services/apexrest/ONSS/OSS/callback");
    assert_eq!(org.callback_url(), prefixed);
    assert_eq!(
        post_callback(&prefixed, Some(&token), "2").await.status,
        200
    );

    let a = patch(&base, json!({"namespace": null})).await;
    assert_eq!(a.json()["namespace"], serde_json::Value::Null);
    assert_eq!(post_callback(&bare, Some(&token), "3").await.status, 200);
}

#[tokio::test]
async fn invalid_session_knob_refuses_the_next_calls_even_with_a_valid_token() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token = mint_access_token(&base).await;
    patch(&base, json!({"apex_invalid_session_next": 2})).await;
    for _ in 0..2 {
        let a = post_callback(&org.callback_url(), Some(&token), "w").await;
        assert_eq!(a.status, 401);
        assert_eq!(a.json()[0]["errorCode"], "INVALID_SESSION_ID");
    }
    assert_eq!(
        post_callback(&org.callback_url(), Some(&token), "w")
            .await
            .status,
        200
    );
    let config: FakeOrgConfig =
        serde_json::from_value(get(&format!("{base}/_fake/config")).await.json()).unwrap();
    assert_eq!(config.apex_invalid_session_next, 0);
}

#[tokio::test]
async fn apex_faults_over_http() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token = mint_access_token(&base).await;

    let a = patch(
        &base,
        json!({"apex_faults": {"fail_next": 1, "status": 503, "retry_after_s": 30}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = post_callback(&org.callback_url(), Some(&token), "f").await;
    assert_eq!(a.status, 503);
    assert_eq!(a.header("retry-after").as_deref(), Some("30"));
    assert_eq!(a.json()[0]["errorCode"], "SERVER_UNAVAILABLE");
    assert_eq!(
        post_callback(&org.callback_url(), Some(&token), "f")
            .await
            .status,
        200
    );

    patch(
        &base,
        json!({"apex_faults": {"error_rate": 1.0, "status": 429}}),
    )
    .await;
    let a = post_callback(&org.callback_url(), Some(&token), "f").await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after").as_deref(), Some("30"));
    patch(
        &base,
        json!({"apex_faults": {"error_rate": 0.0, "latency_ms": 250}}),
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(
        post_callback(&org.callback_url(), Some(&token), "f")
            .await
            .status,
        200
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));

    let s = stats(&base).await;
    assert_eq!(s.apex_rejection_count("http_503"), 1);
    assert_eq!(s.apex_rejection_count("http_429"), 1);
    assert_eq!(s.callbacks_received, 2);
    // Token endpoint faults are separate.
    assert_eq!(org.config().token_faults, Default::default());
}

#[tokio::test]
async fn config_patches_are_validated() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    for bad in [
        json!({"rotate_refresh_token": true}),
        json!({"apex_faults": {"error_rate": 1.5}}),
        json!({"token_faults": {"status": 200}}),
        json!({"session_timeout_s": "long"}),
        json!([1, 2]),
    ] {
        let a = patch(&base, bad.clone()).await;
        assert_eq!(a.status, 400, "{bad} was accepted");
        assert_eq!(a.json()["error"], "bad_request");
    }
    let a = send(http().post(format!("{base}/_fake/config")).body("{nope")).await;
    assert_eq!(a.status, 400);
    assert_eq!(org.config(), FakeOrgConfig::default(), "nothing applied");
}

#[tokio::test]
async fn knobs_over_http_drive_the_grants() {
    let org = FakeOrg::builder().start().await.unwrap();
    let base = org.base_url();
    let token_url = org.token_url();

    // A new client, and a refresh token minted for it.
    let a = post_json(
        &format!("{base}/_fake/clients"),
        json!({"client_id": "app-2", "client_secret": "s2"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json().as_array().unwrap().len(), 2);
    let a = post_json(
        &format!("{base}/_fake/refresh-tokens"),
        json!({"client_id": "app-2", "scope": "api refresh_token"}),
    )
    .await;
    assert_eq!(a.json()["scope"], "api refresh_token");
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();

    // Rotation switched on at runtime.
    patch(&base, json!({"rotate_refresh_tokens": true})).await;
    let grant = |rt: String| {
        let url = token_url.clone();
        async move {
            post_form(
                &url,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", "app-2"),
                    ("refresh_token", &rt),
                ],
            )
            .await
        }
    };
    let a = grant(rt.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["scope"], "api refresh_token");
    let rotated = a.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_oauth_error(
        &grant(rt).await,
        400,
        "invalid_grant",
        "expired access/refresh token",
    );
    assert_oauth_error(
        &grant(rotated).await,
        400,
        "invalid_grant",
        "expired access/refresh token",
    );

    // Run As user removed, login host, inactive user: each over HTTP.
    let cc = || {
        post_form(
            &token_url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "app-2"),
                ("client_secret", "s2"),
            ],
        )
    };
    patch(&base, json!({"run_as_user": null})).await;
    assert_oauth_error(
        &cc().await,
        400,
        "invalid_grant",
        "no client credentials user enabled",
    );
    patch(
        &base,
        json!({"run_as_user": "bot@example.com", "login_host": true}),
    )
    .await;
    assert_oauth_error(
        &cc().await,
        400,
        "invalid_grant",
        "request not supported on this domain",
    );
    patch(&base, json!({"login_host": false, "user_inactive": true})).await;
    assert_oauth_error(&cc().await, 400, "inactive_user", "user is inactive");
    patch(
        &base,
        json!({"user_inactive": false, "allowed_scopes": ["refresh_token"]}),
    )
    .await;
    assert_oauth_error(&cc().await, 400, "invalid_grant", "no valid scopes defined");
    patch(&base, json!({"allowed_scopes": ["api"]})).await;
    assert_eq!(cc().await.status, 200);

    let s = stats(&base).await;
    assert_eq!(s.reuse_detections, 1);
    let raw = get(&format!("{base}/_fake/stats")).await.json();
    assert_eq!(
        raw["grants"]["refresh_token"],
        json!({"ok": 1, "invalid_grant": 2})
    );
    assert_eq!(raw["grants"]["client_credentials"]["ok"], 1);
    assert_eq!(raw["grants"]["client_credentials"]["invalid_grant"], 3);

    // revoke-all kills every session, reset-stats zeroes the counters.
    let token = mint_access_token(&base).await;
    post_json(&format!("{base}/_fake/revoke-all"), json!({})).await;
    assert_eq!(
        post_callback(&org.callback_url(), Some(&token), "r")
            .await
            .status,
        401
    );
    let a = post_json(&format!("{base}/_fake/reset-stats"), json!({})).await;
    assert_eq!(a.status, 200);
    assert_eq!(stats(&base).await, FakeOrgStats::default());
    assert!(get(&format!("{base}/_fake/callbacks"))
        .await
        .json()
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn serve_derives_instance_url_from_the_host_it_is_reached_at() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(hookwarden_fake_org::serve(
        listener,
        FakeOrgConfig::default(),
    ));
    let base = format!("http://{addr}");
    let a = get(&format!("{base}/_fake/health")).await;
    assert_eq!(a.status, 200);

    let rt = post_json(&format!("{base}/_fake/refresh-tokens"), json!({}))
        .await
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = send(
        http()
            .post(format!("{base}/services/oauth2/token"))
            .header("host", format!("localhost:{}", addr.port()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "refresh_token"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("refresh_token", &rt),
            ])),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.json()["instance_url"],
        format!("http://localhost:{}", addr.port())
    );

    let a = get(&format!("{base}/services/data/v60.0/sobjects")).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()[0]["errorCode"], "NOT_FOUND");
    server.abort();
}

#[tokio::test]
async fn concurrent_callbacks_are_all_counted_and_duplicates_visible() {
    let org = FakeOrg::builder()
        .callback_log_capacity(50)
        .start()
        .await
        .unwrap();
    let token = org.issue_access_token(DEFAULT_CLIENT_ID);
    let url = org.callback_url();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (url, token) = (url.clone(), token.clone());
        // Every webhook id twice: at-least-once delivery with duplicates.
        tasks.push(tokio::spawn(async move {
            post_callback(&url, Some(&token), &format!("msg_{}", i / 2))
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let s = org.stats();
    assert_eq!(s.callbacks_received, 200);
    assert_eq!(s.unique_webhook_ids, 100);
    let kept = org.callbacks();
    assert_eq!(kept.len(), 50, "log bounded by its capacity");
    assert_eq!(kept.last().unwrap().seq, 200);
    org.shutdown().await;
}
