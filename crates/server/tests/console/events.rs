//! "Send a test event": the form, where the event went (each delivery with its connector, or
//! nothing), the API's refusal of a bad event, and admin only.

use hookwarden_fake_org::FakeOrg;
use reqwest::StatusCode;

use crate::common::*;
use crate::deliveries::{post_form, register, wait_for};
use crate::*;

#[tokio::test]
async fn an_admin_sends_a_test_event_and_sees_where_it_went() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org, "sfOne", &["PACKAGE_COMPLETE"]).await;
        register(&t, &org, "sfTwo", &["PACKAGE_COMPLETE", "DOCUMENT_SIGNED"]).await;
        let admin = key_with(&t, &["admin"]).await;
        let cookie = session_for(&t, &admin).await;

        // The form: labelled fields, OneSpan's event names offered, and who takes what.
        let (status, _, html) = get_page(&t, &cookie, "/console/events/new").await;
        assert_eq!(status, 200);
        assert!(
            html.contains("method=\"post\" action=\"/console/events\""),
            "{html}"
        );
        for (id, name) in [
            ("e-name", "name"),
            ("e-package", "package_id"),
            ("e-origin", "origin"),
        ] {
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
            assert!(
                html.contains(&format!("id=\"{id}\" name=\"{name}\"")),
                "{id}"
            );
        }
        assert!(html.contains("<datalist id=\"onespan-events\">"), "{html}");
        assert!(
            html.contains("<option value=\"DOCUMENT_SIGNED\">"),
            "{html}"
        );
        assert!(
            html.contains("value=\"PACKAGE_COMPLETE\""),
            "the default name"
        );
        assert!(html.contains("value=\"OSS\""), "the default origin");
        assert!(html.contains("aria-current=\"page\">Send a test event<"));
        assert!(html.contains("Who takes what"));
        let csrf = csrf_of(&html);

        // Sent: 303 to the page with the result, which a reload shows again without sending.
        let (status, location, body) = post_form(
            &t,
            &cookie,
            "/console/events",
            &[
                ("csrf_token", &csrf),
                ("name", "PACKAGE_COMPLETE"),
                ("package_id", "pkg-console-1"),
                ("origin", "OSS"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert!(
            location.starts_with("/console/events/new?sent=evt_"),
            "{location}"
        );
        let (status, _, html) = get_page(&t, &cookie, &location).await;
        assert_eq!(status, 200);
        assert!(
            html.contains("Sent PACKAGE_COMPLETE for package pkg-console-1"),
            "{html}"
        );
        assert!(html.contains("It made 2 deliveries"), "{html}");
        let result = &html[html.find("<section class=\"result\"").unwrap()..];
        let result = &result[..result.find("</section>").unwrap()];
        let ids: Vec<String> = result
            .split("<tr data-delivery=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect();
        assert_eq!(ids.len(), 2, "{result}");
        let mut connectors = Vec::new();
        for id in &ids {
            let d = wait_for(&t, id, "delivered").await;
            assert_eq!(d["package_id"], "pkg-console-1");
            let connector = d["connector"].as_str().unwrap().to_owned();
            let row = &result[result.find(&format!("<tr data-delivery=\"{id}\"")).unwrap()..];
            let row = &row[..row.find("</tr>").unwrap()];
            assert!(
                row.contains(&format!("href=\"/console/connectors/{connector}\"")),
                "{row}"
            );
            assert!(
                row.contains(&format!("href=\"/console/deliveries/{id}\"")),
                "{row}"
            );
            connectors.push(connector);
        }
        connectors.sort();
        assert_eq!(connectors, ["sfOne", "sfTwo"]);
        // The form is there again, with what was sent.
        assert!(html.contains("value=\"pkg-console-1\""), "{html}");
        let (status, _, page) =
            get_page(&t, &cookie, &format!("/console/deliveries/{}", ids[0])).await;
        assert_eq!(status, 200);
        assert!(page.contains("pkg-console-1"));
        let (_, list) = json(
            t.req(reqwest::Method::GET, "/api/deliveries")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            list["deliveries"].as_array().unwrap().len(),
            2,
            "one send, not two"
        );

        // An event no connector takes (and no default callback): said so.
        let (status, location, _) = post_form(
            &t,
            &cookie,
            "/console/events",
            &[
                ("csrf_token", &csrf),
                ("name", "DOCUMENT_SIGNED"),
                ("package_id", "pkg-2"),
                ("origin", "WEB"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, html) = get_page(&t, &cookie, &location).await;
        assert!(
            html.contains("No connector takes DOCUMENT_SIGNED from origin WEB"),
            "{html}"
        );
        assert!(html.contains("nothing was sent"), "{html}");

        // A bad event is the API's refusal, on the form with what was typed.
        let (status, _, html) = post_form(
            &t,
            &cookie,
            "/console/events",
            &[
                ("csrf_token", &csrf),
                ("name", "not an event"),
                ("package_id", "pkg-3"),
                ("origin", "OSS"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(html.contains("is not an event name"), "{html}");
        assert!(html.contains("value=\"pkg-3\""), "{html}");
        let (status, _, html) = post_form(
            &t,
            &cookie,
            "/console/events",
            &[
                ("csrf_token", &csrf),
                ("name", "PACKAGE_COMPLETE"),
                ("package_id", " "),
                ("origin", "OSS"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("packageId: is required"), "{html}");

        // Without the form's token: refused, nothing sent.
        for fields in [
            &[
                ("name", "PACKAGE_COMPLETE"),
                ("package_id", "pkg-4"),
                ("origin", "OSS"),
            ][..],
            &[
                ("csrf_token", "forged"),
                ("name", "PACKAGE_COMPLETE"),
                ("package_id", "pkg-4"),
                ("origin", "OSS"),
            ][..],
        ] {
            let (status, _, _) = post_form(&t, &cookie, "/console/events", fields).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        let (_, list) = json(
            t.req(reqwest::Method::GET, "/api/deliveries?package_id=pkg-4")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list["deliveries"], serde_json::json!([]));
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_read_session_cannot_send_an_event() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org, "sfOne", &["PACKAGE_COMPLETE"]).await;
        let read = key_with(&t, &["read"]).await;
        let cookie = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &cookie, "/console/events/new").await;
        assert_eq!(status, 200);
        assert!(html.contains("takes a session with an admin key"), "{html}");
        assert!(
            !html.contains("action=\"/console/events\""),
            "no form: {html}"
        );
        assert!(html.contains("sfOne"), "who takes what is still shown");
        let csrf = csrf_of(&html); // the logout form's
        let (status, _, html) = post_form(
            &t,
            &cookie,
            "/console/events",
            &[
                ("csrf_token", &csrf),
                ("name", "PACKAGE_COMPLETE"),
                ("package_id", "pkg-read"),
                ("origin", "OSS"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(html.contains("read scope"), "{html}");
        let (_, list) = json(
            t.req(reqwest::Method::GET, "/api/deliveries")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            list["deliveries"],
            serde_json::json!([]),
            "nothing was sent"
        );
        t.server.shutdown().await.unwrap();
    }
}
