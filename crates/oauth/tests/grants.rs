//! Each grant type, auth method, request style and session mode against the fake org, over HTTP.

mod common;

use std::time::Duration;

use common::*;
use hookwarden_core::Clock;
use hookwarden_fake_org::{ClientApp, FakeOrg};
use hookwarden_oauth::{AccessToken, Refusal, TokenManager, TokenOptions};
use hookwarden_store::HistoryKind;
use secrecy::ExposeSecret;
use serde_json::json;

/// An endpoint's 401 for `t` at `at_ms`, as the delivery engine reports it.
fn refusal(t: &AccessToken, at_ms: i64) -> Refusal {
    Refusal {
        version: t.version,
        granted_at_ms: t.granted_at_ms,
        at_ms,
    }
}

fn wall_ms() -> i64 {
    hookwarden_core::SystemClock.now_ms()
}

#[tokio::test]
async fn refresh_token_grant_then_cache_hits() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let tokens = env.manager();

    let first = tokens.token(&c).await.unwrap();
    assert!(first.refreshed);
    assert_eq!(first.instance_url.as_deref(), Some(org.base_url().as_str()));
    for _ in 0..10 {
        let again = tokens.token(&c).await.unwrap();
        assert!(!again.refreshed);
        assert_eq!(again.secret.expose_secret(), first.secret.expose_secret());
        assert_eq!(again.version, first.version);
    }
    assert_eq!(org.stats().grants_total("refresh_token"), 1);

    let h = history(&env, &c).await;
    assert_eq!(
        h.len(),
        1,
        "one grant, no introspection (the key has no secret)"
    );
    assert_eq!(h[0].entry.kind, HistoryKind::Refresh);
    assert_eq!(h[0].entry.outcome, "ok");
    assert_eq!(h[0].entry.http_status, Some(200));
}

#[tokio::test]
async fn refresh_token_grant_with_secret_in_basic_auth() {
    let org = FakeOrg::builder()
        .client(ClientApp::default().require_secret_for_refresh(true))
        .start()
        .await
        .unwrap();
    let env = sqlite_env().await;
    let k = refresh_key(
        &org,
        json!({"client_secret": CLIENT_SECRET, "auth_method": "client_secret_basic", "session": "fixed", "session_timeout_s": 600}),
    );
    let c = env.connector("salesforceOauth2", k).await;
    env.manager().token(&c).await.unwrap();
    assert_eq!(org.stats().grants_ok("refresh_token"), 1);
}

#[tokio::test]
async fn client_credentials_post_body_basic_and_query_style() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let tokens = env.manager();
    let variants = [
        (
            "cc-post-body",
            json!({"auth_method": "client_secret_post", "request_style": "body"}),
        ),
        (
            "cc-basic-body",
            json!({"auth_method": "client_secret_basic"}),
        ),
        ("cc-post-query", json!({"request_style": "query"})),
        (
            "cc-basic-query",
            json!({"auth_method": "client_secret_basic", "request_style": "query"}),
        ),
    ];
    for (i, (name, extra)) in variants.into_iter().enumerate() {
        let mut extra = extra;
        extra["session"] = json!("fixed");
        extra["session_timeout_s"] = json!(600);
        let c = env.connector(name, cc_key(&org, extra)).await;
        let t = tokens
            .token(&c)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(t.refreshed);
        assert_eq!(
            org.stats().grants_ok("client_credentials"),
            i as u64 + 1,
            "{name}"
        );
    }
    // A wrong secret is refused in every placement: the secret really travels.
    let c = env
        .connector(
            "cc-wrong",
            cc_key(
                &org,
                json!({"client_secret": "nope-nope", "request_style": "query"}),
            ),
        )
        .await;
    let e = tokens.token(&c).await.unwrap_err();
    assert_eq!(e.code(), "wrong_client_secret");
}

#[tokio::test]
async fn auto_session_without_expires_in_falls_back_to_the_session_timeout() {
    // No client secret: Salesforce's introspection is out of reach, so the default 7200 s applies.
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let before = chrono::Utc::now().timestamp_millis();
    let t = env.manager().token(&c).await.unwrap();
    let state = env.store.get_token_state(&c.id).await.unwrap().unwrap();
    let issued = state.issued_at.expect("issued_at read");
    // issued_at is milliseconds: it is now, not 1970 nor the year 50000.
    assert!(
        (issued - before).abs() < 60_000,
        "issued_at {issued} vs now {before}"
    );
    assert_eq!(state.access_expires_at, Some(issued + 7_200_000));
    assert_eq!(t.expires_at_ms, Some(issued + 7_200_000));
    assert_eq!(state.refresh_at, Some(issued + 7_200_000 - 60_000));
    assert_eq!(org.stats().introspections_total(), 0);
}

#[tokio::test]
async fn auto_session_uses_introspection_when_the_key_can_authenticate() {
    let org = FakeOrg::builder()
        .session_timeout_s(1800)
        .start()
        .await
        .unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", cc_key(&org, json!({})))
        .await;
    env.manager().token(&c).await.unwrap();
    let state = env.store.get_token_state(&c.id).await.unwrap().unwrap();
    let issued = state.issued_at.unwrap();
    let lifetime = state.access_expires_at.unwrap() - issued;
    // Introspection's exp - iat is in whole seconds.
    assert_eq!(lifetime, 1_800_000);
    assert_eq!(org.stats().introspections.get("active"), Some(&1));
    let h = history(&env, &c).await;
    let kinds: Vec<_> = h.iter().map(|e| e.entry.kind).collect();
    assert_eq!(kinds, vec![HistoryKind::Introspect, HistoryKind::Grant]);
}

#[tokio::test]
async fn fixed_session_ignores_introspection_and_uses_the_timeout() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let k = cc_key(&org, json!({"session": "fixed", "session_timeout_s": 300}));
    let c = env.connector("salesforceOauth2", k).await;
    env.manager().token(&c).await.unwrap();
    let s = env.store.get_token_state(&c.id).await.unwrap().unwrap();
    let lifetime = s.access_expires_at.unwrap() - s.issued_at.unwrap();
    assert_eq!(lifetime, 300_000);
    // 10 % of 300 s is 30 s, less than 60 s.
    assert_eq!(s.access_expires_at.unwrap() - s.refresh_at.unwrap(), 30_000);
    assert_eq!(org.stats().introspections_total(), 0);
}

#[tokio::test]
async fn proactive_refresh_and_session_none() {
    let org = FakeOrg::builder()
        .session_timeout_s(1)
        .start()
        .await
        .unwrap();
    let env = sqlite_env().await;
    let mut clocks = Clocks::new(&org);
    let tokens = env.manager_on(clocks.manager.clone());
    let auto = env
        .connector("short", refresh_key(&org, json!({"session_timeout_s": 1})))
        .await;
    let none = env
        .connector("never", refresh_key(&org, json!({"session": "none"})))
        .await;
    let a1 = tokens.token(&auto).await.unwrap();
    let n1 = tokens.token(&none).await.unwrap();
    assert_eq!(org.stats().grants_ok("refresh_token"), 2);
    clocks.advance(std::time::Duration::from_millis(1200));
    let a2 = tokens.token(&auto).await.unwrap();
    assert!(
        a2.refreshed && a2.version > a1.version,
        "auto refreshes by itself"
    );
    let n2 = tokens.token(&none).await.unwrap();
    assert_eq!(n2.version, n1.version, "none never refreshes by itself");
    assert_eq!(org.stats().grants_ok("refresh_token"), 3);
    // ... only when the endpoint refused it.
    tokens
        .refused(&none.id, refusal(&n1, clocks.manager.now_ms()))
        .await;
    let n3 = tokens.token(&none).await.unwrap();
    assert!(n3.refreshed && n3.version > n1.version);
    assert_eq!(org.stats().grants_ok("refresh_token"), 4);
}

#[tokio::test]
async fn a_stale_401_does_not_throw_away_a_newer_token() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let tokens = env.manager();
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let v1 = tokens.token(&c).await.unwrap();
    tokens.refused(&c.id, refusal(&v1, wall_ms())).await;
    let v2 = tokens.token(&c).await.unwrap();
    assert!(v2.version > v1.version);
    // A delivery that used v1 comes back late with its 401.
    tokens.refused(&c.id, refusal(&v1, wall_ms() + 5_000)).await;
    let v3 = tokens.token(&c).await.unwrap();
    assert_eq!(v3.version, v2.version);
    assert!(!v3.refreshed);
    assert_eq!(org.stats().grants_ok("refresh_token"), 2);
}

/// After a 401 no token as near its session's end as the refused one is served: another
/// node's token, saved a second after the refused one was granted and 1.5 s before it was
/// refused (more than half its life), is passed over for a new grant; one saved moments before
/// a refusal is used.
#[tokio::test]
async fn after_a_401_a_stored_token_half_as_old_as_the_refused_one_is_not_served() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let mut clocks = Clocks::new(&org);
    let a = env.manager_on(clocks.manager.clone());
    let b = TokenManager::new(
        env.store.clone(),
        TokenOptions {
            clock: clocks.manager.clone(),
            ..options("node-b")
        },
    )
    .unwrap();
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let v1 = a.token(&c).await.unwrap();
    clocks.advance(Duration::from_millis(1_000));
    let v2 = b.force_grant(&c).await.unwrap();
    clocks.advance(Duration::from_millis(1_500));
    a.refused(&c.id, refusal(&v1, clocks.manager.now_ms()))
        .await;
    let v3 = a.token(&c).await.unwrap();
    assert!(
        v3.refreshed && v3.version > v2.version,
        "v2 had lived 1.5 s of v1's 2.5: a new grant, not v2 ({} then {})",
        v2.version,
        v3.version
    );
    assert_eq!(org.stats().grants_ok("refresh_token"), 3);

    // v4 saved by the other node 50 ms before v3, which lived 150 ms, is refused: used.
    clocks.advance(Duration::from_millis(100));
    let v4 = b.force_grant(&c).await.unwrap();
    clocks.advance(Duration::from_millis(50));
    a.refused(&c.id, refusal(&v3, clocks.manager.now_ms()))
        .await;
    let v5 = a.token(&c).await.unwrap();
    assert_eq!(v5.version, v4.version);
    assert!(!v5.refreshed);
    assert_eq!(org.stats().grants_ok("refresh_token"), 4);
}

#[tokio::test]
async fn force_grant_grants_even_with_a_fresh_token() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let tokens = env.manager();
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    let a = tokens.token(&c).await.unwrap();
    let b = tokens.force_grant(&c).await.unwrap();
    assert!(b.refreshed && b.version > a.version);
    assert_eq!(tokens.token(&c).await.unwrap().version, b.version);
    assert_eq!(org.stats().grants_ok("refresh_token"), 2);
}

#[tokio::test]
async fn refused_addresses_and_plain_http_are_not_contacted() {
    let org = FakeOrg::builder().start().await.unwrap();
    let env = sqlite_env().await;
    let c = env
        .connector("salesforceOauth2", refresh_key(&org, json!({})))
        .await;
    // Default policy: loopback refused.
    let strict = hookwarden_oauth::TokenManager::new(
        env.store.clone(),
        hookwarden_oauth::TokenOptions {
            allow_insecure_http: true,
            node_id: "strict".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let e = strict.token(&c).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    // http not allowed.
    let no_http = hookwarden_oauth::TokenManager::new(
        env.store.clone(),
        hookwarden_oauth::TokenOptions {
            allow_insecure_http: false,
            node_id: "nohttp".into(),
            ..options("x")
        },
    )
    .unwrap();
    let e = no_http.token(&c).await.unwrap_err();
    assert_eq!(e.code(), "url_not_https");
    // A name that resolves to loopback: refused by the URL rules (localhost) or, for any other
    // name, by the resolver's check of every address it returns.
    let mut names = vec!["localhost".to_owned()];
    if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
        names.extend(
            hosts
                .lines()
                .filter(|l| l.starts_with("127."))
                .flat_map(|l| {
                    l.split_whitespace()
                        .skip(1)
                        .filter(|n| !n.contains("localhost"))
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                }),
        );
    }
    for (i, name) in names.iter().enumerate() {
        let named = env
            .connector(
                &format!("named{i}"),
                json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                       "token_url": org.token_url().replace("127.0.0.1", name)}),
            )
            .await;
        let e = strict.token(&named).await.unwrap_err();
        assert_eq!(e.code(), "url_address_refused", "{name}: {e}");
    }
    assert_eq!(org.stats().grants_total("refresh_token"), 0);
    assert_eq!(org.stats().grants_total("client_credentials"), 0);
    // Our own refusal is configuration, not bad credentials: the connector stays active.
    assert_eq!(
        env.reload(&c).await.status,
        hookwarden_core::ConnectorStatus::Active
    );
}
