//! `TokenManager`: the access token for a connector, from the cache when it is fresh, else from
//! exactly one grant — one per connector in this process (waiters share one future) and across
//! processes (a lease row in the store; the state is re-read once the lease is held, since
//! another node may have refreshed meanwhile). DESIGN.md "Tokens: the rules" is the contract.
//!
//! This module owns the public types and the entry points; the work is in its children:
//! `cache` (fresh tokens and what went wrong), `flight` (single flight and the lease),
//! `exchange` (one grant and its persistence), `expiry` (a new token's expiry, introspection),
//! `call` (one provider call and its history line), `destination` (a Salesforce token goes only
//! to its org), `revoke`, `authorize` (re-authentication), `resume` (one more grant once a
//! refusal's cause is fixed at the provider).

mod authorize;
mod cache;
mod call;
mod destination;
mod exchange;
mod expiry;
mod flight;
mod keepalive;
mod refusal;
mod resume;
mod revoke;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookwarden_core::clock::rfc3339;
use hookwarden_core::diagnosis::FailureClass;
use hookwarden_core::session;
use hookwarden_core::{
    AccountId, AddressPolicy, Clock, ConnectorId, ConnectorKind, Endpoints, Key, SystemClock,
};
use hookwarden_store::{ConnectorRecord, Store, TokenState};
use secrecy::SecretString;
use serde::Serialize;

use crate::error::TokenError;
use crate::grant;
use crate::http::Http;
use crate::redact::Redactor;
use cache::Cache;
use flight::Flight;
pub use keepalive::{keep_alive_due, refresh_token_last_used, KeepAlive};
pub use refusal::Refusal;

/// How the token manager talks to providers.
#[derive(Clone)]
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
    /// What "now" is for expiry, refresh, backoff and the history; tests move it forward.
    pub clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        }
    }
}

// By hand: a `dyn Clock` has no `Debug`.
impl std::fmt::Debug for TokenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenOptions")
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("address_policy", &self.address_policy)
            .field("node_id", &self.node_id)
            .field("grant_timeout", &self.grant_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_backoff", &self.max_backoff)
            .field("lease_poll", &self.lease_poll)
            .finish_non_exhaustive()
    }
}

/// A usable access token. `version` and `granted_at_ms` are what `refused` is told after a 401.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub secret: SecretString,
    pub version: i64,
    pub expires_at_ms: Option<i64>,
    /// A grant happened to produce it (for the delivery attempt's `refreshed`).
    pub refreshed: bool,
    pub instance_url: Option<String>,
    /// When it was granted (ms, the token engine's clock; `None` for a token stored before
    /// grants were timed): after a 401, a stored token granted before the refused request was
    /// sent may be as near the end of its session as the refused one.
    pub granted_at_ms: Option<i64>,
}

/// What `revoke` did. The tokens held here are wiped whatever the provider said.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeOutcome {
    /// The provider confirmed that every token held here is revoked (true too when none was
    /// held); false when it refused, could not be reached, or has no revocation endpoint.
    pub provider_confirmed: bool,
    /// What happened at the provider, in a sentence a person can act on.
    pub detail: String,
    /// It was already revoked with nothing left to revoke: nothing was sent.
    pub already_revoked: bool,
    pub refresh_token_revoked: bool,
    pub access_token_revoked: bool,
    /// The provider was called (false when it has no revocation endpoint or nothing was held).
    pub provider_called: bool,
    /// Waiting deliveries this revocation held.
    pub held_deliveries: u64,
}

/// What `resume` did.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The connector as stored now: `active`.
    pub connector: ConnectorRecord,
    /// Held deliveries made due again.
    pub released: u64,
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

impl TokenStatus {
    /// The stored state `s` as shown for a connector on `credentials_version` at `now`: what
    /// belongs to older credentials is dead and not shown, nor a backoff that is over.
    fn of(s: TokenState, credentials_version: i64, now: i64) -> Self {
        let current = s.credentials_version == credentials_version;
        TokenStatus {
            has_access_token: current && s.access_token.is_some(),
            expires_at: s.access_expires_at.filter(|_| current).map(rfc3339),
            refresh_at: s.refresh_at.filter(|_| current).map(rfc3339),
            version: s.version,
            last_grant_at: s.last_grant_at.map(rfc3339),
            last_error: s.last_error,
            backoff_until: s.backoff_until.filter(|t| *t > now).map(rfc3339),
            consecutive_failures: s.consecutive_failures,
            refresh_token_rotated: current && s.refresh_token.is_some(),
            instance_url: s.instance_url.filter(|_| current),
            scope: s.scope.filter(|_| current),
        }
    }
}

#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// A token that is fresh and not ruled out by the last refusal (`Refusal::rules_out`).
    Fresh { refused: Option<Refusal> },
    /// A new grant whatever the cache holds (the `test` endpoint).
    Force,
    /// A refresh so that an idle refresh token is used (`keep_alive`): a new grant, recorded
    /// as `keep_alive`, not through a backoff.
    KeepAlive,
}

struct Inner {
    store: Store,
    options: TokenOptions,
    http: Http,
    cache: Cache,
    flights: Mutex<HashMap<ConnectorId, Flight>>,
}

impl Inner {
    /// Now, by the clock in the options (the system's unless a test drives it).
    fn now_ms(&self) -> i64 {
        self.options.clock.now_ms()
    }

    /// The connector as stored now, if it is still the one `id` names (not deleted, nor
    /// replaced by another of its name): what a grant, a revocation and a code exchange work on.
    async fn current_connector(
        &self,
        account_id: &AccountId,
        name: &str,
        id: &ConnectorId,
    ) -> Result<ConnectorRecord, TokenError> {
        self.store
            .get_connector(account_id, name)
            .await
            .map_err(TokenError::store)?
            .filter(|c| c.id == *id)
            .ok_or_else(connector_gone)
    }
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
        // The stored kind: until records carried it, this was `ConnectorKind::of(name)`, which
        // every connector written so far has as its kind.
        let (kind, key) = record.credentials.oauth().map_err(|e| {
            TokenError::new(
                "key_invalid",
                FailureClass::Permanent,
                format!("the connector's stored key cannot be used: {e}"),
                "give the key again (PATCH {\"key\": ...})",
            )
        })?;
        let key = key.clone();
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
        session::session_timeout_s(self.key.session_timeout_s, self.kind)
    }
}

impl TokenManager {
    pub fn new(store: Store, options: TokenOptions) -> Result<Self, TokenError> {
        let http = Http::new(
            options.allow_insecure_http,
            options.address_policy.clone(),
            options.connect_timeout,
            options.grant_timeout,
            options.clock.clone(),
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
                cache: Cache::new(),
                flights: Mutex::default(),
            }),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.inner.options.node_id
    }

    /// A fresh access token for `connector`: the cached one, or the result of one grant. After
    /// a 401 (`refused`) neither the refused token nor one the refusal rules out is served.
    pub async fn token(&self, connector: &ConnectorRecord) -> Result<AccessToken, TokenError> {
        let cache = &self.inner.cache;
        if let Some(t) = cache.get(connector, self.inner.now_ms()) {
            return Ok(t);
        }
        let refused = cache.refusal(&connector.id);
        let t = self.inner.fly(connector, Need::Fresh { refused }).await?;
        // A flight this call joined may have begun before the refusal and brought back a token
        // it rules out: one more flight, under the refusal (it grants, unless another node
        // has saved one granted since).
        if cache.ruled_out(&connector.id, &t) {
            let refused = cache.refusal(&connector.id);
            return self.inner.fly(connector, Need::Fresh { refused }).await;
        }
        Ok(t)
    }

    /// An endpoint refused `refusal.version` (401): neither it nor a token the refusal rules
    /// out (an older one, or a newer one that had lived half as long as it did: see
    /// `Refusal`) is served again, cached or stored, so the next `token` call brings one
    /// granted since or grants. A late 401 on an older token leaves a newer one alone.
    pub async fn refused(&self, connector_id: &ConnectorId, refusal: Refusal) {
        self.inner.cache.refused(connector_id, refusal);
    }

    /// A new grant now, whatever the cache holds (the connector's `test` endpoint). Still no
    /// grant for a revoked or `needs_reauth` connector.
    pub async fn force_grant(
        &self,
        connector: &ConnectorRecord,
    ) -> Result<AccessToken, TokenError> {
        self.inner.fly(connector, Need::Force).await
    }

    /// Wipe the tokens held here (the access token, the rotated refresh token and the key's own
    /// refresh token, given or obtained by a code exchange), set the connector `revoked` and
    /// hold its deliveries, in one transaction; then revoke the tokens at the provider (RFC 7009)
    /// as best it can. Fails only when the store cannot be written. Idempotent.
    pub async fn revoke(&self, connector: &ConnectorRecord) -> Result<RevokeOutcome, TokenError> {
        self.inner.revoke(connector).await
    }

    /// After a person fixed the cause of a refusal at the provider (a Run As user set, a user
    /// reactivated, an IP range relaxed): one grant with the stored credentials of a
    /// `needs_reauth` connector, whatever its refusal blocked. When it works the connector is
    /// `active` and its held deliveries are due (the caller wakes the workers); when it is
    /// refused the history has it with its diagnosis and the connector stays `needs_reauth`.
    /// A `revoked` connector answers `credentials_required` (it needs its credentials again);
    /// any other status `nothing_to_resume`, a conflict.
    pub async fn resume(&self, connector: &ConnectorRecord) -> Result<Resumed, TokenError> {
        self.inner.resume(connector).await
    }

    /// The authorization URL for re-authentication (PKCE S256 + a random state, stored). A
    /// client-credentials connector is refused (`wrong_flow`, a conflict) and nothing is stored.
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
        self.inner
            .complete_authorization(account_id, state, code)
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
            Ok(Some(s)) => TokenStatus::of(s, connector.credentials_version, self.inner.now_ms()),
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

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn secret(s: &str) -> Option<SecretString> {
        Some(SecretString::from(s.to_owned()))
    }

    fn exposed(s: &Option<SecretString>) -> Option<&str> {
        s.as_ref().map(|s| s.expose_secret())
    }

    fn state() -> TokenState {
        TokenState {
            credentials_version: 2,
            version: 7,
            access_token: secret("at"),
            access_expires_at: Some(NOW + 60_000),
            refresh_at: Some(NOW + 54_000),
            refresh_token: secret("rotated"),
            instance_url: Some("https://a.my.salesforce.com".into()),
            scope: Some("api".into()),
            last_grant_at: Some(NOW - 1_000),
            backoff_until: Some(NOW + 5_000),
            consecutive_failures: 1,
            ..TokenState::default()
        }
    }

    #[test]
    fn the_status_shows_no_token_of_older_credentials() {
        let now = TokenStatus::of(state(), 2, NOW);
        assert!(now.has_access_token && now.refresh_token_rotated);
        assert!(now.expires_at.is_some() && now.refresh_at.is_some());
        assert!(now.instance_url.is_some() && now.scope.is_some());
        let replaced = TokenStatus::of(state(), 3, NOW);
        assert!(!replaced.has_access_token && !replaced.refresh_token_rotated);
        assert!(replaced.expires_at.is_none() && replaced.refresh_at.is_none());
        assert!(replaced.instance_url.is_none() && replaced.scope.is_none());
        // The history of the grants stays visible.
        assert_eq!(replaced.version, 7);
        assert!(replaced.last_grant_at.is_some());
    }

    #[test]
    fn the_status_shows_times_in_utc_with_z_as_every_answer_does() {
        let status = TokenStatus::of(state(), 2, NOW);
        assert_eq!(
            status.last_grant_at.as_deref(),
            Some("2023-11-14T22:13:19.000Z")
        );
        assert_eq!(
            status.expires_at.as_deref(),
            Some("2023-11-14T22:14:20.000Z")
        );
    }

    #[test]
    fn the_status_shows_a_backoff_only_until_it_is_over() {
        assert!(TokenStatus::of(state(), 2, NOW).backoff_until.is_some());
        assert!(TokenStatus::of(state(), 2, NOW + 5_000)
            .backoff_until
            .is_none());
    }

    #[test]
    fn a_rotated_refresh_token_overrides_the_keys_until_the_credentials_change() {
        let key = Key::from_storage_json(
            r#"{"client_id":"c","refresh_token":"from-key","token_url":"https://example.com/t"}"#,
            ConnectorKind::Generic,
        )
        .unwrap();
        let (rt, at) = live_tokens(&state(), true, &key);
        assert_eq!((exposed(&rt), exposed(&at)), (Some("rotated"), Some("at")));
        let (rt, at) = live_tokens(&state(), false, &key);
        assert_eq!((exposed(&rt), exposed(&at)), (Some("from-key"), None));
        let unrotated = TokenState {
            refresh_token: None,
            ..state()
        };
        let (rt, _) = live_tokens(&unrotated, true, &key);
        assert_eq!(exposed(&rt), Some("from-key"));
    }
}
