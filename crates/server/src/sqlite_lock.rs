//! One `serve` per SQLite file. A SQLite node owns its database: at start it gives back every
//! delivery lease in it (they can only belong to a process that is gone) and it keeps the
//! account's connectors in memory between its own writes. A second process on the same file
//! would take the first one's deliveries in flight and send them again, and miss its connector
//! changes. So `serve` holds an exclusive lock on `<database>.serve.lock` for as long as it
//! runs; a second `serve` exits at once, naming the process that holds it. The lock is the
//! operating system's (`flock`): a process that dies, even by SIGKILL, lets go of it.
//!
//! Commands that work on the database beside a running server (`accounts`, `doctor`,
//! `master-key rotate`) do not take it. Several nodes share a PostgreSQL database, not a file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Held while the server runs; dropping it lets go of the file.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file of a SQLite database file.
pub fn lock_path(database_file: &Path) -> PathBuf {
    let mut name = database_file.as_os_str().to_owned();
    name.push(".serve.lock");
    PathBuf::from(name)
}

/// Take the lock of the SQLite file `database` names; `None` for PostgreSQL or an in-memory
/// database. `listen` is written into the file, for the message a second process gives.
pub fn take(database: &str, listen: SocketAddr) -> anyhow::Result<Option<ServeLock>> {
    let Some(file) = hookwarden_store::sqlite_file(database) else {
        return Ok(None);
    };
    let path = lock_path(&file);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process".to_owned()
            } else {
                holder.to_owned()
            };
            anyhow::bail!(
                "the SQLite database {} is already served by {holder} (it holds {}): one `hookwarden serve` per SQLite file, since a second would take over the first one's deliveries in flight and send them twice; stop that process first, or run several nodes on one PostgreSQL database (--database postgres://...)",
                file.display(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
    let holder = format!(
        "hookwarden serve, pid {}, listening on {listen}, since {}",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    lock.set_len(0)?;
    lock.seek(SeekFrom::Start(0))?;
    lock.write_all(holder.as_bytes())?;
    lock.flush()?;
    Ok(Some(ServeLock { _file: lock, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_file_is_refused_naming_the_first_and_free_once_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("one.db").display());
        let at: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let first = take(&db, at).unwrap().expect("a file database is locked");
        assert!(first.path.ends_with("one.db.serve.lock"));
        let refused = take(&db, at).unwrap_err().to_string();
        assert!(
            refused.contains("already served by hookwarden serve, pid"),
            "{refused}"
        );
        assert!(refused.contains("127.0.0.1:8080"), "{refused}");
        assert!(refused.contains("PostgreSQL"), "{refused}");
        drop(first);
        assert!(take(&db, at).unwrap().is_some(), "free again");
        // Another file, PostgreSQL and memory take no lock of this one.
        let other = format!("sqlite://{}", dir.path().join("two.db").display());
        assert!(take(&other, at).unwrap().is_some());
        assert!(take("postgres://u@localhost/db", at).unwrap().is_none());
        assert!(take("sqlite::memory:", at).unwrap().is_none());
    }
}
