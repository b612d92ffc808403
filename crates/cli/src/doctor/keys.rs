//! The doctor's master key checks: where the sealed values stand against the key ring, and the
//! key file's permissions.

use std::path::Path;

use hookwarden_store::Store;

use super::{Level, Report};

/// Whether every sealed value is under the ring's first key, as `master-key rotate` leaves them.
pub(super) async fn check_key_ring(report: &mut Report, store: &Store) {
    let census = match store.reseal_secrets(true).await {
        Ok(census) => census,
        Err(e) => {
            report.say(
                Level::Fail,
                "key ring",
                &format!("reading the sealed values failed: {e}"),
                Some("check the database (see the database check above)"),
            );
            return;
        }
    };
    let first = census.key_ids.first().cloned().unwrap_or_default();
    let under_first: u64 = census.tables.iter().map(|t| t.already_first).sum();
    let others = census.resealed();
    if !census.unopenable.is_empty() {
        let listed: Vec<String> = census
            .unopenable
            .iter()
            .map(|u| {
                format!(
                    "{}.{} of {} (key id {})",
                    u.table, u.column, u.row, u.key_id
                )
            })
            .collect();
        report.say(
            Level::Fail,
            "key ring",
            &format!(
                "{} sealed value(s) open with no configured key (ids {}): {}",
                listed.len(),
                census.key_ids.join(", "),
                listed.join(", ")
            ),
            Some("add the key they name to HOOKWARDEN_MASTER_KEYS, after the first"),
        );
    }
    if others > 0 {
        let per_table: Vec<String> = census
            .tables
            .iter()
            .filter(|t| t.resealed > 0)
            .map(|t| format!("{} in {}", t.resealed, t.table))
            .collect();
        report.say(
            Level::Warn,
            "key ring",
            &format!(
                "{others} sealed value(s) are under a key other than the first ({first}), or from before key ids: {}; {under_first} under the first",
                per_table.join(", ")
            ),
            Some("run `hookwarden master-key rotate` with the same ring; then the other keys can be dropped"),
        );
    } else if census.unopenable.is_empty() {
        report.say(
            Level::Ok,
            "key ring",
            &format!(
                "all {under_first} sealed value(s) are under the first master key ({first}); ring: {}",
                census.key_ids.join(", ")
            ),
            None,
        );
    }
}

/// Whether the key file is the owner's alone (what `serve` requires).
pub(super) fn key_file_permissions(report: &mut Report, key_file: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(key_file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                report.say(
                    Level::Fail,
                    "master key",
                    &format!(
                        "{} may be read or written by group or others (mode {mode:03o}): serve refuses it",
                        key_file.display()
                    ),
                    Some(&format!("chmod 600 {}", key_file.display())),
                );
                return false;
            }
        }
    }
    report.say(
        Level::Ok,
        "master key",
        &format!("{} (mode 600)", key_file.display()),
        None,
    );
    true
}
