//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, keyed by the base64-decoded part of the `whsec_` secret. While a
//! rotated-out secret is within its 24 h, a second signature follows, space-separated, so
//! receivers that still hold the old secret keep verifying.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use hookwarden_core::NotificationFormat;
use hookwarden_store::ConnectorRecord;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use secrecy::ExposeSecret;
use sha2::Sha256;

/// The signing keys of one connector, decoded once per batch rather than per attempt.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

fn key_bytes(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    // Secrets are generated as whsec_ + base64; anything else is used as raw bytes, as the
    // Standard Webhooks libraries do for secrets without the prefix.
    STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec())
}

impl Signer {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            keys: secrets.into_iter().map(key_bytes).collect(),
        }
    }

    /// The current secret, then the previous one while it still signs (the store drops it
    /// after its 24 h). A Slack notification endpoint signs nothing.
    pub fn for_connector(record: &ConnectorRecord) -> Self {
        if record.credentials.notification_format() == Some(NotificationFormat::Slack) {
            return Self::new([]);
        }
        let mut secrets = vec![record.signing_secret.expose_secret()];
        if let Some(previous) = &record.previous_signing_secret {
            secrets.push(previous.expose_secret());
        }
        Self::new(secrets)
    }

    /// The headers of a signed callback: `Authorization` (none for a notification endpoint),
    /// `Content-Type: application/json` and the Standard Webhooks trio (without a signature
    /// when there is no key: a Slack endpoint). One place, so the connector test's probe is
    /// signed exactly as deliveries are.
    pub fn headers(
        &self,
        authorization: Option<HeaderValue>,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(5);
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::from_str(id) {
            headers.insert("webhook-id", v);
        }
        headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
        if self.keys.is_empty() {
            return headers;
        }
        if let Ok(v) = HeaderValue::from_str(&self.sign(id, timestamp, body)) {
            headers.insert("webhook-signature", v);
        }
        headers
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut out = String::with_capacity(48 * self.keys.len());
        for key in &self.keys {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            out.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn matches_the_specifications_example() {
        let signer = Signer::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        assert_eq!(
            signer.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotated_out_secret_adds_a_second_signature() {
        let both = Signer::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAA"])
            .sign("m", 1, "{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }
}
