//! Callback URLs and endpoint URLs as registration sees them.

use hookwarden_core::url_rules::check_endpoint;
use hookwarden_core::{AddressPolicy, CallbackUrl, ConnectorKind, Problem};

use ConnectorKind::{Generic, Salesforce};

fn refused(raw: &str, insecure: bool, policy: &AddressPolicy) -> Option<&'static str> {
    CallbackUrl::parse(raw, Generic, insecure, policy)
        .err()
        .map(|e| e.code())
}

#[test]
fn callback_urls_table() {
    let none = AddressPolicy::default();
    let loopback = AddressPolicy::parse_list("127.0.0.0/8").unwrap();
    let long = format!("https://example.com/{}", "a".repeat(2100));
    let cases: Vec<(&str, bool, &AddressPolicy, Option<&str>)> = vec![
        (
            "https://acme.my.salesforce.com/services/apexrest/OSS/callback",
            false,
            &none,
            None,
        ),
        ("https://example.com:8443/hook?x=1", false, &none, None),
        ("https://8.8.8.8/hook", false, &none, None),
        ("", false, &none, Some("url_not_absolute")),
        (
            "/services/apexrest/OSS/callback",
            false,
            &none,
            Some("url_not_absolute"),
        ),
        (
            "acme.my.salesforce.com/services/apexrest/OSS/callback",
            false,
            &none,
            Some("url_not_absolute"),
        ),
        (
            "http://example.com/hook",
            false,
            &none,
            Some("url_not_https"),
        ),
        ("http://example.com/hook", true, &none, None),
        (
            "ftp://example.com/hook",
            true,
            &none,
            Some("url_scheme_refused"),
        ),
        (
            "file:///etc/passwd",
            true,
            &none,
            Some("url_scheme_refused"),
        ),
        (
            "javascript:alert(1)",
            true,
            &none,
            Some("url_scheme_refused"),
        ),
        (
            "https://user:pass@example.com/hook",
            false,
            &none,
            Some("url_has_userinfo"),
        ),
        (
            "https://user@example.com/hook",
            false,
            &none,
            Some("url_has_userinfo"),
        ),
        ("https://", false, &none, Some("url_empty_host")),
        ("https://exa mple.com/", false, &none, Some("url_invalid")),
        (
            "https://example.com:99999/",
            false,
            &none,
            Some("url_invalid"),
        ),
        (
            "https://127.0.0.1/hook",
            false,
            &none,
            Some("url_address_refused"),
        ),
        (
            "https://169.254.169.254/latest/meta-data",
            false,
            &none,
            Some("url_address_refused"),
        ),
        (
            "https://10.0.0.1/",
            false,
            &none,
            Some("url_address_refused"),
        ),
        ("https://[::1]/", false, &none, Some("url_address_refused")),
        (
            "https://[::ffff:127.0.0.1]/",
            false,
            &none,
            Some("url_address_refused"),
        ),
        // WHATWG parsing turns these spellings into 127.0.0.1.
        (
            "https://2130706433/",
            false,
            &none,
            Some("url_address_refused"),
        ),
        ("https://0x7f.1/", false, &none, Some("url_address_refused")),
        (
            "https://localhost:8080/hook",
            false,
            &none,
            Some("url_address_refused"),
        ),
        (
            "https://api.localhost/hook",
            false,
            &none,
            Some("url_address_refused"),
        ),
        ("http://127.0.0.1:9000/hook", true, &loopback, None),
        ("http://localhost:9000/hook", true, &loopback, None),
        (
            "http://127.0.0.1:9000/hook",
            false,
            &loopback,
            Some("url_not_https"),
        ),
        (long.as_str(), false, &none, Some("url_too_long")),
    ];
    let mut failures = Vec::new();
    for (raw, insecure, policy, want) in cases {
        let got = refused(raw, insecure, policy);
        if got != want {
            failures.push(format!("{raw:.60}: got {got:?}, wanted {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn address_refusal_names_address_range_and_setting() {
    let e = CallbackUrl::parse(
        "https://169.254.169.254/x",
        Generic,
        false,
        &AddressPolicy::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "url_address_refused");
    let m = e.message();
    assert!(
        m.starts_with("url: ") && m.contains("169.254.169.254") && m.contains("link-local"),
        "{m}"
    );
    assert!(e.fix().contains("allow_private_networks"), "{}", e.fix());
}

#[test]
fn errors_never_repeat_credentials_in_the_url() {
    for raw in [
        "https://admin:hunter2secret@example.com/x",
        "http://example.com/x?code=hunter2secret",
        "ftp://example.com/x?code=hunter2secret",
    ] {
        let e = CallbackUrl::parse(raw, Generic, false, &AddressPolicy::default()).unwrap_err();
        assert!(
            !e.message().contains("hunter2secret") && !e.fix().contains("hunter2secret"),
            "{e}"
        );
    }
}

#[test]
fn endpoint_errors_name_their_field() {
    let e = check_endpoint(
        "http://idp.example.com/token",
        "token_url",
        false,
        &AddressPolicy::default(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "url_not_https");
    assert!(e.message().starts_with("token_url: "), "{}", e.message());
    assert!(e.fix().contains("allow_insecure_http"));

    let url = check_endpoint(
        "https://idp.example.com/token",
        "token_url",
        false,
        &AddressPolicy::default(),
    )
    .unwrap();
    assert_eq!(url.as_str(), "https://idp.example.com/token");
}

#[test]
fn salesforce_callbacks_outside_apex_rest_are_warned() {
    let p = AddressPolicy::default();
    let ok = |raw: &str| CallbackUrl::parse(raw, Salesforce, false, &p).unwrap().1;

    assert!(ok("https://acme.my.salesforce.com/services/apexrest/OSS/callback").is_empty());
    assert!(ok("https://acme.my.salesforce.com/services/apexrest/ONSS/OSS/callback").is_empty());

    let w = ok("https://acme.my.salesforce.com/OSS/callback");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("/services/apexrest/"), "{w:?}");

    let w = ok("https://acme.my.salesforce.com/services/apexrest/");
    assert!(
        w.iter().any(|x| x.contains("without the resource")),
        "{w:?}"
    );

    let w = ok("https://login.salesforce.com/services/apexrest/OSS/callback");
    assert!(w.iter().any(|x| x.contains("My Domain")), "{w:?}");

    // Other connectors may have any path.
    assert!(
        CallbackUrl::parse("https://example.com/hook", Generic, false, &p)
            .unwrap()
            .1
            .is_empty()
    );
}

#[test]
fn fragments_are_dropped_with_a_warning() {
    let (url, w) = CallbackUrl::parse(
        "https://example.com/hook#part",
        Generic,
        false,
        &AddressPolicy::default(),
    )
    .unwrap();
    assert_eq!(url.as_str(), "https://example.com/hook");
    assert!(w[0].contains("fragment"), "{w:?}");
}
