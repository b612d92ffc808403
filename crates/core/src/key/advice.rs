//! What is worth telling the user about a key that is nevertheless accepted: unknown fields,
//! fields the connector ignores, and settings that will not do what they seem to.

use serde_json::{Map, Value};

use super::host::host_name_only;
use super::{shorten, AuthMethod, SessionMode};
use crate::connector::{ConnectorKind, Flow};

const KNOWN_FIELDS: [&str; 16] = [
    "client_id",
    "host",
    "client_secret",
    "refresh_token",
    "grant_type",
    "token_url",
    "revocation_url",
    "introspection_url",
    "authorization_url",
    "scope",
    "tenant",
    "auth_method",
    "request_style",
    "session",
    "session_timeout_s",
    "refresh_hook",
];

/// Everything worth saying about a key that is nevertheless accepted.
pub(super) struct Advice<'a> {
    pub(super) obj: &'a Map<String, Value>,
    pub(super) kind: ConnectorKind,
    pub(super) flow: Flow,
    pub(super) host: Option<&'a str>,
    pub(super) tenant: Option<&'a str>,
    pub(super) scope: Option<&'a str>,
    pub(super) has_secret: bool,
    pub(super) auth_method: AuthMethod,
    pub(super) session: SessionMode,
    pub(super) session_timeout_s: Option<u64>,
}

pub(super) fn advise(a: &Advice<'_>, warnings: &mut Vec<String>) {
    let unknown: Vec<String> = a
        .obj
        .keys()
        .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|k| format!("`{}`", shorten(k)))
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).map(String::as_str).collect();
        let more = if unknown.len() > 5 {
            format!(" and {} more", unknown.len() - 5)
        } else {
            String::new()
        };
        warnings.push(format!(
            "unknown field(s) {}{more} in the key were ignored",
            shown.join(", ")
        ));
    }
    if a.host.is_some() && a.kind != ConnectorKind::Salesforce {
        warnings
            .push("`host` is only used by salesforceOauth2 connectors; it was ignored".to_owned());
    }
    if a.tenant.is_some() && a.kind != ConnectorKind::Dynamics {
        warnings
            .push("`tenant` is only used by dynamicsOauth2 connectors; it was ignored".to_owned());
    }
    if a.kind == ConnectorKind::Salesforce {
        if let Some(h) = a.host {
            if host_name_only(h).ends_with(".lightning.force.com") {
                warnings.push("`host` is a Lightning Experience domain; OAuth endpoints live on your My Domain, `<name>.my.salesforce.com`".to_owned());
            }
        }
    }
    if a.kind == ConnectorKind::Dynamics && a.flow == Flow::ClientCredentials {
        if !a.scope.is_some_and(|s| s.trim_end().ends_with("/.default")) {
            warnings.push("Microsoft's client credentials flow needs `scope` of the form `https://<org>.crm.dynamics.com/.default`".to_owned());
        }
        if let Some(t) = a.tenant {
            if ["common", "organizations", "consumers"].contains(&t.to_ascii_lowercase().as_str()) {
                warnings.push(format!("`tenant` {t:?} does not work with the client credentials flow; give your tenant id or domain"));
            }
        }
    }
    if a.auth_method == AuthMethod::ClientSecretBasic && !a.has_secret {
        warnings.push(
            "`auth_method` client_secret_basic has no effect without `client_secret`".to_owned(),
        );
    }
    if a.session == SessionMode::None && a.session_timeout_s.is_some() {
        warnings.push("`session_timeout_s` is ignored with `session: none` (tokens are refreshed only on 401)".to_owned());
    }
}
