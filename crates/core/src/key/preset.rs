//! The endpoints a connector kind derives from its key: Salesforce from `host`, Microsoft from
//! `tenant`, generic ones from nothing; an explicit endpoint in the key always wins.

use super::{Endpoints, Key};
use crate::connector::ConnectorKind;

struct Preset {
    token_url: String,
    revocation_url: Option<String>,
    introspection_url: Option<String>,
    authorization_url: Option<String>,
}

/// Preset endpoints, overridden field by field by the key. A key built by hand without the
/// required fields yields an empty `token_url` rather than a panic.
pub(super) fn endpoints(key: &Key, kind: ConnectorKind) -> Endpoints {
    let preset = match kind {
        ConnectorKind::Salesforce => key.host.as_ref().map(|h| {
            let base = format!("https://{h}/services/oauth2");
            Preset {
                token_url: format!("{base}/token"),
                revocation_url: Some(format!("{base}/revoke")),
                introspection_url: Some(format!("{base}/introspect")),
                authorization_url: Some(format!("{base}/authorize")),
            }
        }),
        ConnectorKind::Dynamics => key.tenant.as_ref().map(|t| {
            let base = format!("https://login.microsoftonline.com/{t}/oauth2/v2.0");
            Preset {
                token_url: format!("{base}/token"),
                revocation_url: None,
                introspection_url: None,
                authorization_url: Some(format!("{base}/authorize")),
            }
        }),
        ConnectorKind::Generic => None,
    };
    let (token_url, revocation_url, introspection_url, authorization_url) = match preset {
        Some(p) => (
            Some(p.token_url),
            p.revocation_url,
            p.introspection_url,
            p.authorization_url,
        ),
        None => (None, None, None, None),
    };
    Endpoints {
        token_url: key.token_url.clone().or(token_url).unwrap_or_default(),
        revocation_url: key.revocation_url.clone().or(revocation_url),
        introspection_url: key.introspection_url.clone().or(introspection_url),
        authorization_url: key.authorization_url.clone().or(authorization_url),
    }
}
