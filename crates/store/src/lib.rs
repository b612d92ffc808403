//! hookwarden's storage: one `Store` over SQLite (embedded, the default) or PostgreSQL (many
//! nodes). Handlers never see SQL; every secret column is sealed by `crypto::Cipher`.
//!
//! Both databases run the same SQL text (`$1` placeholders work in SQLite too); `on_db!`
//! expands a query body once per driver so each arm is type-checked against its own driver.

pub mod accounts;
mod checkpoint;
pub mod connectors;
pub mod console;
mod counts;
pub mod crypto;
pub mod deliveries;
mod held;
pub mod history;
mod keepalive;
pub mod keyring;
mod migrate;
mod multirow;
pub mod nodes;
pub mod notifications;
pub mod notify;
mod redact;
pub mod retention;
mod review;
pub mod testing;
pub mod tokens;
mod transitions;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use accounts::{api_key_id, Account, ApiKeyInfo, KeyHolder, KeyRevocation};
pub use connectors::{ConnectorRecord, NewConnector, Seen, DEFAULT_CALLBACK_NAME};
pub use counts::ConnectorLabel;
pub use crypto::{Cipher, MasterKey, MasterKeyRing};
pub use deliveries::{
    AttemptRecord, ClaimedDelivery, Completion, ConnectorGauges, DeliveryFilter, DeliveryRecord,
    FailedDelivery, IdempotencyRecord, IngestOutcome, IngestWrite, NewAttempt, NewDelivery,
    NewEvent, RetryOutcome,
};
pub use history::{HistoryEntry, HistoryKind, NewHistoryEntry};
pub use keepalive::KeepAliveCandidate;
pub use keyring::{ResealCount, ResealReport, Unopenable};
pub use nodes::Liveness;
pub use notifications::{notification_destination, NotificationEndpoint};
pub use redact::{redact_in, redact_url};
pub use retention::Pruned;
pub use review::DeliveryTrack;
pub use tokens::{GrantedTokens, OAuthState, TokenState};
pub use transitions::RevokedLocally;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The URL, its password redacted (see `redact_url`).
    #[error("unsupported database URL {0:?}: use sqlite://FILE, sqlite:///ABSOLUTE/PATH or postgres://...")]
    BadUrl(String),
    /// PostgreSQL did not take the connection; the URL and message with any password redacted.
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error(
        "a stored secret ({0}) could not be decrypted: is this the master key it was written with?"
    )]
    Decrypt(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
}

impl StoreError {
    /// The database could not grow: SQLite's SQLITE_FULL (its disk, or `max_page_count`),
    /// PostgreSQL's `disk_full`, or the OS's "no space left on device".
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Db(sqlx::Error::Database(e)) => {
                // SQLite reports the primary result code (13) or an extended one built on it.
                let sqlite_full = e
                    .code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(|c| c & 0xff == 13);
                sqlite_full || e.code().as_deref() == Some("53100")
            }
            Self::Db(sqlx::Error::Io(e)) => e.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Run `$body` with `$pool` bound to the concrete pool of whichever database this is.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Start a transaction that will write. SQLite's deferred BEGIN would fail with "database is
/// locked" when two such transactions upgrade from read to write at once; IMMEDIATE takes the
/// write lock up front so the busy timeout queues them instead.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        self.begin().await
    }
}

/// Where the master key (ring) comes from.
#[derive(Debug, Clone, Default)]
pub enum MasterKeySource {
    /// `HOOKWARDEN_MASTER_KEY` (or the config's `master_key`): a ring of one.
    Given(MasterKey),
    /// `HOOKWARDEN_MASTER_KEYS` (or the config's `master_keys`): the first seals, all open.
    Ring(MasterKeyRing),
    /// A key file beside the SQLite database, created 0600 when missing and the database holds
    /// no sealed value yet; refused when group or others may read or write it.
    #[default]
    FileBesideDatabase,
}

#[derive(Clone, Debug)]
pub struct Store {
    /// Every write, and reads that belong to a write.
    pub(crate) db: Db,
    /// Reads that stand alone (listings, lookups by the API): other connections, so that they
    /// neither wait for the writer nor make it wait. The same pool on PostgreSQL.
    pub(crate) reads: Db,
    pub(crate) cipher: Arc<Cipher>,
    writes: Arc<WriteGate>,
    pub(crate) connectors: Arc<connectors::ConnectorCache>,
    /// PostgreSQL: the hot loops' own connections (`held`); `None` on SQLite.
    held: Option<Arc<held::Held>>,
}

/// SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's
/// busy handler (up to 100 ms a nap). The hot writers (ingest, claims, outcomes) and the
/// checkpoint that holds writers back queue here instead, in order and without naps.
/// PostgreSQL needs no gate.
#[derive(Debug)]
pub struct WriteGate {
    gate: Option<tokio::sync::Mutex<()>>,
}

impl WriteGate {
    pub async fn enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.gate {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }
}

/// How a store is opened beyond its URL and master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// PostgreSQL: the most connections this process opens: its pool, the LISTEN connection a
    /// delivery engine keeps among them, and the hot loops' held connections (`held`: up to
    /// three, taken from this number; the pool keeps at least two). Not used on SQLite (one
    /// writer, four readers).
    pub pg_max_connections: u32,
}

/// `StoreOptions::pg_max_connections` unless configured (`database_max_connections`).
pub const DEFAULT_PG_MAX_CONNECTIONS: u32 = 16;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pg_max_connections: DEFAULT_PG_MAX_CONNECTIONS,
        }
    }
}

impl Store {
    /// Open (creating the SQLite file if needed) and migrate.
    pub async fn open(url: &str, master_key: MasterKeySource) -> Result<Self, StoreError> {
        Self::open_with(url, master_key, StoreOptions::default()).await
    }

    /// `open`, with a PostgreSQL pool of `options.pg_max_connections`.
    pub async fn open_with(
        url: &str,
        master_key: MasterKeySource,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        // Two processes opening one new SQLite file at the same moment can meet SQLITE_BUSY
        // while the first one switches it to WAL, before any busy handler applies: try again.
        let mut delay = Duration::from_millis(50);
        for _ in 0..6 {
            match Self::open_once(url, master_key.clone(), options).await {
                Err(StoreError::Db(sqlx::Error::Database(e)))
                    if url.starts_with("sqlite:") && e.code().as_deref() == Some("5") =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        Self::open_once(url, master_key, options).await
    }

    async fn open_once(
        url: &str,
        master_key: MasterKeySource,
        store_options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let mut held = None;
        let ((db, reads), key_file) = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|_| StoreError::BadUrl(redact_url(url)))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // No checkpoint inside a writer's commit: `checkpoint_in_background` does it
                // (see there).
                .pragma("wal_autocheckpoint", "0");
            let file = sqlite_file(url);
            let in_memory = file.is_none();
            // Every write goes through one connection that stays open: SQLite writes one at a
            // time anyway, and a connection throws its page cache away whenever another one
            // has written, so writers spread over a pool re-read the pages they need at every
            // transaction (a quarter of a delivery's CPU). In-memory databases live per
            // connection, so they have exactly this one for everything.
            // It is opened by `connect_with` on the calling thread, and its thread (sqlx runs
            // each connection on one) takes that thread's priority: see
            // hookwarden_server::runtime. No `min_connections`: with it, sqlx also spawns a
            // task that races to open the connection from a runtime worker.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .idle_timeout(None)
                .max_lifetime(None)
                // Room for every statement text the hot writers use (multirow's padded
                // sizes), and 16 MiB of pages: the indexes that each ingest and outcome touch.
                .connect_with(
                    options
                        .clone()
                        .statement_cache_capacity(256)
                        .pragma("cache_size", "-16384"),
                )
                .await?;
            let readers = if in_memory {
                writer.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .min_connections(0)
                    .idle_timeout(Some(Duration::from_secs(600)))
                    .max_lifetime(Some(Duration::from_secs(1800)))
                    .connect_with(options)
                    .await?
            };
            let key_file = file.as_deref().map(crypto::key_file_beside);
            ((Db::Sqlite(writer), Db::Sqlite(readers)), key_file)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options =
                PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(redact_url(url)))?;
            // No ping before each acquire (sqlx's `test_before_acquire`): it was 41% of all
            // round trips with single events. A connection that broke while idle (PostgreSQL
            // restarted) fails the one statement that uses it, which its caller reports or
            // retries (`503 storage_unavailable`, a claim again a second later), and is closed.
            // The hot loops' held connections count against the configured number.
            let pooled = store_options
                .pg_max_connections
                .saturating_sub(held::Held::COUNT as u32)
                .max(2);
            let pool = PgPoolOptions::new()
                .max_connections(pooled)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await
                // sqlx's messages do not carry the URL today; redact_in keeps it so if one does.
                .map_err(|e| {
                    StoreError::Connect(redact_in(&format!("{}: {e}", redact_url(url)), url))
                })?;
            held = Some(Arc::new(held::Held::new(options)));
            ((Db::Postgres(pool.clone()), Db::Postgres(pool)), None)
        } else {
            return Err(StoreError::BadUrl(redact_url(url)));
        };

        // SQLite in a file (not in memory, which has no WAL).
        let sqlite_file = key_file.is_some();
        if matches!(
            (&master_key, &db),
            (MasterKeySource::FileBesideDatabase, Db::Postgres(_))
        ) {
            return Err(StoreError::MasterKey(
                "PostgreSQL needs HOOKWARDEN_MASTER_KEY (base64 of 32 bytes, the same on every node; \
                 generate one with `openssl rand -base64 32`), or HOOKWARDEN_MASTER_KEYS for a ring"
                    .into(),
            ));
        }
        migrate::run(&db).await?;
        let cipher = match Self::ring_for(&db, master_key, key_file).await {
            Ok(cipher) => cipher,
            Err(e) => {
                on_db!(&db, pool => pool.close().await);
                on_db!(&reads, pool => pool.close().await);
                return Err(e);
            }
        };
        let writes = Arc::new(WriteGate {
            gate: matches!(db, Db::Sqlite(_)).then(|| tokio::sync::Mutex::new(())),
        });
        // From a reader's connection: the checkpoint must not hold up the writer's.
        if let (Db::Sqlite(pool), true) = (&reads, sqlite_file) {
            checkpoint::checkpoint_in_background(pool.clone(), writes.clone());
        }
        Ok(Self {
            writes,
            db,
            reads,
            cipher: Arc::new(cipher),
            connectors: Arc::default(),
            held,
        })
    }

    /// The ring to seal and open with, checked against what the database holds: a key file is
    /// created only for a database without sealed values, and one value per key id present
    /// must open.
    async fn ring_for(
        db: &Db,
        master_key: MasterKeySource,
        key_file: Option<PathBuf>,
    ) -> Result<Cipher, StoreError> {
        let present = keyring::key_ids_present(db).await?;
        let ring: MasterKeyRing = match (master_key, key_file) {
            (MasterKeySource::Given(key), _) => key.into(),
            (MasterKeySource::Ring(ring), _) => ring,
            (MasterKeySource::FileBesideDatabase, Some(path)) => {
                MasterKey::load_or_create_file(&path, present.is_empty())?.into()
            }
            // An in-memory database dies with the process, and so may its key.
            (MasterKeySource::FileBesideDatabase, None) => MasterKey::generate().into(),
        };
        let cipher = Cipher::new(&ring);
        keyring::check_ring(db, &cipher, &present).await?;
        Ok(cipher)
    }

    /// The turn to write that the hot writers take (SQLite; PostgreSQL needs none).
    pub fn write_gate(&self) -> Arc<WriteGate> {
        self.writes.clone()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// A cheap round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Hot loop `hot`'s held connection (PostgreSQL only; see `held`).
    pub(crate) async fn held(
        &self,
        hot: held::Hot,
    ) -> Result<held::HeldConnection<'_>, StoreError> {
        let held = self
            .held
            .as_ref()
            .expect("held connections exist on PostgreSQL");
        held.take(hot).await
    }

    pub async fn close(&self) {
        if let Some(held) = &self.held {
            held.close().await;
        }
        on_db!(&self.db, pool => pool.close().await);
        on_db!(&self.reads, pool => pool.close().await);
    }
}

/// The file a `sqlite:` URL names, as sqlx reads it (`sqlite://relative.db`,
/// `sqlite:///absolute/path.db`); `None` for an in-memory database or another kind of URL.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    SqliteConnectOptions::from_str(url)
        .ok()
        .map(|o| o.get_filename().to_path_buf())
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
