//! Resume (`…/resume`): a client-credentials connector refused for want of a Run As user comes
//! back with the same credentials once the org has one, and its held deliveries arrive; a resume
//! before the fix is refused with the diagnosis; a revoked connector needs its credentials; and
//! re-authentication in a browser is refused to such a connector (`wrong_flow`).

use std::time::{Duration, Instant};

use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::{cc_key, register, PATH};

/// Ask `probe` until it says yes, for up to 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, probe: impl Fn() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(Instant::now() < deadline, "still not so after 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn held(t: &TestServer) -> usize {
    let (status, list) = json(
        t.req(Method::GET, "/api/deliveries?status=held")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list["deliveries"].as_array().unwrap().len()
}

async fn grants(t: &TestServer, outcome: &str) -> usize {
    let (_, history) = json(
        t.req(Method::GET, &format!("{PATH}/history?limit=100"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "grant" && e["outcome"] == outcome)
        .count()
}

/// Authorization flows begun and not finished, straight from the database.
async fn pending_authorizations(database: &str) -> i64 {
    const COUNT: &str = "SELECT COUNT(*) FROM oauth_states";
    if database.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database).await.unwrap();
        let n = sqlx::query_scalar(COUNT).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::SqlitePool::connect(database).await.unwrap();
        let n = sqlx::query_scalar(COUNT).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

/// The client a token was granted to, as the org's introspection says.
async fn client_of(org: &RunningFakeOrg, token: &str) -> Value {
    let answer: Value = reqwest::Client::new()
        .post(org.introspect_url())
        .form(&[
            ("token", token),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["active"], true, "{answer}");
    answer["client_id"].clone()
}

#[tokio::test]
async fn resume_after_the_org_gets_a_run_as_user_releases_the_held_deliveries() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
        let t = TestServer::start(&db).await;
        let registered = register(&t, &org.callback_url(), cc_key(&org)).await;
        for package in ["p1", "p2"] {
            let (status, event) = json(
                t.req(Method::POST, "/api/events")
                    .json(
                        &json!({"name": "PACKAGE_COMPLETE", "packageId": package, "origin": "OSS"}),
                    )
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 202, "{event}");
        }
        // The grant is refused: the connector waits, and so do its deliveries.
        eventually("both deliveries held", || async { held(&t).await == 2 }).await;
        let (_, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        assert_eq!(got["status"], "needs_reauth", "{got}");
        assert!(org.callbacks().is_empty());

        // The connector test says the way back.
        let (_, report) = json(
            t.req(Method::POST, &format!("{PATH}/test"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let token = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "token")
            .unwrap()
            .clone();
        assert_eq!(token["ok"], false, "{report}");
        let fix = token["fix"].as_str().unwrap();
        assert!(
            fix.contains("/api/callback/connectors/salesforceOauth2/resume")
                && fix.contains("hookwarden connectors resume salesforceOauth2"),
            "{token}"
        );

        // Not fixed yet: refused again, with the diagnosis; still waiting.
        let failed = grants(&t, "failed").await;
        let (status, err) = json(
            t.req(Method::POST, &format!("{PATH}/resume"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 422, "no_run_as_user");
        assert_eq!(err["diagnosis"]["code"], "no_run_as_user", "{err}");
        assert!(
            err["diagnosis"]["cause"]
                .as_str()
                .is_some_and(|c| c.contains("Run As")),
            "{err}"
        );
        assert!(err["diagnosis"]["fix"]
            .as_str()
            .is_some_and(|f| !f.is_empty()));
        assert_eq!(grants(&t, "failed").await, failed + 1);
        let (_, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        assert_eq!(got["status"], "needs_reauth", "{got}");
        assert_eq!(held(&t).await, 2);

        // The org gets its Run As user: the same credentials work again.
        org.set_run_as_user(Some("integration@fake-org.example"));
        let (status, resumed) = json(
            t.req(Method::POST, &format!("{PATH}/resume"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{resumed}");
        assert_eq!(resumed["status"], "active");
        assert_eq!(resumed["released"], 2);
        assert_eq!(resumed["token"]["has_access_token"], true, "{resumed}");
        assert_eq!(
            resumed["credentials_version"], registered["credentials_version"],
            "the same credentials"
        );
        assert_eq!(resumed["key"], registered["key"]);
        assert_eq!(resumed["flow"], "client_credentials");
        eventually("both deliveries arrive", || async {
            org.callbacks().len() == 2
        })
        .await;
        for callback in org.callbacks() {
            assert_eq!(
                client_of(&org, &callback.access_token).await,
                DEFAULT_CLIENT_ID
            );
        }
        assert_eq!(held(&t).await, 0);
        assert_eq!(org.stats().grants_ok("client_credentials"), 1);

        // Re-authentication in a browser is not for a client-credentials connector: refused,
        // and nothing changes (no flow begun, the same key, flow and status).
        let (_, before) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        let (status, err) = json(
            t.req(Method::GET, &format!("{PATH}/oauth/url"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 409, "wrong_flow");
        assert!(
            err["fix"].as_str().unwrap().contains("refresh token"),
            "{err}"
        );
        let (_, after) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        for field in ["key", "flow", "status", "credentials_version", "updated_at"] {
            assert_eq!(after[field], before[field], "{field}");
        }
        assert_eq!(after["flow"], "client_credentials");
        assert_eq!(pending_authorizations(&t.database).await, 0);

        // Active: nothing to resume.
        let (status, err) = json(
            t.req(Method::POST, &format!("{PATH}/resume"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 409, "nothing_to_resume");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_revoked_connector_is_not_resumed_but_asks_for_its_credentials() {
    let (urls, _dir) = each_database().await;
    let org = FakeOrg::builder().start().await.unwrap();
    let t = TestServer::start(&urls[0]).await;
    register(&t, &org.callback_url(), cc_key(&org)).await;
    let (status, _) = json(
        t.req(Method::POST, &format!("{PATH}/revoke"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let grants = org.stats().grants_total("client_credentials");
    let (status, err) = json(
        t.req(Method::POST, &format!("{PATH}/resume"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 409, "credentials_required");
    assert!(err["fix"].as_str().unwrap().contains("PATCH"), "{err}");
    assert_eq!(org.stats().grants_total("client_credentials"), grants);
    let (_, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
    assert_eq!(got["status"], "revoked");
    // An unknown connector is a 404, as everywhere.
    let (status, err) = json(
        t.req(Method::POST, "/api/callback/connectors/nope/resume")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 404, "not_found");
    // The OpenAPI document has it, with the refusal's shape.
    let (_, doc) = json(t.http.get(t.url("/api/openapi.json")).send().await.unwrap()).await;
    let responses = &doc["paths"]["/api/callback/connectors/{name}/resume"]["post"]["responses"];
    for code in ["200", "404", "409", "422", "503"] {
        assert!(responses[code].is_object(), "{code}: {responses}");
    }
    assert!(doc["components"]["schemas"]["ResumeRefused"].is_object());
}
