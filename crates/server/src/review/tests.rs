//! Each check of the review at each of its levels, on records built in memory.

use hookwarden_core::{AccountId, ConnectorStatus, Credentials, DiagnosisView};
use hookwarden_store::{ConnectorRecord, DeliveryTrack, TokenState};
use secrecy::SecretString;
use serde_json::json;

use super::*;

const NOW: i64 = 1_800_000_000_000;
const ORG: &str = "https://acme.my.salesforce.com";
const URL: &str = "https://acme.my.salesforce.com/services/apexrest/OSS/callback";
const G: Governance = Governance {
    secret_max_age_days: 90,
    keepalive_days: 7,
};

fn record(kind: &str, key: serde_json::Value) -> ConnectorRecord {
    let credentials =
        Credentials::from_storage(kind, None, SecretString::from(key.to_string())).unwrap();
    ConnectorRecord {
        id: "con_1".into(),
        account_id: AccountId::from("acct"),
        name: "salesforceOauth2".into(),
        url: URL.into(),
        events: vec![],
        origins: vec![],
        owner: Some("ops@acme.example".into()),
        settings: json!({}),
        status: ConnectorStatus::Active,
        status_diagnosis: None,
        warnings: vec![],
        credentials,
        signing_secret: SecretString::from("whsec_x".to_owned()),
        previous_signing_secret: None,
        previous_signing_until: None,
        credentials_version: 1,
        credentials_changed_at: NOW - 10 * DAY_MS,
        signing_secret_changed_at: NOW - 10 * DAY_MS,
        refresh_token_idle_days: None,
        failing_since: None,
        created_at: NOW - 10 * DAY_MS,
        updated_at: NOW - 10 * DAY_MS,
    }
}

fn client_credentials() -> ConnectorRecord {
    record(
        "salesforce",
        json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": "s"}),
    )
}

fn refresh_token() -> ConnectorRecord {
    record(
        "salesforce",
        json!({"host": "login.salesforce.com", "client_id": "c", "refresh_token": "r"}),
    )
}

fn granted(scope: &str) -> TokenState {
    TokenState {
        credentials_version: 1,
        version: 2,
        instance_url: Some(ORG.into()),
        scope: Some(scope.into()),
        last_grant_at: Some(NOW - DAY_MS),
        ..TokenState::default()
    }
}

fn run(c: &ConnectorRecord, token: Option<&TokenState>, d: &DeliveryTrack) -> Vec<Check> {
    run_with(c, token, d, &G)
}

fn run_with(
    c: &ConnectorRecord,
    token: Option<&TokenState>,
    d: &DeliveryTrack,
    g: &Governance,
) -> Vec<Check> {
    review(
        &Facts {
            connector: c,
            token,
            deliveries: d,
            now: NOW,
        },
        g,
    )
}

fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

/// The one check not at level ok, and its level; every other check is ok.
fn only(checks: &[Check], name: &str, level: Level) -> Check {
    for c in checks {
        if c.name == name {
            assert_eq!(c.level, level, "{c:?}");
            if level != Level::Ok {
                assert!(c.fix.as_deref().is_some_and(|f| !f.is_empty()), "{c:?}");
            }
        } else {
            assert_eq!(c.level, Level::Ok, "only {name} should be off: {c:?}");
        }
    }
    check(checks, name).clone()
}

const NAMES: [&str; 10] = [
    "owner",
    "scope",
    "host",
    "url_in_org",
    "secret_age",
    "refresh_token_idle",
    "last_grant",
    "last_delivery",
    "status",
    "signing_secret_age",
];

#[test]
fn a_healthy_connector_passes_every_check_and_each_is_listed_once() {
    for (c, token) in [
        (client_credentials(), granted("api")),
        (refresh_token(), granted("api refresh_token")),
    ] {
        let checks = run(&c, Some(&token), &DeliveryTrack::default());
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, NAMES);
        for check in &checks {
            assert_eq!(check.level, Level::Ok, "{check:?}");
            assert!(!check.detail.is_empty());
        }
        assert!(passes(&checks));
    }
}

#[test]
fn checks_that_do_not_apply_are_ok_and_say_so() {
    let checks = run(&refresh_token(), None, &DeliveryTrack::default());
    for name in ["scope", "host"] {
        let c = check(&checks, name);
        assert_eq!(c.level, Level::Ok);
        assert!(c.detail.starts_with("does not apply"), "{c:?}");
    }
    let checks = run(&client_credentials(), None, &DeliveryTrack::default());
    assert!(check(&checks, "refresh_token_idle")
        .detail
        .starts_with("does not apply"));
    let generic = record(
        "generic",
        json!({"token_url": "https://login.example.com/token", "client_id": "c", "client_secret": "s"}),
    );
    let checks = run(&generic, None, &DeliveryTrack::default());
    for name in ["scope", "host", "url_in_org", "refresh_token_idle"] {
        assert!(
            check(&checks, name).detail.starts_with("does not apply"),
            "{name}"
        );
    }
}

#[test]
fn a_missing_owner_is_a_warning() {
    let mut c = client_credentials();
    c.owner = None;
    let owner = only(
        &run(&c, Some(&granted("api")), &DeliveryTrack::default()),
        "owner",
        Level::Warn,
    );
    assert!(owner.fix.unwrap().contains("\"owner\""));
}

#[test]
fn a_client_credentials_scope_other_than_api_fails() {
    let wide = granted("api web full");
    let scope = only(
        &run(
            &client_credentials(),
            Some(&wide),
            &DeliveryTrack::default(),
        ),
        "scope",
        Level::Fail,
    );
    assert!(scope.detail.contains("web, full beyond `api`"), "{scope:?}");
    // Asked for in the key, before any grant.
    let asking = record(
        "salesforce",
        json!({"host": "acme.my.salesforce.com", "client_id": "c", "client_secret": "s", "scope": "api chatter_api"}),
    );
    let checks = run(&asking, None, &DeliveryTrack::default());
    assert_eq!(check(&checks, "scope").level, Level::Fail);
    assert!(check(&checks, "scope").detail.contains("the key asks for"));
    // A grant without api at all.
    let checks = run(
        &client_credentials(),
        Some(&granted("web")),
        &DeliveryTrack::default(),
    );
    assert!(check(&checks, "scope").detail.contains("without `api`"));
    // A grant for older credentials says nothing of these.
    let old = TokenState {
        credentials_version: 0,
        ..granted("api web")
    };
    let checks = run(&client_credentials(), Some(&old), &DeliveryTrack::default());
    assert_eq!(check(&checks, "scope").level, Level::Ok);
}

#[test]
fn a_client_credentials_host_that_is_not_a_my_domain_fails() {
    for host in ["acme.lightning.force.com", "127.0.0.1:8443"] {
        let c = record(
            "salesforce",
            json!({"host": host, "client_id": "c", "client_secret": "s", "token_url": "https://127.0.0.1:8443/token"}),
        );
        let host_check = only(
            &run(&c, Some(&granted("api")), &DeliveryTrack::default()),
            "host",
            Level::Fail,
        );
        assert!(host_check.detail.contains(host), "{host_check:?}");
        assert!(host_check.fix.unwrap().contains("My Domain"));
    }
}

#[test]
fn a_url_outside_the_org_fails() {
    let mut c = client_credentials();
    c.url = "https://evil.example/services/apexrest/OSS/callback?k=secret".into();
    let checks = run(&c, Some(&granted("api")), &DeliveryTrack::default());
    let url = only(&checks, "url_in_org", Level::Fail);
    assert!(
        url.detail.contains("https://evil.example") && url.detail.contains(ORG),
        "{url:?}"
    );
    assert!(!url.detail.contains("secret"), "origins only: {url:?}");
    // Before any grant, by the key's My Domain.
    let checks = run(&c, None, &DeliveryTrack::default());
    assert_eq!(check(&checks, "url_in_org").level, Level::Fail);
    // Before any grant with a login host, nothing says where the org is.
    let mut rt = refresh_token();
    rt.url = c.url.clone();
    let checks = run(&rt, None, &DeliveryTrack::default());
    let unknown = check(&checks, "url_in_org");
    assert_eq!(unknown.level, Level::Ok);
    assert!(unknown.detail.contains("not known yet"), "{unknown:?}");
}

#[test]
fn credentials_and_signing_secrets_older_than_the_maximum_are_warnings() {
    let mut c = client_credentials();
    c.credentials_changed_at = NOW - 91 * DAY_MS;
    let checks = run(&c, Some(&granted("api")), &DeliveryTrack::default());
    let age = only(&checks, "secret_age", Level::Warn);
    assert!(age.detail.contains("91 days"), "{age:?}");
    assert!(age.fix.unwrap().contains("consumer secret"));
    // 90 days exactly is not older than 90.
    c.credentials_changed_at = NOW - 90 * DAY_MS;
    assert!(run(&c, Some(&granted("api")), &DeliveryTrack::default())
        .iter()
        .all(|c| c.level == Level::Ok));

    let mut c = client_credentials();
    c.signing_secret_changed_at = NOW - 200 * DAY_MS;
    let signing = only(
        &run(&c, Some(&granted("api")), &DeliveryTrack::default()),
        "signing_secret_age",
        Level::Warn,
    );
    assert!(signing.fix.unwrap().contains("signing-secret/rotate"));
    // secret_max_age_days 0: no maximum.
    let off = Governance {
        secret_max_age_days: 0,
        ..G
    };
    let checks = run_with(&c, Some(&granted("api")), &DeliveryTrack::default(), &off);
    assert!(checks.iter().all(|c| c.level == Level::Ok), "{checks:?}");
}

#[test]
fn an_idle_refresh_token_is_a_warning() {
    let mut c = refresh_token();
    c.refresh_token_idle_days = Some(30);
    let idle = TokenState {
        last_grant_at: Some(NOW - 31 * DAY_MS),
        ..granted("api refresh_token")
    };
    c.credentials_changed_at = NOW - 40 * DAY_MS;
    let checks = run(&c, Some(&idle), &DeliveryTrack::default());
    let warned = only(&checks, "refresh_token_idle", Level::Warn);
    assert!(
        warned.detail.contains("31 days") && warned.detail.contains("expired already"),
        "{warned:?}"
    );
    // Used recently: ok, with the policy and the keep-alive named.
    let checks = run(
        &c,
        Some(&granted("api refresh_token")),
        &DeliveryTrack::default(),
    );
    let fine = check(&checks, "refresh_token_idle");
    assert_eq!(fine.level, Level::Ok, "{fine:?}");
    assert!(fine.detail.contains("30 days") && fine.detail.contains("after 7 days"));
    // A keep-alive that comes too late, or never, cannot save it.
    for keepalive_days in [0, 30, 45] {
        let g = Governance {
            keepalive_days,
            ..G
        };
        let checks = run_with(
            &c,
            Some(&granted("api refresh_token")),
            &DeliveryTrack::default(),
            &g,
        );
        let late = only(&checks, "refresh_token_idle", Level::Warn);
        assert!(late.fix.unwrap().contains("keepalive_days below 30"));
    }
    // New credentials are a fresh token, whatever the last grant of the old ones.
    c.credentials_changed_at = NOW - DAY_MS;
    let checks = run(&c, Some(&idle), &DeliveryTrack::default());
    assert_eq!(check(&checks, "refresh_token_idle").level, Level::Ok);
}

#[test]
fn grant_failures_since_the_last_success_are_a_warning() {
    let failing = TokenState {
        consecutive_failures: 3,
        last_error: Some("temporarily_unavailable: the org is in maintenance".into()),
        ..granted("api")
    };
    let grant = only(
        &run(
            &client_credentials(),
            Some(&failing),
            &DeliveryTrack::default(),
        ),
        "last_grant",
        Level::Warn,
    );
    assert!(
        grant.detail.starts_with("3 grant(s) failed") && grant.detail.contains("maintenance"),
        "{grant:?}"
    );
}

#[test]
fn delivery_failures_since_the_last_delivered_one_are_a_warning() {
    for d in [
        DeliveryTrack {
            last_delivered_at: Some(NOW - DAY_MS),
            failed_since: 2,
            retrying: 0,
        },
        DeliveryTrack {
            last_delivered_at: None,
            failed_since: 0,
            retrying: 1,
        },
    ] {
        let delivery = only(
            &run(&client_credentials(), Some(&granted("api")), &d),
            "last_delivery",
            Level::Warn,
        );
        assert!(delivery.fix.unwrap().contains("replay"));
    }
}

#[test]
fn a_connector_that_is_not_active_fails_with_its_diagnosis() {
    let mut c = client_credentials();
    c.status = ConnectorStatus::NeedsReauth;
    c.status_diagnosis = Some(DiagnosisView {
        code: "no_run_as_user".into(),
        cause: "no Run As user is set".into(),
        fix: "set a Run As user in the connected app".into(),
    });
    let checks = run(&c, Some(&granted("api")), &DeliveryTrack::default());
    let status = only(&checks, "status", Level::Fail);
    assert_eq!(status.detail, "needs_reauth: no Run As user is set");
    assert_eq!(
        status.fix.unwrap(),
        "set a Run As user in the connected app"
    );
    assert!(!passes(&checks));
    c.status = ConnectorStatus::Revoked;
    c.status_diagnosis = None;
    let checks = run(&c, Some(&granted("api")), &DeliveryTrack::default());
    assert_eq!(check(&checks, "status").level, Level::Fail);
    assert!(check(&checks, "status").fix.is_some());
}

#[test]
fn warnings_alone_pass_a_failure_does_not() {
    let warn = Check::new("owner", Level::Warn, "x", Some("y".into()));
    let fail = Check::new("status", Level::Fail, "x", Some("y".into()));
    assert!(passes(std::slice::from_ref(&warn)));
    assert!(!passes(&[warn, fail]));
    assert_eq!(
        serde_json::to_value(Level::Warn).unwrap(),
        serde_json::json!("warn")
    );
}
