//! Login, the session cookie, idle expiry, logout, revoked keys and the scopes that may log in.

use std::time::Duration;

use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};

use crate::common::*;
use crate::*;

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_the_login_form() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    for path in ["/console", "/console/connectors"] {
        let resp = browser().get(t.url(path)).send().await.unwrap();
        assert!(resp.status().is_redirection(), "{path}: {}", resp.status());
        let to = resp.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/console/"), "{to}");
    }
    let (status, location, _) =
        get_page(&t, "hookwarden_session=forged", "/console/connectors").await;
    assert!(status.is_redirection());
    assert_eq!(location, "/console/login");

    let resp = browser().get(t.url("/console/login")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("method=\"post\" action=\"/console/login\""),
        "{html}"
    );
    assert!(html.contains("name=\"api_key\""), "{html}");
    assert!(html.contains("<label for=\"api_key\">"), "{html}");
    t.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_read_or_admin_key_logs_in_and_an_ingest_key_or_a_wrong_one_does_not() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let wrong = log_in(&t, "hwk_not_a_key_of_this_server").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.set_cookie.is_empty());
        assert!(wrong.body.contains("role=\"alert\""), "{}", wrong.body);

        let ingest = key_with(&t, &["ingest"]).await;
        let refused = log_in(&t, &ingest).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.body.contains("ingest scope only"),
            "{}",
            refused.body
        );
        assert!(refused.set_cookie.is_empty());

        for scopes in [&["read"][..], &["admin"][..]] {
            let key = key_with(&t, scopes).await;
            let ok = log_in(&t, &key).await;
            assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
            assert_eq!(ok.location, "/console/connectors");
            let cookie = &ok.set_cookie;
            assert!(cookie.starts_with("hookwarden_session="), "{cookie}");
            for attr in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
                assert!(cookie.contains(attr), "{cookie}");
            }
            assert!(!cookie.contains("Secure"), "plain http: {cookie}");
            // The cookie's value is not the key, nor stored as itself.
            assert!(!cookie.contains(&key));
            let session = cookie.split(';').next().unwrap();
            let (status, _, html) = get_page(&t, session, "/console/connectors").await;
            assert_eq!(status, 200);
            assert!(html.contains("acme"), "the account is named");
            // Logged in already: the login form sends it on.
            let (status, location, _) = get_page(&t, session, "/console/login").await;
            assert!(status.is_redirection());
            assert_eq!(location, "/console/connectors");
        }
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_public_url_is_https() {
    let (urls, _dir) = each_database().await;
    let mut s = settings(&urls[0], true);
    s.public_url = Some("https://hookwarden.example.com".into());
    let t = TestServer::start_with(s, None).await;
    let read = key_with(&t, &["read"]).await;
    let ok = log_in(&t, &read).await;
    assert!(ok.set_cookie.contains("; Secure"), "{}", ok.set_cookie);
    t.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_session_ends_after_12_hours_idle_at_logout_and_when_its_key_is_revoked() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let store = &t.server.state.store;

        // Idle: twelve hours and a minute later, the session is gone.
        let read = key_with(&t, &["read"]).await;
        let cookie = session_for(&t, &read).await;
        let token = cookie.split_once('=').unwrap().1;
        let now = chrono::Utc::now().timestamp_millis();
        let idle = 12 * 3600 * 1000;
        assert!(store
            .console_session(token, now + idle - 60_000, idle)
            .await
            .unwrap()
            .is_some());
        // Used then: counted from there.
        assert!(store
            .console_session(token, now + idle - 60_000 + idle + 61_000, idle)
            .await
            .unwrap()
            .is_none());
        let (status, location, _) = get_page(&t, &cookie, "/console/connectors").await;
        assert!(status.is_redirection());
        assert_eq!(location, "/console/login");

        // Logout needs the session's form token; then the session is gone.
        let cookie = session_for(&t, &read).await;
        let (_, _, html) = get_page(&t, &cookie, "/console/connectors").await;
        let csrf = csrf_of(&html);
        let forged = browser()
            .post(t.url("/console/logout"))
            .header(COOKIE, &cookie)
            .form(&[("csrf_token", "not-the-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let out = browser()
            .post(t.url("/console/logout"))
            .header(COOKIE, &cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        assert!(out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
        let (status, _, _) = get_page(&t, &cookie, "/console/connectors").await;
        assert!(status.is_redirection());

        // A revoked key's sessions end with it.
        let cookie = session_for(&t, &read).await;
        let (_, keys) = json(t.req(Method::GET, "/api/keys").send().await.unwrap()).await;
        let id = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["scopes"] == serde_json::json!(["read"]))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let resp = t
            .req(Method::DELETE, &format!("/api/keys/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (status, _, _) = get_page(&t, &cookie, "/console/connectors").await;
        assert!(status.is_redirection(), "a revoked key's session is over");
        t.server.shutdown().await.unwrap();
    }
}
