//! Events in, callbacks out: what a callback carries (body, bearer, signature), durable and
//! idempotent ingest, and routing by origin and name.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;
use crate::SF;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

fn header_map(h: &std::collections::BTreeMap<String, String>) -> axum::http::HeaderMap {
    let mut out = axum::http::HeaderMap::new();
    for (k, v) in h {
        out.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn callbacks_carry_onespans_body_a_bearer_and_a_standard_webhooks_signature() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        let reg = h.register_salesforce().await;
        let secret = reg["signing_secret"].as_str().unwrap().to_owned();
        let accepted = h
            .post_event(
                json!({"name": "PACKAGE_COMPLETE", "packageId": "pkg-1", "origin": "OSS",
                               "sessionUser": "u-1", "documentId": "doc-1", "message": "done"}),
            )
            .await;
        let delivery_id = accepted["deliveries"][0].as_str().unwrap().to_owned();
        let report = h.engine.run_once().await.unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");

        let got = h.org.callbacks();
        assert_eq!(got.len(), 1);
        let cb = &got[0];
        assert_eq!(cb.webhook_id.as_deref(), Some(delivery_id.as_str()));
        assert!(!cb.access_token.is_empty(), "a bearer token was sent");
        assert_eq!(
            cb.body,
            json!({"@class": "com.silanis.esl.packages.event.ESLProcessEvent", "name": "PACKAGE_COMPLETE",
                   "sessionUser": "u-1", "packageId": "pkg-1", "message": "done", "documentId": "doc-1",
                   "createdDate": cb.body["createdDate"]})
        );
        assert_eq!(cb.headers["content-type"], "application/json");
        // An independent verifier.
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(cb.raw_body.as_bytes(), &header_map(&cb.headers))
            .expect("the signature verifies");
        let wrong = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(standardwebhooks::Webhook::new(wrong)
            .unwrap()
            .verify(cb.raw_body.as_bytes(), &header_map(&cb.headers))
            .is_err());

        let d = h.delivery(&delivery_id).await;
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["event_id"], accepted["id"]);
        assert_eq!(d["connector"], SF);
        assert_eq!(d["attempts"][0]["status_code"], 200);
        assert_eq!(
            d["attempts"][0]["refreshed"], true,
            "the first token was granted"
        );

        // After a rotation both secrets verify, for 24 h.
        let (status, rotated) = json_of(
            h.req(
                Method::POST,
                &format!("/api/callback/connectors/{SF}/signing-secret/rotate"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{rotated}");
        let fresh = rotated["signing_secret"].as_str().unwrap().to_owned();
        h.post_event(event("PACKAGE_COMPLETE", "pkg-2")).await;
        assert_eq!(h.engine.run_once().await.unwrap().delivered, 1);
        let cb = h.org.callbacks().pop().unwrap();
        assert_eq!(cb.headers["webhook-signature"].split(' ').count(), 2);
        for s in [&secret, &fresh] {
            standardwebhooks::Webhook::new(s)
                .unwrap()
                .verify(cb.raw_body.as_bytes(), &header_map(&cb.headers))
                .expect("old and new secret both verify");
        }
    }
}

#[tokio::test]
async fn ingest_is_durable_idempotent_and_names_bad_fields() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        h.register_salesforce().await;
        let post = |key: &str, body: Value| {
            h.req(Method::POST, "/api/events")
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
        };
        let (s1, a1) = json_of(post("k-1", event("PACKAGE_COMPLETE", "p1")).await.unwrap()).await;
        let (s2, a2) = json_of(post("k-1", event("PACKAGE_COMPLETE", "p1")).await.unwrap()).await;
        assert_eq!((s1, s2), (202, 202));
        assert_eq!(a1, a2, "the same key and body answer the same");
        assert_eq!(a1["deliveries"].as_array().unwrap().len(), 1);
        let (s3, a3) = json_of(post("k-1", event("PACKAGE_COMPLETE", "p2")).await.unwrap()).await;
        assert_eq!(s3, 409, "{a3}");
        assert_eq!(a3["error"], "idempotency_key_reused");
        assert_eq!(h.list("").await.len(), 1, "no second delivery");

        // Bad events: a 400 naming the field.
        let (s, e) = json_of(
            h.req(Method::POST, "/api/events")
                .json(&json!({"packageId": "p", "origin": "OSS"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 400);
        assert!(e["message"].as_str().unwrap().starts_with("name:"), "{e}");
        assert!(e["fix"].as_str().is_some_and(|f| !f.is_empty()));
        let mut events: Vec<Value> = (0..5)
            .map(|i| event("PACKAGE_COMPLETE", &format!("b{i}")))
            .collect();
        events[3] = json!({"name": "not an event", "packageId": "p", "origin": "OSS"});
        let (s, e) = json_of(
            h.req(Method::POST, "/api/events/batch")
                .json(&json!({ "events": events }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 400);
        assert!(
            e["message"].as_str().unwrap().starts_with("events[3].name"),
            "{e}"
        );
        let too_many: Vec<Value> = (0..1001)
            .map(|i| event("PACKAGE_COMPLETE", &format!("t{i}")))
            .collect();
        let (s, e) = json_of(
            h.req(Method::POST, "/api/events/batch")
                .json(&json!({ "events": too_many }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, e["error"].as_str()), (400, Some("invalid_batch_size")));
        let unauth = h
            .http
            .post(format!("{}/api/events", h.base))
            .json(&event("PACKAGE_COMPLETE", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(unauth.status(), 401);

        // 1,000 in one request, committed before the answer: a second store sees them all.
        let thousand: Vec<Value> = (0..1000)
            .map(|i| event("PACKAGE_COMPLETE", &format!("k{i}")))
            .collect();
        let (s, a) = json_of(
            h.req(Method::POST, "/api/events/batch")
                .json(&json!({ "events": thousand }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 202);
        let accepted = a["events"].as_array().unwrap();
        assert_eq!(accepted.len(), 1000);
        assert!(accepted
            .iter()
            .all(|e| e["deliveries"].as_array().unwrap().len() == 1));
        let other =
            hookwarden_store::Store::open(&h.settings.database, h.settings.master_key.clone())
                .await
                .unwrap();
        let account = h
            .state
            .store
            .account_by_api_key(&h.key)
            .await
            .unwrap()
            .unwrap();
        let seen = other
            .list_deliveries(&hookwarden_store::DeliveryFilter {
                account_id: account.id,
                limit: 2000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(seen.len(), 1001);
        other.close().await;
    }
}

#[tokio::test]
async fn events_route_by_origin_and_name_and_the_rest_to_the_default_callback() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.register_salesforce().await;
    h.register(
        "allhooks",
        &h.receiver.url("/all"),
        &["PACKAGE_COMPLETE", "DOCUMENT_SIGNED"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let (s, d) = json_of(
        h.req(Method::POST, "/api/callback")
            .json(&json!({"url": h.receiver.url("/default"), "key": "basic-key-1234", "events": ["PACKAGE_CREATE", "DOCUMENT_SIGNED"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let n = |v: &Value| v["deliveries"].as_array().unwrap().len();
    assert_eq!(n(&h.post_event(event("PACKAGE_COMPLETE", "a")).await), 2);
    let web = h
        .post_event(json!({"name": "PACKAGE_COMPLETE", "packageId": "b", "origin": "WEB"}))
        .await;
    assert_eq!(n(&web), 1, "salesforceOauth2 listens to OSS only");
    assert_eq!(
        n(&h.post_event(event("DOCUMENT_SIGNED", "c")).await),
        1,
        "a connector took it"
    );
    let create = h.post_event(event("PACKAGE_CREATE", "d")).await;
    assert_eq!(n(&create), 1, "no connector took it: the default callback");
    assert_eq!(
        n(&h.post_event(event("PACKAGE_EXPIRE", "e")).await),
        0,
        "nobody wants it"
    );
    // Nothing crosses accounts.
    let (s, other) = json_of(
        h.http
            .post(format!("{}/api/events", h.base))
            .header("Authorization", format!("Basic {}", h.key_b))
            .json(&event("PACKAGE_COMPLETE", "z"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, n(&other)), (202, 0));

    let report = h.engine.run_until_idle().await.unwrap();
    assert_eq!(report.delivered, 5, "{report:?}");
    assert_eq!(h.org.callbacks().len(), 1);
    assert_eq!(h.receiver.received("/all").len(), 3);
    let default = h.receiver.received("/default");
    assert_eq!(default.len(), 1);
    assert_eq!(default[0].headers["authorization"], "Basic basic-key-1234");
    let listed = h.list("connector=%40default").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], create["deliveries"][0]);
}

/// One account, two Salesforce orgs under names of its own (`preset: salesforce`): each
/// connector gets its tokens from its own org and delivers there, with that org's token; the
/// names follow OneSpan's salesforce rules (origins `["OSS"]`) without being
/// `salesforceOauth2`; a PATCH cannot switch the preset, and an unknown preset is refused.
#[tokio::test]
async fn one_account_holds_two_salesforce_orgs_each_with_its_own_tokens() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let h = Harness::start(&db).await;
        let sandbox = FakeOrg::builder().start().await.unwrap();
        let key_for = |org: &RunningFakeOrg, host: &str| {
            b64(&json!({
                "host": host,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "token_url": org.token_url(),
                "revocation_url": org.revoke_url(),
            }))
        };
        let preset = json!({"preset": "salesforce"});
        let prod = h
            .register(
                "acmeProd",
                &h.org.callback_url(),
                &["PACKAGE_COMPLETE"],
                key_for(&h.org, "acme.my.salesforce.com"),
                preset.clone(),
            )
            .await;
        let sb = h
            .register(
                "acmeSandbox",
                &sandbox.callback_url(),
                &["PACKAGE_COMPLETE"],
                key_for(&sandbox, "acmesandbox.my.salesforce.com"),
                preset.clone(),
            )
            .await;
        for c in [&prod, &sb] {
            assert_eq!(c["preset"], "salesforce", "{c}");
            assert_eq!(
                c["origins"],
                json!(["OSS"]),
                "the salesforce preset's default: {c}"
            );
            assert_eq!(c["flow"], "client_credentials", "{c}");
        }
        assert_eq!(h.connector("acmeProd").await["preset"], "salesforce");

        let accepted = h.post_event(event("PACKAGE_COMPLETE", "p-1")).await;
        assert_eq!(
            accepted["deliveries"].as_array().unwrap().len(),
            2,
            "{accepted}"
        );
        h.engine.run_until_idle().await.unwrap();
        for (org, name) in [(&h.org, "prod"), (&sandbox, "sandbox")] {
            let stats = org.stats();
            assert_eq!(
                stats.grants_ok("client_credentials"),
                1,
                "{name}: its own grant"
            );
            assert_eq!(stats.callbacks_received, 1, "{name}: its own delivery");
            // The fake org accepts only tokens it issued: each delivery carried its org's.
            assert_eq!(org.callbacks().len(), 1, "{name}");
        }
        assert_ne!(
            h.org.callbacks()[0].access_token,
            sandbox.callbacks()[0].access_token
        );

        // A replace without `preset` keeps the connector's preset.
        let again = h
            .register(
                "acmeSandbox",
                &sandbox.callback_url(),
                &["PACKAGE_COMPLETE"],
                key_for(&sandbox, "acmesandbox.my.salesforce.com"),
                json!({}),
            )
            .await;
        assert_eq!(again["preset"], "salesforce", "{again}");

        let (status, answer) = json_of(
            h.req(Method::PATCH, "/api/callback/connectors/acmeSandbox")
                .json(&json!({"preset": "generic"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("preset_not_patchable")),
            "{answer}"
        );
        let (status, answer) = json_of(
            h.req(Method::POST, "/api/callback/connectors/acmeOther")
                .json(&json!({"url": sandbox.callback_url(), "events": ["PACKAGE_COMPLETE"],
                              "key": key_for(&sandbox, "acme.my.salesforce.com"), "preset": "salesforec"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_preset")),
            "{answer}"
        );
        assert!(
            answer["fix"].as_str().unwrap().contains("\"salesforce\""),
            "{answer}"
        );
    }
}
