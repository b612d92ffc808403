//! `/metrics` is the operator's: a bearer token on the API's listener, no key on
//! `metrics_listen`; a deleted connector's series are not shown.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::*;

const TOKEN: &str = "metrics-token-for-tests-0123456789";

async fn metrics_text(t: &TestServer, url: &str) -> String {
    let resp = t.http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_need_the_operators_token_on_the_api_listener_and_no_key_on_their_own() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let mut s = settings(&db, true);
        s.metrics.token = Some(TOKEN.to_owned().into());
        s.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
        let t = TestServer::start_with(s, None).await;

        for auth in [
            None,
            Some("Bearer wrong-token-0123456789".to_owned()),
            Some(format!("Bearer {TOKEN}x")),
            // An API key is not the operator's token.
            Some(format!("Basic {}", t.key_a)),
            Some(format!("Basic {TOKEN}")),
        ] {
            let mut req = t.http.get(t.url("/metrics"));
            if let Some(auth) = &auth {
                req = req.header("Authorization", auth);
            }
            let resp = req.send().await.unwrap();
            assert!(resp.headers().get("www-authenticate").is_none());
            let (status, body) = json(resp).await;
            assert_error(status, &body, 401, "unauthorized");
            let fix = body["fix"].as_str().unwrap();
            assert!(
                fix.contains("metrics_token") && fix.contains("metrics_listen"),
                "{auth:?}: {fix}"
            );
        }

        let resp = t
            .http
            .get(t.url("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));

        // The operator's own listener: no key at all, /metrics only.
        let own = format!(
            "http://{}",
            t.server.metrics_addr.expect("metrics_listen bound")
        );
        let resp = t.http.get(format!("{own}/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let (status, body) = json(
            t.http
                .get(format!("{own}/api/callback/connectors"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, 404, "no_such_endpoint");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn without_a_metrics_token_the_api_listener_refuses_metrics() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    assert!(t.server.metrics_addr.is_none());
    for req in [
        t.http.get(t.url("/metrics")),
        t.http
            .get(t.url("/metrics"))
            .bearer_auth("anything-at-all-0123456789"),
        t.req(Method::GET, "/metrics"),
    ] {
        let (status, body) = json(req.send().await.unwrap()).await;
        assert_error(status, &body, 401, "unauthorized");
        assert!(body["message"].as_str().unwrap().contains("none"), "{body}");
    }
}

#[tokio::test]
async fn a_deleted_connectors_series_are_no_longer_shown() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let mut s = settings(&db, true);
        s.metrics.token = Some(TOKEN.to_owned().into());
        let t = TestServer::start_with(s, None).await;
        // The recorder is the process's: names of their own keep this test's series apart.
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let (gone_name, kept_name) = (format!("gone-{unique}"), format!("kept-{unique}"));
        let mut keys = Vec::new();
        for name in [&gone_name, &kept_name] {
            let (_, key) = t.server.state.store.create_account(name).await.unwrap();
            let (status, body) = json(
                t.http
                    .post(t.url("/api/callback/connectors/salesforceOauth2"))
                    .header("Authorization", format!("Basic {key}"))
                    .json(&json!({"url": "https://acme.my.salesforce.com/services/apexrest/OSS/callback",
                                  "events": ["PACKAGE_COMPLETE"], "key": sf_cc_key()}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            keys.push(key);
        }
        // The delivery engine publishes every connector's gauges within seconds.
        let url = t.url("/metrics");
        let mut text = String::new();
        for _ in 0..100 {
            text = metrics_text(&t, &url).await;
            if text.contains(&gone_name) && text.contains(&kept_name) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            text.contains(&format!(
                "hookwarden_connector_status{{account=\"{gone_name}\",connector=\"salesforceOauth2\""
            )),
            "{text}"
        );

        let resp = t
            .http
            .delete(t.url("/api/callback/connectors/salesforceOauth2"))
            .header("Authorization", format!("Basic {}", keys[0]))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let text = metrics_text(&t, &url).await;
        assert!(!text.contains(&gone_name), "{text}");
        assert!(text.contains(&kept_name), "{text}");
        t.server.shutdown().await.unwrap();
    }
}
