//! The connector registration API over HTTP, on SQLite and (when configured) PostgreSQL.
//!
//! One test binary in three modules: a connector's lifecycle, the input the API refuses or
//! tolerates, and access (API keys, accounts kept apart, what answers without a key).

// The server harness shared with tokens_api, one directory up.
#[path = "../common/mod.rs"]
mod common;

mod access;
mod bad_input;
mod lifecycle;
