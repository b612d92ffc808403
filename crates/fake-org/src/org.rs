//! The org's state and rules: tokens, rotation families, codes, counters, received callbacks.
//! Everything here is synchronous and runs under one short-held lock; randomness and signatures
//! are computed by the handlers outside it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{ClientApp, FakeOrgConfig};
use crate::wire::{s256, Fresh, Params};

/// Salesforce authorization codes are valid for 15 minutes.
const CODE_LIFETIME_MS: i64 = 15 * 60 * 1000;
/// Expired access tokens are purged once the map reaches this size (then twice the live count),
/// so a benchmark that grants all day keeps a bounded map at amortised O(1) cost.
const ACCESS_TOKEN_PURGE_FLOOR: usize = 65_536;
/// Scopes that only make sense for user-delegated flows (seed `001`).
const DELEGATED_ONLY_SCOPES: [&str; 2] = ["refresh_token", "offline_access"];

/// Counters, readable over HTTP (`GET /_fake/stats`) and in Rust.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeOrgStats {
    /// grant type → outcome (`ok` or the OAuth `error`, or `http_503` for injected faults) → count.
    /// Unknown or missing grant types count under `unsupported`.
    pub grants: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rotated-out refresh tokens presented again (each revoked its whole family).
    pub reuse_detections: u64,
    /// outcome (`ok`, `invalid_token`) → count.
    pub revocations: BTreeMap<String, u64>,
    /// outcome (`active`, `inactive`, `invalid_client`, ...) → count.
    pub introspections: BTreeMap<String, u64>,
    /// outcome (`ok` or the error) → count.
    pub authorizations: BTreeMap<String, u64>,
    /// Callbacks accepted by the Apex endpoint (200).
    pub callbacks_received: u64,
    /// Distinct `webhook-id`s among them, to see duplicates of at-least-once delivery.
    pub unique_webhook_ids: u64,
    /// Apex calls refused: `errorCode` (`INVALID_SESSION_ID`, `NOT_FOUND`, ...) or `http_503` → count.
    pub apex_rejections: BTreeMap<String, u64>,
}

impl FakeOrgStats {
    pub fn grant_count(&self, grant_type: &str, outcome: &str) -> u64 {
        self.grants
            .get(grant_type)
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Successful grants of one type.
    pub fn grants_ok(&self, grant_type: &str) -> u64 {
        self.grant_count(grant_type, "ok")
    }

    /// All grants of one type, whatever their outcome.
    pub fn grants_total(&self, grant_type: &str) -> u64 {
        self.grants
            .get(grant_type)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    pub fn revocations_ok(&self) -> u64 {
        self.revocations.get("ok").copied().unwrap_or(0)
    }

    pub fn introspections_total(&self) -> u64 {
        self.introspections.values().sum()
    }

    pub fn apex_rejection_count(&self, code: &str) -> u64 {
        self.apex_rejections.get(code).copied().unwrap_or(0)
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// One callback the Apex endpoint accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedCallback {
    /// 1, 2, 3... in order of arrival; `GET /_fake/callbacks?since=N` returns those after N.
    pub seq: u64,
    pub received_at: DateTime<Utc>,
    /// The URL after `/services/apexrest`, e.g. `/OSS/callback`.
    pub path: String,
    /// The bearer token the call carried.
    pub access_token: String,
    /// Request headers (lower-case names, `Authorization` left out: see `access_token`).
    pub headers: BTreeMap<String, String>,
    pub webhook_id: Option<String>,
    /// The body parsed as JSON.
    pub body: serde_json::Value,
    /// The body exactly as sent: Standard Webhooks signatures are over these bytes.
    pub raw_body: String,
}

/// An OAuth error answer: `{"error","error_description"}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    const fn bad(error: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }
}

const EXPIRED_TOKEN: OAuthError = OAuthError::bad("invalid_grant", "expired access/refresh token");
const WRONG_DOMAIN: OAuthError =
    OAuthError::bad("invalid_grant", "request not supported on this domain");
const NO_RUN_AS: OAuthError =
    OAuthError::bad("invalid_grant", "no client credentials user enabled");
const NO_VALID_SCOPES: OAuthError = OAuthError::bad("invalid_grant", "no valid scopes defined");
const BAD_CLIENT_SECRET: OAuthError =
    OAuthError::bad("invalid_client", "invalid client credentials");
const UNKNOWN_CLIENT: OAuthError =
    OAuthError::bad("invalid_client_id", "client identifier invalid");
const INACTIVE_USER: OAuthError = OAuthError::bad("inactive_user", "user is inactive");
const UNSUPPORTED_GRANT: OAuthError =
    OAuthError::bad("unsupported_grant_type", "grant type not supported");
const MISSING_REFRESH_TOKEN: OAuthError =
    OAuthError::bad("invalid_request", "refresh_token must be specified");
const BAD_CODE: OAuthError = OAuthError::bad("invalid_grant", "invalid authorization code");
const EXPIRED_CODE: OAuthError = OAuthError::bad("invalid_grant", "expired authorization code");
const BAD_REDIRECT: OAuthError = OAuthError::bad(
    "redirect_uri_mismatch",
    "redirect_uri must match configuration",
);
const BAD_VERIFIER: OAuthError = OAuthError::bad("invalid_grant", "invalid code verifier");

/// Which user a token acts as.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Subject {
    User,
    RunAs,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum RefreshStatus {
    Live,
    /// Rotated out: presenting it again is reuse.
    Retired,
    Revoked,
}

/// A rotation family: one original authorization and every refresh token rotated from it.
/// Revoking the family kills all its refresh and access tokens at once.
#[derive(Debug)]
struct Family {
    client_id: String,
    scope: String,
    revoked: bool,
}

#[derive(Debug)]
struct RefreshToken {
    family: usize,
    status: RefreshStatus,
    issued_at_ms: i64,
}

#[derive(Debug)]
struct AccessToken {
    client_id: String,
    family: Option<usize>,
    subject: Subject,
    scope: String,
    issued_at_ms: i64,
    revoked: bool,
}

#[derive(Debug)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
    issued_at_ms: i64,
}

/// What a successful grant hands back to the handler, which adds `instance_url`, `id`, `signature`.
#[derive(Debug)]
pub(crate) struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub scope: String,
    pub org_id: String,
    pub user_id: String,
    pub issued_at_ms: i64,
}

/// Introspection result (`None` fields are left out of the JSON).
#[derive(Debug, Serialize)]
pub(crate) struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            scope: None,
            client_id: None,
            username: None,
            sub: None,
            token_type: None,
            exp: None,
            iat: None,
            nbf: None,
        }
    }
}

/// An authorize request that passed the checks that are answered with a page (not a redirect).
pub(crate) struct AuthorizeOutcome {
    pub redirect_uri: String,
    /// `Ok(code)` or `Err((error, description))` to put in the redirect.
    pub result: Result<String, (&'static str, &'static str)>,
}

/// What the Apex endpoint decided about a call.
pub(crate) enum ApexVerdict {
    Accepted,
    InvalidSession,
    NotFound,
}

pub(crate) struct Org {
    pub config: FakeOrgConfig,
    refresh_tokens: HashMap<String, RefreshToken>,
    access_tokens: HashMap<String, AccessToken>,
    families: Vec<Family>,
    codes: HashMap<String, AuthCode>,
    pub stats: FakeOrgStats,
    /// Digests of the webhook-ids seen (8 bytes each, not the ids: a long-running demo
    /// receives millions).
    webhook_ids: HashSet<u64>,
    callbacks: VecDeque<ReceivedCallback>,
    next_seq: u64,
    purge_access_tokens_at: usize,
}

/// Client credentials as presented: body parameters, else HTTP Basic.
struct Presented<'a> {
    id: Option<&'a str>,
    secret: Option<&'a str>,
}

fn presented<'a>(p: &'a Params, basic: Option<&'a (String, String)>) -> Presented<'a> {
    match (p.get("client_id"), basic) {
        (Some(id), _) => Presented {
            id: Some(id),
            secret: p.get("client_secret"),
        },
        (None, Some((id, secret))) => Presented {
            id: Some(id.as_str()).filter(|s| !s.is_empty()),
            secret: Some(secret.as_str()).filter(|s| !s.is_empty()),
        },
        (None, None) => Presented {
            id: None,
            secret: p.get("client_secret"),
        },
    }
}

pub(crate) fn grant_stats_key(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some("refresh_token") => "refresh_token",
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        _ => "unsupported",
    }
}

impl Org {
    pub(crate) fn new(config: FakeOrgConfig) -> Self {
        Self {
            config,
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            families: Vec::new(),
            codes: HashMap::new(),
            stats: FakeOrgStats::default(),
            webhook_ids: HashSet::new(),
            callbacks: VecDeque::new(),
            next_seq: 0,
            purge_access_tokens_at: ACCESS_TOKEN_PURGE_FLOOR,
        }
    }

    /// The org's clock, in milliseconds since the epoch (shifted by `clock_offset_s`).
    pub(crate) fn now_ms(&self) -> i64 {
        Utc::now()
            .timestamp_millis()
            .saturating_add(self.config.clock_offset_s.saturating_mul(1000))
    }

    fn client(&self, client_id: &str) -> Option<&ClientApp> {
        self.config.client(client_id)
    }

    fn user_id(&self, subject: Subject) -> &str {
        match subject {
            Subject::User => &self.config.user_id,
            Subject::RunAs => &self.config.run_as_user_id,
        }
    }

    fn username(&self, subject: Subject) -> &str {
        match subject {
            Subject::User => &self.config.username,
            Subject::RunAs => self.config.run_as_user.as_deref().unwrap_or_default(),
        }
    }

    fn access_prefix(&self) -> String {
        format!("{}!AQ", self.config.org_id)
    }

    fn new_family(&mut self, client_id: &str, scope: String) -> usize {
        self.families.push(Family {
            client_id: client_id.to_owned(),
            scope,
            revoked: false,
        });
        self.families.len() - 1
    }

    fn family_live(&self, family: usize) -> bool {
        self.families.get(family).is_some_and(|f| !f.revoked)
    }

    fn mint_refresh(&mut self, family: usize, random: &str) -> String {
        let token = format!("5Aep861{random}");
        let issued_at_ms = self.now_ms();
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                family,
                status: RefreshStatus::Live,
                issued_at_ms,
            },
        );
        token
    }

    fn mint_access(
        &mut self,
        client_id: &str,
        family: Option<usize>,
        subject: Subject,
        scope: &str,
        random: &str,
    ) -> (String, i64) {
        let token = format!("{}{random}", self.access_prefix());
        let issued_at_ms = self.now_ms();
        if self.access_tokens.len() >= self.purge_access_tokens_at {
            self.purge_expired_access_tokens(issued_at_ms);
        }
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                client_id: client_id.to_owned(),
                family,
                subject,
                scope: scope.to_owned(),
                issued_at_ms,
                revoked: false,
            },
        );
        (token, issued_at_ms)
    }

    /// A purged token answers exactly as an expired one does: 401, inactive, `invalid_token`.
    fn purge_expired_access_tokens(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .access_tokens
            .keys()
            .filter(|t| !self.access_live(t, now_ms))
            .cloned()
            .collect();
        for t in expired {
            self.access_tokens.remove(&t);
        }
        self.purge_access_tokens_at = (self.access_tokens.len() * 2).max(ACCESS_TOKEN_PURGE_FLOOR);
    }

    fn default_user_scope(&self) -> String {
        self.config.allowed_scopes.join(" ")
    }

    /// A refresh token for `client_id` as if the user had authorized the app in a browser.
    /// The client need not exist (a token for a since-deleted app is a useful test case).
    pub(crate) fn issue_refresh_token(
        &mut self,
        client_id: &str,
        scope: Option<String>,
        random: &str,
    ) -> (String, String) {
        let scope = scope.unwrap_or_else(|| self.default_user_scope());
        let family = self.new_family(client_id, scope.clone());
        (self.mint_refresh(family, random), scope)
    }

    /// An access token for `client_id` acting as the user, outside any refresh family.
    pub(crate) fn issue_access_token(&mut self, client_id: &str, random: &str) -> String {
        let scope = self.default_user_scope();
        self.mint_access(client_id, None, Subject::User, &scope, random)
            .0
    }

    /// Kill every token the org has issued (an admin revoking all sessions).
    pub(crate) fn revoke_all(&mut self) {
        for f in &mut self.families {
            f.revoked = true;
        }
        for at in self.access_tokens.values_mut() {
            at.revoked = true;
        }
        for rt in self.refresh_tokens.values_mut() {
            rt.status = RefreshStatus::Revoked;
        }
    }

    fn revoke_family(&mut self, family: usize) {
        if let Some(f) = self.families.get_mut(family) {
            f.revoked = true;
        }
    }

    // ---- token endpoint ----

    pub(crate) fn grant(
        &mut self,
        params: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        let grant_type = params.get("grant_type");
        let result = match grant_type {
            Some("refresh_token") => self.grant_refresh(params, basic, fresh),
            Some("client_credentials") => self.grant_client_credentials(params, basic, fresh),
            Some("authorization_code") => self.grant_code(params, basic, fresh),
            _ => Err(UNSUPPORTED_GRANT),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.error,
        };
        self.count_grant(grant_stats_key(grant_type), outcome);
        result
    }

    pub(crate) fn count_grant(&mut self, key: &str, outcome: &str) {
        let per_type = match self.stats.grants.get_mut(key) {
            Some(m) => m,
            None => self.stats.grants.entry(key.to_owned()).or_default(),
        };
        bump(per_type, outcome);
    }

    fn grant_refresh(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        let creds = presented(p, basic);
        let client_id = creds.id.ok_or(UNKNOWN_CLIENT)?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        match creds.secret {
            Some(secret) if secret != client.client_secret => return Err(BAD_CLIENT_SECRET),
            None if client.require_secret_for_refresh => return Err(BAD_CLIENT_SECRET),
            _ => {}
        }
        let presented_token = p.get("refresh_token").ok_or(MISSING_REFRESH_TOKEN)?;
        let (family, status) = match self.refresh_tokens.get(presented_token) {
            Some(rt) => (rt.family, rt.status),
            None => return Err(EXPIRED_TOKEN),
        };
        let Some(fam) = self.families.get(family) else {
            return Err(EXPIRED_TOKEN);
        };
        if fam.client_id != client_id || fam.revoked {
            return Err(EXPIRED_TOKEN);
        }
        match status {
            RefreshStatus::Live => {}
            RefreshStatus::Revoked => return Err(EXPIRED_TOKEN),
            RefreshStatus::Retired => {
                // Someone holds a copy of a rotated-out token: assume theft and revoke the
                // whole family, as Salesforce's rotation policy does.
                self.stats.reuse_detections += 1;
                self.revoke_family(family);
                tracing::debug!(family, "refresh token reuse detected; family revoked");
                return Err(EXPIRED_TOKEN);
            }
        }
        if self.config.user_inactive {
            return Err(INACTIVE_USER);
        }
        let scope = fam.scope.clone();
        let client_id = client_id.to_owned();
        let refresh_token = if self.config.rotate_refresh_tokens {
            if let Some(old) = self.refresh_tokens.get_mut(presented_token) {
                old.status = RefreshStatus::Retired;
            }
            Some(self.mint_refresh(family, &fresh.refresh))
        } else {
            None
        };
        let (access_token, issued_at_ms) = self.mint_access(
            &client_id,
            Some(family),
            Subject::User,
            &scope,
            &fresh.access,
        );
        Ok(Granted {
            access_token,
            refresh_token,
            scope,
            org_id: self.config.org_id.clone(),
            user_id: self.config.user_id.clone(),
            issued_at_ms,
        })
    }

    fn grant_client_credentials(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        if self.config.login_host {
            return Err(WRONG_DOMAIN);
        }
        let creds = presented(p, basic);
        let client_id = creds.id.ok_or(UNKNOWN_CLIENT)?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        if creds.secret != Some(client.client_secret.as_str()) {
            return Err(BAD_CLIENT_SECRET);
        }
        if self.config.run_as_user.is_none() {
            return Err(NO_RUN_AS);
        }
        let allowed = &self.config.allowed_scopes;
        let scope: Vec<&str> = match p.get("scope") {
            Some(requested) => {
                let requested: Vec<&str> = requested.split_whitespace().collect();
                let valid = requested
                    .iter()
                    .all(|s| !DELEGATED_ONLY_SCOPES.contains(s) && allowed.iter().any(|a| a == s));
                if !valid {
                    return Err(NO_VALID_SCOPES);
                }
                requested
            }
            None => allowed
                .iter()
                .map(String::as_str)
                .filter(|s| !DELEGATED_ONLY_SCOPES.contains(s))
                .collect(),
        };
        if scope.is_empty() {
            return Err(NO_VALID_SCOPES);
        }
        let scope = scope.join(" ");
        if self.config.user_inactive {
            return Err(INACTIVE_USER);
        }
        let client_id = client_id.to_owned();
        let (access_token, issued_at_ms) =
            self.mint_access(&client_id, None, Subject::RunAs, &scope, &fresh.access);
        Ok(Granted {
            access_token,
            refresh_token: None,
            scope,
            org_id: self.config.org_id.clone(),
            user_id: self.config.run_as_user_id.clone(),
            issued_at_ms,
        })
    }

    fn grant_code(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        fresh: &Fresh,
    ) -> Result<Granted, OAuthError> {
        let creds = presented(p, basic);
        let client_id = creds.id.ok_or(UNKNOWN_CLIENT)?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        let secret_ok = creds.secret.map(|s| s == client.client_secret);
        if secret_ok == Some(false) {
            return Err(BAD_CLIENT_SECRET);
        }
        let presented_code = p.get("code").ok_or(BAD_CODE)?;
        // Codes are single use, whatever the outcome of the exchange.
        let code = self.codes.remove(presented_code).ok_or(BAD_CODE)?;
        if code.client_id != client_id {
            return Err(BAD_CODE);
        }
        if self.now_ms() - code.issued_at_ms > CODE_LIFETIME_MS {
            return Err(EXPIRED_CODE);
        }
        // A confidential client proves itself with its secret; a PKCE exchange may omit it.
        if secret_ok.is_none() && code.challenge.is_none() {
            return Err(BAD_CLIENT_SECRET);
        }
        if p.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
            return Err(BAD_REDIRECT);
        }
        if let Some(challenge) = &code.challenge {
            match p.get("code_verifier") {
                Some(v) if (43..=128).contains(&v.len()) && s256(v) == *challenge => {}
                _ => return Err(BAD_VERIFIER),
            }
        }
        if self.config.user_inactive {
            return Err(INACTIVE_USER);
        }
        let client_id = client_id.to_owned();
        let family = self.new_family(&client_id, code.scope.clone());
        let refresh_token = self.mint_refresh(family, &fresh.refresh);
        let (access_token, issued_at_ms) = self.mint_access(
            &client_id,
            Some(family),
            Subject::User,
            &code.scope,
            &fresh.access,
        );
        Ok(Granted {
            access_token,
            refresh_token: Some(refresh_token),
            scope: code.scope,
            org_id: self.config.org_id.clone(),
            user_id: self.config.user_id.clone(),
            issued_at_ms,
        })
    }

    // ---- authorize ----

    /// `Err` is answered with a 400 page (no trustworthy redirect); `Ok` always redirects.
    pub(crate) fn authorize(
        &mut self,
        p: &Params,
        code_random: &str,
    ) -> Result<AuthorizeOutcome, OAuthError> {
        let result = self.authorize_inner(p, code_random);
        let outcome = match &result {
            Ok(AuthorizeOutcome { result: Ok(_), .. }) => "ok",
            Ok(AuthorizeOutcome {
                result: Err((e, _)),
                ..
            }) => e,
            Err(e) => e.error,
        };
        bump(&mut self.stats.authorizations, outcome);
        result
    }

    fn authorize_inner(
        &mut self,
        p: &Params,
        code_random: &str,
    ) -> Result<AuthorizeOutcome, OAuthError> {
        let client_id = p.get("client_id").ok_or(UNKNOWN_CLIENT)?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        let redirect_uri = p.get("redirect_uri").ok_or(BAD_REDIRECT)?;
        let registered = client.redirect_uris.is_empty()
            || client.redirect_uris.iter().any(|u| u == redirect_uri);
        if !registered || !redirect_uri.contains(':') {
            return Err(BAD_REDIRECT);
        }
        let require_pkce = client.require_pkce;
        let redirect_uri = redirect_uri.to_owned();
        let refuse = |error, description| {
            Ok(AuthorizeOutcome {
                redirect_uri: redirect_uri.clone(),
                result: Err((error, description)),
            })
        };
        if p.get("response_type") != Some("code") {
            return refuse("unsupported_response_type", "response type not supported");
        }
        let challenge = p.get("code_challenge").map(str::to_owned);
        match (challenge.is_some(), p.get("code_challenge_method")) {
            (_, Some(m)) if m != "S256" => {
                return refuse("invalid_request", "code challenge method not supported")
            }
            (false, _) if require_pkce => {
                return refuse("invalid_request", "missing required code challenge")
            }
            _ => {}
        }
        let scope = match p.get("scope") {
            None => self.default_user_scope(),
            Some(requested) => {
                let allowed = &self.config.allowed_scopes;
                let requested: Vec<&str> = requested.split_whitespace().collect();
                if requested.is_empty() || !requested.iter().all(|s| allowed.iter().any(|a| a == s))
                {
                    return refuse("invalid_scope", "the requested scope is not allowed");
                }
                requested.join(" ")
            }
        };
        let now = self.now_ms();
        // Codes nobody exchanged would pile up in a long benchmark run; drop the stale ones.
        if self.codes.len() > 1024 {
            self.codes
                .retain(|_, c| now - c.issued_at_ms <= CODE_LIFETIME_MS);
        }
        let code = format!("aPrx{code_random}");
        self.codes.insert(
            code.clone(),
            AuthCode {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.clone(),
                challenge,
                scope,
                issued_at_ms: now,
            },
        );
        Ok(AuthorizeOutcome {
            redirect_uri,
            result: Ok(code),
        })
    }

    // ---- revoke ----

    pub(crate) fn revoke(&mut self, token: Option<&str>) -> bool {
        let done = token.is_some_and(|t| self.revoke_token(t));
        bump(
            &mut self.stats.revocations,
            if done { "ok" } else { "invalid_token" },
        );
        done
    }

    fn revoke_token(&mut self, token: &str) -> bool {
        if let Some(rt) = self.refresh_tokens.get(token) {
            let family = rt.family;
            if rt.status != RefreshStatus::Live || !self.family_live(family) {
                return false;
            }
            if let Some(rt) = self.refresh_tokens.get_mut(token) {
                rt.status = RefreshStatus::Revoked;
            }
            self.revoke_family(family);
            return true;
        }
        let now = self.now_ms();
        if !self.access_live(token, now) {
            return false;
        }
        if let Some(at) = self.access_tokens.get_mut(token) {
            at.revoked = true;
        }
        true
    }

    fn access_live(&self, token: &str, now_ms: i64) -> bool {
        let Some(at) = self.access_tokens.get(token) else {
            return false;
        };
        let lifetime_ms = i64::try_from(self.config.session_timeout_s)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        !at.revoked
            && at.family.is_none_or(|f| self.family_live(f))
            && now_ms.saturating_sub(at.issued_at_ms) < lifetime_ms
            && !self.config.user_inactive
    }

    // ---- introspect ----

    /// `Err` when the caller failed client authentication.
    pub(crate) fn introspect(
        &mut self,
        p: &Params,
        basic: Option<&(String, String)>,
        base_url: &str,
    ) -> Result<Introspection, OAuthError> {
        let result = self.introspect_inner(p, basic, base_url);
        let outcome = match &result {
            Ok(i) if i.active => "active",
            Ok(_) => "inactive",
            Err(e) => e.error,
        };
        bump(&mut self.stats.introspections, outcome);
        result
    }

    fn introspect_inner(
        &self,
        p: &Params,
        basic: Option<&(String, String)>,
        base_url: &str,
    ) -> Result<Introspection, OAuthError> {
        let unauthorized = OAuthError {
            status: StatusCode::UNAUTHORIZED,
            ..BAD_CLIENT_SECRET
        };
        let creds = presented(p, basic);
        let client_id = creds.id.ok_or(unauthorized.clone())?;
        let client = self.client(client_id).ok_or(UNKNOWN_CLIENT)?;
        if creds.secret != Some(client.client_secret.as_str()) {
            return Err(unauthorized);
        }
        let token = p.get("token").ok_or(OAuthError::bad(
            "invalid_request",
            "token must be specified",
        ))?;
        let now = self.now_ms();
        let id_url = |subject| {
            format!(
                "{base_url}/id/{}/{}",
                self.config.org_id,
                self.user_id(subject)
            )
        };
        if let Some(at) = self.access_tokens.get(token) {
            if at.client_id != client_id || !self.access_live(token, now) {
                return Ok(Introspection::inactive());
            }
            let lifetime = i64::try_from(self.config.session_timeout_s).unwrap_or(i64::MAX);
            let iat = at.issued_at_ms / 1000;
            return Ok(Introspection {
                active: true,
                scope: Some(at.scope.clone()),
                client_id: Some(at.client_id.clone()),
                username: Some(self.username(at.subject).to_owned()),
                sub: Some(id_url(at.subject)),
                token_type: Some("access_token"),
                exp: Some(iat.saturating_add(lifetime)),
                iat: Some(iat),
                nbf: Some(iat),
            });
        }
        if let Some(rt) = self.refresh_tokens.get(token) {
            let Some(fam) = self.families.get(rt.family) else {
                return Ok(Introspection::inactive());
            };
            if fam.revoked
                || rt.status != RefreshStatus::Live
                || fam.client_id != client_id
                || self.config.user_inactive
            {
                return Ok(Introspection::inactive());
            }
            let iat = rt.issued_at_ms / 1000;
            // Refresh tokens are valid until revoked under the default policy: no `exp`.
            return Ok(Introspection {
                active: true,
                scope: Some(fam.scope.clone()),
                client_id: Some(fam.client_id.clone()),
                username: Some(self.config.username.clone()),
                sub: Some(id_url(Subject::User)),
                token_type: Some("refresh_token"),
                exp: None,
                iat: Some(iat),
                nbf: Some(iat),
            });
        }
        Ok(Introspection::inactive())
    }

    // ---- Apex REST ----

    /// Decide on a call to `/services/apexrest{path}` (path with leading slash).
    pub(crate) fn apex_verdict(&mut self, token: Option<&str>, path: &str) -> ApexVerdict {
        if self.config.apex_invalid_session_next > 0 {
            self.config.apex_invalid_session_next -= 1;
            return ApexVerdict::InvalidSession;
        }
        let now = self.now_ms();
        if !token.is_some_and(|t| self.access_live(t, now)) {
            return ApexVerdict::InvalidSession;
        }
        if self.class_deployed(path) {
            ApexVerdict::Accepted
        } else {
            ApexVerdict::NotFound
        }
    }

    fn class_deployed(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let path = match &self.config.namespace {
            // A namespaced class is only reachable under its prefix.
            Some(ns) => match path
                .strip_prefix(ns.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(rest) => rest,
                None => return false,
            },
            None => path,
        };
        self.config.deployed_classes.iter().any(|mapping| {
            let mapping = mapping.trim_start_matches('/');
            match mapping.strip_suffix("/*") {
                Some(prefix) => {
                    path == prefix
                        || path
                            .strip_prefix(prefix)
                            .is_some_and(|r| r.starts_with('/'))
                }
                None => path == mapping.trim_end_matches('/'),
            }
        })
    }

    pub(crate) fn count_apex_rejection(&mut self, code: &str) {
        bump(&mut self.stats.apex_rejections, code);
    }

    pub(crate) fn record_callback(&mut self, mut cb: ReceivedCallback) {
        self.stats.callbacks_received += 1;
        if let Some(id) = &cb.webhook_id {
            if self.webhook_ids.insert(webhook_id_digest(id)) {
                self.stats.unique_webhook_ids += 1;
            }
        }
        self.next_seq += 1;
        cb.seq = self.next_seq;
        let capacity = self.config.callback_log_capacity;
        if capacity == 0 {
            return;
        }
        while self.callbacks.len() >= capacity {
            self.callbacks.pop_front();
        }
        self.callbacks.push_back(cb);
    }

    pub(crate) fn callbacks_since(&self, since: u64, limit: usize) -> Vec<ReceivedCallback> {
        // seq increases along the log, so a binary search finds the start.
        let start = self.callbacks.partition_point(|c| c.seq <= since);
        self.callbacks.range(start..).take(limit).cloned().collect()
    }

    /// Zero the counters and forget received callbacks; tokens and config stay.
    pub(crate) fn reset_stats(&mut self) {
        self.stats = FakeOrgStats::default();
        self.webhook_ids.clear();
        self.callbacks.clear();
    }
}

/// A webhook-id as the unique-id count keeps it: a 64-bit digest, with which two of a few
/// million ids collide with a probability below one in a million.
fn webhook_id_digest(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same id gives the same digest for the life of the org.
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_drops_only_dead_access_tokens() {
        let mut org = Org::new(FakeOrgConfig::default());
        org.purge_access_tokens_at = 4;
        let live = org.issue_access_token("c", "live");
        for i in 0..3 {
            let t = org.issue_access_token("c", &format!("dead{i}"));
            assert!(org.revoke(Some(&t)));
        }
        let newest = org.issue_access_token("c", "newest");
        assert_eq!(org.access_tokens.len(), 2, "three revoked tokens purged");
        let now = org.now_ms();
        assert!(org.access_live(&live, now) && org.access_live(&newest, now));
        assert_eq!(org.purge_access_tokens_at, ACCESS_TOKEN_PURGE_FLOOR);
    }

    #[test]
    fn apex_paths_match_like_url_mappings() {
        let mut org = Org::new(FakeOrgConfig::default());
        assert!(org.class_deployed("/OSS/callback"));
        assert!(org.class_deployed("/OSS/callback/"));
        assert!(!org.class_deployed("/oss/callback"));
        assert!(!org.class_deployed("/OSS/callback/extra"));
        org.config.namespace = Some("ONSS".into());
        assert!(org.class_deployed("/ONSS/OSS/callback"));
        assert!(!org.class_deployed("/OSS/callback"));
        assert!(!org.class_deployed("/ONSSOSS/callback"));
    }
}
