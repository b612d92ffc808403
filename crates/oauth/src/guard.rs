//! The SSRF guard shared by every outbound client (token engine and delivery workers): names are
//! resolved by this resolver, every address is checked with the `AddressPolicy`, and reqwest is
//! handed only checked addresses, so what is checked is what is connected to (no second lookup
//! that DNS rebinding could answer differently).

use std::net::SocketAddr;
use std::sync::Arc;

use hookwarden_core::AddressPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A name that resolves to no address, or to one the policy refuses. Find it in a reqwest
/// error's source chain to tell "not allowed" from a network failure.
#[derive(Debug)]
pub struct AddressRefused(pub String);

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressRefused {}

struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(Box::new(AddressRefused(format!("{host} has no address"))) as _);
            }
            // Every address must pass: DNS answers in any order, and a rebinding attacker
            // controls which one comes first, so a name that also resolves privately is refused.
            for a in &addrs {
                if let Err(e) = policy.check(a.ip()) {
                    return Err(Box::new(AddressRefused(format!(
                        "{host} resolves to an address that is not allowed: {e}"
                    ))) as _);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The resolver to give `reqwest::ClientBuilder::dns_resolver`.
pub fn guarded_resolver(policy: AddressPolicy) -> Arc<impl Resolve + 'static> {
    Arc::new(GuardedResolver { policy })
}

/// The `AddressRefused` somewhere in an error's source chain, if any.
pub fn address_refused<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a AddressRefused> {
    let mut source: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            return Some(refused);
        }
        source = e.source();
    }
    None
}
