//! A Salesforce token goes only to the org that issued it: each grant's `instance_url` is
//! compared with the connector's url (`core::destination`). On a mismatch the access token is
//! not used (nor cached, nor saved), the grant's history line says why, and the connector is
//! `disabled` with its deliveries held until its url (or its credentials) change.

use hookwarden_core::destination::check_token_destination;
use hookwarden_core::diagnosis::{Code, Diagnosis};
use hookwarden_core::{ConnectorStatus, DiagnosisView};
use hookwarden_store::{ConnectorRecord, GrantedTokens, TokenState};

use super::call::{Answer, Attempt, Call};
use super::{AccessToken, Ctx, Inner};
use crate::error::TokenError;
use crate::grant::Tokens;

impl Inner {
    /// The history line of a grant whose token is not used: the provider's answer, with the
    /// diagnosis that says why.
    pub(super) async fn record_outside_org(
        &self,
        ctx: &Ctx,
        attempt: Attempt<'_>,
        answer: &Answer,
        diagnosis: &Diagnosis,
    ) {
        let call = Call {
            error: Some(diagnosis.code.to_owned()),
            ..Call::answered(ctx, answer)
        };
        self.record_attempt(ctx, attempt, "failed", &call, Some(diagnosis))
            .await;
    }

    /// The connector `record` (as the grant saw it) moves to `disabled` with the diagnosis, its
    /// waiting deliveries held; its cached token, if any, goes.
    pub(super) async fn disable_outside_org(
        &self,
        record: &ConnectorRecord,
        diagnosis: &Diagnosis,
    ) {
        let view = DiagnosisView::from(diagnosis);
        match self
            .store
            .mark_url_not_in_org(
                &record.id,
                record.credentials_version,
                &record.url,
                &view,
                self.now_ms(),
            )
            .await
        {
            Ok(_) => {
                tracing::warn!(connector = %record.id, "the grant's org is not the url's; no token is sent there, the connector is disabled")
            }
            Err(e) => {
                tracing::error!(connector = %record.id, error = %e, "could not disable a connector whose url is not in its org")
            }
        }
        self.cache.remove(&record.id);
    }

    /// A grant (under the lease, on stored state `state`) whose org is not the url's: what must
    /// not be lost is saved (a rotated refresh token, the org's `instance_url`, which a move of
    /// the url to the org's host needs), never the access token; the history says why, and the
    /// connector is disabled.
    pub(super) async fn refuse_outside_org(
        &self,
        ctx: &Ctx,
        state: &TokenState,
        attempt: Attempt<'_>,
        answer: &Answer,
        tokens: Tokens,
        diagnosis: Diagnosis,
    ) -> TokenError {
        self.record_outside_org(ctx, attempt, answer, &diagnosis)
            .await;
        let kept = GrantedTokens {
            credentials_version: ctx.record.credentials_version,
            access_token: None,
            access_expires_at: None,
            refresh_at: None,
            refresh_token: tokens.refresh_token,
            instance_url: tokens.instance_url,
            scope: tokens.scope,
            issued_at: tokens.issued_at_ms,
            granted_at: self.now_ms(),
        };
        let id = &ctx.record.id;
        if let Err(e) = self.save(id, state.version, &kept).await {
            tracing::warn!(connector = %id, error = %e, "could not save the refused grant's refresh token");
        }
        let error = TokenError::outside_org("the grant's token was not used", diagnosis.clone());
        let summary = error.to_string();
        if let Err(e) = self
            .store
            .record_grant_failure(id, &self.options.node_id, None, &summary)
            .await
        {
            tracing::warn!(connector = %id, error = %e, "could not record the grant failure");
        }
        self.disable_outside_org(&ctx.record, &diagnosis).await;
        error
    }
}

/// Whether the access token `t` may be sent to the connector as `c` has it (its url may be
/// older or newer than the one the grant was checked for).
pub(super) fn stays_in_org(c: &ConnectorRecord, t: &AccessToken) -> bool {
    c.credentials
        .kind()
        .is_none_or(|kind| check_token_destination(kind, &c.url, t.instance_url.as_deref()).is_ok())
}

/// A connector disabled because its url is not in its org makes no grant until its url
/// changes (which makes it `active`): the same answer would come back.
pub(super) fn outside_org_waiting(c: &ConnectorRecord) -> Option<TokenError> {
    let d = c.status_diagnosis.as_ref()?;
    if c.status != ConnectorStatus::Disabled || d.code != Code::UrlNotInOrg.as_str() {
        return None;
    }
    let diagnosis = Code::UrlNotInOrg
        .diagnosis()
        .with_cause(d.cause.clone())
        .with_fix(d.fix.clone());
    Some(
        TokenError::outside_org("the connector is disabled, so no grant was made", diagnosis)
            .in_conflict(),
    )
}

/// A token granted for the connector as another caller read it, whose url has changed since:
/// the caller reads the connector again.
pub(super) fn moved_meanwhile() -> TokenError {
    TokenError::new(
        "connector_changed",
        hookwarden_core::diagnosis::FailureClass::Transient,
        "the connector's url changed while its token was being granted",
        "nothing to do: the next try reads the connector again",
    )
    .with_retry_after(std::time::Duration::from_millis(200))
}

/// The tokens' `instance_url` for the connector's url: `Err` with the diagnosis when the org
/// is not the url's.
pub(super) fn check_grant(ctx: &Ctx, tokens: &Tokens) -> Result<(), Diagnosis> {
    check_token_destination(ctx.kind, &ctx.record.url, tokens.instance_url.as_deref())
}
