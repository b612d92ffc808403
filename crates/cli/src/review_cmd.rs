//! `hookwarden review`: the governance review of the account's connectors on a running server
//! (`GET /api/review`): one line per check, exit 1 when any check fails.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use crate::client::{print_json, Api, ServerArgs};
use crate::table;

#[derive(Args)]
pub struct ReviewArgs {
    /// Also run each connector's live test (a token grant and a test event at its url) as the
    /// check `probe`. Needs an admin key.
    #[arg(long)]
    probe: bool,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Print the review; `Ok(false)` when a check failed (the caller exits 1).
pub async fn run(args: ReviewArgs) -> anyhow::Result<bool> {
    let path = if args.probe {
        "/api/review?probe=true"
    } else {
        "/api/review"
    };
    let review = Api::new(&args.server).call(Method::GET, path).await?;
    let ok = review["ok"] == true;
    if args.json {
        print_json(&review);
        return Ok(ok);
    }
    let mut rows = table::new(&["connector", "check", "level", "detail", "fix"]);
    let (mut warnings, mut failures) = (0, 0);
    for (connector, check) in checks(&review) {
        let level = check["level"].as_str().unwrap_or("?");
        match level {
            "warn" => warnings += 1,
            "fail" => failures += 1,
            _ => {}
        }
        rows.add_row(vec![
            connector.to_owned(),
            check["name"].as_str().unwrap_or("?").to_owned(),
            level.to_uppercase(),
            check["detail"].as_str().unwrap_or("").to_owned(),
            check["fix"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    table::print(&rows, "no connectors to review");
    let connectors = review["connectors"].as_array().map_or(0, Vec::len);
    println!(
        "{connectors} connector(s): {failures} failing check(s), {warnings} warning(s){}",
        if ok { "" } else { " — fix the FAIL lines" }
    );
    Ok(ok)
}

/// Every check of the review with its connector's name, in the server's order.
pub fn checks(review: &Value) -> impl Iterator<Item = (&str, &Value)> {
    review["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            let name = c["name"].as_str().unwrap_or("?");
            c["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |check| (name, check))
        })
}
