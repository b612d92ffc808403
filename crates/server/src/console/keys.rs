//! The API keys page: the account's keys with their scopes and last use; an admin session can
//! make one (shown once) and revoke one, through the API's own handlers.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use hookwarden_core::Scope;
use maud::html;
use serde::Deserialize;

use super::layout::{page, time_text, Nav};
use super::session::{Console, CsrfForm};
use crate::api::keys::{create_key, list_keys, revoke_key, KeyIn};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Deserialize, Default)]
pub struct KeysQuery {
    done: Option<String>,
}

/// `GET /console/keys`
pub async fn list(
    State(state): State<AppState>,
    session: Console,
    Query(q): Query<KeysQuery>,
) -> Response {
    let keys = match list_keys(State(state), session.authed()).await {
        Ok(Json(list)) => list.keys,
        Err(e) => return refusal(&session, e),
    };
    let body = html! {
        h1 { "API keys" }
        @if let Some(done) = &q.done { p .notice role="status" { (done) } }
        table .responsive {
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Scopes" }
                th scope="col" { "Created" } th scope="col" { "Last used" }
                @if session.can_change() { th scope="col" { span .visually-hidden { "Actions" } } }
            } }
            tbody {
                @for k in &keys {
                    tr data-key=(k.id) {
                        td data-label="Name" { (k.name.as_deref().unwrap_or("—"))
                            @if k.current { " " span .badge.ok { "this session" } } }
                        td data-label="Id" { code { (k.id) } }
                        td data-label="Scopes" { (k.scopes.names().join(", ")) }
                        td data-label="Created" { (time_text(&k.created_at)) }
                        td data-label="Last used" {
                            @match &k.last_used_at { Some(at) => (time_text(at)), None => span .muted { "never" } }
                        }
                        @if session.can_change() {
                            td {
                                form method="post" action=(format!("/console/keys/{}/revoke", k.id)) {
                                    input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                                    button type="submit" .danger aria-label=(format!("Revoke key {}", k.id)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if session.can_change() {
            section aria-labelledby="new-key" {
                h2 #new-key { "Make a key" }
                form method="post" action="/console/keys" .stack {
                    input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                    fieldset {
                        legend { "Scopes" }
                        @for (scope, what) in [
                            (Scope::Ingest, "send events only (a producer)"),
                            (Scope::Read, "see everything, change nothing"),
                            (Scope::Admin, "everything"),
                        ] {
                            label {
                                input type="checkbox" name=(format!("scope_{}", scope.as_str()));
                                " " strong { (scope.as_str()) } " — " (what)
                            }
                        }
                    }
                    label for="key-name" { "Name (optional)" }
                    input #key-name type="text" name="name" maxlength="64";
                    button type="submit" { "Make the key" }
                }
            }
        }
    };
    page("API keys", Some(&session), Nav::Keys, body).into_response()
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    scope_ingest: Option<String>,
    #[serde(default)]
    scope_read: Option<String>,
    #[serde(default)]
    scope_admin: Option<String>,
    #[serde(default)]
    name: String,
}

/// `POST /console/keys`: the new key, shown this once.
pub async fn create(
    State(state): State<AppState>,
    session: Console,
    Form(form): Form<NewKeyForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    let scopes: Vec<String> = [
        (form.scope_ingest.is_some(), "ingest"),
        (form.scope_read.is_some(), "read"),
        (form.scope_admin.is_some(), "admin"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, s)| s.to_owned())
    .collect();
    let name = form.name.trim();
    let input = KeyIn {
        scopes: Some(scopes),
        name: (!name.is_empty()).then(|| name.to_owned()),
    };
    let made = match create_key(State(state), session.authed(), Some(ApiJson(input))).await {
        Ok((_, Json(made))) => made,
        Err(e) => return refusal(&session, e),
    };
    let body = html! {
        p { a href="/console/keys" { "← API keys" } }
        h1 { "New API key" }
        p { "Copy it now: it is shown only this once. Its id is " code { (made.id) }
            ", with the scopes " (made.scopes.names().join(", ")) "." }
        p { label for="new-key" { "API key" } }
        input #new-key type="text" readonly value=(made.api_key) size="60";
    };
    (
        StatusCode::CREATED,
        page("New API key", Some(&session), Nav::Keys, body),
    )
        .into_response()
}

/// `POST /console/keys/{id}/revoke`
pub async fn revoke(
    State(state): State<AppState>,
    session: Console,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    match revoke_key(State(state), session.authed(), ApiPath(id.clone())).await {
        Ok(_) => super::done_redirect("/console/keys", &format!("key {id} revoked")),
        Err(e) => refusal(&session, e),
    }
}

/// The API's refusal (400 a bad scope or name, 409 the last admin key, 409 a cap) as a page.
fn refusal(session: &Console, e: ApiError) -> Response {
    super::refusal_page(session, e, Nav::Keys, ("/console/keys", "API keys"))
}
