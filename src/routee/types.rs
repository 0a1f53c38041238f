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

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// Voice gender for `SAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
}

impl FromStr for Gender {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "male" | "m" | "man" => Ok(Gender::Male),
            "female" | "f" | "woman" => Ok(Gender::Female),
            other => Err(format!(
                "unknown voice gender {other:?} (expected male or female)"
            )),
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gender::Male => "male",
            Gender::Female => "female",
        })
    }
}

/// The 14 text-to-speech languages Routee supports (reference §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    EnUs,
    DeDe,
    FrFr,
    ItIt,
    PtBr,
    EsEs,
    EsLa,
    EnGb,
    ElGr,
    BgBg,
    PlPl,
    HuHu,
    SvSe,
    RuRu,
}

impl Language {
    pub const ALL: [Language; 14] = [
        Language::EnUs,
        Language::DeDe,
        Language::FrFr,
        Language::ItIt,
        Language::PtBr,
        Language::EsEs,
        Language::EsLa,
        Language::EnGb,
        Language::ElGr,
        Language::BgBg,
        Language::PlPl,
        Language::HuHu,
        Language::SvSe,
        Language::RuRu,
    ];

    /// Routee's code for the language, e.g. `en-US`.
    pub fn code(self) -> &'static str {
        match self {
            Language::EnUs => "en-US",
            Language::DeDe => "de-DE",
            Language::FrFr => "fr-FR",
            Language::ItIt => "it-IT",
            Language::PtBr => "pt-BR",
            Language::EsEs => "es-ES",
            Language::EsLa => "es-LA",
            Language::EnGb => "en-GB",
            Language::ElGr => "el-GR",
            Language::BgBg => "bg-BG",
            Language::PlPl => "pl-PL",
            Language::HuHu => "hu-HU",
            Language::SvSe => "sv-SE",
            Language::RuRu => "ru-RU",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Parses one of Routee's exact codes (case-insensitive, `_` accepted for `-`).
/// Mapping other locales (e.g. `en-AU`, `es-MX`) is the renderer's job:
/// see `dialplan::language`.
impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('_', "-");
        Language::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| {
                format!(
                    "unsupported language {s:?}: Routee speaks {}",
                    Language::ALL.map(Language::code).join(", ")
                )
            })
    }
}

impl Serialize for Language {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
