//! From decoded bytes to JSON: the text encoding (BOM, UTF-16, UTF-8) and JSON syntax faults,
//! each with a hint at how the key was likely mangled.

use serde_json::Value;

use super::KeyError;

pub(super) fn decode_text<'a>(
    bytes: &'a [u8],
    warnings: &mut Vec<String>,
) -> Result<&'a str, KeyError> {
    const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
    let (body, skipped) = match bytes.strip_prefix(&BOM) {
        Some(rest) => {
            warnings.push(
                "the decoded key starts with a UTF-8 byte order mark (Windows editors add it); it was removed"
                    .to_owned(),
            );
            (rest, BOM.len())
        }
        None => (bytes, 0),
    };
    // PowerShell's Encoding::Unicode gives UTF-16LE: ASCII JSON with a NUL after every byte.
    let utf16 = body.starts_with(&[0xFF, 0xFE])
        || body.starts_with(&[0xFE, 0xFF])
        || (body.len() >= 2 && (body[0] == 0) != (body[1] == 0));
    if utf16 {
        return Err(KeyError::NotUtf8 {
            offset: skipped,
            utf16: true,
        });
    }
    std::str::from_utf8(body).map_err(|e| KeyError::NotUtf8 {
        offset: skipped + e.valid_up_to(),
        utf16: false,
    })
}

pub(super) fn not_json(e: &serde_json::Error, text: &str) -> KeyError {
    use serde_json::error::Category;
    let detail = match e.classify() {
        // serde_json's syntax messages are fixed phrases plus a position: no key data in them.
        Category::Syntax | Category::Eof => e.to_string(),
        _ => format!("invalid JSON at line {} column {}", e.line(), e.column()),
    };
    let t = text.trim_start();
    let hint = if t.is_empty() {
        Some("the decoded text is empty")
    } else if t.starts_with("eyJ") {
        Some("the decoded text is base64 again: the key was encoded twice")
    } else if t.starts_with("{'") {
        Some("JSON needs double quotes around names and strings, not single quotes")
    } else if !t.starts_with('{') && t.contains('=') {
        Some("it looks like form fields (name=value); the key must be a JSON object")
    } else {
        None
    };
    KeyError::NotJson { detail, hint }
}

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
