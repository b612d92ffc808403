//! Helpers shared by the integration tests: form bodies (reqwest has no `form` feature here),
//! redirect parsing and PKCE, written independently of the crate under test.
#![allow(dead_code)] // each test binary uses a different subset

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn dec(s: &str) -> String {
    let b = s.replace('+', " ");
    let bytes = b.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = u8::from_str_radix(&b[i + 1..i + 3], 16).unwrap();
            out.push(h);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The query parameters of a redirect `Location`.
pub fn query_param(location: &str, name: &str) -> Option<String> {
    let (_, query) = location.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| dec(v))
    })
}

pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    answer(req.send().await.unwrap()).await
}

pub async fn post_form(url: &str, pairs: &[(&str, &str)]) -> Answer {
    send(
        http()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs)),
    )
    .await
}

pub async fn post_json(url: &str, body: Value) -> Answer {
    send(http().post(url).json(&body)).await
}

pub async fn get(url: &str) -> Answer {
    send(http().get(url)).await
}

/// A callback as hookwarden sends it: bearer token, Standard Webhooks headers, OneSpan body.
pub async fn post_callback(url: &str, token: Option<&str>, webhook_id: &str) -> Answer {
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", "1700000000")
        .header("webhook-signature", "v1,c2lnbmF0dXJl")
        .body(
            r#"{"@class":"com.silanis.esl.packages.event.ESLProcessEvent","name":"PACKAGE_COMPLETE","packageId":"pkg-1"}"#,
        );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req).await
}

/// Assert a Salesforce OAuth error answer.
pub fn assert_oauth_error(a: &Answer, status: u16, error: &str, description: &str) {
    assert_eq!(a.status, status, "body: {}", a.text);
    let body = a.json();
    assert_eq!(body["error"], error, "body: {}", a.text);
    assert_eq!(body["error_description"], description, "body: {}", a.text);
}
