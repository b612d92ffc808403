//! Typed ids: an account, connector, delivery or event id is its own type, so one cannot be
//! passed where another is meant. Ids are opaque: wrapping a string read from the database or
//! a URL path is fine, since an id nobody issued simply finds nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A new id: `<prefix>_` and a UUIDv7 in hex, so ids sort by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("A new id: `", $prefix, "_` and a UUIDv7.")]
            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        // An id as it was stored or given (see the module's note: ids are opaque).
        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        // An id is compared with the text it was made from (tests, opaque lookups).
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: `acc_...`.
    AccountId,
    "acc"
);
id_type!(
    /// A connector (the default callback included): `con_...`.
    ConnectorId,
    "con"
);
id_type!(
    /// One event for one connector: `dlv_...`.
    DeliveryId,
    "dlv"
);
id_type!(
    /// What a producer posted: `evt_...`.
    EventId,
    "evt"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_sort_by_time() {
        let a = DeliveryId::generate();
        let b = DeliveryId::generate();
        assert!(a.as_str().starts_with("dlv_"));
        assert_eq!(a.as_str().len(), "dlv_".len() + 32);
        assert!(a < b);
        assert!(AccountId::generate().as_str().starts_with("acc_"));
        assert!(ConnectorId::generate().as_str().starts_with("con_"));
        assert!(EventId::generate().as_str().starts_with("evt_"));
        assert!(new_id("his").starts_with("his_"));
    }

    #[test]
    fn ids_serialise_as_their_string() {
        let id = EventId::from("evt_1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"evt_1\"");
        let back: EventId = serde_json::from_str("\"evt_1\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "evt_1");
    }
}
