//! hookwarden nodes on PostgreSQL, each a process of its own (the bench's own binary, run as
//! `hookwarden-bench node`): `hookwarden_server::spawn` on the runtime and with the allocator
//! `hookwarden serve` uses, so that each node has its own connection pool, LISTEN connection and
//! CPU time, as separate `serve` processes would.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use hookwarden_core::AddressPolicy;
use hookwarden_server::{Role, Settings};
use hookwarden_store::{MasterKey, MasterKeySource};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const ROLE: &str = "HOOKWARDEN_BENCH_NODE_ROLE";
const DATABASE: &str = "HOOKWARDEN_BENCH_NODE_DATABASE";
const KEY: &str = "HOOKWARDEN_BENCH_NODE_KEY";
const THREADS: &str = "HOOKWARDEN_BENCH_NODE_THREADS";
/// `runtime_threads` of worker nodes (0: one per core), unless 1 (see `threads_of`).
const WORKER_THREADS: &str = "HOOKWARDEN_BENCH_WORKER_THREADS";

/// A node's `runtime_threads`. Every node of the bench shares one machine, so each worker node
/// gets one thread, its share, as an operator would size nodes that share a machine (see
/// `runtime_threads` in the default configuration); a node that answers the API keeps one per
/// core (0), and so does the one node of `all`, which has the machine to itself.
fn threads_of(role: Role) -> anyhow::Result<usize> {
    match role {
        Role::Worker => match std::env::var(WORKER_THREADS) {
            Ok(v) => v.parse().with_context(|| {
                format!("{WORKER_THREADS}={v:?}: give a number (0: one per core)")
            }),
            Err(_) => Ok(1),
        },
        Role::Api | Role::All => Ok(0),
    }
}

/// The settings of a node of the bench: as the SQLite bench's server (fake org on loopback over
/// plain HTTP, large batches), on `database` in `role`.
pub(crate) fn node_settings(
    database: &str,
    role: Role,
    key: MasterKey,
) -> anyhow::Result<Settings> {
    // From the defaults, so settings added later keep their default here.
    let mut settings: Settings = hookwarden_server::Config::defaults().settings()?;
    settings.listen = "127.0.0.1:0".parse()?;
    settings.database = database.to_owned();
    settings.role = role;
    settings.master_key = MasterKeySource::Given(key);
    settings.allow_insecure_http = true;
    settings.address_policy =
        AddressPolicy::parse_list("127.0.0.0/8").map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.max_body_bytes = 4 * 1024 * 1024;
    Ok(settings)
}

/// `hookwarden-bench node`: one node, until its standard input closes (the bench ends it so, or
/// by ending itself); prints `listening <base URL>` once it serves.
pub(crate) fn node_main() -> anyhow::Result<()> {
    let role = std::env::var(ROLE).context(ROLE)?;
    let role = Role::parse(&role).with_context(|| format!("{ROLE}={role:?}"))?;
    let database = std::env::var(DATABASE).context(DATABASE)?;
    let key = MasterKey::from_base64(&std::env::var(KEY).context(KEY)?)
        .map_err(|e| anyhow::anyhow!("{KEY}: {e}"))?;
    let threads: usize = std::env::var(THREADS)
        .context(THREADS)?
        .parse()
        .with_context(|| THREADS.to_owned())?;
    // Normal priority, as `serve` runs on PostgreSQL (worker_niceness is for SQLite's writer).
    let threads = (threads > 0).then_some(threads);
    hookwarden_server::runtime::build(0, threads)?.block_on(async move {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ))
            .with_writer(std::io::stderr)
            .init();
        let server = hookwarden_server::spawn(node_settings(&database, role, key)?, None).await?;
        println!("listening {}", server.base_url());
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 64];
        while stdin.read(&mut sink).await? > 0 {}
        server.shutdown().await?;
        Ok(())
    })
}

/// A node process of the bench.
pub(crate) struct Node {
    pub(crate) role: Role,
    pub(crate) base: String,
    pub(crate) pid: u32,
    child: Child,
}

impl Node {
    pub(crate) async fn start(database: &str, role: Role, key: &MasterKey) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("node")
            .env(ROLE, role.as_str())
            .env(DATABASE, database)
            .env(KEY, key.to_base64())
            .env(THREADS, threads_of(role)?.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a node process")?;
        let pid = child.id().context("the node exited at once")?;
        let stdout = child.stdout.take().context("the node's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("the node did not start within 60 s")??
            .context("the node exited before serving (its error is above)")?;
        let base = line
            .strip_prefix("listening ")
            .with_context(|| format!("the node said {line:?}"))?
            .to_owned();
        Ok(Self {
            role,
            base,
            pid,
            child,
        })
    }

    /// Stop gracefully (in-flight deliveries finish, claims are handed back), as on SIGTERM.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("a node took over 30 s to stop")??;
        anyhow::ensure!(
            status.success(),
            "the {} node exited with {status}",
            self.role
        );
        Ok(())
    }
}

/// What runs on PostgreSQL: one node that does everything, or an API node and worker nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topology {
    All,
    ApiAndWorkers(usize),
}

impl Topology {
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "all" => Some(Self::All),
            "api+1w" => Some(Self::ApiAndWorkers(1)),
            "api+2w" => Some(Self::ApiAndWorkers(2)),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::ApiAndWorkers(n) => format!("api+{n}w"),
        }
    }

    fn roles(self) -> Vec<Role> {
        match self {
            Self::All => vec![Role::All],
            Self::ApiAndWorkers(n) => std::iter::once(Role::Api)
                .chain(std::iter::repeat_n(Role::Worker, n))
                .collect(),
        }
    }
}

/// The nodes of a topology; the first answers the API.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
}

impl Cluster {
    /// One after the other: the first migrates (nothing to do here: the bench migrated).
    pub(crate) async fn start(
        topology: Topology,
        database: &str,
        key: &MasterKey,
    ) -> anyhow::Result<Self> {
        let mut nodes = Vec::new();
        for role in topology.roles() {
            nodes.push(Node::start(database, role, key).await?);
        }
        Ok(Self { nodes })
    }

    pub(crate) fn api_base(&self) -> &str {
        &self.nodes[0].base
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.pid).collect()
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        // Workers first, so that none is left waiting for an API node's NOTIFY.
        for node in self.nodes.into_iter().rev() {
            node.stop().await?;
        }
        Ok(())
    }
}
