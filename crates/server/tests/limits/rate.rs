//! Requests per API key (`api_rate_per_s`, `api_burst`) and failed authentications per client
//! address (`auth_failures_per_minute`): `429 rate_limited` with `Retry-After`, then room
//! again after waiting that long.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::Value;

use crate::common::*;

const LIST: &str = "/api/callback/connectors";

/// The 429's `Retry-After`, checked to be whole seconds, at least 1.
fn retry_after(resp: &Response) -> u64 {
    let seconds: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(seconds >= 1);
    seconds
}

async fn refused(resp: Response) -> (u64, Value) {
    let wait = retry_after(&resp);
    let (status, body) = json(resp).await;
    assert_error(status, &body, 429, "rate_limited");
    (wait, body)
}

/// Generous: the wait asked for, and a second more.
async fn wait_out(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds + 1)).await;
}

#[tokio::test]
async fn a_key_past_its_burst_is_refused_until_its_bucket_refills() {
    let (urls, _dir) = each_database().await;
    let mut s = settings(&urls[0], true);
    s.limits.api_rate_per_s = 1;
    s.limits.api_burst = 3;
    let t = TestServer::start_with(s, None).await;

    // The burst is there from the start; a second refills one, so of ten requests sent one
    // after another some are refused (unless each took longer than a second).
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..10 {
        let resp = t.req(Method::GET, LIST).send().await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 && refusal.is_none() {
            refusal = Some(refused(resp).await);
        }
    }
    assert_eq!(statuses[..3], [200, 200, 200], "{statuses:?}");
    let (wait, body) = refusal.unwrap_or_else(|| panic!("none refused: {statuses:?}"));
    let text = body.to_string();
    assert!(
        text.contains("api_rate_per_s") && text.contains("api_burst"),
        "{text}"
    );

    // Per key: the other account's key has its own bucket.
    let resp = t.req_b(Method::GET, LIST).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    wait_out(wait).await;
    let resp = t.req(Method::GET, LIST).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_address_with_too_many_failed_authentications_is_refused_then_let_in_again() {
    let (urls, _dir) = each_database().await;
    let mut s = settings(&urls[0], true);
    // One back every 10 s: the refusal lasts long enough for this test to see it.
    s.limits.auth_failures_per_minute = 6;
    let t = TestServer::start_with(s, None).await;
    let bad = |n: usize| {
        t.http
            .get(t.url(LIST))
            .header("Authorization", format!("Basic hwk_not-a-key-{n}"))
    };

    for n in 0..6 {
        let (status, body) = json(bad(n).send().await.unwrap()).await;
        assert_error(status, &body, 401, "unauthorized");
    }
    // The seventh is refused, and so is a good key from the same address: a guess that
    // happened to be right would not be confirmed.
    let (wait, body) = refused(bad(6).send().await.unwrap()).await;
    assert!(wait <= 10, "{wait}");
    let text = body.to_string();
    assert!(
        text.contains("127.0.0.1") && text.contains("auth_failures_per_minute"),
        "{text}"
    );
    refused(t.req(Method::GET, LIST).send().await.unwrap()).await;
    // A request with no key at all is no guess: still the plain 401.
    let (status, body) = json(t.http.get(t.url(LIST)).send().await.unwrap()).await;
    assert_error(status, &body, 401, "unauthorized");

    // Another address is not affected.
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let elsewhere = reqwest::Client::builder()
        .local_address(other)
        .build()
        .unwrap();
    let resp = elsewhere
        .get(t.url(LIST))
        .header("Authorization", format!("Basic {}", t.key_a))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = elsewhere
        .get(t.url(LIST))
        .header("Authorization", "Basic hwk_not-a-key-0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    wait_out(wait).await;
    let resp = t.req(Method::GET, LIST).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
