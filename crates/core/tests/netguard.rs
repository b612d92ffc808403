//! The SSRF guard: which addresses a destination or token endpoint may have.

use std::net::IpAddr;

use hookwarden_core::{AddressPolicy, NetGuardError, Problem};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn refused_range(policy: &AddressPolicy, addr: &str) -> Option<&'static str> {
    match policy.check(ip(addr)) {
        Ok(()) => None,
        Err(NetGuardError::Refused { range, .. }) => Some(range),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn default_policy_refuses_non_public_addresses() {
    let policy = AddressPolicy::default();
    let cases: &[(&str, Option<&str>)] = &[
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001::200e", None),
        ("169.254.169.254", Some("link-local")),
        ("10.0.0.1", Some("private")),
        ("172.16.0.1", Some("private")),
        ("172.31.255.255", Some("private")),
        ("172.32.0.1", None),
        ("192.168.1.1", Some("private")),
        ("127.0.0.1", Some("loopback")),
        ("127.255.255.254", Some("loopback")),
        ("::1", Some("loopback")),
        ("::ffff:127.0.0.1", Some("loopback")),
        ("::ffff:10.1.2.3", Some("private")),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::a9fe:a9fe", Some("link-local")),
        ("2002:7f00:1::", Some("loopback")),
        ("0.0.0.0", Some("unspecified")),
        ("::", Some("unspecified")),
        ("0.1.2.3", Some("this-network")),
        ("255.255.255.255", Some("broadcast")),
        ("100.64.0.1", Some("cgnat")),
        ("100.127.255.255", Some("cgnat")),
        ("100.128.0.1", None),
        ("224.0.0.1", Some("multicast")),
        ("ff02::1", Some("multicast")),
        ("192.0.2.10", Some("documentation")),
        ("198.51.100.7", Some("documentation")),
        ("203.0.113.9", Some("documentation")),
        ("2001:db8::1", Some("documentation")),
        ("198.18.0.1", Some("benchmarking")),
        ("240.0.0.1", Some("reserved")),
        ("fc00::1", Some("private")),
        ("fd12:3456::1", Some("private")),
        ("fe80::1", Some("link-local")),
        ("fec0::1", Some("site-local")),
        ("4000::1", Some("reserved")),
    ];
    let mut failures = Vec::new();
    for (addr, want) in cases {
        let got = refused_range(&policy, addr);
        if got != *want {
            failures.push(format!("{addr}: got {got:?}, wanted {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn allowed_networks_pass() {
    let policy = AddressPolicy::parse_list("127.0.0.0/8").unwrap();
    assert_eq!(policy.check(ip("127.0.0.1")), Ok(()));
    assert_eq!(policy.check(ip("::ffff:127.0.0.1")), Ok(()));
    assert_eq!(refused_range(&policy, "::1"), Some("loopback"));
    assert_eq!(refused_range(&policy, "10.0.0.1"), Some("private"));

    let policy = AddressPolicy::parse_list(" 10.0.0.0/8 , ::1, 192.168.1.7 ,").unwrap();
    assert_eq!(policy.allowed.len(), 3);
    for ok in ["10.9.8.7", "::1", "192.168.1.7"] {
        assert_eq!(policy.check(ip(ok)), Ok(()), "{ok}");
    }
    assert_eq!(refused_range(&policy, "192.168.1.8"), Some("private"));
}

#[test]
fn parse_list_reads_cidrs_and_bare_addresses() {
    assert_eq!(
        AddressPolicy::parse_list("").unwrap(),
        AddressPolicy::default()
    );
    assert_eq!(
        AddressPolicy::parse_list("  ").unwrap(),
        AddressPolicy::default()
    );
    let p = AddressPolicy::parse_list("127.0.0.1,fd00::/8").unwrap();
    assert_eq!(p.allowed[0].to_string(), "127.0.0.1/32");
    assert_eq!(p.allowed[1].to_string(), "fd00::/8");
    // Host bits are dropped: the entry means the network.
    assert_eq!(
        AddressPolicy::parse_list("10.1.2.3/8").unwrap().allowed[0].to_string(),
        "10.0.0.0/8"
    );

    for bad in [
        "localhost",
        "10.0.0.0/33",
        "10.0.0/8",
        "127.0.0.1;10.0.0.0/8",
    ] {
        let e = AddressPolicy::parse_list(bad).unwrap_err();
        assert!(matches!(e, NetGuardError::BadCidr(_)), "{bad}");
        assert_eq!(e.code(), "config_bad_cidr");
        assert!(e.message().contains("allow_private_networks"));
    }
}

#[test]
fn refusal_names_address_range_and_setting() {
    let e = AddressPolicy::default()
        .check(ip("169.254.169.254"))
        .unwrap_err();
    assert_eq!(e.code(), "address_refused");
    assert!(
        e.message().contains("169.254.169.254") && e.message().contains("link-local"),
        "{}",
        e.message()
    );
    assert!(e.fix().contains("allow_private_networks"), "{}", e.fix());
}
