//! Small wire helpers: form/query parameters, client authentication, token minting, signatures.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Parameters of an OAuth request: the query string and the form body together, the body
/// winning, because some clients (seed `004`'s "URL Query String") send them in the URL.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn parse(query: Option<&str>, body: &[u8]) -> Self {
        let mut map = HashMap::new();
        if let Some(q) = query {
            decode_form_into(q, &mut map);
        }
        decode_form_into(&String::from_utf8_lossy(body), &mut map);
        Self(map)
    }

    /// An empty value counts as absent, as Salesforce treats `client_secret=`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn decode_form_into(s: &str, map: &mut HashMap<String, String>) {
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(percent_decode(k), percent_decode(v));
    }
}

/// `application/x-www-form-urlencoded` decoding; malformed escapes are kept literally.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encode for a query component (RFC 3986 unreserved characters pass through).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// HTTP Basic client credentials; RFC 6749 §2.3.1 form-encodes both parts before base64.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((percent_decode(id), percent_decode(secret)))
}

/// The token of `Authorization: Bearer ...`; Salesforce also takes the older `OAuth ...` scheme.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth") {
        Some(rest.trim()).filter(|t| !t.is_empty())
    } else {
        None
    }
}

pub(crate) fn random_alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Fresh random material for one grant, drawn before the state lock is taken.
pub(crate) struct Fresh {
    pub access: String,
    pub refresh: String,
}

impl Fresh {
    pub(crate) fn draw() -> Self {
        Self {
            access: random_alnum(94),
            refresh: random_alnum(80),
        }
    }
}

/// PKCE S256: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2).
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Any stable key works: clients may verify `signature` only against the consumer secret, and
/// none of ours do; what matters is its shape.
const SIGNATURE_KEY: &[u8] = b"hookwarden-fake-org-signature-key";

/// Salesforce's `signature`: base64 HMAC-SHA256 over `id` + `issued_at`.
pub(crate) fn token_signature(id: &str, issued_at: &str) -> String {
    let mut msg = Vec::with_capacity(id.len() + issued_at.len());
    msg.extend_from_slice(id.as_bytes());
    msg.extend_from_slice(issued_at.as_bytes());
    STANDARD.encode(hmac_sha256(SIGNATURE_KEY, &msg))
}

/// RFC 2104 over SHA-256; small enough that pulling in the `hmac` crate is not worth it.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn form_decoding_tolerates_garbage() {
        let p = Params::parse(Some("a=1&b=%ZZ&c=%4"), b"a=x+y%21&&=&d&e=%E2%9C%93%");
        assert_eq!(p.get("a"), Some("x y!"));
        assert_eq!(p.get("b"), Some("%ZZ"));
        assert_eq!(p.get("c"), Some("%4"));
        assert_eq!(p.get("d"), None);
        assert_eq!(p.get("e"), Some("\u{2713}%"));
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn encode_round_trips() {
        let s = "a b&c=d/é";
        assert_eq!(percent_decode(&percent_encode(s)), s);
    }
}
