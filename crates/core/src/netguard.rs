//! Which addresses hookwarden may connect to (SSRF guard). Destinations and token endpoints must
//! be public unless the config lists the private networks it allows.
//! IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::problem::Problem;

/// The `allow_private_networks` setting, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allowed: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetGuardError {
    /// The address is loopback/private/link-local/multicast/unspecified/... and not allowed.
    #[error("address {addr} is in a refused range ({range})")]
    Refused { addr: IpAddr, range: &'static str },
    /// A CIDR in `allow_private_networks` could not be read.
    #[error("allow_private_networks entry {0:?} is not a CIDR such as 127.0.0.0/8")]
    BadCidr(String),
}

impl AddressPolicy {
    /// Parse a comma-separated CIDR list ("127.0.0.0/8, ::1/128"); a bare address means /32 or /128.
    pub fn parse_list(raw: &str) -> Result<Self, NetGuardError> {
        let mut allowed = Vec::new();
        // Empty pieces ("a,,b", a trailing comma) are tolerated: env vars are often built by scripts.
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(addr) => IpNet::from(addr),
                    Err(_) => {
                        return Err(NetGuardError::BadCidr(entry.chars().take(80).collect()));
                    }
                },
            };
            allowed.push(net);
        }
        Ok(AddressPolicy { allowed })
    }

    /// Ok when `addr` is public, or lies in an allowed network.
    pub fn check(&self, addr: IpAddr) -> Result<(), NetGuardError> {
        let judged = canonical(addr);
        if self
            .allowed
            .iter()
            .any(|net| net.contains(&addr) || net.contains(&judged))
        {
            return Ok(());
        }
        match refused_range(judged) {
            Some(range) => Err(NetGuardError::Refused { addr, range }),
            None => Ok(()),
        }
    }
}

/// IPv6 forms that carry an IPv4 address are judged by that address, so `::ffff:127.0.0.1`
/// or `64:ff9b::a00:1` cannot smuggle loopback or private targets past the guard.
fn canonical(addr: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = addr else {
        return addr;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    // 64:ff9b::/96, the NAT64 well-known prefix (RFC 6052).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(embedded_v4(s[6], s[7]));
    }
    // 2002::/16, 6to4: the IPv4 address follows the prefix.
    if s[0] == 0x2002 {
        return IpAddr::V4(embedded_v4(s[1], s[2]));
    }
    addr
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn refused_range(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

/// IANA IPv4 special-purpose registry, minus the few globally reachable entries.
/// Matched in order, so the specific names (unspecified, broadcast) win over their blocks.
const V4_RANGES: [(Ipv4Addr, u8, &str); 17] = [
    (Ipv4Addr::new(0, 0, 0, 0), 32, "unspecified"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this-network"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "cgnat"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "reserved"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "reserved"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

const V6_RANGES: [(Ipv6Addr, u8, &str); 12] = [
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "private"),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "reserved"),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "reserved"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "private"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
    // Only 2000::/3 is allocated for global unicast; anything else is not a destination.
    (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3, ""),
];

fn refused_v4(addr: Ipv4Addr) -> Option<&'static str> {
    V4_RANGES.iter().find_map(|&(net, len, name)| {
        Ipv4Net::new(net, len)
            .ok()
            .filter(|n| n.contains(&addr))
            .map(|_| name)
    })
}

fn refused_v6(addr: Ipv6Addr) -> Option<&'static str> {
    let hit = V6_RANGES.iter().find_map(|&(net, len, name)| {
        Ipv6Net::new(net, len)
            .ok()
            .filter(|n| n.contains(&addr))
            .map(|_| name)
    });
    match hit {
        // The global unicast block: public.
        Some("") => None,
        Some(name) => Some(name),
        None => Some("reserved"),
    }
}

impl Problem for NetGuardError {
    fn code(&self) -> &'static str {
        match self {
            Self::Refused { .. } => "address_refused",
            Self::BadCidr(_) => "config_bad_cidr",
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn fix(&self) -> String {
        match self {
            Self::Refused { addr, .. } => format!(
                "use a public destination, or allow this network in `allow_private_networks` (HOOKWARDEN_ALLOW_PRIVATE_NETWORKS), e.g. {}",
                IpNet::from(*addr)
            ),
            Self::BadCidr(_) => {
                "give comma-separated networks such as \"127.0.0.0/8, 10.0.0.0/8, ::1/128\"".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_ipv4_is_extracted() {
        let c = |s: &str| canonical(s.parse().unwrap()).to_string();
        assert_eq!(c("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(c("64:ff9b::7f00:1"), "127.0.0.1");
        assert_eq!(c("2002:a00:1::1"), "10.0.0.1");
        assert_eq!(c("2606:4700::1"), "2606:4700::1");
        assert_eq!(c("8.8.8.8"), "8.8.8.8");
    }

    #[test]
    fn every_range_in_the_tables_is_well_formed() {
        for (net, len, _) in V4_RANGES {
            assert!(Ipv4Net::new(net, len).is_ok(), "{net}/{len}");
        }
        for (net, len, _) in V6_RANGES {
            assert!(Ipv6Net::new(net, len).is_ok(), "{net}/{len}");
        }
    }
}
