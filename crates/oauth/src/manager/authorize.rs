//! Re-authentication: the authorization URL (PKCE S256 and a stored, single-use state), and the
//! code exchange whose refresh token becomes the connector's credentials.

use hookwarden_core::diagnosis::FailureClass;
use hookwarden_core::{AccountId, ConnectorStatus, Credentials, Flow, Key};
use hookwarden_store::{ConnectorRecord, GrantedTokens, HistoryKind, OAuthState};
use secrecy::{ExposeSecret, SecretString};

use super::cache::Trouble;
use super::call::Attempt;
use super::destination::check_grant;
use super::{AccessToken, Ctx, Inner};
use crate::error::TokenError;
use crate::grant::{self, GrantKind};

/// Authorization-code flows expire (Salesforce codes live 15 minutes).
const OAUTH_STATE_TTL_MS: i64 = 15 * 60 * 1000;

/// Re-authentication in a browser gives a connector a refresh token. A client-credentials
/// connector gets its tokens with its client secret; switching it to the refresh-token flow (and
/// to the scope its user approves) is for a key that says so, not a side effect.
fn refresh_token_flow(c: &ConnectorRecord) -> Result<(), TokenError> {
    match c.credentials.flow() {
        Some(Flow::ClientCredentials) => Err(TokenError::wrong_flow()),
        _ => Ok(()),
    }
}

impl Inner {
    /// Finish a flow begun by `authorization_url`; the state is taken (single use) first.
    pub(super) async fn complete_authorization(
        &self,
        account_id: Option<&AccountId>,
        state: &str,
        code: &str,
    ) -> Result<ConnectorRecord, TokenError> {
        let pending = self
            .store
            .take_oauth_state(state)
            .await
            .map_err(TokenError::store)?;
        let invalid = || {
            TokenError::new(
                "oauth_state_invalid",
                FailureClass::Permanent,
                "the authorization state is unknown, expired or already used",
                "start again from GET /api/callback/connectors/{name}/oauth/url",
            )
        };
        let pending: OAuthState = pending.ok_or_else(invalid)?;
        if account_id.is_some_and(|a| *a != pending.account_id) {
            return Err(invalid());
        }
        let connector = self
            .current_connector(
                &pending.account_id,
                &pending.connector_name,
                &pending.connector_id,
            )
            .await?;
        // A flow begun before `authorization_url` refused client-credentials connectors.
        refresh_token_flow(&connector)?;
        self.exchange_code(
            &connector,
            code,
            Some(&pending.redirect_uri),
            Some(pending.code_verifier.expose_secret()),
        )
        .await
    }

    pub(super) async fn authorization_url(
        &self,
        c: &ConnectorRecord,
        redirect_uri: &str,
    ) -> Result<String, TokenError> {
        // Before anything is stored: a refusal changes nothing.
        refresh_token_flow(c)?;
        let ctx = Ctx::new(c.clone())?;
        let base = ctx.endpoints.authorization_url.clone().ok_or_else(|| {
            TokenError::new(
                "no_authorization_url",
                FailureClass::Permanent,
                "the connector has no authorization endpoint",
                "add `authorization_url` to the key (Salesforce and Microsoft presets derive it)",
            )
        })?;
        let redirect = url::Url::parse(redirect_uri).map_err(|_| {
            TokenError::new(
                "redirect_uri_invalid",
                FailureClass::Permanent,
                "redirect_uri is not an absolute URL",
                "give hookwarden's /oauth/callback URL, e.g. https://hookwarden.example.com/oauth/callback",
            )
        })?;
        let (verifier, challenge) = grant::pkce_pair();
        let state = grant::random_state();
        self.store
            .put_oauth_state(
                &state,
                &OAuthState {
                    connector_id: c.id.clone(),
                    account_id: c.account_id.clone(),
                    connector_name: c.name.clone(),
                    code_verifier: SecretString::from(verifier),
                    redirect_uri: redirect.to_string(),
                    expires_at: self.now_ms() + OAUTH_STATE_TTL_MS,
                },
            )
            .await
            .map_err(TokenError::store)?;
        grant::authorization_url(&base, &ctx.key, redirect.as_str(), &state, &challenge).map_err(
            |why| {
                TokenError::new(
                    "authorization_url_invalid",
                    FailureClass::Permanent,
                    format!("the authorization endpoint is not a URL: {why}"),
                    "fix `authorization_url` (or `host`) in the key",
                )
            },
        )
    }

    pub(super) async fn exchange_code(
        &self,
        c: &ConnectorRecord,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<ConnectorRecord, TokenError> {
        let current = self
            .current_connector(&c.account_id, &c.name, &c.id)
            .await?;
        let mut ctx = Ctx::new(current)?;
        ctx.redactor.add_str(code);
        if let Some(v) = code_verifier {
            ctx.redactor.add_str(v);
        }
        let grant = GrantKind::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        };
        let attempt = Attempt {
            kind: HistoryKind::CodeExchange,
            grant_type: "authorization_code",
            what: "the code exchange failed",
        };
        let out = grant::form_request(
            &ctx.key,
            &ctx.endpoints.token_url,
            "token_url",
            grant::grant_params(&ctx.key, &grant),
            ctx.key.request_style,
        );
        let answer = self.exchange(&ctx, attempt, out, &[]).await?;
        let tokens = self.tokens_of(&mut ctx, attempt, &answer).await?;

        // The returned refresh token becomes the credentials.
        let mut key_doc: serde_json::Value = serde_json::from_str(
            ctx.record.credentials.stored().expose_secret(),
        )
        .map_err(|_| {
            TokenError::new(
                "key_invalid",
                FailureClass::Permanent,
                "the stored key is not JSON",
                "give the key again",
            )
        })?;
        if let (Some(rt), Some(obj)) = (&tokens.refresh_token, key_doc.as_object_mut()) {
            obj.insert(
                "refresh_token".into(),
                serde_json::Value::String(rt.expose_secret().to_owned()),
            );
            // The key now selects the refresh-token flow; a pinned client_credentials would contradict it.
            if obj.get("grant_type").and_then(|g| g.as_str()) == Some("client_credentials") {
                obj.remove("grant_type");
            }
        }
        let new_key_json = key_doc.to_string();
        let new_key = Key::from_storage_json(&new_key_json, ctx.kind).map_err(|e| {
            TokenError::new(
                "key_invalid",
                FailureClass::Permanent,
                format!("the provider's answer does not make a usable key: {e}"),
                "check the app's scopes: a code exchange must return a refresh token (refresh_token / offline_access scope)",
            )
        })?;
        // The new credentials are kept either way (the user authorized them); a token whose
        // org is not the url's is not.
        let outside = check_grant(&ctx, &tokens).err();
        match &outside {
            None => self.record_ok(&ctx, attempt, &answer).await,
            Some(d) => self.record_outside_org(&ctx, attempt, &answer, d).await,
        }

        let seen = ctx.record.seen();
        let mut record = ctx.record.clone();
        // Stored as the document was written, as before the key was parsed on read.
        record.credentials = Credentials::OAuth {
            kind: ctx.kind,
            key: new_key.clone().into(),
            stored: SecretString::from(new_key_json),
        };
        record.status = ConnectorStatus::Active;
        let saved = self
            .store
            .save_connector(&record, true, seen)
            .await
            .map_err(TokenError::store)?;
        ctx.key = new_key;
        ctx.record = saved.clone();
        // The refresh token is already stored in the key: introspection may go first here.
        let (expires_at, refresh_at) = match outside {
            None => self.expiry(&mut ctx, &tokens, true).await,
            Some(_) => (None, None),
        };
        let granted = GrantedTokens {
            credentials_version: saved.credentials_version,
            access_token: outside.is_none().then(|| tokens.access_token.clone()),
            access_expires_at: expires_at,
            refresh_at,
            // The refresh token now lives in the key.
            refresh_token: None,
            instance_url: tokens.instance_url.clone(),
            scope: tokens.scope.clone(),
            issued_at: tokens.issued_at_ms,
            granted_at: self.now_ms(),
        };
        let version = self
            .store
            .save_granted_tokens(&saved.id, None, &granted, &self.options.node_id)
            .await
            .map_err(TokenError::store)?
            .unwrap_or(0);
        self.cache
            .trouble_mut(&saved.id, |t| *t = Trouble::default());
        if let Some(d) = outside {
            self.disable_outside_org(&saved, &d).await;
            tracing::info!(connector = %saved.id, "re-authenticated by code exchange; its url is not in the org");
            return Err(TokenError::outside_org(
                "re-authenticated (the new credentials are kept), but the token was not used",
                d,
            ));
        }
        self.cache.put(
            &saved.id,
            saved.credentials_version,
            &saved.url,
            &AccessToken {
                secret: tokens.access_token,
                version,
                expires_at_ms: expires_at,
                refreshed: true,
                instance_url: tokens.instance_url,
                granted_at_ms: Some(self.now_ms()),
            },
            refresh_at,
        );
        tracing::info!(connector = %saved.id, "re-authenticated by code exchange");
        Ok(saved)
    }
}
