//! Multi-row statements on SQLite: a batch of rows is written with `VALUES (...), (...), ...`
//! and one bound parameter per value. SQLite reads bound values directly, where a JSON batch
//! parameter is parsed and then searched once per field (several times the cost per row). A
//! batch goes out in whole chunks of `MAX_ROWS` and one tail padded to a power of two, so a
//! handful of statement texts cover every batch size and each stays prepared in the
//! connection's statement cache. (PostgreSQL binds each column as one array instead: see
//! `deliveries::rows`.)

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

/// Rows per statement at most: 128 rows of 13 values stay far below SQLite's limit on bound
/// parameters (32,766).
pub(crate) const MAX_ROWS: usize = 128;

/// How a batch of `n` rows goes out: `full` statements of `MAX_ROWS` rows (each its own call),
/// then the `tail`, which is written by a statement of `padded(tail.len())` rows whose unused
/// rows are NULL and skipped: the tails of several tables then fit in one multi-statement text
/// (`sqlx` runs it in one call into SQLite's thread, where each separate statement is a thread
/// hand-off), and a handful of texts (powers of two) cover every size.
pub(crate) struct Plan {
    pub full: Vec<Range<usize>>,
    pub tail: Range<usize>,
}

pub(crate) fn plan(n: usize) -> Plan {
    let whole = n / MAX_ROWS * MAX_ROWS;
    Plan {
        full: (0..whole)
            .step_by(MAX_ROWS)
            .map(|s| s..s + MAX_ROWS)
            .collect(),
        tail: whole..n,
    }
}

/// Rows of the statement that writes a tail of `n` rows (0 for none).
pub(crate) fn padded(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.next_power_of_two().min(MAX_ROWS)
    }
}

/// `(?, ?, ...), (...)` for `rows` rows of `columns` values. Anonymous `?`, bound in the order
/// they appear: SQLite finds the name of a numbered parameter by walking the list of all of
/// them, so binding n `$i` costs n² steps (at a thousand parameters, more than the statement).
pub(crate) fn values(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// The statement for `rows` rows, built once per (name, rows) and kept for the process's life
/// (a few dozen short strings in all).
pub(crate) fn statement(
    name: &'static str,
    rows: usize,
    build: impl FnOnce(usize) -> String,
) -> &'static str {
    type Key = (&'static str, usize);
    static CACHE: OnceLock<Mutex<HashMap<Key, &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (name, rows);
    if let Some(sql) = cache.lock().expect("statement cache lock").get(&key) {
        return sql;
    }
    let sql: &'static str = Box::leak(build(rows).into_boxed_str());
    cache
        .lock()
        .expect("statement cache lock")
        .entry(key)
        .or_insert(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_whole_chunks_and_one_padded_tail() {
        for n in [0, 1, 3, 127, 128, 129, 1000, 4096] {
            let p = plan(n);
            assert!(p.full.iter().all(|r| r.len() == MAX_ROWS));
            assert!(p.full.windows(2).all(|w| w[0].end == w[1].start));
            assert_eq!(p.full.len() * MAX_ROWS + p.tail.len(), n);
            assert_eq!(p.tail.end, n);
            assert!(padded(p.tail.len()) >= p.tail.len() && padded(p.tail.len()) <= MAX_ROWS);
        }
        assert_eq!(padded(45), 64);
        assert_eq!(padded(0), 0);
    }

    #[test]
    fn values_are_anonymous_placeholders_row_by_row() {
        assert_eq!(values(2, 1), "(?), (?)");
        assert_eq!(values(1, 3), "(?, ?, ?)");
    }
}
