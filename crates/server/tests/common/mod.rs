//! Boots the real server on 127.0.0.1:0 against a fresh database and drives it over HTTP.
#![allow(dead_code)]

use base64::Engine;
use hookwarden_core::AddressPolicy;
use hookwarden_server::{RunningServer, Settings};
use hookwarden_store::{MasterKey, MasterKeySource};
use serde_json::Value;

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
    /// Two accounts, to prove nothing crosses between them.
    pub key_a: String,
    pub key_b: String,
    pub database: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn settings(database: &str, allow_insecure_http: bool) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        database: database.to_owned(),
        role: Default::default(),
        master_key: MasterKeySource::Given(MasterKey::generate()),
        allow_insecure_http,
        address_policy: AddressPolicy::parse_list("127.0.0.0/8").unwrap(),
        max_body_bytes: 256 * 1024,
        history_retention_days: 30,
        delivery_lease: std::time::Duration::from_secs(120),
        store: Default::default(),
        metrics: Default::default(),
        limits: Default::default(),
        governance: Default::default(),
    }
}

impl TestServer {
    pub async fn start(database: &str) -> Self {
        Self::start_with(settings(database, true), None).await
    }

    pub async fn start_with(settings: Settings, dir: Option<tempfile::TempDir>) -> Self {
        let database = settings.database.clone();
        let server = hookwarden_server::spawn(settings, None).await.unwrap();
        let (_, key_a) = server.state.store.create_account("acme").await.unwrap();
        let (_, key_b) = server.state.store.create_account("globex").await.unwrap();
        Self {
            base: server.base_url(),
            server,
            http: reqwest::Client::new(),
            key_a,
            key_b,
            database,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request as account A.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("Authorization", format!("Basic {}", self.key_a))
    }

    pub fn req_b(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("Authorization", format!("Basic {}", self.key_b))
    }
}

/// Every database the test runs on: a SQLite file in the returned directory (keep it alive),
/// and a fresh PostgreSQL database when HOOKWARDEN_TEST_PG_URL is set.
pub async fn each_database() -> (Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let urls = hookwarden_store::testing::databases(dir.path()).await;
    (urls, dir)
}

pub fn b64(json: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

pub fn sf_cc_key() -> String {
    b64(&serde_json::json!({
        "host": "acme.my.salesforce.com",
        "client_id": "3MVG9ClientIdForTests",
        "client_secret": "CcSecretValue-0123456789"
    }))
}

pub fn sf_rt_key() -> String {
    b64(&serde_json::json!({
        "host": "login.salesforce.com",
        "client_id": "3MVG9ClientIdForTests",
        "refresh_token": "5Aep861RefreshTokenValue-abcdef"
    }))
}

pub async fn json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, value)
}

/// An error answer has exactly the documented shape.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["fix"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
