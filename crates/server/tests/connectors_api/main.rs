//! The connector registration API over HTTP, on SQLite and (when configured) PostgreSQL.
//!
//! One test binary in four modules: a connector's lifecycle, the input the API refuses or
//! tolerates, access (API keys, accounts kept apart, what answers without a key), what each
//! scope of a key may do, and where a destination may point and move (a credential stays with
//! its destination).

// The server harness shared with tokens_api, one directory up.
#[path = "../common/mod.rs"]
mod common;

mod access;
mod bad_input;
mod destination;
mod lifecycle;
mod scopes;
