//! The in-process cache: each connector's fresh access token (sharded, so readers of different
//! connectors rarely touch the same lock) and what went wrong with its grants (`Trouble`),
//! which decides whether a grant may be tried at all.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use hookwarden_core::{ConnectorId, ConnectorStatus};
use hookwarden_store::ConnectorRecord;

use super::destination::outside_org_waiting;
use super::refusal::Refusal;
use super::{AccessToken, Need};
use crate::error::{Remedy, TokenError};

/// Cache shards: readers of different connectors rarely touch the same lock.
const SHARDS: usize = 16;

struct Cached {
    token: AccessToken,
    credentials_version: i64,
    /// The connector's url the token was checked for: a Salesforce token goes only to its org
    /// (`destination`), so a url changed since is a miss and the token is checked again.
    url: String,
    /// `i64::MAX` for `session: none`.
    refresh_at: i64,
}

#[derive(Default)]
pub(super) struct Trouble {
    /// Transient failure: no grant before this time (ms).
    pub(super) backoff: Option<(i64, TokenError)>,
    /// Permanent failure on these credentials: no grant until `credentials_version` changes.
    pub(super) blocked: Option<(i64, TokenError)>,
    /// The newest token an endpoint refused (401): it, older tokens, and newer ones it rules
    /// out (`Refusal::rules_out`) are neither cached nor taken from the store.
    pub(super) refused: Option<Refusal>,
}

pub(super) struct Cache {
    hasher: RandomState,
    shards: Vec<RwLock<HashMap<ConnectorId, Arc<Cached>>>>,
    trouble: Mutex<HashMap<ConnectorId, Trouble>>,
}

impl Cache {
    pub(super) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            trouble: Mutex::default(),
        }
    }

    fn shard(&self, id: &ConnectorId) -> &RwLock<HashMap<ConnectorId, Arc<Cached>>> {
        let i = (self.hasher.hash_one(id) as usize) % SHARDS;
        &self.shards[i]
    }

    /// The fast path: a read lock, a hash lookup, two comparisons and a clone.
    pub(super) fn get(&self, c: &ConnectorRecord, now: i64) -> Option<AccessToken> {
        if matches!(
            c.status,
            ConnectorStatus::Revoked | ConnectorStatus::NeedsReauth
        ) {
            return None;
        }
        let shard = self
            .shard(&c.id)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let e = shard.get(&c.id)?;
        (e.credentials_version == c.credentials_version && now < e.refresh_at && e.url == c.url)
            .then(|| e.token.clone())
    }

    pub(super) fn put(
        &self,
        id: &ConnectorId,
        credentials_version: i64,
        url: &str,
        token: &AccessToken,
        refresh_at: Option<i64>,
    ) {
        // A flight begun before a 401 may bring back a token that refusal rules out.
        if self.ruled_out(id, token) {
            return;
        }
        let entry = Arc::new(Cached {
            token: AccessToken {
                refreshed: false,
                ..token.clone()
            },
            credentials_version,
            url: url.to_owned(),
            refresh_at: refresh_at.unwrap_or(i64::MAX),
        });
        let mut shard = self
            .shard(id)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Never replace a newer token with an older one (two flights can finish out of order).
        if shard.get(id).is_some_and(|old| {
            old.credentials_version == credentials_version && old.token.version > token.version
        }) {
            return;
        }
        shard.insert(id.clone(), entry);
    }

    pub(super) fn remove(&self, id: &ConnectorId) {
        self.shard(id)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// An endpoint refused a token (401): remember the refusal (the newest, see
    /// `Refusal::newest`) and drop the cached token if the refusal rules it out — the refused
    /// one, or one as old as it was, not a newer one granted since (a late 401 on an older
    /// token must not throw that away).
    pub(super) fn refused(&self, connector_id: &ConnectorId, refusal: Refusal) {
        let mut kept = refusal;
        self.trouble_mut(connector_id, |t| {
            kept = refusal.newest(t.refused);
            t.refused = Some(kept);
        });
        let mut shard = self
            .shard(connector_id)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if shard
            .get(connector_id)
            .is_some_and(|c| kept.rules_out(c.token.version, c.token.granted_at_ms))
        {
            shard.remove(connector_id);
        }
    }

    /// The refusal this connector's tokens are held to, if any.
    pub(super) fn refusal(&self, id: &ConnectorId) -> Option<Refusal> {
        self.trouble(id, |t| t.refused)
    }

    /// Whether the connector's last refusal rules `token` out.
    pub(super) fn ruled_out(&self, id: &ConnectorId, token: &AccessToken) -> bool {
        self.refusal(id)
            .is_some_and(|r| r.rules_out(token.version, token.granted_at_ms))
    }

    pub(super) fn trouble<T>(
        &self,
        id: &ConnectorId,
        f: impl FnOnce(&Trouble) -> Option<T>,
    ) -> Option<T> {
        let map = self.trouble.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).and_then(f)
    }

    pub(super) fn trouble_mut(&self, id: &ConnectorId, f: impl FnOnce(&mut Trouble)) {
        let mut map = self.trouble.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(id.clone()).or_default());
    }

    /// Refuse early what would not be granted anyway.
    pub(super) fn precheck(
        &self,
        c: &ConnectorRecord,
        need: Need,
        now: i64,
    ) -> Result<(), TokenError> {
        match c.status {
            ConnectorStatus::Revoked => return Err(TokenError::connector_revoked()),
            ConnectorStatus::NeedsReauth => {
                let last = self.trouble(&c.id, |t| t.blocked.as_ref().map(|(_, e)| e.to_string()));
                return Err(TokenError::needs_reauth(last.as_deref()));
            }
            ConnectorStatus::Disabled => {
                if let Some(e) = outside_org_waiting(c) {
                    return Err(e);
                }
            }
            ConnectorStatus::Active => {}
        }
        let map = self.trouble.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = map.get(&c.id) {
            if let Some((cv, e)) = &t.blocked {
                // A refusal of the credentials is the store's to remember (`needs_reauth`,
                // refused above): the same credentials `active` again were resumed, by this
                // node or another. Our own refusals (configuration) block until they change.
                if *cv == c.credentials_version && e.remedy() != Remedy::NewCredentials {
                    return Err(e.clone());
                }
            }
            if let Some((until, e)) = &t.backoff {
                if *until > now && need != Need::Force {
                    let wait = Duration::from_millis(u64::try_from(until - now).unwrap_or(0));
                    return Err(e.clone().with_retry_after(wait));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use hookwarden_core::diagnosis::FailureClass;
    use hookwarden_core::{AccountId, Credentials};
    use secrecy::{ExposeSecret, SecretString};

    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    const FRESH: Need = Need::Fresh { refused: None };
    /// The url of every `record`.
    const URL: &str = "https://example.com/hook";

    /// A connector record as the store hands it out, for decisions that only read it.
    pub(in crate::manager) fn record(
        id: &str,
        credentials_version: i64,
        status: ConnectorStatus,
    ) -> ConnectorRecord {
        ConnectorRecord {
            id: id.into(),
            account_id: AccountId::from("acct"),
            name: "salesforceOauth2".into(),
            url: URL.into(),
            events: vec![],
            origins: vec![],
            owner: None,
            settings: serde_json::json!({}),
            status,
            status_diagnosis: None,
            warnings: vec![],
            credentials: Credentials::from_storage(
                "salesforce",
                None,
                SecretString::from("{}".to_owned()),
            )
            .expect("a known kind"),
            signing_secret: SecretString::from("whsec_x".to_owned()),
            previous_signing_secret: None,
            previous_signing_until: None,
            credentials_version,
            credentials_changed_at: 0,
            signing_secret_changed_at: 0,
            refresh_token_idle_days: None,
            failing_since: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// `record` with a key of its own (stored as `key_json`).
    pub(in crate::manager) fn record_with_key(
        key_json: &str,
        status: ConnectorStatus,
    ) -> ConnectorRecord {
        ConnectorRecord {
            credentials: Credentials::from_storage(
                "salesforce",
                None,
                SecretString::from(key_json.to_owned()),
            )
            .expect("a known kind"),
            ..record("c1", 1, status)
        }
    }

    fn token(secret: &str, version: i64) -> AccessToken {
        AccessToken {
            secret: SecretString::from(secret.to_owned()),
            version,
            expires_at_ms: None,
            refreshed: true,
            instance_url: None,
            granted_at_ms: None,
        }
    }

    fn secret_of(t: Option<AccessToken>) -> Option<String> {
        t.map(|t| t.secret.expose_secret().to_owned())
    }

    fn transient() -> TokenError {
        TokenError::new(
            "provider_unavailable",
            FailureClass::Transient,
            "503",
            "wait",
        )
    }

    fn permanent() -> TokenError {
        TokenError::new(
            "invalid_grant",
            FailureClass::Permanent,
            "refused",
            "re-auth",
        )
    }

    #[test]
    fn a_token_is_served_until_its_refresh_time() {
        let cache = Cache::new();
        let c = record("c1", 1, ConnectorStatus::Active);
        assert!(cache.get(&c, NOW).is_none());
        cache.put(&"c1".into(), 1, URL, &token("a", 1), Some(NOW + 900));
        let hit = cache.get(&c, NOW).unwrap();
        assert_eq!(hit.secret.expose_secret(), "a");
        assert!(
            !hit.refreshed,
            "a cached token was not refreshed for this caller"
        );
        assert!(cache.get(&c, NOW + 899).is_some());
        assert!(cache.get(&c, NOW + 900).is_none());
    }

    #[test]
    fn session_none_is_served_forever() {
        let cache = Cache::new();
        cache.put(&"c1".into(), 1, URL, &token("a", 1), None);
        let c = record("c1", 1, ConnectorStatus::Active);
        assert!(cache.get(&c, i64::MAX - 1).is_some());
    }

    #[test]
    fn a_token_of_other_credentials_or_a_blocked_connector_is_not_served() {
        let cache = Cache::new();
        cache.put(&"c1".into(), 1, URL, &token("a", 1), Some(NOW + 900));
        assert!(cache
            .get(&record("c1", 2, ConnectorStatus::Active), NOW)
            .is_none());
        for status in [ConnectorStatus::Revoked, ConnectorStatus::NeedsReauth] {
            assert!(cache.get(&record("c1", 1, status), NOW).is_none());
        }
        assert!(cache
            .get(&record("c1", 1, ConnectorStatus::Active), NOW)
            .is_some());
    }

    #[test]
    fn a_token_is_served_only_for_the_url_it_was_checked_for() {
        let cache = Cache::new();
        cache.put(&"c1".into(), 1, URL, &token("a", 1), Some(NOW + 900));
        let mut moved = record("c1", 1, ConnectorStatus::Active);
        moved.url = "https://elsewhere.example/hook".into();
        assert!(
            cache.get(&moved, NOW).is_none(),
            "another url: checked again"
        );
        assert!(cache
            .get(&record("c1", 1, ConnectorStatus::Active), NOW)
            .is_some());
    }

    #[test]
    fn precheck_refuses_a_connector_disabled_for_a_url_outside_its_org_until_the_url_changes() {
        let cache = Cache::new();
        let mut outside = record("c1", 1, ConnectorStatus::Disabled);
        outside.status_diagnosis = Some(hookwarden_core::diagnosis::Code::UrlNotInOrg.into());
        let e = cache.precheck(&outside, Need::Force, NOW).unwrap_err();
        assert_eq!(e.code(), "url_not_in_org");
        assert!(e.is_conflict(), "nothing was tried");
        assert_eq!(e.remedy(), Remedy::FixUrl);
        // A 410 disables too, and grants are still made for it (the endpoint is gone, not the org).
        let gone = record("c1", 1, ConnectorStatus::Disabled);
        assert!(cache.precheck(&gone, FRESH, NOW).is_ok());
    }

    #[test]
    fn an_older_token_never_replaces_a_newer_one() {
        let cache = Cache::new();
        let c = record("c1", 1, ConnectorStatus::Active);
        cache.put(&"c1".into(), 1, URL, &token("new", 5), Some(NOW + 900));
        cache.put(&"c1".into(), 1, URL, &token("old", 4), Some(NOW + 900));
        assert_eq!(secret_of(cache.get(&c, NOW)).as_deref(), Some("new"));
        // New credentials start their own versions: their token wins whatever its version.
        cache.put(&"c1".into(), 2, URL, &token("recreds", 1), Some(NOW + 900));
        let c2 = record("c1", 2, ConnectorStatus::Active);
        assert_eq!(secret_of(cache.get(&c2, NOW)).as_deref(), Some("recreds"));
    }

    fn token_at(secret: &str, version: i64, granted_at: i64) -> AccessToken {
        AccessToken {
            granted_at_ms: Some(granted_at),
            ..token(secret, version)
        }
    }

    #[test]
    fn a_refusal_drops_the_tokens_it_rules_out_and_keeps_newer_ones() {
        let cache = Cache::new();
        let c = record("c1", 1, ConnectorStatus::Active);
        let id: ConnectorId = "c1".into();
        let refusal = |version, granted_at_ms, at_ms| Refusal {
            version,
            granted_at_ms,
            at_ms,
        };
        cache.put(&id, 1, URL, &token_at("v5", 5, NOW - 100), Some(NOW + 900));
        // A late 401 on v4, granted 2 s ago, keeps v5.
        cache.refused(&id, refusal(4, Some(NOW - 2_000), NOW));
        assert!(cache.get(&c, NOW).is_some());
        cache.refused(&id, refusal(5, Some(NOW - 100), NOW));
        assert!(cache.get(&c, NOW).is_none());
        // Not cached again: v5, nor v6 granted 60 ms before the refusal of a token that
        // lived 100.
        cache.put(&id, 1, URL, &token_at("v5", 5, NOW - 100), Some(NOW + 900));
        cache.put(&id, 1, URL, &token_at("v6", 6, NOW - 60), Some(NOW + 900));
        assert!(cache.get(&c, NOW).is_none());
        // One granted since is.
        cache.put(&id, 1, URL, &token_at("v7", 7, NOW + 10), Some(NOW + 900));
        assert_eq!(secret_of(cache.get(&c, NOW + 10)).as_deref(), Some("v7"));
        // A late 401 on v3 changes nothing.
        cache.refused(&id, refusal(3, None, NOW + 20));
        assert_eq!(cache.refusal(&id).map(|r| r.version), Some(5));
        assert!(cache.get(&c, NOW + 20).is_some());
    }

    #[test]
    fn precheck_refuses_revoked_and_needs_reauth_connectors() {
        let cache = Cache::new();
        let revoked = record("c1", 1, ConnectorStatus::Revoked);
        assert_eq!(
            cache
                .precheck(&revoked, Need::Force, NOW)
                .unwrap_err()
                .code(),
            TokenError::connector_revoked().code()
        );
        let reauth = record("c1", 1, ConnectorStatus::NeedsReauth);
        let e = cache.precheck(&reauth, FRESH, NOW).unwrap_err();
        assert_eq!(e.code(), TokenError::needs_reauth(None).code());
        assert!(cache
            .precheck(&record("c1", 1, ConnectorStatus::Active), FRESH, NOW)
            .is_ok());
    }

    #[test]
    fn precheck_blocks_the_refused_credentials_only() {
        let cache = Cache::new();
        cache.trouble_mut(&"c1".into(), |t| t.blocked = Some((1, permanent())));
        let refused = record("c1", 1, ConnectorStatus::Active);
        assert_eq!(
            cache
                .precheck(&refused, Need::Force, NOW)
                .unwrap_err()
                .code(),
            "invalid_grant"
        );
        assert!(cache
            .precheck(&record("c1", 2, ConnectorStatus::Active), FRESH, NOW)
            .is_ok());
    }

    #[test]
    fn a_refusal_of_the_credentials_blocks_only_while_the_store_says_needs_reauth() {
        let cache = Cache::new();
        let refused = hookwarden_core::diagnosis::Diagnosis {
            code: "no_run_as_user",
            cause: "no Run As user".into(),
            fix: "set one".into(),
            class: FailureClass::Permanent,
        };
        let e = TokenError::diagnosed("refused", refused, None, Some(400), None);
        assert_eq!(e.remedy(), Remedy::NewCredentials);
        cache.trouble_mut(&"c1".into(), |t| t.blocked = Some((1, e)));
        let waiting = record("c1", 1, ConnectorStatus::NeedsReauth);
        assert!(cache.precheck(&waiting, FRESH, NOW).is_err());
        // Resumed on another node: active again with the same credentials.
        let resumed = record("c1", 1, ConnectorStatus::Active);
        assert!(cache.precheck(&resumed, FRESH, NOW).is_ok());
    }

    #[test]
    fn precheck_backs_off_until_the_time_and_says_how_long_is_left() {
        let cache = Cache::new();
        cache.trouble_mut(&"c1".into(), |t| {
            t.backoff = Some((NOW + 2_000, transient()))
        });
        let c = record("c1", 1, ConnectorStatus::Active);
        let e = cache.precheck(&c, FRESH, NOW + 500).unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1_500)));
        assert!(cache.precheck(&c, FRESH, NOW + 2_000).is_ok());
        // The `test` endpoint grants through a backoff.
        assert!(cache.precheck(&c, Need::Force, NOW + 500).is_ok());
    }
}
