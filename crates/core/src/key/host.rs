//! The `host` and `tenant` fields: reduced to what the presets need, or refused with the reason.

use super::{shorten, KeyError};
use crate::connector::ConnectorKind;

/// Reduce `host` to a host name (and optional port), stripping what is unambiguous.
pub(super) fn normalize_host(
    raw: &str,
    kind: ConnectorKind,
    warnings: &mut Vec<String>,
) -> Result<String, KeyError> {
    let invalid = |reason: &str| KeyError::HostInvalid {
        host: shorten(raw),
        reason: reason.to_owned(),
    };
    let mut h = raw.trim();
    let mut stripped = h.len() != raw.len();
    if let Some(idx) = h.find("://") {
        let scheme = h[..idx].to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(invalid("it starts with a URL scheme other than https://"));
        }
        h = &h[idx + 3..];
        stripped = true;
    }
    if h.contains('@') {
        return Err(invalid("it contains user-info (`user@`)"));
    }
    if h.contains('?') || h.contains('#') {
        return Err(invalid("it contains a query or fragment"));
    }
    if let Some(slash) = h.find('/') {
        if h[slash..].chars().any(|c| c != '/') {
            return Err(invalid(
                "it contains a path; a custom token endpoint goes in `token_url`",
            ));
        }
        h = &h[..slash];
        stripped = true;
    }
    if h.is_empty() {
        return Err(invalid("there is no host name in it"));
    }
    if h.chars().any(char::is_whitespace) {
        return Err(invalid("it contains spaces"));
    }
    let (name, port) = split_port(h).map_err(invalid)?;
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(n) if n > 0) {
            return Err(invalid("its port is not a number from 1 to 65535"));
        }
    }
    check_host_name(name).map_err(invalid)?;

    // A trailing dot is valid DNS but breaks TLS name checks at some providers.
    let bare = name.strip_suffix('.').unwrap_or(name);
    stripped |= bare.len() != name.len();
    let normalized = match port {
        Some(p) => format!("{bare}:{p}"),
        None => bare.to_owned(),
    }
    .to_ascii_lowercase();
    if stripped {
        warnings.push(format!(
            "`host` was given as {:?}; it was reduced to {normalized} — give the host name only, without https:// or a path",
            shorten(raw)
        ));
    }
    if kind == ConnectorKind::Salesforce && port.is_some() {
        warnings.push("`host` has a port; Salesforce endpoints are on 443".to_owned());
    }
    Ok(normalized)
}

fn split_port(h: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = h.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("it has an unclosed '['");
        };
        let after = &rest[end + 1..];
        return match after {
            "" => Ok((&h[..end + 2], None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((&h[..end + 2], Some(port))),
                None => Err("unexpected characters after ']'"),
            },
        };
    }
    match h.matches(':').count() {
        0 => Ok((h, None)),
        1 => h
            .split_once(':')
            .map(|(n, p)| (n, Some(p)))
            .ok_or("it has an unexpected ':'"),
        _ => Err("it has several ':' (an IPv6 address needs brackets)"),
    }
}

fn check_host_name(name: &str) -> Result<(), &'static str> {
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "the bracketed part is not an IPv6 address");
    }
    if !name.is_ascii() {
        return Err("it has non-ASCII characters; use the punycode (xn--) form");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters");
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(
                "it has characters a host name cannot have (letters, digits, '-' and '.' only)",
            );
        }
    }
    Ok(())
}

/// `host` without port and trailing dot, for comparisons.
pub(super) fn host_name_only(host: &str) -> &str {
    let name = match split_port(host) {
        Ok((name, _)) => name,
        Err(_) => host,
    };
    name.strip_suffix('.').unwrap_or(name)
}

pub(super) fn check_tenant(raw: &str) -> Result<String, KeyError> {
    let t = raw.trim();
    let ok = t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(KeyError::BadValue {
            field: "tenant",
            value: shorten(raw),
            accepted: "a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(raw: &str) -> Result<(String, Vec<String>), &'static str> {
        let mut w = Vec::new();
        normalize_host(raw, ConnectorKind::Salesforce, &mut w)
            .map(|h| (h, w))
            .map_err(|e| e.code())
    }

    #[test]
    fn hosts_are_normalised_or_refused() {
        assert_eq!(
            host("acme.my.salesforce.com").unwrap(),
            ("acme.my.salesforce.com".into(), vec![])
        );
        assert_eq!(
            host("acme.my.salesforce.com.").unwrap().0,
            "acme.my.salesforce.com"
        );
        assert_eq!(
            host("HTTPS://ACME.my.salesforce.com//").unwrap().0,
            "acme.my.salesforce.com"
        );
        assert_eq!(host("[::1]:8443").unwrap().0, "[::1]:8443");
        assert_eq!(host("127.0.0.1:9000").unwrap().0, "127.0.0.1:9000");
        for bad in [
            "::1",
            "[::1",
            "[zz]",
            "a..b",
            "-a.com",
            "a-.com",
            "bücher.de",
            "a:b:c",
            "x.com:0",
            "x.com:",
        ] {
            assert_eq!(host(bad).err(), Some("key_host_invalid"), "{bad}");
        }
    }

    #[test]
    fn login_host_comparison_ignores_port_and_trailing_dot() {
        assert_eq!(
            host_name_only("login.salesforce.com.:443"),
            "login.salesforce.com"
        );
        assert_eq!(host_name_only("[::1]:80"), "[::1]");
    }
}
