//! The connector key as a user meets it: what is refused (with which code), what is accepted
//! (with which warnings), what is shown (masked) and what is stored.
//!
//! One test binary in four modules: refused keys, accepted keys and their warnings, the masked
//! and stored forms, and the endpoints a key leads to.

mod accepted;
mod endpoints;
mod masked_and_stored;
mod refused;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hookwarden_core::key::encode;
use serde_json::{json, Value};

const SECRET: &str = "Sup3rS3cretClientValue9876";
const REFRESH: &str = "5Aep861vxxxQ63xq70o9usDzRefreshToken4321";

fn b64(json: &Value) -> String {
    encode(json)
}

fn b64_text(text: &str) -> String {
    STANDARD.encode(text)
}

fn sf_key() -> Value {
    json!({"host": "acme.my.salesforce.com", "client_id": "3MVG9dZJoxxxRyqipjGciXo561Fg", "refresh_token": REFRESH})
}
