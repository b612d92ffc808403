//! Two `hookwarden serve` processes sharing one PostgreSQL database ask for the same
//! connector's token at the same moment: the grant lease in the database lets exactly one of
//! them grant. On one SQLite file a second `serve` is refused at once, naming the first.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookwarden_fake_org::{FakeOrg, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{json, Value};

struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(database: &str, master_key: &str) -> Node {
    let port = free_port();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args([
            "serve",
            "--database",
            database,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("HOOKWARDEN_MASTER_KEY", master_key)
        .env("HOOKWARDEN_ALLOW_INSECURE_HTTP", "true")
        .env("HOOKWARDEN_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "node did not start");
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on") => break,
            Some(Ok(_)) => {}
            other => panic!("node exited before listening: {other:?}"),
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Node {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn create_account(database: &str, master_key: &str) -> String {
    let out = Command::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args(["accounts", "create", "acme", "--database", database])
        .env("HOOKWARDEN_MASTER_KEY", master_key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn one_grant_between_two_nodes(database: String) {
    let org = FakeOrg::builder()
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let master_key = "q3dJ2ZbRr7e0Pp0vQmF3pN0x1yq0kR3ZQwJ0c5d8e9A=";
    let api_key = create_account(&database, master_key);
    let a = serve(&database, master_key);
    let b = serve(&database, master_key);
    let http = reqwest::Client::new();
    let path = "/api/callback/connectors/salesforceOauth2";
    let key = hookwarden_core::key::encode(&json!({
        "host": "login.salesforce.com",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": org.issue_refresh_token(DEFAULT_CLIENT_ID),
        "token_url": org.token_url(),
    }));
    let resp = http
        .post(format!("{}{path}", a.base))
        .header("Authorization", format!("Basic {api_key}"))
        .json(&json!({"url": org.callback_url(), "events": ["PACKAGE_COMPLETE"], "key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    // Both nodes, several requests each, at the same moment.
    let mut calls = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        calls.push(
            http.post(format!("{base}{path}/token"))
                .header("Authorization", format!("Basic {api_key}"))
                .send(),
        );
    }
    let answers = futures::future::join_all(calls).await;
    for answer in answers {
        let answer = answer.unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token"]["has_access_token"], true, "{body}");
    }
    let stats = org.stats();
    assert_eq!(stats.grants_total("refresh_token"), 1, "{:?}", stats.grants);
    assert_eq!(stats.reuse_detections, 0);
}

#[tokio::test]
async fn a_second_serve_on_one_sqlite_file_exits_at_once_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("shared.db").display());
    let master_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let first = serve(&db, master_key);
    let port = free_port();
    let second = Command::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args([
            "serve",
            "--database",
            &db,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("HOOKWARDEN_MASTER_KEY", master_key)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already served by hookwarden serve"), "{err}");
    assert!(
        err.contains(&format!("pid {}", first.child.id())),
        "names the holder: {err}"
    );
    assert!(
        err.contains(first.base.trim_start_matches("http://")),
        "{err}"
    );
    // The first one still answers; once it is gone, the file is free again.
    let health = reqwest::get(format!("{}/healthz", first.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(first);
    let again = serve(&db, master_key);
    let health = reqwest::get(format!("{}/healthz", again.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn two_nodes_on_one_postgres_database_make_one_grant() {
    let Some(db) = hookwarden_store::testing::fresh_postgres_url().await else {
        eprintln!("HOOKWARDEN_TEST_PG_URL not set: PostgreSQL part skipped");
        return;
    };
    one_grant_between_two_nodes(db).await;
}
