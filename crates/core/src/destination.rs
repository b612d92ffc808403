//! A credential stays with its destination: whether a url is in the org whose credentials a
//! connector holds (the scheme, host and port of the org's `instance_url`, or its My Domain),
//! and whether a new url moves a destination to another host. Pure.
//!
//! Messages name origins and hosts, never a whole URL: a query string may carry a credential.

use std::fmt;

use url::Url;

use crate::connector::ConnectorKind;
use crate::diagnosis::{Code, Diagnosis};
use crate::key::Key;
use crate::problem::Problem;

/// Where a URL's requests go: its scheme, host and port. Host names compare without case and
/// without a trailing dot, and a default port spelled out is the same port as none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// The origin of an absolute URL; `None` for anything without a host.
    pub fn of(raw: &str) -> Option<Origin> {
        let url = Url::parse(raw).ok()?;
        let host = url.host_str().filter(|h| !h.is_empty())?;
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: bare_host(host),
            port: url.port_or_known_default(),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match (self.scheme.as_str(), self.port) {
            ("https", Some(443)) | ("http", Some(80)) | (_, None) => Ok(()),
            (_, Some(port)) => write!(f, ":{port}"),
        }
    }
}

/// A host name as it compares: lower case, no trailing dot.
fn bare_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// Whether two URLs share scheme, host and port: the same destination host. A URL that cannot
/// be parsed shares nothing.
pub fn same_origin(a: &str, b: &str) -> bool {
    match (Origin::of(a), Origin::of(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A Salesforce My Domain: `<name>.my.salesforce.com`, sandboxes
/// (`<name>--<sandbox>.sandbox.my.salesforce.com`) included; a port is ignored.
pub fn is_my_domain(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    bare_host(name)
        .strip_suffix(".my.salesforce.com")
        .is_some_and(|sub| !sub.is_empty() && !sub.starts_with('.') && !sub.ends_with('.'))
}

/// Whether a token the org at `instance_url` issued may be sent to `url`. The rule is the
/// salesforce preset's, whose token answers always carry the org's `instance_url`: the url must
/// share its scheme, host and port. Other presets are not checked (a generic provider names
/// no org), nor is an answer without an `instance_url` (a refresh hook's has none): nothing
/// says which org issued that token.
pub fn check_token_destination(
    kind: ConnectorKind,
    url: &str,
    instance_url: Option<&str>,
) -> Result<(), Diagnosis> {
    let Some(instance_url) = instance_url else {
        return Ok(());
    };
    if kind != ConnectorKind::Salesforce || same_origin(url, instance_url) {
        return Ok(());
    }
    Err(url_not_in_org(url, instance_url))
}

/// The connector's url is not in the org whose token it would receive; the cause names both
/// origins, and the catalog's fix says what to do with them.
pub fn url_not_in_org(url: &str, instance_url: &str) -> Diagnosis {
    let shown = |raw: &str| {
        Origin::of(raw).map_or_else(|| "an unreadable URL".to_owned(), |o| o.to_string())
    };
    let (dest, org) = (shown(url), shown(instance_url));
    Code::UrlNotInOrg
        .diagnosis()
        .with_cause(format!(
            "the connector's url is on {dest}, which is not in the org whose credentials it holds (its instance_url is {org}), so no token is sent there"
        ))
}

/// A registration whose url is not on the My Domain its key names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("url: its host {url_host} is not {org_host}, the My Domain of the key's org")]
pub struct UrlNotInKeyOrg {
    pub url_host: String,
    pub org_host: String,
}

impl Problem for UrlNotInKeyOrg {
    fn code(&self) -> &'static str {
        Code::UrlNotInOrg.as_str()
    }

    fn message(&self) -> String {
        format!("{self}: the org's tokens would be sent to another host, so the url is refused")
    }

    fn fix(&self) -> String {
        format!(
            "use a url on {org}, e.g. https://{org}/services/apexrest/OSS/callback; or give the key of the org {url} belongs to (its My Domain as host)",
            org = self.org_host,
            url = self.url_host
        )
    }
}

/// The registration rule: a salesforce key whose `host` is a My Domain and that overrides no
/// endpoint names its org, whose tokens go nowhere but that host. A key with an endpoint of its
/// own (a test org on loopback, a proxy) or a login host (`login.salesforce.com`) does not say
/// where the org is; its grants are checked instead (`check_token_destination`).
pub fn check_url_in_key_org(
    url: &str,
    key: &Key,
    kind: ConnectorKind,
) -> Result<(), UrlNotInKeyOrg> {
    let Some(host) = key.host.as_deref() else {
        return Ok(());
    };
    let overridden = key.token_url.is_some()
        || key.revocation_url.is_some()
        || key.introspection_url.is_some()
        || key.authorization_url.is_some();
    if kind != ConnectorKind::Salesforce || overridden || !is_my_domain(host) {
        return Ok(());
    }
    let org_host = bare_host(host.rsplit_once(':').map_or(host, |(name, _)| name));
    let url_host = Origin::of(url).map(|o| o.host).unwrap_or_default();
    if url_host == org_host {
        return Ok(());
    }
    Err(UrlNotInKeyOrg { url_host, org_host })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_scheme_host_and_port() {
        let base = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
        assert!(same_origin(base, "https://acme.my.salesforce.com"));
        assert!(same_origin(
            base,
            "https://acme.my.salesforce.com/other?x=1"
        ));
        // The scheme, the host and the port each make another destination.
        assert!(!same_origin(base, "http://acme.my.salesforce.com"));
        assert!(!same_origin(base, "https://evil.my.salesforce.com"));
        assert!(!same_origin(
            base,
            "https://acme.my.salesforce.com.evil.example"
        ));
        assert!(!same_origin(base, "https://acme.my.salesforce.com:8443"));
        assert!(!same_origin(
            "http://127.0.0.1:8080/a",
            "http://127.0.0.1:8081"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:8080/a",
            "http://localhost:8080"
        ));
    }

    #[test]
    fn hosts_compare_without_case_or_trailing_dot_and_default_ports_are_the_same_port() {
        let base = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
        assert!(same_origin(base, "HTTPS://ACME.My.Salesforce.COM"));
        assert!(same_origin(base, "https://acme.my.salesforce.com./x"));
        assert!(same_origin(base, "https://acme.my.salesforce.com:443"));
        assert!(same_origin(
            "http://example.com/x",
            "http://example.com:80/y"
        ));
        assert!(!same_origin(
            "http://example.com:443",
            "https://example.com"
        ));
        assert!(same_origin("http://[::1]:9/x", "http://[0:0::1]:9"));
    }

    #[test]
    fn an_unreadable_url_is_in_no_org() {
        assert!(!same_origin("not a url", "not a url"));
        assert!(!same_origin("https://acme.my.salesforce.com", ""));
        assert!(!same_origin(
            "mailto:a@acme.my.salesforce.com",
            "https://acme.my.salesforce.com"
        ));
    }

    #[test]
    fn an_origin_is_shown_without_its_default_port() {
        let shown = |raw: &str| Origin::of(raw).unwrap().to_string();
        assert_eq!(
            shown("https://ACME.my.salesforce.com:443/x?token=s3cret"),
            "https://acme.my.salesforce.com"
        );
        assert_eq!(shown("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
        assert_eq!(shown("http://example.com:80"), "http://example.com");
    }

    #[test]
    fn my_domains_and_their_sandboxes_are_told_from_login_hosts() {
        for host in [
            "acme.my.salesforce.com",
            "ACME.my.salesforce.com.",
            "acme--dev.sandbox.my.salesforce.com",
            "acme.my.salesforce.com:443",
        ] {
            assert!(is_my_domain(host), "{host}");
        }
        for host in [
            "login.salesforce.com",
            "test.salesforce.com",
            "my.salesforce.com",
            ".my.salesforce.com",
            "acme.lightning.force.com",
            "acme.my.salesforce.com.evil.example",
            "acmemy.salesforce.com",
        ] {
            assert!(!is_my_domain(host), "{host}");
        }
    }

    #[test]
    fn only_a_salesforce_token_with_an_instance_url_is_held_to_its_org() {
        let url = "https://evil.example/services/apexrest/OSS/callback";
        let org = Some("https://acme.my.salesforce.com");
        let d = check_token_destination(ConnectorKind::Salesforce, url, org).unwrap_err();
        assert_eq!(d.code, "url_not_in_org");
        assert!(
            d.cause.contains("https://evil.example")
                && d.cause.contains("https://acme.my.salesforce.com"),
            "{}",
            d.cause
        );
        assert!(
            !d.cause.contains("apexrest"),
            "an origin, not the url: {}",
            d.cause
        );
        assert_eq!(d.fix, Code::UrlNotInOrg.fix(), "the catalog's fix");
        let home = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
        assert!(check_token_destination(ConnectorKind::Salesforce, home, org).is_ok());
        assert!(check_token_destination(ConnectorKind::Salesforce, url, None).is_ok());
        for other in [ConnectorKind::Generic, ConnectorKind::Dynamics] {
            assert!(check_token_destination(other, url, org).is_ok());
        }
    }

    fn key(json: serde_json::Value) -> Key {
        Key::from_storage_json(&json.to_string(), ConnectorKind::Salesforce).unwrap()
    }

    #[test]
    fn a_my_domain_key_without_endpoints_of_its_own_keeps_the_url_on_its_host() {
        let my_domain = key(serde_json::json!({
            "host": "acme.my.salesforce.com", "client_id": "c", "client_secret": "s"
        }));
        let home = "https://ACME.my.salesforce.com/services/apexrest/OSS/callback";
        assert!(check_url_in_key_org(home, &my_domain, ConnectorKind::Salesforce).is_ok());
        let away = "https://evil.example/services/apexrest/OSS/callback?k=secret";
        let e = check_url_in_key_org(away, &my_domain, ConnectorKind::Salesforce).unwrap_err();
        assert_eq!(e.code(), "url_not_in_org");
        assert!(
            e.message().contains("evil.example") && e.message().contains("acme.my.salesforce.com"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains("secret"), "{}", e.message());
        assert!(
            e.fix()
                .contains("https://acme.my.salesforce.com/services/apexrest/OSS/callback"),
            "{}",
            e.fix()
        );
        // Another preset's key says nothing of Salesforce orgs.
        assert!(check_url_in_key_org(away, &my_domain, ConnectorKind::Generic).is_ok());
    }

    #[test]
    fn a_key_with_an_endpoint_of_its_own_or_a_login_host_does_not_say_where_the_org_is() {
        for endpoint in [
            "token_url",
            "revocation_url",
            "introspection_url",
            "authorization_url",
        ] {
            let mut json = serde_json::json!({
                "host": "acme.my.salesforce.com", "client_id": "c", "client_secret": "s"
            });
            json[endpoint] = "https://proxy.example/oauth".into();
            let away = "https://evil.example/services/apexrest/OSS/callback";
            assert!(
                check_url_in_key_org(away, &key(json), ConnectorKind::Salesforce).is_ok(),
                "{endpoint}"
            );
        }
        let login = key(serde_json::json!({
            "host": "login.salesforce.com", "client_id": "c", "refresh_token": "r"
        }));
        let away = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
        assert!(check_url_in_key_org(away, &login, ConnectorKind::Salesforce).is_ok());
    }
}
