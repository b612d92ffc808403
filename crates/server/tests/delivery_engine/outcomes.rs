//! What becomes of a delivery, driven with `run_once` and an injected clock: the outcome
//! policy, 401s and token failures, held deliveries, refused addresses, redaction, retention.

use std::collections::HashMap;
use std::time::Duration;

use hookwarden_server::delivery::{Engine, EngineOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;
use crate::SF;

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
    assert_eq!(d["attempts"][0]["diagnosis"]["code"], "api_limit_exceeded");
    assert!(
        d["attempts"][0]["diagnosis"]["cause"]
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
        .get_delivery(&h.account, &id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.attempts, 0, "no try of the schedule used up");
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
    let report = h.engine.run_once().await.unwrap();
    assert_eq!(report.claimed, 6, "{report:?}");
    // How long after its attempt was answered a delivery is due again: measured from the
    // answer, so the time the batch took (a grant, a timeout) on a slow machine does not count.
    let wait_after_answer = |d: &Value| {
        let ms = |t: &Value| {
            chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        let attempt = &d["attempts"][0];
        ms(&d["next_attempt_at"]) - ms(&attempt["at"]) - attempt["duration_ms"].as_i64().unwrap()
    };

    // 503 with Retry-After: 120 → retried no earlier than 120 s.
    let d = h.delivery(&busy).await;
    assert_eq!(d["status"], "pending", "{d}");
    let wait = wait_after_answer(&d);
    assert!((120_000..120_000 + 2_000).contains(&wait), "{wait}");
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
    let wait = wait_after_answer(&d);
    assert!((4_000..4_000 + 2_000).contains(&wait), "{wait}");
    // 410 → the connector is disabled and the delivery held.
    let d = h.delivery(&gone).await;
    assert_eq!(d["status"], "held", "{d}");
    assert_eq!(d["attempts"][0]["status_code"], 410);
    assert_eq!(h.connector("gone").await["status"], "disabled");
    // 3xx → failed, not followed.
    let d = h.delivery(&moved).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"][0]["diagnosis"]["code"], "redirect_refused");
    assert!(d["attempts"][0]["diagnosis"]["cause"]
        .as_str()
        .unwrap()
        .contains("https://elsewhere.example/hook"));
    // 404 NOT_FOUND from Salesforce → failed with the troubleshooting table's diagnosis.
    let d = h.delivery(&missing).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"][0]["status_code"], 404);
    assert_eq!(
        d["attempts"][0]["diagnosis"]["code"],
        "apex_class_not_found"
    );
    assert!(
        d["attempts"][0]["diagnosis"]["cause"]
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
    assert_eq!(d["attempts"][0]["diagnosis"]["code"], "url_address_refused");
    assert!(d["attempts"][0]["diagnosis"]["fix"]
        .as_str()
        .unwrap()
        .contains("allow_private_networks"));
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

/// A receiver echoing the credential where the 1 KiB excerpt ends, or in another encoding,
/// leaves no part of it in the attempt.
#[tokio::test]
async fn an_echoed_credential_is_redacted_before_the_cut_and_in_every_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    // "Bearer " is 7 bytes: the token starts 10 bytes before the excerpt's end at 1024.
    for (name, path) in [
        ("straddling", "/echo-at/1007"),
        ("encoded", "/echo-encoded"),
    ] {
        h.register(
            name,
            &h.receiver.url(path),
            &["PACKAGE_COMPLETE"],
            h.cc_key(),
            json!({}),
        )
        .await;
    }
    let answer = h.post_event(event("PACKAGE_COMPLETE", "a")).await;
    h.engine.run_until_idle().await.unwrap();
    let tokens: Vec<String> = [
        h.receiver.received("/echo-at/1007"),
        h.receiver.received("/echo-encoded"),
    ]
    .concat()
    .iter()
    .map(|s| {
        let credential = s.headers["authorization"].to_str().unwrap();
        credential.split_once(' ').unwrap().1.to_owned()
    })
    .collect();
    assert_eq!(tokens.len(), 2);
    let ids = answer["deliveries"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    for id in ids {
        let delivery = h.delivery(id.as_str().unwrap()).await;
        let excerpt = delivery["attempts"][0]["response_excerpt"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(excerpt.len() <= 1024, "{}", excerpt.len());
        assert!(excerpt.contains("[redacted]"), "{excerpt}");
        for token in &tokens {
            let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
            for leak in [&token[..8], &encoded[..8]] {
                assert!(!excerpt.contains(leak), "{leak} in {excerpt}");
            }
        }
    }
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

/// A delivered delivery is not sent again by a stray retry: 409 `already_delivered` with how
/// to force it; `{"force": true}` sends it once more, under the same webhook-id.
#[tokio::test]
async fn a_delivered_delivery_is_retried_only_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&sqlite(&dir)).await;
    h.register_salesforce().await;
    let accepted = h.post_event(event("PACKAGE_COMPLETE", "p-1")).await;
    let id = accepted["deliveries"][0].as_str().unwrap().to_owned();
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.delivery(&id).await["status"], "delivered");

    let retry = |body: Option<serde_json::Value>| {
        let mut req = h.req(Method::POST, &format!("/api/deliveries/{id}/retry"));
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move { json_of(req.send().await.unwrap()).await }
    };
    let (s, e) = retry(None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("already_delivered")),
        "{e}"
    );
    assert!(e["fix"].as_str().unwrap().contains("force"), "{e}");
    let (s, e) = retry(Some(json!({"force": false}))).await;
    assert_eq!(s, 409, "{e}");
    let (s, e) = retry(Some(json!({"forse": true}))).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_body")), "{e}");
    assert_eq!(h.org.stats().callbacks_received, 1, "nothing sent again");

    let (s, d) = retry(Some(json!({"force": true}))).await;
    assert_eq!((s, d["status"].as_str()), (202, Some("pending")), "{d}");
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.delivery(&id).await["status"], "delivered");
    let callbacks = h.org.callbacks();
    assert_eq!(callbacks.len(), 2, "sent once more");
    assert_eq!(callbacks[0].webhook_id, callbacks[1].webhook_id);
}

/// A refresh-token Salesforce connector with one delivery made (this node holds a token), then,
/// `after` later, a grant by another node's token manager on the same database: the connector
/// and that newer token.
async fn warm_then_another_node_grants(
    h: &Harness,
    after: Duration,
) -> (
    hookwarden_store::ConnectorRecord,
    hookwarden_oauth::AccessToken,
) {
    h.register(
        SF,
        &h.org.callback_url(),
        &["PACKAGE_COMPLETE"],
        h.rt_key(),
        json!({}),
    )
    .await;
    h.post_event(event("PACKAGE_COMPLETE", "warm")).await;
    assert_eq!(h.engine.run_once().await.unwrap().delivered, 1);
    tokio::time::sleep(after).await;
    let other = tokens_for(&h.state.store, &h.settings);
    let record = h
        .state
        .store
        .get_connector(&h.account, SF)
        .await
        .unwrap()
        .unwrap();
    let newer = other.force_grant(&record).await.unwrap();
    (record, newer)
}

/// After a 401, a token another node granted before the refused request left is no answer:
/// with sessions that end by time it may be as stale as the refused one. The delivery drops it
/// too and is sent with a token granted since, in the same run, instead of being refused twice
/// and waiting on its retry schedule.
#[tokio::test]
async fn after_a_401_a_token_granted_before_the_refused_request_is_not_used() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        h.org.set_session_timeout_s(2);
        // Another node grants (a newer version in the database); then both sessions end.
        let (record, newer) = warm_then_another_node_grants(&h, Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(2_300)).await;

        let accepted = h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
        let report = h.engine.run_once().await.unwrap();
        assert_eq!(report.delivered, 1, "delivered in the same run: {report:?}");
        let d = h
            .delivery(accepted["deliveries"][0].as_str().unwrap())
            .await;
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{d}");
        assert_eq!(attempts[0]["status_code"], 401);
        assert_eq!(attempts[1]["status_code"], 200);
        let used = h
            .state
            .store
            .get_token_state(&record.id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            used.version > newer.version,
            "a grant since the 401, not the other node's"
        );
    }
}

/// A token refused on the resend after a 401 that was itself granted before that 401 (another
/// node's stored token, young enough to be tried, but as stale) earns one more resend, with a
/// token granted since, in the same run; only a token granted after the refusal being refused
/// too is `fresh_token_refused`.
#[tokio::test]
async fn a_second_401_on_a_token_granted_before_the_first_is_sent_once_more() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        // This node's token is some time old when another node grants; then the endpoint
        // refuses the next two calls, whatever their token.
        let (record, newer) = warm_then_another_node_grants(&h, Duration::from_millis(500)).await;
        h.org.invalidate_next_apex_sessions(2);

        let accepted = h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
        let report = h.engine.run_once().await.unwrap();
        assert_eq!(report.delivered, 1, "delivered in the same run: {report:?}");
        let d = h
            .delivery(accepted["deliveries"][0].as_str().unwrap())
            .await;
        let attempts = d["attempts"].as_array().unwrap();
        let codes: Vec<_> = attempts.iter().map(|a| a["status_code"].clone()).collect();
        assert_eq!(codes, [json!(401), json!(401), json!(200)], "{d}");
        assert_eq!(attempts[2]["refreshed"], true, "{d}");
        let used = h
            .state
            .store
            .get_token_state(&record.id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            used.version > newer.version,
            "the second resend went with a grant made after the other node's"
        );
    }
}
