//! Registration input becomes checked values here; handlers only combine them.

use std::collections::BTreeMap;

use hookwarden_core::event::{EventName, ONESPAN_EVENTS};
use hookwarden_core::url_rules::check_endpoint;
use hookwarden_core::{CallbackUrl, ConnectorKind, Key, ParsedKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::Settings;
use crate::error::ApiError;

const MAX_EVENTS: usize = 100;
const MAX_ORIGINS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Deliveries go out as soon as they are due, in parallel.
    #[default]
    None,
    /// Deliveries of one `packageId` to this connector go strictly in order.
    PerPackage,
}

/// Retry schedule: the delays before each retry, with ± jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Seconds to wait before each retry, e.g. `[5, 300, 1800]`.
    pub schedule_s: Vec<u64>,
    /// Relative jitter, 0.0 to 1.0 (default 0.2 = ±20 %).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

fn default_jitter() -> f64 {
    0.2
}

/// Delivery settings kept beside a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeliverySettings {
    #[serde(default)]
    pub ordering: Ordering,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_second: Option<f64>,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// What the key parser warned about, kept so a PATCH that leaves the key alone keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_warnings: Vec<String>,
    /// The key was given with wrapped lines (`base64` without `-w 0`); the connector test
    /// names it, as a likely cause of a key that does not work.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_line_wrapped: bool,
}

pub fn default_concurrency() -> u32 {
    8
}

fn field_error(field: &str, code: &str, message: String, fix: &str) -> ApiError {
    ApiError::bad_request(code, format!("{field}: {message}"), fix)
}

pub fn url(
    raw: &str,
    kind: ConnectorKind,
    settings: &Settings,
) -> Result<(String, Vec<String>), ApiError> {
    let (url, warnings) = CallbackUrl::parse(
        raw,
        kind,
        settings.allow_insecure_http,
        &settings.address_policy,
    )
    .map_err(|e| ApiError::from_problem(&e))?;
    Ok((url.as_str().to_owned(), warnings))
}

pub fn events(raw: Vec<String>) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let mut warnings = Vec::new();
    if raw.len() > MAX_EVENTS {
        return Err(field_error(
            "events",
            "too_many_events",
            format!(
                "{} names given, at most {MAX_EVENTS} are allowed",
                raw.len()
            ),
            "list only the events this destination needs",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let name = EventName::parse(&name).map_err(|e| {
            // A connector lists names; say which list the bad one is in.
            ApiError::bad_request(e.code, format!("events: {}", e.message), e.fix)
        })?;
        if !out.iter().any(|n| n == name.as_str()) {
            out.push(name.as_str().to_owned());
        }
    }
    if out.is_empty() {
        warnings.push(
            "events is empty: this destination receives nothing until you list the events it wants"
                .to_owned(),
        );
    }
    for name in &out {
        if !ONESPAN_EVENTS.contains(&name.as_str()) {
            warnings.push(format!(
                "event {name} is not one of OneSpan Sign's events; it is kept as a custom event"
            ));
        }
    }
    Ok((out, warnings))
}

pub fn origins(raw: Option<Vec<String>>, kind: ConnectorKind) -> Result<Vec<String>, ApiError> {
    let Some(raw) = raw else {
        return Ok(kind.default_origins());
    };
    if raw.is_empty() || raw.len() > MAX_ORIGINS {
        return Err(field_error(
            "origins",
            "invalid_origins",
            format!("{} origins given; give 1 to {MAX_ORIGINS}", raw.len()),
            "list the origins whose events this connector takes, e.g. [\"OSS\"], or [\"*\"] for any",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for origin in raw {
        let trimmed = origin.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(field_error(
                "origins",
                "invalid_origins",
                "an origin must be 1 to 64 characters".to_owned(),
                "use names such as \"OSS\", or \"*\" for any origin",
            ));
        }
        if !out.iter().any(|o| o == trimmed) {
            out.push(trimmed.to_owned());
        }
    }
    Ok(out)
}

pub fn owner(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(owner) if owner.len() > 256 => Err(field_error(
            "owner",
            "invalid_owner",
            "longer than 256 characters".to_owned(),
            "use a shorter owner name or email",
        )),
        Some(owner) if owner.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// The longest idle policy accepted: ten years, more than any org allows.
const MAX_REFRESH_TOKEN_IDLE_DAYS: u32 = 3650;

/// The org's "expire refresh token if not used for N days" policy: 1 to 3650 days, 0 for none.
pub fn refresh_token_idle_days(raw: Option<u32>) -> Result<Option<u32>, ApiError> {
    match raw {
        Some(days) if days > MAX_REFRESH_TOKEN_IDLE_DAYS => Err(field_error(
            "refresh_token_idle_days",
            "invalid_refresh_token_idle_days",
            format!("{days} days; at most {MAX_REFRESH_TOKEN_IDLE_DAYS}"),
            "give the number of days of the org's \"expire refresh token if not used for\" policy, or 0 for none",
        )),
        Some(0) | None => Ok(None),
        days => Ok(days),
    }
}

pub fn retry(raw: &RetryPolicy) -> Result<(), ApiError> {
    if raw.schedule_s.is_empty() || raw.schedule_s.len() > 50 {
        return Err(field_error(
            "retry.schedule_s",
            "invalid_retry",
            format!("{} delays given; give 1 to 50", raw.schedule_s.len()),
            "e.g. {\"schedule_s\": [5, 300, 1800, 7200], \"jitter\": 0.2}",
        ));
    }
    if let Some(bad) = raw.schedule_s.iter().find(|&&s| s > 7 * 24 * 3600) {
        return Err(field_error(
            "retry.schedule_s",
            "invalid_retry",
            format!("{bad} s is longer than 7 days"),
            "keep each delay at or under 604800 seconds",
        ));
    }
    if !(0.0..=1.0).contains(&raw.jitter) {
        return Err(field_error(
            "retry.jitter",
            "invalid_retry",
            format!("{} is outside 0.0 to 1.0", raw.jitter),
            "use a fraction such as 0.2 (±20 %)",
        ));
    }
    Ok(())
}

pub fn max_per_second(raw: Option<f64>) -> Result<Option<f64>, ApiError> {
    match raw {
        // At least one delivery in 1000 s: the limiter's interval must stay representable.
        Some(r) if !(0.001..=100_000.0).contains(&r) => Err(field_error(
            "max_per_second",
            "invalid_rate",
            format!("{r} is not between 0.001 and 100000"),
            "give the most deliveries per second this destination accepts, or leave it out",
        )),
        other => Ok(other),
    }
}

pub fn max_concurrency(raw: Option<u32>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default_concurrency()),
        Some(n) if (1..=256).contains(&n) => Ok(n),
        Some(n) => Err(field_error(
            "max_concurrency",
            "invalid_concurrency",
            format!("{n} is not between 1 and 256"),
            "give how many deliveries may be in flight to this destination at once (default 8)",
        )),
    }
}

/// Decode and check a key, and check every endpoint it leads to against the network rules.
pub fn key(raw: &str, kind: ConnectorKind, settings: &Settings) -> Result<ParsedKey, ApiError> {
    let parsed = Key::parse(raw, kind).map_err(|e| ApiError::from_problem(&e))?;
    check_key_endpoints(&parsed.key, kind, settings)?;
    Ok(parsed)
}

pub fn check_key_endpoints(
    key: &Key,
    kind: ConnectorKind,
    settings: &Settings,
) -> Result<(), ApiError> {
    let endpoints = key.endpoints(kind);
    let fields = [
        ("key.token_url", Some(&endpoints.token_url)),
        ("key.revocation_url", endpoints.revocation_url.as_ref()),
        (
            "key.introspection_url",
            endpoints.introspection_url.as_ref(),
        ),
        (
            "key.authorization_url",
            endpoints.authorization_url.as_ref(),
        ),
        ("key.refresh_hook", key.refresh_hook.as_ref()),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            check_endpoint(
                value,
                field,
                settings.allow_insecure_http,
                &settings.address_policy,
            )
            .map_err(|e| ApiError::from_problem(&e))?;
        }
    }
    Ok(())
}

/// Fields a request carried that this endpoint does not know: ignored, and said so.
pub fn unknown_fields(extra: &BTreeMap<String, serde_json::Value>) -> Vec<String> {
    extra
        .keys()
        .map(|k| format!("unknown field {k:?} was ignored"))
        .collect()
}
