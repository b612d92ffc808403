//! The connector registration API over HTTP, on SQLite and (when configured) PostgreSQL.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn salesforce_connector_lifecycle() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let path = "/api/callback/connectors/salesforceOauth2";
        let body = json!({
            "url": "https://acme.my.salesforce.com/services/apexrest/OSS/callback",
            "events": ["PACKAGE_COMPLETE", "PACKAGE_CREATE"],
            "key": sf_cc_key(),
        });
        let (status, created) =
            json(t.req(Method::POST, path).json(&body).send().await.unwrap()).await;
        assert_eq!(status, 201, "{db}: {created}");
        assert_eq!(created["name"], "salesforceOauth2");
        assert_eq!(created["flow"], "client_credentials");
        assert_eq!(created["status"], "active");
        assert_eq!(created["origins"], json!(["OSS"]));
        assert_eq!(
            created["events"],
            json!(["PACKAGE_COMPLETE", "PACKAGE_CREATE"])
        );
        assert_eq!(created["key"]["client_secret"], "****6789");
        assert_eq!(created["key"]["client_id"], "3MVG9ClientIdForTests");
        assert_eq!(created["warnings"], json!([]));
        let signing = created["signing_secret"].as_str().unwrap().to_owned();
        assert!(
            signing.starts_with("whsec_") && signing.len() > 40,
            "{signing}"
        );

        // GET shows the same, the signing secret masked, and never a secret.
        let resp = t.req(Method::GET, path).send().await.unwrap();
        let text = resp.text().await.unwrap();
        assert!(!text.contains("CcSecretValue"), "{text}");
        assert!(!text.contains(&signing[6..]), "{text}");
        let got: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(got["url"], body["url"]);
        assert!(got["signing_secret"].as_str().unwrap().starts_with("****"));

        // Replace with a refresh-token key: 200, same signing secret, new flow.
        let (status, replaced) = json(
            t.req(Method::POST, path)
                .json(&json!({"url": body["url"], "events": ["PACKAGE_COMPLETE"], "key": sf_rt_key()}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{replaced}");
        assert_eq!(replaced["flow"], "refresh_token");
        assert_eq!(replaced["key"]["refresh_token"], "****cdef");
        assert_eq!(replaced["signing_secret"], got["signing_secret"]);
        assert_eq!(replaced["credentials_version"], 2);

        // PATCH only the events; PUT the whole thing.
        let (status, patched) = json(
            t.req(Method::PATCH, path)
                .json(&json!({"events": ["DOCUMENT_SIGNED"], "owner": "ops@acme.test"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["events"], json!(["DOCUMENT_SIGNED"]));
        assert_eq!(patched["owner"], "ops@acme.test");
        assert_eq!(patched["flow"], "refresh_token");
        assert_eq!(
            patched["credentials_version"], 2,
            "no key, no credential change"
        );

        let (status, put) = json(
            t.req(Method::PUT, path)
                .json(&json!({"url": body["url"], "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key(), "ordering": "per_package"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{put}");
        assert_eq!(put["ordering"], "per_package");
        assert_eq!(put["owner"], Value::Null, "PUT replaces in full");

        // Listed, then deleted, then gone.
        let (_, list) = json(
            t.req(Method::GET, "/api/callback/connectors")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list["connectors"].as_array().unwrap().len(), 1);
        let resp = t.req(Method::DELETE, path).send().await.unwrap();
        assert_eq!(resp.status(), 204);
        let (status, gone) = json(t.req(Method::GET, path).send().await.unwrap()).await;
        assert_error(status, &gone, 404, "not_found");
        let (status, gone) = json(t.req(Method::DELETE, path).send().await.unwrap()).await;
        assert_error(status, &gone, 404, "not_found");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn dynamics_and_generic_connectors() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let dynamics_key = b64(
            &json!({"tenant": "contoso.onmicrosoft.com", "client_id": "app-id", "client_secret": "dyn-secret-value-0000", "scope": "https://contoso.crm.dynamics.com/.default"}),
        );
        let (status, dynamics) = json(
            t.req(Method::POST, "/api/callback/connectors/dynamicsOauth2")
                .json(&json!({"url": "https://contoso.crm.dynamics.com/api/hooks", "events": ["PACKAGE_COMPLETE"], "key": dynamics_key}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{dynamics}");
        assert_eq!(dynamics["preset"], "dynamics");
        assert_eq!(dynamics["origins"], json!(["*"]));
        assert_eq!(dynamics["flow"], "client_credentials");

        // Dynamics without a tenant is refused, naming the field.
        let no_tenant =
            b64(&json!({"client_id": "app-id", "client_secret": "dyn-secret-value-0000"}));
        let (status, err) = json(
            t.req(Method::POST, "/api/callback/connectors/dynamicsOauth2")
                .json(
                    &json!({"url": "https://contoso.crm.dynamics.com/api/hooks", "key": no_tenant}),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{err}");
        assert!(err["message"].as_str().unwrap().contains("tenant"), "{err}");

        // A generic connector needs token_url.
        let generic_key = b64(
            &json!({"token_url": "https://auth.example.com/oauth/token", "client_id": "c", "client_secret": "generic-secret-0000"}),
        );
        let (status, generic) = json(
            t.req(Method::POST, "/api/callback/connectors/my-erp_1")
                .json(&json!({"url": "https://erp.example.com/hooks", "events": ["PACKAGE_COMPLETE"], "key": generic_key, "origins": ["OSS", "API"], "retry": {"schedule_s": [1, 10], "jitter": 0.1}, "max_per_second": 50.0, "max_concurrency": 4}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{generic}");
        assert_eq!(generic["preset"], "generic");
        assert_eq!(generic["origins"], json!(["OSS", "API"]));
        assert_eq!(generic["retry"]["schedule_s"], json!([1, 10]));
        assert_eq!(generic["max_concurrency"], 4);
        let no_token_url = b64(&json!({"client_id": "c", "client_secret": "generic-secret-0000"}));
        let (status, err) = json(
            t.req(Method::POST, "/api/callback/connectors/other")
                .json(&json!({"url": "https://erp.example.com/hooks", "key": no_token_url}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{err}");
        assert!(
            err["message"].as_str().unwrap().contains("token_url"),
            "{err}"
        );

        // PATCH {"key"} rotates credentials and bumps the version.
        let rotated = b64(
            &json!({"token_url": "https://auth.example.com/oauth/token", "client_id": "c", "client_secret": "rotated-secret-9999"}),
        );
        let (status, patched) = json(
            t.req(Method::PATCH, "/api/callback/connectors/my-erp_1")
                .json(&json!({"key": rotated}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["key"]["client_secret"], "****9999");
        assert_eq!(patched["credentials_version"], 2);
        assert_eq!(patched["events"], json!(["PACKAGE_COMPLETE"]));

        let (_, list) = json(
            t.req(Method::GET, "/api/callback/connectors")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let names: Vec<&str> = list["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["dynamicsOauth2", "my-erp_1"]);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn default_callback_lifecycle() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let (status, missing) =
            json(t.req(Method::GET, "/api/callback").send().await.unwrap()).await;
        assert_error(status, &missing, 404, "not_found");
        let (status, created) = json(
            t.req(Method::POST, "/api/callback")
                .json(&json!({"url": "https://hooks.acme.test/esign", "key": "my-basic-callback-key-1234", "events": ["PACKAGE_COMPLETE"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["key"], "****1234");
        assert!(created["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"));
        let (status, got) = json(t.req(Method::GET, "/api/callback").send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(got["url"], "https://hooks.acme.test/esign");
        assert_eq!(got["events"], json!(["PACKAGE_COMPLETE"]));
        // The default callback is not one of the listed connectors.
        let (_, list) = json(
            t.req(Method::GET, "/api/callback/connectors")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list["connectors"], json!([]));
        let (status, replaced) = json(
            t.req(Method::POST, "/api/callback")
                .json(
                    &json!({"url": "https://hooks.acme.test/v2", "key": "another-basic-key-5678"}),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{replaced}");
        assert!(replaced["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("****"));
        let (status, err) = json(
            t.req(Method::POST, "/api/callback")
                .json(&json!({"url": "https://hooks.acme.test/v2", "key": ""}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 400, "invalid_callback_key");
        assert_eq!(
            t.req(Method::DELETE, "/api/callback")
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        assert_eq!(
            t.req(Method::DELETE, "/api/callback")
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn api_keys_are_required_and_accounts_are_isolated() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let path = "/api/callback/connectors/salesforceOauth2";
        let body = json!({"url": "https://acme.my.salesforce.com/services/apexrest/OSS/callback", "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()});

        let resp = t.http.get(t.url(path)).send().await.unwrap();
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Basic realm=\"hookwarden\""
        );
        let (status, err) = json(resp).await;
        assert_error(status, &err, 401, "unauthorized");
        for header in ["Basic wrong-key", "Bearer whatever", "Basic", "", "Basic  "] {
            let (status, err) = json(
                t.http
                    .get(t.url(path))
                    .header("Authorization", header)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_error(status, &err, 401, "unauthorized");
        }
        // HTTP Basic libraries send base64("key:"); that works too.
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{}:", t.key_a));
        let resp = t
            .http
            .get(t.url("/api/callback/connectors"))
            .header("Authorization", format!("Basic {pair}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);

        assert_eq!(
            t.req(Method::POST, path)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        // Account B sees nothing of A's, and cannot change or delete it.
        let (status, err) = json(t.req_b(Method::GET, path).send().await.unwrap()).await;
        assert_error(status, &err, 404, "not_found");
        let (status, err) = json(
            t.req_b(Method::PATCH, path)
                .json(&json!({"events": []}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 404, "not_found");
        let (status, err) = json(t.req_b(Method::DELETE, path).send().await.unwrap()).await;
        assert_error(status, &err, 404, "not_found");
        let (status, err) = json(
            t.req_b(Method::POST, &format!("{path}/signing-secret/rotate"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 404, "not_found");
        let (_, list) = json(
            t.req_b(Method::GET, "/api/callback/connectors")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list["connectors"], json!([]));
        // B registering the same name makes B's own connector, A's is untouched.
        let (status, b_created) = json(
            t.req_b(Method::POST, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{b_created}");
        let (_, a_got) = json(t.req(Method::GET, path).send().await.unwrap()).await;
        assert_eq!(a_got["credentials_version"], 1);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn signing_secret_rotation_returns_the_new_secret_once() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    let path = "/api/callback/connectors/salesforceOauth2";
    let (_, created) = json(
        t.req(Method::POST, path)
            .json(&json!({"url": "https://acme.my.salesforce.com/services/apexrest/OSS/callback", "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (status, rotated) = json(
        t.req(Method::POST, &format!("{path}/signing-secret/rotate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let fresh = rotated["signing_secret"].as_str().unwrap();
    assert!(fresh.starts_with("whsec_"));
    assert_ne!(fresh, created["signing_secret"].as_str().unwrap());
    let (_, got) = json(t.req(Method::GET, path).send().await.unwrap()).await;
    assert_eq!(
        got["signing_secret"],
        format!("****{}", &fresh[fresh.len() - 4..])
    );
}

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

#[tokio::test]
async fn health_and_openapi() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    let (status, health) = json(t.http.get(t.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "sqlite");
    let (status, doc) = json(t.http.get(t.url("/api/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for p in [
        "/api/events",
        "/api/events/batch",
        "/api/deliveries",
        "/api/deliveries/{id}",
        "/api/deliveries/{id}/retry",
        "/api/callback/connectors/{name}/replay",
        "/api/callback/connectors/{name}/test",
        "/api/callback/connectors/{name}/revoke",
        "/api/callback/connectors/{name}/token",
        "/api/callback/connectors/{name}/oauth/url",
        "/api/callback/connectors/{name}/history",
        "/oauth/callback",
        "/api/callback/connectors/{name}",
        "/api/callback/connectors",
        "/api/callback",
        "/api/callback/connectors/{name}/signing-secret/rotate",
        "/healthz",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/api/callback/connectors/{name}"]["patch"].is_object());
    assert!(doc["components"]["schemas"]["ConnectorIn"].is_object());
    let metrics = t.http.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_and_a_revoked_key_is_refused_at_once() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let with = |key: &str, method: reqwest::Method, path: &str| {
            t.http
                .request(method, t.url(path))
                .header("Authorization", format!("Basic {key}"))
        };
        // One key to start with, the one in use.
        let (status, list) = json(
            t.req(reqwest::Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{list}");
        let keys = list["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{list}");
        assert_eq!(keys[0]["current"], true);
        let first_id = keys[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(first_id.len(), 16);
        assert!(
            !list.to_string().contains(&t.key_a),
            "a key is never listed"
        );

        // The only key cannot be revoked.
        let (status, err) = json(
            t.req(reqwest::Method::DELETE, &format!("/api/keys/{first_id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 409, "last_api_key");

        // A second key, shown once, works at once.
        let (status, created) = json(
            t.req(reqwest::Method::POST, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let second = created["api_key"].as_str().unwrap().to_owned();
        let second_id = created["id"].as_str().unwrap().to_owned();
        assert!(second.starts_with("hwk_"));
        let (status, list) = json(
            with(&second, reqwest::Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let ids: Vec<(String, bool)> = list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["id"].as_str().unwrap().to_owned(), k["current"] == true))
            .collect();
        assert_eq!(
            ids,
            vec![(first_id.clone(), false), (second_id.clone(), true)]
        );

        // The first key (cached as valid by the requests above) is revoked with the second,
        // and refused from the next request on.
        let resp = with(
            &second,
            reqwest::Method::DELETE,
            &format!("/api/keys/{first_id}"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 204);
        let (status, err) = json(
            t.req(reqwest::Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 401, "unauthorized");

        // Another account's key id is not this account's to revoke; nor is garbage.
        let (_, b_list) = json(
            t.req_b(reqwest::Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let b_id = b_list["keys"][0]["id"].as_str().unwrap().to_owned();
        for id in [b_id.as_str(), "not-a-key-id", "0123456789abcdef"] {
            let (status, err) = json(
                with(&second, reqwest::Method::DELETE, &format!("/api/keys/{id}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_error(status, &err, 404, "not_found");
        }
        let (status, _) = json(
            t.req_b(reqwest::Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "account B's key still works");
        t.server.shutdown().await.unwrap();
    }
}
