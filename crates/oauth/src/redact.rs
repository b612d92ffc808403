//! Keep secrets out of history excerpts and messages: secret-named JSON fields are replaced,
//! then every known secret value is replaced wherever it still appears (HTML error pages,
//! echoed request bodies, ...), then the text is cut to 1 KiB.

use hookwarden_store::history::{truncate, MAX_EXCERPT_BYTES};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub(crate) const REDACTED: &str = "[redacted]";

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

/// Shorter values would redact ordinary words; real secrets are far longer.
const MIN_SECRET_LEN: usize = 6;

#[derive(Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
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
        if s.len() >= MIN_SECRET_LEN && !self.secrets.iter().any(|x| x == s) {
            self.secrets.push(s.to_owned());
            // Longest first, so a secret that contains another is replaced whole.
            self.secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    /// Replace every known secret in free text.
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
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
        Some(truncate(&self.text(&cleaned), MAX_EXCERPT_BYTES))
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
    }
}
