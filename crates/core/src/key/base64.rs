//! Base64 as people actually produce it: line breaks, blanks, the URL-safe alphabet and missing
//! padding are repaired with a warning; anything else is refused with the likely cause.

use base64::Engine;

use super::{KeyError, KeyRepairs, MAX_KEY_LEN};

const LINE_BREAK_WARNING: &str = "the key contains line breaks (base64 without -w 0); they were removed — encode with `base64 -w 0` or `hookwarden key encode`";

/// Base64 as people actually produce it: wrapped at 76 columns, URL-safe, unpadded. What was
/// repaired is returned, and said in `warnings`.
pub(super) fn decode_base64(
    raw: &str,
    warnings: &mut Vec<String>,
) -> Result<(Vec<u8>, KeyRepairs), KeyError> {
    if raw.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLarge {
            len: raw.len(),
            max: MAX_KEY_LEN,
        });
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(KeyError::Empty);
    }
    if trimmed.starts_with('{') {
        return Err(KeyError::NotBase64 {
            reason: "it is JSON text; the key is the base64 encoding of that JSON".to_owned(),
        });
    }

    let mut clean = String::with_capacity(trimmed.len());
    let (mut line_breaks, mut blanks, mut url_safe) = (false, false, false);
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' | '=' => clean.push(c),
            '-' => {
                url_safe = true;
                clean.push('+');
            }
            '_' => {
                url_safe = true;
                clean.push('/');
            }
            '\n' | '\r' => line_breaks = true,
            ' ' | '\t' => blanks = true,
            other => {
                return Err(KeyError::NotBase64 {
                    reason: bad_char_reason(other, i + 1, trimmed),
                })
            }
        }
    }

    let body = clean.trim_end_matches('=');
    let padding = clean.len() - body.len();
    if let Some(pos) = body.find('=') {
        return Err(KeyError::NotBase64 {
            reason: format!(
                "'=' padding at position {} is not at the end (two keys pasted together?)",
                pos + 1
            ),
        });
    }
    if body.len() % 4 == 1 {
        return Err(KeyError::NotBase64 {
            reason: format!(
                "{} base64 characters cannot be a whole key: it looks truncated",
                body.len()
            ),
        });
    }
    let expected_padding = (4 - body.len() % 4) % 4;
    let missing_padding = padding == 0 && expected_padding != 0;
    if padding != 0 && padding != expected_padding {
        return Err(KeyError::NotBase64 {
            reason: format!("it ends with {padding} '=' where {expected_padding} belong: it looks truncated or altered"),
        });
    }

    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(body)
        .map_err(|e| KeyError::NotBase64 {
            reason: match e {
                base64::DecodeError::InvalidLastSymbol(..) => {
                    "its last character does not fit: the key looks truncated or altered".to_owned()
                }
                // Other cases were ruled out above; keep the library's wording (it holds no key data).
                other => other.to_string(),
            },
        })?;

    if line_breaks {
        warnings.push(LINE_BREAK_WARNING.to_owned());
    }
    if blanks {
        warnings.push(
            "the key contains spaces or tabs; they were removed — encode with `base64 -w 0` or `hookwarden key encode`"
                .to_owned(),
        );
    }
    if url_safe {
        warnings.push(
            "the key uses the URL-safe base64 alphabet ('-' and '_'); it was accepted, standard base64 is expected"
                .to_owned(),
        );
    }
    if missing_padding {
        warnings.push("the key lacks its '=' base64 padding; it was accepted".to_owned());
    }
    let repairs = KeyRepairs {
        line_breaks,
        blanks,
        url_safe,
        missing_padding,
    };
    Ok((bytes, repairs))
}

/// Name the offending character (one character reveals nothing of a secret) and guess why.
fn bad_char_reason(c: char, position: usize, key: &str) -> String {
    let shown = if c.is_ascii_graphic() {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", c as u32)
    };
    let hint = match c {
        '"' | '\'' if key.ends_with(c) => " — the key is wrapped in quotes; remove them",
        '%' => " — the key looks URL-encoded (%3D is '='); decode it first",
        '.' if key.split('.').count() == 3 => " — this looks like a JWT, not a key",
        _ => "",
    };
    format!("character {shown} at position {position} is not in the base64 alphabet{hint}")
}
