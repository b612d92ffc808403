//! Which addresses hookwarden may connect to (SSRF guard). Destinations and token endpoints must
//! be public unless the config lists the private networks it allows.
//! IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address.

use std::net::IpAddr;

use ipnet::IpNet;

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
        crate::netguard_impl::parse_list(raw)
    }

    /// Ok when `addr` is public, or lies in an allowed network.
    pub fn check(&self, addr: IpAddr) -> Result<(), NetGuardError> {
        crate::netguard_impl::check(self, addr)
    }
}
