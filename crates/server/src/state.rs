use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hookwarden_core::{Clock, SystemClock};
use hookwarden_oauth::{TokenManager, TokenOptions};
use hookwarden_store::{KeyHolder, Store};

use crate::config::Settings;
use crate::error::ApiError;

/// How long a key seen valid is trusted without asking the database again.
const API_KEY_CACHE: Duration = Duration::from_secs(10);

/// A key seen valid: its account, its id (`api_key_id`, hashed once) and scopes, and when it
/// was seen.
#[derive(Clone)]
struct CachedKey {
    holder: KeyHolder,
    /// When it was seen valid, by `AppState::clock` (ms).
    seen: i64,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    /// Ingest and the wake-up of this node's delivery workers.
    pub delivery: Arc<crate::delivery::Hub>,
    /// The token engine: one per process, shared by the API and the delivery workers, so
    /// single flight and the cache cover both.
    pub tokens: TokenManager,
    /// The guarded HTTP client for destinations (the connector test's probe uses it too).
    pub delivery_client: crate::delivery::http::DeliveryClient,
    /// The server's one clock: the token engine, ingest, the delivery workers (`delivery::start`)
    /// and the API key cache read it, so a test can move them all forward at once.
    pub clock: Arc<dyn Clock>,
    /// API keys seen valid, and when, so a busy producer does not cost a database read per
    /// request. A revocation on this node forgets them all at once; one on another node (or by
    /// the CLI) takes effect here when the entry is `API_KEY_CACHE` old.
    api_keys: Arc<RwLock<HashMap<String, CachedKey>>>,
    /// The per-key and per-address request limits, and the keys that just failed.
    pub limits: Arc<crate::limits::Limiters>,
}

impl AppState {
    /// Panics only when no HTTP client can be built (no TLS roots on the machine); `spawn`
    /// uses `try_new` and reports that as an error instead.
    pub fn new(store: Store, settings: Settings) -> Self {
        Self::try_new(store, settings).expect("the HTTP clients can be built")
    }

    pub fn try_new(store: Store, settings: Settings) -> anyhow::Result<Self> {
        Self::try_with_clock(store, settings, Arc::new(SystemClock))
    }

    /// `try_new` on another clock (tests: an `OffsetClock` they move forward).
    pub fn try_with_clock(
        store: Store,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let tokens = TokenManager::new(
            store.clone(),
            TokenOptions {
                allow_insecure_http: settings.allow_insecure_http,
                address_policy: settings.address_policy.clone(),
                clock: clock.clone(),
                ..TokenOptions::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let delivery_client = crate::delivery::http::DeliveryClient::new(
            settings.address_policy.clone(),
            settings.allow_insecure_http,
            std::time::Duration::from_secs(5),
        )?;
        Ok(Self {
            delivery: Arc::new(crate::delivery::Hub::with_clock(
                store.clone(),
                clock.clone(),
            )),
            clock,
            tokens,
            delivery_client,
            store,
            limits: Arc::new(crate::limits::Limiters::new(&settings.limits)),
            settings: Arc::new(settings),
            api_keys: Arc::default(),
        })
    }

    /// Where people and providers reach this server (`public_url`, else the bound address).
    pub fn public_url(&self) -> String {
        self.settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.settings.listen))
    }

    /// Who holds an API key: its account, the key's id and its scopes.
    pub async fn api_key_holder(&self, api_key: &str) -> Result<Option<KeyHolder>, ApiError> {
        if let Some(cached) = self
            .api_keys
            .read()
            .expect("api key cache lock poisoned")
            .get(api_key)
        {
            let age = self.clock.now_ms().saturating_sub(cached.seen);
            if age < API_KEY_CACHE.as_millis() as i64 {
                return Ok(Some(cached.holder.clone()));
            }
        }
        let found = self.store.api_key_holder(api_key).await?;
        let mut cache = self.api_keys.write().expect("api key cache lock poisoned");
        let Some(holder) = found else {
            cache.remove(api_key);
            return Ok(None);
        };
        cache.insert(
            api_key.to_owned(),
            CachedKey {
                holder: holder.clone(),
                seen: self.clock.now_ms(),
            },
        );
        Ok(Some(holder))
    }

    /// After a revocation: every key is looked up again.
    pub fn forget_api_keys(&self) {
        self.limits.forget_failed_keys();
        self.api_keys
            .write()
            .expect("api key cache lock poisoned")
            .clear();
    }
}
