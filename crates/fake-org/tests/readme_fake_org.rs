//! The README's section "The fake org" is the code: its endpoints are `CONTROL_ROUTES` (which the
//! router serves, and nothing else under those paths), its knob tables name every field of
//! `FakeOrgConfig`, `Faults` and `ClientApp` with its default, and each recipe of "Rehearse a
//! diagnosis" is a patch `POST /_fake/config` takes, for a code of the table of diagnoses. A knob
//! added without its row, or a row left behind by a knob removed, fails here.

use std::collections::BTreeSet;
use std::fmt::Debug;

use hookwarden_fake_org::{ClientApp, FakeOrg, FakeOrgConfig, Faults, CONTROL_ROUTES};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const README: &str = include_str!("../../../README.md");
const SECTION: &str = "\n## The fake org\n";

const ENDPOINTS: &str = "| method | path | what it does |";
const KNOBS: &str = "| knob | type | default | what it does |";
const FAULTS: &str = "| fault | type | default | what it does |";
const CLIENT_APP: &str = "| client app | type | default | what it does |";
const REHEARSALS: &str = "| diagnosis | `/_fake/config` | then |";
/// The table of diagnoses, in the section "Troubleshooting".
const DIAGNOSES: &str = "| code | cause | fix |";

/// The README's section on the fake org, up to the next `## ` heading.
fn section() -> &'static str {
    let after = README
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("the README has no {SECTION:?} section"))
        .1;
    after.split("\n## ").next().unwrap_or(after)
}

/// The cells of each row of the table under `header` in `text` (header and separator left out).
fn table(text: &'static str, header: &str) -> Vec<Vec<&'static str>> {
    let after = text
        .split_once(&format!("\n{header}\n"))
        .unwrap_or_else(|| panic!("no table with the header {header:?}"))
        .1;
    let columns = header.matches('|').count() - 1;
    let rows: Vec<Vec<&str>> = after
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .trim_start_matches('|')
                .trim_end_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            assert_eq!(cells.len(), columns, "a row of {header:?}: {l}");
            cells
        })
        .collect();
    assert!(!rows.is_empty(), "the table {header:?} has no rows");
    rows
}

/// A cell's text inside its backticks, or `None` for a cell that is not one code span.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?
        .strip_suffix('`')
        .filter(|c| !c.contains('`'))
}

#[test]
fn the_endpoint_table_is_the_control_routes() {
    let found: Vec<(String, String, String)> = table(section(), ENDPOINTS)
        .iter()
        .map(|r| {
            let path = code(r[1]).unwrap_or_else(|| panic!("a path in backticks: {}", r[1]));
            (r[0].to_owned(), path.to_owned(), r[2].to_owned())
        })
        .collect();
    let expected: Vec<(String, String, String)> = CONTROL_ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned(), r.does.to_owned()))
        .collect();
    let rows: Vec<String> = expected
        .iter()
        .map(|(m, p, d)| format!("| {m} | `{p}` | {d} |"))
        .collect();
    assert_eq!(
        found,
        expected,
        "the README's control endpoints differ from CONTROL_ROUTES; the table should read:\n\
         {ENDPOINTS}\n| --- | --- | --- |\n{}",
        rows.join("\n")
    );
}

#[tokio::test]
async fn the_org_serves_each_control_route_and_no_other_method_at_its_path() {
    let org = FakeOrg::builder().start().await.unwrap();
    let http = reqwest::Client::new();
    for route in CONTROL_ROUTES {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let listed = CONTROL_ROUTES
                .iter()
                .any(|r| r.path == route.path && r.method == method);
            let answer = http
                .request(
                    method.parse().unwrap(),
                    format!("{}{}", org.base_url(), route.path),
                )
                .header("content-type", "application/json")
                .body(if method == "POST" { "{}" } else { "" })
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            if listed {
                assert!(
                    ![404, 405].contains(&status),
                    "{method} {} is listed but answers {status}",
                    route.path
                );
            } else {
                assert_eq!(status, 405, "{method} {} is not listed", route.path);
            }
        }
    }
    org.shutdown().await;
}

/// Every field of `default` has one row under `header`, and no row names another; each row's
/// default, put in place of the code's, changes nothing. A row without a default in backticks is
/// only allowed for a field documented field by field in a table of its own (an object).
fn check_fields<T>(header: &str, default: T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Value::Object(fields) = serde_json::to_value(&default).unwrap() else {
        panic!("{header:?}: the type serialises as an object");
    };
    let rows = table(section(), header);
    let names: Vec<&str> = rows
        .iter()
        .map(|r| code(r[0]).unwrap_or_else(|| panic!("a field name in backticks: {}", r[0])))
        .collect();
    let documented: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        documented.len(),
        names.len(),
        "{header:?} names a field twice"
    );
    let real: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
    let missing: Vec<&&str> = real.difference(&documented).collect();
    let unknown: Vec<&&str> = documented.difference(&real).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "the README's table {header:?} differs from the code: fields without a row {missing:?}, \
         rows that are no field {unknown:?}"
    );
    for (name, row) in names.iter().zip(&rows) {
        let Some(said) = code(row[2]) else {
            assert!(
                fields[*name].is_object(),
                "{name}: the default column says {:?}; give the default in backticks as JSON \
                 (the code's: {})",
                row[2],
                fields[*name]
            );
            continue;
        };
        let said: Value = serde_json::from_str(said)
            .unwrap_or_else(|e| panic!("{name}: the default {said} is not JSON: {e}"));
        let mut doc = fields.clone();
        doc.insert((*name).to_owned(), said.clone());
        let with_said: Result<T, _> = serde_json::from_value(Value::Object(doc));
        assert!(
            with_said.as_ref().is_ok_and(|v| *v == default),
            "{name}: the README's default {said} is not the code's {}",
            fields[*name]
        );
    }
}

#[test]
fn the_knob_tables_name_every_field_with_its_default() {
    check_fields(KNOBS, FakeOrgConfig::default());
    check_fields(FAULTS, Faults::default());
    check_fields(CLIENT_APP, ClientApp::default());
}

#[test]
fn each_rehearsal_is_a_patch_the_org_takes_for_a_diagnosis_of_the_table() {
    let codes: BTreeSet<&str> = table(README, DIAGNOSES)
        .iter()
        .filter_map(|r| code(r[0]))
        .collect();
    let base = FakeOrgConfig::default();
    let mut seen = BTreeSet::new();
    let mut patches = 0;
    for row in table(section(), REHEARSALS) {
        let name = code(row[0]).unwrap_or_else(|| panic!("a code in backticks: {}", row[0]));
        assert!(
            codes.contains(name),
            "{name} is not in the table of diagnoses"
        );
        assert!(seen.insert(name), "{name} is rehearsed twice");
        if row[1] == "—" {
            continue;
        }
        for patch in row[1].split(" or ") {
            let patch = code(patch).unwrap_or_else(|| panic!("{name}: a patch in backticks"));
            let patch: Value = serde_json::from_str(patch)
                .unwrap_or_else(|e| panic!("{name}: {patch} is not JSON: {e}"));
            let patched = base
                .patched(patch.clone())
                .unwrap_or_else(|e| panic!("{name}: /_fake/config refuses {patch}: {e}"));
            assert_ne!(patched, base, "{name}: {patch} changes nothing");
            patches += 1;
        }
    }
    assert!(patches > 0, "no rehearsal names a knob");
}
