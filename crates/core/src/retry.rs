//! When to try a delivery again, and what an HTTP attempt's answer means. Pure: the caller
//! passes the clock's reading and a uniform random number, so every rule is testable exactly.

use std::time::Duration;

pub use crate::diagnosis::TransportFailure;
use crate::diagnosis::{diagnose_answer, diagnose_transport, rest_error_code, Code, Diagnosis};

/// DESIGN.md's schedule: the delays before each retry (the first attempt is at once).
pub const DEFAULT_SCHEDULE_S: [u64; 9] = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];
pub const DEFAULT_JITTER: f64 = 0.2;
/// A `Retry-After` longer than this is capped: a receiver's typo must not park a delivery for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    pub delays_s: Vec<u64>,
    /// Relative, 0.0..=1.0: each delay is spread over ±jitter of itself.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            delays_s: DEFAULT_SCHEDULE_S.to_vec(),
            jitter: DEFAULT_JITTER,
        }
    }
}

impl RetrySchedule {
    pub fn new(delays_s: Vec<u64>, jitter: f64) -> Self {
        Self {
            delays_s,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// The wait before the next attempt after `attempts_made` failed attempts, or `None` when
    /// the schedule is used up. `unit` is uniform in `[0, 1)`.
    pub fn delay_after(&self, attempts_made: u32, unit: f64) -> Option<Duration> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        let base = *self.delays_s.get(index)? as f64;
        let unit = unit.clamp(0.0, 1.0);
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Some(Duration::from_millis(
            (base * factor * 1000.0).round() as u64
        ))
    }

    /// The next attempt's wait, honouring a `Retry-After`: never earlier than it asks, capped.
    pub fn delay_with_retry_after(
        &self,
        attempts_made: u32,
        unit: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let scheduled = self.delay_after(attempts_made, unit)?;
        Some(match retry_after {
            Some(asked) => scheduled.max(asked.min(MAX_RETRY_AFTER)),
            None => scheduled,
        })
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), capped at
/// `MAX_RETRY_AFTER`. `now_ms` judges the date. The one parser of the header, for deliveries
/// and token endpoints alike.
pub fn parse_retry_after(raw: &str, now_ms: i64) -> Option<Duration> {
    let raw = raw.trim();
    let wait = if let Ok(secs) = raw.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
        let wait_ms = at.timestamp_millis().saturating_sub(now_ms).max(0);
        Duration::from_millis(wait_ms as u64)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What one HTTP answer (or the lack of one) means for the delivery, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 401: invalidate the token, refresh, and try once more at once.
    Unauthorized,
    /// Try again later (429, 5xx, timeouts, network), not before `retry_after`.
    Retry {
        retry_after: Option<Duration>,
        diagnosis: Diagnosis,
    },
    /// Will not get better by retrying: the delivery fails (it can still be replayed).
    Fail {
        diagnosis: Diagnosis,
    },
    /// 410 Gone: the destination asks not to be called again; the connector is disabled.
    Gone {
        diagnosis: Diagnosis,
    },
}

/// Classify an HTTP answer. `body` is the response excerpt, for Salesforce's `errorCode`.
pub fn classify_status(
    status: u16,
    retry_after: Option<Duration>,
    location: Option<&str>,
    body: &str,
) -> Verdict {
    let diagnosis = || {
        diagnose_answer(status, location, body).unwrap_or_else(|| Code::EndpointRefused.diagnosis())
    };
    match status {
        200..=299 => Verdict::Delivered,
        401 => Verdict::Unauthorized,
        410 => Verdict::Gone {
            diagnosis: diagnosis(),
        },
        300..=399 => Verdict::Fail {
            diagnosis: diagnosis(),
        },
        // A 500 from an Apex class is usually an unhandled exception that a later try can pass;
        // 408 and 425 ask for a retry by definition.
        408 | 425 | 429 | 500..=599 => Verdict::Retry {
            retry_after,
            diagnosis: diagnosis(),
        },
        // Salesforce's answer (403) to an org that has used up its API requests of the last
        // 24 hours: it passes as the window rolls on, so the delivery waits, not fails.
        400..=499 if rest_error_code(body).as_deref() == Some("REQUEST_LIMIT_EXCEEDED") => {
            Verdict::Retry {
                retry_after,
                diagnosis: diagnosis(),
            }
        }
        _ => Verdict::Fail {
            diagnosis: diagnosis(),
        },
    }
}

pub fn classify_transport(failure: TransportFailure) -> Verdict {
    let diagnosis = diagnose_transport(failure);
    match failure {
        TransportFailure::AddressRefused => Verdict::Fail { diagnosis },
        TransportFailure::Timeout | TransportFailure::Connect | TransportFailure::Other => {
            Verdict::Retry {
                retry_after: None,
                diagnosis,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Salesforce's refusals of the Apex call that an admin fixes: say which setting.
    #[test]
    fn apex_access_refusals_name_the_setting() {
        let body = r#"[{"errorCode":"FORBIDDEN","message":"You do not have access to the Apex class named 'OssCallbackResource'."}]"#;
        let Verdict::Fail { diagnosis } = classify_status(403, None, None, body) else {
            panic!("a refusal");
        };
        assert_eq!(diagnosis.code, "apex_class_access");
        assert!(diagnosis.fix.contains("Apex Class Access"), "{diagnosis:?}");
        let body = r#"[{"errorCode":"API_DISABLED_FOR_ORG","message":"The REST API is not enabled for this Organization."}]"#;
        let Verdict::Fail { diagnosis } = classify_status(403, None, None, body) else {
            panic!("a refusal");
        };
        assert!(diagnosis.fix.contains("API Enabled"), "{diagnosis:?}");
        let d = crate::diagnosis::diagnose_endpoint(403, body).unwrap();
        assert_eq!(d.code, "api_disabled");
        assert_eq!(d, diagnosis, "delivery and connector test say the same");
    }

    #[test]
    fn an_org_out_of_api_requests_is_retried_not_failed() {
        let body =
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        let Verdict::Retry { diagnosis, .. } = classify_status(403, None, None, body) else {
            panic!("403 REQUEST_LIMIT_EXCEEDED must be retried");
        };
        assert_eq!(diagnosis.code, "api_limit_exceeded");
        assert!(diagnosis.cause.contains("REQUEST_LIMIT_EXCEEDED"));
        // Any other 403 is still a refusal.
        let other = r#"[{"message":"no","errorCode":"INSUFFICIENT_ACCESS"}]"#;
        assert!(matches!(
            classify_status(403, None, None, other),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn the_default_schedule_with_jitter_bounds() {
        let s = RetrySchedule::default();
        assert_eq!(
            s.delay_after(0, 0.5),
            None,
            "the first attempt is not a retry"
        );
        assert_eq!(s.delay_after(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(s.delay_after(1, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(s.delay_after(1, 1.0), Some(Duration::from_secs(6)));
        assert_eq!(s.delay_after(2, 0.5), Some(Duration::from_secs(300)));
        assert_eq!(s.delay_after(9, 0.5), Some(Duration::from_secs(86400)));
        assert_eq!(s.delay_after(10, 0.5), None, "then failed");
        for i in 0..=100 {
            let d = s
                .delay_after(3, f64::from(i) / 100.0)
                .unwrap()
                .as_secs_f64();
            assert!((1440.0..=2160.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let s = RetrySchedule::new(vec![5], 0.0);
        let d = |ra| s.delay_with_retry_after(1, 0.5, ra);
        assert_eq!(d(None), Some(Duration::from_secs(5)));
        assert_eq!(
            d(Some(Duration::from_secs(1))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            d(Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(d(Some(Duration::from_secs(1 << 40))), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("31536000", now),
            Some(MAX_RETRY_AFTER),
            "a year is capped"
        );
    }

    #[test]
    fn answers_are_classified_as_designed() {
        assert_eq!(classify_status(204, None, None, ""), Verdict::Delivered);
        assert_eq!(classify_status(401, None, None, ""), Verdict::Unauthorized);
        assert!(matches!(
            classify_status(410, None, None, ""),
            Verdict::Gone { .. }
        ));
        for s in [429, 502, 503, 504, 500] {
            assert!(
                matches!(classify_status(s, None, None, ""), Verdict::Retry { .. }),
                "{s}"
            );
        }
        let Verdict::Fail { diagnosis } = classify_status(302, None, Some("https://x/y"), "")
        else {
            panic!("3xx must fail")
        };
        assert_eq!(diagnosis.code, "redirect_refused");
        assert!(diagnosis.cause.contains("https://x/y"));
        let body = r#"[{"message":"Could not find a match for URL /x","errorCode":"NOT_FOUND"}]"#;
        let Verdict::Fail { diagnosis } = classify_status(404, None, None, body) else {
            panic!("404 must fail")
        };
        assert_eq!(diagnosis.code, "apex_class_not_found");
        assert!(diagnosis.cause.contains("namespace"), "{diagnosis:?}");
        assert!(matches!(
            classify_status(400, None, None, ""),
            Verdict::Fail { .. }
        ));
        assert!(matches!(
            classify_transport(TransportFailure::Timeout),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify_transport(TransportFailure::AddressRefused),
            Verdict::Fail { .. }
        ));
    }

    /// A retried answer is diagnosed as one that may pass, a failed one as one that will not:
    /// what the attempt says agrees with what became of the delivery.
    #[test]
    fn the_diagnosis_agrees_with_the_verdict() {
        use crate::diagnosis::FailureClass;
        let bodies = [
            "",
            r#"[{"errorCode":"NOT_FOUND","message":"m"}]"#,
            r#"[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"m"}]"#,
            r#"[{"errorCode":"JSON_PARSER_ERROR","message":"m"}]"#,
            r#"[{"errorCode":"INVALID_SESSION_ID","message":"m"}]"#,
        ];
        for status in 300..600 {
            for body in bodies {
                match classify_status(status, None, None, body) {
                    Verdict::Retry { diagnosis, .. } => {
                        assert_eq!(diagnosis.class, FailureClass::Transient, "{status} {body}")
                    }
                    Verdict::Fail { diagnosis } | Verdict::Gone { diagnosis } => {
                        assert_eq!(diagnosis.class, FailureClass::Permanent, "{status} {body}")
                    }
                    Verdict::Delivered | Verdict::Unauthorized => {}
                }
            }
        }
    }
}
