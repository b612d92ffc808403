//! The CLI's tables: a header row, then one row per record in aligned columns, no borders (so
//! `grep` and `awk` still read them line by line), and a sentence instead of an empty table.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};

/// A table with these column titles.
pub fn new(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        // Never wrapped to a terminal's width: a row stays one line.
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    // Rows start at the margin, and two blanks part the columns.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// The table, or `empty` (e.g. "no deliveries") when it has no rows.
pub fn print(table: &Table, empty: &str) {
    if table.row_count() == 0 {
        println!("{empty}");
    } else {
        // comfy-table pads the last column too: trailing blanks only get in the way.
        for line in table.to_string().lines() {
            println!("{}", line.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_then_one_aligned_line_per_row() {
        let mut t = new(&["id", "status"]);
        t.add_row(vec!["dlv_1", "delivered"]);
        t.add_row(vec!["dlv_22", "failed"]);
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("ID") && lines[0].contains("STATUS"),
            "{text}"
        );
        // Columns line up: each status starts where the header's does.
        let col = lines[0].find("STATUS").unwrap();
        assert_eq!(lines[1].find("delivered"), Some(col), "{text}");
        assert_eq!(lines[2].find("failed"), Some(col), "{text}");
        assert!(lines[1].starts_with("dlv_1 "), "no margin: {text}");
    }
}
