//! Login, logout and the session every other page needs. The API key is exchanged for a
//! session cookie (`HttpOnly`, `SameSite=Lax`, `Secure` when `public_url` is https) whose
//! session lives in the database, so any node serves it; it ends after 12 hours idle, at
//! logout, or when its key is revoked. Every form that changes something carries the session's
//! `csrf_token`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use hookwarden_core::Scope;
use hookwarden_store::console::ConsoleSession;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::layout::{page, Nav};
use crate::state::AppState;

/// The cookie that names a session.
pub const COOKIE_NAME: &str = "hookwarden_session";

/// A session unused for this long is over.
pub const IDLE_MS: i64 = 12 * 3600 * 1000;

/// A logged-in browser. Without a live session a page redirects to the login form.
pub struct Console(pub ConsoleSession);

impl Console {
    /// Whether this session may change anything (an `admin` key); `read` only looks, and its
    /// pages show no action.
    pub fn can_change(&self) -> bool {
        self.0.scopes.allow(Scope::Admin)
    }

    /// The check of every form that changes something: `None` for an `admin` session whose
    /// form carried the session's `csrf_token`, otherwise the 403 page to answer.
    pub fn refuse_change(&self, csrf_token: &str) -> Option<Response> {
        if !self.can_change() {
            return Some(refused(
                self,
                "This session's API key has the read scope only: it can look at everything and change nothing.",
            ));
        }
        if !self.same_csrf(csrf_token) {
            return Some(refused(
                self,
                "The form did not carry this session's token (a page from another session or another site). Reload the page and try again.",
            ));
        }
        None
    }

    fn same_csrf(&self, given: &str) -> bool {
        given.as_bytes().ct_eq(self.0.csrf_token.as_bytes()).into()
    }
}

/// A 403 page: what this session may not do, and why.
pub(super) fn refused(session: &Console, why: &str) -> Response {
    let body = html! {
        h1 { "Not allowed" }
        p role="alert" { (why) }
        p { a href="/console/connectors" { "Back to the connectors" } }
    };
    (
        StatusCode::FORBIDDEN,
        page("Not allowed", Some(session), Nav::None, body),
    )
        .into_response()
}

/// The session token the request's cookie carries, if any.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(to_login());
        };
        match state
            .store
            .console_session(&token, state.clock.now_ms(), IDLE_MS)
            .await
        {
            Ok(Some(session)) => Ok(Console(session)),
            Ok(None) => Err(to_login()),
            Err(e) => Err(super::error_page(&e.to_string())),
        }
    }
}

/// The `Set-Cookie` of a session (`value` empty: the cookie's removal).
fn session_cookie(state: &AppState, value: &str) -> String {
    let secure = if state.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let expiry = if value.is_empty() { "; Max-Age=0" } else { "" };
    format!("{COOKIE_NAME}={value}; Path=/console; HttpOnly; SameSite=Lax{secure}{expiry}")
}

fn login_form(message: Option<&str>) -> maud::Markup {
    let body = html! {
        h1 { "Log in to hookwarden" }
        @if let Some(m) = message {
            p .error role="alert" { (m) }
        }
        form method="post" action="/console/login" .login {
            label for="api_key" { "API key" }
            input type="password" id="api_key" name="api_key" autocomplete="current-password"
                required autofocus;
            p .hint { "A key with the read scope sees everything; an admin key can also act. "
                "Make one with " code { "hookwarden keys create --scope read" } "." }
            button type="submit" { "Log in" }
        }
    };
    page("Log in", None, Nav::None, body)
}

/// `GET /console/login`: the form (or the connectors, when already logged in).
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie_token(&headers) {
        if let Ok(Some(_)) = state
            .store
            .console_session(&token, state.clock.now_ms(), IDLE_MS)
            .await
        {
            return Redirect::to("/console/connectors").into_response();
        }
    }
    login_form(None).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    api_key: String,
}

/// The client's address, when the server was given it (not in-process tests).
pub struct Peer(Option<IpAddr>);

impl FromRequestParts<AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// `POST /console/login`: a `read` or `admin` key gets a session; a wrong key counts against
/// the address's failed authentications, like a wrong key on the API.
pub async fn login(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Form(form): Form<LoginForm>,
) -> Response {
    let again =
        |status: StatusCode, message: &str| (status, login_form(Some(message))).into_response();
    if let Err(e) = state.limits.check_peer(peer) {
        return again(StatusCode::TOO_MANY_REQUESTS, &e.message);
    }
    let key = form.api_key.trim();
    let holder = if key.is_empty() || state.limits.recently_failed(key) {
        None
    } else {
        match state.api_key_holder(key).await {
            Ok(h) => h,
            Err(e) => return super::error_page(&e.message),
        }
    };
    let Some(holder) = holder else {
        if !key.is_empty() {
            state.limits.remember_failed(key);
        }
        return match state.limits.authentication_failed(peer) {
            Ok(()) => again(
                StatusCode::UNAUTHORIZED,
                "That is not an API key of this server. Check it, or make one with `hookwarden keys create --scope read`.",
            ),
            Err(e) => again(StatusCode::TOO_MANY_REQUESTS, &e.message),
        };
    };
    if !holder.scopes.allow(Scope::Read) {
        return again(
            StatusCode::FORBIDDEN,
            "This key has the ingest scope only: it sends events and cannot log in. Use a key with the read or admin scope.",
        );
    }
    let now = state.clock.now_ms();
    match state
        .store
        .create_console_session(key, &holder.account.id, now, IDLE_MS)
        .await
    {
        Ok(session) => (
            StatusCode::SEE_OTHER,
            [
                (SET_COOKIE, session_cookie(&state, &session.token)),
                (
                    axum::http::header::LOCATION,
                    "/console/connectors".to_owned(),
                ),
            ],
        )
            .into_response(),
        Err(e) => super::error_page(&e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf_token: String,
}

/// `POST /console/logout`: the session ends (a read session may log out too).
pub async fn logout(
    State(state): State<AppState>,
    session: Console,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session.same_csrf(&form.csrf_token) {
        return refused(&session, "The form did not carry this session's token.");
    }
    if let Some(token) = cookie_token(&headers) {
        if let Err(e) = state.store.end_console_session(&token).await {
            return super::error_page(&e.to_string());
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, session_cookie(&state, "")),
            (axum::http::header::LOCATION, "/console/login".to_owned()),
        ],
    )
        .into_response()
}
