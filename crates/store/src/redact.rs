//! A database URL may carry a password (`postgres://user:secret@host/db`, or `?password=`):
//! every error and log line that shows the URL shows it through `redact_url`, and a driver's
//! message that might echo it goes through `redact_in`.

const MASK: &str = "***";

/// The URL with its password, if any, replaced by `***`: `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    for secret in passwords(url) {
        out = replace_password(&out, &secret);
    }
    out
}

/// `text` (e.g. a driver's error about `url`) with every password of `url` replaced by `***`,
/// as written and as percent-decoded.
pub fn redact_in(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    for secret in passwords(url) {
        for form in [secret.clone(), percent_decode(&secret)] {
            if !form.is_empty() {
                out = out.replace(&form, MASK);
            }
        }
    }
    out
}

/// The passwords in `url` as written: the userinfo's and `password=` query values.
fn passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            if let Some((_, password)) = authority[..at].split_once(':') {
                if !password.is_empty() {
                    found.push(password.to_owned());
                }
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&') {
            if let Some((name, value)) = pair.split_once('=') {
                if name.eq_ignore_ascii_case("password") && !value.is_empty() {
                    found.push(value.to_owned());
                }
            }
        }
    }
    found
}

/// Replace `password` where the URL holds it (after `user:` before `@`, or after `password=`),
/// never elsewhere (the host might contain the same letters).
fn replace_password(url: &str, password: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let start = scheme_end + 3;
        let rest = &out[start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                if &rest[colon + 1..at] == password {
                    out.replace_range(start + colon + 1..start + at, MASK);
                }
            }
        }
    }
    let pattern = format!("password={password}");
    let lower = out.to_ascii_lowercase();
    if let Some(pos) = lower.find(&pattern.to_ascii_lowercase()) {
        let value_start = pos + "password=".len();
        out.replace_range(value_start..value_start + password.len(), MASK);
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_url_is_masked_and_nothing_else() {
        assert_eq!(
            redact_url("postgres://user:secret@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(
            redact_url("postgresql://u:p%40ss@db.internal:5432/hw?sslmode=require"),
            "postgresql://u:***@db.internal:5432/hw?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u@host/db?password=hunter2&sslmode=disable"),
            "postgres://u@host/db?password=***&sslmode=disable"
        );
        for plain in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://host/db",
            "sqlite://hookwarden.db",
            "sqlite:///var/lib/hw/db.sqlite?mode=rwc",
            "not a url",
            "",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
        // A password that holds an @ (not percent-encoded) is still masked whole.
        assert_eq!(
            redact_url("postgres://u:se@cret@host/db"),
            "postgres://u:***@host/db"
        );
        // The user's name is not a secret, and an empty password is nothing to hide.
        assert_eq!(redact_url("postgres://u:@host/db"), "postgres://u:@host/db");
    }

    #[test]
    fn a_message_that_echoes_the_password_loses_it() {
        let url = "postgres://app:p%40ss@db.internal/hw";
        let message = format!("error connecting to {url}: password p@ss rejected, p%40ss");
        let redacted = redact_in(&message, url);
        assert!(
            !redacted.contains("p@ss") && !redacted.contains("p%40ss"),
            "{redacted}"
        );
        assert!(
            redacted.contains("postgres://app:***@db.internal/hw"),
            "{redacted}"
        );
        assert_eq!(
            redact_in("no secret here", "sqlite://x.db"),
            "no secret here"
        );
    }
}
