//! Notifications end to end: each type produced by its real cause (the fake org revokes the
//! refresh token, the Run As user is removed, the endpoint answers 410, the breaker opens, a
//! retry schedule runs out, a revocation), arriving once and verified with the official
//! Standard Webhooks verifier; the endpoints' API; an endpoint that is down.

#[path = "../delivery_engine/support.rs"]
mod support;

mod api;
mod causes;
mod down;

use serde_json::{json, Value};
use support::{json_of, Harness, Received};

/// Add a notification endpoint at the receiver's `path`; its id and signing secret.
async fn add_endpoint(h: &Harness, path: &str, extra: Value) -> (String, Option<String>) {
    let mut body = json!({"url": h.receiver.url(path)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let (status, out) = json_of(
        h.req(reqwest::Method::POST, "/api/notifications")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    (
        out["id"].as_str().unwrap().to_owned(),
        out["signing_secret"].as_str().map(str::to_owned),
    )
}

/// What the endpoint at `path` received, each verified with `secret` by the `standardwebhooks`
/// crate: (webhook-id, body).
fn notices(h: &Harness, path: &str, secret: &str) -> Vec<(String, Value)> {
    h.receiver
        .received(path)
        .iter()
        .map(|r: &Received| {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(r.body.as_bytes(), &r.headers)
                .unwrap_or_else(|e| panic!("{e:?}: {}", r.body));
            let id = r.headers["webhook-id"].to_str().unwrap().to_owned();
            (id, serde_json::from_str(&r.body).unwrap())
        })
        .collect()
}

/// The notices of one type.
fn of_type(all: &[(String, Value)], kind: &str) -> Vec<Value> {
    all.iter()
        .filter(|(_, b)| b["type"] == kind)
        .map(|(_, b)| b.clone())
        .collect()
}
