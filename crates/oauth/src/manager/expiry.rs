//! A new access token's expiry and proactive refresh time: core's session policy, fed with what
//! the provider said, and with its introspection endpoint's answer when it said nothing.

use hookwarden_core::session;
use hookwarden_core::{RequestStyle, SessionMode};
use hookwarden_store::HistoryKind;
use secrecy::ExposeSecret;

use super::call::{Attempt, Call};
use super::{Ctx, Inner};
use crate::grant::{self, Tokens};

impl Inner {
    /// Expiry and proactive refresh time (ms) for a new access token, by session mode. With
    /// `introspect` false, `auto` without `expires_in` assumes the session timeout (see
    /// `needs_introspection`).
    pub(super) async fn expiry(
        &self,
        ctx: &mut Ctx,
        tokens: &Tokens,
        introspect: bool,
    ) -> (Option<i64>, Option<i64>) {
        let base = session::token_base_ms(tokens.issued_at_ms, self.now_ms());
        // Only `auto` without `expires_in` asks; the other cases never read the answer.
        let introspected = match (ctx.key.session, tokens.expires_in_s) {
            (SessionMode::Auto, None) if introspect => self.introspect_lifetime(ctx, tokens).await,
            _ => None,
        };
        session::expiry(
            ctx.key.session,
            base,
            tokens.expires_in_s,
            introspected,
            ctx.session_timeout_s(),
        )
    }

    /// can authenticate to it (Salesforce's needs the client secret).
    async fn introspect_lifetime(&self, ctx: &mut Ctx, tokens: &Tokens) -> Option<i64> {
        let url = ctx.endpoints.introspection_url.clone()?;
        ctx.key.client_secret.as_ref()?;
        let access = tokens.access_token.expose_secret().to_owned();
        let out = grant::form_request(
            &ctx.key,
            &url,
            "introspection_url",
            vec![("token", &access), ("token_type_hint", "access_token")],
            RequestStyle::Body,
        );
        let attempt = Attempt {
            kind: HistoryKind::Introspect,
            grant_type: "introspection",
            what: "introspection failed",
        };
        let answer = self.exchange(ctx, attempt, out, &[]).await.ok()?;
        let parsed = grant::parse_introspection(&answer.body);
        let lifetime = match parsed {
            Some((true, Some(exp), iat)) => {
                let iat = iat.or(tokens.issued_at_ms.map(|t| t / 1000));
                iat.map(|iat| exp.saturating_sub(iat))
                    .or_else(|| Some(exp.saturating_sub(self.now_ms() / 1000)))
                    .filter(|s| *s > 0)
            }
            _ => None,
        };
        let outcome = if lifetime.is_some() {
            "ok"
        } else {
            "no_expiry"
        };
        let call = Call::answered(ctx, &answer);
        self.record(ctx, attempt.kind, None, outcome, &call, None)
            .await;
        lifetime
    }
}

/// `auto` with no `expires_in`, and a provider the key can introspect at.
pub(super) fn needs_introspection(ctx: &Ctx, tokens: &Tokens) -> bool {
    ctx.key.session == SessionMode::Auto
        && tokens.expires_in_s.is_none()
        && ctx.endpoints.introspection_url.is_some()
        && ctx.key.client_secret.is_some()
}

#[cfg(test)]
mod tests {
    use hookwarden_core::{ConnectorStatus, Credentials};
    use secrecy::SecretString;

    use super::super::cache::tests::record;
    use super::*;

    fn ctx(key: serde_json::Value) -> Ctx {
        let mut r = record("c1", 1, ConnectorStatus::Active);
        r.name = "generic".into();
        r.credentials =
            Credentials::from_storage("generic", None, SecretString::from(key.to_string()))
                .unwrap();
        Ctx::new(r).unwrap()
    }

    fn key(extra: serde_json::Value) -> serde_json::Value {
        let mut k = serde_json::json!({
            "client_id": "c",
            "client_secret": "s3cret-value",
            "token_url": "https://id.example.com/token",
            "introspection_url": "https://id.example.com/introspect",
        });
        for (name, v) in extra.as_object().unwrap() {
            match v {
                serde_json::Value::Null => k.as_object_mut().unwrap().remove(name),
                v => k.as_object_mut().unwrap().insert(name.clone(), v.clone()),
            };
        }
        k
    }

    fn tokens(body: &str) -> Tokens {
        grant::parse_tokens(body).unwrap()
    }

    #[test]
    fn introspection_only_when_auto_has_no_expires_in_and_the_key_can_ask() {
        let silent = tokens(r#"{"access_token":"at","token_type":"Bearer"}"#);
        let said = tokens(r#"{"access_token":"at","token_type":"Bearer","expires_in":60}"#);
        let auto = ctx(key(serde_json::json!({})));
        assert!(needs_introspection(&auto, &silent));
        assert!(!needs_introspection(&auto, &said));
        for mode in ["fixed", "none"] {
            let c = ctx(key(
                serde_json::json!({ "session": mode, "session_timeout_s": 300 }),
            ));
            assert!(!needs_introspection(&c, &silent), "{mode}");
        }
        let no_secret = ctx(key(
            serde_json::json!({"client_secret": null, "refresh_token": "rt"}),
        ));
        assert!(!needs_introspection(&no_secret, &silent));
        let no_url = ctx(key(serde_json::json!({ "introspection_url": null })));
        assert!(!needs_introspection(&no_url, &silent));
    }
}
