//! A counting proxy between hookwarden's nodes and PostgreSQL, for the untimed counting pass:
//! PostgreSQL cannot count statements without `pg_stat_statements` in
//! `shared_preload_libraries` (a server restart), so the bench reads the server's answers on
//! the wire instead. Each statement ends with one CommandComplete (`C`, its tag names it:
//! `INSERT`, `UPDATE`, `COMMIT`, ...), each round trip with one ReadyForQuery (`Z`, carrying
//! whether a transaction is still open), a statement prepared answers ParseComplete (`1`), and a
//! LISTEN connection receives NotificationResponse (`A`). From the client's side, each Execute
//! (`E`) of a statement prepared by Parse (`P`) and bound by Bind (`B`), and each simple Query
//! (`Q`), is counted by its text.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answered, summed over every connection through the proxy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Wire {
    /// CommandComplete by the tag's first word (`BEGIN` and `COMMIT` included).
    pub(crate) statements: BTreeMap<String, u64>,
    /// ReadyForQuery: one per round trip (a Sync or a simple Query).
    pub(crate) round_trips: u64,
    /// ParseComplete: statements prepared (sqlx prepares a text once per connection, in a
    /// round trip of its own).
    pub(crate) prepares: u64,
    /// Round trips that neither ran nor prepared a statement: the pool's check of a
    /// connection before handing it out (a bare Sync).
    pub(crate) bare_round_trips: u64,
    /// Transactions ended by a commit, explicit or not (a statement outside a transaction block
    /// commits by itself); of those, the ones that inserted, updated or deleted.
    pub(crate) commits: u64,
    pub(crate) write_commits: u64,
    pub(crate) rollbacks: u64,
    /// NotificationResponse: NOTIFYs as the LISTENing nodes received them.
    pub(crate) notifications: u64,
    /// Executions by statement text (whitespace collapsed, a multi-row INSERT cut after
    /// `VALUES`, at most 110 characters).
    pub(crate) texts: BTreeMap<String, u64>,
}

impl Wire {
    pub(crate) fn statement_count(&self) -> u64 {
        self.statements.values().sum()
    }

    /// What happened between `self` and `later`.
    pub(crate) fn until(&self, later: &Wire) -> Wire {
        let mut statements = later.statements.clone();
        for (tag, count) in &self.statements {
            *statements.entry(tag.clone()).or_default() -= count;
        }
        statements.retain(|_, c| *c > 0);
        let mut texts = later.texts.clone();
        for (text, count) in &self.texts {
            *texts.entry(text.clone()).or_default() -= count;
        }
        texts.retain(|_, c| *c > 0);
        Wire {
            texts,
            statements,
            round_trips: later.round_trips - self.round_trips,
            prepares: later.prepares - self.prepares,
            bare_round_trips: later.bare_round_trips - self.bare_round_trips,
            commits: later.commits - self.commits,
            write_commits: later.write_commits - self.write_commits,
            rollbacks: later.rollbacks - self.rollbacks,
            notifications: later.notifications - self.notifications,
        }
    }
}

pub(crate) struct Proxy {
    /// The URL to give the nodes: the same database, through the proxy.
    pub(crate) url: String,
    counts: Arc<Mutex<Wire>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free port to the server of `url` (a `postgres://` URL).
    pub(crate) async fn start(url: &str) -> anyhow::Result<Self> {
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        // Plain text on the wire, so that the server's first byte is a message.
        let (before, after) = url
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("not a URL: {url}"))?;
        let (authority, path) = after.split_once('/').unwrap_or((after, ""));
        let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!(
            "{before}://{}127.0.0.1:{port}/{path}{sep}sslmode=disable",
            userinfo.unwrap_or_default()
        );
        let counts = Arc::new(Mutex::new(Wire::default()));
        let task = tokio::spawn({
            let counts = counts.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (upstream, counts) = (upstream.clone(), counts.clone());
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(&upstream).await {
                            let _ = relay(client, server, counts).await;
                        }
                    });
                }
            }
        });
        Ok(Self { url, counts, task })
    }

    pub(crate) fn counts(&self) -> Wire {
        self.counts.lock().expect("wire counts").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    counts: Arc<Mutex<Wire>>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = tokio::spawn({
        let counts = counts.clone();
        async move {
            let mut reader = ClientReader::default();
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(read) = client_read.read(&mut buf).await {
                if read == 0 {
                    break;
                }
                reader.feed(&buf[..read], &counts);
                if server_write.write_all(&buf[..read]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        }
    });
    let mut reader = Reader::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = server_read.read(&mut buf).await?;
        if read == 0 {
            break;
        }
        reader.feed(&buf[..read], &counts);
        client_write.write_all(&buf[..read]).await?;
    }
    let _ = client_write.shutdown().await;
    up.abort();
    Ok(())
}

/// The server's messages, read as they stream by: a type byte, a length that counts itself,
/// the body. Only `C` and `Z` bodies are kept (they are short); the rest is skipped.
#[derive(Default)]
struct Reader {
    head: Vec<u8>,
    skip: usize,
    since_ready: bool,
    prepared: bool,
    wrote: bool,
    last_tag: String,
}

impl Reader {
    fn feed(&mut self, mut data: &[u8], counts: &Mutex<Wire>) {
        while !data.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                self.skip -= k;
                data = &data[k..];
                continue;
            }
            if self.head.len() < 5 {
                let k = (5 - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..k]);
                data = &data[k..];
                if self.head.len() < 5 {
                    return;
                }
            }
            let kind = self.head[0];
            let len = u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]);
            let body = (len as usize).saturating_sub(4);
            if kind != b'C' && kind != b'Z' {
                if kind == b'A' {
                    counts.lock().expect("wire counts").notifications += 1;
                }
                if kind == b'1' {
                    counts.lock().expect("wire counts").prepares += 1;
                    self.prepared = true;
                }
                self.head.clear();
                self.skip = body;
                continue;
            }
            let k = (5 + body - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.head.len() < 5 + body {
                return;
            }
            let message = std::mem::take(&mut self.head);
            self.message(kind, &message[5..], counts);
        }
    }

    fn message(&mut self, kind: u8, body: &[u8], counts: &Mutex<Wire>) {
        let mut counts = counts.lock().expect("wire counts");
        if kind == b'C' {
            let text = String::from_utf8_lossy(body);
            let tag = text
                .trim_end_matches('\0')
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_owned();
            if matches!(tag.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE") {
                self.wrote = true;
            }
            *counts.statements.entry(tag.clone()).or_default() += 1;
            self.last_tag = tag;
            self.since_ready = true;
            return;
        }
        counts.round_trips += 1;
        if !self.since_ready && !self.prepared {
            counts.bare_round_trips += 1;
        }
        self.prepared = false;
        // `I`: no transaction open any more; one ended here if a statement ran since the last.
        if body.first() == Some(&b'I') && self.since_ready {
            if self.last_tag == "ROLLBACK" {
                counts.rollbacks += 1;
            } else {
                counts.commits += 1;
                if self.wrote {
                    counts.write_commits += 1;
                }
            }
            self.wrote = false;
        }
        self.since_ready = false;
    }
}

/// The client's messages: after the untyped startup message, a type byte, a length that counts
/// itself, the body. Parse, Bind, Execute and Query are read; the rest is skipped.
#[derive(Default)]
struct ClientReader {
    started: bool,
    head: Vec<u8>,
    skip: usize,
    /// Prepared statements by name (sqlx names them; `""` is the unnamed one).
    prepared: std::collections::HashMap<String, String>,
    bound: Option<String>,
}

impl ClientReader {
    fn feed(&mut self, mut data: &[u8], counts: &Mutex<Wire>) {
        while !data.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                self.skip -= k;
                data = &data[k..];
                continue;
            }
            // The startup message has no type byte: a length and the rest.
            let header = if self.started { 5 } else { 4 };
            if self.head.len() < header {
                let k = (header - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..k]);
                data = &data[k..];
                if self.head.len() < header {
                    return;
                }
            }
            let at = header - 4;
            let len = u32::from_be_bytes([
                self.head[at],
                self.head[at + 1],
                self.head[at + 2],
                self.head[at + 3],
            ]) as usize;
            let body = len.saturating_sub(4);
            let kind = if self.started { self.head[0] } else { 0 };
            if !matches!(kind, b'P' | b'B' | b'E' | b'Q') {
                self.started = true;
                self.head.clear();
                self.skip = body;
                continue;
            }
            let k = (header + body - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.head.len() < header + body {
                return;
            }
            let message = std::mem::take(&mut self.head);
            self.message(kind, &message[header..], counts);
        }
    }

    fn message(&mut self, kind: u8, body: &[u8], counts: &Mutex<Wire>) {
        let mut fields = body.split(|b| *b == 0).map(String::from_utf8_lossy);
        match kind {
            b'P' => {
                let name = fields.next().unwrap_or_default().into_owned();
                let text = short_text(&fields.next().unwrap_or_default());
                self.prepared.insert(name, text);
            }
            b'B' => {
                let _portal = fields.next();
                let name = fields.next().unwrap_or_default();
                self.bound = self.prepared.get(name.as_ref()).cloned();
            }
            b'E' => {
                let text = self.bound.clone().unwrap_or_else(|| "?".to_owned());
                *counts
                    .lock()
                    .expect("wire counts")
                    .texts
                    .entry(text)
                    .or_default() += 1;
            }
            _ => {
                let text = short_text(&fields.next().unwrap_or_default());
                *counts
                    .lock()
                    .expect("wire counts")
                    .texts
                    .entry(text)
                    .or_default() += 1;
            }
        }
    }
}

/// A statement's text for a table: whitespace collapsed, a multi-row INSERT cut after its
/// `VALUES` (the same statement for any number of rows), at most 110 characters.
fn short_text(text: &str) -> String {
    let mut t = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(at) = t.find(" VALUES ") {
        t.truncate(at + " VALUES".len());
    }
    if let Some((cut, _)) = t.char_indices().nth(110) {
        t.truncate(cut);
    }
    t
}
