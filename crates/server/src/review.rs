//! The governance review (DESIGN.md, "Telling the owner"; seed 002: a callback is a machine
//! identity with an owner, a minimal scope and a validated endpoint): each connector's checks,
//! as pure functions of the connector, its token state, its deliveries and the time, so every
//! level can be tested without a server. `api::review` reads the facts and serves them; the
//! live endpoint probe (`probe`) is the connector test's and is added there.

use hookwarden_core::clock::rfc3339;
use hookwarden_core::destination::{
    check_url_in_key_org, is_my_domain, same_origin, url_not_in_org,
};
use hookwarden_core::{ConnectorKind, ConnectorStatus, Flow, Problem};
use hookwarden_store::{ConnectorRecord, DeliveryTrack, TokenState};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Governance;

const DAY_MS: i64 = 86_400_000;

/// How much a check's finding matters: `fail` makes the connector (and the review) not ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One check of one connector. A check that does not apply is `ok` and says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Check {
    /// `owner`, `scope`, `host`, `url_in_org`, `secret_age`, `refresh_token_idle`,
    /// `last_grant`, `last_delivery`, `status`, `signing_secret_age`, and with `?probe=true`
    /// `probe`.
    pub name: String,
    pub level: Level,
    pub detail: String,
    /// What to do; `null` when there is nothing to do.
    pub fix: Option<String>,
}

impl Check {
    pub fn new(name: &str, level: Level, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            level,
            detail: detail.into(),
            fix,
        }
    }

    fn ok(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Level::Ok, detail, None)
    }

    fn not_applicable(name: &str, why: &str) -> Self {
        Self::ok(name, format!("does not apply: {why}"))
    }
}

/// What the checks look at. `token` is the stored token state (none before the first grant).
pub struct Facts<'a> {
    pub connector: &'a ConnectorRecord,
    pub token: Option<&'a TokenState>,
    pub deliveries: &'a DeliveryTrack,
    /// Now, by the server's clock (ms).
    pub now: i64,
}

impl Facts<'_> {
    /// The token state of the connector's current credentials (an older one says nothing of
    /// them).
    fn current_token(&self) -> Option<&TokenState> {
        self.token
            .filter(|t| t.credentials_version == self.connector.credentials_version)
    }

    fn is_salesforce_client_credentials(&self) -> bool {
        self.connector.credentials.kind() == Some(ConnectorKind::Salesforce)
            && self.connector.credentials.flow() == Some(Flow::ClientCredentials)
    }

    fn path(&self) -> String {
        format!("/api/callback/connectors/{}", self.connector.name)
    }
}

/// Every check of one connector but the probe, in the order of DESIGN.md.
pub fn review(f: &Facts<'_>, g: &Governance) -> Vec<Check> {
    vec![
        owner(f),
        scope(f),
        host(f),
        url_in_org(f),
        secret_age(f, g),
        refresh_token_idle(f, g),
        last_grant(f),
        last_delivery(f),
        status(f),
        signing_secret_age(f, g),
    ]
}

/// A connector is ok when none of its checks fails (warnings are for a person to look at).
pub fn passes(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.level != Level::Fail)
}

fn day(ms: i64) -> String {
    rfc3339(ms).chars().take(10).collect()
}

fn days(ms: i64) -> i64 {
    ms.max(0) / DAY_MS
}

fn owner(f: &Facts<'_>) -> Check {
    match &f.connector.owner {
        Some(owner) => Check::ok("owner", format!("owned by {owner}")),
        None => Check::new(
            "owner",
            Level::Warn,
            "no owner: nobody is named to answer for this machine identity when its credentials break",
            Some(format!(
                "name the team or person responsible: PATCH {} {{\"owner\": \"integration-team@example.com\"}}",
                f.path()
            )),
        ),
    }
}

/// Seed 001: a client-credentials connector's connected app needs `api` and nothing more.
fn scope(f: &Facts<'_>) -> Check {
    const NAME: &str = "scope";
    if !f.is_salesforce_client_credentials() {
        return Check::not_applicable(
            NAME,
            "only a Salesforce client-credentials connector is held to the `api` scope alone",
        );
    }
    let asked = f
        .connector
        .credentials
        .key()
        .ok()
        .and_then(|k| k.scope.clone());
    let granted = f.current_token().and_then(|t| t.scope.clone());
    let beyond = |scopes: &str| -> Vec<String> {
        scopes
            .split_whitespace()
            .filter(|s| *s != "api")
            .map(str::to_owned)
            .collect()
    };
    for (whose, scopes) in [("the key asks for", &asked), ("the org granted", &granted)] {
        let Some(scopes) = scopes else { continue };
        let extra = beyond(scopes);
        let has_api = scopes.split_whitespace().any(|s| s == "api");
        if !extra.is_empty() || !has_api {
            let what = if has_api {
                format!("{} beyond `api`", extra.join(", "))
            } else {
                "without `api`".to_owned()
            };
            return Check::new(
                NAME,
                Level::Fail,
                format!("{whose} the scope \"{scopes}\": {what}; a callback needs `api` only"),
                Some(format!(
                    "give the connected app the OAuth scope \"Manage user data via APIs (api)\" alone, and the key \"scope\": \"api\" (PATCH {} {{\"key\": ...}})",
                    f.path()
                )),
            );
        }
    }
    match (asked, granted) {
        (_, Some(granted)) => Check::ok(NAME, format!("the org granted \"{granted}\"")),
        (Some(asked), None) => Check::ok(
            NAME,
            format!("the key asks for \"{asked}\"; what the org grants is checked after the first grant"),
        ),
        (None, None) => Check::ok(
            NAME,
            "the key asks for no scope and no grant was made yet: checked after the first grant",
        ),
    }
}

/// Seed 001: the client credentials flow works against the org's My Domain only.
fn host(f: &Facts<'_>) -> Check {
    const NAME: &str = "host";
    if !f.is_salesforce_client_credentials() {
        return Check::not_applicable(
            NAME,
            "only a Salesforce client-credentials connector must name its org's My Domain",
        );
    }
    let host = f
        .connector
        .credentials
        .key()
        .ok()
        .and_then(|k| k.host.clone());
    match host {
        Some(h) if is_my_domain(&h) => Check::ok(NAME, format!("{h} is a My Domain")),
        other => Check::new(
            NAME,
            Level::Fail,
            format!(
                "{} is not a My Domain (<name>.my.salesforce.com): Salesforce grants client credentials only there",
                other.as_deref().unwrap_or("the key names no host, which")
            ),
            Some(format!(
                "give the key the org's My Domain as host (Setup → My Domain), e.g. \"host\": \"acme.my.salesforce.com\" (PATCH {} {{\"key\": ...}})",
                f.path()
            )),
        ),
    }
}

/// A Salesforce token goes only to the org that issued it: the url on the `instance_url` of
/// the last grant, or on the key's My Domain before any grant.
fn url_in_org(f: &Facts<'_>) -> Check {
    const NAME: &str = "url_in_org";
    let c = f.connector;
    let Ok((kind, key)) = c.credentials.oauth() else {
        return Check::not_applicable(NAME, "the connector holds no OAuth credentials");
    };
    if kind != ConnectorKind::Salesforce {
        return Check::not_applicable(
            NAME,
            "only Salesforce tokens name the org that issued them (instance_url)",
        );
    }
    let fix = || {
        Some(format!(
            "{} (PATCH {} {{\"url\": ...}})",
            hookwarden_core::diagnosis::Code::UrlNotInOrg.fix(),
            f.path()
        ))
    };
    if let Some(org) = f.current_token().and_then(|t| t.instance_url.clone()) {
        if same_origin(&c.url, &org) {
            return Check::ok(NAME, "the url is on the org's instance_url");
        }
        return Check::new(NAME, Level::Fail, url_not_in_org(&c.url, &org).cause, fix());
    }
    match check_url_in_key_org(&c.url, key, kind) {
        Err(e) => Check::new(NAME, Level::Fail, e.message(), Some(e.fix())),
        Ok(()) if key.host.as_deref().is_some_and(is_my_domain) => Check::ok(
            NAME,
            "the url is on the key's My Domain; each grant checks it again",
        ),
        Ok(()) => Check::ok(
            NAME,
            "not known yet: no grant has named the org (instance_url); the first grant checks it",
        ),
    }
}

fn age_check(
    name: &str,
    what: &str,
    changed_at: i64,
    f: &Facts<'_>,
    g: &Governance,
    fix: String,
) -> Check {
    let age = days(f.now - changed_at);
    let max = g.secret_max_age_days;
    if max == 0 {
        return Check::ok(
            name,
            format!(
                "{what} since {} ({age} days); no maximum age is set (secret_max_age_days 0)",
                day(changed_at)
            ),
        );
    }
    if f.now - changed_at > i64::from(max) * DAY_MS {
        return Check::new(
            name,
            Level::Warn,
            format!(
                "{what} since {} ({age} days), longer than secret_max_age_days ({max})",
                day(changed_at)
            ),
            Some(fix),
        );
    }
    Check::ok(
        name,
        format!(
            "{what} since {} ({age} days; at most {max})",
            day(changed_at)
        ),
    )
}

fn secret_age(f: &Facts<'_>, g: &Governance) -> Check {
    let c = f.connector;
    let fix = match c.credentials.flow() {
        Some(Flow::RefreshToken) => format!(
            "re-authorize for a new refresh token: GET {}/oauth/url (or PATCH {} {{\"key\": ...}} with a new one)",
            f.path(),
            f.path()
        ),
        Some(Flow::ClientCredentials) => format!(
            "make a new consumer secret in the connected app, then PATCH {} {{\"key\": ...}} with it",
            f.path()
        ),
        None => return Check::not_applicable("secret_age", "the connector holds no OAuth credentials"),
    };
    age_check(
        "secret_age",
        "the same credentials",
        c.credentials_changed_at,
        f,
        g,
        fix,
    )
}

fn signing_secret_age(f: &Facts<'_>, g: &Governance) -> Check {
    age_check(
        "signing_secret_age",
        "the same signing secret",
        f.connector.signing_secret_changed_at,
        f,
        g,
        format!(
            "POST {}/signing-secret/rotate: the old secret keeps signing beside the new one for 24 h while the receiver takes the new one",
            f.path()
        ),
    )
}

/// An org may expire a refresh token that was not used for N days (`refresh_token_idle_days`);
/// the keep-alive uses it every `keepalive_days`.
fn refresh_token_idle(f: &Facts<'_>, g: &Governance) -> Check {
    const NAME: &str = "refresh_token_idle";
    let c = f.connector;
    if c.credentials.flow() != Some(Flow::RefreshToken) {
        return Check::not_applicable(NAME, "the connector holds no refresh token");
    }
    let keepalive = match g.keepalive_days {
        0 => "the keep-alive is off (keepalive_days 0)".to_owned(),
        k => format!("the keep-alive refreshes it after {k} days without a grant"),
    };
    // Used by the last grant, or issued with the credentials, whichever came last.
    let last_used = f
        .token
        .and_then(|t| t.last_grant_at)
        .map_or(c.credentials_changed_at, |t| {
            t.max(c.credentials_changed_at)
        });
    let idle = days(f.now - last_used);
    let Some(policy) = c.refresh_token_idle_days else {
        return Check::ok(
            NAME,
            format!(
                "last used {} ({idle} days ago); no idle policy given (refresh_token_idle_days); {keepalive}",
                day(last_used)
            ),
        );
    };
    if f.now - last_used >= i64::from(policy) * DAY_MS {
        return Check::new(
            NAME,
            Level::Warn,
            format!(
                "unused since {} ({idle} days); the org expires refresh tokens unused for {policy} days, so it may be expired already",
                day(last_used)
            ),
            Some(format!(
                "test it (POST {path}/test); if the grant is refused, re-authorize (GET {path}/oauth/url)",
                path = f.path()
            )),
        );
    }
    if g.keepalive_days == 0 || g.keepalive_days >= policy {
        return Check::new(
            NAME,
            Level::Warn,
            format!(
                "last used {} ({idle} days ago); the org expires it after {policy} days unused, and {keepalive}, which is not sooner",
                day(last_used)
            ),
            Some(format!(
                "set the server's keepalive_days below {policy} (HOOKWARDEN_KEEPALIVE_DAYS)"
            )),
        );
    }
    Check::ok(
        NAME,
        format!(
            "last used {} ({idle} days ago); the org expires it after {policy} days unused; {keepalive}",
            day(last_used)
        ),
    )
}

fn last_grant(f: &Facts<'_>) -> Check {
    const NAME: &str = "last_grant";
    let Some(t) = f.token else {
        return Check::ok(NAME, "no grant yet");
    };
    let last_ok = t
        .last_grant_at
        .map_or_else(|| "none yet".to_owned(), rfc3339);
    if t.consecutive_failures > 0 {
        return Check::new(
            NAME,
            Level::Warn,
            format!(
                "{} grant(s) failed since the last one that worked ({last_ok}): {}",
                t.consecutive_failures,
                t.last_error.as_deref().unwrap_or("no error recorded")
            ),
            Some(format!(
                "read the failures' diagnosis in the history (GET {}/history) and fix what it names",
                f.path()
            )),
        );
    }
    match t.last_grant_at {
        Some(at) => Check::ok(NAME, format!("the last grant worked ({})", rfc3339(at))),
        None => Check::ok(NAME, "no grant yet"),
    }
}

fn last_delivery(f: &Facts<'_>) -> Check {
    const NAME: &str = "last_delivery";
    let d = f.deliveries;
    let last = d
        .last_delivered_at
        .map_or_else(|| "none yet".to_owned(), rfc3339);
    if d.failed_since > 0 || d.retrying > 0 {
        return Check::new(
            NAME,
            Level::Warn,
            format!(
                "{} deliveries failed since the last one delivered ({last}), {} waiting to be retried after a failed attempt",
                d.failed_since, d.retrying
            ),
            Some(format!(
                "see why in their attempts (GET /api/deliveries?connector={}&status=failed), fix it, then replay them (POST {}/replay)",
                f.connector.name,
                f.path()
            )),
        );
    }
    match d.last_delivered_at {
        Some(at) => Check::ok(NAME, format!("the last delivery worked ({})", rfc3339(at))),
        None => Check::ok(NAME, "nothing delivered yet, and nothing failed"),
    }
}

fn status(f: &Facts<'_>) -> Check {
    let c = f.connector;
    if c.status == ConnectorStatus::Active {
        return Check::ok("status", "active");
    }
    let d = c.diagnosis();
    Check::new(
        "status",
        Level::Fail,
        match &d {
            Some(d) => format!("{}: {}", c.status.as_str(), d.cause),
            None => c.status.as_str().to_owned(),
        },
        d.map(|d| d.fix)
            .or_else(|| c.status.fix().map(str::to_owned)),
    )
}

#[cfg(test)]
mod tests;
