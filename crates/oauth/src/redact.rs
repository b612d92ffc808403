//! Keep secrets out of history excerpts and messages: secret-named JSON fields are replaced,
//! then every known secret value is replaced wherever it still appears, in any form it takes
//! (HTML error pages, echoed request bodies, URL-encoded or JSON-escaped copies), then the text
//! is cut to 1 KiB (see `hookwarden_core::redact`).

use hookwarden_core::redact::Secrets;
use hookwarden_store::history::MAX_EXCERPT_BYTES;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub(crate) use hookwarden_core::redact::REDACTED;

/// JSON fields whose values are secrets in OAuth answers, hook answers and echoes.
const SECRET_FIELDS: [&str; 10] = [
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code",
    "code_verifier",
    "token",
    "password",
    "assertion",
    "signature",
];

#[derive(Default)]
pub(crate) struct Redactor {
    secrets: Secrets,
}

impl Redactor {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn add(&mut self, secret: Option<&SecretString>) {
        if let Some(s) = secret {
            self.add_str(s.expose_secret());
        }
    }

    pub(crate) fn add_str(&mut self, s: &str) {
        self.secrets.add(s);
    }

    /// Replace every known secret in free text.
    pub(crate) fn text(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    /// A response body as it may be kept: redacted and at most 1 KiB.
    pub(crate) fn excerpt(&self, body: &str) -> Option<String> {
        let body = body.trim();
        if body.is_empty() {
            return None;
        }
        let cleaned = match serde_json::from_str::<Value>(body) {
            Ok(mut v) => {
                redact_json(&mut v);
                v.to_string()
            }
            Err(_) => body.to_owned(),
        };
        Some(self.secrets.redact_and_cut(&cleaned, MAX_EXCERPT_BYTES))
    }
}

fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let secret = SECRET_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(k));
                if secret && !val.is_null() {
                    *val = Value::String(REDACTED.to_owned());
                } else {
                    redact_json(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_leave_no_trace() {
        let mut r = Redactor::new();
        r.add_str("5Aep861secretvalue");
        let json =
            r#"{"access_token":"00Dxx!AQabc","refresh_token":"5Aep861secretvalue","scope":"api"}"#;
        let out = r.excerpt(json).unwrap();
        assert!(!out.contains("00Dxx!AQabc") && !out.contains("5Aep861"));
        assert!(out.contains("\"scope\":\"api\""));
        let html = "<html>bad token 5Aep861secretvalue</html>";
        assert_eq!(
            r.excerpt(html).unwrap(),
            "<html>bad token [redacted]</html>"
        );
        assert!(r.excerpt(&"é".repeat(2000)).unwrap().len() <= MAX_EXCERPT_BYTES);
        // Echoed in a form body: URL-encoded.
        r.add_str("00Dxx!AQ/secret+value");
        let form = "grant_type=x&token=00Dxx%21AQ%2Fsecret%2Bvalue";
        assert_eq!(r.excerpt(form).unwrap(), "grant_type=x&token=[redacted]");
    }
}
