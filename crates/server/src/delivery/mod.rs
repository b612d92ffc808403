//! The delivery engine: ingest (group commit), workers that claim due deliveries with a lease
//! and send them with a bearer token and a Standard Webhooks signature, the outcome policy,
//! retries, held deliveries, per-connector limits and circuit breaker, and metrics.
//!
//! One event's path: `ingest` → `claim` (claimed in a batch, then failed, held, given back or
//! sent in its connector's lane, `lanes`) → `deliver` (authorized → answered) → `outcome` →
//! `record`. `engine` drives it a batch at a time (`run_once`) or runs the loops (`spawn`).

mod claim;
mod deliver;
mod engine;
mod floor;
pub mod http;
pub mod ingest;
mod lanes;
mod maintenance;
pub mod metrics;
mod options;
mod outcome;
mod record;
pub mod signing;
mod target;
mod turns;
mod workers;

use std::future::Future;
use std::time::Duration;

use hookwarden_core::{ConnectorId, Diagnosis};
use hookwarden_oauth::Remedy;
use hookwarden_store::ConnectorRecord;
use secrecy::SecretString;

pub use engine::{Engine, EngineHandle, RunReport};
pub use hookwarden_core::clock::{Clock, OffsetClock, SystemClock};
pub use ingest::{Hub, IngestError, IngestRequest, Shape};
pub use options::EngineOptions;

/// Where the workers get access tokens: the token engine (`hookwarden_oauth::TokenManager`
/// behind an adapter). Not used for the default callback, which sends its Basic key.
pub trait TokenSource: Send + Sync + 'static {
    /// A usable access token: cached, or freshly granted (`refreshed`).
    fn bearer(
        &self,
        connector: &ConnectorRecord,
    ) -> impl Future<Output = Result<Bearer, TokenFailure>> + Send;

    /// The endpoint refused `bearer` at `at_ms` (401): the next `bearer` brings neither it nor
    /// a token as near its end (the token engine's `Refusal`), but one granted since or a new
    /// grant. A newer token granted after it stays.
    fn refused(
        &self,
        connector_id: &ConnectorId,
        bearer: &Bearer,
        at_ms: i64,
    ) -> impl Future<Output = ()> + Send;
}

pub struct Bearer {
    pub token: SecretString,
    /// The token state's version, handed back to `refused`.
    pub version: i64,
    /// This call made a grant (shown on the attempt as `refreshed`).
    pub refreshed: bool,
    /// When the token was granted (the token engine's clock), when known.
    pub granted_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum TokenFailure {
    /// Network, 5xx, 429, `temporarily_unavailable`: the delivery waits and tries again.
    Transient {
        retry_after: Option<Duration>,
        message: String,
        /// Shown on the attempt: the grant's diagnosis, or why no grant was tried.
        diagnosis: Diagnosis,
    },
    /// `invalid_grant`, `invalid_client`, revoked...: the connector needs new credentials. The
    /// token source has made it `needs_reauth` and held its deliveries
    /// (`Store::mark_needs_reauth`), so they wait until the credentials change.
    NeedsReauth { message: String },
    /// `url_not_in_org`: the connector's url is not in the org whose token it would get. The
    /// token source has made it `disabled` and held its deliveries
    /// (`Store::mark_url_not_in_org`), so they wait until its url changes.
    Disabled { message: String },
}

/// How long a delivery waits when no token can be had because of a configuration problem.
const CONFIG_PROBLEM_RETRY: Duration = Duration::from_secs(60);

/// The token engine as the workers' token source.
impl TokenSource for hookwarden_oauth::TokenManager {
    async fn bearer(&self, connector: &ConnectorRecord) -> Result<Bearer, TokenFailure> {
        match self.token(connector).await {
            Ok(t) => Ok(Bearer {
                token: t.secret,
                version: t.version,
                refreshed: t.refreshed,
                granted_at: t.granted_at_ms,
            }),
            Err(e) => Err(match e.remedy() {
                Remedy::Wait => TokenFailure::Transient {
                    retry_after: e.retry_after(),
                    message: e.to_string(),
                    diagnosis: e.explained(),
                },
                // The token manager has made the connector needs_reauth and held its
                // deliveries (or it was already waiting for new credentials).
                Remedy::NewCredentials => TokenFailure::NeedsReauth {
                    message: e.to_string(),
                },
                // No token goes to a url outside the org: the token manager has disabled the
                // connector and held its deliveries.
                Remedy::FixUrl => TokenFailure::Disabled {
                    message: e.to_string(),
                },
                // Not the credentials' fault, so no needs_reauth; the delivery waits and says why.
                Remedy::FixConfiguration => TokenFailure::Transient {
                    retry_after: Some(CONFIG_PROBLEM_RETRY),
                    message: e.to_string(),
                    diagnosis: e.explained(),
                },
            }),
        }
    }

    async fn refused(&self, connector_id: &ConnectorId, bearer: &Bearer, at_ms: i64) {
        let refusal = hookwarden_oauth::Refusal {
            version: bearer.version,
            granted_at_ms: bearer.granted_at,
            at_ms,
        };
        hookwarden_oauth::TokenManager::refused(self, connector_id, refusal).await;
    }
}

/// Start this node's workers with the server's settings and default engine options; stop
/// them with `EngineHandle::shutdown` before the store closes.
pub async fn start<T: TokenSource>(
    state: &crate::AppState,
    tokens: T,
) -> anyhow::Result<EngineHandle> {
    let options = EngineOptions {
        clock: state.clock.clone(),
        lease: state.settings.delivery_lease,
        ..EngineOptions::default()
    };
    start_with(state, tokens, options).await
}

/// `start` with other engine options (tests: a long poll, to show that wake-ups come from
/// other nodes' notifications).
pub async fn start_with<T: TokenSource>(
    state: &crate::AppState,
    tokens: T,
    options: EngineOptions,
) -> anyhow::Result<EngineHandle> {
    let engine = Engine::new(state.delivery.clone(), &state.settings, tokens, options)?;
    listen_for_other_nodes(state.delivery.clone()).await;
    Ok(engine.spawn().await?)
}

/// On PostgreSQL, wake this node's workers when another node commits due deliveries
/// (LISTEN/NOTIFY); the workers' poll remains the fallback. Ends with the process.
async fn listen_for_other_nodes(hub: std::sync::Arc<Hub>) {
    let listener = match hub.store().deliveries_due_listener().await {
        Ok(Some(listener)) => listener,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for other nodes; relying on the poll");
            return;
        }
    };
    let hub = std::sync::Arc::downgrade(&hub);
    tokio::spawn(async move {
        let mut listener = listener;
        loop {
            // Wake up now and then to notice that the server is gone, and free the connection.
            let received = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await;
            let Some(hub) = hub.upgrade() else { return };
            match received {
                Ok(Ok(from)) if turns::sender(&from) == hub.node() => {}
                // An ingest group: claim now if it is this node's turn (`turns`); otherwise look
                // a moment later, unless a claim started meanwhile.
                Ok(Ok(from)) if !hub.turns().mine(&from) => {
                    let claims = hub.turns().claims();
                    let hub = std::sync::Arc::downgrade(&hub);
                    tokio::spawn(async move {
                        tokio::time::sleep(turns::TURN_WAIT).await;
                        if let Some(hub) = hub.upgrade() {
                            if hub.turns().claims() == claims {
                                hub.wake_workers();
                            }
                        }
                    });
                }
                Ok(Ok(_)) => hub.wake_workers(),
                Err(_) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}
