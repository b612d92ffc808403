//! What the tests that drive the CLI against a running server share.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use hookwarden_core::{AddressPolicy, Clock, SystemClock};
use hookwarden_server::{RunningServer, Settings};
use hookwarden_store::{MasterKey, MasterKeySource};

/// The CLI, pointed at `base` with `api_key`.
pub fn cli(base: &str, api_key: &str) -> Command {
    let mut cmd = Command::cargo_bin("hookwarden").unwrap();
    cmd.env("HOOKWARDEN_SERVER", base)
        .env("HOOKWARDEN_API_KEY", api_key);
    cmd
}

/// A server (with its delivery workers) on 127.0.0.1:0 over `database`, allowed to reach
/// loopback over plain http (the fake org).
pub async fn spawn_server(database: &str, master_key: MasterKey) -> RunningServer {
    spawn_server_on(database, master_key, Arc::new(SystemClock)).await
}

/// `spawn_server` with a ring of master keys (or any other source).
pub async fn spawn_server_with_keys(database: &str, keys: MasterKeySource) -> RunningServer {
    spawn_server_from(database, keys, Arc::new(SystemClock)).await
}

/// `spawn_server` on `clock`.
pub async fn spawn_server_on(
    database: &str,
    master_key: MasterKey,
    clock: Arc<dyn Clock>,
) -> RunningServer {
    spawn_server_from(database, MasterKeySource::Given(master_key), clock).await
}

async fn spawn_server_from(
    database: &str,
    master_key: MasterKeySource,
    clock: Arc<dyn Clock>,
) -> RunningServer {
    hookwarden_server::spawn_with_clock(
        Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: None,
            database: database.to_owned(),
            role: Default::default(),
            master_key,
            allow_insecure_http: true,
            address_policy: AddressPolicy::parse_list("127.0.0.0/8").unwrap(),
            max_body_bytes: 1 << 20,
            history_retention_days: 30,
            delivery_lease: std::time::Duration::from_secs(120),
            store: Default::default(),
            metrics: Default::default(),
            limits: Default::default(),
            governance: Default::default(),
        },
        None,
        clock,
    )
    .await
    .unwrap()
}

/// One request a `Receiver` got: its `webhook-id`, its body, and the status it was answered.
#[derive(Debug, Clone)]
pub struct Got {
    pub webhook_id: Option<String>,
    pub body: String,
    pub answered: u16,
}

/// A plain HTTP receiver on loopback (no framework): answers every request with the status
/// the test sets, and keeps what it got.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    pub async fn start(status: u16) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let me = Self {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            status: Arc::new(AtomicU16::new(status)),
            got: Arc::default(),
        };
        let shared = me.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let me = shared.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 16 * 1024];
                    // The headers, then the body their Content-Length announces.
                    let (head, body) = loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let head = text[..end].to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + length {
                                break (head, text[end + 4..].to_owned());
                            }
                        }
                    };
                    let webhook_id = head
                        .lines()
                        .find_map(|l| l.strip_prefix("webhook-id:"))
                        .map(|v| v.trim().to_owned());
                    let status = me.status.load(Ordering::SeqCst);
                    me.got.lock().unwrap().push(Got {
                        webhook_id,
                        body,
                        answered: status,
                    });
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        me
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

/// The CLI's success, stdout and stderr, run off the test's runtime (the server is on it).
pub async fn run_cli(base: &str, api_key: &str, args: &[&str]) -> (bool, String, String) {
    let (base, api_key) = (base.to_owned(), api_key.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = cli(&base, &api_key).args(&args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
