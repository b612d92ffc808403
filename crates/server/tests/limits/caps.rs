//! Per-account caps on connectors, API keys and pending authorizations: one more is `409
//! limit_reached` naming the setting, and removing one makes room.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn connector(key: String) -> Value {
    json!({"url": "https://acme.my.salesforce.com/services/apexrest/OSS/callback",
           "events": ["PACKAGE_COMPLETE"], "key": key, "preset": "salesforce"})
}

fn assert_limit(status: u16, body: &Value, setting: &str) {
    assert_error(status, body, 409, "limit_reached");
    assert!(
        body["message"].as_str().unwrap().contains(setting)
            && body["fix"].as_str().unwrap().contains(setting),
        "{body}"
    );
}

#[tokio::test]
async fn connectors_keys_and_pending_authorizations_are_capped_per_account() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let mut s = settings(&db, true);
        s.limits.max_connectors_per_account = 2;
        s.limits.max_keys_per_account = 3;
        s.limits.max_pending_authorizations = 2;
        let t = TestServer::start_with(s, None).await;
        let post = |name: &str| {
            t.req(Method::POST, &format!("/api/callback/connectors/{name}"))
                .json(&connector(sf_rt_key()))
        };

        // Connectors: two, then the third is refused; a replace and the default callback do
        // not count; a delete makes room.
        for name in ["first", "second"] {
            let (status, body) = json(post(name).send().await.unwrap()).await;
            assert_eq!(status, 201, "{db}: {body}");
        }
        let (status, body) = json(post("third").send().await.unwrap()).await;
        assert_limit(status, &body, "max_connectors_per_account");
        let (status, body) = json(post("first").send().await.unwrap()).await;
        assert_eq!(status, 200, "a replace is not a new connector: {body}");
        let (status, body) = json(
            t.req(Method::POST, "/api/callback")
                .json(&json!({"url": "https://hooks.example.com/cb", "key": "k", "events": ["PACKAGE_COMPLETE"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(status == 200 || status == 201, "{body}");
        // The other account has room of its own.
        let resp = t
            .req_b(Method::POST, "/api/callback/connectors/third")
            .json(&connector(sf_rt_key()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let resp = t
            .req(Method::DELETE, "/api/callback/connectors/second")
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let (status, body) = json(post("third").send().await.unwrap()).await;
        assert_eq!(status, 201, "{body}");

        // Pending authorizations: two flows begun, the third refused until a connector with
        // flows begun is deleted (its flows go with it).
        let url = |name: &str| format!("/api/callback/connectors/{name}/oauth/url");
        for name in ["first", "third"] {
            let (status, body) = json(t.req(Method::GET, &url(name)).send().await.unwrap()).await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, body) = json(t.req(Method::GET, &url("first")).send().await.unwrap()).await;
        assert_limit(status, &body, "max_pending_authorizations");
        let resp = t
            .req(Method::DELETE, "/api/callback/connectors/third")
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let (status, body) = json(t.req(Method::GET, &url("first")).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");

        // Keys: the account's first and two more, then the fourth is refused; a revocation
        // makes room.
        let new_key = || {
            t.req(Method::POST, "/api/keys")
                .json(&json!({"scopes": ["read"]}))
        };
        let mut made = Vec::new();
        for _ in 0..2 {
            let (status, body) = json(new_key().send().await.unwrap()).await;
            assert_eq!(status, 201, "{body}");
            made.push(body["id"].as_str().unwrap().to_owned());
        }
        let (status, body) = json(new_key().send().await.unwrap()).await;
        assert_limit(status, &body, "max_keys_per_account");
        let resp = t
            .req(Method::DELETE, &format!("/api/keys/{}", made[0]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let (status, body) = json(new_key().send().await.unwrap()).await;
        assert_eq!(status, 201, "{body}");
        t.server.shutdown().await.unwrap();
    }
}
