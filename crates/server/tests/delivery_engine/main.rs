//! The delivery engine end to end over HTTP: ingest, routing, signatures, the outcome policy
//! with an injected clock, held deliveries, SSRF, rotation under load, fairness, and no token
//! for a url outside its org.

mod cluster_limits;
mod destination;
mod floor;
mod ingest;
mod load;
mod order;
mod outcomes;
mod support;
mod wakeups;

/// The usual destination's name (see `Harness::register_salesforce`).
const SF: &str = "salesforceOauth2";
