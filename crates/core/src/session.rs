//! The session policy (DESIGN.md "Expiry"): how long a new access token lives and when it is
//! refreshed, as plain arithmetic on milliseconds. Introspection, which can tell the real
//! lifetime, is IO and stays in the token manager; it hands its answer in here.

use crate::{ConnectorKind, SessionMode};

/// Salesforce's default session timeout (DESIGN.md "Expiry").
pub const SALESFORCE_SESSION_S: i64 = 7200;
/// Other providers normally send `expires_in`; when they do not, assume an hour.
pub const GENERIC_SESSION_S: i64 = 3600;
/// Refresh when less than min(this, 10 % of the lifetime) remains.
pub const MAX_REFRESH_MARGIN_MS: i64 = 60_000;
/// A provider `issued_at` further in the past than this is not trusted as the token's age.
pub const MAX_ISSUED_AT_AGE_MS: i64 = 24 * 3600 * 1000;
/// An `issued_at` below this (early 1973 in ms, year 5138 in s) is read as seconds.
const ISSUED_AT_SECONDS_BELOW: i64 = 100_000_000_000;

/// The session timeout assumed when the provider does not say: the key's `session_timeout_s`,
/// else Salesforce's default for Salesforce connectors, else an hour.
pub fn session_timeout_s(configured: Option<u64>, kind: ConnectorKind) -> i64 {
    match configured {
        Some(s) => i64::try_from(s).unwrap_or(SALESFORCE_SESSION_S),
        None if kind == ConnectorKind::Salesforce => SALESFORCE_SESSION_S,
        None => GENERIC_SESSION_S,
    }
}

/// A provider's `issued_at` in milliseconds since the epoch. Salesforce sends milliseconds; a
/// provider sending seconds is read as seconds.
pub fn issued_at_ms(raw: i64) -> i64 {
    if raw < ISSUED_AT_SECONDS_BELOW {
        raw.saturating_mul(1000)
    } else {
        raw
    }
}

/// When the token was issued: Salesforce's `issued_at` (ms) when plausible, else now.
pub fn token_base_ms(issued_at_ms: Option<i64>, now_ms: i64) -> i64 {
    issued_at_ms
        .filter(|t| *t <= now_ms && now_ms.saturating_sub(*t) < MAX_ISSUED_AT_AGE_MS)
        .unwrap_or(now_ms)
}

/// How long before expiry a token is refreshed: min(60 s, 10 % of its lifetime).
pub fn refresh_margin_ms(lifetime_ms: i64) -> i64 {
    (lifetime_ms / 10).min(MAX_REFRESH_MARGIN_MS)
}

/// Expiry, and the proactive refresh time: min(60 s, 10 % of the lifetime) before it.
pub fn expiry_times(base_ms: i64, lifetime_s: i64) -> (Option<i64>, Option<i64>) {
    let lifetime_ms = lifetime_s.max(1).saturating_mul(1000);
    let expires_at = base_ms.saturating_add(lifetime_ms);
    let margin = refresh_margin_ms(lifetime_ms);
    (Some(expires_at), Some(expires_at.saturating_sub(margin)))
}

/// Expiry and proactive refresh time (ms) of a token issued at `base_ms`, by session mode.
/// `none` is never refreshed by itself (it expires when the provider's `expires_in` says);
/// `fixed` lives the session timeout; `auto` lives `expires_in`, else what introspection
/// found (`introspected_s`), else the session timeout.
pub fn expiry(
    mode: SessionMode,
    base_ms: i64,
    expires_in_s: Option<i64>,
    introspected_s: Option<i64>,
    session_timeout_s: i64,
) -> (Option<i64>, Option<i64>) {
    let lifetime_s = match mode {
        SessionMode::None => {
            let expires = expires_in_s.map(|s| base_ms.saturating_add(s.saturating_mul(1000)));
            return (expires, None);
        }
        SessionMode::Fixed => session_timeout_s,
        SessionMode::Auto => expires_in_s.or(introspected_s).unwrap_or(session_timeout_s),
    };
    expiry_times(base_ms, lifetime_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn the_session_timeout_is_the_keys_else_the_providers_default() {
        assert_eq!(session_timeout_s(Some(300), ConnectorKind::Generic), 300);
        assert_eq!(session_timeout_s(None, ConnectorKind::Salesforce), 7200);
        assert_eq!(session_timeout_s(None, ConnectorKind::Generic), 3600);
        // Out of range for i64: Salesforce's default rather than a negative lifetime.
        assert_eq!(
            session_timeout_s(Some(u64::MAX), ConnectorKind::Generic),
            7200
        );
    }

    #[test]
    fn issued_at_in_seconds_is_read_as_seconds() {
        assert_eq!(issued_at_ms(1_700_000_000_123), 1_700_000_000_123);
        assert_eq!(issued_at_ms(1_700_000_000), 1_700_000_000_000);
    }

    #[test]
    fn issued_at_is_the_base_only_when_plausible() {
        assert_eq!(token_base_ms(Some(NOW - 5_000), NOW), NOW - 5_000);
        assert_eq!(token_base_ms(Some(NOW), NOW), NOW);
        assert_eq!(token_base_ms(Some(NOW + 1), NOW), NOW, "from the future");
        let day = MAX_ISSUED_AT_AGE_MS;
        assert_eq!(token_base_ms(Some(NOW - day), NOW), NOW, "a day old");
        assert_eq!(token_base_ms(Some(NOW - day + 1), NOW), NOW - day + 1);
        assert_eq!(token_base_ms(None, NOW), NOW);
    }

    #[test]
    fn refresh_comes_min_60_s_or_10_percent_before_expiry() {
        // 1 s: 100 ms before.
        assert_eq!(expiry_times(NOW, 1), (Some(NOW + 1_000), Some(NOW + 900)));
        // 300 s: 10 % is 30 s, less than 60 s.
        assert_eq!(
            expiry_times(NOW, 300),
            (Some(NOW + 300_000), Some(NOW + 270_000))
        );
        // 600 s: both rules agree on 60 s.
        assert_eq!(refresh_margin_ms(600_000), 60_000);
        // Two hours: 60 s, not 12 minutes.
        assert_eq!(
            expiry_times(NOW, 7200),
            (Some(NOW + 7_200_000), Some(NOW + 7_140_000))
        );
    }

    #[test]
    fn a_lifetime_under_a_second_counts_as_one() {
        assert_eq!(expiry_times(NOW, 0), expiry_times(NOW, 1));
        assert_eq!(expiry_times(NOW, -5), expiry_times(NOW, 1));
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        let (expires, refresh) = expiry_times(i64::MAX - 10, i64::MAX);
        assert_eq!(expires, Some(i64::MAX));
        assert_eq!(refresh, Some(i64::MAX - MAX_REFRESH_MARGIN_MS));
    }

    #[test]
    fn session_none_expires_only_when_the_provider_says_and_never_refreshes() {
        assert_eq!(
            expiry(SessionMode::None, NOW, Some(60), Some(30), 7200),
            (Some(NOW + 60_000), None)
        );
        assert_eq!(
            expiry(SessionMode::None, NOW, None, Some(30), 7200),
            (None, None)
        );
    }

    #[test]
    fn session_fixed_ignores_what_the_provider_says() {
        assert_eq!(
            expiry(SessionMode::Fixed, NOW, Some(60), Some(30), 300),
            expiry_times(NOW, 300)
        );
    }

    #[test]
    fn session_auto_takes_expires_in_then_introspection_then_the_timeout() {
        let auto = |expires_in, introspected| {
            expiry(SessionMode::Auto, NOW, expires_in, introspected, 300)
        };
        assert_eq!(auto(Some(60), Some(30)), expiry_times(NOW, 60));
        assert_eq!(auto(None, Some(30)), expiry_times(NOW, 30));
        assert_eq!(auto(None, None), expiry_times(NOW, 300));
    }
}
