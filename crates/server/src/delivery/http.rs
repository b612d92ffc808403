//! The HTTP client for deliveries: no redirects, no proxy, connect and total timeouts, and the
//! SSRF guard shared with the token engine (`hookwarden_oauth::guard`: names resolved once per
//! new connection, every address checked). IP-literal hosts never reach a resolver and are
//! checked here.

use std::time::{Duration, Instant};

use hookwarden_core::{AddressPolicy, TransportFailure};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};

/// What an attempt keeps of the answer: enough to diagnose, little enough to store per attempt.
pub const MAX_EXCERPT_BYTES: usize = 1024;

/// How much of the answer is read: the excerpt and room beyond it, so that a credential the
/// receiver echoes across the excerpt's end is seen whole and redacted before the cut.
pub const READ_BYTES: usize = MAX_EXCERPT_BYTES + 8 * 1024;

/// What one POST produced.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `None` when no answer came back.
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub location: Option<String>,
    /// The beginning of the body (up to `READ_BYTES`), not yet redacted nor cut to the excerpt.
    pub body: String,
    pub duration: Duration,
    pub failure: Option<(TransportFailure, String)>,
}

#[derive(Clone)]
pub struct DeliveryClient {
    client: reqwest::Client,
    policy: AddressPolicy,
    allow_insecure_http: bool,
}

impl DeliveryClient {
    pub fn new(
        policy: AddressPolicy,
        allow_insecure_http: bool,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .dns_resolver(hookwarden_oauth::guard::guarded_resolver(policy.clone()))
            .user_agent(concat!("hookwarden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            policy,
            allow_insecure_http,
        })
    }

    /// The checks that need no lookup: scheme, and an IP-literal host against the policy.
    pub fn precheck(&self, url: &str) -> Result<reqwest::Url, (TransportFailure, String)> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            (
                TransportFailure::Other,
                format!("the url cannot be parsed: {e}"),
            )
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_insecure_http => {}
            other => {
                return Err((
                    TransportFailure::AddressRefused,
                    format!("scheme {other} is not allowed: destinations must be https (allow_insecure_http is off)"),
                ))
            }
        }
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
            None => {
                return Err((TransportFailure::Other, "the url has no host".to_owned()));
            }
        };
        if let Some(ip) = ip {
            self.policy.check(ip).map_err(|e| {
                (
                    TransportFailure::AddressRefused,
                    format!("{e}: not allowed"),
                )
            })?;
        }
        Ok(parsed)
    }

    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: String,
        timeout: Duration,
    ) -> Sent {
        let started = Instant::now();
        let no_answer = |failure: (TransportFailure, String)| Sent {
            status: None,
            retry_after: None,
            location: None,
            body: String::new(),
            duration: started.elapsed(),
            failure: Some(failure),
        };
        let parsed = match self.precheck(url) {
            Ok(u) => u,
            Err(f) => return no_answer(f),
        };
        let sent = self
            .client
            .post(parsed)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return no_answer(transport_failure(&e)),
        };
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header(RETRY_AFTER);
        let location = header(LOCATION);
        let mut buf: Vec<u8> = Vec::new();
        // The excerpt only: a receiver that streams megabytes does not cost us more.
        while buf.len() < READ_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                _ => break,
            }
        }
        buf.truncate(READ_BYTES);
        Sent {
            status: Some(status),
            retry_after,
            location,
            body: String::from_utf8_lossy(&buf).into_owned(),
            duration: started.elapsed(),
            failure: None,
        }
    }
}

impl Sent {
    /// What an attempt keeps of the answer: the credential sent, in any form the receiver may
    /// echo it, is redacted before the body is cut to `MAX_EXCERPT_BYTES`.
    pub fn excerpt(&self, credential: Option<&str>) -> String {
        let mut secrets = hookwarden_core::redact::Secrets::new();
        if let Some(c) = credential {
            secrets.add(c);
        }
        secrets.redact_and_cut(&self.body, MAX_EXCERPT_BYTES)
    }
}

fn transport_failure(e: &reqwest::Error) -> (TransportFailure, String) {
    if let Some(refused) = hookwarden_oauth::guard::address_refused(e) {
        return (TransportFailure::AddressRefused, refused.to_string());
    }
    let kind = if e.is_timeout() {
        TransportFailure::Timeout
    } else if e.is_connect() {
        TransportFailure::Connect
    } else {
        TransportFailure::Other
    };
    // reqwest's Display includes the URL, whose query may carry a credential: name the kind
    // and the innermost cause only.
    let mut innermost = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        innermost = err.to_string();
        source = err.source();
    }
    let what = match kind {
        TransportFailure::Timeout => "timed out",
        TransportFailure::Connect => "could not connect",
        _ => "request failed",
    };
    (kind, format!("{what}: {innermost}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(policy: &str) -> DeliveryClient {
        DeliveryClient::new(
            AddressPolicy::parse_list(policy).unwrap(),
            true,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn ip_literals_in_refused_ranges_are_refused_before_any_connection() {
        let c = client("");
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/x",
            "http://[::1]:8080/x",
            "http://127.0.0.1/x",
        ] {
            let err = c.precheck(url).unwrap_err();
            assert_eq!(err.0, TransportFailure::AddressRefused, "{url}");
            assert!(err.1.contains("not allowed"), "{}", err.1);
        }
        assert!(c.precheck("http://93.184.216.34/x").is_ok());
        assert!(client("127.0.0.0/8").precheck("http://127.0.0.1/x").is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_default() {
        let sent = client("")
            .post(
                "http://localhost:9/x",
                HeaderMap::new(),
                "{}".into(),
                Duration::from_secs(2),
            )
            .await;
        let (kind, message) = sent.failure.unwrap();
        assert_eq!(kind, TransportFailure::AddressRefused, "{message}");
        assert!(
            message.contains("localhost") && message.contains("loopback"),
            "{message}"
        );
    }
}
