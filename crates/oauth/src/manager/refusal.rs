//! A 401: what an endpoint's refusal of an access token says about the other tokens at hand.
//! The refused version and every older one are done with. A newer one may be too: where
//! sessions end by time (Salesforce's session timeout), a token another node granted, or this
//! node for another delivery, shortly after the refused one is about as near its end. The
//! refused token lived from its grant to the refusal; a newer token that had by then lived
//! half of that already is not used either, and one granted since (or moments before) is.

/// An endpoint refused the access token of `version`, granted at `granted_at_ms`, at `at_ms`
/// (ms, the token engine's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub version: i64,
    /// `None` for a token stored before grants were timed.
    pub granted_at_ms: Option<i64>,
    pub at_ms: i64,
}

impl Refusal {
    /// Whether the token of `version`, granted at `granted_at_ms`, must not replace the refused
    /// one: the refused version or an older one, or one that had lived, by the refusal, half as
    /// long as the refused token had (or whose age or the refused token's lifetime is unknown).
    pub fn rules_out(&self, version: i64, granted_at_ms: Option<i64>) -> bool {
        if version <= self.version {
            return true;
        }
        match (self.granted_at_ms, granted_at_ms) {
            (Some(refused_granted), Some(granted)) => {
                let lived = self.at_ms - refused_granted;
                let age = self.at_ms - granted;
                age * 2 >= lived
            }
            _ => true,
        }
    }

    /// The refusal to keep of two: the one about the newer token (a late 401 on an older token
    /// says nothing new), and of two about the same token the first, which bounds its lifetime
    /// best (a token granted after it is never ruled out).
    pub(super) fn newest(self, other: Option<Refusal>) -> Refusal {
        match other {
            Some(o) if o.version > self.version => o,
            Some(o) if o.version == self.version && o.at_ms <= self.at_ms => o,
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refused token, version 5, was granted at 10 s and refused at 12 s: it lived 2 s.
    const REFUSED: Refusal = Refusal {
        version: 5,
        granted_at_ms: Some(10_000),
        at_ms: 12_000,
    };

    #[test]
    fn the_refused_version_and_older_ones_are_out() {
        assert!(REFUSED.rules_out(5, Some(11_999)));
        assert!(REFUSED.rules_out(4, Some(11_999)));
    }

    #[test]
    fn a_newer_token_half_as_old_as_the_refused_one_was_is_out_too() {
        assert!(
            !REFUSED.rules_out(6, Some(11_950)),
            "granted moments ago: used"
        );
        assert!(!REFUSED.rules_out(6, Some(11_100)));
        assert!(REFUSED.rules_out(6, Some(11_000)), "a second old: out");
        assert!(REFUSED.rules_out(6, Some(10_050)));
        assert!(
            !REFUSED.rules_out(6, Some(12_500)),
            "granted after the refusal"
        );
    }

    #[test]
    fn an_unknown_age_or_lifetime_rules_a_newer_token_out() {
        assert!(REFUSED.rules_out(6, None));
        let unknown = Refusal {
            granted_at_ms: None,
            ..REFUSED
        };
        assert!(unknown.rules_out(6, Some(11_999)));
    }

    #[test]
    fn the_refusal_of_the_newer_token_is_kept() {
        let late = Refusal {
            version: 4,
            granted_at_ms: Some(1_000),
            at_ms: 13_000,
        };
        assert_eq!(late.newest(Some(REFUSED)), REFUSED, "a late 401 on v4");
        assert_eq!(REFUSED.newest(Some(late)), REFUSED);
        let again = Refusal {
            at_ms: 12_500,
            ..REFUSED
        };
        assert_eq!(
            again.newest(Some(REFUSED)),
            REFUSED,
            "the same token, later"
        );
        assert_eq!(REFUSED.newest(Some(again)), REFUSED);
        assert_eq!(REFUSED.newest(None), REFUSED);
    }
}
