//! Refresh and access tokens and their rotation families: minting, liveness, the purge of dead
//! access tokens, and revoking a family or everything.

use super::Org;

/// Expired access tokens are purged once the map reaches this size (then twice the live count),
/// so a benchmark that grants all day keeps a bounded map at amortised O(1) cost.
pub(super) const ACCESS_TOKEN_PURGE_FLOOR: usize = 65_536;

/// Which user a token acts as.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Subject {
    User,
    RunAs,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum RefreshStatus {
    Live,
    /// Rotated out: presenting it again is reuse.
    Retired,
    Revoked,
}

/// A rotation family: one original authorization and every refresh token rotated from it.
/// Revoking the family kills all its refresh and access tokens at once.
#[derive(Debug)]
pub(super) struct Family {
    pub(super) client_id: String,
    pub(super) scope: String,
    pub(super) revoked: bool,
}

#[derive(Debug)]
pub(super) struct RefreshToken {
    pub(super) family: usize,
    pub(super) status: RefreshStatus,
    pub(super) issued_at_ms: i64,
}

#[derive(Debug)]
pub(super) struct AccessToken {
    pub(super) client_id: String,
    pub(super) family: Option<usize>,
    pub(super) subject: Subject,
    pub(super) scope: String,
    pub(super) issued_at_ms: i64,
    pub(super) revoked: bool,
}

impl Org {
    fn access_prefix(&self) -> String {
        format!("{}!AQ", self.config.org_id)
    }

    pub(super) fn new_family(&mut self, client_id: &str, scope: String) -> usize {
        self.families.push(Family {
            client_id: client_id.to_owned(),
            scope,
            revoked: false,
        });
        self.families.len() - 1
    }

    pub(super) fn family_live(&self, family: usize) -> bool {
        self.families.get(family).is_some_and(|f| !f.revoked)
    }

    pub(super) fn mint_refresh(&mut self, family: usize, random: &str) -> String {
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

    pub(super) fn mint_access(
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

    pub(super) fn revoke_family(&mut self, family: usize) {
        if let Some(f) = self.families.get_mut(family) {
            f.revoked = true;
        }
    }

    pub(super) fn access_live(&self, token: &str, now_ms: i64) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FakeOrgConfig;

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
}
