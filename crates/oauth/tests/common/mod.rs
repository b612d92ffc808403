//! Shared setup: a store, a fake org on loopback, connectors whose keys point at it, and token
//! managers configured as tests and the demo run them (http allowed, loopback allowed).
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::time::Duration;

use hookwarden_core::{AddressPolicy, ConnectorKind, Credentials, Key, OffsetClock};
use hookwarden_fake_org::RunningFakeOrg;
use hookwarden_oauth::{TokenManager, TokenOptions};
use hookwarden_store::{
    testing, Account, ConnectorRecord, MasterKey, MasterKeySource, NewConnector, Store,
};
use serde_json::{json, Value};

pub const CLIENT_ID: &str = hookwarden_fake_org::DEFAULT_CLIENT_ID;
pub const CLIENT_SECRET: &str = hookwarden_fake_org::DEFAULT_CLIENT_SECRET;

pub struct Env {
    pub store: Store,
    pub account: Account,
    pub master: MasterKey,
    pub url: String,
    _dir: tempfile::TempDir,
}

pub async fn sqlite_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    env_at(url, dir).await
}

/// SQLite, plus PostgreSQL when HOOKWARDEN_TEST_PG_URL is set.
pub async fn all_envs() -> Vec<Env> {
    let dir = tempfile::tempdir().unwrap();
    let urls = testing::databases(dir.path()).await;
    // The SQLite file lives in `dir`: its env keeps it, or it is gone before the first write.
    let mut dirs =
        std::iter::once(dir).chain(std::iter::repeat_with(|| tempfile::tempdir().unwrap()));
    let mut out = Vec::new();
    for url in urls {
        out.push(env_at(url, dirs.next().unwrap()).await);
    }
    out
}

async fn env_at(url: String, dir: tempfile::TempDir) -> Env {
    let master = MasterKey::generate();
    let store = Store::open(&url, MasterKeySource::Given(master.clone()))
        .await
        .unwrap();
    let (account, _) = store.create_account("acme").await.unwrap();
    Env {
        store,
        account,
        master,
        url,
        _dir: dir,
    }
}

impl Env {
    /// A second, independent handle on the same database (as a second process would have).
    pub async fn reopen(&self) -> Store {
        Store::open(&self.url, MasterKeySource::Given(self.master.clone()))
            .await
            .unwrap()
    }

    pub fn manager(&self) -> TokenManager {
        manager(self.store.clone(), "node-a")
    }

    /// The same manager, on a clock the test moves (see [`Clocks`]).
    pub fn manager_on(&self, clock: Arc<OffsetClock>) -> TokenManager {
        let options = TokenOptions {
            clock,
            ..options("node-a")
        };
        TokenManager::new(self.store.clone(), options).unwrap()
    }

    /// Register a connector named `name` with `key` (a JSON object), the way the API does:
    /// the key is checked by `Key::parse` and stored in its storage form. Its url is in the org
    /// whose token endpoint the key names (a Salesforce token goes nowhere else).
    pub async fn connector(&self, name: &str, key: Value) -> ConnectorRecord {
        let kind = ConnectorKind::of(name);
        let encoded = hookwarden_core::key::encode(&key);
        let parsed = Key::parse(&encoded, kind).unwrap_or_else(|e| panic!("key {key}: {e}"));
        let org = key["token_url"]
            .as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .map_or_else(
                || "http://127.0.0.1:9".to_owned(),
                |u| u.origin().ascii_serialization(),
            );
        let (record, _) = self
            .store
            .upsert_connector(NewConnector {
                account_id: self.account.id.clone(),
                name: name.to_owned(),
                url: format!("{org}/services/apexrest/OSS/callback"),
                events: vec!["PACKAGE_COMPLETE".into()],
                origins: vec!["OSS".into()],
                owner: None,
                refresh_token_idle_days: None,
                settings: json!({}),
                warnings: parsed.warnings,
                credentials: Credentials::from_key(kind, parsed.key),
            })
            .await
            .unwrap();
        record
    }

    pub async fn reload(&self, c: &ConnectorRecord) -> ConnectorRecord {
        self.store
            .get_connector(&self.account.id, &c.name)
            .await
            .unwrap()
            .unwrap()
    }
}

pub fn options(node: &str) -> TokenOptions {
    TokenOptions {
        allow_insecure_http: true,
        address_policy: AddressPolicy::parse_list("127.0.0.0/8").unwrap(),
        node_id: node.to_owned(),
        ..TokenOptions::default()
    }
}

pub fn manager(store: Store, node: &str) -> TokenManager {
    TokenManager::new(store, options(node)).unwrap()
}

/// The token manager's clock and the fake org's, moved forward together so a session runs out
/// without sleeping.
pub struct Clocks<'a> {
    pub manager: Arc<OffsetClock>,
    org: &'a RunningFakeOrg,
    moved_ms: i64,
}

impl<'a> Clocks<'a> {
    pub fn new(org: &'a RunningFakeOrg) -> Self {
        Self {
            manager: Arc::new(OffsetClock::new()),
            org,
            moved_ms: 0,
        }
    }

    /// Move both clocks `by` forward. The org's clock counts whole seconds: it moves first and
    /// rounds up, so it is never behind the manager's and the `issued_at` it stamps never makes
    /// a new token look older than it is.
    pub fn advance(&mut self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap();
        let org_before = (self.moved_ms + 999) / 1000;
        self.moved_ms += ms;
        let org_after = (self.moved_ms + 999) / 1000;
        self.org.advance_clock_s(org_after - org_before);
        self.manager.advance(by);
    }
}

/// Key fields that point every endpoint at the fake org.
pub fn org_endpoints(org: &RunningFakeOrg) -> Value {
    json!({
        "token_url": org.token_url(),
        "revocation_url": org.revoke_url(),
        "introspection_url": org.introspect_url(),
        "authorization_url": org.authorize_url(),
    })
}

/// `base` (endpoints) with `extra` fields merged in.
pub fn key(org: &RunningFakeOrg, extra: Value) -> Value {
    let mut k = org_endpoints(org);
    if let (Some(k), Some(extra)) = (k.as_object_mut(), extra.as_object()) {
        for (name, v) in extra {
            k.insert(name.clone(), v.clone());
        }
    }
    k
}

/// A refresh-token key (no client secret, as OneSpan's seed 000 key).
pub fn refresh_key(org: &RunningFakeOrg, extra: Value) -> Value {
    let rt = org.issue_refresh_token(CLIENT_ID);
    let mut k = key(org, json!({"client_id": CLIENT_ID, "refresh_token": rt}));
    if let (Some(k), Some(extra)) = (k.as_object_mut(), extra.as_object()) {
        for (name, v) in extra {
            k.insert(name.clone(), v.clone());
        }
    }
    k
}

/// A client-credentials key (seed 001).
pub fn cc_key(org: &RunningFakeOrg, extra: Value) -> Value {
    let mut k = key(
        org,
        json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
    );
    if let (Some(k), Some(extra)) = (k.as_object_mut(), extra.as_object()) {
        for (name, v) in extra {
            k.insert(name.clone(), v.clone());
        }
    }
    k
}

pub async fn history(env: &Env, c: &ConnectorRecord) -> Vec<hookwarden_store::HistoryEntry> {
    env.store.list_history(&c.id, 500, None).await.unwrap()
}
