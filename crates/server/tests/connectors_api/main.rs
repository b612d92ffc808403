//! The connector registration API over HTTP, on SQLite and (when configured) PostgreSQL.
//!
//! One test binary in four modules: a connector's lifecycle, the input the API refuses or
//! tolerates, access (API keys, accounts kept apart, what answers without a key), and what each
//! scope of a key may do.

// The server harness shared with tokens_api, one directory up.
#[path = "../common/mod.rs"]
mod common;

mod access;
mod bad_input;
mod lifecycle;
mod scopes;
