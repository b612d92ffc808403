//! The deliveries pages: the list with each filter and its paging, a failed delivery with every
//! attempt, Retry for an admin session (and not for a read one, nor without the form's token).

use std::time::{Duration, Instant};

use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::*;
use crate::*;

/// Register a Salesforce connector of account A at the fake org's Apex endpoint (client
/// credentials), taking `events` from OSS.
pub async fn register(t: &TestServer, org: &RunningFakeOrg, name: &str, events: &[&str]) {
    register_as(t, org, name, events, false).await
}

async fn register_as(
    t: &TestServer,
    org: &RunningFakeOrg,
    name: &str,
    events: &[&str],
    account_b: bool,
) {
    let key = b64(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
    }));
    let path = format!("/api/callback/connectors/{name}");
    let req = if account_b {
        t.req_b(Method::POST, &path)
    } else {
        t.req(Method::POST, &path)
    };
    let (status, body) = json(
        req.json(&json!({"preset": "salesforce", "url": org.callback_url(), "events": events, "key": key}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Post events (`(name, package id)`, from OSS) in one batch; the deliveries each made.
pub async fn post_events(t: &TestServer, events: &[(&str, &str)]) -> Vec<Vec<String>> {
    let batch: Vec<Value> = events
        .iter()
        .map(|(name, package)| json!({"name": name, "packageId": package, "origin": "OSS"}))
        .collect();
    let (status, body) = json(
        t.req(Method::POST, "/api/events/batch")
            .json(&json!({ "events": batch }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

/// The delivery as the API answers it, once its status is `status` (polled: the server's
/// delivery engine runs on its own).
pub async fn wait_for(t: &TestServer, id: &str, status: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, d) = json(
            t.req(Method::GET, &format!("/api/deliveries/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{d}");
        if d["status"] == status && d["in_flight"] == false {
            return d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id} is not {status}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The ids of the deliveries a list page shows, in order.
fn rows(html: &str) -> Vec<String> {
    html.split("<tr data-delivery=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

/// The `href` of the link whose attributes end with `marker` (e.g. `rel="next"`), unescaped.
fn href_of(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let before = &html[..at];
    let start = before.rfind("href=\"")? + "href=\"".len();
    let href = &before[start..];
    Some(href[..href.find('"').unwrap()].replace("&amp;", "&"))
}

/// A form POST with the session cookie: status, Location and HTML.
pub async fn post_form(
    t: &TestServer,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let resp = browser()
        .post(t.url(path))
        .header(COOKIE, cookie)
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

#[tokio::test]
async fn the_list_filters_by_status_connector_package_and_time() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        let read = key_with(&t, &["read"]).await;
        let cookie = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &cookie, "/console/deliveries").await;
        assert_eq!(status, 200);
        assert!(html.contains("No delivery yet"), "{html}");
        // The navigation names the new pages.
        assert!(html.contains("href=\"/console/deliveries\" aria-current=\"page\">Deliveries<"));
        assert!(html.contains("href=\"/console/events/new\">Send a test event<"));

        register(&t, &org, "sfOne", &["PACKAGE_COMPLETE"]).await;
        register(&t, &org, "sfTwo", &["DOCUMENT_SIGNED"]).await;
        let made = post_events(
            &t,
            &[("PACKAGE_COMPLETE", "pkg-a"), ("DOCUMENT_SIGNED", "pkg-b")],
        )
        .await;
        let (a, b) = (made[0][0].clone(), made[1][0].clone());
        wait_for(&t, &a, "delivered").await;
        wait_for(&t, &b, "delivered").await;
        org.set_apex_class_access_denied(true);
        let c = post_events(&t, &[("PACKAGE_COMPLETE", "pkg-c")]).await[0][0].clone();
        wait_for(&t, &c, "failed").await;

        let list = |query: &'static str| {
            let (t, cookie) = (&t, &cookie);
            async move {
                let (status, _, html) =
                    get_page(t, cookie, &format!("/console/deliveries{query}")).await;
                assert_eq!(status, 200, "{query}: {html}");
                rows(&html)
            }
        };
        // Newest first.
        assert_eq!(list("").await, [c.as_str(), b.as_str(), a.as_str()]);
        // The form's empty fields filter nothing.
        assert_eq!(
            list("?status=&connector=&package=&since=&until=")
                .await
                .len(),
            3
        );
        assert_eq!(list("?status=failed").await, [c.as_str()]);
        assert_eq!(list("?status=delivered").await, [b.as_str(), a.as_str()]);
        assert!(list("?status=held").await.is_empty());
        assert_eq!(list("?connector=sfTwo").await, [b.as_str()]);
        assert_eq!(list("?connector=sfOne").await, [c.as_str(), a.as_str()]);
        assert_eq!(list("?package=pkg-a").await, [a.as_str()]);
        assert_eq!(
            list("?connector=sfOne&status=delivered").await,
            [a.as_str()]
        );
        assert_eq!(list("?since=2000-01-01").await.len(), 3);
        assert!(list("?since=2999-01-01+00%3A00").await.is_empty());
        assert!(list("?until=2000-01-01T00%3A00%3A00Z").await.is_empty());
        assert_eq!(list("?until=2999-01-01T00%3A00").await.len(), 3);

        // The form: labelled fields, the account's connectors and the default callback, and
        // the filters given kept in it.
        let (_, _, html) = get_page(
            &t,
            &cookie,
            "/console/deliveries?status=failed&connector=sfOne&package=pkg-c",
        )
        .await;
        for (id, name) in [
            ("f-status", "status"),
            ("f-connector", "connector"),
            ("f-package", "package"),
            ("f-since", "since"),
            ("f-until", "until"),
        ] {
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
            assert!(
                html.contains(&format!("id=\"{id}\" name=\"{name}\"")),
                "{id}"
            );
        }
        assert!(html.contains("<option value=\"failed\" selected>failed</option>"));
        assert!(html.contains("<option value=\"sfOne\" selected>sfOne</option>"));
        assert!(html.contains("<option value=\"sfTwo\">sfTwo</option>"));
        assert!(html.contains("<option value=\"@default\">"), "{html}");
        assert!(html.contains("value=\"pkg-c\""));
        // The row: a link to the delivery, its connector's row, the event, the status, the
        // attempts and the last error.
        let row = &html[html.find("<tr data-delivery=").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&format!("href=\"/console/deliveries/{c}\"")),
            "{row}"
        );
        assert!(row.contains("href=\"/console/connectors/sfOne\""), "{row}");
        assert!(row.contains("PACKAGE_COMPLETE"), "{row}");
        assert!(
            row.contains("<span class=\"badge bad\">failed</span>"),
            "{row}"
        );
        assert!(row.contains("data-label=\"Attempts\">1<"), "{row}");
        for header in [
            "Delivery",
            "Connector",
            "Event",
            "Package",
            "Status",
            "Attempts",
            "Created",
        ] {
            assert!(
                html.contains(&format!("<th scope=\"col\">{header}</th>")),
                "{header}"
            );
        }
        let (_, _, html) = get_page(&t, &cookie, "/console/deliveries?package=nope").await;
        assert!(html.contains("No delivery matches these filters"), "{html}");

        // A bad value is the API's refusal on the page, not a server error.
        for (query, says) in [
            ("?status=bogus", "is not a delivery status"),
            ("?since=yesterday", "is not an RFC 3339 time"),
            ("?until=2024-13-45", "is not an RFC 3339 time"),
            ("?cursor=not-a-cursor", "not a cursor this server gave out"),
        ] {
            let (status, _, html) =
                get_page(&t, &cookie, &format!("/console/deliveries{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert!(html.contains("role=\"alert\""), "{query}: {html}");
            assert!(html.contains(says), "{query}: {html}");
            assert!(
                html.contains("action=\"/console/deliveries\""),
                "the form stays"
            );
        }

        // Another account's deliveries are neither in this one's list nor on its pages.
        register_as(&t, &org, "sfOne", &["PACKAGE_COMPLETE"], true).await;
        let (status, body) = json(
            t.req_b(Method::POST, "/api/events")
                .json(&json!({"name": "PACKAGE_COMPLETE", "packageId": "pkg-a", "origin": "OSS"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let theirs = body["deliveries"][0].as_str().unwrap().to_owned();
        assert_eq!(list("").await.len(), 3);
        assert_eq!(list("?package=pkg-a").await, [a.as_str()]);
        let (status, _, _) = get_page(&t, &cookie, &format!("/console/deliveries/{theirs}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_list_pages_50_at_a_time_with_the_filters_kept() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org, "sfOne", &["PACKAGE_COMPLETE"]).await;
        register(&t, &org, "sfTwo", &["DOCUMENT_SIGNED"]).await;
        let packages: Vec<String> = (0..60).map(|i| format!("pkg-{i:02}")).collect();
        let mut events: Vec<(&str, &str)> = packages
            .iter()
            .map(|p| ("PACKAGE_COMPLETE", p.as_str()))
            .collect();
        // Others that the filter leaves out.
        events.extend([("DOCUMENT_SIGNED", "pkg-x"), ("DOCUMENT_SIGNED", "pkg-y")]);
        let made: Vec<String> = post_events(&t, &events)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(made.len(), 62);
        let read = key_with(&t, &["read"]).await;
        let cookie = session_for(&t, &read).await;

        let (status, _, first) = get_page(&t, &cookie, "/console/deliveries?connector=sfOne").await;
        assert_eq!(status, 200);
        let page1 = rows(&first);
        assert_eq!(page1.len(), 50);
        assert!(!first.contains("← Newest"), "the first page is the newest");
        let older = href_of(&first, "rel=\"next\"").expect("an Older link");
        assert!(first.contains("rel=\"next\">Older →</a>"));
        assert!(
            older.starts_with("/console/deliveries?connector=sfOne&cursor="),
            "{older}"
        );

        let (status, _, second) = get_page(&t, &cookie, &older).await;
        assert_eq!(status, 200);
        let page2 = rows(&second);
        assert_eq!(page2.len(), 10);
        assert!(href_of(&second, "rel=\"next\"").is_none(), "the last page");
        let newest = href_of(&second, ">← Newest").unwrap();
        assert_eq!(newest, "/console/deliveries?connector=sfOne");

        // Every one of the connector's deliveries once, newest first, and no other's.
        let mut expected: Vec<String> = made[..60].to_vec();
        expected.reverse();
        let seen: Vec<String> = page1.into_iter().chain(page2).collect();
        assert_eq!(seen, expected);

        // Without a filter the first page is 50 of all 62.
        let (_, _, all) = get_page(&t, &cookie, "/console/deliveries").await;
        assert_eq!(rows(&all).len(), 50);
        let older = href_of(&all, "rel=\"next\"").unwrap();
        assert!(older.starts_with("/console/deliveries?cursor="), "{older}");
        let (_, _, rest) = get_page(&t, &cookie, &older).await;
        assert_eq!(rows(&rest).len(), 12);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_failed_delivery_shows_every_attempt_and_an_admin_retries_it() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org, "sfOne", &["PACKAGE_COMPLETE"]).await;
        org.set_apex_class_access_denied(true);
        let id = post_events(&t, &[("PACKAGE_COMPLETE", "pkg-1")]).await[0][0].clone();
        wait_for(&t, &id, "failed").await;
        let path = format!("/console/deliveries/{id}");
        let retry_path = format!("{path}/retry");

        // A read session sees it all and has no Retry; its forged POST is refused.
        let read = key_with(&t, &["read"]).await;
        let read_cookie = session_for(&t, &read).await;
        let (status, _, html) = get_page(&t, &read_cookie, &path).await;
        assert_eq!(status, 200);
        assert!(html.contains(&id));
        assert!(
            !html.contains(&format!("action=\"{retry_path}\"")),
            "{html}"
        );
        assert!(!html.contains(">Retry</button>"), "{html}");
        let read_csrf = csrf_of(&html); // the logout form's
        let (status, _, html) =
            post_form(&t, &read_cookie, &retry_path, &[("csrf_token", &read_csrf)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(html.contains("read scope"), "{html}");

        // The admin's page: the attempt with its status, duration, token refresh, diagnosis,
        // fix and the answer's excerpt; a link to the connector's row; Retry.
        let admin = key_with(&t, &["admin"]).await;
        let cookie = session_for(&t, &admin).await;
        let (status, _, html) = get_page(&t, &cookie, &path).await;
        assert_eq!(status, 200);
        assert!(
            html.contains("<span class=\"badge bad\">failed</span>"),
            "{html}"
        );
        assert!(html.contains("Attempts (1)"), "{html}");
        let attempt = &html[html.find("data-attempt=\"1\"").unwrap()..];
        let attempt = &attempt[..attempt.find("</li>").unwrap()];
        assert!(
            attempt.contains("<dt>HTTP status</dt><dd>403</dd>"),
            "{attempt}"
        );
        assert!(attempt.contains("<dt>Duration</dt><dd>"), "{attempt}");
        assert!(attempt.contains(" ms</dd>"), "{attempt}");
        assert!(attempt.contains("<dt>Token refreshed</dt>"), "{attempt}");
        assert!(attempt.contains("apex_class_access"), "{attempt}");
        assert!(
            attempt.contains("Fix: add OssCallbackResource"),
            "{attempt}"
        );
        assert!(attempt.contains("<pre>"), "{attempt}");
        let excerpt = &attempt[attempt.find("<pre>").unwrap()..];
        assert!(excerpt.contains("FORBIDDEN"), "{excerpt}");
        assert!(html.contains("href=\"/console/connectors/sfOne\""));
        assert!(html.contains(&format!("action=\"{retry_path}\"")), "{html}");
        assert!(html.contains(">Retry</button>"), "{html}");
        let csrf = csrf_of(&html);

        // Without the form's token, or with another one: refused, nothing retried.
        for fields in [&[][..], &[("csrf_token", "not-the-token")][..]] {
            let (status, _, _) = post_form(&t, &cookie, &retry_path, fields).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{fields:?}");
        }
        let resp = browser()
            .post(t.url(&retry_path))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no body at all");
        let d = wait_for(&t, &id, "failed").await;
        assert_eq!(d["attempts"].as_array().unwrap().len(), 1);

        // Fixed in the org, retried: back to the page with a notice, then delivered.
        org.set_apex_class_access_denied(false);
        let (status, location, _) =
            post_form(&t, &cookie, &retry_path, &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location, format!("{path}?done=retried"));
        let (status, _, html) = get_page(&t, &cookie, &location).await;
        assert_eq!(status, 200);
        assert!(html.contains("role=\"status\""), "{html}");
        assert!(html.contains("one more attempt"), "{html}");
        let d = wait_for(&t, &id, "delivered").await;
        assert_eq!(d["attempts"].as_array().unwrap().len(), 2);
        let (_, _, html) = get_page(&t, &cookie, &path).await;
        assert!(
            html.contains("<span class=\"badge ok\">delivered</span>"),
            "{html}"
        );
        assert!(html.contains("Attempts (2)"));
        let second = &html[html.find("data-attempt=\"2\"").unwrap()..];
        assert!(
            second.contains("<dt>HTTP status</dt><dd>200</dd>"),
            "{second}"
        );
        // A delivered one is sent again only on purpose: its button says so, and a plain
        // Retry is the API's refusal, shown on the page.
        assert!(!html.contains(">Retry</button>"));
        assert!(html.contains("name=\"force\" value=\"true\""), "{html}");
        assert!(html.contains(">Send again</button>"), "{html}");
        let (status, _, html) = post_form(&t, &cookie, &retry_path, &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(html.contains("was delivered already"), "{html}");
        assert!(html.contains("Attempts (2)"), "the delivery is still shown");
        let (status, location, _) = post_form(
            &t,
            &cookie,
            &retry_path,
            &[("csrf_token", &csrf), ("force", "true")],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location, format!("{path}?done=sent_again"));
        let start = Instant::now();
        while wait_for(&t, &id, "delivered").await["attempts"]
            .as_array()
            .unwrap()
            .len()
            < 3
        {
            assert!(start.elapsed() < Duration::from_secs(20), "sent again");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        // No such delivery (or another account's): 404 on the page.
        let (status, _, html) = get_page(&t, &cookie, "/console/deliveries/dlv_nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("there is no delivery with this id"), "{html}");
        let (status, _, _) = post_form(
            &t,
            &cookie,
            "/console/deliveries/dlv_nope/retry",
            &[("csrf_token", &csrf)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        t.server.shutdown().await.unwrap();
    }
}
