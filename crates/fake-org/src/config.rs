//! The org's knobs. Everything here can be set through [`crate::FakeOrgBuilder`] before start and
//! patched at runtime (`POST /_fake/config`, deep JSON merge) by tests running in another process.
//! The README's section "The fake org" has a row for each field, with its default; a field added
//! here needs its row there (`tests/readme_fake_org.rs`).

use serde::{Deserialize, Serialize};

pub const DEFAULT_CLIENT_ID: &str = "fake-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "fake-client-secret";
/// Salesforce's default session timeout: two hours.
pub const DEFAULT_SESSION_TIMEOUT_S: u64 = 7200;
/// The `urlMapping` of OneSpan's sample `OssCallbackResource` Apex class (seed `001`).
pub const DEFAULT_APEX_PATH: &str = "OSS/callback";
/// Enough for any functional test, bounded so a benchmark of millions of callbacks cannot eat the
/// machine's memory. Counters keep counting past it.
pub const DEFAULT_CALLBACK_LOG_CAPACITY: usize = 100_000;

/// A connected app (or External Client App) registered in the org.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientApp {
    pub client_id: String,
    pub client_secret: String,
    /// Salesforce's "Require Secret for Refresh Token Flow". Off by default because OneSpan's
    /// refresh-token key carries no secret (seed `000`).
    #[serde(default)]
    pub require_secret_for_refresh: bool,
    /// "Require Proof Key for Code Exchange (PKCE)".
    #[serde(default)]
    pub require_pkce: bool,
    /// Registered callback URLs; empty accepts any `redirect_uri`.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

impl ClientApp {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            require_secret_for_refresh: false,
            require_pkce: false,
            redirect_uris: Vec::new(),
        }
    }

    pub fn require_secret_for_refresh(mut self, on: bool) -> Self {
        self.require_secret_for_refresh = on;
        self
    }

    pub fn require_pkce(mut self, on: bool) -> Self {
        self.require_pkce = on;
        self
    }

    pub fn redirect_uris<I, S>(mut self, uris: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.redirect_uris = uris.into_iter().map(Into::into).collect();
        self
    }
}

impl Default for ClientApp {
    fn default() -> Self {
        Self::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    }
}

/// Injected trouble for one endpoint (the token endpoint or the Apex endpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability (0.0..=1.0) that a request fails with `status`.
    pub error_rate: f64,
    /// Fail exactly the next N requests with `status` (checked before `error_rate`).
    pub fail_next: u32,
    /// The status a failed request gets: 429, 503, 500, or any other 4xx/5xx.
    pub status: u16,
    /// `Retry-After` seconds sent with 429 and 503.
    pub retry_after_s: Option<u64>,
    /// Added to every request, slept outside the state lock.
    pub latency_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            fail_next: 0,
            status: 503,
            retry_after_s: Some(1),
            latency_ms: 0,
        }
    }
}

impl Faults {
    /// Fail the next `n` requests with `status`.
    pub fn fail_next(n: u32, status: u16) -> Self {
        Self {
            fail_next: n,
            status,
            ..Self::default()
        }
    }

    /// Fail each request with probability `rate` with `status`.
    pub fn error_rate(rate: f64, status: u16) -> Self {
        Self {
            error_rate: rate,
            status,
            ..Self::default()
        }
    }

    /// Only add latency.
    pub fn latency_ms(ms: u64) -> Self {
        Self {
            latency_ms: ms,
            ..Self::default()
        }
    }

    pub fn with_retry_after_s(mut self, secs: Option<u64>) -> Self {
        self.retry_after_s = secs;
        self
    }

    pub fn with_latency_ms(mut self, ms: u64) -> Self {
        self.latency_ms = ms;
        self
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "{what}.error_rate must be between 0.0 and 1.0, got {}",
                self.error_rate
            ));
        }
        if !(400..=599).contains(&self.status) {
            return Err(format!(
                "{what}.status must be a 4xx or 5xx status, got {}",
                self.status
            ));
        }
        Ok(())
    }
}

/// All knobs of the org. `Default` is a healthy org with one client
/// (`fake-client-id` / `fake-client-secret`), rotation off, a Run As user, scopes
/// `api refresh_token offline_access`, and `OSS/callback` deployed without namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeOrgConfig {
    /// The org's base URL as clients should see it (`instance_url`). `None`: `http://` + the
    /// request's `Host` header, so the same org works on any address it is reached at.
    pub public_url: Option<String>,
    /// In the `id` URL of each grant (`/id/{org_id}/{user_id}`) and at the start of its access
    /// tokens.
    pub org_id: String,
    /// The user behind refresh tokens and authorization codes.
    pub user_id: String,
    /// That user's username, as introspection shows it.
    pub username: String,
    /// The client credentials flow's "Run As" user (username); `None` = not set.
    pub run_as_user: Option<String>,
    /// The Run As user's id, behind client-credentials tokens.
    pub run_as_user_id: String,
    /// Deactivated user: grants fail with `inactive_user`, existing sessions stop working.
    pub user_inactive: bool,
    /// The user's profile limits login IP ranges or hours and this caller is outside them:
    /// every grant fails with `invalid_grant` "ip restricted or invalid login hours".
    pub ip_restricted: bool,
    /// The app admits pre-authorized users only and this user is not one: refresh-token and
    /// authorization-code grants fail with `invalid_grant` "user hasn't approved this consumer".
    pub app_not_approved: bool,
    /// The user behind the token may not run the Apex classes (no Apex Class Access): Apex
    /// calls answer 403 `FORBIDDEN`.
    pub apex_class_access_denied: bool,
    /// The org (or the token's user) has no API access: Apex calls answer 403
    /// `API_DISABLED_FOR_ORG`.
    pub api_disabled: bool,
    /// The connected apps registered in the org; any other `client_id` is `invalid_client_id`.
    pub clients: Vec<ClientApp>,
    /// Scopes the connected app allows.
    pub allowed_scopes: Vec<String>,
    /// Access-token lifetime (the org's session timeout).
    pub session_timeout_s: u64,
    /// Refresh-token rotation with reuse detection.
    pub rotate_refresh_tokens: bool,
    /// Act as `login.salesforce.com` / `test.salesforce.com`: client credentials are refused.
    pub login_host: bool,
    /// Namespace prefix of the Apex classes (`ONSS` → `/services/apexrest/ONSS/OSS/callback`).
    pub namespace: Option<String>,
    /// `urlMapping`s of deployed Apex REST classes, without leading slash; a trailing `/*`
    /// matches any suffix, as in Apex.
    pub deployed_classes: Vec<String>,
    /// Injected trouble at the token endpoint.
    pub token_faults: Faults,
    /// Injected trouble at the Apex endpoint.
    pub apex_faults: Faults,
    /// Answer 401 `INVALID_SESSION_ID` to the next N Apex calls even with a valid token
    /// (a session revoked behind the caller's back).
    pub apex_invalid_session_next: u32,
    /// Once this many callbacks have been received, further Apex calls wait unanswered until
    /// it is cleared (or raised): a test can stop a sender mid-delivery at a known point.
    pub apex_hold_after: Option<u64>,
    /// Seconds added to the org's clock, to expire tokens without sleeping.
    pub clock_offset_s: i64,
    /// How many received callbacks are kept for `GET /_fake/callbacks` (oldest dropped first).
    pub callback_log_capacity: usize,
}

impl Default for FakeOrgConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            org_id: "00D000000000001EAA".into(),
            user_id: "005000000000001AAA".into(),
            username: "admin@fake-org.example".into(),
            run_as_user: Some("integration@fake-org.example".into()),
            run_as_user_id: "005000000000002AAA".into(),
            user_inactive: false,
            ip_restricted: false,
            app_not_approved: false,
            apex_class_access_denied: false,
            api_disabled: false,
            clients: vec![ClientApp::default()],
            allowed_scopes: vec![
                "api".into(),
                "refresh_token".into(),
                "offline_access".into(),
            ],
            session_timeout_s: DEFAULT_SESSION_TIMEOUT_S,
            rotate_refresh_tokens: false,
            login_host: false,
            namespace: None,
            deployed_classes: vec![DEFAULT_APEX_PATH.into()],
            token_faults: Faults::default(),
            apex_faults: Faults::default(),
            apex_invalid_session_next: 0,
            apex_hold_after: None,
            clock_offset_s: 0,
            callback_log_capacity: DEFAULT_CALLBACK_LOG_CAPACITY,
        }
    }
}

impl FakeOrgConfig {
    /// Reject what would make the org misbehave in ways no real org does.
    pub fn validate(&self) -> Result<(), String> {
        self.token_faults.validate("token_faults")?;
        self.apex_faults.validate("apex_faults")?;
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "public_url must start with http:// or https://, got {url:?}"
                ));
            }
        }
        if let Some(ns) = &self.namespace {
            if ns.is_empty() || ns.contains('/') {
                return Err(format!(
                    "namespace must be a bare prefix such as \"ONSS\", got {ns:?}"
                ));
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.client_id.is_empty() {
                return Err(format!("clients[{i}].client_id must not be empty"));
            }
        }
        Ok(())
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientApp> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// Add a client, or replace the one with the same `client_id`.
    pub fn upsert_client(&mut self, app: ClientApp) {
        match self
            .clients
            .iter_mut()
            .find(|c| c.client_id == app.client_id)
        {
            Some(existing) => *existing = app,
            None => self.clients.push(app),
        }
    }

    /// Apply a JSON patch: objects merge key by key, anything else (arrays included) replaces,
    /// and `null` sets an optional knob to none. Unknown keys and bad values are rejected and
    /// leave the config untouched.
    pub fn patched(&self, patch: serde_json::Value) -> Result<Self, String> {
        let mut doc = serde_json::to_value(self).map_err(|e| e.to_string())?;
        merge(&mut doc, patch);
        let next: Self = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        next.validate()?;
        Ok(next)
    }
}

fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
    use serde_json::Value;
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (t, p) => *t = p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_merges_nested_and_nulls_optional_knobs() {
        let c = FakeOrgConfig::default()
            .patched(json!({"token_faults": {"fail_next": 2}, "run_as_user": null}))
            .unwrap();
        assert_eq!(c.token_faults.fail_next, 2);
        assert_eq!(c.token_faults.status, 503);
        assert_eq!(c.run_as_user, None);
    }

    #[test]
    fn patch_rejects_unknown_keys_and_bad_values() {
        let base = FakeOrgConfig::default();
        assert!(base.patched(json!({"rotate_refresh_token": true})).is_err());
        assert!(base
            .patched(json!({"apex_faults": {"error_rate": 1.5}}))
            .is_err());
        assert!(base.patched(json!({"session_timeout_s": null})).is_err());
        assert!(base.patched(json!({"namespace": "a/b"})).is_err());
    }
}
