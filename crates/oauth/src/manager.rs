//! `TokenManager`: the access token for a connector, from the cache when it is fresh, else from
//! exactly one grant — one per connector in this process (waiters share one future) and across
//! processes (a lease row in the store; the state is re-read once the lease is held, since
//! another node may have refreshed meanwhile). DESIGN.md "Tokens: the rules" is the contract.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use hookwarden_core::diagnosis::{self, Diagnosis, FailureClass, ProviderFailure};
use hookwarden_core::{AddressPolicy, ConnectorKind, Endpoints, Key, RequestStyle, SessionMode};
use hookwarden_store::{
    AccountId, ConnectorRecord, ConnectorStatus, GrantedTokens, HistoryKind, NewHistoryEntry,
    OAuthState, Store, TokenState,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::TokenError;
use crate::grant::{self, GrantKind, Tokens};
use crate::http::{Body, Http, Outgoing, Reply};
use crate::redact::Redactor;

/// Salesforce's default session timeout (DESIGN.md "Expiry").
const SALESFORCE_SESSION_S: i64 = 7200;
/// Other providers normally send `expires_in`; when they do not, assume an hour.
const GENERIC_SESSION_S: i64 = 3600;
/// Refresh when less than min(this, 10 % of the lifetime) remains.
const MAX_REFRESH_MARGIN_MS: i64 = 60_000;
/// A provider `issued_at` further in the past than this is not trusted as the token's age.
const MAX_ISSUED_AT_AGE_MS: i64 = 24 * 3600 * 1000;
/// Authorization-code flows expire (Salesforce codes live 15 minutes).
const OAUTH_STATE_TTL_MS: i64 = 15 * 60 * 1000;
/// Cache shards: readers of different connectors rarely touch the same lock.
const SHARDS: usize = 16;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

/// How the token manager talks to providers.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// Allow `http://` token, revocation, introspection and hook URLs (tests, demo).
    pub allow_insecure_http: bool,
    pub address_policy: AddressPolicy,
    /// This node's name in grant leases; unique per process.
    pub node_id: String,
    /// Total time for one call to a provider.
    pub grant_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest backoff after consecutive transient failures (without Retry-After).
    pub max_backoff: Duration,
    /// How often a node waiting for another node's grant looks at the store.
    pub lease_poll: Duration,
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self {
            allow_insecure_http: false,
            address_policy: AddressPolicy::default(),
            node_id: format!("node-{}", grant::random_state()),
            grant_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            lease_poll: Duration::from_millis(50),
        }
    }
}

/// A usable access token. `version` is what `invalidate` takes back after a 401.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub secret: SecretString,
    pub version: i64,
    pub expires_at_ms: Option<i64>,
    /// A grant happened to produce it (for the delivery attempt's `refreshed`).
    pub refreshed: bool,
    pub instance_url: Option<String>,
}

/// What `revoke` did.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeOutcome {
    /// It was already revoked with nothing left to revoke: nothing was sent.
    pub already_revoked: bool,
    pub refresh_token_revoked: bool,
    pub access_token_revoked: bool,
    /// The provider was called (false when it has no revocation endpoint).
    pub provider_called: bool,
}

/// The token side of `GET /api/callback/connectors/{name}`: never a token.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenStatus {
    pub has_access_token: bool,
    pub expires_at: Option<String>,
    pub refresh_at: Option<String>,
    pub version: i64,
    pub last_grant_at: Option<String>,
    pub last_error: Option<String>,
    pub backoff_until: Option<String>,
    pub consecutive_failures: i64,
    /// The provider rotated the refresh token; the current one is held in the token state.
    pub refresh_token_rotated: bool,
    pub instance_url: Option<String>,
    pub scope: Option<String>,
}

#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Cached {
    token: AccessToken,
    credentials_version: i64,
    /// `i64::MAX` for `session: none`.
    refresh_at: i64,
}

#[derive(Default)]
struct Trouble {
    /// Transient failure: no grant before this time (ms).
    backoff: Option<(i64, TokenError)>,
    /// Permanent failure on these credentials: no grant until `credentials_version` changes.
    blocked: Option<(i64, TokenError)>,
    /// Token versions an endpoint refused (401): the store's copy of them is not reused.
    stale_version: Option<i64>,
}

type Flight = Shared<BoxFuture<'static, Result<AccessToken, TokenError>>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A token that is fresh and newer than `stale`.
    Fresh { stale: Option<i64> },
    /// A new grant whatever the cache holds (the `test` endpoint).
    Force,
}

struct Inner {
    store: Store,
    options: TokenOptions,
    http: Http,
    hasher: RandomState,
    shards: Vec<RwLock<HashMap<String, Arc<Cached>>>>,
    flights: Mutex<HashMap<String, Flight>>,
    trouble: Mutex<HashMap<String, Trouble>>,
}

/// What a call needs to know about the connector it is for.
struct Ctx {
    record: ConnectorRecord,
    key: Key,
    kind: ConnectorKind,
    endpoints: Endpoints,
    redactor: Redactor,
}

impl Ctx {
    fn new(record: ConnectorRecord) -> Result<Self, TokenError> {
        let kind = ConnectorKind::of(&record.name);
        let key = Key::from_storage_json(record.key_json.expose_secret(), kind).map_err(|e| {
            TokenError::new(
                "key_invalid",
                FailureClass::Permanent,
                format!("the connector's stored key cannot be used: {e}"),
                "give the key again (PATCH {\"key\": ...})",
            )
        })?;
        let endpoints = key.endpoints(kind);
        let mut redactor = Redactor::new();
        redactor.add(key.client_secret.as_ref());
        redactor.add(key.refresh_token.as_ref());
        Ok(Self {
            record,
            key,
            kind,
            endpoints,
            redactor,
        })
    }

    fn host(&self) -> Option<String> {
        self.key.host.clone().or_else(|| {
            url::Url::parse(&self.endpoints.token_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
        })
    }

    fn session_timeout_s(&self) -> i64 {
        match self.key.session_timeout_s {
            Some(s) => i64::try_from(s).unwrap_or(SALESFORCE_SESSION_S),
            None if self.kind == ConnectorKind::Salesforce => SALESFORCE_SESSION_S,
            None => GENERIC_SESSION_S,
        }
    }
}

/// Which call an answer belongs to.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    kind: HistoryKind,
    grant_type: &'a str,
    what: &'a str,
}

/// One finished call, for the history.
struct Call {
    http_status: Option<u16>,
    error: Option<String>,
    error_description: Option<String>,
    duration: Duration,
    excerpt: Option<String>,
}

impl TokenManager {
    pub fn new(store: Store, options: TokenOptions) -> Result<Self, TokenError> {
        let http = Http::new(
            options.allow_insecure_http,
            options.address_policy.clone(),
            options.connect_timeout,
            options.grant_timeout,
        )
        .map_err(|e| {
            TokenError::new(
                "http_client",
                FailureClass::Permanent,
                format!("the HTTP client could not be built: {e}"),
                "check the TLS setup of this machine",
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                options,
                http,
                hasher: RandomState::new(),
                shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
                flights: Mutex::default(),
                trouble: Mutex::default(),
            }),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.inner.options.node_id
    }

    /// A fresh access token for `connector`: the cached one, or the result of one grant.
    pub async fn token(&self, connector: &ConnectorRecord) -> Result<AccessToken, TokenError> {
        if let Some(t) = self.inner.cached(connector) {
            return Ok(t);
        }
        let stale = self.inner.trouble(&connector.id, |t| t.stale_version);
        self.inner.fly(connector, Need::Fresh { stale }).await
    }

    /// Drop the cached token if it is still `token_version` (a 401 on an older token must not
    /// throw away a newer one); the next `token` call grants.
    pub async fn invalidate(&self, connector_id: &str, token_version: i64) {
        {
            let mut shard = self
                .inner
                .shard(connector_id)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if shard
                .get(connector_id)
                .is_some_and(|c| c.token.version == token_version)
            {
                shard.remove(connector_id);
            }
        }
        self.inner.trouble_mut(connector_id, |t| {
            t.stale_version = Some(
                t.stale_version
                    .map_or(token_version, |v| v.max(token_version)),
            );
        });
    }

    /// A new grant now, whatever the cache holds (the connector's `test` endpoint). Still no
    /// grant for a revoked or `needs_reauth` connector.
    pub async fn force_grant(
        &self,
        connector: &ConnectorRecord,
    ) -> Result<AccessToken, TokenError> {
        self.inner.fly(connector, Need::Force).await
    }

    /// Revoke the refresh token and the access token at the provider (RFC 7009), wipe the
    /// token state, set the connector `revoked`. Idempotent.
    pub async fn revoke(&self, connector: &ConnectorRecord) -> Result<RevokeOutcome, TokenError> {
        self.inner.revoke(connector).await
    }

    /// The authorization URL for re-authentication (PKCE S256 + a random state, stored).
    pub async fn authorization_url(
        &self,
        connector: &ConnectorRecord,
        redirect_uri: &str,
    ) -> Result<String, TokenError> {
        self.inner.authorization_url(connector, redirect_uri).await
    }

    /// Finish a flow begun by `authorization_url`: `state` and `code` from the redirect.
    /// `account_id` is `None` for the browser's `GET /oauth/callback`, which carries no API key
    /// (the state itself is the proof: unguessable and single use).
    pub async fn complete_authorization(
        &self,
        account_id: Option<&AccountId>,
        state: &str,
        code: &str,
    ) -> Result<ConnectorRecord, TokenError> {
        let pending = self
            .inner
            .store
            .take_oauth_state(state)
            .await
            .map_err(TokenError::store)?;
        let invalid = || {
            TokenError::new(
                "oauth_state_invalid",
                FailureClass::Permanent,
                "the authorization state is unknown, expired or already used",
                "start again from GET /api/callback/connectors/{name}/oauth/url",
            )
        };
        let pending: OAuthState = pending.ok_or_else(invalid)?;
        if account_id.is_some_and(|a| a.0 != pending.account_id) {
            return Err(invalid());
        }
        let connector = self
            .inner
            .store
            .get_connector(
                &AccountId(pending.account_id.clone()),
                &pending.connector_name,
            )
            .await
            .map_err(TokenError::store)?
            .filter(|c| c.id == pending.connector_id)
            .ok_or_else(connector_gone)?;
        self.exchange_code(
            &connector,
            code,
            Some(&pending.redirect_uri),
            Some(pending.code_verifier.expose_secret()),
        )
        .await
    }

    /// Exchange an authorization code: the returned refresh token becomes the connector's
    /// credentials (new `credentials_version`), the access token seeds the token state, and the
    /// connector is `active` again.
    pub async fn exchange_code(
        &self,
        connector: &ConnectorRecord,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<ConnectorRecord, TokenError> {
        self.inner
            .exchange_code(connector, code, redirect_uri, code_verifier)
            .await
    }

    /// The token state as the API shows it (never a token).
    pub async fn token_status(&self, connector: &ConnectorRecord) -> TokenStatus {
        match self.inner.store.get_token_state(&connector.id).await {
            Ok(Some(s)) => {
                let current = s.credentials_version == connector.credentials_version;
                TokenStatus {
                    has_access_token: current && s.access_token.is_some(),
                    expires_at: s.access_expires_at.filter(|_| current).and_then(rfc3339),
                    refresh_at: s.refresh_at.filter(|_| current).and_then(rfc3339),
                    version: s.version,
                    last_grant_at: s.last_grant_at.and_then(rfc3339),
                    last_error: s.last_error,
                    backoff_until: s.backoff_until.filter(|t| *t > now_ms()).and_then(rfc3339),
                    consecutive_failures: s.consecutive_failures,
                    refresh_token_rotated: current && s.refresh_token.is_some(),
                    instance_url: s.instance_url.filter(|_| current),
                    scope: s.scope.filter(|_| current),
                }
            }
            Ok(None) => TokenStatus::default(),
            Err(e) => TokenStatus {
                last_error: Some(format!("token state unavailable: {e}")),
                ..TokenStatus::default()
            },
        }
    }
}

fn connector_gone() -> TokenError {
    TokenError::new(
        "connector_not_found",
        FailureClass::Permanent,
        "the connector no longer exists (deleted or replaced)",
        "register the connector again",
    )
}

impl Inner {
    fn shard(&self, id: &str) -> &RwLock<HashMap<String, Arc<Cached>>> {
        let i = (self.hasher.hash_one(id) as usize) % SHARDS;
        &self.shards[i]
    }

    /// The fast path: a read lock, a hash lookup, two comparisons and a clone.
    fn cached(&self, c: &ConnectorRecord) -> Option<AccessToken> {
        if matches!(
            c.status,
            ConnectorStatus::Revoked | ConnectorStatus::NeedsReauth
        ) {
            return None;
        }
        let shard = self
            .shard(&c.id)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let e = shard.get(&c.id)?;
        (e.credentials_version == c.credentials_version && now_ms() < e.refresh_at)
            .then(|| e.token.clone())
    }

    fn put_cache(
        &self,
        id: &str,
        credentials_version: i64,
        token: &AccessToken,
        refresh_at: Option<i64>,
    ) {
        let entry = Arc::new(Cached {
            token: AccessToken {
                refreshed: false,
                ..token.clone()
            },
            credentials_version,
            refresh_at: refresh_at.unwrap_or(i64::MAX),
        });
        let mut shard = self
            .shard(id)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Never replace a newer token with an older one (two flights can finish out of order).
        if shard.get(id).is_some_and(|old| {
            old.credentials_version == credentials_version && old.token.version > token.version
        }) {
            return;
        }
        shard.insert(id.to_owned(), entry);
    }

    fn drop_cache(&self, id: &str) {
        self.shard(id)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    fn trouble<T>(&self, id: &str, f: impl FnOnce(&Trouble) -> Option<T>) -> Option<T> {
        let map = self.trouble.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).and_then(f)
    }

    fn trouble_mut(&self, id: &str, f: impl FnOnce(&mut Trouble)) {
        let mut map = self.trouble.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(id.to_owned()).or_default());
    }

    /// Refuse early what would not be granted anyway.
    fn precheck(&self, c: &ConnectorRecord, need: Need) -> Result<(), TokenError> {
        match c.status {
            ConnectorStatus::Revoked => return Err(TokenError::connector_revoked()),
            ConnectorStatus::NeedsReauth => {
                let last = self.trouble(&c.id, |t| t.blocked.as_ref().map(|(_, e)| e.to_string()));
                return Err(TokenError::needs_reauth(last.as_deref()));
            }
            _ => {}
        }
        let now = now_ms();
        let map = self.trouble.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = map.get(&c.id) {
            if let Some((cv, e)) = &t.blocked {
                if *cv == c.credentials_version {
                    return Err(e.clone());
                }
            }
            if let Some((until, e)) = &t.backoff {
                if *until > now && need != Need::Force {
                    let wait = Duration::from_millis(u64::try_from(until - now).unwrap_or(0));
                    return Err(e.clone().with_retry_after(wait));
                }
            }
        }
        Ok(())
    }

    /// Join the connector's grant in flight, or start one. The grant runs in its own task so a
    /// cancelled caller cannot cut it between the provider's answer and the store write (a
    /// rotated refresh token would be lost).
    async fn fly(
        self: &Arc<Self>,
        c: &ConnectorRecord,
        need: Need,
    ) -> Result<AccessToken, TokenError> {
        self.precheck(c, need)?;
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&c.id) {
                Some(f) => f.clone(),
                None => {
                    let inner = Arc::clone(self);
                    let record = c.clone();
                    let id = c.id.clone();
                    let task = tokio::spawn(async move {
                        let result = inner.grant_flow(record, need).await;
                        inner
                            .flights
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&id);
                        result
                    });
                    let f: Flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(TokenError::new(
                                "grant_task_failed",
                                FailureClass::Transient,
                                format!("the grant task ended abnormally: {e}"),
                                "retry; report a bug if it persists",
                            )
                            .with_retry_after(Duration::from_secs(1)))
                        })
                    }
                    .boxed()
                    .shared();
                    flights.insert(c.id.clone(), f.clone());
                    f
                }
            }
        };
        flight.await
    }

    fn lease_ttl_ms(&self) -> i64 {
        // Grant and introspection calls, each bounded by grant_timeout, plus store writes.
        let ms = self.options.grant_timeout.as_millis().saturating_mul(3) + 5_000;
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// A token from the stored state, if it is usable for `need` under credentials `cv`.
    fn usable(state: &TokenState, cv: i64, need: Need) -> Option<AccessToken> {
        let Need::Fresh { stale } = need else {
            return None;
        };
        if state.credentials_version != cv || stale.is_some_and(|s| state.version <= s) {
            return None;
        }
        if state.refresh_at.is_some_and(|r| r <= now_ms()) {
            return None;
        }
        Some(AccessToken {
            secret: state.access_token.clone()?,
            version: state.version,
            expires_at_ms: state.access_expires_at,
            refreshed: false,
            instance_url: state.instance_url.clone(),
        })
    }

    /// Wait for the grant lease. `Ok(Err(token))` when another node produced a usable token
    /// while we waited.
    async fn take_lease(
        &self,
        c: &ConnectorRecord,
        need: Need,
        owner: &str,
    ) -> Result<Result<(), AccessToken>, TokenError> {
        let ttl = self.lease_ttl_ms();
        let give_up = now_ms() + ttl + 1_000;
        loop {
            if self
                .store
                .acquire_grant_lease(&c.id, owner, ttl)
                .await
                .map_err(TokenError::store)?
            {
                return Ok(Ok(()));
            }
            if let Some(state) = self
                .store
                .get_token_state(&c.id)
                .await
                .map_err(TokenError::store)?
            {
                if let Some(t) = Self::usable(&state, c.credentials_version, need) {
                    self.put_cache(&c.id, c.credentials_version, &t, state.refresh_at);
                    return Ok(Err(t));
                }
            }
            if now_ms() > give_up {
                return Err(TokenError::new(
                    "grant_lease_busy",
                    FailureClass::Transient,
                    "another node holds this connector's grant lease and has not finished",
                    "nothing to do: the lease expires and the grant is retried",
                )
                .with_retry_after(Duration::from_secs(1)));
            }
            let jitter = rand::random::<u64>() % 20;
            tokio::time::sleep(self.options.lease_poll + Duration::from_millis(jitter)).await;
        }
    }

    async fn grant_flow(&self, c: ConnectorRecord, need: Need) -> Result<AccessToken, TokenError> {
        match self.take_lease(&c, need, &self.options.node_id).await? {
            Ok(()) => {}
            Err(token) => return Ok(token),
        }
        let result = self.grant_with_lease(&c, need).await;
        // Saves and failure records release the lease themselves; this covers the other paths.
        if let Err(e) = self
            .store
            .release_grant_lease(&c.id, &self.options.node_id)
            .await
        {
            tracing::warn!(connector = %c.id, error = %e, "could not release the grant lease");
        }
        result
    }

    async fn grant_with_lease(
        &self,
        c: &ConnectorRecord,
        need: Need,
    ) -> Result<AccessToken, TokenError> {
        // Another node may have refreshed, or the credentials changed, while we waited.
        let current = self
            .store
            .get_connector(&c.account_id, &c.name)
            .await
            .map_err(TokenError::store)?
            .filter(|r| r.id == c.id)
            .ok_or_else(connector_gone)?;
        self.precheck(&current, need)?;
        let state = self
            .store
            .get_token_state(&c.id)
            .await
            .map_err(TokenError::store)?
            .unwrap_or_default();
        let cv = current.credentials_version;
        if let Some(t) = Self::usable(&state, cv, need) {
            self.put_cache(&c.id, cv, &t, state.refresh_at);
            return Ok(t);
        }
        if need != Need::Force && state.backoff_until.is_some_and(|t| t > now_ms()) {
            let wait = state.backoff_until.unwrap_or(0) - now_ms();
            return Err(TokenError::new(
                "grant_backing_off",
                FailureClass::Transient,
                format!(
                    "the last grant failed ({}); waiting before the next",
                    state.last_error.as_deref().unwrap_or("transient failure")
                ),
                "nothing to do if it passes; see the connector's history",
            )
            .with_retry_after(Duration::from_millis(u64::try_from(wait).unwrap_or(0))));
        }

        // The lease runs from now for the whole grant: renewed just before the refresh token
        // leaves, so the reads above cannot have eaten into it. If it was lost meanwhile (it
        // expired and another node took it), that node grants; sending the same refresh token
        // from here would spend it twice.
        let renewed = self
            .store
            .acquire_grant_lease(&c.id, &self.options.node_id, self.lease_ttl_ms())
            .await
            .map_err(TokenError::store)?;
        if !renewed {
            return Err(TokenError::new(
                "grant_lease_busy",
                FailureClass::Transient,
                "another node took over this connector's grant",
                "nothing to do: its token is used once it is saved",
            )
            .with_retry_after(Duration::from_millis(200)));
        }

        let mut ctx = Ctx::new(current)?;
        let (refresh_token, access_token) =
            live_tokens(&state, state.credentials_version == cv, &ctx.key);
        ctx.redactor.add(refresh_token.as_ref());
        ctx.redactor.add(access_token.as_ref());

        let outcome = match ctx.key.refresh_hook.clone() {
            Some(hook) => {
                self.hook_grant(
                    &mut ctx,
                    &hook,
                    access_token.as_ref(),
                    refresh_token.as_ref(),
                )
                .await
            }
            None => {
                let grant = match &refresh_token {
                    Some(rt) => GrantKind::RefreshToken(rt),
                    None => GrantKind::ClientCredentials,
                };
                let kind = match grant {
                    GrantKind::RefreshToken(_) => HistoryKind::Refresh,
                    _ => HistoryKind::Grant,
                };
                self.token_grant(&mut ctx, kind, &grant).await
            }
        };

        match outcome {
            Ok(mut tokens) => {
                // A "rotation" to the same value is no rotation.
                if tokens.refresh_token.as_ref().map(|s| s.expose_secret())
                    == refresh_token.as_ref().map(|s| s.expose_secret())
                {
                    tokens.refresh_token = None;
                }
                // The rotated refresh token is persisted before the new access token goes
                // anywhere, introspection included: first with the session timeout as expiry,
                // corrected below when introspection knows better.
                let introspect = Self::needs_introspection(&ctx, &tokens);
                let (mut expires_at, mut refresh_at) = self.expiry(&mut ctx, &tokens, false).await;
                let granted = GrantedTokens {
                    credentials_version: cv,
                    access_token: tokens.access_token.clone(),
                    access_expires_at: expires_at,
                    refresh_at,
                    refresh_token: tokens.refresh_token.clone(),
                    instance_url: tokens.instance_url.clone(),
                    scope: tokens.scope.clone(),
                    issued_at: tokens.issued_at_ms,
                };
                // Persist (with the rotated refresh token) before anyone uses the access token.
                let version = self.save(&c.id, state.version, &granted).await?;
                if introspect {
                    let (e, r) = self.expiry(&mut ctx, &tokens, true).await;
                    if (e, r) != (expires_at, refresh_at) {
                        if let Err(err) = self.store.update_token_expiry(&c.id, version, e, r).await
                        {
                            tracing::warn!(connector = %c.id, error = %err, "could not store the introspected expiry");
                        }
                        (expires_at, refresh_at) = (e, r);
                    }
                }
                let token = AccessToken {
                    secret: tokens.access_token,
                    version,
                    expires_at_ms: expires_at,
                    refreshed: true,
                    instance_url: tokens.instance_url,
                };
                self.put_cache(&c.id, cv, &token, refresh_at);
                self.trouble_mut(&c.id, |t| {
                    t.backoff = None;
                    t.blocked = None;
                });
                tracing::info!(connector = %c.id, version, rotated = granted.refresh_token.is_some(), "granted a new access token");
                Ok(token)
            }
            Err(e) => self.on_failure(&ctx, state.consecutive_failures, e).await,
        }
    }

    /// Compare-and-swap save; if the swap is lost (our lease expired and someone wrote), the
    /// tokens we hold are still the provider's latest, so they are written anyway rather than
    /// losing a rotated refresh token.
    async fn save(
        &self,
        id: &str,
        expected: i64,
        granted: &GrantedTokens,
    ) -> Result<i64, TokenError> {
        let mut last_err = None;
        for _ in 0..3 {
            match self
                .store
                .save_granted_tokens(id, Some(expected), granted, &self.options.node_id)
                .await
            {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {
                    // Tokens granted for credentials that were replaced meanwhile are not the
                    // connector's any more: keep what the new credentials wrote.
                    let current = self
                        .store
                        .get_token_state(id)
                        .await
                        .map_err(TokenError::store)?;
                    if current.is_some_and(|s| s.credentials_version != granted.credentials_version)
                    {
                        return Err(TokenError::new(
                            "credentials_changed",
                            FailureClass::Transient,
                            "the connector's credentials changed while a token was being granted",
                            "nothing to do: the next request uses the new credentials",
                        )
                        .with_retry_after(Duration::from_millis(100)));
                    }
                    tracing::warn!(connector = %id, "token state changed under our lease; saving the newest tokens anyway");
                    match self
                        .store
                        .save_granted_tokens(id, None, granted, &self.options.node_id)
                        .await
                    {
                        Ok(Some(v)) => return Ok(v),
                        Ok(None) => {}
                        Err(e) => last_err = Some(e),
                    }
                }
                Err(e) => last_err = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(match last_err {
            Some(e) => TokenError::store(e),
            None => TokenError::new(
                "token_store_unavailable",
                FailureClass::Transient,
                "the new token could not be saved",
                "check the database",
            ),
        })
    }

    async fn on_failure(
        &self,
        ctx: &Ctx,
        failures: i64,
        e: TokenError,
    ) -> Result<AccessToken, TokenError> {
        let id = &ctx.record.id;
        let cv = ctx.record.credentials_version;
        let summary = e.to_string();
        if e.is_transient() {
            let exp = u32::try_from(failures.clamp(0, 16)).unwrap_or(16);
            let backoff = e
                .retry_after()
                .unwrap_or_else(|| Duration::from_secs(1u64 << exp).min(self.options.max_backoff));
            let until = now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX / 2);
            if let Err(err) = self
                .store
                .record_grant_failure(id, &self.options.node_id, Some(until), &summary)
                .await
            {
                tracing::warn!(connector = %id, error = %err, "could not record the grant failure");
            }
            let e = e.with_retry_after(backoff);
            self.trouble_mut(id, |t| t.backoff = Some((until, e.clone())));
            tracing::warn!(connector = %id, code = e.code(), retry_after_ms = backoff.as_millis() as u64, "grant failed; backing off");
            return Err(e);
        }
        if let Err(err) = self
            .store
            .record_grant_failure(id, &self.options.node_id, None, &summary)
            .await
        {
            tracing::warn!(connector = %id, error = %err, "could not record the grant failure");
        }
        // Only a provider's refusal says the credentials are bad; our own refusal of a URL is
        // configuration, which a restart may fix.
        if e.http_status().is_some() {
            if let Err(err) = self
                .store
                .set_connector_status(id, ConnectorStatus::NeedsReauth, Some(cv))
                .await
            {
                tracing::warn!(connector = %id, error = %err, "could not mark the connector needs_reauth");
            }
        }
        self.drop_cache(id);
        self.trouble_mut(id, |t| t.blocked = Some((cv, e.clone())));
        tracing::warn!(connector = %id, code = e.code(), "grant refused; the connector needs re-authentication");
        Err(e)
    }

    // ---- calls to the provider ----

    async fn record(
        &self,
        ctx: &Ctx,
        kind: HistoryKind,
        grant_type: Option<&str>,
        outcome: &str,
        call: &Call,
        diagnosis: Option<&Diagnosis>,
    ) {
        let entry = NewHistoryEntry {
            connector_id: ctx.record.id.clone(),
            account_id: ctx.record.account_id.0.clone(),
            at: now_ms(),
            kind,
            grant_type: grant_type.map(str::to_owned),
            outcome: outcome.to_owned(),
            http_status: call.http_status.map(i64::from),
            error: call.error.clone(),
            error_description: call.error_description.clone(),
            cause: diagnosis.map(|d| d.cause.clone()),
            fix: diagnosis.map(|d| d.fix.clone()),
            duration_ms: i64::try_from(call.duration.as_millis()).unwrap_or(i64::MAX),
            excerpt: call.excerpt.clone(),
        };
        if let Err(e) = self.store.record_history(&entry).await {
            tracing::warn!(connector = %ctx.record.id, error = %e, "could not record history");
        }
    }

    /// Send, and turn anything but a 2xx (or an accepted error code) into a recorded,
    /// diagnosed `TokenError`. A 2xx is returned unrecorded: the caller records it once it
    /// knows whether the answer is usable.
    async fn exchange(
        &self,
        ctx: &Ctx,
        kind: HistoryKind,
        grant_type: &str,
        what: &str,
        out: Outgoing,
        accepted_errors: &[&str],
    ) -> Result<(u16, String, Duration), TokenError> {
        match self.http.post(out).await {
            Reply::Answer {
                status,
                retry_after,
                body,
                duration,
            } => {
                let (error, description) = grant::parse_error(&body);
                let accepted = error
                    .as_deref()
                    .is_some_and(|e| accepted_errors.contains(&e));
                if (200..300).contains(&status) || accepted {
                    return Ok((status, body, duration));
                }
                let description = description.map(|d| ctx.redactor.text(&d));
                let host = ctx.host();
                let diagnosis = diagnosis::diagnose(&ProviderFailure {
                    http_status: Some(status),
                    error: error.as_deref(),
                    error_description: description.as_deref(),
                    grant_type: Some(grant_type),
                    host: host.as_deref(),
                    timed_out: false,
                });
                let call = Call {
                    http_status: Some(status),
                    error: error.clone(),
                    error_description: description.clone(),
                    duration,
                    excerpt: ctx.redactor.excerpt(&body),
                };
                self.record(
                    ctx,
                    kind,
                    Some(grant_type),
                    "failed",
                    &call,
                    Some(&diagnosis),
                )
                .await;
                tracing::info!(connector = %ctx.record.id, grant_type, status, error = error.as_deref().unwrap_or(""), diagnosis = diagnosis.code, "provider refused the call");
                let detail = match (&error, &description) {
                    (Some(e), Some(d)) => Some(format!("HTTP {status} {e}: {d}")),
                    (Some(e), None) => Some(format!("HTTP {status} {e}")),
                    _ => Some(format!("HTTP {status}")),
                };
                Err(TokenError::diagnosed(
                    what,
                    diagnosis,
                    detail,
                    Some(status),
                    retry_after,
                ))
            }
            Reply::NoAnswer {
                refused,
                timed_out,
                message,
                duration,
            } => {
                let diagnosis = match refused {
                    Some((code, cause, fix)) => Diagnosis {
                        code,
                        cause,
                        fix,
                        class: FailureClass::Permanent,
                    },
                    None => diagnosis::diagnose(&ProviderFailure {
                        timed_out,
                        grant_type: Some(grant_type),
                        ..Default::default()
                    }),
                };
                let message = ctx.redactor.text(&message);
                let call = Call {
                    http_status: None,
                    error: Some(diagnosis.code.to_owned()),
                    error_description: Some(message.clone()),
                    duration,
                    excerpt: None,
                };
                self.record(
                    ctx,
                    kind,
                    Some(grant_type),
                    "failed",
                    &call,
                    Some(&diagnosis),
                )
                .await;
                tracing::info!(connector = %ctx.record.id, grant_type, diagnosis = diagnosis.code, "provider call got no answer");
                let mut e = TokenError::diagnosed(what, diagnosis, Some(message), None, None);
                if e.is_transient() {
                    e = e.with_retry_after(Duration::from_secs(1));
                }
                Err(e)
            }
        }
    }

    /// Record a 2xx answer that cannot be used, and make it the error.
    async fn unusable(
        &self,
        ctx: &Ctx,
        attempt: Attempt<'_>,
        status: u16,
        body: &str,
        duration: Duration,
        diagnosis: Diagnosis,
    ) -> TokenError {
        let call = Call {
            http_status: Some(status),
            error: Some(diagnosis.code.to_owned()),
            error_description: None,
            duration,
            // A 2xx answer that is not JSON may hold tokens the field redaction cannot find.
            excerpt: if (200..300).contains(&status)
                && serde_json::from_str::<serde_json::Value>(body).is_err()
            {
                None
            } else {
                ctx.redactor.excerpt(body)
            },
        };
        self.record(
            ctx,
            attempt.kind,
            Some(attempt.grant_type),
            "failed",
            &call,
            Some(&diagnosis),
        )
        .await;
        TokenError::diagnosed(
            attempt.what,
            diagnosis,
            Some(format!("HTTP {status}")),
            Some(status),
            None,
        )
    }

    async fn token_grant(
        &self,
        ctx: &mut Ctx,
        kind: HistoryKind,
        grant: &GrantKind<'_>,
    ) -> Result<Tokens, TokenError> {
        let grant_type = grant.grant_type();
        let out = grant::form_request(
            &ctx.key,
            &ctx.endpoints.token_url,
            "token_url",
            grant::grant_params(&ctx.key, grant),
            ctx.key.request_style,
        );
        let what = "the token endpoint refused the grant";
        let (status, body, duration) = self.exchange(ctx, kind, grant_type, what, out, &[]).await?;
        match grant::parse_tokens(&body) {
            Ok(tokens) => {
                ctx.redactor.add(Some(&tokens.access_token));
                ctx.redactor.add(tokens.refresh_token.as_ref());
                let call = Call {
                    http_status: Some(status),
                    error: None,
                    error_description: None,
                    duration,
                    excerpt: ctx.redactor.excerpt(&body),
                };
                self.record(ctx, kind, Some(grant_type), "ok", &call, None)
                    .await;
                Ok(tokens)
            }
            Err(why) => Err(self
                .unusable(
                    ctx,
                    Attempt {
                        kind,
                        grant_type,
                        what,
                    },
                    status,
                    &body,
                    duration,
                    diagnosis::unusable_response(&why),
                )
                .await),
        }
    }

    /// Seed 004's custom refresh: POST the current values, read the new ones.
    async fn hook_grant(
        &self,
        ctx: &mut Ctx,
        hook: &str,
        access_token: Option<&SecretString>,
        refresh_token: Option<&SecretString>,
    ) -> Result<Tokens, TokenError> {
        let out = Outgoing {
            url: hook.to_owned(),
            field: "refresh_hook",
            body: Body::Json(grant::hook_input(
                &ctx.key,
                access_token,
                refresh_token,
                &ctx.endpoints.token_url,
            )),
            basic: None,
        };
        let what = "the refresh hook failed";
        let kind = HistoryKind::Hook;
        let gt = "refresh_hook";
        let (status, body, duration) = self.exchange(ctx, kind, gt, what, out, &[]).await?;
        if let Some(err) = grant::hook_error(&body) {
            let err = ctx.redactor.text(&err);
            let d = diagnosis::hook_error_response(&err);
            return Err(self
                .unusable(
                    ctx,
                    Attempt {
                        kind,
                        grant_type: gt,
                        what,
                    },
                    status,
                    &body,
                    duration,
                    d,
                )
                .await);
        }
        match grant::parse_tokens(&body) {
            Ok(tokens) => {
                ctx.redactor.add(Some(&tokens.access_token));
                ctx.redactor.add(tokens.refresh_token.as_ref());
                let call = Call {
                    http_status: Some(status),
                    error: None,
                    error_description: None,
                    duration,
                    excerpt: ctx.redactor.excerpt(&body),
                };
                self.record(ctx, kind, Some(gt), "ok", &call, None).await;
                Ok(tokens)
            }
            Err(why) => Err(self
                .unusable(
                    ctx,
                    Attempt {
                        kind,
                        grant_type: gt,
                        what,
                    },
                    status,
                    &body,
                    duration,
                    diagnosis::unusable_response(&why),
                )
                .await),
        }
    }

    /// Expiry and proactive refresh time (ms) for a new access token, by session mode. With
    /// `introspect` false, `auto` without `expires_in` assumes the session timeout (see
    /// `needs_introspection`).
    async fn expiry(
        &self,
        ctx: &mut Ctx,
        tokens: &Tokens,
        introspect: bool,
    ) -> (Option<i64>, Option<i64>) {
        let base = token_base_ms(tokens);
        let lifetime_s = match ctx.key.session {
            SessionMode::None => {
                let expires = tokens
                    .expires_in_s
                    .map(|s| base.saturating_add(s.saturating_mul(1000)));
                return (expires, None);
            }
            SessionMode::Fixed => ctx.session_timeout_s(),
            SessionMode::Auto => match tokens.expires_in_s {
                Some(s) => s,
                None if introspect => match self.introspect_lifetime(ctx, tokens).await {
                    Some(s) => s,
                    None => ctx.session_timeout_s(),
                },
                None => ctx.session_timeout_s(),
            },
        };
        expiry_times(base, lifetime_s)
    }

    /// `auto` with no `expires_in`, and a provider the key can introspect at.
    fn needs_introspection(ctx: &Ctx, tokens: &Tokens) -> bool {
        ctx.key.session == SessionMode::Auto
            && tokens.expires_in_s.is_none()
            && ctx.endpoints.introspection_url.is_some()
            && ctx.key.client_secret.is_some()
    }

    /// The access token's lifetime from introspection, when the provider has it and the key
    /// can authenticate to it (Salesforce's needs the client secret).
    async fn introspect_lifetime(&self, ctx: &mut Ctx, tokens: &Tokens) -> Option<i64> {
        let url = ctx.endpoints.introspection_url.clone()?;
        ctx.key.client_secret.as_ref()?;
        let access = tokens.access_token.expose_secret().to_owned();
        let out = grant::form_request(
            &ctx.key,
            &url,
            "introspection_url",
            vec![("token", &access), ("token_type_hint", "access_token")],
            RequestStyle::Body,
        );
        let kind = HistoryKind::Introspect;
        let what = "introspection failed";
        let (status, body, duration) = self
            .exchange(ctx, kind, "introspection", what, out, &[])
            .await
            .ok()?;
        let parsed = grant::parse_introspection(&body);
        let lifetime = match parsed {
            Some((true, Some(exp), iat)) => {
                let iat = iat.or(tokens.issued_at_ms.map(|t| t / 1000));
                iat.map(|iat| exp.saturating_sub(iat))
                    .or_else(|| Some(exp.saturating_sub(now_ms() / 1000)))
                    .filter(|s| *s > 0)
            }
            _ => None,
        };
        let call = Call {
            http_status: Some(status),
            error: None,
            error_description: None,
            duration,
            excerpt: ctx.redactor.excerpt(&body),
        };
        let outcome = if lifetime.is_some() {
            "ok"
        } else {
            "no_expiry"
        };
        self.record(ctx, kind, None, outcome, &call, None).await;
        lifetime
    }

    // ---- revocation ----

    async fn revoke(&self, c: &ConnectorRecord) -> Result<RevokeOutcome, TokenError> {
        let current = self
            .store
            .get_connector(&c.account_id, &c.name)
            .await
            .map_err(TokenError::store)?
            .filter(|r| r.id == c.id)
            .ok_or_else(connector_gone)?;
        let cv = current.credentials_version;
        // Hold the grant lease so no grant, on another node or in flight on this one (hence
        // an owner of its own), races the wipe.
        let owner = format!("{}:revoke", self.options.node_id);
        let leased = matches!(
            self.take_lease(&current, Need::Force, &owner).await,
            Ok(Ok(()))
        );
        let result = self.revoke_with_lease(current).await;
        if leased {
            if let Err(e) = self.store.release_grant_lease(&c.id, &owner).await {
                tracing::warn!(connector = %c.id, error = %e, "could not release the grant lease");
            }
        }
        if result.is_ok() {
            self.drop_cache(&c.id);
            self.trouble_mut(&c.id, |t| {
                t.backoff = None;
                t.blocked = Some((cv, TokenError::connector_revoked()));
            });
        }
        result
    }

    async fn revoke_with_lease(
        &self,
        current: ConnectorRecord,
    ) -> Result<RevokeOutcome, TokenError> {
        let state = self
            .store
            .get_token_state(&current.id)
            .await
            .map_err(TokenError::store)?
            .unwrap_or_default();
        let same_creds = state.credentials_version == current.credentials_version;
        let has_tokens =
            same_creds && (state.access_token.is_some() || state.refresh_token.is_some());
        if current.status == ConnectorStatus::Revoked && !has_tokens {
            return Ok(RevokeOutcome {
                already_revoked: true,
                refresh_token_revoked: false,
                access_token_revoked: false,
                provider_called: false,
            });
        }
        let id = current.id.clone();
        let mut outcome = RevokeOutcome {
            already_revoked: false,
            refresh_token_revoked: false,
            access_token_revoked: false,
            provider_called: false,
        };
        match Ctx::new(current) {
            Ok(mut ctx) => {
                let (refresh, access) = live_tokens(&state, same_creds, &ctx.key);
                ctx.redactor.add(refresh.as_ref());
                ctx.redactor.add(access.as_ref());
                if let Some(url) = ctx.endpoints.revocation_url.clone() {
                    // The refresh token first: at Salesforce it takes its access tokens along.
                    if let Some(rt) = &refresh {
                        outcome.refresh_token_revoked =
                            self.revoke_one(&ctx, &url, rt, "refresh_token").await?;
                        outcome.provider_called = true;
                    }
                    if let Some(at) = &access {
                        outcome.access_token_revoked =
                            self.revoke_one(&ctx, &url, at, "access_token").await?;
                        outcome.provider_called = true;
                    }
                }
            }
            // A key that no longer parses cannot be sent anywhere; the local wipe still happens.
            Err(e) => {
                tracing::warn!(connector = %id, code = e.code(), "revoking locally only: the stored key is unusable")
            }
        }
        self.store
            .clear_token_state(&id)
            .await
            .map_err(TokenError::store)?;
        self.store
            .set_connector_status(&id, ConnectorStatus::Revoked, None)
            .await
            .map_err(TokenError::store)?;
        tracing::info!(connector = %id, provider_called = outcome.provider_called, "connector revoked");
        Ok(outcome)
    }

    /// One RFC 7009 call; a token the provider no longer knows (`invalid_token`) is revoked.
    async fn revoke_one(
        &self,
        ctx: &Ctx,
        url: &str,
        token: &SecretString,
        hint: &str,
    ) -> Result<bool, TokenError> {
        let out = grant::form_request(
            &ctx.key,
            url,
            "revocation_url",
            vec![("token", token.expose_secret()), ("token_type_hint", hint)],
            RequestStyle::Body,
        );
        let kind = HistoryKind::Revoke;
        let what = "the revocation endpoint refused";
        let (status, body, duration) = self
            .exchange(ctx, kind, hint, what, out, &["invalid_token"])
            .await?;
        let already = !(200..300).contains(&status);
        let call = Call {
            http_status: Some(status),
            error: already.then(|| "invalid_token".to_owned()),
            error_description: None,
            duration,
            excerpt: ctx.redactor.excerpt(&body),
        };
        let outcome = if already {
            "already_revoked"
        } else {
            "revoked"
        };
        self.record(ctx, kind, Some(hint), outcome, &call, None)
            .await;
        Ok(true)
    }

    // ---- re-authentication ----

    async fn authorization_url(
        &self,
        c: &ConnectorRecord,
        redirect_uri: &str,
    ) -> Result<String, TokenError> {
        let ctx = Ctx::new(c.clone())?;
        let base = ctx.endpoints.authorization_url.clone().ok_or_else(|| {
            TokenError::new(
                "no_authorization_url",
                FailureClass::Permanent,
                "the connector has no authorization endpoint",
                "add `authorization_url` to the key (Salesforce and Microsoft presets derive it)",
            )
        })?;
        let redirect = url::Url::parse(redirect_uri).map_err(|_| {
            TokenError::new(
                "redirect_uri_invalid",
                FailureClass::Permanent,
                "redirect_uri is not an absolute URL",
                "give hookwarden's /oauth/callback URL, e.g. https://hookwarden.example.com/oauth/callback",
            )
        })?;
        let (verifier, challenge) = grant::pkce_pair();
        let state = grant::random_state();
        self.store
            .put_oauth_state(
                &state,
                &OAuthState {
                    connector_id: c.id.clone(),
                    account_id: c.account_id.0.clone(),
                    connector_name: c.name.clone(),
                    code_verifier: SecretString::from(verifier),
                    redirect_uri: redirect.to_string(),
                    expires_at: now_ms() + OAUTH_STATE_TTL_MS,
                },
            )
            .await
            .map_err(TokenError::store)?;
        grant::authorization_url(&base, &ctx.key, redirect.as_str(), &state, &challenge).map_err(
            |why| {
                TokenError::new(
                    "authorization_url_invalid",
                    FailureClass::Permanent,
                    format!("the authorization endpoint is not a URL: {why}"),
                    "fix `authorization_url` (or `host`) in the key",
                )
            },
        )
    }

    async fn exchange_code(
        &self,
        c: &ConnectorRecord,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<ConnectorRecord, TokenError> {
        let current = self
            .store
            .get_connector(&c.account_id, &c.name)
            .await
            .map_err(TokenError::store)?
            .filter(|r| r.id == c.id)
            .ok_or_else(connector_gone)?;
        let mut ctx = Ctx::new(current)?;
        ctx.redactor.add_str(code);
        if let Some(v) = code_verifier {
            ctx.redactor.add_str(v);
        }
        let grant = GrantKind::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        };
        let kind = HistoryKind::CodeExchange;
        let what = "the code exchange failed";
        let gt = "authorization_code";
        let out = grant::form_request(
            &ctx.key,
            &ctx.endpoints.token_url,
            "token_url",
            grant::grant_params(&ctx.key, &grant),
            ctx.key.request_style,
        );
        let (status, body, duration) = self.exchange(&ctx, kind, gt, what, out, &[]).await?;
        let tokens = match grant::parse_tokens(&body) {
            Ok(t) => t,
            Err(why) => {
                let d = diagnosis::unusable_response(&why);
                return Err(self
                    .unusable(
                        &ctx,
                        Attempt {
                            kind,
                            grant_type: gt,
                            what,
                        },
                        status,
                        &body,
                        duration,
                        d,
                    )
                    .await);
            }
        };
        ctx.redactor.add(Some(&tokens.access_token));
        ctx.redactor.add(tokens.refresh_token.as_ref());

        // The returned refresh token becomes the credentials.
        let mut key_doc: serde_json::Value =
            serde_json::from_str(ctx.record.key_json.expose_secret()).map_err(|_| {
                TokenError::new(
                    "key_invalid",
                    FailureClass::Permanent,
                    "the stored key is not JSON",
                    "give the key again",
                )
            })?;
        if let (Some(rt), Some(obj)) = (&tokens.refresh_token, key_doc.as_object_mut()) {
            obj.insert(
                "refresh_token".into(),
                serde_json::Value::String(rt.expose_secret().to_owned()),
            );
            // The key now selects the refresh-token flow; a pinned client_credentials would contradict it.
            if obj.get("grant_type").and_then(|g| g.as_str()) == Some("client_credentials") {
                obj.remove("grant_type");
            }
        }
        let new_key_json = key_doc.to_string();
        let new_key = Key::from_storage_json(&new_key_json, ctx.kind).map_err(|e| {
            TokenError::new(
                "key_invalid",
                FailureClass::Permanent,
                format!("the provider's answer does not make a usable key: {e}"),
                "check the app's scopes: a code exchange must return a refresh token (refresh_token / offline_access scope)",
            )
        })?;
        let call = Call {
            http_status: Some(status),
            error: None,
            error_description: None,
            duration,
            excerpt: ctx.redactor.excerpt(&body),
        };
        self.record(&ctx, kind, Some(gt), "ok", &call, None).await;

        let seen = ctx.record.seen();
        let mut record = ctx.record.clone();
        record.key_json = SecretString::from(new_key_json);
        record.status = ConnectorStatus::Active;
        record.flow = Some(new_key.flow().as_str().to_owned());
        let saved = self
            .store
            .save_connector(&record, true, seen)
            .await
            .map_err(TokenError::store)?;
        ctx.key = new_key;
        ctx.record = saved.clone();
        // The refresh token is already stored in the key: introspection may go first here.
        let (expires_at, refresh_at) = self.expiry(&mut ctx, &tokens, true).await;
        let granted = GrantedTokens {
            credentials_version: saved.credentials_version,
            access_token: tokens.access_token.clone(),
            access_expires_at: expires_at,
            refresh_at,
            // The refresh token now lives in the key.
            refresh_token: None,
            instance_url: tokens.instance_url.clone(),
            scope: tokens.scope.clone(),
            issued_at: tokens.issued_at_ms,
        };
        let version = self
            .store
            .save_granted_tokens(&saved.id, None, &granted, &self.options.node_id)
            .await
            .map_err(TokenError::store)?
            .unwrap_or(0);
        self.trouble_mut(&saved.id, |t| *t = Trouble::default());
        self.put_cache(
            &saved.id,
            saved.credentials_version,
            &AccessToken {
                secret: tokens.access_token,
                version,
                expires_at_ms: expires_at,
                refreshed: true,
                instance_url: tokens.instance_url,
            },
            refresh_at,
        );
        tracing::info!(connector = %saved.id, "re-authenticated by code exchange");
        Ok(saved)
    }
}

/// The tokens in force: the rotated refresh token overrides the key's, and tokens kept for older
/// credentials are dead.
fn live_tokens(
    state: &TokenState,
    same_creds: bool,
    key: &Key,
) -> (Option<SecretString>, Option<SecretString>) {
    if same_creds {
        (
            state
                .refresh_token
                .clone()
                .or_else(|| key.refresh_token.clone()),
            state.access_token.clone(),
        )
    } else {
        (key.refresh_token.clone(), None)
    }
}

/// When the token was issued: Salesforce's `issued_at` (ms) when plausible, else now.
fn token_base_ms(tokens: &Tokens) -> i64 {
    let now = now_ms();
    tokens
        .issued_at_ms
        .filter(|t| *t <= now && now.saturating_sub(*t) < MAX_ISSUED_AT_AGE_MS)
        .unwrap_or(now)
}

/// Expiry, and the proactive refresh time: min(60 s, 10 % of the lifetime) before it.
fn expiry_times(base_ms: i64, lifetime_s: i64) -> (Option<i64>, Option<i64>) {
    let lifetime_ms = lifetime_s.max(1).saturating_mul(1000);
    let expires_at = base_ms.saturating_add(lifetime_ms);
    let margin = (lifetime_ms / 10).min(MAX_REFRESH_MARGIN_MS);
    (Some(expires_at), Some(expires_at.saturating_sub(margin)))
}
