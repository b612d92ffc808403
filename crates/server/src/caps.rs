//! Per-account caps: connectors (`max_connectors_per_account`), API keys
//! (`max_keys_per_account`) and authorization flows begun and not yet completed
//! (`max_pending_authorizations`). One more is `409 limit_reached`, naming the cap, the setting,
//! and how to make room. A cap of 0 is none. Counted before the write, so two requests at
//! the same moment can pass one over the cap: a bound on what an account holds, not a quota.

use axum::http::StatusCode;
use hookwarden_core::AccountId;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Before a connector is registered under a new name.
pub async fn room_for_connector(state: &AppState, account: &AccountId) -> ApiResult<()> {
    let cap = state.settings.limits.max_connectors_per_account;
    if cap == 0 || state.store.count_connectors(account).await? < i64::from(cap) {
        return Ok(());
    }
    Err(limit_reached(
        format!(
            "this account has {cap} connectors, as many as it may (max_connectors_per_account)"
        ),
        "delete one it no longer needs (DELETE /api/callback/connectors/{name}), or ask the \
         server's operator to raise max_connectors_per_account \
         (HOOKWARDEN_MAX_CONNECTORS_PER_ACCOUNT)",
    ))
}

/// Before an API key is made.
pub async fn room_for_key(state: &AppState, account: &AccountId) -> ApiResult<()> {
    let cap = state.settings.limits.max_keys_per_account;
    if cap == 0 || state.store.list_api_keys(account).await?.len() < cap as usize {
        return Ok(());
    }
    Err(limit_reached(
        format!("this account has {cap} API keys, as many as it may (max_keys_per_account)"),
        "revoke a key no longer used (GET /api/keys shows when each was last used; DELETE \
         /api/keys/{id}), or ask the server's operator to raise max_keys_per_account \
         (HOOKWARDEN_MAX_KEYS_PER_ACCOUNT)",
    ))
}

/// Before an authorization flow is begun (`…/oauth/url`).
pub async fn room_for_authorization(state: &AppState, account: &AccountId) -> ApiResult<()> {
    let cap = state.settings.limits.max_pending_authorizations;
    let now = state.clock.now_ms();
    if cap == 0
        || state
            .store
            .count_pending_authorizations(account, now)
            .await?
            < i64::from(cap)
    {
        return Ok(());
    }
    Err(limit_reached(
        format!(
            "this account has begun {cap} authorizations that were neither completed nor have \
             expired, as many as it may (max_pending_authorizations)"
        ),
        "complete one with the URL already given (its state is good for 15 minutes), wait for \
         the oldest to expire, or delete a connector with flows begun; the server's operator \
         can raise max_pending_authorizations (HOOKWARDEN_MAX_PENDING_AUTHORIZATIONS)",
    ))
}

fn limit_reached(message: String, fix: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "limit_reached", message, fix)
}
