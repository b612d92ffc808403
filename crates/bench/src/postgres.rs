//! The bench on PostgreSQL (`HOOKWARDEN_BENCH_DB`): (b), (c) and the latency phase, as on
//! SQLite, in each topology of `cluster` (node processes), each on a fresh database dropped
//! afterwards; the baseline (a), measured again just before each topology, is the yardstick.
//!
//! Measured per phase: the rate; CPU per delivery of the node processes, of every PostgreSQL
//! server process (`/proc/<pid>/stat`: postmaster, backends, WAL writer, checkpointer, ...;
//! the machine's other databases are idle when the bench runs alone) and of the bench's own
//! process (producer and receiver). Per topology, `pg_stat_database` over the whole timed pass
//! (read once every backend of the database has exited, so that all its counts are flushed):
//! transactions committed, rows written, per delivery in the database. Then the counting pass
//! (phase `w`): the same topology started again behind `pgwire::Proxy`, (b) and (c) once each,
//! statements, round trips and commits per delivery counted on the wire. The proxy adds a hop
//! to every round trip, so its pass is not timed; batches can grow a little under it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookwarden_fake_org::RunningFakeOrg;
use hookwarden_store::{MasterKey, MasterKeySource, Store};
use serde_json::{json, Map, Value};
use sqlx::{Connection, PgConnection, Row};

use crate::cluster::{Cluster, Topology};
use crate::hookwarden::Hookwarden;
use crate::measure::{Meter, Usage};
use crate::pgwire::{Proxy, Wire};
use crate::{delivery_rounds, wait_delivered, CONCURRENCY};

/// `HOOKWARDEN_BENCH_DB=postgres`: the machine's PostgreSQL, as the tests reach it.
const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const TOPOLOGIES: &str = "all,api+1w,api+2w";

/// The server to run on, from `HOOKWARDEN_BENCH_DB` (unset, empty or `sqlite`: none).
pub(crate) fn database_from_env() -> anyhow::Result<Option<String>> {
    match std::env::var("HOOKWARDEN_BENCH_DB") {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() || v == "sqlite" => Ok(None),
        Ok(v) if v == "postgres" => Ok(Some(LOCAL.to_owned())),
        Ok(v) if v.starts_with("postgres://") || v.starts_with("postgresql://") => Ok(Some(v)),
        Ok(v) => anyhow::bail!(
            "HOOKWARDEN_BENCH_DB={v:?}: use postgres, or a postgres:// URL of a server whose \
             user may create databases (unset: SQLite)"
        ),
    }
}

/// The topologies of `HOOKWARDEN_BENCH_TOPOLOGIES`, in its order (to alternate between runs).
fn topologies() -> anyhow::Result<Vec<Topology>> {
    let raw = std::env::var("HOOKWARDEN_BENCH_TOPOLOGIES").unwrap_or_else(|_| TOPOLOGIES.into());
    raw.split(',')
        .map(|t| {
            Topology::parse(t).ok_or_else(|| {
                anyhow::anyhow!("HOOKWARDEN_BENCH_TOPOLOGIES: {t:?} is not one of {TOPOLOGIES}")
            })
        })
        .collect()
}

/// `server`'s URL with another database.
fn with_database(server: &str, name: &str) -> String {
    let (prefix, rest) = server.rsplit_once('/').unwrap_or((server, ""));
    match rest.split_once('?') {
        Some((_, query)) => format!("{prefix}/{name}?{query}"),
        None => format!("{prefix}/{name}"),
    }
}

/// What one topology measured.
#[derive(Default)]
struct Measured {
    b: Option<(f64, Usage)>,
    c: Option<(f64, Usage)>,
    latency: Option<(f64, f64)>,
    /// pg_stat_database over the timed pass, per delivery in the database.
    per_delivery: Option<Value>,
    wire_b: Option<Wire>,
    wire_c: Option<Wire>,
}

pub(crate) async fn run(
    org: &RunningFakeOrg,
    server: &str,
    n: usize,
    rounds: usize,
    phases: &str,
    baseline_per_s: Option<f64>,
) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(server).await?;
    let mut all = Map::new();
    for (i, topology) in topologies()?.into_iter().enumerate() {
        let name = format!("hookwarden_bench_{}_{i}", std::process::id());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        // (a) again just before the topology: this VM's speed drifts within a run (the
        // baseline's CPU per request moved between 35 and 60 µs from one minute to the next),
        // and a ratio is only as good as its two figures being measured close together.
        let local_baseline = if phases.contains('a') {
            println!("(a) again, before {}", topology.name());
            Some(crate::baseline_rounds(org, n, rounds).await?)
        } else {
            None
        };
        println!("PostgreSQL, {}: database {name}", topology.name());
        let url = with_database(server, &name);
        let measured =
            measure_topology(org, &mut admin, &url, &name, topology, n, rounds, phases).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        all.insert(
            topology.name(),
            summary(&measured?, baseline_per_s, local_baseline, n),
        );
    }
    let _ = admin.close().await;
    println!(
        "{}",
        json!({"baseline_per_s": baseline_per_s.map(|v| v.round()), "n": n, "rounds": rounds,
               "postgres": all})
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure_topology(
    org: &RunningFakeOrg,
    admin: &mut PgConnection,
    url: &str,
    name: &str,
    topology: Topology,
    n: usize,
    rounds: usize,
    phases: &str,
) -> anyhow::Result<Measured> {
    let run = |phase: char| phases.contains(phase);
    let key = MasterKey::generate();
    // Migrated and the account made before the nodes start, as an operator would.
    let store = Store::open(url, MasterKeySource::Given(key.clone())).await?;
    let (_, api_key) = store.create_account("bench").await?;
    store.close().await;
    let before = database_stats(admin, name).await?;

    let cluster = Cluster::start(topology, url, &key).await?;
    let meter = Meter {
        nodes: cluster.pids(),
        postgres: true,
    };
    let hw = Arc::new(Hookwarden::attach(org, cluster.api_base(), &api_key, true).await?);
    let mut m = Measured::default();
    let title = topology.name();
    if run('b') {
        println!("(b) on PostgreSQL, {title}: {n} events through POST /api/events/batch");
        let what = "receiver included";
        m.b = Some(
            delivery_rounds(org, &hw, n, rounds, what, &meter, |round| {
                let hw = hw.clone();
                async move { hw.ingest_batches(n, round * n).await }
            })
            .await?,
        );
    }
    if run('c') {
        println!("(c) on PostgreSQL, {title}: {n} events each alone through POST /api/events over {CONCURRENCY} connections");
        let what = "client and receiver included";
        m.c = Some(
            delivery_rounds(org, &hw, n, rounds, what, &meter, |round| {
                let hw = hw.clone();
                async move { hw.ingest_singles(n, (rounds + round) * n).await }
            })
            .await?,
        );
    }
    if run('l') {
        hw.wait_settled().await?;
        let rate = m.c.map_or(1000.0, |(r, _)| (r / 2.0).max(100.0));
        m.latency = Some(crate::latency::latency(org, &hw, rate).await?);
        hw.wait_settled().await?;
        org.reset_stats();
        // Back to the short log: the latency phase lengthened it.
        org.update_config(|c| c.callback_log_capacity = 1000)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    drop(hw);
    cluster.stop().await?;
    let after = database_stats(admin, name).await?;
    let mut db = PgConnection::connect(url).await?;
    let deliveries: i64 = sqlx::query("SELECT count(*) FROM deliveries")
        .fetch_one(&mut db)
        .await?
        .get(0);
    if deliveries > 0 {
        print_tables(&mut db, deliveries as f64).await?;
    }
    let _ = db.close().await;
    if deliveries > 0 {
        let per = |k: &str| {
            let d = after[k].as_f64().unwrap_or(0.0) - before[k].as_f64().unwrap_or(0.0);
            json!((d / deliveries as f64 * 1000.0).round() / 1000.0)
        };
        let fields = [
            "xact_commit",
            "xact_rollback",
            "tup_inserted",
            "tup_updated",
            "tup_deleted",
            "tup_returned",
            "tup_fetched",
            "wal_records",
            "wal_bytes",
            "wal_sync",
        ];
        let per_delivery: Map<String, Value> =
            fields.iter().map(|k| ((*k).to_owned(), per(k))).collect();
        println!(
            "    the timed pass, per delivery in the database ({deliveries}; pg_stat_database, \
             WAL cluster-wide): {}",
            Value::Object(per_delivery.clone())
        );
        m.per_delivery = Some(Value::Object(per_delivery));
    }

    if run('w') {
        let offset = 2 * rounds * n;
        let (b, c) =
            count_statements(org, url, &key, &api_key, topology, n, offset, phases).await?;
        (m.wire_b, m.wire_c) = (b, c);
    }
    Ok(m)
}

/// The counting pass: `topology` again, behind the proxy, (b) and (c) once each.
#[allow(clippy::too_many_arguments)]
async fn count_statements(
    org: &RunningFakeOrg,
    url: &str,
    key: &MasterKey,
    api_key: &str,
    topology: Topology,
    n: usize,
    offset: usize,
    phases: &str,
) -> anyhow::Result<(Option<Wire>, Option<Wire>)> {
    let proxy = Proxy::start(url).await?;
    let cluster = Cluster::start(topology, &proxy.url, key).await?;
    let hw = Arc::new(Hookwarden::attach(org, cluster.api_base(), api_key, false).await?);
    let mut found = (None, None);
    for phase in ['b', 'c'] {
        if !phases.contains(phase) {
            continue;
        }
        let start = (Instant::now(), proxy.counts());
        if phase == 'b' {
            hw.ingest_batches(n, offset).await?;
        } else {
            hw.ingest_singles(n, offset + n).await?;
        }
        wait_delivered(org, n as u64, Duration::from_secs(300)).await?;
        // The last outcomes written (a few polls of the API are counted too).
        hw.wait_settled().await?;
        let wire = start.1.until(&proxy.counts());
        org.reset_stats();
        let per = |v: u64| v as f64 / n as f64;
        println!(
            "    ({phase}) counted through the proxy ({:.1} s, untimed): per delivery {:.3} statements, \
             {:.3} round trips ({:.3} preparing a statement, {:.3} with none: pool checks), \
             {:.3} commits ({:.3} of them writing), {:.3} notifications; statements by tag: {}",
            start.0.elapsed().as_secs_f64(),
            per(wire.statement_count()),
            per(wire.round_trips),
            per(wire.prepares),
            per(wire.bare_round_trips),
            per(wire.commits),
            per(wire.write_commits),
            per(wire.notifications),
            wire.statements
                .iter()
                .map(|(tag, c)| format!("{tag} {:.3}", per(*c)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut texts: Vec<_> = wire.texts.iter().collect();
        texts.sort_by(|a, b| b.1.cmp(a.1));
        println!("        the statements executed most, per delivery:");
        for (text, count) in texts.into_iter().take(10) {
            println!("        {:.4} {text}", per(*count));
        }
        if phase == 'b' {
            found.0 = Some(wire);
        } else {
            found.1 = Some(wire);
        }
    }
    drop(hw);
    cluster.stop().await?;
    drop(proxy);
    Ok(found)
}

/// `pg_stat_database` of `name` and the cluster's `pg_stat_wal`, once no backend is connected
/// to `name` any more (a backend flushes its counts as it exits).
async fn database_stats(admin: &mut PgConnection, name: &str) -> anyhow::Result<Value> {
    let start = Instant::now();
    loop {
        let connected: i64 =
            sqlx::query("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(name)
                .fetch_one(&mut *admin)
                .await?
                .get(0);
        if connected == 0 {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "{connected} connections to {name} still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = sqlx::query(
        "SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, d.tup_deleted, \
                d.tup_returned, d.tup_fetched, w.wal_records, w.wal_bytes::bigint, w.wal_sync \
         FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1",
    )
    .bind(name)
    .fetch_one(&mut *admin)
    .await?;
    let names = [
        "xact_commit",
        "xact_rollback",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
        "tup_returned",
        "tup_fetched",
        "wal_records",
        "wal_bytes",
        "wal_sync",
    ];
    let mut out = Map::new();
    for (i, k) in names.iter().enumerate() {
        out.insert((*k).to_owned(), json!(row.try_get::<i64, _>(i)?));
    }
    Ok(Value::Object(out))
}

/// Where the rows were read and written, per delivery in the database, table by table
/// (`pg_stat_user_tables`: the database is new, so its counts are this topology's).
async fn print_tables(db: &mut PgConnection, deliveries: f64) -> anyhow::Result<()> {
    let rows = sqlx::query(
        "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), \
                coalesce(idx_tup_fetch, 0), n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del \
         FROM pg_stat_user_tables ORDER BY relname",
    )
    .fetch_all(&mut *db)
    .await?;
    println!("    per delivery, by table (seq scans/rows read, index scans/rows fetched, inserted, updated (HOT), deleted):");
    for row in rows {
        let v = |i: usize| row.try_get::<i64, _>(i).unwrap_or(0) as f64 / deliveries;
        if (1..9).all(|i| v(i) < 0.0005) {
            continue;
        }
        let name: String = row.get(0);
        println!(
            "      {name}: {:.3}/{:.1}, {:.3}/{:.2}, {:.3}, {:.3} ({:.3}), {:.3}",
            v(1),
            v(2),
            v(3),
            v(4),
            v(5),
            v(6),
            v(7),
            v(8)
        );
    }
    Ok(())
}

/// One topology's entry of the JSON line: SQLite's keys where they apply, and the rest.
/// `ratio` and `single_ratio` are to the run's first (a); `local_*` to the (a) measured just
/// before this topology.
fn summary(m: &Measured, baseline_per_s: Option<f64>, local: Option<f64>, n: usize) -> Value {
    let r = |v: f64, places: i32| {
        let scale = 10f64.powi(places);
        (v * scale).round() / scale
    };
    let cpu = |u: &Usage| {
        json!({"hookwarden_us": r(u.nodes_us, 0), "postgres_us": r(u.postgres_us, 0),
               "bench_us": r(u.bench_us, 0), "idle": r(u.idle, 2), "steal": r(u.steal, 2)})
    };
    let wire = |w: &Wire, n: f64| {
        json!({"statements": r(w.statement_count() as f64 / n, 3),
               "round_trips": r(w.round_trips as f64 / n, 3),
               "prepares": r(w.prepares as f64 / n, 3),
               "bare_round_trips": r(w.bare_round_trips as f64 / n, 3),
               "commits": r(w.commits as f64 / n, 3),
               "write_commits": r(w.write_commits as f64 / n, 3),
               "notifications": r(w.notifications as f64 / n, 3)})
    };
    let n = n as f64;
    json!({
        "hookwarden_per_s": m.b.map(|(v, _)| r(v, 0)),
        "single_event_per_s": m.c.map(|(v, _)| r(v, 0)),
        "ratio": m.b.zip(baseline_per_s).map(|((b, _), a)| r(b / a, 3)),
        "single_ratio": m.c.zip(baseline_per_s).map(|((c, _), a)| r(c / a, 3)),
        "local_baseline_per_s": local.map(|a| r(a, 0)),
        "local_ratio": m.b.zip(local).map(|((b, _), a)| r(b / a, 3)),
        "local_single_ratio": m.c.zip(local).map(|((c, _), a)| r(c / a, 3)),
        "p50_ms": m.latency.map(|l| r(l.0, 1)),
        "p99_ms": m.latency.map(|l| r(l.1, 1)),
        "cpu_b": m.b.map(|(_, u)| cpu(&u)),
        "cpu_c": m.c.map(|(_, u)| cpu(&u)),
        "pg_stat_per_delivery": m.per_delivery,
        "wire_b": m.wire_b.as_ref().map(|w| wire(w, n)),
        "wire_c": m.wire_c.as_ref().map(|w| wire(w, n)),
    })
}
