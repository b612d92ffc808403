//! The governance review page: a read session sees every connector's checks and no probe; an
//! admin session runs the live probe through a form that carries the CSRF token.

use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;
use crate::*;

async fn register(t: &TestServer, name: &str, org: &RunningFakeOrg, host: &str, owner: bool) {
    let key = b64(&json!({
        "host": host,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
    }));
    let mut body = json!({"preset": "salesforce", "url": org.callback_url(), "key": key,
                          "events": ["PACKAGE_COMPLETE"]});
    if owner {
        body["owner"] = json!("integrations@acme.example");
    }
    let (status, created) = json(
        t.req(Method::POST, &format!("/api/callback/connectors/{name}"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn the_review_page_shows_each_check_and_only_an_admin_probes() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, "healthy", &org, "acme.my.salesforce.com", true).await;
        register(&t, "notMyDomain", &org, "acme.lightning.force.com", false).await;

        let read = key_with(&t, &["read"]).await;
        let reader = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &reader, "/console/review").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            html.contains("aria-current=\"page\">Review</a>"),
            "in the nav: {html}"
        );
        assert!(html.contains("1 connector(s) failing"), "{html}");
        assert!(
            html.contains("href=\"/console/connectors/healthy\""),
            "{html}"
        );
        let row =
            |check: &str, level: &str| format!("data-check=\"{check}\" data-level=\"{level}\"");
        assert!(html.contains(&row("host", "fail")), "{html}");
        assert!(html.contains(&row("owner", "warn")), "{html}");
        assert!(html.contains("My Domain"), "the detail and fix: {html}");
        assert!(!html.contains("data-check=\"probe\""), "{html}");
        assert!(
            !html.contains("action=\"/console/review\""),
            "no probe for read: {html}"
        );
        assert!(html.contains("needs an admin key"), "{html}");
        // A read session's forged probe is refused, and nothing is sent to the org.
        let csrf = csrf_of(&html);
        let forged = browser()
            .post(t.url("/console/review"))
            .header(COOKIE, &reader)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert_eq!(org.stats().callbacks_received, 0);

        let admin = session_for(&t, &t.key_a).await;
        let (_, _, html) = get_page(&t, &admin, "/console/review").await;
        assert!(html.contains("action=\"/console/review\""), "{html}");
        let csrf = csrf_of(&html);
        let without = browser()
            .post(t.url("/console/review"))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", "not-the-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(without.status(), StatusCode::FORBIDDEN);
        let probed = browser()
            .post(t.url("/console/review"))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(probed.status(), StatusCode::OK);
        let html = probed.text().await.unwrap();
        assert!(html.contains(&row("probe", "ok")), "{html}");
        assert!(html.contains("With the live probe"), "{html}");
        assert!(
            org.stats().callbacks_received >= 1,
            "the probe sent a test event"
        );
        t.server.shutdown().await.unwrap();
    }
}
