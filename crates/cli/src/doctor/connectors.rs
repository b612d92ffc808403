//! The doctor's checks of an account on a running server (given an API key): its connectors
//! that cannot deliver, its failed deliveries, and its governance review's failing checks.

use std::time::Duration;

use hookwarden_core::ConnectorStatus;
use serde_json::Value;

use super::{Level, Report};

/// The account's connectors that cannot deliver, and its failed deliveries.
pub(super) async fn check_connectors(report: &mut Report, base: &str, api_key: &str) {
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(format!("{base}{path}"))
            .header("Authorization", format!("Basic {api_key}"))
            .timeout(Duration::from_secs(10))
            .send()
    };
    let list = match get("/api/callback/connectors".to_owned()).await {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or_default(),
        Ok(r) => {
            report.say(
                Level::Fail,
                "connectors",
                &format!("the server refused the API key ({})", r.status()),
                Some("use a key from `hookwarden accounts create` for this server's database"),
            );
            return;
        }
        Err(e) => {
            report.say(
                Level::Fail,
                "connectors",
                &format!("could not ask the server: {e}"),
                Some("check that the server runs at the listen address"),
            );
            return;
        }
    };
    let connectors = list["connectors"].as_array().cloned().unwrap_or_default();
    if connectors.is_empty() {
        report.say(
            Level::Warn,
            "connectors",
            "the account has no connectors: events are stored but go nowhere",
            Some("register one: POST /api/callback/connectors/{name}"),
        );
    }
    for c in &connectors {
        let name = c["name"].as_str().unwrap_or("?");
        let status = c["status"].as_str().unwrap_or("?");
        // The server's own advice for the status, and the CLI command that carries it out
        // (re-authentication in a browser is for refresh-token connectors only).
        let browser = c["flow"] == "refresh_token";
        let fix = match ConnectorStatus::parse(status) {
            Some(ConnectorStatus::Active) => None,
            Some(known) => Some(match known {
                ConnectorStatus::NeedsReauth => format!(
                    "{}; from the CLI, once the cause is fixed: `hookwarden connectors resume {name}`{}",
                    known.fix().unwrap_or_default(),
                    if browser {
                        format!(", or `hookwarden connectors reauth-url {name}`")
                    } else {
                        String::new()
                    }
                ),
                ConnectorStatus::Revoked if browser => format!(
                    "{}; from the CLI: `hookwarden connectors reauth-url {name}`",
                    known.fix().unwrap_or_default()
                ),
                _ => known.fix().unwrap_or_default().to_owned(),
            }),
            None => Some("look at it with `hookwarden connectors get`".to_owned()),
        };
        let level = if fix.is_some() {
            Level::Fail
        } else {
            Level::Ok
        };
        let code = c["diagnosis"]["code"]
            .as_str()
            .map(|code| format!(" [{code}]"))
            .unwrap_or_default();
        report.say(
            level,
            "connector",
            &format!("{name}: {status}{code}"),
            fix.as_deref(),
        );
    }
    check_review(report, get("/api/review".to_owned()).await).await;
    if let Ok(r) = get("/api/deliveries?status=failed&limit=1".to_owned()).await {
        let page: Value = r.json().await.unwrap_or_default();
        if let Some(d) = page["deliveries"].as_array().and_then(|a| a.first()) {
            report.say(
                Level::Warn,
                "deliveries",
                &format!(
                    "some deliveries failed, the latest {} to {}: {}",
                    d["id"].as_str().unwrap_or("?"),
                    d["connector"].as_str().unwrap_or("?"),
                    d["last_error"].as_str().unwrap_or("see its attempts")
                ),
                Some("`hookwarden deliveries list --status failed`, then `hookwarden connectors replay NAME --since ...` once the cause is fixed"),
            );
        }
    }
}

/// The governance review's findings: each failing check a `FAIL` line, each warning a `warn`
/// line, with the connector, the check, its detail and its fix (`hookwarden review` has them
/// all).
async fn check_review(report: &mut Report, answer: reqwest::Result<reqwest::Response>) {
    let review = match answer {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or_default(),
        Ok(r) => {
            report.say(
                Level::Warn,
                "review",
                &format!(
                    "the server did not give the governance review ({})",
                    r.status()
                ),
                Some(
                    "use a key with the read or admin scope, or a server that has GET /api/review",
                ),
            );
            return;
        }
        Err(e) => {
            report.say(
                Level::Warn,
                "review",
                &format!("could not ask the server for the governance review: {e}"),
                Some("run `hookwarden review` once the server answers"),
            );
            return;
        }
    };
    let (mut failures, mut warnings) = (0, 0);
    for connector in review["connectors"].as_array().into_iter().flatten() {
        let name = connector["name"].as_str().unwrap_or("?");
        for check in connector["checks"].as_array().into_iter().flatten() {
            let level = match check["level"].as_str() {
                Some("fail") => Level::Fail,
                Some("warn") => Level::Warn,
                _ => continue,
            };
            if level == Level::Fail {
                failures += 1;
            } else {
                warnings += 1;
            }
            report.say(
                level,
                "review",
                &format!(
                    "{name} {}: {}",
                    check["name"].as_str().unwrap_or("?"),
                    check["detail"].as_str().unwrap_or("")
                ),
                check["fix"].as_str(),
            );
        }
    }
    if failures + warnings == 0 {
        let n = review["connectors"].as_array().map_or(0, Vec::len);
        report.say(
            Level::Ok,
            "review",
            &format!("the governance review of {n} connector(s) found nothing"),
            None,
        );
    }
}
