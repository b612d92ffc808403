//! `hookwarden master-key rotate`: re-seal every secret in the database under the first key of
//! the configured ring (`HOOKWARDEN_MASTER_KEYS`), beside running servers, after which the old
//! key can be dropped. An operator's command on the database; no server is asked.

use std::process::ExitCode;

use clap::Subcommand;
use hookwarden_store::ResealReport;

use crate::{open_existing_store, table, ConfigArgs};

#[derive(Subcommand)]
pub enum MasterKeyCommand {
    /// Re-seal every secret (connector keys, signing secrets, tokens, pending authorizations)
    /// under the first key of HOOKWARDEN_MASTER_KEYS, row by row, also while servers run (each
    /// holding every key of the ring). Prints per table how many values were re-sealed and how
    /// many were already under the first key; exits 1 if a value opens with no key of the ring.
    Rotate {
        /// Only count what would be re-sealed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub async fn run(command: MasterKeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        MasterKeyCommand::Rotate {
            dry_run,
            json,
            config,
        } => {
            let store = open_existing_store(&config).await?;
            let report = store.reseal_secrets(dry_run).await;
            store.close().await;
            let report = report?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_table(&report);
            }
            if report.unopenable.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "error: {} sealed value(s) open with no key of the ring ({}): add the key they name \
                     to HOOKWARDEN_MASTER_KEYS (after the first) and run this again; until then they \
                     cannot be used, and the old key must not be dropped",
                    report.unopenable.len(),
                    report.key_ids.join(", ")
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

fn print_table(report: &ResealReport) {
    let verb = if report.dry_run {
        "to re-seal"
    } else {
        "re-sealed"
    };
    let mut rows = table::new(&["table", verb, "already under first key", "unopenable"]);
    for t in &report.tables {
        rows.add_row(vec![
            t.table.to_owned(),
            t.resealed.to_string(),
            t.already_first.to_string(),
            t.unopenable.to_string(),
        ]);
    }
    table::print(&rows, "no sealed values");
    for u in &report.unopenable {
        println!(
            "unopenable: {}.{} of row {} (sealed with master key id {})",
            u.table, u.column, u.row, u.key_id
        );
    }
    let first = report.key_ids.first().map(String::as_str).unwrap_or("?");
    if report.dry_run {
        println!(
            "{} value(s) would be re-sealed under master key {first} (dry run: nothing changed)",
            report.resealed()
        );
    } else {
        println!(
            "{} value(s) re-sealed under master key {first}; ring: {}",
            report.resealed(),
            report.key_ids.join(", ")
        );
    }
}
