//! hookwarden's domain: what a connector, a key and a callback URL are, and the rules that
//! decide whether they can be right. Pure: no IO, no async, so every rule is testable in µs.

pub mod api_key;
pub mod clock;
pub mod connector;
pub mod credentials;
pub mod destination;
pub mod diagnosis;
pub mod event;
pub mod ids;
pub mod key;
pub mod netguard;
pub mod notification;
pub mod problem;
pub mod redact;
pub mod retry;
pub mod routing;
pub mod session;
pub mod status;
pub mod url_rules;

pub use api_key::{ApiKeyError, KeyName, Scope, Scopes};
pub use clock::{Clock, OffsetClock, SystemClock};
pub use connector::{ConnectorKind, ConnectorName, Flow};
pub use credentials::{Credentials, NoKey};
pub use diagnosis::{Diagnosis, DiagnosisView};
pub use event::{Event, EventError, EventName};
pub use ids::{AccountId, ConnectorId, DeliveryId, EventId};
pub use key::{
    AuthMethod, Endpoints, Key, KeyError, KeyRepairs, ParsedKey, RequestStyle, SessionMode,
};
pub use netguard::{AddressPolicy, NetGuardError};
pub use notification::{Notice, NotificationFormat, NotificationType};
pub use problem::Problem;
pub use retry::{RetrySchedule, TransportFailure, Verdict};
pub use status::{ConnectorStatus, DeliveryStatus};
pub use url_rules::{CallbackUrl, UrlError};
