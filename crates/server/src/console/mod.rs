//! The console at `/console`: server-rendered pages (maud, checked at compile time) for the
//! integration admin and the on-call engineer, over the same handlers as the API. Plain forms
//! that POST and redirect; our own small stylesheet and script, compiled into the binary.

mod connector;
mod connectors;
mod deliveries;
mod delivery;
mod events;
mod keys;
mod layout;
mod notifications;
mod review;
mod session;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use crate::auth::Authed;
use crate::error::ApiError;
use crate::state::AppState;
use layout::{page, Nav};

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/connectors") }),
        )
        .route(
            "/console/login",
            get(session::login_page).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/connectors", get(connectors::list))
        .route("/console/connectors/{name}", get(connector::show))
        .route("/console/connectors/{name}/test", post(connector::test))
        .route(
            "/console/connectors/{name}/revoke",
            get(connector::confirm_revoke).post(connector::revoke),
        )
        .route("/console/connectors/{name}/reauth", post(connector::reauth))
        .route("/console/connectors/{name}/replay", post(connector::replay))
        .route(
            "/console/connectors/{name}/signing-secret",
            post(connector::rotate_secret),
        )
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/{id}/revoke", post(keys::revoke))
        .route(
            "/console/notifications",
            get(notifications::list).post(notifications::create),
        )
        .route(
            "/console/notifications/{id}/test",
            post(notifications::test),
        )
        .route(
            "/console/notifications/{id}/delete",
            post(notifications::delete),
        )
        .route("/console/deliveries", get(deliveries::list))
        .route("/console/deliveries/{id}", get(delivery::show))
        .route("/console/deliveries/{id}/retry", post(delivery::retry))
        .route("/console/events/new", get(events::new))
        .route("/console/events", post(events::send))
        .route("/console/review", get(review::show).post(review::probe))
        .route(
            "/console/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/console/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

impl session::Console {
    /// The API's view of this session: its handlers take the same `Authed` an API key gives.
    pub fn authed(&self) -> Authed {
        Authed(self.0.account.clone(), self.0.key_id.clone())
    }
}

/// The API's refusal of what a page asked (a bad filter, a retry it does not allow): its
/// message and its fix, as the API would answer them.
pub(crate) fn problem(e: &ApiError) -> Markup {
    html! {
        div .problem role="alert" {
            p .error { (e.message) }
            p .fix { "Fix: " (e.fix) }
        }
    }
}

/// After an action: back to `path` (a console page) with `done` as the notice it shows.
pub(crate) fn done_redirect(path: &str, done: &str) -> Response {
    let done: String = url::form_urlencoded::byte_serialize(done.as_bytes()).collect();
    (
        axum::http::StatusCode::SEE_OTHER,
        [(axum::http::header::LOCATION, format!("{path}?done={done}"))],
    )
        .into_response()
}

/// A page for the API's refusal of an action (404, 409, 422 ...): its status, its message and
/// fix, and the way back (`back`: href and text). A failure on our side stays a 500.
pub(crate) fn refusal_page(
    session: &session::Console,
    e: ApiError,
    nav: Nav,
    back: (&str, &str),
) -> Response {
    let status = if e.status.is_server_error() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        e.status
    };
    let body = html! {
        p { a href=(back.0) { "← " (back.1) } }
        h1 { "Not done" }
        (problem(&e))
    };
    (status, page("Not done", Some(session), nav, body)).into_response()
}

/// The console asked of a `worker` node: `503` with the API's `wrong_role` message and fix,
/// as a page (the node serves no stylesheet, so it is plain).
pub fn wrong_role_page(role: crate::Role) -> Response {
    let e = crate::api::wrong_role(role);
    let body = html! {
        h1 { "The console is not on this node" }
        (problem(&e))
        p .code { "wrong_role" }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page("Not on this node", None, Nav::None, body),
    )
        .into_response()
}

/// Something went wrong on our side: a page that says so (and the log has the rest).
pub(crate) fn error_page(message: &str) -> Response {
    tracing::warn!(error = message, "console page failed");
    let body = html! {
        h1 { "Something went wrong" }
        p role="alert" { (message) }
        p { a href="/console/connectors" { "Back to the connectors" } }
    };
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        page("Error", None, Nav::None, body),
    )
        .into_response()
}
