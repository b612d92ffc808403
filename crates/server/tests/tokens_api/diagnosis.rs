//! A connector's diagnosis follows its status: the grant failure that moved it to
//! `needs_reauth` on GET, in the list, in its history and in its test; none once new
//! credentials make it active; the revocation's own once revoked.

use hookwarden_core::diagnosis::Code;
use hookwarden_fake_org::FakeOrg;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::{cc_key, register, PATH};

fn generic(code: Code) -> Value {
    json!({"code": code.as_str(), "cause": code.cause(), "fix": code.fix()})
}

async fn get(t: &TestServer) -> Value {
    let (status, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
    assert_eq!(status, 200, "{got}");
    got
}

#[tokio::test]
async fn a_connectors_diagnosis_follows_its_status() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().run_as_user(None).start().await.unwrap();
        let t = TestServer::start(&db).await;
        let registered = register(&t, &org.callback_url(), cc_key(&org)).await;
        assert!(registered["diagnosis"].is_null(), "{registered}");

        let (status, err) = json(
            t.req(Method::POST, &format!("{PATH}/token"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, err["error"].as_str()),
            (422, Some("no_run_as_user"))
        );
        let refused = generic(Code::NoRunAsUser);
        let got = get(&t).await;
        assert_eq!(got["status"], "needs_reauth");
        assert_eq!(got["diagnosis"], refused, "{got}");
        let (_, list) = json(
            t.req(Method::GET, "/api/callback/connectors")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list["connectors"][0]["diagnosis"], refused, "{list}");
        let (_, history) = json(
            t.req(Method::GET, &format!("{PATH}/history"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(history["entries"][0]["diagnosis"], refused, "{history}");

        // The test's failed checks say why, the skipped ones too.
        let (_, report) = json(
            t.req(Method::POST, &format!("{PATH}/test"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let failed: Vec<&Value> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .collect();
        let names: Vec<&str> = failed.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["status", "token", "endpoint"], "{report}");
        for check in failed {
            assert_eq!(check["diagnosis"], refused, "{check}");
        }

        // New credentials: active, nothing to diagnose.
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
        assert!(patched["diagnosis"].is_null(), "{patched}");
        assert!(get(&t).await["diagnosis"].is_null());

        // Revoked: the revocation's diagnosis, not the old refusal.
        let (status, revoked) = json(
            t.req(Method::POST, &format!("{PATH}/revoke"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["diagnosis"], generic(Code::ConnectorRevoked));
        assert_eq!(get(&t).await["diagnosis"], generic(Code::ConnectorRevoked));
        t.server.shutdown().await.unwrap();
    }
}

/// The OpenAPI document shows the one diagnosis shape wherever one is shown.
#[tokio::test]
async fn the_openapi_document_describes_the_diagnosis() {
    let (urls, _dir) = each_database().await;
    let t = TestServer::start(&urls[0]).await;
    let (status, doc) = json(t.http.get(t.url("/api/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let schemas = &doc["components"]["schemas"];
    let props = &schemas["DiagnosisOut"]["properties"];
    for field in ["code", "cause", "fix"] {
        assert!(props.get(field).is_some(), "{field}: {props}");
    }
    for owner in [
        "AttemptOut",
        "HistoryEntryOut",
        "Check",
        "ConnectorOut",
        "DefaultCallbackOut",
    ] {
        let text = schemas[owner]["properties"]["diagnosis"].to_string();
        assert!(text.contains("DiagnosisOut"), "{owner}: {text}");
    }
    t.server.shutdown().await.unwrap();
}
