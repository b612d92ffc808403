//! Secrets out of what is kept. Every copy of a known secret in a text — as it is, URL-encoded
//! (percent-encoding in either hex case, or a form's `+` for a space) and JSON-escaped — becomes
//! `[redacted]`; a text cut to a size is redacted first and then loses a tail that begins a
//! secret, so a token straddling the cut leaves no prefix behind.

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shorter values would redact ordinary words; real secrets are far longer.
pub const MIN_SECRET_LEN: usize = 6;

/// The shortest beginning of a secret, at the end of a cut text, that is taken for one.
const MIN_PARTIAL_LEN: usize = 4;

/// The forms `secret` can take in a body: itself, URL-encoded and JSON-escaped. Empty for a
/// value shorter than `MIN_SECRET_LEN`.
pub fn copies(secret: &str) -> Vec<String> {
    if secret.len() < MIN_SECRET_LEN {
        return Vec::new();
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json[1..json.len() - 1].to_owned();
    let mut out = vec![
        secret.to_owned(),
        percent_encoded(secret, b"0123456789ABCDEF", false),
        percent_encoded(secret, b"0123456789abcdef", false),
        percent_encoded(secret, b"0123456789ABCDEF", true),
        json.replace('/', "\\/"),
        json,
    ];
    out.sort_by_key(|c| std::cmp::Reverse(c.len()));
    out.dedup();
    out
}

fn percent_encoded(s: &str, hex: &[u8; 16], form: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else if form && b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(hex[usize::from(b >> 4)] as char);
            out.push(hex[usize::from(b & 0xf)] as char);
        }
    }
    out
}

/// The known secrets of one text, each in every form it may take, longest first (so a secret
/// that contains another is replaced whole).
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    copies: Vec<String>,
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, secret: &str) {
        for copy in copies(secret) {
            if !self.copies.contains(&copy) {
                self.copies.push(copy);
            }
        }
        self.copies.sort_by_key(|c| std::cmp::Reverse(c.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }

    /// `text` with every copy of every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for c in &self.copies {
            if out.contains(c.as_str()) {
                out = out.replace(c.as_str(), REDACTED);
            }
        }
        out
    }

    /// `text` redacted, then cut at a character boundary to at most `max` bytes; when it was
    /// cut, a tail that is the beginning of a secret goes too (replaced by `[redacted]`).
    pub fn redact_and_cut(&self, text: &str, max: usize) -> String {
        let redacted = self.redact(text);
        if redacted.len() <= max {
            return redacted;
        }
        let mut out = cut(&redacted, max).to_owned();
        let partial = self
            .copies
            .iter()
            .filter_map(|c| longest_tail_prefix(&out, c))
            .max();
        if let Some(len) = partial {
            out.truncate(out.len() - len);
            let room = max.saturating_sub(REDACTED.len());
            if out.len() > room {
                out = cut(&out, room).to_owned();
            }
            out.push_str(REDACTED);
        }
        out
    }
}

/// At most `max` bytes of `s`, ending at a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The length of the longest proper beginning of `secret` (at least `MIN_PARTIAL_LEN`) that
/// `text` ends with.
fn longest_tail_prefix(text: &str, secret: &str) -> Option<usize> {
    let longest = secret.len().saturating_sub(1).min(text.len());
    (MIN_PARTIAL_LEN..=longest)
        .rev()
        .find(|&n| secret.is_char_boundary(n) && text.ends_with(&secret[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00Dxx0000001gEP!AQ4AQFx/z+eK1 s=";

    fn secrets() -> Secrets {
        let mut s = Secrets::new();
        s.add(TOKEN);
        s
    }

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        let s = secrets();
        for body in [
            format!("echo: {TOKEN}"),
            "token=00Dxx0000001gEP%21AQ4AQFx%2Fz%2BeK1%20s%3D".to_owned(),
            "token=00Dxx0000001gEP%21AQ4AQFx%2fz%2beK1%20s%3d".to_owned(),
            "token=00Dxx0000001gEP%21AQ4AQFx%2Fz%2BeK1+s%3D".to_owned(),
            format!("{{\"auth\":{}}}", serde_json::to_string(TOKEN).unwrap()),
            r#"{"auth":"00Dxx0000001gEP!AQ4AQFx\/z+eK1 s="}"#.to_owned(),
        ] {
            let out = s.redact(&body);
            assert!(out.contains(REDACTED), "{body} -> {out}");
            assert!(!out.contains("AQ4AQFx"), "{body} -> {out}");
        }
        assert_eq!(s.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_secret_straddling_the_cut_leaves_no_prefix() {
        let s = secrets();
        for pad in 0..TOKEN.len() + 4 {
            let body = format!("{}{TOKEN} and more text after it", "x".repeat(1000 + pad));
            let out = s.redact_and_cut(&body, 1024);
            assert!(out.len() <= 1024, "{}", out.len());
            assert!(!out.contains("00Dxx0000"), "pad {pad}: ...{}", &out[990..]);
        }
        // A text that merely ends like a word of the secret is not touched when it was not cut.
        assert_eq!(s.redact_and_cut("ends with 00Dx", 1024), "ends with 00Dx");
    }

    #[test]
    fn cuts_at_a_character_boundary() {
        let s = Secrets::new();
        let out = s.redact_and_cut(&"é".repeat(2000), 1023);
        assert!(out.len() <= 1023 && out.chars().all(|c| c == 'é'));
    }

    #[test]
    fn short_values_are_not_secrets() {
        assert!(copies("abc").is_empty());
        let mut s = Secrets::new();
        s.add("abc");
        assert!(s.is_empty());
    }
}
