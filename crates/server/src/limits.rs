//! What one client may ask of the API: a token bucket per API key (`api_rate_per_s`,
//! `api_burst`), failed authentications per client address (`auth_failures_per_minute`), and a
//! short memory of keys that just failed, so that a flood of bad keys does not reach the
//! database. The buckets are governor's (GCRA); each answer past one is `429 rate_limited`
//! with `Retry-After`.
//!
//! A client address that has used up its failed authentications is refused whatever key it
//! sends, a good one too, without looking the key up, until its bucket has room again: a key
//! guessed right in that time is not confirmed, and the database is not asked. Behind a reverse
//! proxy every client has the proxy's address. A request whose peer address is not known (the
//! router called in-process, without `ConnectInfo`) is not counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

use crate::config::Limits;
use crate::error::ApiError;

use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::error::Overloaded;
use tower::timeout::error::Elapsed;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, ServiceBuilder};

/// How long a key that was not found is answered 401 without asking the database again.
const FAILED_KEY_MEMORY: Duration = Duration::from_secs(10);
/// Keys remembered as failed at most; a flood beyond this forgets the oldest first.
const FAILED_KEYS_MAX: usize = 4096;
/// Past this many addresses or keys in a bucket map, those whose bucket is full again are
/// dropped (`retain_recent`): an attacker with many addresses costs bounded memory.
const BUCKETS_BEFORE_CLEANUP: usize = 10_000;

type Buckets<K> = DefaultKeyedRateLimiter<K, StateInformationMiddleware>;

pub struct Limiters {
    per_key: Option<Buckets<String>>,
    rate_per_s: u32,
    burst: u32,
    auth_failures: Option<(Buckets<IpAddr>, Quota)>,
    failures_per_minute: u32,
    /// Addresses refused until then (they used up their failed authentications).
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// SHA-256 of keys that were just not found, and when.
    failed_keys: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Limiters {
    pub fn new(limits: &Limits) -> Self {
        let rate = NonZeroU32::new(limits.api_rate_per_s);
        let burst = NonZeroU32::new(limits.api_burst).or(rate);
        let per_key = rate.zip(burst).map(|(rate, burst)| {
            governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
                .with_middleware()
        });
        let auth_failures = NonZeroU32::new(limits.auth_failures_per_minute).map(|n| {
            let quota = Quota::per_minute(n);
            (governor::RateLimiter::keyed(quota).with_middleware(), quota)
        });
        Self {
            per_key,
            rate_per_s: limits.api_rate_per_s,
            burst: burst.map_or(0, NonZeroU32::get),
            auth_failures,
            failures_per_minute: limits.auth_failures_per_minute,
            blocked: Mutex::default(),
            failed_keys: Mutex::default(),
        }
    }

    /// One request of this key (by its id); `429` past its bucket. Free when the limit is off.
    pub fn take_key_request(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(buckets) = &self.per_key else {
            return Ok(());
        };
        let key_id = key_id.to_owned();
        match buckets.check_key(&key_id) {
            Ok(_) => Ok(()),
            Err(not_until) => {
                if buckets.len() > BUCKETS_BEFORE_CLEANUP {
                    buckets.retain_recent();
                }
                let wait = not_until.wait_time_from(buckets.clock().now());
                Err(rate_limited(
                    wait,
                    format!(
                        "this API key sent more than {} requests a second (bursts of {} allowed)",
                        self.rate_per_s, self.burst
                    ),
                    "wait the seconds Retry-After says, then send fewer requests at once (POST \
                     /api/events/batch takes up to 1,000 events in one); the server's operator \
                     can raise api_rate_per_s and api_burst (HOOKWARDEN_API_RATE_PER_S, \
                     HOOKWARDEN_API_BURST)",
                ))
            }
        }
    }

    /// Before a key is looked up: `429` while `peer` has no failed authentication left.
    pub fn check_peer(&self, peer: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(peer) = peer else { return Ok(()) };
        let now = Instant::now();
        let until = {
            let mut blocked = self
                .blocked
                .lock()
                .expect("blocked addresses lock poisoned");
            match blocked.get(&peer) {
                Some(until) if *until > now => *until,
                Some(_) => {
                    blocked.remove(&peer);
                    return Ok(());
                }
                None => return Ok(()),
            }
        };
        Err(self.too_many_failures(peer, until - now))
    }

    /// A key from `peer` was not found (or the credential could not be read). When that was the
    /// address's last failed authentication, the requests after it are refused (`check_peer`);
    /// `429` only when it had none left already, else the caller's `401`.
    pub fn authentication_failed(&self, peer: Option<IpAddr>) -> Result<(), ApiError> {
        let (Some(peer), Some((buckets, quota))) = (peer, &self.auth_failures) else {
            return Ok(());
        };
        let (wait, this_one) = match buckets.check_key(&peer) {
            // Its last one: this is a 401, and the next request from there waits for the
            // bucket to have room again.
            Ok(snapshot) if snapshot.remaining_burst_capacity() == 0 => {
                (quota.replenish_interval(), Ok(()))
            }
            Ok(_) => return Ok(()),
            // Two requests that failed at once, after the last one was used.
            Err(not_until) => {
                let wait = not_until.wait_time_from(buckets.clock().now());
                (wait, Err(self.too_many_failures(peer, wait)))
            }
        };
        if buckets.len() > BUCKETS_BEFORE_CLEANUP {
            buckets.retain_recent();
        }
        let now = Instant::now();
        let mut blocked = self
            .blocked
            .lock()
            .expect("blocked addresses lock poisoned");
        if blocked.len() > BUCKETS_BEFORE_CLEANUP {
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(peer, now + wait);
        this_one
    }

    fn too_many_failures(&self, peer: IpAddr, wait: Duration) -> ApiError {
        rate_limited(
            wait,
            format!(
                "too many failed authentications from {peer} ({} a minute at most): requests \
                 with a key are refused from there for now",
                self.failures_per_minute
            ),
            "check the API key you send (an admin key lists the account's with GET /api/keys), \
             then retry after the seconds Retry-After says; the server's operator can raise \
             auth_failures_per_minute (HOOKWARDEN_AUTH_FAILURES_PER_MINUTE)",
        )
    }

    /// Whether `key` was just not found (then it is not looked up again for a while).
    pub fn recently_failed(&self, key: &str) -> bool {
        let hash = hash(key);
        let failed = self.failed_keys.lock().expect("failed keys lock poisoned");
        failed
            .get(&hash)
            .is_some_and(|at| at.elapsed() < FAILED_KEY_MEMORY)
    }

    pub fn remember_failed(&self, key: &str) {
        let now = Instant::now();
        let mut failed = self.failed_keys.lock().expect("failed keys lock poisoned");
        if failed.len() >= FAILED_KEYS_MAX {
            failed.retain(|_, at| now.duration_since(*at) < FAILED_KEY_MEMORY);
            if failed.len() >= FAILED_KEYS_MAX {
                if let Some(oldest) = failed.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                    failed.remove(&oldest);
                }
            }
        }
        failed.insert(hash(key), now);
    }

    /// After a key was made or revoked: no key is taken as failed from memory.
    pub fn forget_failed_keys(&self) {
        self.failed_keys
            .lock()
            .expect("failed keys lock poisoned")
            .clear();
    }
}

/// The request timeout (`api_timeout_s`: `503 timeout`) and the concurrency limit
/// (`api_max_concurrency`: `503 overloaded` at once, never queued), as tower's layers; a limit
/// of 0 adds no layer.
pub fn with_overload_limits<S>(router: axum::Router<S>, limits: &Limits) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    with_limits(
        router,
        limits.api_timeout,
        limits.api_max_concurrency,
        Overload::Api,
    )
}

/// Scrapes the `metrics_listen` listener serves at once; one more is `503 overloaded`. A
/// Prometheus server scrapes one at a time; this leaves room for a second and a person.
pub const METRICS_MAX_CONCURRENCY: usize = 4;

/// The `metrics_listen` listener's own limits: the API's timeout (`api_timeout_s`) and
/// `METRICS_MAX_CONCURRENCY` renders at once, so that a client hammering an open metrics port
/// cannot take the server's CPU and database connections from the deliveries.
pub fn with_metrics_limits<S>(router: axum::Router<S>, limits: &Limits) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    with_limits(
        router,
        limits.api_timeout,
        METRICS_MAX_CONCURRENCY,
        Overload::Metrics,
    )
}

/// Which listener refused, for the fix its `overloaded` names.
#[derive(Debug, Clone, Copy)]
enum Overload {
    Api,
    Metrics,
}

fn with_limits<S>(
    router: axum::Router<S>,
    timeout: Duration,
    concurrency: usize,
    which: Overload,
) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::<_, ()>::new(
                move |e: BoxError| async move {
                    overload_or_timeout(&e, timeout, concurrency, which).into_response()
                },
            ))
            .option_layer((concurrency > 0).then(|| {
                ServiceBuilder::new()
                    .load_shed()
                    .layer(GlobalConcurrencyLimitLayer::new(concurrency))
            }))
            .option_layer((!timeout.is_zero()).then(|| TimeoutLayer::new(timeout)))
            // A layer left out must fail the same way as one put in.
            .map_err(BoxError::from),
    )
}

fn overload_or_timeout(
    e: &BoxError,
    timeout: Duration,
    concurrency: usize,
    which: Overload,
) -> ApiError {
    if e.is::<Elapsed>() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} s (api_timeout_s) and was stopped; what it had \
                 done by then may or may not have taken effect",
                timeout.as_secs()
            ),
            "retry it (an event with the same Idempotency-Key is not ingested twice); when a \
             provider is slow, a connector's history says which call took long; the server's \
             operator can raise api_timeout_s (HOOKWARDEN_API_TIMEOUT_S)",
        );
    }
    if e.is::<Overloaded>() {
        let (message, fix) = match which {
            Overload::Api => (
                format!(
                    "the server is already serving {concurrency} requests (api_max_concurrency); \
                     this one was not started"
                ),
                "retry shortly, backing off; the server's operator can raise api_max_concurrency \
                 (HOOKWARDEN_API_MAX_CONCURRENCY) or run more API nodes",
            ),
            Overload::Metrics => (
                format!(
                    "the metrics listener is already serving {concurrency} scrapes; this one was \
                     not started"
                ),
                "scrape less often, or from fewer places; retry shortly",
            ),
        };
        let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message, fix);
        error.retry_after = Some(1);
        return error;
    }
    tracing::error!(error = %e, "unexpected error from a request layer");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the request failed inside the server",
        "retry; if it persists, report it with the server's log",
    )
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// `429 rate_limited` with `Retry-After` in whole seconds, at least 1.
fn rate_limited(wait: Duration, message: String, fix: &str) -> ApiError {
    let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message, fix);
    error.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(failures: u32) -> Limits {
        Limits {
            auth_failures_per_minute: failures,
            ..Limits::default()
        }
    }

    #[test]
    fn failed_authentications_are_counted_per_address() {
        let l = Limiters::new(&limits(3));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(l.check_peer(Some(a)).is_ok());
            assert!(l.authentication_failed(Some(a)).is_ok(), "a 401");
        }
        // The next request from there is refused before its key is looked up.
        let next = l.check_peer(Some(a)).unwrap_err();
        assert_eq!(next.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(next.code, "rate_limited");
        // 3 a minute: one comes back every 20 s.
        assert!(matches!(next.retry_after, Some(19 | 20)), "{next:?}");
        // Had it got through anyway (at the same moment as the third), it would be a 429 too.
        let raced = l.authentication_failed(Some(a)).unwrap_err();
        assert_eq!(raced.code, "rate_limited");
        // Another address is not affected, nor a request whose address is not known.
        assert!(l.check_peer(Some(b)).is_ok());
        assert!(l.authentication_failed(Some(b)).is_ok());
        assert!(l.check_peer(None).is_ok());
        assert!(l.authentication_failed(None).is_ok());
        // Off: never refused.
        let off = Limiters::new(&limits(0));
        for _ in 0..100 {
            assert!(off.authentication_failed(Some(a)).is_ok());
        }
        assert!(off.check_peer(Some(a)).is_ok());
    }

    #[test]
    fn the_per_key_bucket_is_off_by_default_and_refuses_past_the_burst() {
        let off = Limiters::new(&Limits::default());
        assert!(off.per_key.is_none());
        for _ in 0..1000 {
            assert!(off.take_key_request("k").is_ok());
        }
        let on = Limiters::new(&Limits {
            api_rate_per_s: 1,
            api_burst: 2,
            ..Limits::default()
        });
        assert!(on.take_key_request("k").is_ok());
        assert!(on.take_key_request("k").is_ok());
        let e = on.take_key_request("k").unwrap_err();
        assert_eq!(
            (e.status, e.retry_after),
            (StatusCode::TOO_MANY_REQUESTS, Some(1))
        );
        assert!(on.take_key_request("other").is_ok(), "buckets are per key");
    }

    #[test]
    fn failed_keys_are_remembered_briefly_and_boundedly() {
        let l = Limiters::new(&Limits::default());
        assert!(!l.recently_failed("hwk_bad"));
        l.remember_failed("hwk_bad");
        assert!(l.recently_failed("hwk_bad"));
        for i in 0..FAILED_KEYS_MAX + 10 {
            l.remember_failed(&format!("hwk_{i}"));
        }
        assert!(l.failed_keys.lock().unwrap().len() <= FAILED_KEYS_MAX);
        l.forget_failed_keys();
        assert!(!l.recently_failed("hwk_1"));
    }

    /// The metrics listener renders `METRICS_MAX_CONCURRENCY` scrapes at once; one more is
    /// refused at once with a fix of its own, and served again once one ends.
    #[tokio::test]
    async fn the_metrics_listener_sheds_scrapes_past_its_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        use axum::body::Body;
        use axum::http::Request;
        use tokio::sync::{Notify, Semaphore};
        use tower::ServiceExt;

        let started = Arc::new(AtomicUsize::new(0));
        let all_in = Arc::new(Notify::new());
        let gate = Arc::new(Semaphore::new(0));
        let handler = {
            let (started, all_in, gate) = (started.clone(), all_in.clone(), gate.clone());
            move || async move {
                if started.fetch_add(1, Ordering::SeqCst) + 1 == METRICS_MAX_CONCURRENCY {
                    all_in.notify_one();
                }
                let _held = gate.acquire().await;
                "ok"
            }
        };
        let router = with_metrics_limits(
            axum::Router::new().route("/metrics", axum::routing::get(handler)),
            &Limits::default(),
        );
        let get = || Request::get("/metrics").body(Body::empty()).unwrap();
        let waiting = all_in.notified();
        let held: Vec<_> = (0..METRICS_MAX_CONCURRENCY)
            .map(|_| tokio::spawn(router.clone().oneshot(get())))
            .collect();
        waiting.await;
        let refused = router.clone().oneshot(get()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = body.to_string();
        assert!(
            text.contains("overloaded") && text.contains("metrics listener"),
            "{text}"
        );
        gate.add_permits(METRICS_MAX_CONCURRENCY + 1);
        for h in held {
            assert_eq!(h.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        let again = router.oneshot(get()).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }
}
