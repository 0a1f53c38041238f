//! Routee Voice Conversation API types: dialplan verbs, the create-conversation
//! request, and the payloads Routee posts back (COLLECT events, status callbacks,
//! tracking results).
//!
//! Outbound types serialize exactly as `shared/reference/routee-voice-api.md` §2-3
//! describes (nested `message`, `fileURL`, real booleans). Inbound types are
//! deliberately tolerant (§8.8): unknown fields are ignored, numbers and booleans
//! may arrive as strings, and status names are matched case- and space-insensitively
//! with unknown names kept as [`CallStatus::Other`]. Verbs are also deserializable
//! (leniently) because the built-in carrier simulator plays what the gateway sends.

use serde::{Deserialize, Deserializer, Serialize};

use crate::lenient;

/// Most keys of one COLLECT event the gateway reads (Routee's `maxDigits` default is 30).
pub use crate::domain::keys::MAX_TONES;

/// Routee's text-to-speech limit per `SAY` (reference §3.2).
pub const MAX_SAY_CHARS: usize = 1000;

/// A dialplan: the verbs Routee runs one after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Dialplan {
    pub verbs: Vec<Verb>,
}

impl Dialplan {
    pub fn new(verbs: Vec<Verb>) -> Self {
        Self { verbs }
    }

    /// The COLLECT verb's `eventUrl`, when the dialplan asks for input.
    pub fn event_url(&self) -> Option<&str> {
        self.verbs.iter().find_map(|v| match v {
            Verb::Collect(c) => Some(c.event_url.as_str()),
            _ => None,
        })
    }
}

/// One dialplan verb. Routee supports exactly these five (reference §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verb {
    Say(Say),
    Play(Play),
    Pause(Pause),
    Collect(Collect),
    Dial(Dial),
}

impl Verb {
    pub fn say(text: impl Into<String>, language: Language, gender: Option<Gender>) -> Self {
        Verb::Say(Say {
            message: Message {
                text: text.into(),
                language,
                gender,
            },
            barge_in: false,
            repeat: None,
        })
    }

    pub fn pause(seconds: u32) -> Self {
        Verb::Pause(Pause { duration: seconds })
    }

    /// Sets `bargeIn` on a SAY or PLAY (a key press interrupts it and is submitted).
    #[must_use]
    pub fn with_barge_in(mut self, on: bool) -> Self {
        match &mut self {
            Verb::Say(s) => s.barge_in = on,
            Verb::Play(p) => p.barge_in = on,
            _ => {}
        }
        self
    }
}

/// `SAY`: text to speech.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Say {
    pub message: Message,
    #[serde(rename = "bargeIn", default, deserialize_with = "lenient::bool")]
    pub barge_in: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<i32>,
}

/// The spoken part of a `SAY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub text: String,
    pub language: Language,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
}

/// `PLAY`: a `.wav` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Play {
    #[serde(rename = "fileURL")]
    pub file_url: String,
    #[serde(rename = "bargeIn", default, deserialize_with = "lenient::bool")]
    pub barge_in: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<i32>,
}

/// `PAUSE`: silence, in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    #[serde(deserialize_with = "u32_lenient")]
    pub duration: u32,
}

/// `COLLECT`: gathers DTMF; tones are POSTed to `eventUrl` on `#` (with
/// `submitOnHash`), when a `bargeIn` verb is interrupted, and when the call ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collect {
    #[serde(rename = "eventUrl")]
    pub event_url: String,
    #[serde(
        rename = "maxDigits",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u32"
    )]
    pub max_digits: Option<u32>,
    #[serde(rename = "submitOnHash", default, deserialize_with = "lenient::bool")]
    pub submit_on_hash: bool,
}

/// `DIAL`: bridge the call to another party (our "transfer"). One per dialplan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dial {
    pub from: String,
    pub to: Destination,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u32"
    )]
    pub hangup_delay: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u32"
    )]
    pub max_duration: Option<u32>,
    /// Status callbacks of the second leg (its own `messageId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
}

fn u32_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    lenient::opt_u32(d)?.ok_or_else(|| serde::de::Error::custom("expected a non-negative number"))
}

/// Who is called: exactly one of a phone number, a SIP URI or a Viber number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    Phone(String),
    Sip(String),
    Viber(String),
}

pub use crate::domain::{Gender, Language};

/// Where and how often Routee reports progress of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    pub url: String,
    pub strategy: CallbackStrategy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackStrategy {
    OnChange,
    OnCompletion,
}

/// Body of `POST /voice/conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateConversation {
    pub from: String,
    pub to: Destination,
    pub dial_plan: Dialplan,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    /// Seconds to wait for an answer (Routee: 1..=60).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u32"
    )]
    pub hangup_delay: Option<u32>,
    /// Maximum call length in seconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u32"
    )]
    pub max_duration: Option<u32>,
    /// Answering-machine detection (reference §2: documented; its callback's
    /// payload is a GAP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_detection: Option<MachineDetection>,
}

/// `machineDetection`: on a machine, Routee hangs up (`Hangup`) or, with
/// `Continue`, POSTs to `eventUrl` and plays the dialplan answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineDetection {
    pub strategy: MachineStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MachineStrategy {
    Hangup,
    Continue,
}

/// Response of `POST /voice/conversation`. Only `trackingId` matters; the rest of
/// the documented fields vary between sources and are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationCreated {
    #[serde(deserialize_with = "lenient::string")]
    pub tracking_id: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<String>,
}

/// Body of `PUT /voice/conversation/{messageId}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallAction {
    /// Ends an answered call (`InProgress`).
    Hangup,
    /// Refuses a call that is still `Initiated` or `Ringing`.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallActionBody {
    pub action: CallAction,
}

pub use crate::domain::CallStatus;

/// `status` inside a status callback: `{name, updatedDate}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo {
    pub name: CallStatus,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_date: Option<String>,
}

/// What Routee POSTs to `callback.url` (reference §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCallback {
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_tracking_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<String>,
    pub status: StatusInfo,
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<f64>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<f64>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub direction: Option<String>,
}

/// What Routee POSTs to a COLLECT `eventUrl` (reference §4.2, field evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CollectEvent {
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_tracking_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<String>,
    /// The DTMF tones, e.g. `"1"`. Empty when the call ended with nothing pressed.
    #[serde(default, alias = "digits", deserialize_with = "lenient::string")]
    pub collected_tones: String,
}

impl CollectEvent {
    /// The tones, parsed once ([`Tones`](crate::domain::Tones)): DTMF keys only,
    /// the `#`s taken out as group boundaries (reference §4.2: whether Routee
    /// includes the submitting `#`, and whether tones are cumulative, is
    /// unknown). `*` is an ordinary key and is kept.
    pub fn tones(&self) -> crate::domain::Tones {
        crate::domain::Tones::parse(&self.collected_tones)
    }
}

/// Error body of every Routee API error (reference §6.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default, deserialize_with = "lenient::string")]
    pub code: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub developer_message: String,
}

/// Token endpoint response (reference §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub token_type: String,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub expires_in: Option<u32>,
}

/// `status` in the tracking APIs: `{status, date}` (note: not `{name, updatedDate}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingStatus {
    pub status: CallStatus,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub date: Option<String>,
}

/// One call leg in `GET /voice/tracking/conversation/{conversationTrackingId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DialPart {
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_tracking_id: Option<String>,
    pub status: TrackingStatus,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub collected_tones: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<f64>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub answered_by: Option<String>,
}

/// A page of call legs (Spring-style pagination; only `content` is used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DialTracking {
    #[serde(default)]
    pub content: Vec<DialPart>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verbs_serialize_in_routees_shape() {
        let plan = Dialplan::new(vec![
            Verb::pause(3),
            Verb::say("Hello", Language::EnUs, Some(Gender::Female)).with_barge_in(true),
            Verb::Play(Play {
                file_url: "https://x/a.wav".into(),
                barge_in: false,
                repeat: None,
            }),
            Verb::Collect(Collect {
                event_url: "https://gw/e".into(),
                max_digits: Some(1),
                submit_on_hash: false,
            }),
        ]);
        assert_eq!(
            serde_json::to_value(&plan).unwrap(),
            json!({"verbs": [
                {"type": "PAUSE", "duration": 3},
                {"type": "SAY", "message": {"text": "Hello", "language": "en-US", "gender": "female"}, "bargeIn": true},
                {"type": "PLAY", "fileURL": "https://x/a.wav", "bargeIn": false},
                {"type": "COLLECT", "eventUrl": "https://gw/e", "maxDigits": 1, "submitOnHash": false}
            ]})
        );
    }

    #[test]
    fn verbs_parse_leniently() {
        let v: Verb = serde_json::from_value(json!({
            "type": "COLLECT", "eventUrl": "u", "submitOnHash": "false", "maxDigits": "4"
        }))
        .unwrap();
        assert_eq!(
            v,
            Verb::Collect(Collect {
                event_url: "u".into(),
                max_digits: Some(4),
                submit_on_hash: false
            })
        );
    }

    #[test]
    fn status_names_parse_in_every_spelling() {
        for s in ["NoAnswer", "No Answer", "noanswer", "NO_ANSWER"] {
            assert_eq!(CallStatus::parse(s), CallStatus::NoAnswer, "{s}");
        }
        assert_eq!(CallStatus::parse("in progress"), CallStatus::InProgress);
        assert_eq!(
            CallStatus::parse("Teleported"),
            CallStatus::Other("Teleported".into())
        );
        assert!(CallStatus::Completed.is_final());
        assert!(!CallStatus::Ringing.is_final());
        assert!(!CallStatus::Other("x".into()).is_final());
    }

    #[test]
    fn status_callback_ignores_unknown_fields_and_string_numbers() {
        let cb: StatusCallback = serde_json::from_value(json!({
            "messageId": "m1", "conversationTrackingId": "c1",
            "status": {"name": "No Answer", "updatedDate": "2026-01-01T00:00:00Z"},
            "duration": "12", "price": "0.02", "respectQuietHours": "false", "extra": {"a": 1}
        }))
        .unwrap();
        assert_eq!(cb.status.name, CallStatus::NoAnswer);
        assert_eq!(cb.duration, Some(12.0));
        assert_eq!(cb.message_id.as_deref(), Some("m1"));
    }

    #[test]
    fn collect_event_tones_drop_terminators() {
        let ev: CollectEvent = serde_json::from_value(json!({"collectedTones": "12#"})).unwrap();
        assert_eq!(ev.tones().keys(), "12");
        let ev: CollectEvent = serde_json::from_value(json!({"collectedTones": 1})).unwrap();
        assert_eq!(ev.tones().keys(), "1");
        let ev: CollectEvent = serde_json::from_value(json!({})).unwrap();
        assert_eq!(ev.tones().keys(), "");
        let ev: CollectEvent =
            serde_json::from_value(json!({"collectedTones": "1#\u{0}x"})).unwrap();
        assert_eq!(ev.tones().keys(), "1");
        let ev: CollectEvent = serde_json::from_value(json!({"collectedTones": "1#2#"})).unwrap();
        assert_eq!(ev.tones().groups().collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn languages_parse_case_insensitively_and_refuse_others() {
        assert_eq!("EN_us".parse::<Language>().unwrap(), Language::EnUs);
        assert!("ja-JP".parse::<Language>().unwrap_err().contains("en-US"));
    }
}
