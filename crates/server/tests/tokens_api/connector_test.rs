//! The connector test (`…/test`): the key, token and endpoint checks, a key that arrived line
//! wrapped, a missing Apex class and a refused token explained, and the probes in the history.

use hookwarden_fake_org::FakeOrg;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::{cc_key, register, PATH};

#[tokio::test]
async fn connector_test_checks_key_token_and_endpoint() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org.callback_url(), cc_key(&org)).await;
        let (status, report) = json(
            t.req(Method::POST, &format!("{PATH}/test"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["ok"], true, "{report}");
        let names: Vec<&str> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"key") && names.contains(&"token") && names.contains(&"endpoint"),
            "{names:?}"
        );
        assert_eq!(org.stats().grants_ok("client_credentials"), 1);
        assert_eq!(
            org.stats().callbacks_received,
            1,
            "the probe reached the Apex endpoint"
        );
        let probe = &org.callbacks()[0];
        assert!(probe
            .webhook_id
            .as_deref()
            .is_some_and(|id| id.starts_with("msg_test_")));
        // GET shows the token state, never the token.
        let resp = t
            .req(Method::GET, PATH)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let got: Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(got["token"]["has_access_token"], true, "{got}");
        assert!(
            !resp.contains(&probe.access_token),
            "the access token leaked into GET"
        );
        t.server.shutdown().await.unwrap();
    }
}

/// The key check of `…/test`, after registering `key`.
async fn key_check(t: &TestServer, url: &str, key: String) -> Value {
    let (status, body) = json(
        t.req(Method::POST, PATH)
            .json(&json!({"url": url, "events": ["PACKAGE_COMPLETE"], "key": key}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status == 200 || status == 201, "{body}");
    let (_, report) = json(
        t.req(Method::POST, &format!("{PATH}/test"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "key")
        .cloned()
        .unwrap_or_else(|| panic!("no key check in {report}"))
}

#[tokio::test]
async fn connector_test_names_a_key_that_arrived_line_wrapped() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        // What `base64` without `-w 0` prints: lines of 76 characters.
        let plain = cc_key(&org);
        let wrapped: String = plain
            .as_bytes()
            .chunks(76)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let check = key_check(&t, &org.callback_url(), wrapped).await;
        let diagnosis = hookwarden_core::diagnosis::line_wrapped_key();
        assert!(
            check["detail"].as_str().unwrap().contains(&diagnosis.cause),
            "{check}"
        );
        assert_eq!(check["fix"], diagnosis.fix, "{check}");
        // The same key given again on one line: nothing to say about it any more.
        let check = key_check(&t, &org.callback_url(), plain).await;
        assert!(
            !check["detail"].as_str().unwrap().contains(&diagnosis.cause),
            "{check}"
        );
        assert!(check["fix"].is_null(), "{check}");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn connector_test_explains_a_missing_apex_class_and_a_refused_token() {
    let (urls, _dir) = each_database().await;
    let org = FakeOrg::builder()
        .namespace(Some("ONSS"))
        .start()
        .await
        .unwrap();
    let t = TestServer::start(&urls[0]).await;
    // The class lives under the ONSS namespace; the URL forgot the prefix.
    register(
        &t,
        &format!("{}/services/apexrest/OSS/callback", org.base_url()),
        cc_key(&org),
    )
    .await;
    let (_, report) = json(
        t.req(Method::POST, &format!("{PATH}/test"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(report["ok"], false, "{report}");
    let endpoint = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "endpoint")
        .unwrap()
        .clone();
    assert_eq!(endpoint["ok"], false);
    let text = endpoint.to_string().to_lowercase();
    assert!(
        text.contains("apex") && text.contains("namespace"),
        "{endpoint}"
    );

    // The endpoint refuses the token (revoked behind our back).
    let (status, _) = json(
        t.req(Method::PATCH, PATH)
            .json(&json!({"url": org.callback_url()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    org.invalidate_next_apex_sessions(1);
    let (_, report) = json(
        t.req(Method::POST, &format!("{PATH}/test"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let endpoint = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "endpoint")
        .unwrap()
        .clone();
    assert_eq!(endpoint["ok"], false, "{report}");
    assert!(
        endpoint["detail"].as_str().unwrap().contains("401"),
        "{endpoint}"
    );
    assert!(
        endpoint["fix"].as_str().is_some_and(|f| !f.is_empty()),
        "{endpoint}"
    );

    // Both probes are in the history, with their diagnosis.
    let (_, history) = json(
        t.req(Method::GET, &format!("{PATH}/history"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tests: Vec<&Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "test")
        .collect();
    assert_eq!(tests.len(), 2, "{history}");
    assert_eq!(tests[1]["http_status"], 404);
    assert!(tests[1]["diagnosis"]["cause"].as_str().is_some());

    // A bad query gets the API's JSON error, not the framework's plain text.
    for (query, code) in [
        ("limit=abc", "invalid_query"),
        ("limt=5", "invalid_query"),
        ("limit=0", "invalid_limit"),
    ] {
        let (status, body) = json(
            t.req(Method::GET, &format!("{PATH}/history?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
        assert!(body["fix"].as_str().is_some(), "{body}");
    }
}

#[tokio::test]
async fn connector_test_sends_no_probe_to_a_url_outside_the_org() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org.callback_url(), cc_key(&org)).await;
        // The org's token answers say it is elsewhere.
        let elsewhere = "https://acme.my.salesforce.com";
        org.update_config(|c| c.public_url = Some(elsewhere.to_owned()))
            .unwrap();
        let (status, report) = json(
            t.req(Method::POST, &format!("{PATH}/test"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["ok"], false, "{report}");
        let check = |name: &str| {
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} check in {report}"))
        };
        let token = check("token");
        assert_eq!(token["ok"], false, "{token}");
        assert_eq!(token["diagnosis"]["code"], "url_not_in_org", "{token}");
        assert!(
            token["detail"].as_str().unwrap().contains(elsewhere),
            "{token}"
        );
        let endpoint = check("endpoint");
        assert_eq!(endpoint["ok"], false, "{endpoint}");
        assert_eq!(
            endpoint["diagnosis"]["code"], "url_not_in_org",
            "{endpoint}"
        );
        assert!(
            endpoint["detail"]
                .as_str()
                .unwrap()
                .contains("not in the org"),
            "{endpoint}"
        );
        assert!(
            endpoint["fix"]
                .as_str()
                .is_some_and(|f| f.contains("PATCH {\"url\"")),
            "{endpoint}"
        );
        assert_eq!(org.stats().grants_ok("client_credentials"), 1);
        assert_eq!(
            org.stats().callbacks_received,
            0,
            "no probe, so no token, was sent"
        );

        let (_, history) = json(
            t.req(Method::GET, &format!("{PATH}/history"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let entries = history["entries"].as_array().unwrap();
        assert!(entries.iter().all(|e| e["kind"] != "test"), "{history}");
        assert_eq!(
            entries[0]["diagnosis"]["code"], "url_not_in_org",
            "{history}"
        );
        let (_, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        assert_eq!(got["status"], "disabled", "{got}");
        t.server.shutdown().await.unwrap();
    }
}
