//! The domain: pure types and the state machines of a callout's escalation
//! (`callout`, `attempt`) and of a call's conversation (`conversation`). No IO here: nothing in
//! this module imports axum, redis or reqwest, and nothing reads a clock; callers
//! pass `now` in. The engine (`crate::engine`) does the IO around it.

pub mod assistant;
pub mod attempt;
pub mod call_status;
pub mod callout;
pub mod conversation;
pub mod event;
pub mod ids;
pub mod keys;
pub mod language;
pub mod phone;
pub mod policy;
pub mod schedule;
pub mod team;
pub mod time;
pub mod voicemail;
pub mod window;

pub use assistant::{Assistant, AssistantSettings};
pub use attempt::{Attempt, CallState, Dialing, Outcome, TransferLeg};
pub use call_status::CallStatus;
pub use callout::{
    Callout, CalloutError, CalloutStatus, Consequences, Contact, Effect, NewCallout, PlaceFailure,
    Reconciliation, Script, Step, Timing,
};
pub use conversation::{
    AnsweredTurn, Answers, CachedAnswer, Closing, Conversation, HeardAfterSilence, InFlightTurn,
    KeypadAnswer, Next, NoReplyAhead, Phase, Rules, Settled, State,
};
pub use event::{Event, EventKind};
pub use ids::{AssistantId, CallId, CalloutId, ScheduleId, TeamId};
pub use keys::{Keys, ToneReading, Tones};
pub use language::{Gender, Language};
pub use phone::{Destinations, E164};
pub use policy::{PersonLimits, Policy, PolicyInput};
pub use schedule::{Firing, Schedule, When};
pub use team::Team;
pub use time::Timestamp;

use serde::{Deserialize, Serialize};

/// One problem with one field of an input, e.g. `contacts[3].phone: not an E.164 number`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What a callee decided during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    Rejected,
}

/// One entry of a keypad menu offered during a Voiceflow-driven call: pressing
/// `digit` sends `request` (a button's own request, verbatim) to Voiceflow.
///
/// The request is kept as raw JSON: the menu rides in the callout document, which
/// every key press loads, copies and commits, while the request is parsed only
/// when its key is pressed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MenuItem {
    pub digit: String,
    pub label: String,
    pub request: Box<serde_json::value::RawValue>,
}

impl MenuItem {
    pub fn new(
        digit: impl Into<String>,
        label: impl Into<String>,
        request: &serde_json::Value,
    ) -> Self {
        Self {
            digit: digit.into(),
            label: label.into(),
            // A `Value` always serializes; `null` stands in should that ever change.
            request: serde_json::value::to_raw_value(request)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        }
    }

    /// The request to send to Voiceflow when the key is pressed.
    pub fn request(&self) -> serde_json::Value {
        serde_json::from_str(self.request.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The item is a path of a `DTMF` custom action (its request is the event
    /// `DTMF <key>`, Voiceflow's telephony convention).
    pub fn is_dtmf_event(&self) -> bool {
        self.request()["type"].as_str().is_some_and(|t| {
            t.get(..5)
                .is_some_and(|head| head.eq_ignore_ascii_case("DTMF "))
        })
    }
}

impl PartialEq for MenuItem {
    fn eq(&self, other: &Self) -> bool {
        self.digit == other.digit
            && self.label == other.label
            && self.request.get() == other.request.get()
    }
}
