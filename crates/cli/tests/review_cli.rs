//! `hookwarden review` against a running server and a fake org: the table, `--json`, exit 0
//! while no check fails and 1 once one does, and `--probe` refused to a read key.

mod common;

use base64::Engine;
use common::{cli, spawn_server};
use hookwarden_fake_org::{FakeOrg, RunningFakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use hookwarden_store::MasterKey;
use serde_json::{json, Value};

/// The CLI's stdout, stderr and exit code, run off the test's runtime (the server is on it).
async fn run(base: &str, api_key: &str, args: &[&str]) -> (i32, String, String) {
    let (base, api_key) = (base.to_owned(), api_key.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = cli(&base, &api_key).args(&args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

fn cc_key(org: &RunningFakeOrg, host: &str) -> String {
    let key = json!({
        "host": host,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_url": org.token_url(),
    });
    base64::engine::general_purpose::STANDARD.encode(key.to_string())
}

async fn register(base: &str, api_key: &str, name: &str, org: &RunningFakeOrg, host: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/callback/connectors/{name}"))
        .header("Authorization", format!("Basic {api_key}"))
        .json(
            &json!({"preset": "salesforce", "url": org.callback_url(), "key": cc_key(org, host),
                      "events": ["PACKAGE_COMPLETE"], "owner": "integrations@acme.example"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_exits_1_on_a_failing_check_and_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let org = FakeOrg::builder().start().await.unwrap();
    let server = spawn_server(
        &format!("sqlite://{}", dir.path().join("review.db").display()),
        MasterKey::generate(),
    )
    .await;
    let (_, admin) = server.state.store.create_account("acme").await.unwrap();
    let base = server.base_url();

    register(&base, &admin, "healthy", &org, "acme.my.salesforce.com").await;
    let (code, out, err) = run(&base, &admin, &["review"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let header = out.lines().next().unwrap();
    for column in ["CONNECTOR", "CHECK", "LEVEL", "DETAIL", "FIX"] {
        assert!(header.contains(column), "{out}");
    }
    assert_eq!(
        out.lines().filter(|l| l.starts_with("healthy ")).count(),
        10,
        "one line per check: {out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("0 failing check(s)"), "{out}");
    let db_url = format!("sqlite://{}", dir.path().join("review.db").display());
    let doctor = |key: &str| {
        let listen = base.trim_start_matches("http://").to_owned();
        let (base, key, db_url) = (base.clone(), key.to_owned(), db_url.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let out = cli(&base, &key)
                    .args(["doctor", "--listen", &listen, "--database", &db_url])
                    .output()
                    .unwrap();
                String::from_utf8(out.stdout).unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = doctor(&admin).await;
    assert!(
        out.contains(&format!(
            "ok   {:<12} the governance review of 1 connector(s) found nothing",
            "review"
        )),
        "{out}"
    );

    // The org's idle policy is set from the command line too, and shown with the connector.
    let (code, _, err) = run(
        &base,
        &admin,
        &[
            "connectors",
            "update",
            "healthy",
            "--refresh-token-idle-days",
            "30",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, shown, err) = run(&base, &admin, &["connectors", "show", "healthy"]).await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["refresh_token_idle_days"], 30, "{shown}");
    assert!(shown["credentials_changed_at"].is_string(), "{shown}");

    // A client-credentials key whose host is not a My Domain fails the host check.
    register(
        &base,
        &admin,
        "notMyDomain",
        &org,
        "acme.lightning.force.com",
    )
    .await;
    let (code, out, err) = run(&base, &admin, &["review"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("notMyDomain") && l.contains(" host "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("FAIL") && line.contains("My Domain"),
        "{line}"
    );
    assert!(out.contains("1 failing check(s)"), "{out}");

    // The doctor shows the failing check with its connector, detail and fix.
    let out = doctor(&admin).await;
    let at = out
        .find(&format!(
            "FAIL {:<12} notMyDomain host: acme.lightning.force.com is not a My Domain",
            "review"
        ))
        .unwrap_or_else(|| panic!("{out}"));
    let next = out[at..].lines().nth(1).unwrap();
    assert!(
        next.trim_start()
            .starts_with("fix: give the key the org's My Domain"),
        "{out}"
    );

    let (code, out, err) = run(&base, &admin, &["review", "--json"]).await;
    assert_eq!(code, 1, "{err}");
    let review: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["ok"], false);
    assert_eq!(review["connectors"].as_array().unwrap().len(), 2);

    // --probe needs an admin key: a read key is told which scope it lacks.
    let (code, read, err) = run(&base, &admin, &["keys", "create", "--scope", "read"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&base, read.trim(), &["review", "--probe"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("insufficient_scope"), "{err}");
    let (code, out, _) = run(&base, read.trim(), &["review", "--json"]).await;
    assert_eq!(code, 1, "a read key reviews, and the failure still counts");
    assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
    server.shutdown().await.unwrap();
}
