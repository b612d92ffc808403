//! The notifications page: a read session sees the endpoints and what was sent to them; an
//! admin session adds one (its secret shown once), sends a test and removes one.

use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;

use crate::common::*;
use crate::*;

#[tokio::test]
async fn endpoints_are_added_tested_and_removed_from_the_console() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let t = TestServer::start(&db).await;
        let read = key_with(&t, &["read"]).await;
        let reader = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &reader, "/console/notifications").await;
        assert_eq!(status, 200);
        assert!(html.contains("nobody is told"), "{html}");
        assert!(
            !html.contains("action=\"/console/notifications\""),
            "no form for read"
        );
        let csrf = csrf_of(&html);
        let forged = browser()
            .post(t.url("/console/notifications"))
            .header(COOKIE, &reader)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("url", "http://127.0.0.1:9/x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);

        let admin = session_for(&t, &t.key_a).await;
        let (_, _, html) = get_page(&t, &admin, "/console/notifications").await;
        let csrf = csrf_of(&html);
        assert!(html.contains("name=\"type_delivery.failed\""), "{html}");
        // The API's own refusal, on a page.
        let bad = browser()
            .post(t.url("/console/notifications"))
            .header(COOKIE, &admin)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("url", "ftp://example.com/x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.text().await.unwrap().contains("role=\"alert\""));
        // Nothing listens on port 9: the test notification is attempted and refused.
        let made = browser()
            .post(t.url("/console/notifications"))
            .header(COOKIE, &admin)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("url", "http://127.0.0.1:9/hook"),
                ("format", "standard"),
                ("type_connector.needs_reauth", "on"),
                ("type_delivery.failed", "on"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), StatusCode::CREATED);
        let html = made.text().await.unwrap();
        assert!(
            html.contains("value=\"whsec_"),
            "the secret is shown once: {html}"
        );
        let at = html.find("<code>ntf_").expect("the id is shown");
        let id: String = html[at + 6..].chars().take_while(|c| *c != '<').collect();

        let (_, _, html) = get_page(&t, &reader, "/console/notifications").await;
        assert!(html.contains(&id), "{html}");
        assert!(
            html.contains("connector.needs_reauth, delivery.failed"),
            "{html}"
        );
        assert!(!html.contains("whsec_"), "never again: {html}");
        assert!(html.contains("Nothing sent yet"), "{html}");

        let tested = browser()
            .post(t.url(&format!("/console/notifications/{id}/test")))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(tested.status(), StatusCode::SEE_OTHER);
        let to = tested.headers()[LOCATION].to_str().unwrap().to_owned();
        let (_, _, html) = get_page(&t, &admin, &to).await;
        assert!(html.contains("test notification"), "{html}");
        assert!(
            html.contains("notification.test"),
            "listed among what was sent: {html}"
        );

        let removed = browser()
            .post(t.url(&format!("/console/notifications/{id}/delete")))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::SEE_OTHER);
        let (_, _, html) = get_page(&t, &admin, "/console/notifications").await;
        assert!(!html.contains(&format!("data-endpoint=\"{id}\"")), "{html}");
        let again = browser()
            .post(t.url(&format!("/console/notifications/{id}/delete")))
            .header(COOKIE, &admin)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
    }
}
