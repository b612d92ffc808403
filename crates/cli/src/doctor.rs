//! `hookwarden doctor`: what `serve` would run with, checked before it runs (or while it
//! runs): configuration, master key, database and the secrets in it (and whether any is under a
//! key other than the ring's first), the listen address, the network rules, and, given an API
//! key, the account's connectors, failed deliveries and governance review (`connectors`).
//! Each check prints `ok`, `warn` or `FAIL`, with a fix; any `FAIL` makes the exit code 1.

use std::time::Duration;

use hookwarden_core::Problem;
use hookwarden_server::{redact_url, Config, Role, Settings};
use hookwarden_store::{MasterKeySource, Store, StoreError};

mod connectors;
mod keys;

use connectors::check_connectors;
use keys::{check_key_ring, key_file_permissions};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn say(&mut self, level: Level, name: &str, detail: &str, fix: Option<&str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag} {name:<12} {detail}");
        if let Some(fix) = fix.filter(|_| level != Level::Ok) {
            println!("     fix: {fix}");
        }
        self.failed |= level == Level::Fail;
    }
}

/// Runs every check; `Ok(false)` when one failed.
/// `server`: the API to ask about the account's connectors (`--server`, `HOOKWARDEN_SERVER`);
/// by default the one at the listen address, when one answers there.
pub async fn run(
    config: anyhow::Result<Config>,
    api_key: Option<String>,
    server: Option<String>,
) -> anyhow::Result<bool> {
    let mut report = Report { failed: false };
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            report.say(
                Level::Fail,
                "config",
                &format!("{e:#}"),
                Some(
                    "correct the file given with --config or the HOOKWARDEN_* variable named above",
                ),
            );
            return Ok(false);
        }
    };
    let settings = match config.settings() {
        Ok(s) => s,
        Err(e) => {
            report.say(
                Level::Fail,
                "config",
                &e.to_string(),
                Some("correct the setting named above (file given with --config, or its HOOKWARDEN_* variable)"),
            );
            return Ok(false);
        }
    };
    report.say(
        Level::Ok,
        "config",
        &format!(
            "listen {}, database {}",
            settings.listen,
            redact_url(&settings.database)
        ),
        None,
    );
    check_role(&mut report, &settings);
    let store = check_storage(&mut report, &settings).await;
    if let Some(store) = &store {
        match store.check_connector_secrets().await {
            Ok((0, sealed)) if sealed.is_empty() => {
                report.say(Level::Ok, "secrets", "no connectors yet", None)
            }
            Ok((opened, sealed)) if sealed.is_empty() => report.say(
                Level::Ok,
                "secrets",
                &format!("the master key opens the secrets of all {opened} connector(s)"),
                None,
            ),
            Ok((_, sealed)) => report.say(
                Level::Fail,
                "secrets",
                &format!(
                    "the master key cannot open the secrets of {} connector(s): {}",
                    sealed.len(),
                    sealed.join(", ")
                ),
                Some("run with the master key these were sealed with (HOOKWARDEN_MASTER_KEY, or the key file that was beside the database), or register those connectors again"),
            ),
            Err(e) => report.say(
                Level::Fail,
                "secrets",
                &format!("reading the connectors failed: {e}"),
                Some("check the database (see the database check above)"),
            ),
        }
        check_key_ring(&mut report, store).await;
        store.close().await;
    }
    check_network_rules(&mut report, &settings);
    check_retention(&mut report, &settings);
    check_metrics(&mut report, &settings);
    let running_here = check_listen(&mut report, &settings).await;
    let server = match server {
        Some(url) => check_server(&mut report, url.trim_end_matches('/')).await,
        None => running_here.then(|| format!("http://{}", settings.listen)),
    };
    match (server, api_key) {
        (Some(base), Some(key)) => check_connectors(&mut report, &base, &key).await,
        (Some(_), None) => report.say(
            Level::Ok,
            "connectors",
            "not checked: set HOOKWARDEN_API_KEY (or --api-key) to check an account's connectors",
            None,
        ),
        (None, Some(_)) => report.say(
            Level::Warn,
            "connectors",
            &format!(
                "not checked: no hookwarden server answers at {}, and no other was named",
                settings.listen
            ),
            Some("point --server (or HOOKWARDEN_SERVER) at the running server, e.g. --server https://hookwarden.internal"),
        ),
        (None, None) => {}
    }
    Ok(!report.failed)
}

/// Master key and database; the opened store when both are usable.
async fn check_storage(report: &mut Report, settings: &Settings) -> Option<Store> {
    let url = &settings.database;
    let given = !matches!(settings.master_key, MasterKeySource::FileBesideDatabase);
    if url.starts_with("postgres") {
        if !given {
            report.say(
                Level::Fail,
                "master key",
                "PostgreSQL needs HOOKWARDEN_MASTER_KEY: there is no file beside the database to keep it in",
                Some("set HOOKWARDEN_MASTER_KEY to base64 of 32 random bytes (`openssl rand -base64 32`), the same on every node"),
            );
            return None;
        }
        report.say(
            Level::Ok,
            "master key",
            key_origin(&settings.master_key),
            None,
        );
    } else if let Some(file) = hookwarden_store::sqlite_file(url) {
        let key_file = hookwarden_store::crypto::key_file_beside(&file);
        if !file.exists() {
            report.say(
                Level::Ok,
                "database",
                &format!(
                    "{} does not exist yet: `hookwarden serve` creates it{}",
                    file.display(),
                    if given {
                        ""
                    } else {
                        ", and its key file beside it"
                    }
                ),
                None,
            );
            return None;
        }
        if given {
            report.say(
                Level::Ok,
                "master key",
                key_origin(&settings.master_key),
                None,
            );
        } else if !key_file.exists() {
            report.say(
                Level::Fail,
                "master key",
                &format!(
                    "{} exists but its key file {} does not: the secrets in the database cannot be opened, and serve refuses to start while it holds any (a new key is made only for a database without)",
                    file.display(),
                    key_file.display()
                ),
                Some("restore the key file from where the database came from, or set HOOKWARDEN_MASTER_KEY (or HOOKWARDEN_MASTER_KEYS) to the key the database was written with"),
            );
            return None;
        } else if !key_file_permissions(report, &key_file) {
            return None;
        }
    }
    match tokio::time::timeout(
        Duration::from_secs(15),
        Store::open(url, settings.master_key.clone()),
    )
    .await
    {
        Ok(Ok(store)) => {
            report.say(
                Level::Ok,
                "database",
                &format!("{} opened, schema current", redact_url(url)),
                None,
            );
            Some(store)
        }
        Ok(Err(e @ StoreError::MasterKey(_))) => {
            report.say(
                Level::Fail,
                "master key",
                &e.to_string(),
                Some("run with the key(s) the database was written with: HOOKWARDEN_MASTER_KEYS=CURRENT,OLD (the key named above among them), or the key file that was beside the database"),
            );
            None
        }
        Ok(Err(e)) => {
            report.say(
                Level::Fail,
                "database",
                &format!("{}: {e}", redact_url(url)),
                Some("check the URL (sqlite://FILE, sqlite:///ABSOLUTE/PATH or postgres://USER@HOST/DB), that the server is up and the user may connect, and that the file's directory is writable"),
            );
            None
        }
        Err(_) => {
            report.say(
                Level::Fail,
                "database",
                &format!("{}: no answer within 15 s", redact_url(url)),
                Some("check that the database server is up and reachable from here"),
            );
            None
        }
    }
}

/// Where a given master key came from, as the operator set it.
fn key_origin(source: &MasterKeySource) -> &'static str {
    match source {
        MasterKeySource::Ring(_) => "a ring from master_keys (HOOKWARDEN_MASTER_KEYS)",
        _ => "from master_key (HOOKWARDEN_MASTER_KEY)",
    }
}

/// The role `serve` would run with, and whether the database allows it.
fn check_role(report: &mut Report, settings: &Settings) {
    let runs = match settings.role {
        Role::All => "the API and the delivery workers",
        Role::Api => "the API and the console only (no delivery workers: run worker nodes too)",
        Role::Worker => "the delivery workers only (answers /healthz and /metrics, nothing else)",
    };
    match settings.role.check_database(&settings.database) {
        Ok(()) => report.say(
            Level::Ok,
            "role",
            &format!("{}: this node runs {runs}", settings.role),
            None,
        ),
        Err(e) => report.say(Level::Fail, "role", &e.message(), Some(&e.fix())),
    }
}

fn check_network_rules(report: &mut Report, settings: &Settings) {
    if settings.allow_insecure_http {
        report.say(
            Level::Warn,
            "network",
            "allow_insecure_http is on: tokens and events may travel over plain http",
            Some("turn it off outside tests and demos (HOOKWARDEN_ALLOW_INSECURE_HTTP=false)"),
        );
    }
    let allowed = settings
        .address_policy
        .allowed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if allowed.is_empty() {
        report.say(
            Level::Ok,
            "network",
            "destinations and token endpoints must be public addresses",
            None,
        );
    } else {
        report.say(
            Level::Warn,
            "network",
            &format!("private networks allowed as destinations: {allowed}"),
            Some(
                "list only the networks your receivers are in (HOOKWARDEN_ALLOW_PRIVATE_NETWORKS)",
            ),
        );
    }
}

/// How long history is kept, and (SQLite) how large the database file is.
fn check_retention(report: &mut Report, settings: &Settings) {
    let size = hookwarden_store::sqlite_file(&settings.database)
        .and_then(|f| std::fs::metadata(f).ok())
        .map(|m| format!("; the database file is {:.1} MB", m.len() as f64 / 1e6))
        .unwrap_or_default();
    match settings.history_retention_days {
        0 => report.say(
            Level::Warn,
            "retention",
            &format!("history_retention_days = 0: delivered and failed deliveries are never removed, so the database grows by about 1 KB per event{size}"),
            Some("set history_retention_days (HOOKWARDEN_HISTORY_RETENTION_DAYS), e.g. 30"),
        ),
        days => report.say(
            Level::Ok,
            "retention",
            &format!("finished deliveries, their events and token calls are kept {days} days{size}"),
            None,
        ),
    }
}

/// Who can read `/metrics` (per-connector labels: the operator's), and where.
fn check_metrics(report: &mut Report, settings: &Settings) {
    let on_api = if settings.metrics.token.is_some() {
        "on the API's listener it needs `Authorization: Bearer <metrics_token>`"
    } else {
        "on the API's listener it answers 401 (no metrics_token)"
    };
    match settings.metrics.listen {
        Some(at) if !at.ip().is_loopback() => report.say(
            Level::Warn,
            "metrics",
            &format!("/metrics is served without a key on {at} (metrics_listen), which is not a loopback address: whoever reaches it reads every account's connector names; {on_api}"),
            Some("keep metrics_listen on a private address (e.g. 127.0.0.1:9464) or behind a firewall that lets only Prometheus in"),
        ),
        Some(at) => report.say(
            Level::Ok,
            "metrics",
            &format!("/metrics is served without a key on {at} (metrics_listen); {on_api}"),
            None,
        ),
        None if settings.metrics.token.is_some() => report.say(
            Level::Ok,
            "metrics",
            &format!("/metrics: {on_api}; metrics_listen is off"),
            None,
        ),
        None => report.say(
            Level::Ok,
            "metrics",
            "/metrics cannot be read: metrics_listen is off and metrics_token is unset (the API's listener answers 401)",
            Some("to scrape it, set metrics_listen (HOOKWARDEN_METRICS_LISTEN, e.g. 127.0.0.1:9464) or metrics_token (HOOKWARDEN_METRICS_TOKEN)"),
        ),
    }
}

/// Whether a hookwarden server answers at the listen address (so its API can be asked).
async fn check_listen(report: &mut Report, settings: &Settings) -> bool {
    match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(_) => {
            report.say(
                Level::Ok,
                "listen",
                &format!("{} is free: no server runs there now", settings.listen),
                None,
            );
            false
        }
        Err(e) => {
            let health = format!("http://{}/healthz", settings.listen);
            let answered = reqwest::Client::new()
                .get(&health)
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .map(|r| r.status().is_success() && r.headers().contains_key("content-type"));
            match answered {
                Ok(true) => {
                    report.say(
                        Level::Ok,
                        "listen",
                        &format!("a hookwarden server answers at {}", settings.listen),
                        None,
                    );
                    true
                }
                _ => {
                    report.say(
                        Level::Fail,
                        "listen",
                        &format!("{} cannot be used: {e}, and no hookwarden answers there", settings.listen),
                        Some("stop what uses it, or choose another address (--listen or HOOKWARDEN_LISTEN)"),
                    );
                    false
                }
            }
        }
    }
}

/// Whether the server named by `--server` answers; its base URL when it does.
async fn check_server(report: &mut Report, base: &str) -> Option<String> {
    let answered = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match answered {
        Ok(r) if r.status().is_success() => {
            report.say(
                Level::Ok,
                "server",
                &format!("a hookwarden server answers at {base}"),
                None,
            );
            Some(base.to_owned())
        }
        Ok(r) => {
            report.say(
                Level::Fail,
                "server",
                &format!("{base}/healthz answered {}", r.status()),
                Some("check that --server (or HOOKWARDEN_SERVER) names a hookwarden server, scheme and port included"),
            );
            None
        }
        Err(e) => {
            report.say(
                Level::Fail,
                "server",
                &format!("no answer from {base}: {e}"),
                Some(
                    "start the server, or point --server (or HOOKWARDEN_SERVER) at the running one",
                ),
            );
            None
        }
    }
}
