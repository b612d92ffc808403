//! What the API refuses, with a JSON error naming what is wrong, and what it tolerates, with a
//! warning saying so.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn bad_input_gets_a_json_error_naming_what_is_wrong() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start_with(settings(&urls[0], false), None).await;
    let path = "/api/callback/connectors/salesforceOauth2";
    let good_url = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"url": good_url, "key": "not base64 !!!"}),
            400,
            "key_not_base64",
            "key",
        ),
        (
            json!({"url": good_url, "key": b64(&json!({"host": "acme.my.salesforce.com"}))}),
            400,
            "key_missing_client_id",
            "client_id",
        ),
        (
            json!({"url": good_url, "key": b64(&json!({"host": "login.salesforce.com", "client_id": "x", "client_secret": "y"}))}),
            400,
            "key_client_credentials_on_login_host",
            "login.salesforce.com",
        ),
        (
            json!({"url": good_url, "key": b64(&json!({"host": "acme.my.salesforce.com", "client_id": "x", "client_secret": "y", "scope": "api refresh_token"}))}),
            400,
            "key_scope_forbidden",
            "scope",
        ),
        (
            json!({"url": "http://acme.my.salesforce.com/services/apexrest/OSS/callback", "key": sf_cc_key()}),
            400,
            "url_not_https",
            "https",
        ),
        (
            json!({"url": "https://169.254.169.254/latest", "key": sf_cc_key()}),
            400,
            "url_address_refused",
            "169.254.169.254",
        ),
        (
            json!({"url": "https://user:pw@acme.my.salesforce.com/services/apexrest/OSS/callback", "key": sf_cc_key()}),
            400,
            "url_has_userinfo",
            "url",
        ),
        (
            json!({"url": "not a url", "key": sf_cc_key()}),
            400,
            "url_not_absolute",
            "url",
        ),
        (
            json!({"url": good_url, "key": sf_cc_key(), "events": ["package complete"]}),
            400,
            "invalid_event_name",
            "events",
        ),
        (
            json!({"url": good_url, "key": sf_cc_key(), "retry": {"schedule_s": [], "jitter": 0.2}}),
            400,
            "invalid_retry",
            "retry",
        ),
        (
            json!({"url": good_url, "key": sf_cc_key(), "max_concurrency": 0}),
            400,
            "invalid_concurrency",
            "max_concurrency",
        ),
        (
            json!({"url": good_url, "key": sf_cc_key(), "origins": []}),
            400,
            "invalid_origins",
            "origins",
        ),
        (json!({"url": good_url}), 400, "invalid_body", "key"),
        (
            json!({"url": 42, "key": sf_cc_key()}),
            400,
            "invalid_body",
            "url",
        ),
        (
            json!({"url": good_url, "key": sf_cc_key(), "ordering": "random"}),
            400,
            "invalid_body",
            "ordering",
        ),
    ];
    for (body, want_status, want_code, mentions) in cases {
        let (status, err) = json(t.req(Method::POST, path).json(&body).send().await.unwrap()).await;
        assert_error(status, &err, want_status, want_code);
        assert!(
            err["message"].as_str().unwrap().contains(mentions),
            "{want_code}: {err} should mention {mentions}"
        );
        assert!(!err.to_string().contains("CcSecretValue"), "{err}");
    }

    // The framework's own rejections are JSON in the same shape.
    let (status, err) = json(
        t.req(Method::POST, path)
            .header("content-type", "application/json")
            .body("{\"url\":")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 400, "malformed_json");
    let (status, err) = json(t.req(Method::POST, path).body("{}").send().await.unwrap()).await;
    assert_error(status, &err, 415, "unsupported_media_type");
    let huge = format!("{{\"url\":\"{}\",\"key\":\"x\"}}", "a".repeat(300 * 1024));
    let (status, err) = json(
        t.req(Method::POST, path)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 413, "body_too_large");
    let (status, err) = json(
        t.req(Method::POST, "/api/callback/connectors/bad%20name")
            .json(&json!({"url": good_url, "key": sf_cc_key()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 400, "invalid_connector_name");
    let (status, err) = json(
        t.req(Method::GET, "/api/nothing-here")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 404, "no_such_endpoint");
    let (status, err) = json(
        t.req(Method::PUT, "/api/callback/connectors")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 405, "method_not_allowed");
    let (status, err) = json(
        t.req(Method::PUT, "/api/callback/connectors/never-made")
            .json(&json!({"url": good_url, "key": sf_cc_key()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 404, "not_found");
}

#[tokio::test]
async fn warnings_say_what_was_tolerated() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    // A line-wrapped key (base64 without -w 0), a URL outside /services/apexrest/, an unknown field.
    let key = sf_cc_key();
    let wrapped: String = key
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let (status, created) = json(
        t.req(Method::POST, "/api/callback/connectors/salesforceOauth2")
            .json(&json!({"url": "https://acme.my.salesforce.com/hooks", "events": ["PACKAGE_COMPLETE"], "key": wrapped, "colour": "blue"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let warnings = created["warnings"].to_string();
    assert!(warnings.contains("line break"), "{warnings}");
    assert!(warnings.contains("/services/apexrest/"), "{warnings}");
    assert!(warnings.contains("colour"), "{warnings}");
}
