//! The notifications page: the account's notification endpoints, what was last sent to each
//! and how it was answered; an admin session adds one (its signing secret shown once), sends a
//! test and removes one, through the API's own handlers.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use hookwarden_core::NotificationType;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{page, time_text, Nav};
use super::session::{Console, CsrfForm};
use crate::api::deliveries::DeliveryOut;
use crate::api::notifications::{
    add_notification, delete_notification, list_notifications, notification_deliveries,
    test_notification, NotificationDeliveriesQuery, NotificationIn,
};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;

/// Notifications shown per endpoint.
const RECENT: i64 = 5;

#[derive(Deserialize, Default)]
pub struct NotificationsQuery {
    done: Option<String>,
}

/// `GET /console/notifications`
pub async fn list(
    State(state): State<AppState>,
    session: Console,
    Query(q): Query<NotificationsQuery>,
) -> Response {
    let endpoints = match list_notifications(State(state.clone()), session.authed()).await {
        Ok(Json(list)) => list.notifications,
        Err(e) => return refusal(&session, e),
    };
    let mut recent: Vec<Vec<DeliveryOut>> = Vec::with_capacity(endpoints.len());
    for e in &endpoints {
        let query = NotificationDeliveriesQuery {
            status: None,
            limit: Some(RECENT),
            cursor: None,
        };
        match notification_deliveries(
            State(state.clone()),
            session.authed(),
            ApiPath(e.id.clone()),
            Ok(Query(query)),
        )
        .await
        {
            Ok(Json(page)) => recent.push(page.deliveries),
            Err(e) => return refusal(&session, e),
        }
    }
    let body = html! {
        h1 { "Notifications" }
        p .muted { "Endpoints told when a connector needs re-authentication, is revoked, disabled or keeps failing, when it recovers, and when a delivery fails: once per change, signed like callbacks (Standard Webhooks), or one line for Slack." }
        @if let Some(done) = &q.done { p .notice role="status" { (done) } }
        @if endpoints.is_empty() {
            p { "No notification endpoints yet: nobody is told when a connector breaks." }
        }
        @for (e, sent) in endpoints.iter().zip(&recent) {
            section .card data-endpoint=(e.id) aria-labelledby=(format!("h-{}", e.id)) {
                h2 #(format!("h-{}", e.id)) { code { (e.id) } " " span .badge { (e.format) } }
                p { "To " code { (e.url) } ", since " (time_text(&e.created_at)) "." }
                p { "Told of: "
                    @if e.types.len() == NotificationType::SUBSCRIBABLE.len() { "every type" }
                    @else { (e.types.join(", ")) } }
                (sent_table(sent))
                @if session.can_change() {
                    div .actions {
                        form method="post" action=(format!("/console/notifications/{}/test", e.id)) {
                            input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                            button type="submit" { "Send a test" }
                        }
                        form method="post" action=(format!("/console/notifications/{}/delete", e.id)) {
                            input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                            button type="submit" .danger aria-label=(format!("Remove endpoint {}", e.id)) { "Remove" }
                        }
                    }
                }
            }
        }
        @if session.can_change() {
            section aria-labelledby="new-endpoint" {
                h2 #new-endpoint { "Add an endpoint" }
                form method="post" action="/console/notifications" .stack {
                    input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                    label for="endpoint-url" { "URL (https)" }
                    input #endpoint-url type="url" name="url" required size="60";
                    label for="endpoint-format" { "Format" }
                    select #endpoint-format name="format" {
                        option value="standard" selected { "standard: Standard Webhooks, signed" }
                        option value="slack" { "slack: a Slack incoming webhook, unsigned" }
                    }
                    fieldset {
                        legend { "Told of (none ticked: every type)" }
                        @for t in NotificationType::SUBSCRIBABLE {
                            label {
                                input type="checkbox" name=(format!("type_{}", t.as_str()));
                                " " code { (t.as_str()) }
                            }
                        }
                    }
                    button type="submit" { "Add the endpoint" }
                }
            }
        }
    };
    page("Notifications", Some(&session), Nav::Notifications, body).into_response()
}

/// The last notifications sent to one endpoint.
fn sent_table(sent: &[DeliveryOut]) -> Markup {
    html! {
        @if sent.is_empty() {
            p .muted { "Nothing sent yet." }
        } @else {
            table .responsive {
                caption { "Last sent" }
                thead { tr {
                    th scope="col" { "Type" } th scope="col" { "Status" }
                    th scope="col" { "Attempts" } th scope="col" { "Last answer" } th scope="col" { "Created" }
                } }
                tbody {
                    @for d in sent {
                        tr {
                            td data-label="Type" { a href=(format!("/console/deliveries/{}", d.id)) { (d.event) } }
                            td data-label="Status" { span .badge.(d.status) { (d.status) } }
                            td data-label="Attempts" { (d.attempts.len()) }
                            td data-label="Last answer" {
                                @match d.attempts.last() {
                                    Some(a) => @match a.status_code {
                                        Some(code) => (code),
                                        None => (a.error.as_deref().unwrap_or("no answer")),
                                    },
                                    None => span .muted { "—" },
                                }
                            }
                            td data-label="Created" { (time_text(&d.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct NewEndpointForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(flatten)]
    ticked: std::collections::BTreeMap<String, String>,
}

/// `POST /console/notifications`: the new endpoint and its signing secret, shown this once.
pub async fn create(
    State(state): State<AppState>,
    session: Console,
    Form(form): Form<NewEndpointForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    let types: Vec<String> = form
        .ticked
        .keys()
        .filter_map(|k| k.strip_prefix("type_"))
        .map(str::to_owned)
        .collect();
    let input = NotificationIn {
        url: form.url.trim().to_owned(),
        types: (!types.is_empty()).then_some(types),
        format: form.format.filter(|f| !f.is_empty()),
        extra: Default::default(),
    };
    let made = match add_notification(State(state), session.authed(), ApiJson(input)).await {
        Ok((_, Json(made))) => made,
        Err(e) => return refusal(&session, e),
    };
    let body = html! {
        p { a href="/console/notifications" { "← Notifications" } }
        h1 { "New notification endpoint" }
        p { "Endpoint " code { (made.id) } " posts to " code { (made.url) } "." }
        @match &made.signing_secret {
            Some(secret) => {
                p { "Its signing secret verifies the " code { "webhook-signature" }
                    " header (any Standard Webhooks library). Copy it now: it is shown only this once." }
                p { label for="new-secret" { "Signing secret" } }
                input #new-secret type="text" readonly value=(secret) size="60";
            },
            None => p { "A Slack endpoint is sent one unsigned line; it has no signing secret." },
        }
    };
    (
        StatusCode::CREATED,
        page(
            "New notification endpoint",
            Some(&session),
            Nav::Notifications,
            body,
        ),
    )
        .into_response()
}

/// `POST /console/notifications/{id}/test`
pub async fn test(
    State(state): State<AppState>,
    session: Console,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    match test_notification(State(state), session.authed(), ApiPath(id.clone())).await {
        Ok((_, Json(out))) => done(&format!(
            "test notification {} sent to {id}; its answer shows below",
            out.delivery_id
        )),
        Err(e) => refusal(&session, e),
    }
}

/// `POST /console/notifications/{id}/delete`
pub async fn delete(
    State(state): State<AppState>,
    session: Console,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = session.refuse_change(&form.csrf_token) {
        return refused;
    }
    match delete_notification(State(state), session.authed(), ApiPath(id.clone())).await {
        Ok(_) => done(&format!("endpoint {id} removed")),
        Err(e) => refusal(&session, e),
    }
}

fn done(what: &str) -> Response {
    super::done_redirect("/console/notifications", what)
}

/// The API's refusal (400 a bad url or type, 404, 409 the cap) as a page.
fn refusal(session: &Console, e: ApiError) -> Response {
    super::refusal_page(
        session,
        e,
        Nav::Notifications,
        ("/console/notifications", "Notifications"),
    )
}
