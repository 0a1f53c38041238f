//! Identifiers. Parsed once at the edge (`FromStr`), trusted everywhere behind it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenless lowercase hex: short, URL- and key-safe.
                write!(f, "{}", self.0.simple())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only our own canonical form: 32 lowercase hex digits.
                if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err(IdError);
                }
                Uuid::try_parse(s).map($name).map_err(|_| IdError)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// A callout: one call list being worked through. Time-ordered (UUIDv7), so
    /// ids sort by creation.
    CalloutId
);
uuid_id!(
    /// One placed call (an attempt). Random (UUIDv4): it is the Voiceflow `userID`
    /// and appears in webhook URLs, so it must reveal nothing and be unguessable.
    CallId
);
uuid_id!(
    /// A registered Voiceflow assistant.
    AssistantId
);
uuid_id!(
    /// A saved call list (a team).
    TeamId
);
uuid_id!(
    /// A scheduled or recurring callout.
    ScheduleId
);

impl CalloutId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id of the callout a schedule (`seed`, its id's bytes) makes for its
    /// occurrence `at`: a UUIDv7 timestamped `at`, whose other bits are a
    /// SHA-256 of both, so every replica and every retry names the same callout
    /// (and the store creates it once).
    pub fn for_occurrence(seed: &[u8], at: super::Timestamp) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(seed)
            .chain_update(at.millis().to_be_bytes())
            .finalize();
        let mut bits = [0u8; 10];
        bits.copy_from_slice(&digest[..10]);
        let millis = u64::try_from(at.millis()).unwrap_or(0);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid())
    }

    /// Creation time in Unix milliseconds, from the UUIDv7 timestamp.
    pub fn created_ms(&self) -> i64 {
        self.0.get_timestamp().map_or(0, |t| {
            let (secs, nanos) = t.to_unix();
            i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000 + i64::from(nanos / 1_000_000)
        })
    }
}

impl CallId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl AssistantId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl TeamId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl ScheduleId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for ScheduleId {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for TeamId {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for CalloutId {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for CallId {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for AssistantId {
    fn default() -> Self {
        Self::new()
    }
}

/// A string that is not one of our ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id (expected 32 lowercase hex digits)")]
pub struct IdError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = CalloutId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<CalloutId>().unwrap(), id);
        assert_eq!(
            serde_json::from_str::<CalloutId>(&format!("\"{text}\"")).unwrap(),
            id
        );
    }

    #[test]
    fn foreign_strings_are_not_ids() {
        for bad in [
            "",
            "x",
            "0190c0de-0000-7000-8000-000000000000",
            &"A".repeat(32),
            "../../etc/passwd",
        ] {
            assert!(bad.parse::<CallId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn callout_ids_sort_by_creation() {
        let a = CalloutId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = CalloutId::new();
        assert!(a.to_string() < b.to_string());
    }
}
