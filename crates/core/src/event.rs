//! Events as producers post them (`POST /api/events`), parsed at the edge, and the body that
//! reaches the receiver: OneSpan Sign's `ESLProcessEvent` JSON, byte for byte the same on
//! every attempt so that signatures and receivers' de-duplication see one message.

use serde::Serialize;
use serde_json::Value;

use crate::problem::Problem;

/// OneSpan Sign's callback events; custom UPPER_SNAKE names are accepted beside them.
pub const ONESPAN_EVENTS: &[&str] = &[
    "PACKAGE_CREATE",
    "PACKAGE_ACTIVATE",
    "PACKAGE_DEACTIVATE",
    "PACKAGE_READY_FOR_COMPLETION",
    "PACKAGE_COMPLETE",
    "PACKAGE_EXPIRE",
    "PACKAGE_OPT_OUT",
    "PACKAGE_DECLINE",
    "PACKAGE_DELETE",
    "PACKAGE_TRASH",
    "PACKAGE_RESTORE",
    "PACKAGE_ARCHIVE",
    "PACKAGE_ATTACHMENT",
    "PACKAGE_REASSIGN",
    "DOCUMENT_SIGNED",
    "DOCUMENT_VIEWED",
    "SIGNER_COMPLETE",
    "SIGNER_LOCKED",
    "ROLE_REASSIGN",
    "KBA_FAILURE",
    "EMAIL_BOUNCE",
    "TEMPLATE_CREATE",
    "TRANSACTION_REMINDER",
];

/// The `@class` OneSpan Sign puts in every callback body; Apex receivers deserialise by it.
pub const ONESPAN_EVENT_CLASS: &str = "com.silanis.esl.packages.event.ESLProcessEvent";

/// The name of the event the connector test sends.
pub const CONNECTOR_TEST_EVENT: &str = "HOOKWARDEN_TEST";

const MAX_NAME: usize = 64;
const MAX_ID: usize = 256;
const MAX_ORIGIN: usize = 64;
/// `message` carries free text (a decline reason, an email bounce); bounded so one event
/// cannot bloat every attempt.
const MAX_MESSAGE: usize = 16 * 1024;

/// `PACKAGE_COMPLETE`, `DOCUMENT_SIGNED`, ... or a custom `UPPER_SNAKE_CASE` name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventName(String);

impl EventName {
    pub fn parse(raw: &str) -> Result<Self, EventError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_NAME
            && raw.starts_with(|c: char| c.is_ascii_uppercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(EventError::new(
                "name",
                "invalid_event_name",
                format!("{:?} is not an event name", truncate(raw)),
                "use OneSpan's names (PACKAGE_COMPLETE, DOCUMENT_SIGNED, ...) or your own UPPER_SNAKE_CASE name of at most 64 characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Not one of OneSpan Sign's own events.
    pub fn is_custom(&self) -> bool {
        !ONESPAN_EVENTS.contains(&self.0.as_str())
    }
}

/// A bad event: the field it is about, a stable code, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
    pub fix: String,
}

impl EventError {
    fn new(field: &str, code: &'static str, message: String, fix: &str) -> Self {
        Self {
            field: field.to_owned(),
            code,
            message,
            fix: fix.to_owned(),
        }
    }

    /// The same error about an event inside a batch: `events[3].name`.
    pub fn in_batch(mut self, index: usize) -> Self {
        self.field = format!("events[{index}].{}", self.field);
        self
    }
}

impl Problem for EventError {
    fn code(&self) -> &'static str {
        self.code
    }
    fn message(&self) -> String {
        self.to_string()
    }
    fn fix(&self) -> String {
        self.fix.clone()
    }
}

/// A checked event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: EventName,
    pub package_id: String,
    pub origin: String,
    pub session_user: Option<String>,
    pub document_id: Option<String>,
    pub message: Option<String>,
    /// RFC 3339 in UTC with milliseconds, as OneSpan Sign writes it.
    pub created_date: String,
}

/// The receiver's body, in OneSpan's field order.
#[derive(Serialize)]
struct OneSpanBody<'a> {
    #[serde(rename = "@class")]
    class: &'a str,
    name: &'a str,
    #[serde(rename = "sessionUser")]
    session_user: Option<&'a str>,
    #[serde(rename = "packageId")]
    package_id: &'a str,
    message: Option<&'a str>,
    #[serde(rename = "documentId")]
    document_id: Option<&'a str>,
    #[serde(rename = "createdDate")]
    created_date: &'a str,
}

impl Event {
    /// Parse one event object as posted; `now_ms` fills a missing `createdDate`.
    pub fn from_json(value: &Value, now_ms: i64) -> Result<Self, EventError> {
        let Some(obj) = value.as_object() else {
            return Err(EventError::new(
                "event",
                "invalid_event",
                "is not a JSON object".to_owned(),
                "send {\"name\": \"PACKAGE_COMPLETE\", \"packageId\": \"...\", \"origin\": \"OSS\"}",
            ));
        };
        let name_raw = required(obj, "name", MAX_NAME)?;
        let name = EventName::parse(&name_raw)?;
        let package_id = required(obj, "packageId", MAX_ID)?;
        let origin = required(obj, "origin", MAX_ORIGIN)?;
        let session_user = optional(obj, "sessionUser", MAX_ID)?;
        let document_id = optional(obj, "documentId", MAX_ID)?;
        let message = optional(obj, "message", MAX_MESSAGE)?;
        let created_date = match optional(obj, "createdDate", 64)? {
            None => format_ms(now_ms),
            Some(raw) => match chrono::DateTime::parse_from_rfc3339(&raw) {
                Ok(t) => format_ms(t.timestamp_millis()),
                Err(_) => {
                    return Err(EventError::new(
                        "createdDate",
                        "invalid_created_date",
                        format!("{:?} is not an RFC 3339 time", truncate(&raw)),
                        "give a time such as 2024-05-01T12:30:00.000Z, or leave createdDate out to use the time of ingest",
                    ))
                }
            },
        };
        Ok(Self {
            name,
            package_id,
            origin,
            session_user,
            document_id,
            message,
            created_date,
        })
    }

    /// The harmless event the connector test (`…/test`) POSTs to a connector's endpoint, as a
    /// delivery would, at `now_ms`.
    pub fn connector_test(now_ms: i64) -> Self {
        Self {
            name: EventName(CONNECTOR_TEST_EVENT.to_owned()),
            package_id: "hookwarden-connector-test".to_owned(),
            origin: "hookwarden".to_owned(),
            session_user: None,
            document_id: None,
            message: Some(
                "a test event from hookwarden's connector test; safe to ignore".to_owned(),
            ),
            created_date: format_ms(now_ms),
        }
    }

    /// OneSpan Sign's callback body for this event.
    pub fn onespan_body(&self) -> String {
        let body = OneSpanBody {
            class: ONESPAN_EVENT_CLASS,
            name: self.name.as_str(),
            session_user: self.session_user.as_deref(),
            package_id: &self.package_id,
            message: self.message.as_deref(),
            document_id: self.document_id.as_deref(),
            created_date: &self.created_date,
        };
        serde_json::to_string(&body).expect("strings always serialise")
    }
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn truncate(raw: &str) -> String {
    raw.chars().take(80).collect()
}

fn required(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<String, EventError> {
    match optional(obj, field, max)? {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(EventError::new(
            field,
            "missing_field",
            "is required".to_owned(),
            &format!("give {field} as a non-empty string"),
        )),
    }
}

fn optional(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(EventError::new(
            field,
            "field_too_long",
            format!("is {} bytes long; at most {max} are accepted", s.len()),
            &format!("shorten {field}"),
        )),
        Some(_) => Err(EventError::new(
            field,
            "invalid_field",
            "must be a string".to_owned(),
            &format!("give {field} as a JSON string"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_event_becomes_onespans_body() {
        let e = Event::from_json(
            &json!({"name": "PACKAGE_COMPLETE", "packageId": "pkg-1", "origin": "OSS",
                    "sessionUser": "u1", "createdDate": "2024-05-01T14:30:00+02:00"}),
            0,
        )
        .unwrap();
        assert_eq!(
            e.onespan_body(),
            r#"{"@class":"com.silanis.esl.packages.event.ESLProcessEvent","name":"PACKAGE_COMPLETE","sessionUser":"u1","packageId":"pkg-1","message":null,"documentId":null,"createdDate":"2024-05-01T12:30:00.000Z"}"#
        );
    }

    #[test]
    fn created_date_defaults_to_now() {
        let e = Event::from_json(
            &json!({"name": "MY_EVENT", "packageId": "p", "origin": "X"}),
            1_700_000_000_123,
        )
        .unwrap();
        assert_eq!(e.created_date, "2023-11-14T22:13:20.123Z");
        assert!(e.name.is_custom());
    }

    #[test]
    fn errors_name_the_field() {
        let err = |v: Value| Event::from_json(&v, 0).unwrap_err();
        assert_eq!(err(json!({"packageId": "p", "origin": "O"})).field, "name");
        assert_eq!(
            err(json!({"name": "package complete", "packageId": "p", "origin": "O"})).code,
            "invalid_event_name"
        );
        assert_eq!(err(json!({"name": "A", "origin": "O"})).field, "packageId");
        assert_eq!(err(json!({"name": "A", "packageId": "p"})).field, "origin");
        assert_eq!(
            err(json!({"name": "A", "packageId": 3, "origin": "O"})).code,
            "invalid_field"
        );
        assert_eq!(
            err(json!({"name": "A", "packageId": "p", "origin": "O", "createdDate": "yesterday"}))
                .field,
            "createdDate"
        );
        assert_eq!(err(json!([1])).field, "event");
        assert_eq!(
            err(json!({"name": "A"})).in_batch(3).field,
            "events[3].packageId"
        );
    }

    #[test]
    fn the_connector_tests_event_is_a_onespan_body_with_its_own_name() {
        let body: Value =
            serde_json::from_str(&Event::connector_test(1_714_566_600_000).onespan_body()).unwrap();
        assert_eq!(body["@class"], ONESPAN_EVENT_CLASS);
        assert_eq!(body["name"], CONNECTOR_TEST_EVENT);
        assert_eq!(body["packageId"], "hookwarden-connector-test");
        assert_eq!(body["createdDate"], "2024-05-01T12:30:00.000Z");
        assert!(EventName::parse(CONNECTOR_TEST_EVENT).is_ok());
    }
}
