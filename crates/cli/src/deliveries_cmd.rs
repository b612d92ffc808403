//! `hookwarden events ...` and `hookwarden deliveries ...`: post events to a running server,
//! follow what became of them, and ask for one more attempt.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

// What one batch request may carry: the server's own limit.
use hookwarden_server::api::events::MAX_BATCH;

use crate::client::{diagnosis_of, print_json, segment, tell_diagnosis, Api, ServerArgs};
use crate::table;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Post one event given by flags, or every event of a JSON file; prints each event's id and
    /// the ids of the deliveries it was routed to.
    Send(SendArgs),
}

#[derive(Args)]
pub struct SendArgs {
    /// PACKAGE_COMPLETE, DOCUMENT_SIGNED, ... or a custom UPPER_SNAKE_CASE name.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    name: Option<String>,
    /// The package (transaction) the event is about.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    package_id: Option<String>,
    /// Where the event comes from; matched against each connector's `origins`. With --file, the
    /// origin of the file's events that name none.
    #[arg(long, default_value = "OSS")]
    origin: String,
    #[arg(long, conflicts_with = "file")]
    session_user: Option<String>,
    #[arg(long, conflicts_with = "file")]
    document_id: Option<String>,
    #[arg(long, conflicts_with = "file")]
    message: Option<String>,
    /// RFC 3339 [default: the time of ingest].
    #[arg(long, conflicts_with = "file")]
    created_date: Option<String>,
    /// A JSON file holding one event object, an array of them, or `{"events": [...]}`; `-` reads
    /// standard input. More than 1,000 events go as several batch requests of up to 1,000.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Makes a resent request safe: the same key and body get the same answer and no new
    /// deliveries. When a file is split into several batches, batch N uses `KEY-N`.
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// Deliveries, newest first: id, status, connector, event, package, attempts, last answer.
    List(ListArgs),
    /// One delivery with every attempt (JSON).
    #[command(alias = "get")]
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One more attempt now (also for a failed delivery, which goes back to pending).
    Retry {
        id: String,
        /// Send a delivered delivery again (the receiver gets it twice, same webhook-id).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Args)]
pub struct ListArgs {
    /// A connector's name; `@default` for the default callback.
    #[arg(long)]
    connector: Option<String>,
    /// pending, held, delivered or failed.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    package_id: Option<String>,
    /// Deliveries created at or after it: RFC 3339, a date (2026-12-06) or how long ago (1h, 2d).
    #[arg(long, value_parser = crate::time_arg::parse)]
    since: Option<String>,
    /// Deliveries created before it: RFC 3339, a date or how long ago.
    #[arg(long, value_parser = crate::time_arg::parse)]
    until: Option<String>,
    /// How many to show; with --all, the page size.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Follow the pages to the last one.
    #[arg(long)]
    all: bool,
    /// Print the server's JSON (one page per line with --all) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// The events of a file, as the API takes them: objects, checked to be objects here so a wrong
/// file is named before anything is sent.
/// The events of a file, each given `origin` when it names none, and each checked as the
/// server will check it, so that a bad one is named by its place in the file (counting from
/// 0) before anything is sent.
fn events_of(file: &PathBuf, origin: &str) -> anyhow::Result<Vec<Value>> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading events from standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let value: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not JSON: give one event object, an array of them, or {{\"events\": [...]}}",
            file.display()
        )
    })?;
    let events = match value {
        Value::Array(events) => events,
        Value::Object(mut object) if object.contains_key("events") => {
            match object.remove("events") {
                Some(Value::Array(events)) => events,
                _ => anyhow::bail!("{}: \"events\" must be an array", file.display()),
            }
        }
        event @ Value::Object(_) => vec![event],
        _ => anyhow::bail!(
            "{}: give one event object, an array of them, or {{\"events\": [...]}}",
            file.display()
        ),
    };
    anyhow::ensure!(!events.is_empty(), "{}: no events in it", file.display());
    if let Some(i) = events.iter().position(|e| !e.is_object()) {
        anyhow::bail!(
            "{}: event {i} is not a JSON object: {}",
            file.display(),
            events[i]
        );
    }
    let mut events = events;
    let now = chrono::Utc::now().timestamp_millis();
    for (i, event) in events.iter_mut().enumerate() {
        if event.get("origin").is_none() {
            event["origin"] = Value::String(origin.to_owned());
        }
        if let Err(e) = hookwarden_core::Event::from_json(event, now) {
            anyhow::bail!(
                "{}: event {i}: {e}\nfix: {}\nnothing was sent",
                file.display(),
                e.fix
            );
        }
    }
    Ok(events)
}

fn print_accepted(event: &Value) {
    let deliveries: Vec<&str> = event["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "{} {}",
        event["id"].as_str().unwrap_or(""),
        if deliveries.is_empty() {
            "(no destination takes it)".to_owned()
        } else {
            deliveries.join(" ")
        }
    );
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server);
    let Some(file) = &args.file else {
        let mut event = json!({
            "name": args.name,
            "packageId": args.package_id,
            "origin": args.origin,
        });
        for (field, value) in [
            ("sessionUser", args.session_user),
            ("documentId", args.document_id),
            ("message", args.message),
            ("createdDate", args.created_date),
        ] {
            if let Some(value) = value {
                event[field] = Value::String(value);
            }
        }
        let accepted = api
            .send(
                Method::POST,
                "/api/events",
                Some(&event),
                args.idempotency_key.as_deref(),
            )
            .await?;
        print_accepted(&accepted);
        return Ok(());
    };
    let events = events_of(file, &args.origin)?;
    let batches: Vec<&[Value]> = events.chunks(MAX_BATCH).collect();
    let several = batches.len() > 1;
    for (n, batch) in batches.into_iter().enumerate() {
        let key = args.idempotency_key.as_ref().map(|key| {
            if several {
                format!("{key}-{}", n + 1)
            } else {
                key.clone()
            }
        });
        let accepted = api
            .send(
                Method::POST,
                "/api/events/batch",
                Some(&json!({ "events": batch })),
                key.as_deref(),
            )
            .await
            .with_context(|| {
                format!(
                    "batch {} (events {} to {}); the batches before it were accepted",
                    n + 1,
                    n * MAX_BATCH,
                    n * MAX_BATCH + batch.len() - 1
                )
            })?;
        for event in accepted["events"].as_array().into_iter().flatten() {
            print_accepted(event);
        }
    }
    Ok(())
}

/// One delivery as a table row: id, status, connector, event, package, attempts, last answer.
fn add_row(rows: &mut comfy_table::Table, d: &Value) {
    let attempts = d["attempts"].as_array().map_or(&[][..], Vec::as_slice);
    let last = attempts.last().map(|a| {
        let answer = a["status_code"]
            .as_i64()
            .map(|s| s.to_string())
            .or_else(|| a["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        match diagnosis_of(a) {
            Some(shown) => format!("{answer} [{}]", shown.code),
            None => answer,
        }
    });
    let text = |field: &str| d[field].as_str().unwrap_or("").to_owned();
    rows.add_row(vec![
        text("id"),
        text("status"),
        text("connector"),
        text("event"),
        text("package_id"),
        attempts.len().to_string(),
        last.unwrap_or_default(),
    ]);
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server);
    let mut query = vec![format!("limit={}", args.limit)];
    for (name, value) in [
        ("connector", &args.connector),
        ("status", &args.status),
        ("package_id", &args.package_id),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", segment(value)));
        }
    }
    let mut cursor: Option<String> = None;
    // With --all, every page in one table.
    let mut rows = table::new(&[
        "id",
        "status",
        "connector",
        "event",
        "package",
        "attempts",
        "last answer",
    ]);
    loop {
        let mut path = format!("/api/deliveries?{}", query.join("&"));
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", segment(cursor)));
        }
        let page = api.call(Method::GET, &path).await?;
        if args.json {
            println!("{page}");
        } else {
            for d in page["deliveries"].as_array().into_iter().flatten() {
                add_row(&mut rows, d);
            }
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if !args.all || cursor.is_none() {
            if !args.json {
                table::print(&rows, "no deliveries");
            }
            return Ok(());
        }
    }
}

pub async fn run_events(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Send(args) => send(args).await,
    }
}

pub async fn run_deliveries(command: DeliveriesCommand) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::List(args) => list(args).await,
        DeliveriesCommand::Show { id, server } => {
            let d = Api::new(&server)
                .call(Method::GET, &format!("/api/deliveries/{}", segment(&id)))
                .await?;
            print_json(&d);
            let attempts = d["attempts"].as_array().map_or(&[][..], Vec::as_slice);
            for (i, attempt) in attempts.iter().enumerate() {
                if let Some(shown) = diagnosis_of(attempt) {
                    tell_diagnosis(&format!("attempt {}", i + 1), &shown);
                }
            }
            Ok(())
        }
        DeliveriesCommand::Retry { id, force, server } => {
            let body = force.then(|| json!({ "force": true }));
            let d = Api::new(&server)
                .send(
                    Method::POST,
                    &format!("/api/deliveries/{}/retry", segment(&id)),
                    body.as_ref(),
                    None,
                )
                .await?;
            println!(
                "{} is {}; next attempt {}",
                id,
                d["status"].as_str().unwrap_or(""),
                d["next_attempt_at"].as_str().unwrap_or("now")
            );
            Ok(())
        }
    }
}
