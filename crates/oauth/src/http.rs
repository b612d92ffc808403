//! The one HTTP client the token engine uses: timeouts, no redirects, no proxy, and an SSRF
//! guard. Names are resolved by our own resolver, which checks every address with the
//! `AddressPolicy` and hands reqwest only checked addresses, so what is checked is what is
//! connected to (no second lookup that DNS rebinding could answer differently).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookwarden_core::retry::parse_retry_after;
use hookwarden_core::url_rules::check_endpoint;
use hookwarden_core::{AddressPolicy, Clock, Problem};

use crate::guard::{address_refused, guarded_resolver};

/// Largest response body read; token answers are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body.
pub(crate) enum Body {
    Empty,
    Form(String),
    Json(serde_json::Value),
}

pub(crate) struct Outgoing {
    pub url: String,
    /// Names the URL in errors: `token_url`, `revocation_url`, `refresh_hook`, ...
    pub field: &'static str,
    pub body: Body,
    /// HTTP Basic client authentication, already form-encoded per RFC 6749 §2.3.1.
    pub basic: Option<(String, String)>,
}

/// What came back.
pub(crate) enum Reply {
    Answer {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
        duration: Duration,
    },
    /// No answer: refused by our rules, or a network failure.
    NoAnswer {
        /// `Some` when our own rules refused the URL or its address (not transient).
        refused: Option<(&'static str, String, String)>,
        timed_out: bool,
        message: String,
        duration: Duration,
    },
}

#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    allow_insecure_http: bool,
    policy: AddressPolicy,
    /// Judges a `Retry-After` given as a date.
    clock: Arc<dyn Clock>,
}

impl Http {
    pub(crate) fn new(
        allow_insecure_http: bool,
        policy: AddressPolicy,
        connect_timeout: Duration,
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, around our guard.
            .no_proxy()
            .dns_resolver(guarded_resolver(policy.clone()))
            .user_agent(concat!("hookwarden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            allow_insecure_http,
            policy,
            clock,
        })
    }

    pub(crate) async fn post(&self, out: Outgoing) -> Reply {
        let started = Instant::now();
        // Scheme, user-info and IP-literal hosts (which skip the resolver) are checked here.
        // The query may carry grant parameters (request_style query): check the URL without it.
        let base = out.url.split('?').next().unwrap_or_default();
        if let Err(e) = check_endpoint(base, out.field, self.allow_insecure_http, &self.policy) {
            return Reply::NoAnswer {
                refused: Some((e.code(), e.message(), e.fix())),
                timed_out: false,
                message: e.message(),
                duration: started.elapsed(),
            };
        }
        let mut req = self
            .client
            .post(&out.url)
            .header(reqwest::header::ACCEPT, "application/json");
        req = match out.body {
            Body::Empty => req.header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            ),
            Body::Form(form) => req
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form),
            Body::Json(json) => req.json(&json),
        };
        if let Some((user, pass)) = out.basic {
            req = req.basic_auth(user, Some(pass));
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return no_answer(&e, started),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|raw| parse_retry_after(raw, self.clock.now_ms()));
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_BYTES.saturating_sub(bytes.len());
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if bytes.len() >= MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return no_answer(&e, started),
            }
        }
        Reply::Answer {
            status,
            retry_after,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            duration: started.elapsed(),
        }
    }
}

fn no_answer(e: &reqwest::Error, started: Instant) -> Reply {
    // Our resolver's refusal arrives wrapped by hyper and reqwest.
    if let Some(refused) = address_refused(e) {
        return Reply::NoAnswer {
            refused: Some((
                "url_address_refused",
                format!("the endpoint's address is not allowed: {refused}"),
                "use a public endpoint, or list its network in allow_private_networks (HOOKWARDEN_ALLOW_PRIVATE_NETWORKS)".to_owned(),
            )),
            timed_out: false,
            message: refused.to_string(),
            duration: started.elapsed(),
        };
    }
    // reqwest's messages name the URL, never the body or headers; strip the URL anyway.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let detail = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    Reply::NoAnswer {
        refused: None,
        timed_out: e.is_timeout(),
        message: if detail.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}: {detail}")
        },
        duration: started.elapsed(),
    }
}
