//! The revoke endpoint: kills one token, and with a refresh token its whole family.

use super::stats::bump;
use super::tokens::RefreshStatus;
use super::Org;

impl Org {
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
}
