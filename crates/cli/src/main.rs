//! `hookwarden`: the one binary. `serve` runs the API; the other commands manage keys and
//! accounts locally, or talk to a running server.

mod client;
mod deliveries_cmd;
mod demo;
mod doctor;
mod key_cmd;
mod keys_cmd;
mod master_key_cmd;
mod notifications_cmd;
mod review_cmd;
mod table;
mod time_arg;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hookwarden_core::{KeyName, Problem, Scopes};
use hookwarden_server::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "hookwarden",
    version,
    about = "Delivers event callbacks to OAuth 2.0 protected endpoints, and owns the credentials that takes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (SQLite by default; `--database postgres://...` for PostgreSQL).
    Serve(ServeArgs),
    /// Manage accounts (tenants) directly in the database.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Encode, decode and check connector keys (no server needed).
    #[command(subcommand)]
    Key(key_cmd::KeyCommand),
    /// The master key ring: `master-key rotate` re-seals every secret under the first key of
    /// HOOKWARDEN_MASTER_KEYS (on the database; servers may keep running).
    #[command(subcommand)]
    MasterKey(master_key_cmd::MasterKeyCommand),
    /// Talk to a running server about the account's API keys: list, create with scopes, revoke.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Talk to a running server about notification endpoints: told when a connector breaks or
    /// recovers (add, list, test, deliveries, remove).
    #[command(subcommand)]
    Notifications(notifications_cmd::NotificationsCommand),
    /// Talk to a running server about connectors (test, revoke, resume, re-authenticate, replay, history).
    #[command(subcommand)]
    Connectors(client::ConnectorsCommand),
    /// Post events to a running server (one by flags, or a JSON file of them).
    #[command(subcommand)]
    Events(deliveries_cmd::EventsCommand),
    /// Follow deliveries on a running server: list, show with every attempt, retry.
    #[command(subcommand)]
    Deliveries(deliveries_cmd::DeliveriesCommand),
    /// The governance review of the account's connectors on a running server: owner, scope,
    /// host, url, secret ages, idle refresh token, failures, status (and with --probe a live
    /// test), one line per check. Exits 1 when a check fails.
    Review(review_cmd::ReviewArgs),
    /// Run a Salesforce-shaped fake org (OAuth endpoints + Apex REST receiver) for tests and demos.
    FakeOrg(demo::FakeOrgArgs),
    /// `serve --demo`: the API with a fake Salesforce org, a demo account and connector.
    Demo(DemoArgs),
    /// Print the OpenAPI document a server serves at /api/openapi.json (no server needed), e.g.
    /// to generate a client or validate it.
    Openapi,
    /// Check what `serve` would run with: configuration, master key, database and its secrets,
    /// listen address, network rules; with an API key, the account's connectors. Exits 1 when a
    /// check fails.
    Doctor(DoctorArgs),
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8080, env: HOOKWARDEN_LISTEN]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Where the demo's fake org listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    demo_org_listen: String,
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The address `serve` listens on [default: 127.0.0.1:8080, env: HOOKWARDEN_LISTEN]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The role `serve` would run with (api, worker or all) [default: all, env: HOOKWARDEN_ROLE]
    #[arg(long, value_name = "ROLE", value_parser = hookwarden_server::Role::NAMES)]
    role: Option<String>,
    /// An API key: also check that account's connectors on the running server.
    #[arg(long, env = "HOOKWARDEN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The running server to ask about them [default: the one at the listen address].
    #[arg(long, env = "HOOKWARDEN_SERVER", value_name = "URL")]
    server: Option<String>,
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// A TOML configuration file (between the defaults and HOOKWARDEN_* env vars).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://FILE, sqlite:///ABSOLUTE/PATH or postgres://... [env: HOOKWARDEN_DATABASE]
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8080, env: HOOKWARDEN_LISTEN]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// What this node runs: all (the API and the delivery workers), api (the API and the
    /// console only) or worker (deliveries, token refreshes and maintenance only; answers
    /// /healthz and /metrics). api and worker need PostgreSQL [default: all, env: HOOKWARDEN_ROLE]
    #[arg(long, value_name = "ROLE", value_parser = hookwarden_server::Role::NAMES, conflicts_with = "demo")]
    role: Option<String>,
    /// Also run a fake Salesforce org, and register a demo account and connector against it
    /// (allows plain http and loopback addresses; never use in production).
    #[arg(long)]
    demo: bool,
    /// Where the demo's fake org listens.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8081",
        requires = "demo"
    )]
    demo_org_listen: String,
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an account and print its API key (one line on stdout).
    Create {
        /// A name for the account, e.g. your team or customer.
        name: String,
        #[command(flatten)]
        scopes: ScopeArgs,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List the accounts: id, name, number of API keys.
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List an account's API keys: id, name, scopes, first characters, created, last used
    /// (never the keys).
    Keys {
        /// The account's id (acc_...) or name.
        account: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Give an account another API key and print it (one line on stdout), e.g. to rotate one.
    NewKey {
        /// The account's id (acc_...) or name.
        account: String,
        #[command(flatten)]
        scopes: ScopeArgs,
        /// A name to tell the key by in lists, e.g. producer-eu.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke one of an account's API keys (not its last admin key). Servers refuse it within 10 s.
    RevokeKey {
        /// The account's id (acc_...) or name.
        account: String,
        /// The key's id, as `accounts keys` lists it.
        key_id: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// What a key made on the database may do.
#[derive(Args)]
struct ScopeArgs {
    /// ingest (post events only), read (read everything) or admin (everything) [default:
    /// admin]. Repeat it, or separate with commas, for more than one.
    #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',', value_parser = keys_cmd::SCOPES)]
    scopes: Vec<String>,
}

impl ScopeArgs {
    fn scopes(&self) -> anyhow::Result<Scopes> {
        if self.scopes.is_empty() {
            return Ok(Scopes::admin());
        }
        Scopes::parse(&self.scopes).map_err(|e| anyhow::anyhow!("{}: {}", e.message(), e.fix()))
    }
}

fn load_config(args: &ConfigArgs, listen: Option<String>) -> anyhow::Result<Config> {
    load_config_as(args, listen, None)
}

/// `load_config` with the `--role` flag of `serve` and `doctor`.
fn load_config_as(
    args: &ConfigArgs,
    listen: Option<String>,
    role: Option<String>,
) -> anyhow::Result<Config> {
    Ok(Config::load(
        args.config.as_deref(),
        &Overrides {
            listen,
            database: args.database.clone(),
            role,
        },
    )?)
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "pretty" {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config_as(&args.config, args.listen, args.role)?;
    init_logging(&config.log_format);
    let mut settings = config.settings()?;
    let demo_org = if args.demo {
        Some(demo::start_org(&args.demo_org_listen, &mut settings).await?)
    } else {
        None
    };
    // The demo shows /metrics on the API's listener: with a token it makes, unless one is set.
    let demo_metrics_token = if args.demo && settings.metrics.token.is_none() {
        let token = demo::metrics_token();
        settings.metrics.token = Some(token.clone().into());
        Some(token)
    } else {
        None
    };
    let server = hookwarden_server::spawn(settings.clone(), None).await?;
    tracing::info!(
        listen = %server.addr,
        database = %hookwarden_server::redact_url(&settings.database),
        role = %settings.role,
        "hookwarden is serving"
    );
    // Not eprintln!: it panics when stderr is a closed pipe, and the server must keep serving.
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "hookwarden listening on http://{} (role {})",
            server.addr,
            settings.role
        );
    }
    if let Some(org) = &demo_org {
        demo::register(&server, org, demo_metrics_token.as_deref()).await?;
    }
    server
        .run_until(async {
            shutdown_signal().await;
            tracing::info!("shutting down");
        })
        .await
        .context("the server stopped")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn open_store(config: &ConfigArgs) -> anyhow::Result<hookwarden_store::Store> {
    open_store_if(config, false).await
}

/// The store, for a command that only reads or changes what is in it: a SQLite file that is
/// not there is an error naming it (a mistyped --database), not a new empty database.
async fn open_existing_store(config: &ConfigArgs) -> anyhow::Result<hookwarden_store::Store> {
    open_store_if(config, true).await
}

async fn open_store_if(
    config: &ConfigArgs,
    must_exist: bool,
) -> anyhow::Result<hookwarden_store::Store> {
    let settings = load_config(config, None)?.settings()?;
    if let Some(file) = hookwarden_store::sqlite_file(&settings.database) {
        anyhow::ensure!(
            !must_exist || file.exists(),
            "there is no database at {}: give the one the server uses (--database or HOOKWARDEN_DATABASE), or create an account first (hookwarden accounts create NAME)",
            file.display()
        );
    }
    hookwarden_store::Store::open(&settings.database, settings.master_key)
        .await
        .with_context(|| {
            format!(
                "database {}",
                hookwarden_server::redact_url(&settings.database)
            )
        })
}

/// An account by id, or by name when exactly one has it.
async fn find_account(
    store: &hookwarden_store::Store,
    wanted: &str,
) -> anyhow::Result<hookwarden_store::Account> {
    let accounts = store.list_accounts().await?;
    if let Some(a) = accounts.iter().find(|a| a.id == wanted) {
        return Ok(a.clone());
    }
    let named: Vec<_> = accounts.iter().filter(|a| a.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!(
            "no account has the id or name {wanted:?}: `hookwarden accounts list` shows them"
        ),
        _ => anyhow::bail!(
            "{} accounts are named {wanted:?}: give the id (acc_...) from `hookwarden accounts list`",
            named.len()
        ),
    }
}

async fn accounts(command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Create {
            name,
            scopes,
            config,
        } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 200,
                "the account name must be 1 to 200 characters"
            );
            let scopes = scopes.scopes()?;
            let store = open_store(&config).await?;
            let (account, _, api_key) = match store
                .create_account_with_key(name, scopes, None)
                .await
            {
                Err(hookwarden_store::StoreError::Conflict(why)) => anyhow::bail!(
                    "{why}: give the new account another name, or make a key for that one (hookwarden accounts new-key {name:?})"
                ),
                other => other?,
            };
            store.close().await;
            eprintln!(
                "created account {} ({}) with an API key: {scopes}",
                account.name, account.id
            );
            println!("{api_key}");
            Ok(())
        }
        AccountsCommand::List { config } => {
            let store = open_existing_store(&config).await?;
            let mut rows = table::new(&["id", "name", "keys"]);
            for account in store.list_accounts().await? {
                let keys = store.list_api_keys(&account.id).await?.len();
                rows.add_row(vec![account.id.to_string(), account.name, keys.to_string()]);
            }
            store.close().await;
            table::print(&rows, "no accounts");
            Ok(())
        }
        AccountsCommand::Keys { account, config } => {
            let store = open_existing_store(&config).await?;
            let account = find_account(&store, &account).await?;
            let time = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            let mut rows = table::new(&["id", "name", "scopes", "prefix", "created", "last used"]);
            for key in store.list_api_keys(&account.id).await? {
                rows.add_row(vec![
                    key.id,
                    key.name.unwrap_or_else(|| "-".to_owned()),
                    key.scopes.to_string(),
                    key.prefix
                        .map_or_else(|| "-".to_owned(), |p| format!("{p}…")),
                    time(key.created_at),
                    key.last_used_at.map_or_else(|| "never".to_owned(), time),
                ]);
            }
            store.close().await;
            table::print(&rows, "no API keys");
            Ok(())
        }
        AccountsCommand::NewKey {
            account,
            scopes,
            name,
            config,
        } => {
            let scopes = scopes.scopes()?;
            let name = name
                .as_deref()
                .map(KeyName::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{}: {}", e.message(), e.fix()))?;
            let cap = load_config(&config, None)?
                .settings()?
                .limits
                .max_keys_per_account;
            let store = open_existing_store(&config).await?;
            let account = find_account(&store, &account).await?;
            // The same cap as `POST /api/keys` (0 is none): the servers would refuse the key
            // this command might otherwise add past it.
            let held = store.list_api_keys(&account.id).await?.len();
            if cap != 0 && held >= cap as usize {
                store.close().await;
                anyhow::bail!(
                    "account {} has {held} API keys, as many as it may (max_keys_per_account = {cap}): \
                     revoke one no longer used (`hookwarden accounts keys {}` shows when each was last used; \
                     `hookwarden accounts revoke-key {} ID`), or raise max_keys_per_account \
                     (HOOKWARDEN_MAX_KEYS_PER_ACCOUNT) for this command and the servers",
                    account.name,
                    account.name,
                    account.name
                );
            }
            let (info, api_key) = store
                .create_scoped_api_key(&account.id, scopes, name.as_ref())
                .await?;
            store.close().await;
            eprintln!(
                "new API key {} ({}) for account {}",
                info.id, info.scopes, account.name
            );
            println!("{api_key}");
            Ok(())
        }
        AccountsCommand::RevokeKey {
            account,
            key_id,
            config,
        } => {
            let store = open_existing_store(&config).await?;
            let account = find_account(&store, &account).await?;
            let outcome = store.revoke_api_key(&account.id, key_id.trim()).await?;
            store.close().await;
            match outcome {
                hookwarden_store::KeyRevocation::Revoked => {
                    println!("revoked {key_id}; servers refuse it within 10 s");
                    Ok(())
                }
                hookwarden_store::KeyRevocation::NotFound => anyhow::bail!(
                    "account {} has no API key with id {key_id:?}: `hookwarden accounts keys {}` lists them",
                    account.name,
                    account.id
                ),
                hookwarden_store::KeyRevocation::LastAdminKey => anyhow::bail!(
                    "{key_id} is the last admin key of account {}: revoking it would leave no key that can manage the account; \
                     create another first (`hookwarden accounts new-key {}`)",
                    account.name,
                    account.id
                ),
            }
        }
    }
}

/// mimalloc (its v2 line): under load, glibc's malloc took about a fifth of the CPU, in lock
/// hand-offs between threads and in consolidating freed chunks; mimalloc cuts the CPU per
/// delivery by about a quarter, and 100,000 pending deliveries took 72–84 MB of RSS in the bench
/// (its v3 line took 90–114 MB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server's runtime yields to SQLite's writer thread (see hookwarden_server::runtime)
    // and has the configured number of threads; a configuration that does not load is reported by `serve` itself, as before.
    let (niceness, threads) = match &cli.command {
        Command::Serve(ServeArgs { config, listen, .. })
        | Command::Demo(DemoArgs { config, listen, .. }) => load_config(config, listen.clone())
            .and_then(|c| Ok((c.runtime_niceness()?, c.runtime_threads()?)))
            .unwrap_or((0, None)),
        _ => (0, None),
    };
    let runtime = match hookwarden_server::runtime::build(niceness, threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `block_on` runs `run` on this thread, so the store it opens starts SQLite's writer thread
    // from here, at this thread's (normal) priority.
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Accounts(command) => accounts(command).await,
        Command::Key(command) => return key_cmd::run(command),
        Command::Openapi => serde_json::to_string_pretty(&hookwarden_server::openapi())
            .map(|doc| println!("{doc}"))
            .map_err(Into::into),
        Command::FakeOrg(args) => demo::run_fake_org(args).await,
        Command::Demo(args) => {
            serve(ServeArgs {
                config: args.config,
                listen: args.listen,
                role: None,
                demo: true,
                demo_org_listen: args.demo_org_listen,
            })
            .await
        }
        Command::Doctor(args) => {
            let config = load_config_as(&args.config, args.listen, args.role);
            match doctor::run(config, args.api_key, args.server).await {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Keys(command) => keys_cmd::run(command).await,
        Command::Notifications(command) => notifications_cmd::run(command).await,
        Command::MasterKey(command) => match master_key_cmd::run(command).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Events(command) => deliveries_cmd::run_events(command).await,
        Command::Deliveries(command) => deliveries_cmd::run_deliveries(command).await,
        Command::Review(args) => match review_cmd::run(args).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Connectors(command) => match client::run(command).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
