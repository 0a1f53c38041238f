//! The timeline: what happened to a callout, in order. Events are appended in the
//! same atomic step as the state change they describe, so the timeline is never
//! ahead of or behind the state.

use serde::{Deserialize, Serialize};

use super::{Decision, Outcome, Timestamp};

/// One entry of a callout's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
    /// Index of the contact concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<usize>,
    /// Attempt number (1-based, per contact), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Who did it, on the events an API caller causes (creation, cancellation):
    /// the fingerprint of their API key (`key-1a2b3c4d`, never the token), or
    /// `open` in the open sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// What happened. Serialized as `"kind": "<snake_case>"` plus the variant's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    CalloutCreated,
    /// The next call to a contact is due at `due`.
    CallScheduled {
        due: Timestamp,
    },
    /// The carrier accepted the call.
    CallPlaced,
    /// Creating the call failed in a way that may succeed later; retried at `retry_at`.
    PlacementRetry {
        reason: String,
        retry_at: Timestamp,
    },
    /// The carrier failed to create the call (refused, 429, 5xx, unreachable):
    /// the attempt waits and is placed again; once per outage of an attempt.
    CarrierUnavailable {
        reason: String,
    },
    /// The carrier may or may not have created the call; waiting for its callbacks.
    PlacementUnconfirmed {
        reason: String,
    },
    /// Routee reported a status for the call (`Queued`, `Ringing`, `Completed`...).
    CallStatus {
        status: String,
    },
    /// The call's transfer (the second leg a `DIAL` opened, with its own
    /// `messageId`) changed: `dialing`, `ringing`, `answered`, `completed`,
    /// `busy`, `no_answer` or `failed`. Never changes the callee's attempt.
    Transfer {
        status: String,
    },
    /// Routee's answering-machine detection met a machine: the voicemail
    /// message is left, the menu never played; the attempt ends `voicemail`.
    VoicemailDetected,
    /// The callee pressed keys.
    KeysPressed {
        keys: String,
    },
    /// The callee accepted or rejected.
    Decided {
        decision: Decision,
    },
    /// The attempt is over.
    AttemptEnded {
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Every attempt of this contact is used (or they rejected); moving on.
    ContactDone,
    /// The number was called as often as the per-person limits allow (across
    /// every callout): the call waits until `until`.
    CallHeld {
        until: Timestamp,
    },
    /// Every contact used their attempts and fewer than `needed` accepted: the
    /// list is called again from the top (`round` counts from 1).
    RoundStarted {
        round: u32,
        due: Timestamp,
    },
    /// The gateway asked the carrier to end a live call.
    HangupRequested,
    /// Voiceflow did not answer in time or failed; the caller got a holding or fallback dialplan.
    ConversationFallback {
        reason: String,
    },
    /// The final status was learnt from Routee's tracking API instead of a callback.
    Reconciled {
        status: String,
    },
    CalloutAccepted,
    CalloutExhausted,
    CalloutCancelled,
    CalloutFailed {
        reason: String,
    },
    NotifyDelivered,
    NotifyFailed {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<Timestamp>,
    },
}

impl Event {
    pub fn new(at: Timestamp, kind: EventKind) -> Self {
        Self {
            at,
            kind,
            contact: None,
            attempt: None,
            by: None,
        }
    }

    pub fn for_call(at: Timestamp, kind: EventKind, contact: usize, attempt: u32) -> Self {
        Self {
            at,
            kind,
            contact: Some(contact),
            attempt: Some(attempt),
            by: None,
        }
    }

    /// The `kind` tag, e.g. `call_placed` (for logs).
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            EventKind::CalloutCreated => "callout_created",
            EventKind::CallScheduled { .. } => "call_scheduled",
            EventKind::CallPlaced => "call_placed",
            EventKind::PlacementRetry { .. } => "placement_retry",
            EventKind::PlacementUnconfirmed { .. } => "placement_unconfirmed",
            EventKind::CarrierUnavailable { .. } => "carrier_unavailable",
            EventKind::CallStatus { .. } => "call_status",
            EventKind::Transfer { .. } => "transfer",
            EventKind::KeysPressed { .. } => "keys_pressed",
            EventKind::VoicemailDetected => "voicemail_detected",
            EventKind::Decided { .. } => "decided",
            EventKind::AttemptEnded { .. } => "attempt_ended",
            EventKind::ContactDone => "contact_done",
            EventKind::CallHeld { .. } => "call_held",
            EventKind::RoundStarted { .. } => "round_started",
            EventKind::HangupRequested => "hangup_requested",
            EventKind::ConversationFallback { .. } => "conversation_fallback",
            EventKind::Reconciled { .. } => "reconciled",
            EventKind::CalloutAccepted => "callout_accepted",
            EventKind::CalloutExhausted => "callout_exhausted",
            EventKind::CalloutCancelled => "callout_cancelled",
            EventKind::CalloutFailed { .. } => "callout_failed",
            EventKind::NotifyDelivered => "notify_delivered",
            EventKind::NotifyFailed { .. } => "notify_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_serialize_flat_with_a_kind_tag() {
        let e = Event::for_call(Timestamp(0), EventKind::CallPlaced, 0, 1);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"at": 0, "kind": "call_placed", "contact": 0, "attempt": 1})
        );
        let e = Event::new(Timestamp(5), EventKind::KeysPressed { keys: "1".into() });
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"at": 5, "kind": "keys_pressed", "keys": "1"})
        );
        let back: Event = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.kind_name(), "keys_pressed");
    }
}
