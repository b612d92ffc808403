//! Fail-safe revocation: the tokens held here are wiped and the connector is `revoked` whatever
//! the provider says or whether it answers at all; the answer says if the provider confirmed.
//! `DELETE` revokes at the provider first. Read straight from the database where it matters.

use std::time::{Duration, Instant};

use hookwarden_core::Credentials;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::common::*;
use crate::{cc_key, refresh_key, register, PATH};

/// The sealed token columns of a connector's token state that still hold something.
async fn sealed_tokens_left(database: &str, connector_id: &str) -> i64 {
    const COUNT: &str = "SELECT COUNT(*) FROM token_state WHERE connector_id = $1 \
                         AND (access_sealed IS NOT NULL OR refresh_sealed IS NOT NULL)";
    if database.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database).await.unwrap();
        let n = sqlx::query_scalar(COUNT)
            .bind(connector_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::SqlitePool::connect(database).await.unwrap();
        let n = sqlx::query_scalar(COUNT)
            .bind(connector_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

/// The connector as stored: its id, and its key decrypted by the server's own store.
async fn stored(t: &TestServer, name: &str) -> (String, Value) {
    let store = &t.server.state.store;
    let account = store.account_by_api_key(&t.key_a).await.unwrap().unwrap();
    let record = store
        .get_connector(&account.id, name)
        .await
        .unwrap()
        .unwrap();
    let key = match &record.credentials {
        Credentials::OAuth { stored, .. } => serde_json::from_str(stored.expose_secret()).unwrap(),
        other => panic!("not an OAuth connector: {other:?}"),
    };
    (record.id.to_string(), key)
}

async fn stored_key(t: &TestServer) -> Value {
    stored(t, "salesforceOauth2").await.1
}

async fn post(t: &TestServer, path: &str) -> (u16, Value) {
    json(t.req(Method::POST, path).send().await.unwrap()).await
}

/// Waits until every delivery of the account has `status`, and returns how many there are.
async fn all_deliveries_become(t: &TestServer, status: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, list) = json(t.req(Method::GET, "/api/deliveries").send().await.unwrap()).await;
        assert_eq!(code, 200, "{list}");
        let items = list["deliveries"].as_array().cloned().unwrap_or_default();
        if items.len() == want && items.iter().all(|d| d["status"] == status) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never all became {status}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn revoke_with_the_provider_down_wipes_every_token_here_and_holds_the_deliveries() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder()
            .rotate_refresh_tokens(true)
            .start()
            .await
            .unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org.callback_url(), refresh_key(&org)).await;
        let id = stored(&t, "salesforceOauth2").await.0;
        let (status, _) = post(&t, &format!("{PATH}/token")).await;
        assert_eq!(status, 200);
        assert_eq!(
            sealed_tokens_left(&db, &id).await,
            1,
            "{db}: a token is held"
        );
        assert!(stored_key(&t).await.get("refresh_token").is_some());

        // The org goes away: deliveries fail to connect and wait for their next try.
        org.shutdown().await;
        for package in ["pkg-1", "pkg-2"] {
            let (status, body) = json(
                t.req(Method::POST, "/api/events")
                    .json(
                        &json!({"name": "PACKAGE_COMPLETE", "packageId": package, "origin": "OSS"}),
                    )
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 202, "{body}");
        }
        all_deliveries_become(&t, "pending", 2).await;

        let (status, revoked) = post(&t, &format!("{PATH}/revoke")).await;
        assert_eq!(status, 200, "{db}: {revoked}");
        assert_eq!(revoked["status"], "revoked", "{revoked}");
        assert_eq!(revoked["provider_confirmed"], false, "{revoked}");
        let detail = revoked["detail"].as_str().unwrap();
        assert!(
            detail.contains("did not confirm") && detail.contains("Connected Apps OAuth Usage"),
            "{detail}"
        );
        assert_eq!(revoked["revocation"]["provider_called"], true, "{revoked}");
        assert_eq!(revoked["revocation"]["refresh_token_revoked"], false);

        // Nothing that can mint or carry a token is left here.
        assert_eq!(sealed_tokens_left(&db, &id).await, 0, "{db}");
        let key = stored_key(&t).await;
        assert!(key.get("refresh_token").is_none(), "{key}");
        assert_eq!(key["grant_type"], "refresh_token", "{key}");
        assert_eq!(key["client_secret"], DEFAULT_CLIENT_SECRET);
        all_deliveries_become(&t, "held", 2).await;

        // The history has the network error of each call.
        let (_, history) = json(
            t.req(Method::GET, &format!("{PATH}/history"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let revokes: Vec<&Value> = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "revoke")
            .collect();
        assert!(!revokes.is_empty(), "{history}");
        assert!(
            revokes
                .iter()
                .all(|e| e["outcome"] != "revoked" && e["http_status"].is_null()),
            "{history}"
        );

        // No grant of any kind while revoked: the key no longer has what it takes.
        let (status, err) = post(&t, &format!("{PATH}/token")).await;
        assert_error(status, &err, 409, "connector_revoked");
        // And revoking again is harmless.
        let (status, again) = post(&t, &format!("{PATH}/revoke")).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["revocation"]["already_revoked"], true, "{again}");
        assert_eq!(again["provider_confirmed"], true, "{again}");
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_refresh_token_from_a_code_exchange_is_wiped_too_and_no_other_grant_replaces_it() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        // Registered for client credentials, then authorized by a person: the code exchange
        // puts a refresh token in the key and the connector on the refresh-token flow.
        register(&t, &org.callback_url(), cc_key(&org)).await;
        let id = stored(&t, "salesforceOauth2").await.0;
        let (status, _) = post(&t, &format!("{PATH}/revoke")).await;
        assert_eq!(status, 200);
        let redirect = "https://admin.example.com/done";
        let code = authorization_code(&org, redirect).await;
        let (status, patched) = json(
            t.req(Method::PATCH, PATH)
                .json(&json!({"code": code, "redirect_uri": redirect}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["flow"], "refresh_token", "{patched}");
        assert!(stored_key(&t).await.get("refresh_token").is_some());
        let (status, _) = post(&t, &format!("{PATH}/token")).await;
        assert_eq!(status, 200);

        let (status, revoked) = post(&t, &format!("{PATH}/revoke")).await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["provider_confirmed"], true, "{revoked}");
        assert_eq!(revoked["revocation"]["refresh_token_revoked"], true);
        assert_eq!(sealed_tokens_left(&db, &id).await, 0);
        let key = stored_key(&t).await;
        assert!(key.get("refresh_token").is_none(), "{key}");

        // The key still holds a client secret, but the connector does not fall back to client
        // credentials: it stays revoked until someone authorizes it again.
        let grants = (
            org.stats().grants_total("refresh_token"),
            org.stats().grants_total("client_credentials"),
        );
        let (status, err) = post(&t, &format!("{PATH}/token")).await;
        assert_error(status, &err, 409, "connector_revoked");
        let (status, got) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(got["status"], "revoked", "{got}");
        assert_eq!(got["flow"], "refresh_token", "{got}");
        assert_eq!(
            (
                org.stats().grants_total("refresh_token"),
                org.stats().grants_total("client_credentials"),
            ),
            grants
        );
        t.server.shutdown().await.unwrap();
    }
}

/// A code from the org's authorize endpoint (which approves at once), as an admin's own tool
/// would bring back.
async fn authorization_code(org: &RunningFakeOrg, redirect_uri: &str) -> String {
    let to = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(org.authorize_url())
        .query(&[
            ("response_type", "code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("redirect_uri", redirect_uri),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(to.status(), 302);
    let location = url::Url::parse(to.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test]
async fn a_provider_without_a_revocation_endpoint_is_named_in_the_answer() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder()
            .allowed_scopes(["https://contoso.crm.dynamics.com/.default"])
            .start()
            .await
            .unwrap();
        let t = TestServer::start(&db).await;
        let path = "/api/callback/connectors/dynamicsOauth2";
        let key = b64(&json!({
            "tenant": "contoso.onmicrosoft.com",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "scope": "https://contoso.crm.dynamics.com/.default",
            "token_url": org.token_url(),
        }));
        let (status, created) = json(
            t.req(Method::POST, path)
                .json(&json!({"url": "https://contoso.crm.dynamics.com/api/hooks", "key": key}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let (status, body) = post(&t, &format!("{path}/token")).await;
        assert_eq!(status, 200, "{body}");

        let (status, revoked) = post(&t, &format!("{path}/revoke")).await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["status"], "revoked");
        assert_eq!(revoked["provider_confirmed"], false, "{revoked}");
        assert_eq!(revoked["revocation"]["provider_called"], false);
        let detail = revoked["detail"].as_str().unwrap();
        assert!(
            detail.contains("no token revocation endpoint") && detail.contains("Entra ID"),
            "{detail}"
        );
        assert_eq!(org.stats().revocations_ok(), 0);
        let id = stored(&t, "dynamicsOauth2").await.0;
        assert_eq!(sealed_tokens_left(&db, &id).await, 0);
        t.server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn delete_revokes_at_the_provider_first() {
    let (urls, _dir) = each_database().await;
    for db in urls {
        let org = FakeOrg::builder().start().await.unwrap();
        let t = TestServer::start(&db).await;
        register(&t, &org.callback_url(), refresh_key(&org)).await;
        let (status, _) = post(&t, &format!("{PATH}/token")).await;
        assert_eq!(status, 200);
        let before = org.stats().revocations_ok();

        let (status, deleted) = json(t.req(Method::DELETE, PATH).send().await.unwrap()).await;
        assert_eq!(status, 200, "{deleted}");
        assert_eq!(deleted["provider_confirmed"], true, "{deleted}");
        assert!(
            deleted["detail"]
                .as_str()
                .unwrap()
                .contains("confirmed the revocation"),
            "{deleted}"
        );
        assert!(org.stats().revocations_ok() > before);
        let (status, _) = json(t.req(Method::GET, PATH).send().await.unwrap()).await;
        assert_eq!(status, 404);
        t.server.shutdown().await.unwrap();
    }
}
