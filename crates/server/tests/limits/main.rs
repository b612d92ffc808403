//! The API's limits and the operator's `/metrics`, over HTTP on SQLite and (when configured)
//! PostgreSQL.
//!
//! One test binary in modules: who may read `/metrics` and what it shows of deleted
//! connectors; the per-key rate limit and the per-address limit on failed authentications;
//! the per-account caps; the request timeout and the concurrency limit.

// The server harness shared with the other API tests, one directory up.
#[path = "../common/mod.rs"]
mod common;

mod caps;
mod metrics;
mod overload;
mod rate;
