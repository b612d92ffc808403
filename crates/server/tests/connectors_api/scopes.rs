//! What each scope may do: every operation of the OpenAPI document against a key of each
//! scope (so a route added without a scope fails here), a connector that only an admin key can
//! change, and keys made, listed and revoked with their scopes.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const SCOPES: [&str; 3] = ["ingest", "read", "admin"];

/// A new key of account A with these scopes, made over the API with A's admin key.
async fn key_with(t: &TestServer, scopes: &[&str], name: Option<&str>) -> (String, Value) {
    let mut body = json!({ "scopes": scopes });
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    let (status, created) = json(
        t.req(Method::POST, "/api/keys")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (created["api_key"].as_str().unwrap().to_owned(), created)
}

fn with(t: &TestServer, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    t.http
        .request(method, t.url(path))
        .header("Authorization", format!("Basic {key}"))
}

/// The scope DESIGN.md gives a route: ingest posts events, read every GET except one that
/// starts something, admin the rest.
fn contract(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("post", "/api/events" | "/api/events/batch") => "ingest",
        ("get", p) if p.ends_with("/oauth/url") => "admin",
        ("get", _) => "read",
        _ => "admin",
    }
}

/// A `403 insufficient_scope` naming `scope`, in the error's documented shape.
fn assert_insufficient(status: u16, body: &Value, scope: &str, what: &str) {
    assert_error(status, body, 403, "insufficient_scope");
    assert_eq!(body["required_scope"], scope, "{what}: {body}");
    assert!(
        body["message"].as_str().unwrap().contains(scope),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn each_scope_against_each_operation_of_the_document() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    let mut keys = Vec::new();
    for scope in SCOPES {
        keys.push((scope, key_with(&t, &[scope], None).await.0));
    }
    let (status, doc) = json(t.http.get(t.url("/api/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"], "basic",
        "{}",
        doc["components"]["securitySchemes"]
    );

    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            if path == "/metrics" {
                // The operator's, not an account's: a bearer token of the configuration.
                assert_eq!(
                    operation["security"],
                    json!([{ "metrics_token": [] }]),
                    "{what}"
                );
                continue;
            }
            if !path.starts_with("/api/") {
                // Open: the provider's redirect and health checks carry no key.
                assert!(operation.get("security").is_none(), "{what} is open");
                continue;
            }
            let declared = operation["security"][0]["api_key"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{what} declares no scope: {operation}"));
            assert_eq!(
                operation["security"],
                json!([{ "api_key": [declared] }]),
                "{what}: one scope"
            );
            assert_eq!(declared, contract(method, path), "{what}");
            assert!(
                operation["responses"]["403"].is_object(),
                "{what} documents its 403"
            );

            let concrete = path
                .replace("{name}", "salesforceOauth2")
                .replace("{id}", "0123456789abcdef");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (scope, key) in &keys {
                let mut request = with(&t, key, method.clone(), &concrete);
                if [Method::POST, Method::PUT, Method::PATCH].contains(&method) {
                    request = request.json(&json!({}));
                }
                let (status, body) = json(request.send().await.unwrap()).await;
                let allowed = *scope == "admin" || *scope == declared;
                if allowed {
                    assert!(
                        status != 401 && status != 403,
                        "{what} with a {scope} key: {status} {body}"
                    );
                } else {
                    assert_insufficient(status, &body, declared, &format!("{what}, {scope} key"));
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 3 * 25,
        "only {checked} requests: is the document whole?"
    );
    t.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn read_and_ingest_keys_cannot_change_a_connector() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let path = "/api/callback/connectors/salesforceOauth2";
        let url = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
        let (status, created) = json(
            t.req(Method::POST, path)
                .json(&json!({"url": url, "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let (read, _) = key_with(&t, &["read"], Some("dashboard")).await;
        let (ingest, _) = key_with(&t, &["ingest"], Some("producer")).await;
        let elsewhere = json!({"url": "https://evil.example.com/collect"});

        for key in [&read, &ingest] {
            let changes = [
                (Method::PATCH, path.to_owned(), Some(elsewhere.clone())),
                (
                    Method::PUT,
                    path.to_owned(),
                    Some(
                        json!({"url": "https://evil.example.com/collect", "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()}),
                    ),
                ),
                (
                    Method::POST,
                    path.to_owned(),
                    Some(
                        json!({"url": "https://evil.example.com/collect", "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()}),
                    ),
                ),
                (Method::DELETE, path.to_owned(), None),
                (Method::POST, format!("{path}/revoke"), None),
                (Method::POST, format!("{path}/signing-secret/rotate"), None),
                (Method::POST, format!("{path}/token"), None),
                (Method::GET, format!("{path}/oauth/url"), None),
            ];
            for (method, at, body) in changes {
                let what = format!("{method} {at}");
                let mut request = with(&t, key, method, &at);
                if let Some(body) = body {
                    request = request.json(&body);
                }
                let (status, err) = json(request.send().await.unwrap()).await;
                assert_insufficient(status, &err, "admin", &what);
            }
        }
        // Nothing changed: same url, same credentials, still active; the read key may look.
        let (status, got) = json(with(&t, &read, Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["url"], url);
        assert_eq!(got["status"], "active");
        assert_eq!(got["credentials_version"], created["credentials_version"]);
        let (status, err) = json(with(&t, &ingest, Method::GET, path).send().await.unwrap()).await;
        assert_insufficient(status, &err, "read", "GET with an ingest key");
        // The admin key can.
        let (status, patched) = json(
            t.req(Method::PATCH, path)
                .json(&json!({"events": ["PACKAGE_COMPLETE", "PACKAGE_CREATE"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn keys_are_made_with_scopes_and_a_name_and_the_last_admin_key_stays() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let (ingest, created) = key_with(&t, &["ingest"], Some("producer-eu")).await;
        assert_eq!(created["scopes"], json!(["ingest"]), "{created}");
        assert_eq!(created["name"], "producer-eu", "{created}");
        assert!(ingest.starts_with("hwk_"));
        let ingest_id = created["id"].as_str().unwrap().to_owned();
        let (read, created) = key_with(&t, &["read", "ingest"], None).await;
        assert_eq!(created["scopes"], json!(["ingest", "read"]), "{created}");
        assert_eq!(created["name"], Value::Null);

        // Listed with scopes, names and last use; the key in use is `current`.
        let (status, list) = json(
            with(&t, &read, Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{list}");
        let listed: Vec<(Value, Value, bool)> = list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                assert!(k.get("last_used_at").is_some(), "{k}");
                (k["name"].clone(), k["scopes"].clone(), k["current"] == true)
            })
            .collect();
        assert_eq!(listed.len(), 3, "{list}");
        for expected in [
            (Value::Null, json!(["admin"]), false),
            (json!("producer-eu"), json!(["ingest"]), false),
            (Value::Null, json!(["ingest", "read"]), true),
        ] {
            assert!(listed.contains(&expected), "{expected:?} in {list}");
        }

        // What a key may not ask for, with the valid scopes named.
        for (body, code) in [
            (None, "scopes_required"),
            (Some(json!({})), "scopes_required"),
            (Some(json!({"scopes": []})), "scopes_required"),
            (Some(json!({"scopes": ["write"]})), "invalid_api_key_scope"),
            (
                Some(json!({"scopes": ["read"], "name": "two\nlines"})),
                "invalid_api_key_name",
            ),
        ] {
            let mut request = t.req(Method::POST, "/api/keys");
            if let Some(body) = &body {
                request = request.json(body);
            }
            let (status, err) = json(request.send().await.unwrap()).await;
            assert_error(status, &err, 400, code);
            if code != "invalid_api_key_name" {
                assert!(
                    err["fix"].as_str().unwrap().contains("ingest, read, admin"),
                    "{err}"
                );
            }
        }
        // Only an admin key makes or revokes keys.
        for key in [&read, &ingest] {
            let (status, err) = json(
                with(&t, key, Method::POST, "/api/keys")
                    .json(&json!({"scopes": ["admin"]}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_insufficient(status, &err, "admin", "POST /api/keys");
            let (status, err) = json(
                with(&t, key, Method::DELETE, &format!("/api/keys/{ingest_id}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_insufficient(status, &err, "admin", "DELETE /api/keys/{id}");
        }
        // The ingest key posts events and reads nothing.
        let (status, accepted) = json(
            with(&t, &ingest, Method::POST, "/api/events")
                .json(&json!({"name": "PACKAGE_COMPLETE", "packageId": "pkg-1", "origin": "OSS"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
        let (status, err) = json(
            with(&t, &ingest, Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_insufficient(status, &err, "read", "GET /api/keys with an ingest key");

        // The only admin key stays, whatever other keys there are; with a second one it goes.
        let admin_id = list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["scopes"] == json!(["admin"]))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, err) = json(
            t.req(Method::DELETE, &format!("/api/keys/{admin_id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 409, "last_api_key");
        assert!(err["message"].as_str().unwrap().contains("admin"), "{err}");
        let (second_admin, _) = key_with(&t, &["admin"], Some("ops")).await;
        let resp = with(
            &t,
            &second_admin,
            Method::DELETE,
            &format!("/api/keys/{admin_id}"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 204);
        let resp = with(
            &t,
            &second_admin,
            Method::DELETE,
            &format!("/api/keys/{ingest_id}"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 204);
        let (status, err) = json(
            with(&t, &ingest, Method::POST, "/api/events")
                .json(&json!({"name": "PACKAGE_COMPLETE", "packageId": "pkg-2", "origin": "OSS"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 401, "unauthorized");
        t.server.shutdown().await.unwrap();
    }
}
