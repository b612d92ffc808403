//! Phase (a), the baseline: the delivery client's settings POSTing to the fake org directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookwarden_fake_org::{RunningFakeOrg, DEFAULT_CLIENT_ID};

use crate::{body, CONCURRENCY};

/// (a): what the machine does without hookwarden.
pub(crate) async fn baseline(org: &RunningFakeOrg, n: usize) -> anyhow::Result<f64> {
    // The settings of hookwarden's delivery client (`delivery::http::DeliveryClient`), the
    // per-request total timeout included; only its guarded resolver is left out (the url is an
    // IP literal, which never reaches a resolver).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("hookwarden/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let token = org.issue_access_token(DEFAULT_CLIENT_ID);
    let url = Arc::new(org.callback_url());
    // The very body hookwarden sends for the events of (b) and (c).
    let event = hookwarden_core::Event::from_json(&body(0), chrono::Utc::now().timestamp_millis())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = Arc::new(event.onespan_body());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, payload, next, token) = (
            client.clone(),
            url.clone(),
            payload.clone(),
            next.clone(),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let r = client
                    .post(url.as_str())
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .header("webhook-id", "msg_baseline")
                    .header("webhook-timestamp", "1700000000")
                    .header(
                        "webhook-signature",
                        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                    )
                    .body(payload.as_str().to_owned())
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
