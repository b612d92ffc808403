//! The README's table of diagnoses is the catalog (`hookwarden_core::diagnosis::Code`): every
//! code, in the catalog's order, with its generic cause and fix word for word. A code added,
//! removed or reworded on one side only fails here, with the table as it should be.

use hookwarden_core::diagnosis::Code;

const README: &str = include_str!("../../../README.md");
/// The heading the table follows.
const HEADING: &str = "### Diagnoses";

/// The table's rows as the catalog makes them.
fn expected_rows() -> Vec<String> {
    Code::ALL
        .iter()
        .map(|c| format!("| `{}` | {} | {} |", c.as_str(), c.cause(), c.fix()))
        .collect()
}

/// The rows (header and separator left out) of the first table after `HEADING`.
fn readme_rows() -> Vec<&'static str> {
    let after = README
        .split_once(&format!("\n{HEADING}\n"))
        .unwrap_or_else(|| panic!("the README has no {HEADING:?} section"))
        .1;
    let table: Vec<&str> = after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(table.len() > 2, "no table under {HEADING:?}");
    assert_eq!(table[0], "| code | cause | fix |", "the table's header");
    table[2..].to_vec()
}

#[test]
fn the_readme_lists_every_diagnosis_of_the_catalog_as_it_is() {
    let expected = expected_rows();
    let found = readme_rows();
    let code_of = |row: &str| row.split('`').nth(1).unwrap_or("").to_owned();
    let missing: Vec<String> = expected
        .iter()
        .map(|r| code_of(r))
        .filter(|c| !found.iter().any(|r| code_of(r) == *c))
        .collect();
    let unknown: Vec<String> = found
        .iter()
        .map(|r| code_of(r))
        .filter(|c| Code::parse(c).is_none())
        .collect();
    let differ: Vec<String> = found
        .iter()
        .filter(|r| Code::parse(&code_of(r)).is_some() && !expected.contains(&r.to_string()))
        .map(|r| code_of(r))
        .collect();
    let table = expected.join("\n");
    assert!(
        missing.is_empty() && unknown.is_empty() && differ.is_empty(),
        "the README's diagnoses differ from the catalog: missing {missing:?}, not in the \
         catalog {unknown:?}, worded otherwise {differ:?}. The table should read:\n\
         | code | cause | fix |\n| --- | --- | --- |\n{table}"
    );
    assert_eq!(found, expected, "the rows are in the catalog's order");
}
