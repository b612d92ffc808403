//! The endpoints' API: add (secret once), list (never the secret), test, their deliveries,
//! delete; bad input; scopes; accounts apart; endpoints are not connectors.

use reqwest::Method;
use serde_json::{json, Value};

use super::support::{each_database, json_of, Harness};
use super::{add_endpoint, notices};

async fn call(h: &Harness, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = h.req(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    json_of(req.send().await.unwrap()).await
}

fn assert_problem(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want, Some(code)),
        "{body}"
    );
    assert!(
        body["fix"].as_str().is_some_and(|f| !f.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn endpoints_are_added_listed_tested_and_deleted() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        let (s, added) = call(
            &h,
            Method::POST,
            "/api/notifications",
            Some(json!({"url": h.receiver.url("/notify?token=abcdef123456")})),
        )
        .await;
        assert_eq!(s, 201, "{added}");
        let id = added["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("ntf_"), "{added}");
        let secret = added["signing_secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{added}");
        assert_eq!(added["format"], "standard");
        assert_eq!(
            added["types"],
            json!([
                "connector.needs_reauth",
                "connector.revoked",
                "connector.recovered",
                "connector.disabled",
                "connector.failing",
                "delivery.failed",
                "credential.expiring"
            ])
        );
        assert!(
            !added["url"].as_str().unwrap().contains("abcdef123456"),
            "masked: {added}"
        );

        let (s, list) = call(&h, Method::GET, "/api/notifications", None).await;
        assert_eq!(s, 200);
        let all = list["notifications"].as_array().unwrap();
        assert_eq!(all.len(), 1, "{list}");
        assert_eq!(all[0]["id"], id.as_str());
        assert!(
            all[0]["signing_secret"].is_null(),
            "never the secret again: {list}"
        );
        assert!(!list.to_string().contains(&secret));

        // Not a connector.
        let (_, connectors) = call(&h, Method::GET, "/api/callback/connectors", None).await;
        assert!(!connectors.to_string().contains("@notify"), "{connectors}");

        // The test notification, whatever the types, verified by the official verifier.
        let (s, test) = call(
            &h,
            Method::POST,
            &format!("/api/notifications/{id}/test"),
            None,
        )
        .await;
        assert_eq!(s, 202, "{test}");
        let delivery = test["delivery_id"].as_str().unwrap().to_owned();
        h.engine.run_until_idle().await.unwrap();
        let got = notices(&h, "/notify", &secret);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, delivery, "the webhook-id is the delivery's id");
        assert_eq!(got[0].1["type"], "notification.test");
        let (s, page) = call(
            &h,
            Method::GET,
            &format!("/api/notifications/{id}/deliveries"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{page}");
        let ds = page["deliveries"].as_array().unwrap();
        assert_eq!(ds.len(), 1, "{page}");
        assert_eq!(ds[0]["id"], delivery.as_str());
        assert_eq!(ds[0]["status"], "delivered");
        assert_eq!(
            ds[0]["attempts"][0]["status_code"], 200,
            "its attempts: {page}"
        );
        let (s, _) = call(
            &h,
            Method::GET,
            &format!("/api/notifications/{id}/deliveries?status=failed"),
            None,
        )
        .await;
        assert_eq!(s, 200);

        // Another account sees none of it.
        let other = h
            .http
            .get(format!("{}/api/notifications", h.base))
            .header("Authorization", format!("Basic {}", h.key_b))
            .send()
            .await
            .unwrap();
        let (_, other) = json_of(other).await;
        assert_eq!(other["notifications"], json!([]));
        let other = h
            .http
            .post(format!("{}/api/notifications/{id}/test", h.base))
            .header("Authorization", format!("Basic {}", h.key_b))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404);

        let (s, _) = call(
            &h,
            Method::DELETE,
            &format!("/api/notifications/{id}"),
            None,
        )
        .await;
        assert_eq!(s, 204);
        let (s, gone) = call(
            &h,
            Method::DELETE,
            &format!("/api/notifications/{id}"),
            None,
        )
        .await;
        assert_problem(s, &gone, 404, "not_found");
        let (s, gone) = call(
            &h,
            Method::POST,
            &format!("/api/notifications/{id}/test"),
            None,
        )
        .await;
        assert_problem(s, &gone, 404, "not_found");
        let (_, list) = call(&h, Method::GET, "/api/notifications", None).await;
        assert_eq!(list["notifications"], json!([]));
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&super::support::sqlite(&dir)).await;
    let url = h.receiver.url("/notify");
    for (body, code) in [
        (
            json!({"url": url, "types": ["connector.exploded"]}),
            "invalid_notification_types",
        ),
        (
            json!({"url": url, "types": ["notification.test"]}),
            "invalid_notification_types",
        ),
        (
            json!({"url": url, "types": []}),
            "invalid_notification_types",
        ),
        (
            json!({"url": url, "format": "teams"}),
            "invalid_notification_format",
        ),
        (json!({"url": "ftp://example.com/hook"}), "invalid_url"),
        (
            json!({"url": "http://10.1.2.3/hook"}),
            "address_not_allowed",
        ),
        (json!({"types": ["delivery.failed"]}), "invalid_json"),
    ] {
        let (s, out) = call(&h, Method::POST, "/api/notifications", Some(body.clone())).await;
        assert_eq!(s, 400, "{body} → {out}");
        assert!(out["error"].as_str().is_some(), "{out}");
        if code != "invalid_url" && code != "address_not_allowed" && code != "invalid_json" {
            assert_problem(s, &out, 400, code);
        }
    }
    for bad in ["nope", "ntf_does_not_exist", "ntf_%2e%2e"] {
        let (s, out) = call(
            &h,
            Method::POST,
            &format!("/api/notifications/{bad}/test"),
            None,
        )
        .await;
        assert_eq!(s, 404, "{bad}: {out}");
    }
    // Types are kept as given, without repeats.
    let (id, _) = add_endpoint(
        &h,
        "/notify",
        json!({"types": ["delivery.failed", "delivery.failed", "connector.revoked"]}),
    )
    .await;
    let (_, list) = call(&h, Method::GET, "/api/notifications", None).await;
    assert_eq!(list["notifications"][0]["id"], id.as_str());
    assert_eq!(
        list["notifications"][0]["types"],
        json!(["delivery.failed", "connector.revoked"])
    );
    // Up to 20 endpoints an account.
    for _ in 1..20 {
        add_endpoint(&h, "/notify", json!({})).await;
    }
    let (s, out) = call(
        &h,
        Method::POST,
        "/api/notifications",
        Some(json!({"url": url})),
    )
    .await;
    assert_problem(s, &out, 409, "limit_reached");
}

#[tokio::test]
async fn a_read_key_lists_but_cannot_add_test_or_delete() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&super::support::sqlite(&dir)).await;
    let (id, _) = add_endpoint(&h, "/notify", json!({})).await;
    let (s, made) = call(
        &h,
        Method::POST,
        "/api/keys",
        Some(json!({"scopes": ["read"]})),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let read = made["api_key"].as_str().unwrap().to_owned();
    let as_read = |m: Method, p: &str| {
        h.http
            .request(m, format!("{}{p}", h.base))
            .header("Authorization", format!("Basic {read}"))
    };
    assert_eq!(
        as_read(Method::GET, "/api/notifications")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        as_read(Method::GET, &format!("/api/notifications/{id}/deliveries"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = as_read(Method::POST, "/api/notifications")
        .json(&json!({"url": h.receiver.url("/x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        as_read(Method::POST, &format!("/api/notifications/{id}/test"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        as_read(Method::DELETE, &format!("/api/notifications/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}
