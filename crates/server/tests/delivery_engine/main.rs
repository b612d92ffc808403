//! The delivery engine end to end over HTTP: ingest, routing, signatures, the outcome policy
//! with an injected clock, held deliveries, SSRF, rotation under load, and fairness.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hookwarden_server::delivery::{Engine, EngineOptions};
use reqwest::Method;
use serde_json::{json, Value};
use support::*;

const SF: &str = "salesforceOauth2";

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
                account_id: account.id.0.clone(),
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

#[tokio::test]
async fn a_401_refreshes_once_and_delivers_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.register_salesforce().await;
    // A first delivery caches a token.
    h.post_event(event("PACKAGE_COMPLETE", "warm")).await;
    assert_eq!(h.engine.run_once().await.unwrap().delivered, 1);
    // Then the org revokes the session behind our back.
    h.org.invalidate_next_apex_sessions(1);
    let accepted = h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
    let report = h.engine.run_once().await.unwrap();
    assert_eq!(report.delivered, 1, "delivered in the same run: {report:?}");
    let d = h
        .delivery(accepted["deliveries"][0].as_str().unwrap())
        .await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{d}");
    assert_eq!(attempts[0]["status_code"], 401);
    assert_eq!(attempts[0]["refreshed"], false);
    assert_eq!(attempts[1]["status_code"], 200);
    assert_eq!(attempts[1]["refreshed"], true);
    let stats = h.org.stats();
    assert_eq!(
        stats.grants_ok("client_credentials"),
        2,
        "one initial grant, one refresh"
    );
    assert_eq!(stats.apex_rejection_count("INVALID_SESSION_ID"), 1);
}

/// Salesforce answers 403 REQUEST_LIMIT_EXCEEDED while the org is out of API requests: the
/// delivery waits on the schedule and goes out once the org answers again, never `failed`.
#[tokio::test]
async fn an_org_out_of_api_requests_delays_deliveries_without_failing_them() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.register_salesforce().await;
    h.org
        .set_apex_faults(hookwarden_fake_org::Faults::fail_next(1, 403))
        .unwrap();
    h.dice.set(0.0); // the schedule's 5 s, less 20 %
    let accepted = h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
    let id = accepted["deliveries"][0].as_str().unwrap().to_owned();
    let report = h.engine.run_once().await.unwrap();
    assert_eq!((report.claimed, report.delivered), (1, 0), "{report:?}");
    let d = h.delivery(&id).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["attempts"][0]["status_code"], 403);
    assert!(
        d["attempts"][0]["diagnosis"]
            .as_str()
            .unwrap()
            .contains("REQUEST_LIMIT_EXCEEDED"),
        "{d}"
    );
    assert_eq!(
        h.engine.run_once().await.unwrap().claimed,
        0,
        "not before its time"
    );
    h.clock.advance(Duration::from_secs(5));
    assert_eq!(h.engine.run_once().await.unwrap().delivered, 1);
    let d = h.delivery(&id).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 2);
}

/// A token endpoint that fails for a reason that may pass: the delivery waits, and the attempt
/// is recorded (its error names the token) without using up a try of the retry schedule.
#[tokio::test]
async fn a_failing_token_endpoint_does_not_use_up_the_retry_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.register_salesforce().await;
    h.org
        .set_token_faults(hookwarden_fake_org::Faults::fail_next(1, 503))
        .unwrap();
    let accepted = h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
    let id = accepted["deliveries"][0].as_str().unwrap().to_owned();
    let report = h.engine.run_once().await.unwrap();
    assert_eq!((report.claimed, report.retried), (1, 1), "{report:?}");
    assert!(h.org.callbacks().is_empty());
    let d = h.delivery(&id).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    assert!(d["attempts"][0]["status_code"].is_null(), "{d}");
    for error in [&d["attempts"][0]["error"], &d["last_error"]] {
        assert!(error.as_str().unwrap().starts_with("token: "), "{d}");
    }
    let stored = h
        .state
        .store
        .get_delivery(&h.account, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.attempts, 0, "no try of the schedule used up");
}

/// After `history_retention_days` (30 by default) a delivered callback is gone from the
/// history; one still waiting to go out stays, however old.
#[tokio::test]
async fn finished_deliveries_leave_the_history_after_the_retention_period() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.register_salesforce().await;
    h.register(
        "busy",
        &h.receiver.url("/status/503"),
        &["BUSY"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let sent = h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
    let sent = sent["deliveries"][0].as_str().unwrap().to_owned();
    let waiting = h.post_event(event("BUSY", "p2")).await;
    let waiting = waiting["deliveries"][0].as_str().unwrap().to_owned();
    assert_eq!(h.engine.run_once().await.unwrap().delivered, 1);
    assert_eq!(h.delivery(&waiting).await["status"], "pending");

    // 29 days on, nothing is old enough.
    h.clock.advance(Duration::from_secs(29 * 86_400));
    assert_eq!(h.engine.prune_history().await.unwrap().deliveries, 0);
    h.clock.advance(Duration::from_secs(2 * 86_400));
    let pruned = h.engine.prune_history().await.unwrap();
    assert_eq!(
        (pruned.deliveries, pruned.attempts, pruned.events),
        (1, 1, 1),
        "{pruned:?}"
    );
    let (s, e) = json_of(
        h.req(Method::GET, &format!("/api/deliveries/{sent}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404, "{e}");
    let listed: Vec<String> = h
        .list("")
        .await
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, std::slice::from_ref(&waiting));
    assert_eq!(h.delivery(&waiting).await["status"], "pending");
}

#[tokio::test]
async fn outcome_policy_with_an_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(&sqlite(&dir), |o| {
        o.request_timeout = Duration::from_millis(300)
    })
    .await;
    let r = &h.receiver;
    let key = || h.cc_key();
    h.register("busy", &r.url("/status/503"), &["BUSY"], key(), json!({}))
        .await;
    h.register("gone", &r.url("/status/410"), &["GONE"], key(), json!({}))
        .await;
    h.register("moved", &r.url("/redirect"), &["MOVED"], key(), json!({}))
        .await;
    h.register("slow", &r.url("/hang"), &["SLOW"], key(), json!({}))
        .await;
    h.register(
        "limited",
        &r.url("/status/429"),
        &["LIMITED"],
        key(),
        json!({"retry": {"schedule_s": [1], "jitter": 0.0}}),
    )
    .await;
    h.register(
        SF,
        &h.org.apex_url("Missing/callback"),
        &["MISSING"],
        key(),
        json!({}),
    )
    .await;
    let id = |v: Value| v["deliveries"][0].as_str().unwrap().to_owned();
    let busy = id(h.post_event(event("BUSY", "1")).await);
    let gone = id(h.post_event(event("GONE", "1")).await);
    let moved = id(h.post_event(event("MOVED", "1")).await);
    let slow = id(h.post_event(event("SLOW", "1")).await);
    let limited = id(h.post_event(event("LIMITED", "1")).await);
    let missing = id(h.post_event(event("MISSING", "1")).await);

    h.dice.set(0.0); // the low edge of the jitter: 5 s - 20 % = 4 s
    let before = h.state.delivery.now_ms();
    let report = h.engine.run_once().await.unwrap();
    assert_eq!(report.claimed, 6, "{report:?}");

    // 503 with Retry-After: 120 → retried no earlier than 120 s.
    let d = h.delivery(&busy).await;
    assert_eq!(d["status"], "pending", "{d}");
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(
        next - before >= 120_000 && next - before < 125_000,
        "{}",
        next - before
    );
    // Timeout → retried at the schedule's first step with the jitter's low edge (4 s).
    let d = h.delivery(&slow).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert!(d["attempts"][0]["status_code"].is_null());
    assert!(
        d["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{d}"
    );
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(
        (4_000..4_000 + 2_000).contains(&(next - before)),
        "{}",
        next - before
    );
    // 410 → the connector is disabled and the delivery held.
    let d = h.delivery(&gone).await;
    assert_eq!(d["status"], "held", "{d}");
    assert_eq!(d["attempts"][0]["status_code"], 410);
    assert_eq!(h.connector("gone").await["status"], "disabled");
    // 3xx → failed, not followed.
    let d = h.delivery(&moved).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["attempts"][0]["diagnosis"]
        .as_str()
        .unwrap()
        .contains("https://elsewhere.example/hook"));
    // 404 NOT_FOUND from Salesforce → failed with the troubleshooting table's diagnosis.
    let d = h.delivery(&missing).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"][0]["status_code"], 404);
    assert!(
        d["attempts"][0]["diagnosis"]
            .as_str()
            .unwrap()
            .contains("namespace"),
        "{d}"
    );
    assert!(d["attempts"][0]["response_excerpt"]
        .as_str()
        .unwrap()
        .contains("NOT_FOUND"));

    // Nothing is due until the clock moves: no sleeping.
    assert_eq!(h.engine.run_once().await.unwrap().claimed, 0);
    h.clock.advance(Duration::from_secs(121));
    let report = h.engine.run_once().await.unwrap();
    // busy and slow come due; limited's one-step schedule is used up → failed.
    assert_eq!(report.claimed, 3, "{report:?}");
    let d = h.delivery(&limited).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 2);
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("retries exhausted"),
        "{d}"
    );

    // A failed delivery can be retried by hand; a held one cannot.
    let (s, _) = json_of(
        h.req(Method::POST, &format!("/api/deliveries/{moved}/retry"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 202);
    let (s, e) = json_of(
        h.req(Method::POST, &format!("/api/deliveries/{gone}/retry"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (409, Some("delivery_held")));
    let (s, _) = json_of(
        h.req(Method::POST, "/api/deliveries/dlv_nope/retry")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(h.engine.run_once().await.unwrap().claimed, 1);
    assert_eq!(h.receiver.received("/redirect").len(), 2);
    // Replay re-queues failed deliveries with a fresh schedule.
    let (s, replay) = json_of(
        h.req(Method::POST, "/api/callback/connectors/limited/replay")
            .json(&json!({"since": "2000-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, replay["replayed"].as_u64()), (200, Some(1)), "{replay}");
    assert_eq!(h.delivery(&limited).await["status"], "pending");
    // An empty or inverted window is a mistake, said as such.
    let (s, e) = json_of(
        h.req(Method::POST, "/api/callback/connectors/limited/replay")
            .json(&json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_time_range")),
        "{e}"
    );
}

#[tokio::test]
async fn deliveries_are_held_while_the_connector_needs_reauth_then_go_out_in_order() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        h.register(
            SF,
            &h.org.callback_url(),
            &["PACKAGE_COMPLETE"],
            h.rt_key(),
            json!({"ordering": "per_package"}),
        )
        .await;
        // The refresh token dies before the first grant: invalid_grant.
        h.org.revoke_all_tokens();
        for i in 0..3 {
            for p in ["p1", "p2"] {
                h.post_event(json!({"name": "PACKAGE_COMPLETE", "packageId": p, "origin": "OSS", "message": i.to_string()}))
                    .await;
            }
        }
        let report = h.engine.run_until_idle().await.unwrap();
        assert_eq!(report.delivered, 0, "{report:?}");
        assert!(h.org.callbacks().is_empty(), "nothing is sent");
        assert_eq!(h.connector(SF).await["status"], "needs_reauth");
        let held = h.list("status=held").await;
        assert_eq!(held.len(), 6, "held, not failed: {held:?}");
        assert!(
            held.iter()
                .all(|d| d["attempts"].as_array().unwrap().is_empty()),
            "not attempted"
        );
        // New events wait too.
        h.post_event(
            json!({"name": "PACKAGE_COMPLETE", "packageId": "p1", "origin": "OSS", "message": "3"}),
        )
        .await;
        assert_eq!(h.engine.run_until_idle().await.unwrap().delivered, 0);
        assert_eq!(h.list("status=held").await.len(), 7);

        // Re-authentication: a new key makes it active, and everything goes out in order.
        let (s, c) = json_of(
            h.req(Method::PATCH, &format!("/api/callback/connectors/{SF}"))
                .json(&json!({"key": h.rt_key()}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, c["status"].as_str()), (200, Some("active")), "{c}");
        let report = h.engine.run_until_idle().await.unwrap();
        assert_eq!(report.delivered, 7, "{report:?}");
        let mut per_package: HashMap<String, Vec<String>> = HashMap::new();
        for cb in h.org.callbacks() {
            per_package
                .entry(cb.body["packageId"].as_str().unwrap().to_owned())
                .or_default()
                .push(cb.body["message"].as_str().unwrap().to_owned());
        }
        assert_eq!(per_package["p1"], ["0", "1", "2", "3"]);
        assert_eq!(per_package["p2"], ["0", "1", "2"]);
        assert_eq!(h.list("status=delivered&limit=100").await.len(), 7);
    }
}

#[tokio::test]
async fn refused_addresses_at_registration_and_at_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "http://[::1]:8080/hook",
    ] {
        let (s, e) = json_of(
            h.req(Method::POST, "/api/callback/connectors/internal")
                .json(&json!({"url": url, "events": ["PACKAGE_COMPLETE"], "key": h.cc_key()}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 400, "{url}: {e}");
        assert!(e["message"].as_str().unwrap().contains("url"), "{e}");
    }
    // A name that resolves to loopback, registered while loopback was allowed, is refused at
    // delivery by a node whose policy is the default (nothing private allowed).
    let port = h.receiver.base.rsplit(':').next().unwrap().to_owned();
    let (s, _) = json_of(
        h.req(Method::POST, "/api/callback")
            .json(&json!({"url": format!("http://localhost:{port}/ok"), "key": "k-123456789", "events": ["PACKAGE_CREATE"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);
    let accepted = h.post_event(event("PACKAGE_CREATE", "p")).await;
    let strict = settings(&h.settings.database, "");
    let engine = Engine::new(
        h.state.delivery.clone(),
        &strict,
        tokens_for(&h.state.store, &strict),
        EngineOptions::default(),
    )
    .unwrap();
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(h.receiver.received("/ok").is_empty(), "nothing was sent");
    let d = h
        .delivery(accepted["deliveries"][0].as_str().unwrap())
        .await;
    let error = d["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("localhost") && error.contains("loopback") && error.contains("not allowed"),
        "{error}"
    );
    assert!(d["attempts"][0]["diagnosis"]
        .as_str()
        .unwrap()
        .contains("allow_private_networks"));
}

/// Sessions run out again and again while a thousand events go out, and every refresh rotates
/// the refresh token: each event is delivered once, and no refresh token is used twice. The
/// org's clock (and the engine's) moves past the session between batches; nothing waits for
/// a session to run out.
#[tokio::test]
async fn a_thousand_events_through_expiring_sessions_and_rotating_refresh_tokens() {
    // Longer than any run of this test, so a session ends only when the clock is moved on.
    const SESSION: Duration = Duration::from_secs(3600);
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.org.set_rotate_refresh_tokens(true);
    h.org.set_session_timeout_s(SESSION.as_secs());
    h.register(
        SF,
        &h.org.callback_url(),
        &["PACKAGE_COMPLETE"],
        h.rt_key(),
        json!({}),
    )
    .await;
    // Ten batches, ten sessions: each batch's deliveries go out together, meet the ended
    // session's 401 and share one refresh (the token manager still believes the key's
    // two-hour session, so the org's answer is what ends it).
    for batch in 0..10 {
        let events: Vec<Value> = (0..100)
            .map(|i| event("PACKAGE_COMPLETE", &format!("pkg-{batch}-{i}")))
            .collect();
        let (s, _) = json_of(
            h.req(Method::POST, "/api/events/batch")
                .json(&json!({ "events": events }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 202);
        h.engine.run_until_idle().await.unwrap();
        let past_the_session = SESSION + Duration::from_secs(1);
        h.org.advance_clock_s(past_the_session.as_secs() as i64);
        h.clock.advance(past_the_session);
    }
    let stats = h.org.stats();
    assert!(stats.callbacks_received >= 1000, "{stats:?}");
    assert_eq!(stats.reuse_detections, 0);
    assert!(
        stats.grants_ok("refresh_token") >= 2,
        "sessions expired and were refreshed: {stats:?}"
    );
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for cb in h.org.callbacks() {
        ids.entry(cb.body["packageId"].as_str().unwrap().to_owned())
            .or_default()
            .insert(cb.webhook_id.clone().unwrap());
    }
    assert_eq!(ids.len(), 1000, "every event delivered");
    assert!(
        ids.values().all(|s| s.len() == 1),
        "one webhook-id per event"
    );
    assert_eq!(h.list("status=delivered&limit=1000").await.len(), 1000);
}

/// Another connector's deliveries all go out while a hanging endpoint holds every slot of its
/// own connector (and no more). The hanging requests end when the test releases them.
#[tokio::test]
async fn a_hanging_endpoint_does_not_slow_another_connector() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(&sqlite(&dir), |o| {
        // Longer than any run of this test, so no hanging request ends on its own (a timeout
        // would free its slot and make the test depend on the machine's speed).
        o.lease = Duration::from_secs(600);
        o.request_timeout = Duration::from_secs(240);
        o.shutdown_grace = Duration::from_millis(100);
    })
    .await;
    h.register(
        "hanging",
        &h.receiver.url("/hang"),
        &["SLOW_EVENT"],
        h.cc_key(),
        json!({}),
    )
    .await;
    h.register(
        "healthy",
        &h.receiver.url("/ok"),
        &["FAST_EVENT"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let handle = h.engine.clone().spawn().await.unwrap();
    let receiver = &h.receiver;
    let hangs = || receiver.hangs.load(std::sync::atomic::Ordering::SeqCst);
    // Generous: this bounds a failure, it is not what the test measures.
    let deadline = Instant::now() + Duration::from_secs(60);

    let events: Vec<Value> = (0..300)
        .map(|i| event("SLOW_EVENT", &format!("s{i}")))
        .collect();
    let (s, _) = json_of(
        h.req(Method::POST, "/api/events/batch")
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 202);
    while hangs() < 8 {
        assert!(
            Instant::now() < deadline,
            "{} requests hang, not 8",
            hangs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    for i in 0..25 {
        h.post_event(event("FAST_EVENT", &format!("f{i}"))).await;
    }
    while h
        .list("connector=healthy&status=delivered&limit=100")
        .await
        .len()
        < 25
    {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(receiver.received("/ok").len(), 25);
    // The hanging connector took its whole concurrency and no more...
    assert_eq!(hangs(), 8);
    // ...and held it all along: not one of its deliveries has come back.
    let hanging = h.list("connector=hanging&limit=1000").await;
    assert_eq!(hanging.len(), 300);
    assert!(
        hanging
            .iter()
            .all(|d| d["status"] == "pending" && d["attempts"].as_array().unwrap().is_empty()),
        "a hanging request ended"
    );
    receiver.release_hangs();
    handle.shutdown().await;
}

#[tokio::test]
async fn a_failing_connector_backs_off_as_a_whole_and_pages_of_history() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(&sqlite(&dir), |o| {
        o.breaker_threshold = 3;
        o.breaker_cooldown = Duration::from_secs(60);
    })
    .await;
    h.register(
        "down",
        &h.receiver.url("/status/502"),
        &["DOWN"],
        h.cc_key(),
        json!({"max_concurrency": 1}),
    )
    .await;
    for i in 0..10 {
        h.post_event(event("DOWN", &format!("p{i}"))).await;
    }
    let report = h.engine.run_until_idle().await.unwrap();
    // One at a time (max_concurrency 1): after 3 failures the breaker opens, and the rest are
    // given back untried, due only after the cooldown.
    assert_eq!(h.receiver.received("/status/502").len(), 3, "{report:?}");
    assert_eq!(report.retried, 3, "{report:?}");
    assert_eq!(
        h.engine.run_once().await.unwrap().claimed,
        0,
        "nothing is due meanwhile"
    );
    h.clock.advance(Duration::from_secs(61));
    h.engine.run_once().await.unwrap();
    assert!(
        h.receiver.received("/status/502").len() > 3,
        "tried again after the cooldown"
    );

    // Cursor pagination, newest first.
    let (s, page1) = json_of(
        h.req(Method::GET, "/api/deliveries?limit=4")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = json_of(
        h.req(
            Method::GET,
            &format!("/api/deliveries?limit=4&cursor={cursor}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let ids = |p: &Value| -> Vec<String> {
        p["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (ids(&page1), ids(&page2));
    assert_eq!((a.len(), b.len()), (4, 4));
    assert!(a.iter().all(|x| !b.contains(x)));
    assert!(a[3] > b[0], "newest first");
    let (s, e) = json_of(
        h.req(Method::GET, "/api/deliveries?status=lost")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_status")));
    // A misspelt filter is refused, not ignored (which would list everything).
    let (s, e) = json_of(
        h.req(Method::GET, "/api/deliveries?stauts=failed")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_query")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("stauts"), "{e}");
    assert_eq!(h.list("packageId=p3").await.len(), 1);
    // A time window: `since` and `until` (created before it).
    assert!(h.list("until=2000-01-01T00:00:00Z").await.is_empty());
    let all = h.list("limit=1000").await.len();
    assert_eq!(
        h.list("since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z&limit=1000")
            .await
            .len(),
        all
    );
}

#[tokio::test]
async fn credentials_a_receiver_echoes_back_are_not_kept_in_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.register(
        "echoing",
        &h.receiver.url("/echo"),
        &["PACKAGE_COMPLETE"],
        h.cc_key(),
        json!({}),
    )
    .await;
    let (s, d) = json_of(
        h.req(Method::POST, "/api/callback")
            .json(&json!({"url": h.receiver.url("/echo"), "key": "basic-key-echoed-123456", "events": ["PACKAGE_CREATE"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let bearer = h.post_event(event("PACKAGE_COMPLETE", "a")).await;
    let basic = h.post_event(event("PACKAGE_CREATE", "b")).await;
    h.engine.run_until_idle().await.unwrap();
    let sent = h.receiver.received("/echo");
    assert_eq!(sent.len(), 2);
    for answer in [&bearer, &basic] {
        let id = answer["deliveries"][0].as_str().unwrap();
        let delivery = h.delivery(id).await;
        let text = delivery.to_string();
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains("basic-key-echoed-123456"), "{text}");
        for s in &sent {
            let credential = s.headers["authorization"].to_str().unwrap();
            let secret = credential.split_once(' ').unwrap().1;
            assert!(!text.contains(secret), "{text}");
        }
    }
}

/// Two nodes on one PostgreSQL: node A takes the events and runs no workers; node B, whose
/// own poll comes only once a minute, delivers them within seconds because A's commit
/// notifies it (LISTEN/NOTIFY).
#[tokio::test]
async fn another_node_is_woken_by_the_ingesting_nodes_notification() {
    let Some(pg) = hookwarden_store::testing::fresh_postgres_url().await else {
        return;
    };
    let a = Harness::start(&pg).await;
    a.register(
        SF,
        &a.org.callback_url(),
        &["PACKAGE_COMPLETE"],
        a.cc_key(),
        json!({}),
    )
    .await;
    // Node B: the same database and master key, its own store, hub and workers.
    let store_b = hookwarden_store::Store::open(&pg, a.settings.master_key.clone())
        .await
        .unwrap();
    let state_b = hookwarden_server::AppState::new(store_b.clone(), a.settings.clone());
    let node_b = hookwarden_server::delivery::start_with(
        &state_b,
        tokens_for(&store_b, &a.settings),
        EngineOptions {
            idle_poll: Duration::from_secs(60),
            ..EngineOptions::default()
        },
    )
    .await
    .unwrap();
    // B's first claim, at start, comes before or after this first event; either way B delivers
    // it. Once its outcome is written, B has claimed and found nothing more: from now on only a
    // wake-up brings it back.
    let first = a.post_event(event("PACKAGE_COMPLETE", "pkg-first")).await;
    let first = first["deliveries"][0].as_str().unwrap().to_owned();
    let started = Instant::now();
    while a.delivery(&first).await["status"] != "delivered" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node B did not deliver the first event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.org.reset_stats();
    let started = Instant::now();
    for i in 0..5 {
        a.post_event(
            json!({"name": "PACKAGE_COMPLETE", "packageId": format!("pkg-{i}"), "origin": "OSS"}),
        )
        .await;
    }
    while a.org.callbacks().len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node B did not deliver within 20 s (its poll is 60 s): {} of 5",
            a.org.callbacks().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not `close`: B's LISTEN connection stays out of the pool until its hub is gone.
    node_b.shutdown().await;
}
