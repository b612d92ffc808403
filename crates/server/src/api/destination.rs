//! A credential stays with its destination, as the API enforces it: a My Domain key keeps a
//! registration's url on its host (`400 url_not_in_org`), and whoever moves a destination to
//! another host must give its credentials in the same request (`409 credentials_required`).

use axum::http::StatusCode;
use hookwarden_core::destination::{check_url_in_key_org, same_origin, Origin};
use hookwarden_core::{ConnectorKind, Key};

use crate::error::{ApiError, ApiResult};

/// The registration rule (POST, PUT, and a PATCH that gives a url or a key): a salesforce
/// key whose host is a My Domain and that overrides no endpoint names its org; a url on another
/// host would get that org's tokens.
pub(super) fn url_in_key_org(url: &str, key: &Key, kind: ConnectorKind) -> ApiResult<()> {
    check_url_in_key_org(url, key, kind).map_err(|e| ApiError::from_problem(&e))
}

/// A change of url from `current` to `new` without the credentials (`key_given` false): only
/// on the same host (scheme, host and port), or onto the host of the org's last `instance_url`
/// (`org`, the token state's), where the org's own tokens already go. `how` says how to send
/// the key with the url.
pub(super) fn move_allowed(
    current: &str,
    new: &str,
    key_given: bool,
    org: Option<&str>,
    how: &str,
) -> ApiResult<()> {
    if key_given || same_origin(current, new) || org.is_some_and(|org| same_origin(org, new)) {
        return Ok(());
    }
    let shown = |raw: &str| Origin::of(raw).map_or_else(|| "?".to_owned(), |o| o.to_string());
    let into_org = org
        .and_then(Origin::of)
        .map(|o| format!(", or onto the org's own host {o} (its instance_url),"))
        .unwrap_or_default();
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "credentials_required",
        format!(
            "url: the destination moves from {} to {}, another host; whoever moves a destination must hold its credentials, so the key must come with the url",
            shown(current),
            shown(new)
        ),
        format!(
            "{how}; a url on the same host{into_org} needs no key"
        ),
    ))
}

/// The url a request gives, read against the stored one: answers show a url with its query
/// values masked (`mask_url`), so a client that sends back what it was shown keeps the stored
/// url rather than storing `****`.
pub(super) fn given_url(given: &str, stored: Option<&str>) -> String {
    match stored {
        Some(stored) if given != stored && given == hookwarden_core::key::mask_url(stored) => {
            stored.to_owned()
        }
        _ => given.to_owned(),
    }
}
