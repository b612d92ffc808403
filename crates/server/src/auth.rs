//! `Authorization: Basic <api_key>` (OneSpan's convention: the key as it is). Clients that
//! base64-encode `key:` or `:key`, as HTTP Basic libraries do, are accepted too.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use hookwarden_store::Account;

use crate::error::ApiError;
use crate::state::AppState;

/// The account the request's API key belongs to, and that key's id (see `api_key_id`).
pub struct Authed(pub Account, pub String);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let (scheme, credential) = header
            .trim()
            .split_once(' ')
            .ok_or_else(ApiError::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::unauthorized());
        }
        for candidate in candidates(credential.trim()) {
            if let Some((account, key_id)) = state.account_for_api_key(&candidate).await? {
                return Ok(Authed(account, key_id));
            }
        }
        Err(ApiError::unauthorized())
    }
}

/// The key as sent, then the user or password half of a base64 `user:password` pair.
fn candidates(credential: &str) -> Vec<String> {
    let mut out = vec![credential.to_owned()];
    if credential.is_empty() || credential.len() > 512 {
        return out;
    }
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credential) {
        if let Ok(text) = String::from_utf8(decoded) {
            if let Some((user, password)) = text.split_once(':') {
                out.extend(
                    [user, password]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_pairs_offer_both_halves() {
        let pair = base64::engine::general_purpose::STANDARD.encode("hwk_abc:");
        assert_eq!(candidates(&pair), vec![pair.clone(), "hwk_abc".to_owned()]);
        assert_eq!(candidates("hwk_abc"), vec!["hwk_abc".to_owned()]);
    }
}
