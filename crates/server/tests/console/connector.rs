//! A connector's page: settings masked, token state without a token, the history with each
//! failure's diagnosis, and the actions of an admin session (none for a read one).

use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;
use crate::*;

const PAGE: &str = "/console/connectors/acmeOrg";

/// A refresh-token connector `acmeOrg` against `org`, with one token granted when `grant`.
async fn connector(t: &TestServer, org: &RunningFakeOrg, grant: bool) {
    let key = b64(&json!({
        "host": "login.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
        "authorization_url": org.authorize_url(),
    }));
    let (status, body) = json(
        t.req(Method::POST, "/api/callback/connectors/acmeOrg")
            .json(&json!({"preset": "salesforce", "url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    if !grant {
        return;
    }
    let (status, _) = json(
        t.req(Method::POST, "/api/callback/connectors/acmeOrg/token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

async fn post_form(t: &TestServer, cookie: &str, path: &str, csrf: &str) -> reqwest::Response {
    browser()
        .post(t.url(path))
        .header(COOKIE, cookie)
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_read_session_sees_settings_token_state_and_history_but_no_action() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        connector(&t, &org, false).await;
        // A refused grant, for the history and the diagnosis.
        org.revoke_all_tokens();
        let _ = t
            .req(Method::POST, "/api/callback/connectors/acmeOrg/token")
            .send()
            .await
            .unwrap();

        let read = key_with(&t, &["read"]).await;
        let cookie = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &cookie, "/console/connectors").await;
        assert_eq!(status, 200);
        assert!(
            html.contains("href=\"/console/connectors/acmeOrg\""),
            "the list links to it"
        );
        let (status, _, html) = get_page(&t, &cookie, PAGE).await;
        assert_eq!(status, 200, "{html}");
        for part in [
            "What is wrong",
            "refresh_token_expired",
            "Fix: ",
            "Settings",
            "Token state",
            "Access token held",
            "History",
            "needs_reauth",
            "invalid_grant",
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
        assert!(!html.contains(DEFAULT_CLIENT_SECRET), "secrets are masked");
        assert!(
            !html.contains("action=\"/console/connectors/acmeOrg/"),
            "no action for read"
        );

        // A forged action from a read session is refused, even with its own token.
        let csrf = csrf_of(&html);
        let resp = post_form(&t, &cookie, &format!("{PAGE}/revoke"), &csrf).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let (_, got) = json(
            t.req(Method::GET, "/api/callback/connectors/acmeOrg")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got["status"], "needs_reauth", "nothing changed");
        let (status, _, _) = get_page(&t, &cookie, "/console/connectors/noSuch").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn an_admin_session_tests_revokes_reauthenticates_replays_and_rotates() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        connector(&t, &org, true).await;
        let cookie = session_for(&t, &t.key_a).await;
        let (_, _, html) = get_page(&t, &cookie, PAGE).await;
        let csrf = csrf_of(&html);
        for action in ["test", "reauth", "replay", "signing-secret"] {
            assert!(
                html.contains(&format!("action=\"{PAGE}/{action}\"")),
                "{action} in {html}"
            );
        }
        // Without the session's token: refused.
        let resp = post_form(&t, &cookie, &format!("{PAGE}/test"), "forged").await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);

        // Test: each check.
        let resp = post_form(&t, &cookie, &format!("{PAGE}/test"), &csrf).await;
        assert_eq!(resp.status(), 200);
        let report = resp.text().await.unwrap();
        assert!(report.contains("passed"), "{report}");
        assert!(report.contains("ok token"), "{report}");

        // Rotate the signing secret: shown once, masked afterwards.
        let resp = post_form(&t, &cookie, &format!("{PAGE}/signing-secret"), &csrf).await;
        assert_eq!(resp.status(), 200);
        let shown = resp.text().await.unwrap();
        let at = shown.find("whsec_").expect("the new secret is shown");
        let secret: String = shown[at..].chars().take_while(|c| *c != '"').collect();
        assert!(secret.len() > 20, "{secret}");
        let (_, _, again) = get_page(&t, &cookie, PAGE).await;
        assert!(!again.contains(&secret), "shown only once");

        // Replay failed: back to the page with what it did.
        let resp = post_form(&t, &cookie, &format!("{PAGE}/replay"), &csrf).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = resp.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with(&format!("{PAGE}?done=")), "{to}");
        let (_, _, html) = get_page(&t, &cookie, &to).await;
        assert!(html.contains("0 failed deliveries queued again"), "{html}");

        // Revoke: a confirmation first, then the provider's answer.
        let (status, _, confirm) = get_page(&t, &cookie, &format!("{PAGE}/revoke")).await;
        assert_eq!(status, 200);
        assert!(
            confirm.contains(&format!("action=\"{PAGE}/revoke\"")),
            "{confirm}"
        );
        let resp = post_form(&t, &cookie, &format!("{PAGE}/revoke"), &csrf).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = resp.headers()["location"].to_str().unwrap().to_owned();
        let (_, _, html) = get_page(&t, &cookie, &to).await;
        assert!(html.contains("revoked (provider confirmed)"), "{html}");
        assert!(org.stats().revocations_ok() >= 1);

        // Re-authenticate: to the org, and back through the callback, with a way back here.
        let resp = post_form(&t, &cookie, &format!("{PAGE}/reauth"), &csrf).await;
        assert!(resp.status().is_redirection());
        let to_org = resp.headers()["location"].to_str().unwrap().to_owned();
        assert!(to_org.starts_with(&org.authorize_url()), "{to_org}");
        let approved = browser().get(&to_org).send().await.unwrap();
        let back = approved.headers()["location"].to_str().unwrap().to_owned();
        let done = browser().get(&back).send().await.unwrap();
        assert_eq!(done.status(), 200);
        let text = done.text().await.unwrap();
        assert!(text.contains(&format!("href=\"{PAGE}\"")), "{text}");
        let (_, got) = json(
            t.req(Method::GET, "/api/callback/connectors/acmeOrg")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got["status"], "active");
        t.server.shutdown().await.unwrap();
    }
}
