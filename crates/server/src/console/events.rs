//! "Send a test event": an event for the account (name, package id, origin) posted through
//! `POST /api/events`'s own handler, then where it went: each delivery it made, with its
//! connector and status, or that nothing took it. Sending is an admin's action, as every change
//! in the console is; a read session's page says so and has no form.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use hookwarden_core::event::ONESPAN_EVENTS;
use hookwarden_store::{ConnectorRecord, DEFAULT_CALLBACK_NAME};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::deliveries::{connector_link, delivery_url};
use super::layout::{delivery_badge, encode, page, status_badge, Nav};
use super::problem;
use super::session::Console;
use crate::api::deliveries::get_delivery;
use crate::api::events::post_event;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;

/// The most deliveries of one event the result lists (one per connector that took it).
const MAX_SHOWN: usize = 200;

/// The form's fields; after a send, the page's query too (with `sent`, the event's id, and
/// `deliveries`, the ids it made, comma-separated), so a reload shows the result again and
/// sends nothing.
#[derive(Debug, Default, Deserialize)]
pub struct EventForm {
    #[serde(default)]
    csrf_token: String,
    name: Option<String>,
    package_id: Option<String>,
    origin: Option<String>,
    sent: Option<String>,
    deliveries: Option<String>,
}

impl EventForm {
    fn value<'a>(field: &'a Option<String>, default: &'a str) -> &'a str {
        field.as_deref().map(str::trim).unwrap_or(default)
    }
    fn name(&self) -> &str {
        Self::value(&self.name, "PACKAGE_COMPLETE")
    }
    fn package_id(&self) -> &str {
        Self::value(&self.package_id, "")
    }
    fn origin(&self) -> &str {
        Self::value(&self.origin, "OSS")
    }
}

/// `GET /console/events/new`: the form, and after a send what became of the event.
pub async fn new(
    State(state): State<AppState>,
    session: Console,
    query: Result<Query<EventForm>, QueryRejection>,
) -> Response {
    let form = query.map(|Query(q)| q).unwrap_or_default();
    let result = match &form.sent {
        Some(event_id) => Some(sent_view(&state, &session, event_id, &form).await),
        None => None,
    };
    render(&state, &session, &form, result, None, StatusCode::OK).await
}

/// `POST /console/events`: the event through the API's ingest, then (303) the page with where
/// it went; the API's refusal (a name that is not an event name, a missing package id) is shown
/// on the form, with what was typed.
pub async fn send(
    State(state): State<AppState>,
    session: Console,
    form: Result<Form<EventForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(refusal) = session.refuse_change(&form.csrf_token) {
        return refusal;
    }
    let body = json!({
        "name": form.name(),
        "packageId": form.package_id(),
        "origin": form.origin(),
    });
    match post_event(
        State(state.clone()),
        session.authed(),
        HeaderMap::new(),
        ApiJson(body),
    )
    .await
    {
        Ok((_, Json(answer))) => {
            let id = answer["id"].as_str().unwrap_or_default();
            let deliveries: Vec<&str> = answer["deliveries"]
                .as_array()
                .map(|list| list.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let to = format!(
                "/console/events/new?sent={}&deliveries={}&name={}&package_id={}&origin={}",
                encode(id),
                encode(&deliveries.join(",")),
                encode(form.name()),
                encode(form.package_id()),
                encode(form.origin()),
            );
            Redirect::to(&to).into_response()
        }
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            render(&state, &session, &form, None, Some(&e), status).await
        }
        Err(e) => super::error_page(&e.message),
    }
}

async fn render(
    state: &AppState,
    session: &Console,
    form: &EventForm,
    result: Option<Markup>,
    refused: Option<&ApiError>,
    status: StatusCode,
) -> Response {
    let account = &session.0.account.id;
    let mut destinations = match state.store.list_connectors(account).await {
        Ok(list) => list,
        Err(e) => return super::error_page(&e.to_string()),
    };
    match state
        .store
        .get_connector(account, DEFAULT_CALLBACK_NAME)
        .await
    {
        Ok(Some(default)) => destinations.push(default),
        Ok(None) => {}
        Err(e) => return super::error_page(&e.to_string()),
    }
    let body = html! {
        h1 { "Send a test event" }
        @if let Some(result) = result { (result) }
        @if session.can_change() {
            p .hint {
                "An event as a producer would post it to " code { "POST /api/events" }
                ": it goes to every connector that takes its name from its origin, or to the "
                "default callback when no connector does, and is delivered like any other."
            }
            @if let Some(e) = refused { (problem(e)) }
            (event_form(session, form))
        } @else {
            p role="note" {
                "Sending an event takes a session with an admin key; this one has the read "
                "scope and only looks. Producers send events with an "
                code { "ingest" } " key to " code { "POST /api/events" } "."
            }
        }
        (who_takes_what(&destinations))
    };
    (
        status,
        page("Send a test event", Some(session), Nav::SendEvent, body),
    )
        .into_response()
}

fn event_form(session: &Console, form: &EventForm) -> Markup {
    html! {
        form .stacked method="post" action="/console/events" {
            input type="hidden" name="csrf_token" value=(session.0.csrf_token);
            div .field {
                label for="e-name" { "Event name" }
                input type="text" id="e-name" name="name" list="onespan-events" required
                    maxlength="64" pattern="[A-Z][A-Z0-9_]*" aria-describedby="e-name-hint"
                    value=(form.name());
                datalist id="onespan-events" {
                    @for name in ONESPAN_EVENTS { option value=(name) {} }
                }
                span .hint id="e-name-hint" {
                    "One of OneSpan Sign's events, or your own UPPER_SNAKE_CASE name."
                }
            }
            div .field {
                label for="e-package" { "Package id" }
                input type="text" id="e-package" name="package_id" required maxlength="256"
                    placeholder="e.g. test-package-1" value=(form.package_id());
            }
            div .field {
                label for="e-origin" { "Origin" }
                input type="text" id="e-origin" name="origin" required maxlength="64"
                    aria-describedby="e-origin-hint" value=(form.origin());
                span .hint id="e-origin-hint" {
                    "Matched against each connector's origins (OneSpan Sign's is OSS)."
                }
            }
            div .actions { button type="submit" { "Send" } }
        }
    }
}

/// Where the event went: each of its deliveries with its connector and status.
async fn sent_view(
    state: &AppState,
    session: &Console,
    event_id: &str,
    form: &EventForm,
) -> Markup {
    let ids: Vec<&str> = form
        .deliveries
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .take(MAX_SHOWN)
        .collect();
    let mut rows = Vec::with_capacity(ids.len());
    for id in &ids {
        let found = get_delivery(
            State(state.clone()),
            session.authed(),
            ApiPath((*id).to_owned()),
        )
        .await
        .ok()
        .map(|Json(d)| d);
        rows.push((*id, found));
    }
    html! {
        section .result aria-labelledby="sent-title" role="status" {
            h2 #sent-title { "Sent " (form.name()) " for package " (form.package_id())
                " from " (form.origin()) }
            p .muted { "Event " code { (event_id) } }
            @if rows.is_empty() {
                p .error {
                    "No connector takes " (form.name()) " from origin " (form.origin())
                    ", and the default callback did not take it either (there is none, or it does not list this event): "
                    "the event was stored and nothing was sent."
                }
            } @else {
                p { "It made " (rows.len()) @if rows.len() == 1 { " delivery:" } @else { " deliveries:" } }
                table .responsive {
                    thead { tr {
                        th scope="col" { "Connector" } th scope="col" { "Delivery" } th scope="col" { "Status" }
                    } }
                    tbody {
                        @for (id, found) in &rows {
                            @match found {
                                Some(d) => {
                                    tr data-delivery=(d.id) {
                                        td data-label="Connector" { (connector_link(&d.connector)) }
                                        td data-label="Delivery" { a href=(delivery_url(&d.id)) { code { (d.id) } } }
                                        td data-label="Status" { (delivery_badge(&d.status)) }
                                    }
                                },
                                None => {
                                    tr data-delivery=(id) {
                                        td data-label="Connector" { span .muted { "—" } }
                                        td data-label="Delivery" { code { (id) } }
                                        td data-label="Status" { span .muted { "no longer kept" } }
                                    }
                                },
                            }
                        }
                    }
                }
                p .hint { "A delivery's page shows each attempt as it happens; reload it to follow." }
            }
        }
    }
}

/// The account's destinations and what each takes, to tell why an event went where it did.
fn who_takes_what(destinations: &[ConnectorRecord]) -> Markup {
    html! {
        h2 { "Who takes what" }
        @if destinations.is_empty() {
            p .muted { "No connector and no default callback yet: an event goes nowhere." }
        } @else {
            table .responsive {
                thead { tr {
                    th scope="col" { "Destination" } th scope="col" { "Events" }
                    th scope="col" { "Origins" } th scope="col" { "Status" }
                } }
                tbody {
                    @for c in destinations.iter().take(super::connectors::PAGE_SIZE) {
                        tr {
                            td data-label="Destination" { (connector_link(&c.name)) }
                            td data-label="Events" { (c.events.join(", ")) }
                            td data-label="Origins" {
                                @if c.name == DEFAULT_CALLBACK_NAME {
                                    span .muted { "any, when no connector took the event" }
                                } @else {
                                    (c.origins.join(", "))
                                }
                            }
                            td data-label="Status" { (status_badge(c.status.as_str())) }
                        }
                    }
                }
            }
            @if destinations.len() > super::connectors::PAGE_SIZE {
                p .muted { "The first " (super::connectors::PAGE_SIZE) " of " (destinations.len())
                    "; every one is on " a href="/console/connectors" { "the connectors page" } "." }
            }
        }
    }
}
