//! The refresh-token keep-alive (DESIGN.md, "Telling the owner"): every few minutes, each
//! active refresh-token connector whose refresh token has not been used for `keepalive_days`
//! makes one refresh through the token engine (`TokenManager::keep_alive`, history kind
//! `keep_alive`), so that an org's "expire refresh token if not used for N days" policy does
//! not expire an idle integration. The engine decides again under the grant lease, so nodes
//! sharing a database do not both refresh.
//!
//! The same loop writes the `credential.expiring` notifications (`expiring_pass`): a
//! connector's credentials or signing secret past `secret_max_age_days`, a refresh token about
//! to pass its org's `refresh_token_idle_days`; once per secret and threshold.
//!
//! Its own loop, not a step of the delivery engine's maintenance loop: the workers reach the
//! token engine only through `delivery::TokenSource` (bearer tokens for deliveries), and this
//! needs the engine itself.

use std::time::Duration;

use hookwarden_oauth::KeepAlive;
use hookwarden_store::StoreError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// How often the loop looks: idleness is measured in days, so minutes are precise enough.
const EVERY: Duration = Duration::from_secs(600);
/// The first look after start, out of the way of a starting server's own work.
const FIRST_AFTER: Duration = Duration::from_secs(30);
/// Connectors refreshed in one pass at most; the rest wait for the next (one grant each).
const PASS_LIMIT: i64 = 500;
const DAY_MS: i64 = 86_400_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepAliveReport {
    /// Connectors that made a keep-alive refresh.
    pub refreshed: usize,
    /// Found idle, but used meanwhile (or no longer active) once the lease was held.
    pub not_due: usize,
    /// Another grant held the lease: it uses the token.
    pub busy: usize,
    /// The refresh failed (its history and the connector's status say why).
    pub failed: usize,
}

/// One pass over every account's connectors, on the server's clock; nothing when
/// `keepalive_days` is 0. Tests call it with a moved `OffsetClock`.
pub async fn keep_alive_pass(state: &AppState) -> Result<KeepAliveReport, StoreError> {
    let mut report = KeepAliveReport::default();
    let days = state.settings.governance.keepalive_days;
    if days == 0 {
        return Ok(report);
    }
    let idle_before = state.clock.now_ms() - i64::from(days) * DAY_MS;
    for candidate in state
        .store
        .keep_alive_candidates(idle_before, PASS_LIMIT)
        .await?
    {
        let Some(record) = state
            .store
            .get_connector(&candidate.account_id, &candidate.name)
            .await?
            .filter(|r| r.id == candidate.id)
        else {
            continue;
        };
        match state.tokens.keep_alive(&record, idle_before).await {
            Ok(KeepAlive::Refreshed) => report.refreshed += 1,
            Ok(KeepAlive::NotDue) => report.not_due += 1,
            Ok(KeepAlive::Busy) => report.busy += 1,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(connector = %record.id, error = %e, "keep-alive refresh failed");
            }
        }
    }
    Ok(report)
}

/// `credential.expiring` for every connector past a threshold at `now` (ms), to the endpoints
/// that take it, once per secret and threshold; how many notifications were written.
pub async fn expiring_pass(state: &AppState, now: i64) -> Result<u64, StoreError> {
    state
        .store
        .notify_expiring(now, state.settings.governance.secret_max_age_days)
        .await
}

/// The running loop; `shutdown` stops it.
pub struct KeepAliveLoop {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl KeepAliveLoop {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Start the loop (a pass `FIRST_AFTER` start, then every `EVERY`).
pub fn spawn(state: AppState) -> KeepAliveLoop {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut wait = FIRST_AFTER;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                break;
            }
            wait = EVERY;
            match keep_alive_pass(&state).await {
                Ok(r) if r.refreshed + r.failed > 0 => {
                    tracing::info!(
                        refreshed = r.refreshed,
                        failed = r.failed,
                        "keep-alive pass"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "keep-alive pass failed; tried again at the next")
                }
            }
            match expiring_pass(&state, state.clock.now_ms()).await {
                Ok(n) if n > 0 => tracing::info!(notifications = n, "credentials expiring"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "looking for expiring credentials failed; tried again at the next pass")
                }
            }
        }
    });
    KeepAliveLoop { stop, task }
}
