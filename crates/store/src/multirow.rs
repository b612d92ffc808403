//! Multi-row statements: a batch of rows is written with `VALUES (...), (...), ...` and one bound
//! parameter per value. SQLite reads bound values directly, where a JSON batch parameter is
//! parsed and then searched once per field (several times the cost per row). A batch goes out
//! in chunks whose sizes are powers of two up to `MAX_ROWS`, so a handful of statement texts
//! cover every batch size and each stays prepared in the connection's statement cache.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

/// Rows per statement at most: 128 rows of 13 values stay far below both databases' limits on
/// bound parameters (SQLite 32,766, PostgreSQL 65,535).
pub(crate) const MAX_ROWS: usize = 128;

/// `0..n` as chunks of `MAX_ROWS`, then of the powers of two that make up the rest.
pub(crate) fn chunks(n: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let left = n - start;
        let size = if left >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        out.push(start..start + size);
        start += size;
    }
    out
}

/// How a batch of `n` rows goes out: `full` statements (each its own call), then the `tail`.
/// PostgreSQL: every chunk is in `full` (`chunks`), the tail is empty. SQLite: chunks of
/// `MAX_ROWS` in `full`, and the rest as the tail, which is written by a statement of
/// `padded(tail.len())` rows whose unused rows are NULL and skipped: the tails of several
/// tables then fit in one multi-statement text (`sqlx` runs it in one call into SQLite's
/// thread, where each separate statement is a thread hand-off), and a handful of texts
/// (powers of two) cover every size.
pub(crate) struct Plan {
    pub full: Vec<Range<usize>>,
    pub tail: Range<usize>,
}

pub(crate) fn plan(dialect: Dialect, n: usize) -> Plan {
    match dialect {
        Dialect::Postgres => Plan {
            full: chunks(n),
            tail: n..n,
        },
        Dialect::Sqlite => {
            let whole = n / MAX_ROWS * MAX_ROWS;
            Plan {
                full: (0..whole)
                    .step_by(MAX_ROWS)
                    .map(|s| s..s + MAX_ROWS)
                    .collect(),
                tail: whole..n,
            }
        }
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

/// How placeholders are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    /// Anonymous `?`, bound in the order they appear. (SQLite finds the name of a numbered
    /// parameter by walking the list of all of them, so binding n `$i` costs n² steps: at a
    /// thousand parameters, more than the statement itself.)
    Sqlite,
    /// `$n`.
    Postgres,
}

/// `($f, $f+1, ...), (...)` for `rows` rows of `types.len()` values, numbered from `first`
/// (PostgreSQL; SQLite's are anonymous and take the values in order).
/// With `cast`, each placeholder is `CAST($n AS type)`: PostgreSQL cannot infer the types of
/// parameters in a VALUES list that is not the body of an INSERT.
pub(crate) fn values(
    dialect: Dialect,
    rows: usize,
    types: &[&str],
    first: usize,
    cast: bool,
) -> String {
    let mut out = String::with_capacity(rows * types.len() * 8);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for (c, ty) in types.iter().enumerate() {
            if c > 0 {
                out.push_str(", ");
            }
            let placeholder = match dialect {
                Dialect::Sqlite => "?".to_owned(),
                Dialect::Postgres => format!("${n}"),
            };
            if cast {
                out.push_str(&format!("CAST({placeholder} AS {ty})"));
            } else {
                out.push_str(&placeholder);
            }
            n += 1;
        }
        out.push(')');
    }
    out
}

/// The statement for `rows` rows, built once per (name, rows) and kept for the process's life
/// (a few dozen short strings in all).
pub(crate) fn statement(
    dialect: Dialect,
    name: &'static str,
    rows: usize,
    build: impl FnOnce(Dialect, usize) -> String,
) -> &'static str {
    type Key = (Dialect, &'static str, usize);
    static CACHE: OnceLock<Mutex<HashMap<Key, &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (dialect, name, rows);
    if let Some(sql) = cache.lock().expect("statement cache lock").get(&key) {
        return sql;
    }
    let sql: &'static str = Box::leak(build(dialect, rows).into_boxed_str());
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
    fn chunks_cover_every_row_once_in_few_sizes() {
        for n in [0, 1, 2, 3, 127, 128, 129, 1000, 4096] {
            let c = chunks(n);
            assert_eq!(c.iter().map(|r| r.len()).sum::<usize>(), n);
            assert!(c.windows(2).all(|w| w[0].end == w[1].start));
            assert!(c
                .iter()
                .all(|r| r.len().is_power_of_two() && r.len() <= MAX_ROWS));
        }
        let sizes: Vec<usize> = chunks(1000).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, [128, 128, 128, 128, 128, 128, 128, 64, 32, 8]);
    }

    #[test]
    fn sqlite_plans_whole_chunks_and_one_padded_tail() {
        for n in [0, 1, 3, 127, 128, 129, 1000, 4096] {
            let p = plan(Dialect::Sqlite, n);
            assert!(p.full.iter().all(|r| r.len() == MAX_ROWS));
            assert_eq!(p.full.len() * MAX_ROWS + p.tail.len(), n);
            assert_eq!(p.tail.end, n);
            assert!(padded(p.tail.len()) >= p.tail.len() && padded(p.tail.len()) <= MAX_ROWS);
        }
        assert_eq!(padded(45), 64);
        assert_eq!(padded(0), 0);
        let pg = plan(Dialect::Postgres, 1000);
        assert_eq!(pg.full, chunks(1000));
        assert!(pg.tail.is_empty());
    }

    #[test]
    fn values_number_placeholders_row_by_row() {
        let pg = Dialect::Postgres;
        assert_eq!(
            values(pg, 2, &["BIGINT", "TEXT"], 3, false),
            "($3, $4), ($5, $6)"
        );
        assert_eq!(
            values(pg, 1, &["BIGINT", "TEXT"], 1, true),
            "(CAST($1 AS BIGINT), CAST($2 AS TEXT))"
        );
        assert_eq!(
            values(Dialect::Sqlite, 2, &["BIGINT"], 1, false),
            "(?), (?)"
        );
    }
}
