//! For each diagnosis of the README's table that a Salesforce org can cause, the fake org causes
//! it once, through a running server: the API shows its code, cause and fix where a user looks
//! (the history for a grant, the attempt for a delivery, the connector for its status, the check
//! of its test), and the CLI prints the code and the fix. What no org causes on demand (a
//! timeout, a redirect, an answer too large, ...) is covered by core's unit tests
//! (`diagnosis::tests::every_code_has_a_way_to_happen`).

mod common;

use std::time::{Duration, Instant};

use common::{cli, spawn_server};
use hookwarden_core::diagnosis::Code;
use hookwarden_fake_org::{
    FakeOrg, FakeOrgBuilder, Faults, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use hookwarden_store::MasterKey;
use serde_json::{json, Value};

/// Where the diagnosis shows, and what makes it happen.
#[derive(Clone, Copy)]
enum Shown {
    /// One grant (`POST …/token`): the newest entry of the connector's history.
    Grant,
    /// A code exchange (`PATCH {"code"}`) with a code the org never issued: the history too.
    CodeExchange,
    /// One event: attempt `n` (from 0) of its delivery.
    Attempt(usize),
    /// One event, then the connector it moved out of `active` (and the attempt that did).
    Connector,
    /// `…/revoke`: the connector.
    Revoked,
    /// `…/test` of a connector registered with a line-wrapped key: its key check.
    KeyCheck,
}

/// How the case words its cause: the catalog's generic words, or with these details.
#[derive(Clone, Copy)]
enum Cause {
    Generic,
    Contains(&'static str),
}

struct Case {
    code: Code,
    org: fn(FakeOrgBuilder) -> FakeOrgBuilder,
    key: fn(&RunningFakeOrg) -> Value,
    url: fn(&RunningFakeOrg) -> String,
    shown: Shown,
    cause: Cause,
    /// The preset registered; `None`: the one the connector's name selects (generic here).
    preset: Option<&'static str>,
}

fn healthy(org: FakeOrgBuilder) -> FakeOrgBuilder {
    org
}

fn cc(org: &RunningFakeOrg) -> Value {
    json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
           "token_url": org.token_url(), "revocation_url": org.revoke_url()})
}

fn rt(org: &RunningFakeOrg) -> Value {
    json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
           "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
           "token_url": org.token_url()})
}

fn apex(org: &RunningFakeOrg) -> String {
    org.callback_url()
}

fn cases() -> Vec<Case> {
    let case = |code, org, key, shown| Case {
        code,
        org,
        key,
        url: apex,
        shown,
        cause: Cause::Generic,
        preset: None,
    };
    let with_cause = |c: Case, cause| Case {
        cause: Cause::Contains(cause),
        ..c
    };
    vec![
        // The token endpoint's refusals, in the history.
        with_cause(
            case(Code::WrongHost, |o| o.login_host(true), cc, Shown::Grant),
            "127.0.0.1 does not accept this grant",
        ),
        case(
            Code::NoValidScopes,
            |o| o.allowed_scopes(["refresh_token", "offline_access"]),
            cc,
            Shown::Grant,
        ),
        case(Code::NoRunAsUser, |o| o.run_as_user(None), cc, Shown::Grant),
        case(
            Code::IpRestricted,
            |o| o.ip_restricted(true),
            cc,
            Shown::Grant,
        ),
        case(
            Code::AppNotApproved,
            |o| o.app_not_approved(true),
            rt,
            Shown::Grant,
        ),
        case(
            Code::RefreshTokenExpired,
            healthy,
            |o| json!({"client_id": DEFAULT_CLIENT_ID, "refresh_token": "5Aep861unknown", "token_url": o.token_url()}),
            Shown::Grant,
        ),
        case(
            Code::WrongClientSecret,
            healthy,
            |o| json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": "not-it", "token_url": o.token_url()}),
            Shown::Grant,
        ),
        case(
            Code::WrongClientId,
            healthy,
            |o| json!({"client_id": "3MVG9unknown", "client_secret": DEFAULT_CLIENT_SECRET, "token_url": o.token_url()}),
            Shown::Grant,
        ),
        case(
            Code::InactiveUser,
            |o| o.user_inactive(true),
            rt,
            Shown::Grant,
        ),
        case(
            Code::InvalidAuthorizationCode,
            healthy,
            rt,
            Shown::CodeExchange,
        ),
        with_cause(
            case(
                Code::ProviderUnavailable,
                |o| o.token_faults(Faults::fail_next(1, 503)),
                cc,
                Shown::Grant,
            ),
            "503",
        ),
        case(
            Code::RateLimited,
            |o| o.token_faults(Faults::fail_next(1, 429)),
            cc,
            Shown::Grant,
        ),
        with_cause(
            case(
                Code::WrongEndpoint,
                healthy,
                |o| {
                    json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                           "token_url": format!("{}/services/oauth2/tokn", o.base_url())})
                },
                Shown::Grant,
            ),
            "404",
        ),
        with_cause(
            case(
                Code::UnusableResponse,
                healthy,
                |o| {
                    json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                           "token_url": format!("{}/_fake/reset-stats", o.base_url())})
                },
                Shown::Grant,
            ),
            "access_token",
        ),
        case(
            Code::ProviderUnreachable,
            healthy,
            |_| json!({"client_id": "x", "client_secret": "y-secret", "token_url": "http://127.0.0.1:9/token"}),
            Shown::Grant,
        ),
        // The Apex endpoint's answers, on the delivery's attempt.
        case(
            Code::ApexClassNotFound,
            |o| o.deployed_classes(Vec::<String>::new()),
            cc,
            Shown::Attempt(0),
        ),
        case(
            Code::ApexClassAccess,
            |o| o.apex_class_access_denied(true),
            cc,
            Shown::Attempt(0),
        ),
        case(
            Code::ApiDisabled,
            |o| o.api_disabled(true),
            cc,
            Shown::Attempt(0),
        ),
        case(
            Code::ApiLimitExceeded,
            |o| o.apex_faults(Faults::fail_next(1, 403)),
            cc,
            Shown::Attempt(0),
        ),
        with_cause(
            case(
                Code::EndpointUnavailable,
                |o| o.apex_faults(Faults::fail_next(1, 503)),
                cc,
                Shown::Attempt(0),
            ),
            "503",
        ),
        with_cause(
            case(
                Code::EndpointRefused,
                |o| o.apex_faults(Faults::fail_next(1, 400)),
                cc,
                Shown::Attempt(0),
            ),
            "400 BAD_REQUEST",
        ),
        with_cause(
            case(
                Code::InvalidSession,
                |o| o.apex_invalid_session_next(1),
                cc,
                Shown::Attempt(0),
            ),
            "a new one requested at once",
        ),
        case(
            Code::FreshTokenRefused,
            |o| o.apex_invalid_session_next(2),
            cc,
            Shown::Attempt(1),
        ),
        Case {
            url: |_| "http://127.0.0.1:9/services/apexrest/OSS/callback".to_owned(),
            ..case(Code::EndpointUnreachable, healthy, cc, Shown::Attempt(0))
        },
        // A salesforce-preset grant from an org whose instance_url is another host: the org
        // is reached at its address, and says it is elsewhere.
        Case {
            url: |o| format!("http://{}/services/apexrest/OSS/callback", o.addr()),
            preset: Some("salesforce"),
            ..with_cause(
                case(
                    Code::UrlNotInOrg,
                    |o| o.public_url("https://acme.my.salesforce.com"),
                    |o| {
                        json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                               "token_url": format!("http://{}/services/oauth2/token", o.addr())})
                    },
                    Shown::Grant,
                ),
                "https://acme.my.salesforce.com",
            )
        },
        // The connector's status, and its test.
        case(
            Code::EndpointGone,
            |o| o.apex_faults(Faults::fail_next(1, 410)),
            cc,
            Shown::Connector,
        ),
        case(Code::ConnectorRevoked, healthy, cc, Shown::Revoked),
        case(Code::LineWrappedKey, healthy, cc, Shown::KeyCheck),
    ]
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Basic {}", self.key));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The delivery once it has `n` attempts (the workers run in the server).
    async fn delivery_with(&self, id: &str, n: usize) -> Value {
        let started = Instant::now();
        loop {
            let (_, d) = self
                .call(reqwest::Method::GET, &format!("/api/deliveries/{id}"), None)
                .await;
            if d["attempts"].as_array().is_some_and(|a| a.len() >= n) {
                return d;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{d}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The base64 a `base64` without `-w 0` prints: lines of 76 characters.
fn wrapped(key: String) -> String {
    key.as_bytes()
        .chunks(76)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run the CLI; its stdout and stderr.
async fn run(base: &str, key: &str, args: Vec<String>) -> (String, String) {
    let (base, key) = (base.to_owned(), key.to_owned());
    tokio::task::spawn_blocking(move || {
        let out = cli(&base, &key).args(&args).output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// Make the case happen; the diagnosis the API shows, and what the CLI printed about it.
async fn cause(api: &Api, case: &Case, name: &str) -> (Value, String) {
    use reqwest::Method;
    let path = format!("/api/callback/connectors/{name}");
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match case.shown {
        Shown::Grant | Shown::CodeExchange => {
            if let Shown::Grant = case.shown {
                let (status, err) = api.call(Method::POST, &format!("{path}/token"), None).await;
                assert!(status >= 400, "{name}: {err}");
                assert_eq!(
                    err["error"],
                    case.code.as_str(),
                    "{name}: the API error's code"
                );
            } else {
                let body = json!({"code": "never-issued", "redirect_uri": "http://127.0.0.1/cb"});
                let (status, err) = api.call(Method::PATCH, &path, Some(body)).await;
                assert_eq!(status, 422, "{name}: {err}");
            }
            let (_, history) = api
                .call(Method::GET, &format!("{path}/history"), None)
                .await;
            let (out, _) = run(&api.base, &api.key, args(&["connectors", "history", name])).await;
            (history["entries"][0]["diagnosis"].clone(), out)
        }
        Shown::Attempt(_) | Shown::Connector => {
            let event = json!({"name": "PACKAGE_COMPLETE", "packageId": name, "origin": name});
            let (status, accepted) = api.call(Method::POST, "/api/events", Some(event)).await;
            assert_eq!(status, 202, "{accepted}");
            let id = accepted["deliveries"][0].as_str().unwrap().to_owned();
            let n = if let Shown::Attempt(n) = case.shown {
                n
            } else {
                0
            };
            let d = api.delivery_with(&id, n + 1).await;
            let attempt = d["attempts"][n]["diagnosis"].clone();
            let (out, err) = run(&api.base, &api.key, args(&["deliveries", "get", &id])).await;
            let printed: Value = serde_json::from_str(&out).expect("deliveries get prints JSON");
            assert_eq!(printed["attempts"][n]["diagnosis"], attempt, "{name}");
            assert!(
                err.contains(&format!("attempt {} [", n + 1)),
                "{name}: {err}"
            );
            if let Shown::Attempt(_) = case.shown {
                return (attempt, err);
            }
            let (_, c) = api.call(Method::GET, &path, None).await;
            assert_eq!(c["status"], "disabled", "{name}: {c}");
            assert_eq!(c["diagnosis"], attempt, "{name}: the attempt that moved it");
            let (_, err) = run(&api.base, &api.key, args(&["connectors", "get", name])).await;
            (c["diagnosis"].clone(), err)
        }
        Shown::Revoked => {
            let (status, revoked) = api
                .call(Method::POST, &format!("{path}/revoke"), None)
                .await;
            assert_eq!(status, 200, "{revoked}");
            let (_, c) = api.call(Method::GET, &path, None).await;
            let (_, err) = run(&api.base, &api.key, args(&["connectors", "get", name])).await;
            (c["diagnosis"].clone(), err)
        }
        Shown::KeyCheck => {
            let (_, report) = api.call(Method::POST, &format!("{path}/test"), None).await;
            let check = report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "key")
                .cloned()
                .unwrap();
            assert_eq!(check["ok"], true, "{check}");
            let (out, _) = run(&api.base, &api.key, args(&["connectors", "test", name])).await;
            (check["diagnosis"].clone(), out)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_diagnosis_the_fake_org_can_cause_is_shown_by_the_api_and_printed_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        &format!("sqlite://{}", dir.path().join("diagnoses.db").display()),
        MasterKey::generate(),
    )
    .await;
    let (_, api_key) = server.state.store.create_account("acme").await.unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
        key: api_key,
    };
    for case in cases() {
        let code = case.code.as_str();
        // One connector per case, named after its code, taking the events of that origin.
        let name = code;
        let org = (case.org)(FakeOrg::builder()).start().await.unwrap();
        let mut key = hookwarden_core::key::encode(&(case.key)(&org));
        if let Shown::KeyCheck = case.shown {
            key = wrapped(key);
        }
        let mut body = json!({"url": (case.url)(&org), "events": ["PACKAGE_COMPLETE"],
                              "origins": [name], "key": key});
        if let Some(preset) = case.preset {
            body["preset"] = preset.into();
        }
        let (status, registered) = api
            .call(
                reqwest::Method::POST,
                &format!("/api/callback/connectors/{name}"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{name}: {registered}");

        let (diagnosis, printed) = cause(&api, &case, name).await;
        assert_eq!(diagnosis["code"], code, "{name}: {diagnosis}");
        assert_eq!(diagnosis["fix"], case.code.fix(), "{name}: {diagnosis}");
        let said = diagnosis["cause"].as_str().unwrap_or_default();
        match case.cause {
            Cause::Generic => assert_eq!(said, case.code.cause(), "{name}"),
            Cause::Contains(detail) => assert!(said.contains(detail), "{name}: {said}"),
        }
        assert!(printed.contains(&format!("[{code}]")), "{name}: {printed}");
        // `fix: ...` under one failure; under a history table, `fix [code]: ...` once a code.
        let fix = case.code.fix();
        assert!(
            printed.contains(&format!("fix: {fix}"))
                || printed.contains(&format!("fix [{code}]: {fix}")),
            "{name}: {printed}"
        );
        org.shutdown().await;
    }
    server.shutdown().await.unwrap();
}
