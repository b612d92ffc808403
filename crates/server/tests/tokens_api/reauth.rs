//! Revocation and re-authentication: through the browser flow (`…/oauth/url` → the org →
//! `/oauth/callback`), and with a code obtained elsewhere (PATCH {"code"}).

use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID};
use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::{cc_key, refresh_key, register, PATH};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
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
