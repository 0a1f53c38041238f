//! A call's status as the carrier reports it. The callout's state machine
//! reads it (`Callout::on_status`), so it belongs to the domain; `routee`
//! re-exports it for its callbacks.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lenient;

/// A call's status as Routee names it (reference §5.3), parsed leniently.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    /// Routee's own "unknown network error" status; final or not depending on the
    /// page read, so the engine treats it as "ask the tracking API".
    Unknown,
    Unsent,
    Terminated,
    /// A status name we have never seen; kept verbatim, never dropped.
    Other(String),
}

impl CallStatus {
    /// Parses any spelling: `NoAnswer`, `No Answer`, `noanswer`, `NO_ANSWER`...
    pub fn parse(raw: &str) -> CallStatus {
        let key: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "queued" => CallStatus::Queued,
            "initiated" => CallStatus::Initiated,
            "ringing" => CallStatus::Ringing,
            "inprogress" | "answered" => CallStatus::InProgress,
            "completed" => CallStatus::Completed,
            "busy" => CallStatus::Busy,
            "noanswer" | "unanswered" => CallStatus::NoAnswer,
            "failed" => CallStatus::Failed,
            "unknown" => CallStatus::Unknown,
            "unsent" => CallStatus::Unsent,
            "terminated" => CallStatus::Terminated,
            _ => CallStatus::Other(raw.trim().to_owned()),
        }
    }

    /// Routee's canonical spelling.
    pub fn as_str(&self) -> &str {
        match self {
            CallStatus::Queued => "Queued",
            CallStatus::Initiated => "Initiated",
            CallStatus::Ringing => "Ringing",
            CallStatus::InProgress => "InProgress",
            CallStatus::Completed => "Completed",
            CallStatus::Busy => "Busy",
            CallStatus::NoAnswer => "NoAnswer",
            CallStatus::Failed => "Failed",
            CallStatus::Unknown => "Unknown",
            CallStatus::Unsent => "Unsent",
            CallStatus::Terminated => "Terminated",
            CallStatus::Other(s) => s,
        }
    }

    /// A status after which the call leg is over.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::NoAnswer
                | CallStatus::Failed
                | CallStatus::Unsent
                | CallStatus::Terminated
        )
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CallStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CallStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(CallStatus::parse(&lenient::string(d)?))
    }
}
