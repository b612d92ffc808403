//! The servers a user starts to try hookwarden, as child processes on free ports: the demo
//! delivers an event end to end, and the fake org keeps serving when nobody reads its stdout.

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::hookwarden;

/// The README's first command, as a new user runs it (here as `demo`, its short form): the
/// demo account's key is printed, and an event sent with the CLI reaches the fake org.
#[test]
fn the_demo_delivers_an_event_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (port, org_port) = (free_port(), free_port());
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--demo-org-listen",
            &format!("127.0.0.1:{org_port}"),
        ])
        .current_dir(dir.path())
        .env_remove("HOOKWARDEN_DATABASE")
        .env_remove("HOOKWARDEN_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut api_key = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(key) = line.split("API key (account \"demo\"): ").nth(1) {
            api_key = Some(key.trim().to_owned());
            break;
        }
    }
    let Some(api_key) = api_key else {
        let _ = child.kill();
        panic!("the demo printed no API key");
    };
    let server = format!("http://127.0.0.1:{port}");
    let cli = |args: &[&str]| {
        hookwarden()
            .args(args)
            .env("HOOKWARDEN_SERVER", &server)
            .env("HOOKWARDEN_API_KEY", &api_key)
            .output()
            .unwrap()
    };
    let sent = cli(&[
        "events",
        "send",
        "--name",
        "PACKAGE_COMPLETE",
        "--package-id",
        "pkg-1",
    ]);
    let sent_text = String::from_utf8_lossy(&sent.stdout).to_string();
    let delivery = sent_text.split_whitespace().nth(1).map(str::to_owned);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delivered = false;
    while let Some(id) = &delivery {
        let out = cli(&["deliveries", "list", "--status", "delivered"]);
        if String::from_utf8_lossy(&out.stdout).contains(id.as_str()) {
            delivered = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("http://127.0.0.1:{org_port}/_fake/stats"))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(sent.status.success(), "{sent_text}");
    assert!(
        delivered,
        "the demo's delivery of {delivery:?} never became delivered"
    );
    assert_eq!(stats["callbacks_received"], 1, "{stats}");
    assert!(dir.path().join("hookwarden.db").exists());
}

/// A server whose stdout nobody reads any more (`hookwarden fake-org | head`, a supervisor that
/// closed the pipe) keeps serving: its banner goes to a closed pipe without taking it down.
#[test]
fn a_closed_stdout_does_not_stop_a_server() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args(["fake-org", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Close the reading end before the banner is written.
    drop(child.stdout.take());
    let stats = format!("http://127.0.0.1:{port}/_fake/stats");
    let up = || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            reqwest::get(&stats)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up() {
        assert!(
            Instant::now() < deadline,
            "the fake org never answered on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The banner is written right after the listener is bound: give it time to hit the pipe.
    std::thread::sleep(Duration::from_millis(500));
    let exited = child.try_wait().unwrap();
    let still_up = up();
    let _ = child.kill();
    let _ = child.wait();
    assert!(exited.is_none(), "the server exited: {exited:?}");
    assert!(still_up, "the server stopped answering");
}

/// The demo says where the console is, and the key it printed logs in there: the session
/// cookie comes back and the console lists the demo's connector.
#[test]
fn the_demo_prints_the_console_url_and_its_key_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (port, org_port) = (free_port(), free_port());
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("hookwarden"))
        .args([
            "serve",
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--demo-org-listen",
            &format!("127.0.0.1:{org_port}"),
        ])
        .current_dir(dir.path())
        .env_remove("HOOKWARDEN_DATABASE")
        .env_remove("HOOKWARDEN_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (mut api_key, mut console) = (None, None);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(key) = line.split("API key (account \"demo\"): ").nth(1) {
            api_key = Some(key.trim().to_owned());
        }
        if let Some(url) = line.trim().strip_prefix("console: ") {
            console = url.split_whitespace().next().map(str::to_owned);
        }
        // The banner's list of commands comes after both (a demo without them would keep the
        // pipe open and this loop waiting).
        if (api_key.is_some() && console.is_some()) || line.starts_with("Try:") {
            break;
        }
    }
    let answers = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (Some(api_key), Some(console)) = (&api_key, &console) else {
            return None;
        };
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = browser
            .post(format!("{console}/login"))
            .form(&[("api_key", api_key)])
            .send()
            .await
            .unwrap();
        let status = login.status();
        let cookie = login
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .unwrap_or_default();
        let page = browser
            .get(format!("{console}/connectors"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        Some((status, cookie, page.status(), page.text().await.unwrap()))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        console.as_deref(),
        Some(format!("http://127.0.0.1:{port}/console").as_str()),
        "the demo's banner names the console"
    );
    let (login, cookie, page_status, page) = answers.expect("the demo printed its API key");
    assert_eq!(login, 303, "the demo's key logs in");
    assert!(cookie.starts_with("hookwarden_session="), "{cookie}");
    assert_eq!(page_status, 200);
    assert!(
        page.contains("data-connector=\"salesforceOauth2\""),
        "{page}"
    );
}
