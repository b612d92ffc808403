//! The connectors page: every connector with its status, and a broken one's diagnosis and fix
//! on the list itself.

use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::*;

#[tokio::test]
async fn the_list_shows_each_connector_and_what_is_wrong_with_a_broken_one() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        let read = key_with(&t, &["read"]).await;
        let cookie = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &cookie, "/console/connectors").await;
        assert_eq!(status, 200);
        assert!(html.contains("No connector yet"), "{html}");

        // One healthy, one whose refresh token the org revoked.
        let key = |refresh: bool| {
            let mut k = json!({
                "host": "login.salesforce.com",
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "token_url": org.token_url(),
                "revocation_url": org.revoke_url(),
            });
            if refresh {
                k["refresh_token"] = json!(org.issue_refresh_token(DEFAULT_CLIENT_ID));
            } else {
                k["host"] = json!("acme.my.salesforce.com");
            }
            b64(&k)
        };
        for (name, refresh) in [("healthyOne", false), ("brokenOne", true)] {
            let (status, body) = json(
                t.req(Method::POST, &format!("/api/callback/connectors/{name}"))
                    .json(&json!({"preset": "salesforce", "url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key(refresh)}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 201, "{body}");
        }
        org.revoke_all_tokens();
        let (status, body) = json(
            t.req(Method::POST, "/api/callback/connectors/brokenOne/token")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(status >= 400, "{body}");

        let (status, _, html) = get_page(&t, &cookie, "/console/connectors").await;
        assert_eq!(status, 200);
        assert!(html.contains("data-connector=\"healthyOne\""), "{html}");
        assert!(html.contains("data-connector=\"brokenOne\""), "{html}");
        let broken = &html[html.find("data-connector=\"brokenOne\"").unwrap()..];
        let broken = &broken[..broken.find("</tr>").unwrap()];
        assert!(broken.contains("needs_reauth"), "{broken}");
        assert!(broken.contains("refresh_token_expired"), "{broken}");
        assert!(broken.contains("Fix: "), "{broken}");
        assert!(html.contains("1 not active"), "{html}");
        // The table says what each column is, and nothing secret is in the page.
        for header in [
            "Status",
            "Flow",
            "Last grant",
            "Last delivery",
            "Pending",
            "Held",
            "Failed",
        ] {
            assert!(
                html.contains(&format!("<th scope=\"col\">{header}</th>")),
                "{header}"
            );
        }
        assert!(!html.contains(DEFAULT_CLIENT_SECRET));
        // A read session has no action buttons.
        assert!(!html.contains("type=\"submit\">Revoke"), "{html}");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_list_pages_at_100_rows() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    let key = b64(
        &json!({"token_url": "https://auth.example.com/oauth/token", "client_id": "c", "client_secret": "generic-secret-0000"}),
    );
    for i in 0..101 {
        let (status, body) = json(
            t.req(Method::POST, &format!("/api/callback/connectors/erp{i:03}"))
                .json(&json!({"url": "https://erp.example.com/hooks", "events": ["PACKAGE_COMPLETE"], "key": key}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let read = key_with(&t, &["read"]).await;
    let cookie = session_for(&t, &read).await;
    let (_, _, first) = get_page(&t, &cookie, "/console/connectors").await;
    assert_eq!(first.matches(" data-connector=").count(), 100);
    assert!(
        first.contains("Page 1 of 2") && first.contains("101 connectors"),
        "{first}"
    );
    let (_, _, second) = get_page(&t, &cookie, "/console/connectors?page=2").await;
    assert_eq!(second.matches(" data-connector=").count(), 1);
    assert!(second.contains("data-connector=\"erp100\""), "{second}");
    t.server.shutdown().await.unwrap();
}
