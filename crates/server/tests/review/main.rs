//! The governance review over HTTP (`GET /api/review`) against real (fake) Salesforce orgs:
//! connectors built to fail each check, one by one, a healthy one with no `fail`, the probe
//! and who may ask for it. SQLite and (when configured) PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use hookwarden_fake_org::{
    FakeOrg, Faults, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

const DAY_MS: i64 = 86_400_000;

/// A server whose keep-alive stays off: the tests age refresh tokens by hand.
async fn server(db: &str) -> TestServer {
    let mut s = settings(db, true);
    s.governance.keepalive_days = 0;
    TestServer::start_with(s, None).await
}

fn cc_key(org: &RunningFakeOrg, host: &str) -> String {
    b64(&json!({
        "host": host,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
    }))
}

fn rt_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "login.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
        "introspection_url": org.introspect_url(),
    }))
}

/// Register `name` (salesforce preset) with `body`'s fields over the defaults.
async fn register(t: &TestServer, name: &str, url: &str, key: String, extra: Value) {
    let mut body = json!({"preset": "salesforce", "url": url, "events": ["PACKAGE_COMPLETE"],
                          "key": key, "owner": "integrations@acme.example"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = json(
        t.req(Method::POST, &format!("/api/callback/connectors/{name}"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{name}: {created}");
}

/// `…/test`: one grant and the endpoint probe.
async fn test_connector(t: &TestServer, name: &str) -> Value {
    let (status, report) = json(
        t.req(
            Method::POST,
            &format!("/api/callback/connectors/{name}/test"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    report
}

async fn review(t: &TestServer, query: &str) -> Value {
    let (status, body) = json(
        t.req(Method::GET, &format!("/api/review{query}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn connector<'a>(review: &'a Value, name: &str) -> &'a Value {
    review["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not reviewed: {review}"))
}

fn check<'a>(review: &'a Value, name: &str, check: &str) -> &'a Value {
    connector(review, name)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .unwrap_or_else(|| panic!("{name} has no {check} check: {review}"))
}

/// Run `sql` on the server's database behind its back (to age a secret).
async fn raw(db: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if db.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(db).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

const CHECKS: [&str; 10] = [
    "owner",
    "scope",
    "host",
    "url_in_org",
    "secret_age",
    "refresh_token_idle",
    "last_grant",
    "last_delivery",
    "status",
    "signing_secret_age",
];

#[tokio::test]
async fn a_healthy_connector_passes_and_the_default_callback_is_not_reviewed() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = server(&db).await;
        register(
            &t,
            "healthy",
            &org.callback_url(),
            cc_key(&org, "acme.my.salesforce.com"),
            json!({}),
        )
        .await;
        register(
            &t,
            "healthyRt",
            &org.callback_url(),
            rt_key(&org),
            json!({"refresh_token_idle_days": 30}),
        )
        .await;
        let (status, _) = json(
            t.req(Method::POST, "/api/callback")
                .json(&json!({"url": org.callback_url(), "key": "basic-key", "events": ["PACKAGE_COMPLETE"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201);
        for name in ["healthy", "healthyRt"] {
            assert_eq!(test_connector(&t, name).await["ok"], true, "{name}");
        }

        let r = review(&t, "").await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(
            r["connectors"].as_array().unwrap().len(),
            2,
            "no @default: {r}"
        );
        let healthy = connector(&r, "healthy");
        assert_eq!(healthy["ok"], true);
        let names: Vec<&str> = healthy["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, CHECKS, "no probe without ?probe=true");
        for c in healthy["checks"].as_array().unwrap() {
            assert_eq!(c["level"], "ok", "{c}");
            assert!(c["detail"].as_str().is_some_and(|d| !d.is_empty()), "{c}");
            assert!(c.as_object().unwrap().contains_key("fix"), "{c}");
        }
        assert_eq!(
            check(&r, "healthy", "scope")["detail"],
            "the org granted \"api\""
        );
        assert!(check(&r, "healthyRt", "scope")["detail"]
            .as_str()
            .unwrap()
            .starts_with("does not apply"));
        // The keep-alive is off on this server: the review says it cannot save the token.
        let idle = check(&r, "healthyRt", "refresh_token_idle");
        assert_eq!(idle["level"], "warn", "{idle}");
        assert!(
            idle["fix"].as_str().unwrap().contains("keepalive_days"),
            "{idle}"
        );
        assert_eq!(
            connector(&r, "healthyRt")["ok"],
            true,
            "a warning is no failure"
        );
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn connectors_built_to_fail_each_check_fail_it() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let wide = FakeOrg::builder()
            .allowed_scopes(["api", "web"])
            .start()
            .await
            .unwrap();
        let down = FakeOrg::builder().start().await.unwrap();
        let t = server(&db).await;
        let home = org.callback_url();
        let my_domain = "acme.my.salesforce.com";

        register(
            &t,
            "noOwner",
            &home,
            cc_key(&org, my_domain),
            json!({"owner": null}),
        )
        .await;
        register(
            &t,
            "wideScope",
            &wide.callback_url(),
            cc_key(&wide, my_domain),
            json!({}),
        )
        .await;
        test_connector(&t, "wideScope").await;
        register(
            &t,
            "notMyDomain",
            &home,
            cc_key(&org, "acme.lightning.force.com"),
            json!({}),
        )
        .await;
        // On another org's host than the one whose credentials it holds.
        register(
            &t,
            "outsideOrg",
            &wide.callback_url(),
            cc_key(&org, my_domain),
            json!({}),
        )
        .await;
        test_connector(&t, "outsideOrg").await;
        register(&t, "oldSecret", &home, cc_key(&org, my_domain), json!({})).await;
        register(&t, "oldSigning", &home, cc_key(&org, my_domain), json!({})).await;
        register(
            &t,
            "idle",
            &home,
            rt_key(&org),
            json!({"refresh_token_idle_days": 30, "events": ["PACKAGE_CREATE"]}),
        )
        .await;
        register(
            &t,
            "grantFailing",
            &down.callback_url(),
            cc_key(&down, my_domain),
            // No delivery of the event below: its grant would succeed and end the failures.
            json!({"events": ["PACKAGE_CREATE"]}),
        )
        .await;
        down.set_token_faults(Faults {
            fail_next: 1,
            status: 503,
            ..Faults::default()
        })
        .unwrap();
        test_connector(&t, "grantFailing").await;
        register(
            &t,
            "deliveryFailing",
            &org.apex_url("NoSuchClass/callback"),
            cc_key(&org, my_domain),
            json!({}),
        )
        .await;
        register(&t, "revoked", &home, cc_key(&org, my_domain), json!({})).await;
        let (status, body) = json(
            t.req(Method::POST, "/api/callback/connectors/revoked/revoke")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");

        let now = now_ms();
        raw(
            &db,
            &format!(
                "UPDATE connectors SET credentials_changed_at = {} WHERE name = 'oldSecret'",
                now - 91 * DAY_MS
            ),
        )
        .await;
        raw(
            &db,
            &format!(
                "UPDATE connectors SET signing_secret_changed_at = {} WHERE name = 'oldSigning'",
                now - 91 * DAY_MS
            ),
        )
        .await;
        raw(
            &db,
            &format!(
                "UPDATE connectors SET credentials_changed_at = {} WHERE name = 'idle'",
                now - 31 * DAY_MS
            ),
        )
        .await;

        // One event, which only deliveryFailing's url refuses (404: no such Apex class); idle
        // and grantFailing do not take it (a delivery would make a grant).
        let (status, body) = json(
            t.req(Method::POST, "/api/events")
                .json(&json!({"name": "PACKAGE_COMPLETE", "packageId": "pkg-1", "origin": "OSS"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let mut attempted = false;
        for _ in 0..200 {
            let (_, list) = json(
                t.req(Method::GET, "/api/deliveries?connector=deliveryFailing")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if list["deliveries"][0]["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                attempted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(attempted, "deliveryFailing's delivery was never attempted");

        let r = review(&t, "").await;
        assert_eq!(r["ok"], false, "{r}");
        let expect = [
            ("noOwner", "owner", "warn"),
            ("wideScope", "scope", "fail"),
            ("notMyDomain", "host", "fail"),
            ("outsideOrg", "url_in_org", "fail"),
            ("oldSecret", "secret_age", "warn"),
            ("oldSigning", "signing_secret_age", "warn"),
            ("idle", "refresh_token_idle", "warn"),
            ("grantFailing", "last_grant", "warn"),
            ("deliveryFailing", "last_delivery", "warn"),
            ("revoked", "status", "fail"),
        ];
        for (name, failing, level) in expect {
            let c = check(&r, name, failing);
            assert_eq!(c["level"], level, "{name}: {c}");
            assert!(
                c["fix"].as_str().is_some_and(|f| !f.is_empty()),
                "{name}: {c}"
            );
            assert_eq!(connector(&r, name)["ok"], level != "fail", "{name}");
            // Nothing else of it fails, but where one failure is the other's cause.
            for other in connector(&r, name)["checks"].as_array().unwrap() {
                let caused = name == "outsideOrg" && other["name"] == "status";
                if other["name"] != failing && !caused {
                    assert_ne!(other["level"], "fail", "{name}: {other}");
                }
            }
        }
        assert!(check(&r, "wideScope", "scope")["detail"]
            .as_str()
            .unwrap()
            .contains("web beyond `api`"));
        assert!(check(&r, "outsideOrg", "url_in_org")["detail"]
            .as_str()
            .unwrap()
            .contains(&wide.base_url()));
        assert!(check(&r, "oldSecret", "secret_age")["detail"]
            .as_str()
            .unwrap()
            .contains("91 days"));
        assert!(check(&r, "idle", "refresh_token_idle")["detail"]
            .as_str()
            .unwrap()
            .contains("31 days"));
        assert!(check(&r, "grantFailing", "last_grant")["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 grant(s) failed"));
        assert_eq!(
            check(&r, "revoked", "status")["detail"]
                .as_str()
                .unwrap()
                .split(':')
                .next(),
            Some("revoked")
        );
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_probe_needs_an_admin_key_and_fails_where_the_endpoint_refuses() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let denied = FakeOrg::builder()
            .apex_class_access_denied(true)
            .start()
            .await
            .unwrap();
        let t = server(&db).await;
        register(
            &t,
            "healthy",
            &org.callback_url(),
            cc_key(&org, "acme.my.salesforce.com"),
            json!({}),
        )
        .await;
        register(
            &t,
            "denied",
            &denied.callback_url(),
            cc_key(&denied, "acme.my.salesforce.com"),
            json!({}),
        )
        .await;

        let (status, read) = json(
            t.req(Method::POST, "/api/keys")
                .json(&json!({"scopes": ["read"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201);
        let read_key = read["api_key"].as_str().unwrap();
        let as_read = |query: &str| {
            t.http
                .get(t.url(&format!("/api/review{query}")))
                .header("Authorization", format!("Basic {read_key}"))
                .send()
        };
        let (status, body) = json(as_read("").await.unwrap()).await;
        assert_eq!(status, 200, "a read key reviews: {body}");
        let (status, body) = json(as_read("?probe=true").await.unwrap()).await;
        assert_error(status, &body, 403, "insufficient_scope");
        assert_eq!(body["required_scope"], "admin");
        assert_eq!(denied.stats().callbacks_received, 0, "no probe was sent");
        for bad in ["?probe=maybe", "?prob=true"] {
            let (status, body) = json(
                t.req(Method::GET, &format!("/api/review{bad}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_error(status, &body, 400, "invalid_query");
        }

        let r = review(&t, "?probe=true").await;
        assert_eq!(r["ok"], false, "{r}");
        let ok = check(&r, "healthy", "probe");
        assert_eq!(ok["level"], "ok", "{ok}");
        assert_eq!(
            org.stats().callbacks_received,
            1,
            "the probe reached the endpoint"
        );
        let failed = check(&r, "denied", "probe");
        assert_eq!(failed["level"], "fail", "{failed}");
        assert!(
            failed["detail"].as_str().unwrap().contains("403"),
            "{failed}"
        );
        assert!(
            failed["fix"].as_str().is_some_and(|f| !f.is_empty()),
            "{failed}"
        );
        assert_eq!(connector(&r, "denied")["ok"], false);
        assert_eq!(connector(&r, "healthy")["ok"], true);
        t.server.shutdown().await.unwrap();
    }
}
