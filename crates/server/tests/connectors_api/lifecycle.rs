//! A connector's life: Salesforce, Dynamics and generic connectors and the default callback
//! registered, replaced, patched, listed and deleted; the signing secret rotated.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

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
        let (status, deleted) = json(t.req(Method::DELETE, path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{deleted}");
        // It never had a token: nothing was live at the provider.
        assert_eq!(deleted["provider_confirmed"], true, "{deleted}");
        assert!(
            deleted["detail"]
                .as_str()
                .unwrap()
                .contains("no token was held"),
            "{deleted}"
        );
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

/// A connector shows when its credentials and signing secret last changed, and carries the
/// org's refresh-token idle policy: given at registration, changed or removed (0) by PATCH,
/// refused past ten years.
#[tokio::test]
async fn credential_times_and_the_refresh_token_idle_policy() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let path = "/api/callback/connectors/salesforceOauth2";
        let url = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
        let (status, created) = json(
            t.req(Method::POST, path)
                .json(&json!({"url": url, "key": sf_rt_key(), "refresh_token_idle_days": 30}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{db}: {created}");
        assert_eq!(created["refresh_token_idle_days"], 30);
        assert_eq!(created["credentials_changed_at"], created["created_at"]);
        assert_eq!(created["signing_secret_changed_at"], created["created_at"]);

        // Settings that are not the key leave the credentials' time alone.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (status, patched) = json(
            t.req(Method::PATCH, path)
                .json(&json!({"owner": "ops@acme.example", "refresh_token_idle_days": 90}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["refresh_token_idle_days"], 90);
        assert_eq!(
            patched["credentials_changed_at"],
            created["credentials_changed_at"]
        );

        // A new key moves it.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (status, rekeyed) = json(
            t.req(Method::PATCH, path)
                .json(&json!({"key": sf_cc_key(), "refresh_token_idle_days": 0}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{rekeyed}");
        assert_eq!(
            rekeyed["refresh_token_idle_days"],
            Value::Null,
            "0 removes it"
        );
        let at = |v: &Value, field: &str| {
            chrono::DateTime::parse_from_rfc3339(v[field].as_str().unwrap()).unwrap()
        };
        assert!(
            at(&rekeyed, "credentials_changed_at") > at(&created, "credentials_changed_at"),
            "{rekeyed}"
        );

        for bad in [json!(3651), json!(-1), json!("30")] {
            let (status, body) = json(
                t.req(Method::PATCH, path)
                    .json(&json!({ "refresh_token_idle_days": bad }))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body["fix"].is_string(), "{body}");
        }
        let (status, got) = json(t.req(Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(
            got["credentials_changed_at"],
            rekeyed["credentials_changed_at"]
        );
    }
}
