//! Authorize → code → exchange: with PKCE, without it (then the client secret is needed), and
//! the authorize requests refused, in the answer or in the redirect.

use hookwarden_fake_org::{ClientApp, FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID};

use crate::common::*;
use crate::{assert_token_shape, refresh, CLIENT_SECRET};

async fn authorize(org: &RunningFakeOrg, pairs: &[(&str, &str)]) -> Answer {
    get(&format!("{}?{}", org.authorize_url(), form(pairs))).await
}

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

#[tokio::test]
async fn authorize_code_exchange_with_pkce() {
    let org = FakeOrg::builder().start().await.unwrap();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more";
    let challenge = pkce_challenge(verifier);
    let start = |state: &'static str| {
        let challenge = challenge.clone();
        let org = &org;
        async move {
            let a = authorize(
                org,
                &[
                    ("response_type", "code"),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("redirect_uri", REDIRECT),
                    ("state", state),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                    ("scope", "api refresh_token"),
                ],
            )
            .await;
            assert_eq!(a.status, 302, "{}", a.text);
            let location = a.header("location").unwrap();
            assert!(
                location.starts_with(&format!("{REDIRECT}?code=")),
                "{location}"
            );
            assert_eq!(query_param(&location, "state").as_deref(), Some(state));
            query_param(&location, "code").unwrap()
        }
    };
    let exchange = |code: String, verifier: &'static str| {
        let url = org.token_url();
        async move {
            post_form(
                &url,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };

    let code = start("s t&1").await;
    let wrong = exchange(
        code.clone(),
        "this-is-not-the-verifier-that-made-the-challenge",
    )
    .await;
    assert_oauth_error(&wrong, 400, "invalid_grant", "invalid code verifier");
    // Codes are single use, failed attempts included.
    let again = exchange(code, verifier).await;
    assert_oauth_error(&again, 400, "invalid_grant", "invalid authorization code");

    let code = start("second").await;
    let ok = exchange(code.clone(), verifier).await;
    let body = assert_token_shape(&org, &ok);
    assert_eq!(body["scope"], "api refresh_token");
    let rt = body["refresh_token"]
        .as_str()
        .expect("code exchange returns a refresh token");
    assert_token_shape(&org, &refresh(&org, rt).await);
    let replay = exchange(code, verifier).await;
    assert_oauth_error(&replay, 400, "invalid_grant", "invalid authorization code");

    let code = start("third").await;
    let a = post_form(
        &org.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_oauth_error(
        &a,
        400,
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    );

    let stats = org.stats();
    assert_eq!(stats.authorizations.get("ok"), Some(&3));
    assert_eq!(stats.grant_count("authorization_code", "ok"), 1);
    assert_eq!(stats.grant_count("authorization_code", "invalid_grant"), 3);
}

#[tokio::test]
async fn code_exchange_without_pkce_needs_the_client_secret() {
    let org = FakeOrg::builder().start().await.unwrap();
    let code_for = |org: &RunningFakeOrg| {
        let url = format!(
            "{}?{}",
            org.authorize_url(),
            form(&[
                ("response_type", "code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", REDIRECT),
            ])
        );
        async move { query_param(&get(&url).await.header("location").unwrap(), "code").unwrap() }
    };
    let code = code_for(&org).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", DEFAULT_CLIENT_ID),
    ];
    let a = post_form(&org.token_url(), &pairs).await;
    assert_oauth_error(&a, 400, "invalid_client", "invalid client credentials");

    let code = code_for(&org).await;
    let a = post_form(
        &org.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await;
    let body = assert_token_shape(&org, &a);
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn authorize_refuses_bad_requests() {
    let org = FakeOrg::builder()
        .client(
            ClientApp::new("pkce-app", "s")
                .require_pkce(true)
                .redirect_uris([REDIRECT]),
        )
        .start()
        .await
        .unwrap();

    let a = authorize(
        &org,
        &[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_oauth_error(&a, 400, "invalid_client_id", "client identifier invalid");

    let a = authorize(
        &org,
        &[
            ("response_type", "code"),
            ("client_id", "pkce-app"),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    )
    .await;
    assert_oauth_error(
        &a,
        400,
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    );

    // Errors that can travel in the redirect do, with the state.
    let redirected_error = |a: Answer| {
        assert_eq!(a.status, 302, "{}", a.text);
        let location = a.header("location").unwrap();
        assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
        query_param(&location, "error").unwrap()
    };
    let base = [
        ("client_id", "pkce-app"),
        ("redirect_uri", REDIRECT),
        ("state", "xyz"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let a = authorize(&org, &with(&[("response_type", "token")])).await;
    assert_eq!(redirected_error(a), "unsupported_response_type");
    let a = authorize(&org, &with(&[("response_type", "code")])).await;
    assert_eq!(redirected_error(a), "invalid_request", "PKCE required");
    let a = authorize(
        &org,
        &with(&[
            ("response_type", "code"),
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ]),
    )
    .await;
    assert_eq!(redirected_error(a), "invalid_request");
    let a = authorize(
        &org,
        &with(&[
            ("response_type", "code"),
            ("code_challenge", "abc"),
            ("scope", "full"),
        ]),
    )
    .await;
    assert_eq!(redirected_error(a), "invalid_scope");
}
