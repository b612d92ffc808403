//! The token endpoints over HTTP against a real (fake) Salesforce org: test, revoke,
//! re-authentication through oauth/url and through PATCH {"code"}, history.

mod common;

use common::*;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::Method;
use serde_json::{json, Value};

const PATH: &str = "/api/callback/connectors/salesforceOauth2";

fn refresh_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "login.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
        "introspection_url": org.introspect_url(),
        "authorization_url": org.authorize_url(),
    }))
}

fn cc_key(org: &RunningFakeOrg) -> String {
    b64(&json!({
        "host": "acme.my.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
    }))
}

async fn register(t: &TestServer, url: &str, key: String) -> Value {
    let (status, body) = json(
        t.req(Method::POST, PATH)
            .json(&json!({"url": url, "events": ["PACKAGE_COMPLETE"], "key": key}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

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
async fn a_permanent_grant_failure_is_diagnosed_over_the_api() {
    let (urls, _dir) = each_database().await;
    let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
    let t = TestServer::start(&urls[0]).await;
    register(&t, &org.callback_url(), cc_key(&org)).await;
    let (status, err) = json(
        t.req(Method::POST, &format!("{PATH}/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["fix"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("run as"),
        "{err}"
    );
    let (_, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
    assert_eq!(got["status"], "needs_reauth");
    // No further grant until the credentials change.
    let (status, err) = json(
        t.req(Method::POST, &format!("{PATH}/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 409, "connector_needs_reauth");
    assert_eq!(org.stats().grants_total("client_credentials"), 1);
    let (_, history) = json(
        t.req(Method::GET, &format!("{PATH}/history?limit=10"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let first = &history["entries"][0];
    assert_eq!(first["provider_error"], "invalid_grant", "{history}");
    assert_eq!(first["http_status"], 400);

    // Fix the org, give the key again: active, and a grant works.
    org.set_run_as_user(Some("integration@fake-org.example"));
    let (status, patched) = json(
        t.req(Method::PATCH, PATH)
            .json(&json!({"key": cc_key(&org)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["status"], "active");
    let (status, warm) = json(
        t.req(Method::POST, &format!("{PATH}/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{warm}");
    assert_eq!(warm["refreshed"], true);
    let (status, err) = json(
        t.req(Method::GET, &format!("{PATH}/history?limit=0"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 400, "invalid_limit");
}

#[tokio::test]
async fn revoke_then_reauthenticate_through_the_browser_flow() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder()
            .rotate_refresh_tokens(true)
            .start()
            .await
            .unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org.callback_url(), refresh_key(&org)).await;
        let (status, _) = json(
            t.req(Method::POST, &format!("{PATH}/token"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);

        let (status, revoked) = json(
            t.req(Method::POST, &format!("{PATH}/revoke"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["status"], "revoked");
        assert_eq!(revoked["revocation"]["refresh_token_revoked"], true);
        assert!(org.stats().revocations_ok() >= 1);
        // Idempotent.
        let (status, again) = json(
            t.req(Method::POST, &format!("{PATH}/revoke"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["revocation"]["already_revoked"], true);
        // No grant while revoked.
        let grants = org.stats().grants_total("refresh_token");
        let (status, err) = json(
            t.req(Method::POST, &format!("{PATH}/token"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &err, 409, "connector_revoked");
        assert_eq!(org.stats().grants_total("refresh_token"), grants);

        // oauth/url → the org's authorize (approves at once) → our /oauth/callback → active.
        let (status, auth) = json(
            t.req(Method::GET, &format!("{PATH}/oauth/url"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{auth}");
        assert_eq!(auth["redirect_uri"], format!("{}/oauth/callback", t.base));
        let url = auth["url"].as_str().unwrap();
        assert!(
            url.contains("code_challenge_method=S256") && url.contains("state="),
            "{url}"
        );
        let to_org = no_redirects().get(url).send().await.unwrap();
        assert_eq!(to_org.status(), 302);
        let back = to_org.headers()["location"].to_str().unwrap().to_owned();
        assert!(back.starts_with(&t.base), "{back}");
        let page = no_redirects().get(&back).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("active again"));
        let (_, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        assert_eq!(got["status"], "active", "{got}");
        // The state is single use.
        let replay = no_redirects().get(&back).send().await.unwrap();
        assert_eq!(replay.status(), 400);
        // And tokens flow again.
        let (status, _) = json(
            t.req(Method::POST, &format!("{PATH}/token"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let (_, history) = json(
            t.req(Method::GET, &format!("{PATH}/history"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let kinds: Vec<&str> = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"revoke") && kinds.contains(&"code_exchange"),
            "{kinds:?}"
        );
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn reauthenticate_with_a_code_obtained_elsewhere() {
    let (urls, _dir) = each_database().await;
    let org = FakeOrg::builder().start().await.unwrap();
    let t = TestServer::start(&urls[0]).await;
    register(&t, &org.callback_url(), cc_key(&org)).await;
    let (status, _) = json(
        t.req(Method::POST, &format!("{PATH}/revoke"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    // The admin authorizes in their own tool, with their own redirect URI.
    let redirect = "https://admin.example.com/done";
    let authorize = format!(
        "{}?response_type=code&client_id={DEFAULT_CLIENT_ID}&redirect_uri={}&state=xyz",
        org.authorize_url(),
        url_encode(redirect)
    );
    let resp = no_redirects().get(&authorize).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();

    let (status, err) = json(
        t.req(Method::PATCH, PATH)
            .json(&json!({"code": code, "events": ["X"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 400, "code_not_alone");
    let (status, patched) = json(
        t.req(Method::PATCH, PATH)
            .json(&json!({"code": code, "redirect_uri": redirect}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["status"], "active");
    assert_eq!(
        patched["flow"], "refresh_token",
        "the code's refresh token is the new credential"
    );
    assert!(!patched.to_string().contains(&code));
    // A used code fails with the provider's diagnosis, not a 500.
    let (status, err) = json(
        t.req(Method::PATCH, PATH)
            .json(&json!({"code": code, "redirect_uri": redirect}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status == 422 || status == 409, "{status} {err}");
    assert!(err["fix"].as_str().is_some());
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn registering_the_same_key_again_keeps_the_rotated_refresh_token() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder()
            .rotate_refresh_tokens(true)
            .start()
            .await
            .unwrap();
        let t = TestServer::start(&db).await;
        let key = refresh_key(&org);
        let body = json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key});
        assert_eq!(
            t.req(Method::POST, PATH)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        // The first refresh rotates the key's refresh token out.
        let (status, _) = json(
            t.req(Method::POST, &format!("{PATH}/token"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        // Provisioning scripts re-send the same registration, and PATCH the same key.
        let (status, again) =
            json(t.req(Method::POST, PATH).json(&body).send().await.unwrap()).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            again["credentials_version"], 1,
            "the same key is not new credentials"
        );
        let (status, patched) = json(
            t.req(Method::PATCH, PATH)
                .json(&json!({"key": key}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["credentials_version"], 1);
        // The next grant uses the rotated token: no reuse detected, still active.
        let (_, report) = json(
            t.req(Method::POST, &format!("{PATH}/test"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(org.stats().reuse_detections, 0);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_rate_limit_too_small_to_schedule_is_refused() {
    let (urls, _dir) = each_database().await;
    let org = FakeOrg::builder().start().await.unwrap();
    let t = TestServer::start(&urls[0]).await;
    let (status, err) = json(
        t.req(Method::POST, PATH)
            .json(&json!({"url": org.callback_url(), "key": cc_key(&org), "max_per_second": 1e-20}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &err, 400, "invalid_rate");
}
