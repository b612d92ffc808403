//! Who may call the API: API keys required, created, listed and revoked, accounts kept apart;
//! and what answers without a key: health and the OpenAPI document (not metrics: the
//! operator's, see the limits tests).

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn api_keys_are_required_and_accounts_are_isolated() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let path = "/api/callback/connectors/salesforceOauth2";
        let body = json!({"url": "https://acme.my.salesforce.com/services/apexrest/OSS/callback", "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()});

        // No browser ambient credentials: a 401 never asks a browser for Basic credentials
        // (it would cache the key and send it cross-site).
        let resp = t.http.get(t.url(path)).send().await.unwrap();
        assert!(resp.headers().get("www-authenticate").is_none());
        let (status, err) = json(resp).await;
        assert_error(status, &err, 401, "unauthorized");
        for header in ["Basic wrong-key", "Bearer whatever", "Basic", "", "Basic  "] {
            let resp = t
                .http
                .get(t.url(path))
                .header("Authorization", header)
                .send()
                .await
                .unwrap();
            assert!(
                resp.headers().get("www-authenticate").is_none(),
                "{header}: {:?}",
                resp.headers()
            );
            let (status, err) = json(resp).await;
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
                .json(&json!({"scopes": ["admin"]}))
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
        // Keys made in the same millisecond list in either order.
        let mut ids: Vec<(String, bool)> = list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["id"].as_str().unwrap().to_owned(), k["current"] == true))
            .collect();
        ids.sort();
        let mut want = vec![(first_id.clone(), false), (second_id.clone(), true)];
        want.sort();
        assert_eq!(ids, want);

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
        "/metrics",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/api/callback/connectors/{name}"]["patch"].is_object());
    // A parameter "in": "path" is a segment of its path; query parameters say "query".
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for p in operation["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                assert_eq!(
                    p["in"] == "path",
                    path.contains(&format!("{{{name}}}")),
                    "{method} {path}: parameter {name} is in {}",
                    p["in"]
                );
            }
        }
    }
    assert_eq!(
        doc,
        serde_json::to_value(hookwarden_server::openapi()).unwrap(),
        "the document served is hookwarden_server::openapi()"
    );
    assert!(doc["components"]["schemas"]["ConnectorIn"].is_object());
    // Per-connector labels are the operator's: no API key reads them.
    let (status, body) = json(t.req(Method::GET, "/metrics").send().await.unwrap()).await;
    assert_error(status, &body, 401, "unauthorized");
}
