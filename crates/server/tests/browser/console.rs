//! What the on-call engineer does in the console: log in with a read key and find out what is
//! wrong with a broken connector; log in with an admin key and retry a failed delivery.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use hookwarden_fake_org::{
    FakeOrg, Faults, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::{browser, PATIENCE};

/// A server on a SQLite file in `dir` (the browser test needs no PostgreSQL).
async fn server(dir: &tempfile::TempDir) -> TestServer {
    TestServer::start(&format!(
        "sqlite://{}",
        dir.path().join("console.db").display()
    ))
    .await
}

/// A new API key of account A ("acme") with `scopes`.
async fn key_with(t: &TestServer, scopes: &[&str]) -> String {
    let (status, body) = json(
        t.req(Method::POST, "/api/keys")
            .json(&json!({"scopes": scopes}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["api_key"].as_str().unwrap().to_owned()
}

/// Register a Salesforce connector at the fake org: client credentials (`refresh: false`) or
/// a refresh token.
async fn register(t: &TestServer, org: &RunningFakeOrg, name: &str, refresh: bool) {
    let mut key = json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
    });
    if refresh {
        key["host"] = json!("login.salesforce.com");
        key["refresh_token"] = json!(org.issue_refresh_token(DEFAULT_CLIENT_ID));
    }
    let (status, body) = json(
        t.req(Method::POST, &format!("/api/callback/connectors/{name}"))
            .json(&json!({"preset": "salesforce", "url": org.callback_url(),
                          "events": ["PACKAGE_COMPLETE"], "key": b64(&key)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Ask for a token now (`POST …/token`); its status code.
async fn grant(t: &TestServer, name: &str) -> u16 {
    let path = format!("/api/callback/connectors/{name}/token");
    json(t.req(Method::POST, &path).send().await.unwrap())
        .await
        .0
}

async fn send_event(t: &TestServer, package: &str) -> Vec<String> {
    let (status, body) = json(
        t.req(Method::POST, "/api/events")
            .json(&json!({"name": "PACKAGE_COMPLETE", "packageId": package, "origin": "OSS"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status == 200 || status == 201 || status == 202, "{body}");
    body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

/// A delivery as the API shows it, once it is `status`.
async fn delivery_once(t: &TestServer, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (code, body) = json(
            t.req(Method::GET, &format!("/api/deliveries/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        if body["status"] == status {
            return body;
        }
        assert!(Instant::now() < deadline, "never {status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_read_key_logs_in_and_sees_what_is_wrong_with_a_broken_connector() {
    let Some(b) = browser().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let t = server(&dir).await;
    let org = FakeOrg::builder().start().await.unwrap();

    // One healthy connector with a grant and a delivery; one whose refresh token the org
    // revoked, so it needs re-authentication and holds its delivery.
    register(&t, &org, "salesforceProd", false).await;
    register(&t, &org, "salesforceSandbox", true).await;
    assert_eq!(grant(&t, "salesforceProd").await, 200);
    org.revoke_all_tokens();
    assert!(grant(&t, "salesforceSandbox").await >= 400);
    let sent = send_event(&t, "pkg-1").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let (mut delivered, mut held) = (0, 0);
    for id in &sent {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, d) = json(
                t.req(Method::GET, &format!("/api/deliveries/{id}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            match d["status"].as_str() {
                Some("delivered") => delivered += 1,
                Some("held") => held += 1,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                _ => panic!("still not delivered nor held: {d}"),
            }
            break;
        }
    }
    assert_eq!((delivered, held), (1, 1));

    let read = key_with(&t, &["read"]).await;
    b.log_in(&t.base, &read).await;

    let broken = b
        .wait_for("tr[data-connector='salesforceSandbox']")
        .await
        .text()
        .await
        .unwrap();
    for shown in ["needs_reauth", "refresh_token_expired", "Fix: "] {
        assert!(broken.contains(shown), "{shown:?} in the row: {broken}");
    }
    let healthy = b
        .wait_for("tr[data-connector='salesforceProd']")
        .await
        .text()
        .await
        .unwrap();
    assert!(healthy.contains("active"), "{healthy}");
    assert!(!healthy.contains("Fix: "), "{healthy}");
    let summary = b.wait_for("main p.muted").await.text().await.unwrap();
    assert!(summary.contains("1 not active"), "{summary}");
    let who = b.wait_for("header .who").await.text().await.unwrap();
    assert!(who.contains("(read only)"), "{who}");

    // In the browser: the session cookie is out of the page's script's reach, the script has
    // put the times in the browser's zone, and a read session has no form that changes
    // anything (logging out aside).
    let cookies = b
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert!(
        !cookies
            .as_str()
            .unwrap_or("")
            .contains("hookwarden_session"),
        "HttpOnly: {cookies}"
    );
    let times = b
        .client
        .find_all(Locator::Css("tr[data-connector='salesforceProd'] time"))
        .await
        .unwrap();
    assert!(!times.is_empty(), "the last grant and delivery have times");
    for time in &times {
        let text = time.text().await.unwrap();
        let utc = time.attr("datetime").await.unwrap().unwrap();
        assert!(
            !text.ends_with(" UTC"),
            "{text} ({utc}) left as the server wrote it"
        );
    }
    let actions = b
        .client
        .execute(
            "return [...document.querySelectorAll('form')].map(f => f.getAttribute('action'))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        actions,
        json!(["/console/logout"]),
        "a read session's forms"
    );

    if let Some(path) = std::env::var_os("HOOKWARDEN_SCREENSHOT") {
        b.screenshot(&PathBuf::from(path)).await;
    }

    // Logging out ends the session: the console sends the browser back to the form.
    b.button("Log out").await.click().await.unwrap();
    b.wait_for("input#api_key").await;
    b.open(&t.url("/console/connectors"), "input#api_key").await;
    assert_eq!(
        b.client.current_url().await.unwrap().path(),
        "/console/login"
    );
    b.close().await;
    t.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_admin_key_retries_a_failed_delivery_and_the_new_attempt_shows() {
    let Some(b) = browser().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let t = server(&dir).await;
    let org = FakeOrg::builder().start().await.unwrap();
    register(&t, &org, "salesforceProd", false).await;
    // The Apex endpoint refuses the first callback (400: failed, not retried by itself).
    org.set_apex_faults(Faults::fail_next(1, 400)).unwrap();
    let sent = send_event(&t, "pkg-retry").await;
    let id = sent[0].clone();
    let failed = delivery_once(&t, &id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "{failed}");

    let admin = key_with(&t, &["admin"]).await;
    b.log_in(&t.base, &admin).await;
    b.open(
        &t.url("/console/deliveries"),
        &format!("a[href='/console/deliveries/{id}']"),
    )
    .await
    .click()
    .await
    .unwrap();
    b.wait_for("main h1").await;
    assert_eq!(
        b.client.current_url().await.unwrap().path(),
        format!("/console/deliveries/{id}")
    );
    let page = b.wait_for("main").await.text().await.unwrap();
    assert!(page.contains("failed"), "{page}");
    assert!(page.contains("400"), "the attempt's answer: {page}");

    b.button("Retry").await.click().await.unwrap();
    // The engine sends it again; the delivery's page shows the new attempt once it is made.
    let deadline = Instant::now() + PATIENCE;
    let page = loop {
        let page = b
            .open(&t.url(&format!("/console/deliveries/{id}")), "main")
            .await
            .text()
            .await
            .unwrap();
        if page.contains("delivered") {
            break page;
        }
        assert!(Instant::now() < deadline, "never delivered: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(page.contains("400") && page.contains("200"), "{page}");
    let delivered = delivery_once(&t, &id, "delivered").await;
    let attempts = delivered["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{delivered}");
    assert_eq!(attempts[0]["status_code"], 400, "{delivered}");
    assert_eq!(attempts[1]["status_code"], 200, "{delivered}");
    assert_eq!(org.stats().callbacks_received, 1, "the retried one arrived");
    b.close().await;
    t.server.shutdown().await.unwrap();
}
