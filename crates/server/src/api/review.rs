//! `GET /api/review`: the governance review of every connector of the account (the checks are
//! `crate::review`'s); `?probe=true` (an admin key) adds the connector test's live probe.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use hookwarden_core::Scope::{Admin, Read};
use hookwarden_store::ConnectorRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{insufficient_scope, needs, Authed};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::review::{self, Check, Facts, Level};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    // `?probe=true` needs admin: it makes a grant and sends a test event (checked below).
    OpenApiRouter::new().routes(needs(Read, routes!(get_review)))
}

/// Unknown parameters are refused, so a misspelt `?prob=true` does not pass for a review
/// without its probe.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// Also run each connector's live test (a token grant and a test event at its url, as
    /// `POST …/test` does) as the check `probe`. Needs an `admin` key.
    pub probe: Option<bool>,
}

/// One connector's review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorReview {
    pub name: String,
    /// No check failed (warnings allowed).
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// The governance review of the account's connectors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewOut {
    /// No check of any connector failed.
    pub ok: bool,
    pub connectors: Vec<ConnectorReview>,
}

/// The governance review: every connector's owner, scope, host, url, credential and signing
/// secret age, refresh-token idle time, grant and delivery failures and status, each check
/// `ok`, `warn` or `fail` with what to do. The default callback and notification endpoints are
/// not reviewed. `?probe=true` (admin) adds the connector test's live probe.
#[utoipa::path(get, path = "/api/review", tag = "connectors",
    params(ReviewQuery),
    responses((status = 200, body = ReviewOut), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "insufficient_scope: ?probe=true needs an admin key")))]
pub async fn get_review(
    State(state): State<AppState>,
    authed: Authed,
    query: Result<Query<ReviewQuery>, QueryRejection>,
) -> ApiResult<Json<ReviewOut>> {
    let Query(q) = query?;
    let probe = q.probe.unwrap_or(false);
    if probe {
        require_admin(&state, &authed).await?;
    }
    Ok(Json(review_account(&state, &authed, probe).await?))
}

/// The review of the account `authed` names (the console calls this too).
pub(crate) async fn review_account(
    state: &AppState,
    authed: &Authed,
    probe: bool,
) -> ApiResult<ReviewOut> {
    let records = state.store.list_connectors(&authed.0.id).await?;
    let mut connectors = Vec::with_capacity(records.len());
    // The default callback is not in the list; notification endpoints (`@…`) are not
    // connectors a person registered.
    for record in records.iter().filter(|r| !r.name.starts_with('@')) {
        let mut checks = review_connector(state, record).await?;
        if probe {
            checks.push(probe_check(state, record).await);
        }
        connectors.push(ConnectorReview {
            name: record.name.clone(),
            ok: review::passes(&checks),
            checks,
        });
    }
    Ok(ReviewOut {
        ok: connectors.iter().all(|c| c.ok),
        connectors,
    })
}

async fn review_connector(state: &AppState, record: &ConnectorRecord) -> ApiResult<Vec<Check>> {
    let token = state.store.get_token_state(&record.id).await?;
    let deliveries = state.store.delivery_track(&record.id).await?;
    let facts = Facts {
        connector: record,
        token: token.as_ref(),
        deliveries: &deliveries,
        now: state.clock.now_ms(),
    };
    Ok(review::review(&facts, &state.settings.governance))
}

/// `…/test` as one check: `ok` when every one of its checks passed, else `fail` with the first
/// that did not (the test is in the connector's history too).
async fn probe_check(state: &AppState, record: &ConnectorRecord) -> Check {
    let report = super::tokens::test::run_test(state, record).await;
    match report.checks.iter().find(|c| !c.ok) {
        None => {
            let endpoint = report
                .checks
                .iter()
                .find(|c| c.name == "endpoint")
                .map_or("", |c| c.detail.as_str());
            Check::new(
                "probe",
                Level::Ok,
                format!("the connector test passed: {endpoint}"),
                None,
            )
        }
        Some(failed) => Check::new(
            "probe",
            Level::Fail,
            format!("the connector test's {} check failed: {}", failed.name, failed.detail),
            Some(failed.fix.clone().unwrap_or_else(|| {
                format!(
                    "run the test for every check and its diagnosis: POST /api/callback/connectors/{}/test",
                    record.name
                )
            })),
        ),
    }
}

/// The request's key must be an admin key (a read key may review, not probe).
async fn require_admin(state: &AppState, authed: &Authed) -> ApiResult<()> {
    let keys = state.store.list_api_keys(&authed.0.id).await?;
    let scopes = keys
        .iter()
        .find(|k| k.id == authed.1)
        .map(|k| k.scopes)
        .ok_or_else(ApiError::unauthorized)?;
    if scopes.allow(Admin) {
        Ok(())
    } else {
        Err(insufficient_scope(Admin, scopes))
    }
}
