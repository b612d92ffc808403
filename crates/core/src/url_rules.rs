//! Rules for the URLs a user gives us: the callback `url` and the endpoints in a key.
//! Names are not resolved here (no IO): a name that resolves into a refused range is caught
//! at delivery time with `AddressPolicy::check`.
//! Messages name the field and the host or address, never the whole URL: a query string may
//! carry a credential.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use url::{Host, Url};

use crate::connector::ConnectorKind;
use crate::netguard::{AddressPolicy, NetGuardError};

/// Longer URLs are refused by many servers and proxies anyway; this also bounds what we store.
pub(crate) const MAX_URL_LEN: usize = 2048;
/// Where Salesforce serves Apex REST classes (seed 001).
const APEX_REST_PREFIX: &str = "/services/apexrest/";

/// A destination URL that passed the registration rules. Its field is private: only
/// `CallbackUrl::parse` builds one, so holding one means the checks ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallbackUrl(url::Url);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    // Variants are the helper's to choose; each maps to a `Problem` code such as
    // `url_not_absolute`, `url_not_https`, `url_has_userinfo`, `url_address_refused`.
    #[error("{field}: {message}")]
    Invalid {
        field: String,
        code: &'static str,
        message: String,
        fix: String,
    },
}

impl CallbackUrl {
    /// Check a callback URL: absolute, `https` (plain `http` only when `allow_insecure_http`),
    /// no user-info, an IP-literal host must pass `policy`. Returns warnings, e.g. for a
    /// `salesforceOauth2` URL whose path is not under `/services/apexrest/`.
    pub fn parse(
        raw: &str,
        kind: ConnectorKind,
        allow_insecure_http: bool,
        policy: &AddressPolicy,
    ) -> Result<(CallbackUrl, Vec<String>), UrlError> {
        let mut url = check_endpoint(raw, "url", allow_insecure_http, policy)?;
        let mut warnings = Vec::new();
        if url.fragment().is_some() {
            // A fragment never leaves the client; keeping it would only mislead.
            url.set_fragment(None);
            warnings
                .push("the url's #fragment is never sent to the server; it was removed".to_owned());
        }
        if kind == ConnectorKind::Salesforce {
            salesforce_advice(&url, &mut warnings);
        }
        Ok((CallbackUrl(url), warnings))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl UrlError {
    fn new(field: &str, code: &'static str, message: String, fix: String) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            code,
            message,
            fix,
        }
    }
}

impl crate::problem::Problem for UrlError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } => code,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn fix(&self) -> String {
        match self {
            Self::Invalid { fix, .. } => fix.clone(),
        }
    }
}

/// The same rules for an endpoint URL (`token_url`, `revocation_url`, `introspection_url`,
/// `authorization_url`, `refresh_hook`); `field` names it in the error.
pub fn check_endpoint(
    raw: &str,
    field: &str,
    allow_insecure_http: bool,
    policy: &AddressPolicy,
) -> Result<url::Url, UrlError> {
    let fail = |code: &'static str, message: String, fix: &str| {
        UrlError::new(field, code, message, fix.to_owned())
    };
    let absolute_fix = if field == "url" {
        "give an absolute URL with its scheme and host, e.g. https://acme.my.salesforce.com/services/apexrest/OSS/callback"
    } else {
        "give an absolute URL with its scheme and host, e.g. https://idp.example.com/oauth2/token"
    };

    if raw.len() > MAX_URL_LEN {
        return Err(fail(
            "url_too_long",
            format!(
                "is {} characters long; at most {MAX_URL_LEN} are accepted",
                raw.len()
            ),
            "shorten the URL; secrets belong in the key, not in the URL",
        ));
    }
    if raw.trim().is_empty() {
        return Err(fail(
            "url_not_absolute",
            "is empty".to_owned(),
            absolute_fix,
        ));
    }
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => fail(
            "url_not_absolute",
            "is not an absolute URL (it has no scheme such as https://)".to_owned(),
            absolute_fix,
        ),
        url::ParseError::EmptyHost => {
            fail("url_empty_host", "has no host".to_owned(), absolute_fix)
        }
        // url's messages are fixed phrases ("invalid port number", ...) without the input.
        other => fail(
            "url_invalid",
            format!("is not a valid URL: {other}"),
            absolute_fix,
        ),
    })?;

    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => {
            return Err(fail(
                "url_not_https",
                "uses http; only https is accepted".to_owned(),
                "use https; plain http is only for tests and demos, with `allow_insecure_http` (HOOKWARDEN_ALLOW_INSECURE_HTTP=true)",
            ))
        }
        _ => {
            return Err(fail(
                "url_scheme_refused",
                "has a scheme other than https".to_owned(),
                "use an https:// URL",
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fail(
            "url_has_userinfo",
            "contains user-info (user:password@); credentials never go in a URL".to_owned(),
            "remove the user-info; the connector's key carries the credentials",
        ));
    }

    let addr = match url.host() {
        None => {
            return Err(fail(
                "url_empty_host",
                "has no host".to_owned(),
                absolute_fix,
            ))
        }
        Some(Host::Domain("")) => {
            return Err(fail(
                "url_empty_host",
                "has no host".to_owned(),
                absolute_fix,
            ))
        }
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        // RFC 6761: localhost names always mean loopback, so judge them as 127.0.0.1 now
        // rather than wait for resolution at delivery.
        Some(Host::Domain(name)) if is_localhost(name) => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Some(Host::Domain(_)) => None,
    };
    if let Some(addr) = addr {
        if let Err(NetGuardError::Refused { addr, range }) = policy.check(addr) {
            return Err(UrlError::new(
                field,
                "url_address_refused",
                format!("host address {addr} is in a refused range ({range})"),
                format!(
                    "use a public address; to allow this one (tests, a private deployment) add its network to `allow_private_networks` (HOOKWARDEN_ALLOW_PRIVATE_NETWORKS), e.g. {}",
                    ipnet::IpNet::from(addr)
                ),
            ));
        }
    }
    Ok(url)
}

fn salesforce_advice(url: &Url, warnings: &mut Vec<String>) {
    let path = url.path();
    match path.strip_prefix(APEX_REST_PREFIX) {
        Some(rest) if !rest.trim_matches('/').is_empty() => {}
        Some(_) => warnings.push(
            "the url ends at /services/apexrest/ without the resource; the Apex class's urlMapping follows it, e.g. /services/apexrest/OSS/callback".to_owned(),
        ),
        None => warnings.push(
            "the url's path is not under /services/apexrest/; a Salesforce Apex REST listener is at https://<name>.my.salesforce.com/services/apexrest/OSS/callback, or /services/apexrest/<namespace>/OSS/callback when the class has a namespace prefix".to_owned(),
        ),
    }
    if let Some(host) = url.host_str() {
        let host = host.to_ascii_lowercase();
        if host == "login.salesforce.com" || host == "test.salesforce.com" {
            warnings.push(format!(
                "the url's host is {host}; Apex REST classes are served on your org's My Domain, <name>.my.salesforce.com"
            ));
        } else if host.ends_with(".lightning.force.com") {
            warnings.push("the url's host is a Lightning Experience domain; Apex REST classes are served on your My Domain, <name>.my.salesforce.com".to_owned());
        }
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}
