//! One connector: its settings (secrets masked), its token state (never a token), its history
//! as a timeline with each failure's diagnosis, and — for an admin session — the actions Test,
//! Revoke (after a confirmation), Re-authenticate, Replay failed and Rotate signing secret, each
//! through the API's own handler.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{page, status_badge, time_text, Nav};
use super::session::{Console, CsrfForm};
use crate::api::connectors::{get_connector, rotate_signing_secret, ConnectorOut};
use crate::api::deliveries::{replay_connector, ReplayIn};
use crate::api::tokens::test::test_connector;
use crate::api::tokens::{authorization_url, connector_history, revoke_connector, HistoryParams};
use crate::api::DiagnosisOut;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;

/// How many history entries a page shows.
const HISTORY_PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct ConnectorQuery {
    /// The history's `next_cursor`, for older entries.
    cursor: Option<String>,
    /// What the last action did (after its redirect).
    done: Option<String>,
}

/// A connector's page. Names are letters, digits, `_` and `-` (the API refuses others), so
/// they need no escaping in a path.
fn path_of(name: &str) -> String {
    format!("/console/connectors/{name}")
}

fn query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `GET /console/connectors/{name}`
pub async fn show(
    State(state): State<AppState>,
    session: Console,
    Path(name): Path<String>,
    Query(q): Query<ConnectorQuery>,
) -> Response {
    let c = match get_connector(
        State(state.clone()),
        session.authed(),
        ApiPath(name.clone()),
    )
    .await
    {
        Ok(Json(c)) => c,
        Err(e) => return api_error_page(&session, e),
    };
    let params = HistoryParams {
        limit: Some(HISTORY_PAGE),
        cursor: q.cursor.clone(),
    };
    let history = match connector_history(
        State(state.clone()),
        session.authed(),
        ApiPath(name.clone()),
        Ok(Query(params)),
    )
    .await
    {
        Ok(Json(h)) => h,
        Err(e) => return api_error_page(&session, e),
    };
    let here = path_of(&c.name);
    let body = html! {
        p { a href="/console/connectors" { "← Connectors" } }
        h1 { (c.name) " " (status_badge(&c.status)) }
        @if let Some(done) = &q.done {
            p .notice role="status" { (done) }
        }
        @if let Some(d) = &c.diagnosis {
            section .problem aria-labelledby="problem" {
                h2 #problem { "What is wrong" }
                (diagnosis(d))
            }
        }
        @if session.can_change() {
            section aria-labelledby="actions" {
                h2 #actions { "Actions" }
                div .actions {
                    (action(&session, &format!("{here}/test"), "Test", "Asks for a token and sends a test event to the url; shows each check."))
                    a .button href=(format!("{here}/revoke")) { "Revoke…" }
                    @if c.flow.as_deref() == Some("refresh_token") || c.status != "active" {
                        (action(&session, &format!("{here}/reauth"), "Re-authenticate", "Opens the provider's authorization page; you come back here."))
                    }
                    (action(&session, &format!("{here}/replay"), "Replay failed", "Sends every failed delivery of this connector again."))
                    (action(&session, &format!("{here}/signing-secret"), "Rotate signing secret", "A new whsec_ secret, shown once; the old one keeps signing for 24 hours."))
                }
            }
        }
        section aria-labelledby="settings" {
            h2 #settings { "Settings" }
            (settings(&c))
        }
        section aria-labelledby="token" {
            h2 #token { "Token state" }
            (token_state(&c))
        }
        section aria-labelledby="history" {
            h2 #history { "History" }
            @if history.entries.is_empty() {
                p .muted { "No call to the provider yet." }
            } @else {
                ol .timeline {
                    @for e in &history.entries {
                        li data-outcome=(e.outcome) {
                            (time_text(&e.at)) " · "
                            strong { (e.kind) }
                            @if let Some(g) = &e.grant_type { " (" (g) ")" }
                            " · " (e.outcome)
                            @if let Some(s) = e.http_status { " · HTTP " (s) }
                            " · " (e.duration_ms) " ms"
                            @if let Some(err) = &e.provider_error {
                                div { "Provider: " code { (err) }
                                    @if let Some(d) = &e.provider_error_description { " — " (d) } }
                            }
                            @if let Some(d) = &e.diagnosis { (diagnosis(d)) }
                        }
                    }
                }
                @if let Some(cursor) = &history.next_cursor {
                    p { a href=(format!("{here}?cursor={}", query_value(cursor))) { "Older entries →" } }
                }
            }
        }
    };
    page(&c.name, Some(&session), Nav::Connectors, body).into_response()
}

fn diagnosis(d: &DiagnosisOut) -> Markup {
    html! {
        div .diagnosis {
            div { span .code { (d.code) } ": " (d.cause) }
            div .fix { "Fix: " (d.fix) }
        }
    }
}

/// A one-button form that POSTs with the session's CSRF token.
fn action(session: &Console, to: &str, label: &str, what: &str) -> Markup {
    html! {
        form method="post" action=(to) .action {
            input type="hidden" name="csrf_token" value=(session.0.csrf_token);
            button type="submit" title=(what) { (label) }
        }
    }
}

fn settings(c: &ConnectorOut) -> Markup {
    html! {
        dl .settings {
            dt { "Preset" } dd { (c.preset) }
            dt { "URL" } dd { code { (c.url) } }
            dt { "Flow" } dd { (c.flow.as_deref().unwrap_or("—")) }
            dt { "Events" } dd { (c.events.join(", ")) }
            dt { "Origins" } dd { (c.origins.join(", ")) }
            dt { "Owner" } dd { (c.owner.as_deref().unwrap_or("—")) }
            dt { "Ordering" } dd { (json_of(&c.ordering)) }
            dt { "Retry" } dd { (json_of(&c.retry)) }
            dt { "Max per second" } dd { (c.max_per_second.map_or("no limit".to_owned(), |r| r.to_string())) }
            dt { "Max concurrency" } dd { (c.max_concurrency) }
            dt { "Signing secret" } dd { code { (c.signing_secret) } }
            dt { "Credentials version" } dd { (c.credentials_version) }
            dt { "Created" } dd { (time_text(&c.created_at)) }
            dt { "Updated" } dd { (time_text(&c.updated_at)) }
            dt { "Key (secrets masked)" } dd { pre { (serde_json::to_string_pretty(&c.key).unwrap_or_default()) } }
        }
    }
}

/// A setting as its JSON.
fn json_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn token_state(c: &ConnectorOut) -> Markup {
    let Some(t) = &c.token else {
        return html! { p .muted { "No token state." } };
    };
    let at = |v: &Option<String>| match v {
        Some(s) => time_text(s),
        None => html! { span .muted { "—" } },
    };
    html! {
        dl .settings {
            dt { "Access token held" } dd { (if t.has_access_token { "yes" } else { "no" }) }
            dt { "Valid until" } dd { (at(&t.expires_at)) }
            dt { "Refreshed ahead at" } dd { (at(&t.refresh_at)) }
            dt { "Last grant" } dd { (at(&t.last_grant_at)) }
            dt { "Last rotation of the refresh token" } dd {
                (if t.refresh_token_rotated { "rotated by the provider (the newest is held)" } else { "not rotated" })
            }
            dt { "Last error" } dd { (t.last_error.as_deref().unwrap_or("—")) }
            dt { "Backing off until" } dd { (at(&t.backoff_until)) }
            dt { "Consecutive failures" } dd { (t.consecutive_failures) }
            dt { "Org (instance_url)" } dd { (t.instance_url.as_deref().unwrap_or("—")) }
            dt { "Scope" } dd { (t.scope.as_deref().unwrap_or("—")) }
        }
    }
}

/// An API refusal (404, 409, 422 ...) as a page with its message and fix.
fn api_error_page(session: &Console, e: ApiError) -> Response {
    super::refusal_page(
        session,
        e,
        Nav::Connectors,
        ("/console/connectors", "Connectors"),
    )
}

/// Back to the connector's page with a notice.
fn back(name: &str, done: &str) -> Response {
    super::done_redirect(&path_of(name), done)
}

/// `POST …/test`: each check of the connector test, on a page of its own.
pub async fn test(
    State(state): State<AppState>,
    session: Console,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    let report = match test_connector(State(state), session.authed(), ApiPath(name.clone())).await {
        Ok(Json(r)) => r,
        Err(e) => return api_error_page(&session, e),
    };
    let body = html! {
        p { a href=(path_of(&name)) { "← " (name) } }
        h1 { "Test of " (name) ": " @if report.ok { span .badge.ok { "passed" } } @else { span .badge.bad { "failed" } } }
        ul .checks {
            @for c in &report.checks {
                li data-ok=(c.ok) {
                    strong { (if c.ok { "ok" } else { "FAIL" }) " " (c.name) } ": " (c.detail)
                    @if let Some(f) = &c.fix { div .fix { "Fix: " (f) } }
                    @if let Some(d) = &c.diagnosis { (diagnosis(d)) }
                }
            }
        }
    };
    page("Connector test", Some(&session), Nav::Connectors, body).into_response()
}

/// `GET …/revoke`: what revoking does, and the form that does it.
pub async fn confirm_revoke(session: Console, Path(name): Path<String>) -> Response {
    if !session.can_change() {
        return super::session::refused(&session, "This session's API key has the read scope only: it can look at everything and change nothing.");
    }
    let here = path_of(&name);
    let body = html! {
        p { a href=(here) { "← " (name) } }
        h1 { "Revoke " (name) "?" }
        p { "Every token held here is wiped at once and the connector becomes "
            strong { "revoked" } ": its deliveries are held until someone gives the key again or re-authenticates. "
            "Then the tokens are revoked at the provider, and the answer says whether it confirmed." }
        form method="post" action=(format!("{here}/revoke")) {
            input type="hidden" name="csrf_token" value=(session.0.csrf_token);
            button type="submit" .danger { "Revoke " (name) }
            " " a href=(here) { "Cancel" }
        }
    };
    page("Revoke", Some(&session), Nav::Connectors, body).into_response()
}

/// `POST …/revoke`
pub async fn revoke(
    State(state): State<AppState>,
    session: Console,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    match revoke_connector(State(state), session.authed(), ApiPath(name.clone())).await {
        Ok(Json(out)) => {
            let confirmed = if out.provider_confirmed {
                "provider confirmed"
            } else {
                "provider did NOT confirm"
            };
            back(&name, &format!("revoked ({confirmed}): {}", out.detail))
        }
        Err(e) => api_error_page(&session, e),
    }
}

/// `POST …/reauth`: to the provider's authorization page; its callback comes back here.
pub async fn reauth(
    State(state): State<AppState>,
    session: Console,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    match authorization_url(State(state), session.authed(), ApiPath(name)).await {
        Ok(Json(out)) => Redirect::to(&out.url).into_response(),
        Err(e) => api_error_page(&session, e),
    }
}

/// `POST …/replay`: every failed delivery of the connector, again.
pub async fn replay(
    State(state): State<AppState>,
    session: Console,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    let input = ReplayIn {
        since: "1970-01-01T00:00:00Z".to_owned(),
        until: None,
        status: Some("failed".to_owned()),
    };
    match replay_connector(
        State(state),
        session.authed(),
        ApiPath(name.clone()),
        ApiJson(input),
    )
    .await
    {
        Ok(Json(out)) => back(
            &name,
            &format!("{} failed deliveries queued again", out.replayed),
        ),
        Err(e) => api_error_page(&session, e),
    }
}

/// `POST …/signing-secret`: the new secret, shown this once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    session: Console,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    let c = match rotate_signing_secret(State(state), session.authed(), ApiPath(name.clone())).await
    {
        Ok(Json(c)) => c,
        Err(e) => return api_error_page(&session, e),
    };
    let body = html! {
        p { a href=(path_of(&name)) { "← " (name) } }
        h1 { "New signing secret for " (name) }
        p { "Give it to the listener now: it is shown only this once. The old secret keeps signing beside it for 24 hours." }
        p { label for="secret" { "Signing secret" } }
        input #secret type="text" readonly value=(c.signing_secret) size="60";
    };
    page("New signing secret", Some(&session), Nav::Connectors, body).into_response()
}
