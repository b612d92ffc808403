//! A Salesforce-shaped org for tests, the demo and benchmarks.
//!
//! It answers like a real org: the OAuth 2.0 token, revoke, introspect and authorize endpoints
//! under `/services/oauth2/`, and an Apex REST receiver under `/services/apexrest/` that records
//! every callback it accepts. Its knobs (clients, rotation, session timeout, Run As user,
//! namespace, injected faults, ...) are set with [`FakeOrg::builder`] or at runtime, in Rust
//! through [`FakeOrgState`] or over HTTP under `/_fake/` for tests that run it in another process.
//!
//! Where they are documented: each knob ([`FakeOrgConfig`], [`Faults`], [`ClientApp`]) with its
//! type, default and effect, the `/_fake/` endpoints ([`CONTROL_ROUTES`]), and which knob causes
//! which of hookwarden's diagnoses, in the README's section "The fake org"
//! (`tests/readme_fake_org.rs` fails when it and the code differ); `hookwarden fake-org --help`
//! lists the endpoints too.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let org = hookwarden_fake_org::FakeOrg::builder().rotate_refresh_tokens(true).start().await?;
//! let refresh_token = org.issue_refresh_token("fake-client-id");
//! println!("{} {}", org.token_url(), org.callback_url());
//! # let _ = refresh_token; Ok(()) }
//! ```

mod config;
mod http;
mod org;
mod wire;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{
    ClientApp, FakeOrgConfig, Faults, DEFAULT_APEX_PATH, DEFAULT_CALLBACK_LOG_CAPACITY,
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SESSION_TIMEOUT_S,
};
pub use http::{ControlRoute, CONTROL_ROUTES};
pub use org::{FakeOrgStats, ReceivedCallback};

use org::Org;
use wire::random_alnum;

/// How long [`RunningFakeOrg::shutdown`] waits for open connections before it stops the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The org's state, shared by its handlers and by whoever drives the knobs. Cheap to clone.
#[derive(Clone)]
pub struct FakeOrgState {
    org: Arc<Mutex<Org>>,
    /// `http://` + the bound address; used when a request carries no usable `Host`.
    bound_base: Arc<OnceLock<String>>,
}

impl FakeOrgState {
    /// State for `config`, unchecked (see [`FakeOrgConfig::validate`]).
    pub fn new(config: FakeOrgConfig) -> Self {
        Self {
            org: Arc::new(Mutex::new(Org::new(config))),
            bound_base: Arc::new(OnceLock::new()),
        }
    }

    /// A panicking handler cannot happen by design; if one did, the state is still usable.
    fn lock(&self) -> MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_bound_addr(&self, addr: SocketAddr) {
        let _ = self.bound_base.set(format!("http://{addr}"));
    }

    /// The base URL a client reached us at: `public_url` if set, else the `Host` header (so the
    /// `instance_url` works whatever address the org is reached at), else the bound address.
    fn base_url_for(&self, org: &Org, headers: &HeaderMap) -> String {
        if let Some(url) = &org.config.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            });
        match host {
            Some(h) => format!("http://{h}"),
            None => self.fallback_base(),
        }
    }

    fn fallback_base(&self) -> String {
        self.bound_base
            .get()
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1".to_owned())
    }

    /// The org's base URL (`public_url`, else `http://` + the bound address).
    pub fn base_url(&self) -> String {
        match &self.lock().config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => self.fallback_base(),
        }
    }

    pub fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.base_url())
    }

    pub fn revoke_url(&self) -> String {
        format!("{}/services/oauth2/revoke", self.base_url())
    }

    pub fn introspect_url(&self) -> String {
        format!("{}/services/oauth2/introspect", self.base_url())
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/services/oauth2/authorize", self.base_url())
    }

    /// `{base}/services/apexrest/{path}` for an Apex `urlMapping` such as `OSS/callback`,
    /// with the namespace prefix in front when one is configured.
    pub fn apex_url(&self, path: &str) -> String {
        let ns = self.lock().config.namespace.clone();
        let path = path.trim_start_matches('/');
        match ns {
            Some(ns) => format!("{}/services/apexrest/{ns}/{path}", self.base_url()),
            None => format!("{}/services/apexrest/{path}", self.base_url()),
        }
    }

    /// Where OneSpan's sample class receives callbacks: [`Self::apex_url`] of `OSS/callback`.
    pub fn callback_url(&self) -> String {
        self.apex_url(DEFAULT_APEX_PATH)
    }

    // ---- tokens ----

    /// A refresh token for `client_id`, as if its user had approved the app in a browser; it
    /// carries the allowed scopes. The client need not exist (grants with it then fail with
    /// `invalid_client_id`, as for a deleted app).
    pub fn issue_refresh_token(&self, client_id: &str) -> String {
        self.issue_refresh_token_with_scope(client_id, None).0
    }

    /// Like [`Self::issue_refresh_token`] with an explicit scope; returns token and scope.
    pub fn issue_refresh_token_with_scope(
        &self,
        client_id: &str,
        scope: Option<String>,
    ) -> (String, String) {
        let random = random_alnum(80);
        self.lock().issue_refresh_token(client_id, scope, &random)
    }

    /// A live access token for `client_id` acting as the org's user (outside any refresh family).
    pub fn issue_access_token(&self, client_id: &str) -> String {
        let random = random_alnum(94);
        self.lock().issue_access_token(client_id, &random)
    }

    /// Revoke every token the org has issued, as an admin revoking all sessions would.
    pub fn revoke_all_tokens(&self) {
        self.lock().revoke_all();
    }

    fn default_client_id(&self) -> String {
        self.lock()
            .config
            .clients
            .first()
            .map(|c| c.client_id.clone())
            .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned())
    }

    // ---- knobs ----

    pub fn config(&self) -> FakeOrgConfig {
        self.lock().config.clone()
    }

    /// Change knobs with a closure; a change that fails validation is not applied.
    pub fn update_config(&self, change: impl FnOnce(&mut FakeOrgConfig)) -> Result<(), String> {
        let mut org = self.lock();
        let mut next = org.config.clone();
        change(&mut next);
        next.validate()?;
        org.config = next;
        Ok(())
    }

    /// Apply a JSON patch as `POST /_fake/config` does; returns the new config.
    pub fn patch_config(&self, patch: serde_json::Value) -> Result<FakeOrgConfig, String> {
        let mut org = self.lock();
        let next = org.config.patched(patch)?;
        org.config = next.clone();
        Ok(next)
    }

    /// Infallible knob setters: the values they take cannot be invalid.
    fn set(&self, change: impl FnOnce(&mut FakeOrgConfig)) {
        change(&mut self.lock().config);
    }

    pub fn upsert_client(&self, app: ClientApp) {
        self.set(|c| c.upsert_client(app));
    }

    pub fn set_rotate_refresh_tokens(&self, on: bool) {
        self.set(|c| c.rotate_refresh_tokens = on);
    }

    pub fn set_session_timeout_s(&self, secs: u64) {
        self.set(|c| c.session_timeout_s = secs);
    }

    pub fn set_run_as_user(&self, username: Option<&str>) {
        self.set(|c| c.run_as_user = username.map(str::to_owned));
    }

    pub fn set_allowed_scopes<I, S>(&self, scopes: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.set(|c| c.allowed_scopes = scopes);
    }

    pub fn set_user_inactive(&self, inactive: bool) {
        self.set(|c| c.user_inactive = inactive);
    }

    pub fn set_login_host(&self, on: bool) {
        self.set(|c| c.login_host = on);
    }

    pub fn set_ip_restricted(&self, on: bool) {
        self.set(|c| c.ip_restricted = on);
    }

    pub fn set_app_not_approved(&self, on: bool) {
        self.set(|c| c.app_not_approved = on);
    }

    pub fn set_apex_class_access_denied(&self, on: bool) {
        self.set(|c| c.apex_class_access_denied = on);
    }

    pub fn set_api_disabled(&self, on: bool) {
        self.set(|c| c.api_disabled = on);
    }

    /// `Err` for a prefix with a slash or an empty one.
    pub fn set_namespace(&self, ns: Option<&str>) -> Result<(), String> {
        self.update_config(|c| c.namespace = ns.map(str::to_owned))
    }

    pub fn set_deployed_classes<I, S>(&self, mappings: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mappings = mappings.into_iter().map(Into::into).collect();
        self.set(|c| c.deployed_classes = mappings);
    }

    /// `Err` for an error rate outside 0..=1 or a status that is not 4xx/5xx.
    pub fn set_token_faults(&self, faults: Faults) -> Result<(), String> {
        self.update_config(|c| c.token_faults = faults)
    }

    /// `Err` for an error rate outside 0..=1 or a status that is not 4xx/5xx.
    pub fn set_apex_faults(&self, faults: Faults) -> Result<(), String> {
        self.update_config(|c| c.apex_faults = faults)
    }

    /// Answer 401 `INVALID_SESSION_ID` to the next `n` Apex calls whatever token they carry.
    pub fn invalidate_next_apex_sessions(&self, n: u32) {
        self.set(|c| c.apex_invalid_session_next = n);
    }

    /// Move the org's clock forward (or back) to expire tokens without sleeping; returns the
    /// total offset in seconds.
    pub fn advance_clock_s(&self, secs: i64) -> i64 {
        let mut org = self.lock();
        org.config.clock_offset_s = org.config.clock_offset_s.saturating_add(secs);
        org.config.clock_offset_s
    }

    // ---- observations ----

    pub fn stats(&self) -> FakeOrgStats {
        self.lock().stats.clone()
    }

    /// Zero the counters and forget received callbacks; tokens and knobs stay.
    pub fn reset_stats(&self) {
        self.lock().reset_stats();
    }

    /// Every callback still in the log (see `callback_log_capacity`), oldest first.
    pub fn callbacks(&self) -> Vec<ReceivedCallback> {
        self.callbacks_since(0, usize::MAX)
    }

    /// Callbacks with `seq > since`, at most `limit`.
    pub fn callbacks_since(&self, since: u64, limit: usize) -> Vec<ReceivedCallback> {
        self.lock().callbacks_since(since, limit)
    }
}

/// The org's HTTP surface, for callers that serve it themselves.
pub fn router(state: FakeOrgState) -> Router {
    http::routes(state)
}

/// Serve an org with `config` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: FakeOrgConfig) -> io::Result<()> {
    serve_with_shutdown(listener, config, std::future::pending()).await
}

/// Serve until `signal` completes (e.g. Ctrl-C in the CLI), then drain connections.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    config: FakeOrgConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    serve_state(listener, FakeOrgState::new(config), signal).await
}

async fn serve_state(
    listener: TcpListener,
    state: FakeOrgState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    state.set_bound_addr(addr);
    tracing::info!(%addr, "fake org listening");
    // Small request/response pairs: Nagle's algorithm would only add delay in benchmarks.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(signal)
        .await
}

/// Entry point: `FakeOrg::builder()....start().await`.
pub struct FakeOrg;

impl FakeOrg {
    pub fn builder() -> FakeOrgBuilder {
        FakeOrgBuilder::default()
    }
}

/// Knobs before start. Each setter mirrors a [`FakeOrgConfig`] field.
#[derive(Debug, Clone, Default)]
pub struct FakeOrgBuilder {
    config: FakeOrgConfig,
    listen: Option<SocketAddr>,
}

impl FakeOrgBuilder {
    /// Replace every knob at once.
    pub fn config(mut self, config: FakeOrgConfig) -> Self {
        self.config = config;
        self
    }

    /// Listen here instead of `127.0.0.1:0`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.config.public_url = Some(url.into());
        self
    }

    /// Add a client app, or replace the one with the same id (the default one included).
    pub fn client(mut self, app: ClientApp) -> Self {
        self.config.upsert_client(app);
        self
    }

    /// Replace all client apps.
    pub fn clients(mut self, apps: Vec<ClientApp>) -> Self {
        self.config.clients = apps;
        self
    }

    pub fn session_timeout_s(mut self, secs: u64) -> Self {
        self.config.session_timeout_s = secs;
        self
    }

    pub fn rotate_refresh_tokens(mut self, on: bool) -> Self {
        self.config.rotate_refresh_tokens = on;
        self
    }

    pub fn run_as_user(mut self, username: Option<&str>) -> Self {
        self.config.run_as_user = username.map(str::to_owned);
        self
    }

    pub fn allowed_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.allowed_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    pub fn user_inactive(mut self, inactive: bool) -> Self {
        self.config.user_inactive = inactive;
        self
    }

    pub fn login_host(mut self, on: bool) -> Self {
        self.config.login_host = on;
        self
    }

    /// Grants fail with "ip restricted or invalid login hours" (`FakeOrgConfig::ip_restricted`).
    pub fn ip_restricted(mut self, on: bool) -> Self {
        self.config.ip_restricted = on;
        self
    }

    /// A user's grants fail with "user hasn't approved this consumer".
    pub fn app_not_approved(mut self, on: bool) -> Self {
        self.config.app_not_approved = on;
        self
    }

    /// Apex calls answer 403 `FORBIDDEN`: the token's user may not run the class.
    pub fn apex_class_access_denied(mut self, on: bool) -> Self {
        self.config.apex_class_access_denied = on;
        self
    }

    /// Apex calls answer 403 `API_DISABLED_FOR_ORG`.
    pub fn api_disabled(mut self, on: bool) -> Self {
        self.config.api_disabled = on;
        self
    }

    pub fn namespace(mut self, ns: Option<&str>) -> Self {
        self.config.namespace = ns.map(str::to_owned);
        self
    }

    pub fn deployed_classes<I, S>(mut self, mappings: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.deployed_classes = mappings.into_iter().map(Into::into).collect();
        self
    }

    pub fn token_faults(mut self, faults: Faults) -> Self {
        self.config.token_faults = faults;
        self
    }

    pub fn apex_faults(mut self, faults: Faults) -> Self {
        self.config.apex_faults = faults;
        self
    }

    pub fn apex_invalid_session_next(mut self, n: u32) -> Self {
        self.config.apex_invalid_session_next = n;
        self
    }

    /// Hold Apex calls unanswered once `n` callbacks have been received (see
    /// `FakeOrgConfig::apex_hold_after`); `update_config` clears it.
    pub fn apex_hold_after(mut self, n: u64) -> Self {
        self.config.apex_hold_after = Some(n);
        self
    }

    pub fn callback_log_capacity(mut self, n: usize) -> Self {
        self.config.callback_log_capacity = n;
        self
    }

    /// Bind (default `127.0.0.1:0`) and serve in the background.
    pub async fn start(self) -> io::Result<RunningFakeOrg> {
        self.config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = FakeOrgState::new(self.config);
        state.set_bound_addr(addr);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_state(listener, state.clone(), async move {
            // Dropping the handle stops the org too.
            let _ = stopped.await;
        }));
        Ok(RunningFakeOrg {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A started org. Derefs to [`FakeOrgState`] for URLs, tokens, knobs and counters.
/// Dropping it stops the server.
pub struct RunningFakeOrg {
    addr: SocketAddr,
    state: FakeOrgState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl RunningFakeOrg {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &FakeOrgState {
        &self.state
    }

    /// Stop accepting, let open requests finish (at most a few seconds), and return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                // Idle keep-alive connections can hold a graceful shutdown open.
                task.abort();
            }
        }
    }
}

impl Deref for RunningFakeOrg {
    type Target = FakeOrgState;

    fn deref(&self) -> &FakeOrgState {
        &self.state
    }
}

impl Drop for RunningFakeOrg {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
