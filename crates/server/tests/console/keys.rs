//! The API keys page: a read session lists them; an admin session makes one (shown once) and
//! revokes one, and the last admin key stays.

use reqwest::header::COOKIE;
use reqwest::StatusCode;

use crate::common::*;
use crate::*;

#[tokio::test]
async fn keys_are_listed_made_once_and_revoked_from_the_console() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let read = key_with(&t, &["read"]).await;
        let reader = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &reader, "/console/keys").await;
        assert_eq!(status, 200);
        assert!(
            html.contains("this session"),
            "the session's own key is marked: {html}"
        );
        assert!(
            html.contains("<td data-label=\"Scopes\">read</td>"),
            "{html}"
        );
        assert!(
            !html.contains("action=\"/console/keys\""),
            "no form for read"
        );
        let csrf = csrf_of(&html);
        let forged = browser()
            .post(t.url("/console/keys"))
            .header(COOKIE, &reader)
            .form(&[("csrf_token", csrf.as_str()), ("scope_admin", "on")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);

        let admin = session_for(&t, &t.key_a).await;
        let (_, _, html) = get_page(&t, &admin, "/console/keys").await;
        let csrf = csrf_of(&html);
        assert!(html.contains("name=\"scope_ingest\""), "{html}");
        // No scope ticked: the API's own refusal, on a page.
        let none = browser()
            .post(t.url("/console/keys"))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", csrf.as_str()), ("name", "producer")])
            .send()
            .await
            .unwrap();
        assert_eq!(none.status(), StatusCode::BAD_REQUEST);
        assert!(none.text().await.unwrap().contains("role=\"alert\""));
        let made = browser()
            .post(t.url("/console/keys"))
            .header(COOKIE, &admin)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("scope_ingest", "on"),
                ("name", "producer"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), StatusCode::CREATED);
        let html = made.text().await.unwrap();
        let at = html.find("value=\"hwk_").expect("the key is shown");
        let key: String = html[at + 7..].chars().take_while(|c| *c != '"').collect();
        // It works as an ingest key, and the list shows it by name, not the key itself.
        let resp = t
            .http
            .post(t.url("/api/events"))
            .header("Authorization", format!("Basic {key}"))
            .json(
                &serde_json::json!({"name": "PACKAGE_COMPLETE", "packageId": "p", "origin": "OSS"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let (_, _, list) = get_page(&t, &admin, "/console/keys").await;
        assert!(list.contains("producer") && !list.contains(&key), "{list}");

        // Revoke the read key: its session ends with it.
        let (_, keys) = json(
            t.req(reqwest::Method::GET, "/api/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let id_of = |scope: &str| {
            keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["scopes"] == serde_json::json!([scope]))
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let resp = browser()
            .post(t.url(&format!("/console/keys/{}/revoke", id_of("read"))))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let (status, _, _) = get_page(&t, &reader, "/console/keys").await;
        assert!(status.is_redirection(), "the read key's session is over");
        // The last admin key stays, with the API's reason.
        let resp = browser()
            .post(t.url(&format!("/console/keys/{}/revoke", id_of("admin"))))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert!(resp.text().await.unwrap().contains("admin"));
        t.server.shutdown().await.unwrap();
    }
}
