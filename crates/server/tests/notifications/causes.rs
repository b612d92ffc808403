//! Each notification type from its real cause, once.

use std::time::Duration;

use hookwarden_server::delivery::Clock as _;

use reqwest::Method;
use serde_json::json;

use super::support::{each_database, event, json_of, Harness};
use super::{add_endpoint, notices, of_type};

const SF: &str = "salesforceOauth2";

#[tokio::test]
async fn a_revoked_refresh_token_makes_one_needs_reauth_and_a_new_key_one_recovered() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        let (_, secret) = add_endpoint(&h, "/notify", json!({})).await;
        let secret = secret.expect("a standard endpoint has a secret");
        h.register(
            SF,
            &h.org.callback_url(),
            &["PACKAGE_COMPLETE"],
            h.rt_key(),
            json!({}),
        )
        .await;
        // The org revokes the refresh token before the first grant: invalid_grant.
        h.org.revoke_all_tokens();
        for i in 0..10 {
            h.post_event(event("PACKAGE_COMPLETE", &format!("p{i}")))
                .await;
        }
        h.engine.run_until_idle().await.unwrap();
        assert_eq!(h.connector(SF).await["status"], "needs_reauth");
        let got = notices(&h, "/notify", &secret);
        assert_eq!(
            got.len(),
            1,
            "ten held deliveries make one notification: {got:?}"
        );
        let n = &got[0].1;
        assert_eq!(n["type"], "connector.needs_reauth", "{n}");
        assert_eq!(n["data"]["connector"], SF);
        assert_eq!(n["data"]["status"], "needs_reauth");
        assert!(n["data"]["diagnosis"]["code"].as_str().is_some(), "{n}");
        assert!(n["data"]["diagnosis"]["fix"].as_str().is_some(), "{n}");
        assert!(n["data"]["held"].as_u64().is_some(), "{n}");
        assert!(n["timestamp"].as_str().unwrap().ends_with('Z'), "{n}");

        // A new key: active again, and the held deliveries go out.
        let (s, c) = json_of(
            h.req(Method::PATCH, &format!("/api/callback/connectors/{SF}"))
                .json(&json!({"key": h.rt_key()}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, c["status"].as_str()), (200, Some("active")), "{c}");
        h.engine.run_until_idle().await.unwrap();
        assert_eq!(h.org.callbacks().len(), 10);
        let got = notices(&h, "/notify", &secret);
        let recovered = of_type(&got, "connector.recovered");
        assert_eq!(recovered.len(), 1, "{got:?}");
        assert_eq!(
            recovered[0]["data"]["held"], 10,
            "released: {}",
            recovered[0]
        );
        assert_eq!(recovered[0]["data"]["status"], "active");
        assert!(recovered[0]["data"]["diagnosis"].is_null());
        assert_eq!(got.len(), 2, "nothing else: {got:?}");
    }
}

#[tokio::test]
async fn a_removed_run_as_user_makes_needs_reauth_with_its_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&super::support::sqlite(&dir)).await;
    let (_, secret) =
        add_endpoint(&h, "/notify", json!({"types": ["connector.needs_reauth"]})).await;
    h.register_salesforce().await;
    // The connected app's Run As user is removed: the client-credentials grant is refused.
    h.org.set_run_as_user(None);
    h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
    h.engine.run_until_idle().await.unwrap();
    let secret = secret.unwrap();
    let got = notices(&h, "/notify", &secret);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["type"], "connector.needs_reauth");
    assert_eq!(
        got[0].1["data"]["diagnosis"]["code"], "no_run_as_user",
        "{}",
        got[0].1
    );

    // The org gets its Run As user back; `…/resume` makes it active: recovered is told to an
    // endpoint that takes it, not to this one, which asked for needs_reauth only.
    let (_, all_secret) = add_endpoint(&h, "/all", json!({})).await;
    h.org.set_run_as_user(Some("integration@fake-org.example"));
    let (s, out) = json_of(
        h.req(
            Method::POST,
            &format!("/api/callback/connectors/{SF}/resume"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{out}");
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.org.callbacks().len(), 1, "the held delivery went out");
    assert_eq!(notices(&h, "/notify", &secret).len(), 1);
    let got = notices(&h, "/all", all_secret.as_deref().unwrap());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["type"], "connector.recovered");
    assert_eq!(got[0].1["data"]["held"], 1, "{}", got[0].1);
}

#[tokio::test]
async fn an_endpoint_that_answers_410_makes_one_disabled() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        let (_, secret) = add_endpoint(&h, "/notify", json!({})).await;
        h.register(
            "gone",
            &h.receiver.url("/status/410"),
            &["GONE"],
            h.cc_key(),
            json!({}),
        )
        .await;
        for i in 0..3 {
            h.post_event(event("GONE", &format!("p{i}"))).await;
        }
        h.engine.run_until_idle().await.unwrap();
        assert_eq!(h.connector("gone").await["status"], "disabled");
        let got = notices(&h, "/notify", secret.as_deref().unwrap());
        assert_eq!(got.len(), 1, "{got:?}");
        let n = &got[0].1;
        assert_eq!(n["type"], "connector.disabled");
        assert_eq!(n["data"]["status"], "disabled");
        assert_eq!(n["data"]["diagnosis"]["code"], "endpoint_gone", "{n}");
    }
}

#[tokio::test]
async fn an_opening_breaker_makes_one_failing_and_its_closing_one_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(&super::support::sqlite(&dir), |o| o.breaker_threshold = 3).await;
    let (_, secret) = add_endpoint(&h, "/notify", json!({})).await;
    let secret = secret.unwrap();
    h.register(
        "shaky",
        &h.receiver.url("/status/500"),
        &["SHAKY"],
        h.cc_key(),
        json!({}),
    )
    .await;
    for i in 0..6 {
        h.post_event(event("SHAKY", &format!("p{i}"))).await;
    }
    h.engine.run_until_idle().await.unwrap();
    let got = notices(&h, "/notify", &secret);
    let failing = of_type(&got, "connector.failing");
    assert_eq!(failing.len(), 1, "{got:?}");
    assert_eq!(failing[0]["data"]["connector"], "shaky");
    assert_eq!(
        failing[0]["data"]["status"], "active",
        "failing is not a status"
    );

    // The endpoint is fixed; past the cooldown and the retry delays, deliveries go through.
    let (s, c) = json_of(
        h.req(Method::PATCH, "/api/callback/connectors/shaky")
            .json(&json!({"url": h.receiver.url("/fixed")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    h.clock.advance(Duration::from_secs(3600));
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.receiver.received("/fixed").len(), 6);
    let got = notices(&h, "/notify", &secret);
    let recovered = of_type(&got, "connector.recovered");
    assert_eq!(recovered.len(), 1, "{got:?}");
    assert_eq!(recovered[0]["data"]["connector"], "shaky");
    assert_eq!(of_type(&got, "connector.failing").len(), 1);
}

#[tokio::test]
async fn a_spent_retry_schedule_makes_one_delivery_failed_per_delivery() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        let (_, secret) = add_endpoint(&h, "/notify", json!({"types": ["delivery.failed"]})).await;
        h.register(
            "flaky",
            &h.receiver.url("/status/500"),
            &["FLAKY"],
            h.cc_key(),
            json!({"retry": {"schedule_s": [1], "jitter": 0.0}}),
        )
        .await;
        let id = h.post_event(event("FLAKY", "p1")).await["deliveries"][0]
            .as_str()
            .unwrap()
            .to_owned();
        h.engine.run_until_idle().await.unwrap();
        assert_eq!(h.delivery(&id).await["status"], "pending", "one retry left");
        assert!(h.receiver.received("/notify").is_empty());
        h.clock.advance(Duration::from_secs(2));
        h.engine.run_until_idle().await.unwrap();
        assert_eq!(h.delivery(&id).await["status"], "failed");
        let got = notices(&h, "/notify", secret.as_deref().unwrap());
        assert_eq!(got.len(), 1, "{got:?}");
        let n = &got[0].1;
        assert_eq!(n["type"], "delivery.failed");
        assert_eq!(n["data"]["delivery_id"], id.as_str());
        assert_eq!(n["data"]["connector"], "flaky");
        assert!(n["data"]["diagnosis"]["code"].as_str().is_some(), "{n}");
    }
}

#[tokio::test]
async fn a_revocation_makes_one_revoked_and_the_endpoints_own_failures_make_none() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&super::support::sqlite(&dir)).await;
    let (_, secret) = add_endpoint(&h, "/notify", json!({})).await;
    // A second endpoint that is gone for good: its 410 tells nobody (no notifications about
    // notifications), and it does not stop the first.
    add_endpoint(&h, "/status/410", json!({})).await;
    h.register_salesforce().await;
    h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
    h.engine.run_until_idle().await.unwrap();
    for _ in 0..2 {
        let (s, out) = json_of(
            h.req(
                Method::POST,
                &format!("/api/callback/connectors/{SF}/revoke"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(s, 200, "{out}");
    }
    h.engine.run_until_idle().await.unwrap();
    let got = notices(&h, "/notify", secret.as_deref().unwrap());
    assert_eq!(got.len(), 1, "revoking twice is one transition: {got:?}");
    assert_eq!(got[0].1["type"], "connector.revoked");
    assert_eq!(got[0].1["data"]["status"], "revoked");
    assert_eq!(
        h.receiver.received("/status/410").len(),
        1,
        "tried once, then disabled"
    );
}

#[tokio::test]
async fn a_slack_endpoint_gets_one_unsigned_line() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&super::support::sqlite(&dir)).await;
    let (_, secret) = add_endpoint(&h, "/slack", json!({"format": "slack"})).await;
    assert!(secret.is_none(), "a slack endpoint has no signing secret");
    h.register(
        "gone",
        &h.receiver.url("/status/410"),
        &["GONE"],
        h.cc_key(),
        json!({}),
    )
    .await;
    h.post_event(event("GONE", "p1")).await;
    h.engine.run_until_idle().await.unwrap();
    let got = h.receiver.received("/slack");
    assert_eq!(got.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(text.contains("gone") && text.contains("disabled"), "{text}");
    assert!(text.contains("Fix:"), "{text}");
    assert!(got[0].headers.get("webhook-signature").is_none());
    assert!(got[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_grant_from_an_org_elsewhere_makes_one_disabled_with_url_not_in_org() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&super::support::sqlite(&dir)).await;
    let (_, secret) = add_endpoint(&h, "/notify", json!({})).await;
    // The org now says it is on another port: another origin than the connector's url.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = format!("http://{}", listener.local_addr().unwrap());
    let app = hookwarden_fake_org::router(h.org.state().clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    h.register_salesforce().await;
    h.org
        .update_config(|c| c.public_url = Some(elsewhere.clone()))
        .unwrap();
    h.post_event(event("PACKAGE_COMPLETE", "p1")).await;
    h.post_event(event("PACKAGE_COMPLETE", "p2")).await;
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.connector(SF).await["status"], "disabled");
    let got = notices(&h, "/notify", secret.as_deref().unwrap());
    assert_eq!(got.len(), 1, "{got:?}");
    let n = &got[0].1;
    assert_eq!(n["type"], "connector.disabled");
    assert_eq!(n["data"]["diagnosis"]["code"], "url_not_in_org", "{n}");
    assert!(
        n["data"]["diagnosis"]["cause"]
            .as_str()
            .unwrap()
            .contains(&elsewhere),
        "{n}"
    );
}

#[tokio::test]
async fn old_secrets_and_an_idling_refresh_token_make_credential_expiring_once_each() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start(&db).await;
        let (_, secret) =
            add_endpoint(&h, "/notify", json!({"types": ["credential.expiring"]})).await;
        let secret = secret.unwrap();
        h.register_salesforce().await;
        // A refresh-token connector whose org expires refresh tokens unused for 20 days.
        h.register(
            "idler",
            &h.org.callback_url(),
            &["X"],
            h.rt_key(),
            json!({"refresh_token_idle_days": 20}),
        )
        .await;
        let pass = |h: &Harness| {
            let (state, now) = (h.state.clone(), h.clock.now_ms());
            async move {
                hookwarden_server::keepalive::expiring_pass(&state, now)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(pass(&h).await, 0, "nothing is old yet");

        // Day 18: the refresh token idles out on day 20, told from day 17 (3 days before).
        h.clock.advance(Duration::from_secs(16 * 86_400));
        assert_eq!(pass(&h).await, 0, "day 16 is too early");
        h.clock.advance(Duration::from_secs(2 * 86_400));
        assert_eq!(pass(&h).await, 1);
        assert_eq!(pass(&h).await, 0, "once per threshold");
        h.engine.run_until_idle().await.unwrap();
        let got = notices(&h, "/notify", &secret);
        assert_eq!(got.len(), 1, "{got:?}");
        let n = &got[0].1;
        assert_eq!(n["type"], "credential.expiring");
        assert_eq!(n["data"]["connector"], "idler");
        assert_eq!(n["data"]["diagnosis"]["code"], "refresh_token_idle", "{n}");
        assert!(
            n["data"]["diagnosis"]["fix"]
                .as_str()
                .unwrap()
                .contains("idler"),
            "{n}"
        );

        // Day 91: both connectors' credentials and signing secrets are past 90 days.
        h.clock.advance(Duration::from_secs(73 * 86_400));
        assert_eq!(pass(&h).await, 4);
        assert_eq!(pass(&h).await, 0);
        h.engine.run_until_idle().await.unwrap();
        let got = notices(&h, "/notify", &secret);
        let codes: Vec<(String, String)> = got[1..]
            .iter()
            .map(|(_, b)| {
                (
                    b["data"]["connector"].as_str().unwrap().to_owned(),
                    b["data"]["diagnosis"]["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for want in [
            (SF, "secret_age"),
            (SF, "signing_secret_age"),
            ("idler", "secret_age"),
            ("idler", "signing_secret_age"),
        ] {
            assert!(
                codes.contains(&(want.0.to_owned(), want.1.to_owned())),
                "{want:?} in {codes:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_breaker_opened_on_one_node_is_cleared_by_the_first_delivery_through_on_another() {
    let (dbs, _dir) = each_database().await;
    for db in dbs {
        let h = Harness::start_with(&db, |o| o.breaker_threshold = 3).await;
        // A second node on the same database: its own lanes and breakers.
        let other = hookwarden_server::delivery::Engine::new(
            h.state.delivery.clone(),
            &h.settings,
            super::support::tokens_for(&h.state.store, &h.settings),
            hookwarden_server::delivery::EngineOptions {
                clock: h.clock.clone(),
                idle_poll: Duration::from_millis(20),
                ..Default::default()
            },
        )
        .unwrap();
        let (_, secret) = add_endpoint(&h, "/notify", json!({})).await;
        let secret = secret.unwrap();
        h.register(
            "shaky",
            &h.receiver.url("/status/500"),
            &["SHAKY"],
            h.cc_key(),
            json!({}),
        )
        .await;
        for i in 0..4 {
            h.post_event(event("SHAKY", &format!("p{i}"))).await;
        }
        h.engine.run_once().await.unwrap();
        assert_eq!(
            of_type(&notices_now(&h, &other, &secret).await, "connector.failing").len(),
            1
        );

        // Fixed; the other node, whose breaker never opened, sends the first one through.
        let (s, _) = json_of(
            h.req(Method::PATCH, "/api/callback/connectors/shaky")
                .json(&json!({"url": h.receiver.url("/fixed")}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 200);
        h.clock.advance(Duration::from_secs(3600));
        other.run_until_idle().await.unwrap();
        assert_eq!(h.receiver.received("/fixed").len(), 4);
        let got = notices_now(&h, &other, &secret).await;
        assert_eq!(of_type(&got, "connector.recovered").len(), 1, "{got:?}");
        assert_eq!(of_type(&got, "connector.failing").len(), 1, "{got:?}");
    }
}

/// The notifications sent so far, after the other node has sent what is due.
async fn notices_now(
    h: &Harness,
    other: &hookwarden_server::delivery::Engine<hookwarden_oauth::TokenManager>,
    secret: &str,
) -> Vec<(String, serde_json::Value)> {
    other.run_until_idle().await.unwrap();
    notices(h, "/notify", secret)
}
