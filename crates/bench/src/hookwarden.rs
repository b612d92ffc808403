//! hookwarden as the phases drive it: in the bench's process, the server on SQLite and its
//! delivery engine, as `hookwarden serve` runs them; or the API node of a cluster on PostgreSQL
//! (see `cluster`). Either way against the fake org.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hookwarden_core::AddressPolicy;
use hookwarden_fake_org::{RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_oauth::{TokenManager, TokenOptions};
use hookwarden_server::delivery::{Engine, EngineOptions};
use hookwarden_server::{AppState, Settings};
use hookwarden_store::{MasterKey, MasterKeySource, Store};
use serde_json::{json, Value};

use crate::producer::{event_body, Producer};
use crate::{body, BATCH, CONCURRENCY};

pub(crate) struct Hookwarden {
    pub(crate) base: String,
    pub(crate) api_key: String,
    http: reqwest::Client,
    /// The in-process server's (on SQLite); none for a cluster's node.
    pub(crate) state: Option<AppState>,
    _dir: Option<tempfile::TempDir>,
}

impl Hookwarden {
    pub(crate) async fn start(
        org: &RunningFakeOrg,
    ) -> anyhow::Result<(Self, Engine<TokenManager>)> {
        let dir = tempfile::tempdir()?;
        // From the defaults, so settings added later keep their default here.
        let mut settings: Settings = hookwarden_server::Config::defaults().settings()?;
        settings.database = format!("sqlite://{}", dir.path().join("bench.db").display());
        settings.master_key = MasterKeySource::Given(MasterKey::generate());
        settings.allow_insecure_http = true;
        settings.address_policy =
            AddressPolicy::parse_list("127.0.0.0/8").map_err(|e| anyhow::anyhow!("{e}"))?;
        settings.max_body_bytes = 4 * 1024 * 1024;
        let store = Store::open(&settings.database, settings.master_key.clone()).await?;
        let state = AppState::new(store.clone(), settings.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app = hookwarden_server::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let (_, api_key) = store.create_account("bench").await?;
        let tokens = TokenManager::new(
            store.clone(),
            TokenOptions {
                allow_insecure_http: true,
                address_policy: settings.address_policy.clone(),
                ..TokenOptions::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let engine = Engine::new(
            state.delivery.clone(),
            &settings,
            tokens,
            EngineOptions::default(),
        )?;
        let me = Self {
            base,
            api_key,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(128)
                .build()?,
            state: Some(state),
            _dir: Some(dir),
        };
        me.register(org).await?;
        Ok((me, engine))
    }

    /// The API node at `base` of a cluster whose database holds the account of `api_key`; with
    /// `register`, registers the bench's connector (once per database).
    pub(crate) async fn attach(
        org: &RunningFakeOrg,
        base: &str,
        api_key: &str,
        register: bool,
    ) -> anyhow::Result<Self> {
        let me = Self {
            base: base.to_owned(),
            api_key: api_key.to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(128)
                .build()?,
            state: None,
            _dir: None,
        };
        if register {
            me.register(org).await?;
        }
        Ok(me)
    }

    /// The fake org's connector, at the concurrency of the baseline.
    async fn register(&self, org: &RunningFakeOrg) -> anyhow::Result<()> {
        let me = self;
        let key = base64::engine::general_purpose::STANDARD.encode(
            json!({"host": "bench.my.salesforce.com", "client_id": DEFAULT_CLIENT_ID,
                   "client_secret": DEFAULT_CLIENT_SECRET, "token_url": org.token_url(),
                   "revocation_url": org.revoke_url(), "introspection_url": org.introspect_url()})
            .to_string(),
        );
        let r = me
            .http
            .post(format!(
                "{}/api/callback/connectors/salesforceOauth2",
                me.base
            ))
            .header("authorization", format!("Basic {}", me.api_key))
            .json(
                &json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key,
                          "max_concurrency": CONCURRENCY}),
            )
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "registration failed: {}",
            r.text().await?
        );
        Ok(())
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", format!("Basic {}", self.api_key))
            .json(body)
            .send()
            .await?;
        let status = r.status();
        anyhow::ensure!(
            status.as_u16() == 202,
            "ingest answered {status}: {}",
            r.text().await?
        );
        Ok(())
    }

    /// Until no delivery is pending (claimed ones included), as `GET /api/deliveries` says.
    pub(crate) async fn wait_settled(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let page: Value = self
                .http
                .get(format!(
                    "{}/api/deliveries?status=pending&limit=1",
                    self.base
                ))
                .header("authorization", format!("Basic {}", self.api_key))
                .send()
                .await?
                .json()
                .await?;
            let pending = page["deliveries"].as_array().map_or(0, Vec::len);
            if pending == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "deliveries still pending after a minute: {page}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `n` events in batches of 1,000, four requests at a time.
    pub(crate) async fn ingest_batches(
        self: &Arc<Self>,
        n: usize,
        offset: usize,
    ) -> anyhow::Result<()> {
        let mut tasks = Vec::new();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..4 {
            let (me, next) = (self.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let from = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                    if from >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let events: Vec<Value> = (from..(from + BATCH).min(n))
                        .map(|i| body(offset + i))
                        .collect();
                    me.post("/api/events/batch", &json!({ "events": events }))
                        .await?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }

    /// `n` events, one request each, over `CONCURRENCY` keep-alive connections.
    pub(crate) async fn ingest_singles(
        self: &Arc<Self>,
        n: usize,
        offset: usize,
    ) -> anyhow::Result<()> {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let mut producer = Producer::connect(&self.base, &self.api_key).await?;
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    producer.post_event(event_body(offset + i, None)).await?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
}
