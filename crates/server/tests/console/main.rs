//! The console over HTTP, as a browser sees it (no script): login and its session, the scope
//! rules, CSRF, and each page with the elements a user relies on.

#[path = "../common/mod.rs"]
mod common;

mod connector;
mod connectors;
mod deliveries;
mod events;
mod keys;
mod notifications;
mod review;
mod session;

use common::*;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A browser without redirects followed, so each step's answer can be checked.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A new API key of account A with `scopes`.
pub async fn key_with(t: &TestServer, scopes: &[&str]) -> String {
    let (status, body) = json(
        t.req(Method::POST, "/api/keys")
            .json(&json!({"scopes": scopes}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["api_key"].as_str().unwrap().to_owned()
}

/// What a login answers.
pub struct LoggedIn {
    pub status: StatusCode,
    pub set_cookie: String,
    pub location: String,
    pub body: String,
}

pub async fn log_in(t: &TestServer, api_key: &str) -> LoggedIn {
    let resp = browser()
        .post(t.url("/console/login"))
        .form(&[("api_key", api_key)])
        .send()
        .await
        .unwrap();
    let header = |name| {
        resp.headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    LoggedIn {
        status: resp.status(),
        set_cookie: header(SET_COOKIE),
        location: header(LOCATION),
        body: resp.text().await.unwrap(),
    }
}

/// A logged-in browser's session cookie (`name=value`).
pub async fn session_for(t: &TestServer, api_key: &str) -> String {
    let answer = log_in(t, api_key).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    answer.set_cookie.split(';').next().unwrap().to_owned()
}

/// A page with the session cookie: its status, where it redirects, and its HTML.
pub async fn get_page(t: &TestServer, cookie: &str, path: &str) -> (StatusCode, String, String) {
    let resp = browser()
        .get(t.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

/// The value of the hidden `csrf_token` field in a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .expect("the page has a csrf_token field");
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}
