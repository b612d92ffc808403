//! A time on the command line (`--since`, `--until`): RFC 3339, a date, or how long ago.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// `2026-12-06T08:00:00Z` (any RFC 3339 time), `2026-12-06` (its midnight, UTC), or a
/// duration before now: `90s`, `15m`, `1h`, `2d`, `1w`. Answers RFC 3339 in UTC, as the API
/// takes it.
pub fn parse(raw: &str) -> Result<String, String> {
    parse_at(raw, Utc::now())
}

fn parse_at(raw: &str, now: DateTime<Utc>) -> Result<String, String> {
    let raw = raw.trim();
    let at = if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        t.with_timezone(&Utc)
    } else if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    } else if let Some(ago) = duration(raw) {
        now - ago
    } else {
        return Err(format!(
            "{raw:?} is not a time: give an RFC 3339 time (2026-12-06T08:00:00Z), a date \
             (2026-12-06) or how long ago (90s, 15m, 1h, 2d, 1w)"
        ));
    };
    Ok(at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn duration(raw: &str) -> Option<chrono::Duration> {
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = raw.split_at(split);
    let n: i64 = n.parse().ok().filter(|n| *n <= 100_000)?;
    Some(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "w" => chrono::Duration::weeks(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_dates_and_durations_become_rfc3339() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |raw| parse_at(raw, now);
        assert_eq!(
            at("2026-12-01T08:30:00+01:00").unwrap(),
            "2026-12-01T07:30:00Z"
        );
        assert_eq!(at("2026-12-06").unwrap(), "2026-12-06T00:00:00Z");
        assert_eq!(at("1h").unwrap(), "2026-12-06T11:00:00Z");
        assert_eq!(at("2d").unwrap(), "2026-12-04T12:00:00Z");
        assert_eq!(at("90s").unwrap(), "2026-12-06T11:58:30Z");
        assert_eq!(at("1w").unwrap(), "2026-11-29T12:00:00Z");
        for bad in ["yesterday", "1y", "h", "", "2026-13-01", "99999999d"] {
            let e = at(bad).unwrap_err();
            assert!(
                e.contains("is not a time") && e.contains("2d"),
                "{bad}: {e}"
            );
        }
    }
}
