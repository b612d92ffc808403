//! A whole hookwarden (API + delivery engine + the real token engine) against a fake org and a
//! small programmable receiver, all on loopback. The engine is driven by the test: either
//! `run_once` with an `OffsetClock` (no sleeps), or `spawn`ed for the timing tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use hookwarden_core::AddressPolicy;
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_oauth::{TokenManager, TokenOptions};
use hookwarden_server::delivery::{Engine, EngineOptions, OffsetClock};
use hookwarden_server::{AppState, Settings};
use hookwarden_store::{MasterKey, MasterKeySource, Store};
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub fn settings(database: &str, policy: &str) -> Settings {
    // From the defaults, so settings added later keep their default here.
    let mut s = hookwarden_server::Config::defaults().settings().unwrap();
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.database = database.to_owned();
    s.master_key = MasterKeySource::Given(MasterKey::generate());
    s.allow_insecure_http = true;
    s.address_policy = AddressPolicy::parse_list(policy).unwrap();
    s.max_body_bytes = 2 * 1024 * 1024;
    s
}

pub fn tokens_for(store: &Store, settings: &Settings) -> TokenManager {
    TokenManager::new(
        store.clone(),
        TokenOptions {
            allow_insecure_http: true,
            address_policy: settings.address_policy.clone(),
            grant_timeout: Duration::from_secs(5),
            ..TokenOptions::default()
        },
    )
    .unwrap()
}

/// The jitter's random number, settable by the test.
#[derive(Clone)]
pub struct Dice(Arc<AtomicU64>);

impl Dice {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::SeqCst);
    }
}

pub struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    pub key: String,
    pub key_b: String,
    /// The id of the account `key` belongs to ("acme").
    pub account: hookwarden_core::AccountId,
    pub state: AppState,
    pub settings: Settings,
    pub clock: Arc<OffsetClock>,
    pub dice: Dice,
    pub engine: Engine<TokenManager>,
    pub org: RunningFakeOrg,
    pub receiver: Receiver,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    pub async fn start(database: &str) -> Self {
        Self::start_with(database, |_| {}).await
    }

    pub async fn start_with(database: &str, tune: impl FnOnce(&mut EngineOptions)) -> Self {
        let settings = settings(database, "127.0.0.0/8");
        let store = Store::open(&settings.database, settings.master_key.clone())
            .await
            .unwrap();
        let state = AppState::new(store.clone(), settings.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = hookwarden_server::router(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let (acme, key) = store.create_account("acme").await.unwrap();
        let (_, key_b) = store.create_account("globex").await.unwrap();
        let clock = Arc::new(OffsetClock::new());
        let dice = Dice(Arc::new(AtomicU64::new(0.5f64.to_bits())));
        let d = dice.clone();
        let mut opts = EngineOptions {
            clock: clock.clone(),
            random: Arc::new(move || f64::from_bits(d.0.load(Ordering::SeqCst))),
            request_timeout: Duration::from_secs(2),
            idle_poll: Duration::from_millis(20),
            maintenance_every: Duration::from_millis(100),
            ..EngineOptions::default()
        };
        tune(&mut opts);
        let engine = Engine::new(
            state.delivery.clone(),
            &settings,
            tokens_for(&store, &settings),
            opts,
        )
        .unwrap();
        Self {
            base,
            http: reqwest::Client::new(),
            key,
            key_b,
            account: acme.id,
            state,
            settings,
            clock,
            dice,
            engine,
            org: FakeOrg::builder().start().await.unwrap(),
            receiver: Receiver::start().await,
            server,
        }
    }

    /// Waits until the fake org has had `n` callbacks; fails the test after `within`.
    pub async fn wait_for_callbacks(&self, n: usize, within: Duration) {
        let start = Instant::now();
        while self.org.callbacks().len() < n {
            assert!(
                start.elapsed() < within,
                "{} of {n} delivered",
                self.org.callbacks().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Basic {}", self.key))
    }

    /// A client-credentials key against the fake org (every endpoint on loopback).
    pub fn cc_key(&self) -> String {
        b64(&json!({
            "host": "acme.my.salesforce.com",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "token_url": self.org.token_url(),
            "revocation_url": self.org.revoke_url(),
            "introspection_url": self.org.introspect_url(),
        }))
    }

    /// A refresh-token key with a fresh refresh token from the fake org.
    pub fn rt_key(&self) -> String {
        b64(&json!({
            "host": "acme.my.salesforce.com",
            "client_id": DEFAULT_CLIENT_ID,
            "refresh_token": self.org.issue_refresh_token(DEFAULT_CLIENT_ID),
            "token_url": self.org.token_url(),
            "revocation_url": self.org.revoke_url(),
            "introspection_url": self.org.introspect_url(),
        }))
    }

    /// Register a connector; `extra` is merged into the body. Returns the answer.
    pub async fn register(
        &self,
        name: &str,
        url: &str,
        events: &[&str],
        key: String,
        extra: Value,
    ) -> Value {
        let mut body = json!({"url": url, "events": events, "key": key});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, answer) = json_of(
            self.req(
                reqwest::Method::POST,
                &format!("/api/callback/connectors/{name}"),
            )
            .json(&body)
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert!(status == 201 || status == 200, "{status} {answer}");
        answer
    }

    /// The usual destination: `salesforceOauth2` at the fake org's Apex endpoint, taking
    /// PACKAGE_COMPLETE, with a client-credentials key. Returns the answer.
    pub async fn register_salesforce(&self) -> Value {
        self.register(
            "salesforceOauth2",
            &self.org.callback_url(),
            &["PACKAGE_COMPLETE"],
            self.cc_key(),
            json!({}),
        )
        .await
    }

    pub async fn post_event(&self, event: Value) -> Value {
        let (status, answer) = json_of(
            self.req(reqwest::Method::POST, "/api/events")
                .json(&event)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        answer
    }

    pub async fn delivery(&self, id: &str) -> Value {
        let (status, answer) = json_of(
            self.req(reqwest::Method::GET, &format!("/api/deliveries/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    pub async fn connector(&self, name: &str) -> Value {
        json_of(
            self.req(
                reqwest::Method::GET,
                &format!("/api/callback/connectors/{name}"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await
        .1
    }

    /// A connector of another account, by that account's API key.
    pub async fn connector_of(&self, api_key: &str, name: &str) -> Value {
        json_of(
            self.http
                .get(format!("{}/api/callback/connectors/{name}", self.base))
                .header("Authorization", format!("Basic {api_key}"))
                .send()
                .await
                .unwrap(),
        )
        .await
        .1
    }

    pub async fn list(&self, query: &str) -> Vec<Value> {
        let (status, answer) = json_of(
            self.req(reqwest::Method::GET, &format!("/api/deliveries?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        answer["deliveries"].as_array().unwrap().clone()
    }
}

pub fn event(name: &str, package: &str) -> Value {
    json!({"name": name, "packageId": package, "origin": "OSS"})
}

pub fn b64(json: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

pub async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, value)
}

/// Every database the test runs on (SQLite, and PostgreSQL when HOOKWARDEN_TEST_PG_URL is set).
pub async fn each_database() -> (Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let urls = hookwarden_store::testing::databases(dir.path()).await;
    (urls, dir)
}

pub fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("test.db").display())
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

/// A programmable destination: `/ok`, `/hang` (answers only once `release_hangs` is called,
/// then as `/ok`), `/redirect`, `/echo` (400 echoing the Authorization header; `/echo-at/{n}`
/// after n bytes, `/echo-encoded` URL-encoded and JSON-escaped),
/// `/status/{code}` (with `Retry-After: 120` on 429 and 503).
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    log: Arc<Mutex<Vec<Received>>>,
    hits: Arc<Mutex<HashMap<String, u32>>>,
    pub hangs: Arc<AtomicU32>,
    released: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let me = Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            log: Arc::default(),
            hits: Arc::default(),
            hangs: Arc::default(),
            released: Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(me.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        me
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Requests to `/hang`, now and later, are answered (200) at once.
    pub fn release_hangs(&self) {
        self.released.send_replace(true);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn receive(
    State(me): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let path = format!("/{path}");
    let at = Instant::now();
    *me.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    if path == "/hang" {
        me.hangs.fetch_add(1, Ordering::SeqCst);
        let mut released = me.released.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = released.wait_for(|r| *r) => {}
        }
    }
    // A careless gateway: refuses, and echoes the request's credentials back; `/echo-at/{n}`
    // after n bytes of padding, `/echo-encoded` URL-encoded and JSON-escaped.
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let echo = if path == "/echo" {
        Some(format!(
            "bad request; you sent Authorization: {authorization}"
        ))
    } else if let Some(n) = path
        .strip_prefix("/echo-at/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(format!("{}{authorization}", "x".repeat(n)))
    } else if path == "/echo-encoded" {
        let form: String = url::form_urlencoded::byte_serialize(authorization.as_bytes()).collect();
        Some(format!(
            "form: authorization={form}\njson: {{\"authorization\":{}}}",
            serde_json::to_string(&authorization).unwrap()
        ))
    } else {
        None
    };
    me.log.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
        at,
    });
    if let Some(echo) = echo {
        return (StatusCode::BAD_REQUEST, echo).into_response();
    }
    if path == "/redirect" {
        return (
            StatusCode::FOUND,
            [("location", "https://elsewhere.example/hook")],
        )
            .into_response();
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        let status = StatusCode::from_u16(code).unwrap();
        if code == 429 || code == 503 {
            return (status, [("retry-after", "120")], "busy").into_response();
        }
        return (status, "no").into_response();
    }
    (StatusCode::OK, "ok").into_response()
}
