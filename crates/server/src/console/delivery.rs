//! One delivery: every attempt (when, the HTTP status, how long, whether a token was granted
//! for it, the error, the diagnosis and the start of the answer), and for an admin session
//! Retry (or Send again for a delivered one), through the API's own handlers.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{html, Markup};
use serde::Deserialize;

use super::deliveries::{connector_link, delivery_url, short_id};
use super::layout::{delivery_badge, encode, page, time_text, Nav};
use super::problem;
use super::session::Console;
use crate::api::deliveries::{get_delivery, retry_delivery, AttemptOut, DeliveryOut, RetryIn};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// What the delivery page says above the delivery.
enum Notice<'a> {
    Done(&'static str),
    Refused(&'a ApiError),
}

/// `GET /console/deliveries/{id}`: the delivery and every attempt.
pub async fn show(
    State(state): State<AppState>,
    session: Console,
    Path(id): Path<String>,
    done: Result<Query<Done>, QueryRejection>,
) -> Response {
    let notice = match done.ok().and_then(|Query(d)| d.done).as_deref() {
        Some("retried") => Some(Notice::Done(
            "Queued for one more attempt now: reload the page in a moment to see it.",
        )),
        Some("sent_again") => Some(Notice::Done(
            "Queued to be sent once more: reload the page in a moment to see the attempt.",
        )),
        _ => None,
    };
    delivery_page(&state, &session, id, notice, StatusCode::OK).await
}

async fn delivery_page(
    state: &AppState,
    session: &Console,
    id: String,
    notice: Option<Notice<'_>>,
    status: StatusCode,
) -> Response {
    match get_delivery(State(state.clone()), session.authed(), ApiPath(id)).await {
        Ok(Json(d)) => {
            let body = delivery_view(session, &d, notice);
            let title = format!("Delivery {}", short_id(&d.id));
            (status, page(&title, Some(session), Nav::Deliveries, body)).into_response()
        }
        Err(e) if e.status.is_client_error() => {
            let body = html! {
                p { a href="/console/deliveries" { "← Deliveries" } }
                h1 { "No such delivery" }
                (problem(&e))
            };
            (
                e.status,
                page("No such delivery", Some(session), Nav::Deliveries, body),
            )
                .into_response()
        }
        Err(e) => super::error_page(&e.message),
    }
}

fn delivery_view(session: &Console, d: &DeliveryOut, notice: Option<Notice<'_>>) -> Markup {
    html! {
        p { a href="/console/deliveries" { "← Deliveries" } }
        h1 { "Delivery " code { (d.id) } }
        @match notice {
            Some(Notice::Done(text)) => p .notice role="status" { (text) },
            Some(Notice::Refused(e)) => (problem(e)),
            None => {},
        }
        dl .facts {
            dt { "Status" }
            dd {
                (delivery_badge(&d.status))
                @if d.in_flight { " " span .muted { "an attempt is under way" } }
            }
            dt { "Event" }
            dd { (d.event) " " span .muted { (d.event_id) } }
            dt { "Connector" }
            dd {
                (connector_link(&d.connector)) " · "
                a href=(format!("/console/deliveries?connector={}", encode(&d.connector))) {
                    "its deliveries"
                }
            }
            dt { "Package" }
            dd {
                a href=(format!("/console/deliveries?package={}", encode(&d.package_id)))
                    title="every delivery about this package" { (d.package_id) }
            }
            dt { "Created" }
            dd { (time_text(&d.created_at)) }
            dt { "Updated" }
            dd { (time_text(&d.updated_at)) }
            @if let Some(at) = &d.next_attempt_at {
                dt { "Next attempt" }
                dd { (time_text(at)) }
            }
            @if let Some(e) = &d.last_error {
                dt { "Last error" }
                dd .error { (e) }
            }
        }
        (actions(session, d))
        h2 { "Attempts (" (d.attempts.len()) ")" }
        @if d.attempts.is_empty() {
            p .muted {
                @match d.status.as_str() {
                    "held" => "None yet: it waits until its connector is active again.",
                    _ => "None yet.",
                }
            }
        } @else {
            ol .attempts {
                @for (i, a) in d.attempts.iter().enumerate() {
                    li data-attempt=(i + 1) { (attempt_view(i + 1, a)) }
                }
            }
        }
    }
}

fn attempt_view(n: usize, a: &AttemptOut) -> Markup {
    html! {
        h3 { "Attempt " (n) " · " (time_text(&a.at)) }
        dl .facts {
            dt { "HTTP status" }
            dd {
                @match a.status_code {
                    Some(code) => (code),
                    None => span .muted { "no answer" },
                }
            }
            dt { "Duration" }
            dd { (a.duration_ms) " ms" }
            dt { "Token refreshed" }
            dd { @if a.refreshed { "yes" } @else { "no" } }
            @if let Some(e) = &a.error {
                dt { "Error" }
                dd .error { (e) }
            }
        }
        @if let Some(d) = &a.diagnosis {
            div .diagnosis {
                div { span .code { (d.code) } ": " (d.cause) }
                div .fix { "Fix: " (d.fix) }
            }
        }
        @if let Some(x) = &a.response_excerpt {
            div .excerpt {
                div .muted { "Response excerpt" }
                pre { (x) }
            }
        }
    }
}

/// What this session may do with the delivery: Retry (a failed or pending one), Send again (a
/// delivered one, which the API allows only when forced), or why nothing can be done now.
fn actions(session: &Console, d: &DeliveryOut) -> Markup {
    let form = |force: bool, label: &str, hint: &str| {
        html! {
            form .action method="post" action=(format!("{}/retry", delivery_url(&d.id))) {
                input type="hidden" name="csrf_token" value=(session.0.csrf_token);
                @if force { input type="hidden" name="force" value="true"; }
                button type="submit" { (label) }
                span .hint { (hint) }
            }
        }
    };
    html! {
        @if !session.can_change() {
            p .hint { "Retrying takes a session with an admin key; this one only looks." }
        } @else if d.in_flight {
            p .hint { "An attempt is under way; it can be retried once it has finished." }
        } @else {
            @match d.status.as_str() {
                "failed" => (form(false, "Retry", "One more attempt now. To retry a connector's failed deliveries with a fresh schedule, replay the connector.")),
                "pending" => (form(false, "Retry", "Attempt it now instead of at its next planned time.")),
                "delivered" => (form(true, "Send again", "The receiver gets it once more, with the same webhook-id, so it can tell it is a repeat.")),
                "held" => {
                    p .hint {
                        "Held while its connector is not active; it goes out by itself once the connector works again. "
                        @if !d.connector.starts_with('@') {
                            a href=(format!("/console/connectors/{}", d.connector)) { "See the connector." }
                        }
                    }
                },
                _ => {},
            }
        }
    }
}

/// The Retry form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    force: Option<String>,
}

/// `POST /console/deliveries/{id}/retry`: through the API's retry, then back to the delivery
/// (303); the API's refusal (a delivery in flight, held, already delivered) is shown on it.
pub async fn retry(
    State(state): State<AppState>,
    session: Console,
    Path(id): Path<String>,
    form: Result<Form<RetryForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(refusal) = session.refuse_change(&form.csrf_token) {
        return refusal;
    }
    let force = form.force.as_deref() == Some("true");
    match retry_delivery(
        State(state.clone()),
        session.authed(),
        ApiPath(id.clone()),
        Some(ApiJson(RetryIn { force })),
    )
    .await
    {
        Ok(_) => {
            let done = if force { "sent_again" } else { "retried" };
            Redirect::to(&format!("{}?done={done}", delivery_url(&id))).into_response()
        }
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            delivery_page(&state, &session, id, Some(Notice::Refused(&e)), status).await
        }
        Err(e) => super::error_page(&e.message),
    }
}
