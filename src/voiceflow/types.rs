//! Voiceflow Dialog Manager API types: the requests ("actions") the gateway sends
//! and the traces a turn answers with.
//!
//! Traces are parsed by hand from `serde_json::Value` rather than derived, because
//! Voiceflow's shapes vary (`shared/reference/voiceflow-dm-api.md` §4, §11.9):
//! `payload` may be a string or an object, `choice` carries `buttons` (new) or
//! `choices` (old), custom-action paths name their event in `event.type` or
//! `event.name`, and any unknown `type` is a custom action by definition. Parsing a
//! trace therefore never fails: the worst case is [`Trace::CustomAction`] holding
//! the raw payload.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::lenient;

/// One trace of a turn's response.
#[derive(Debug, Clone, PartialEq)]
pub enum Trace {
    /// Voice projects: something to say, or an audio file to play.
    Speak(Speak),
    /// Chat projects (often used for voice too): something to say.
    Text { message: String },
    /// Buttons; the gateway turns them into a keypad menu.
    Choice { buttons: Vec<Button> },
    /// A card (or each card of a carousel): read out, buttons become the menu.
    Card {
        title: String,
        description: String,
        buttons: Vec<Button>,
    },
    /// The assistant wants input within `timeout` seconds, else a `no-reply` request.
    NoReply { timeout: Option<u32> },
    /// The conversation is over.
    End,
    /// An internal routing marker (`choice:1`, `reprompt`, `choice:noReply`).
    Path { path: String },
    /// An image; nothing a caller can hear.
    Visual { image: Option<String> },
    /// Runtime diagnostics; logged, never spoken.
    Debug { message: String },
    /// A Custom Action step (any trace `type` Voiceflow does not define), or a
    /// Channel Action. `paths` say how to resume when the runtime stopped on it.
    CustomAction(CustomAction),
    /// Types Voiceflow defines that carry nothing for a phone call (`flow`, `block`,
    /// `log`, `knowledgeBase`, `entity-filling`, `goto`, `completion*`, `stream`,
    /// `audio`...). Kept with their type name so they can be logged.
    Internal { kind: String, payload: Value },
}

/// Payload of a `speak` trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Speak {
    pub message: String,
    /// `"message"` or `"audio"`.
    pub kind: String,
    /// Audio URL (or `data:` URI when Voiceflow's TTS is on).
    pub src: Option<String>,
    /// Voice name, e.g. `Polly.Joanna` or `Alexa`.
    pub voice: Option<String>,
}

/// A button of a `choice` or card trace. `request` is sent back verbatim when the
/// button is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Button {
    pub name: String,
    pub request: Value,
}

/// A custom action trace.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomAction {
    /// The action's name (the trace `type`), e.g. `accept` or `forward-call`.
    pub name: String,
    /// Its body: parsed JSON when the body was JSON (or a JSON string), else the string.
    pub payload: Value,
    /// Event types of its paths, in order (resume by sending `{"type": <path>}`).
    pub paths: Vec<String>,
    pub default_path: Option<usize>,
}

impl CustomAction {
    /// The request that resumes a runtime stopped on this action along its default
    /// path (or its first path; or a plain `{"type": name}` when it has none).
    pub fn resume_request(&self) -> Request {
        let path = self
            .default_path
            .and_then(|i| self.paths.get(i))
            .or_else(|| self.paths.first())
            .cloned();
        Request::Raw(json!({ "type": path.unwrap_or_else(|| self.name.clone()) }))
    }

    /// A string field of the payload, e.g. `number` of a `forward-call` body.
    pub fn payload_str(&self, key: &str) -> Option<String> {
        match &self.payload {
            Value::Object(m) => m.get(key).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
            _ => None,
        }
    }
}

impl Trace {
    /// The trace's `type` as Voiceflow names it (for logs and metrics).
    pub fn kind(&self) -> &str {
        match self {
            Trace::Speak(_) => "speak",
            Trace::Text { .. } => "text",
            Trace::Choice { .. } => "choice",
            Trace::Card { .. } => "cardV2",
            Trace::NoReply { .. } => "no-reply",
            Trace::End => "end",
            Trace::Path { .. } => "path",
            Trace::Visual { .. } => "visual",
            Trace::Debug { .. } => "debug",
            Trace::CustomAction(a) => &a.name,
            Trace::Internal { kind, .. } => kind,
        }
    }

    /// Parses a turn's response: a bare trace array, or the `verbose=true` object
    /// with a `trace` array. Anything else yields no traces. Carousels become one
    /// [`Trace::Card`] per card.
    pub fn parse_response(body: &Value) -> Vec<Trace> {
        let items = match body {
            Value::Array(items) => items.as_slice(),
            Value::Object(m) => match m.get("trace") {
                Some(Value::Array(items)) => items.as_slice(),
                _ => &[],
            },
            _ => &[],
        };
        items.iter().flat_map(Trace::parse_many).collect()
    }

    /// Parses one trace object (a carousel expands to several cards).
    pub fn parse_many(raw: &Value) -> Vec<Trace> {
        let kind = raw.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "carousel" {
            let cards = raw
                .get("payload")
                .and_then(|p| p.get("cards"))
                .and_then(Value::as_array)
                .map(|c| c.iter().map(card).collect())
                .unwrap_or_default();
            return cards;
        }
        vec![Trace::parse(raw)]
    }

    /// Parses one trace object. Never fails.
    pub fn parse(raw: &Value) -> Trace {
        let kind = raw
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        // Borrowed: most traces only need a few strings out of their payload; a
        // `Value` is cloned only where the trace keeps it (internal and custom).
        static NULL: Value = Value::Null;
        let payload = raw.get("payload").unwrap_or(&NULL);
        match kind.as_str() {
            "speak" => Trace::Speak(Speak {
                message: str_field(payload, "message"),
                kind: opt_str_field(payload, "type").unwrap_or_else(|| "message".into()),
                src: opt_str_field(payload, "src"),
                voice: opt_str_field(payload, "voice"),
            }),
            "text" => Trace::Text {
                message: match payload {
                    Value::String(s) => s.clone(),
                    _ => str_field(payload, "message"),
                },
            },
            "choice" => Trace::Choice {
                buttons: buttons(payload),
            },
            "cardV2" | "card" => card(payload),
            "no-reply" => Trace::NoReply {
                timeout: payload
                    .get("timeout")
                    .and_then(lenient::value_as_f64)
                    .and_then(|t| (t.is_finite() && t > 0.0).then(|| t.round().min(3600.0) as u32)),
            },
            "end" => Trace::End,
            "path" => Trace::Path {
                path: str_field(payload, "path"),
            },
            "visual" => Trace::Visual {
                image: opt_str_field(payload, "image"),
            },
            "debug" => Trace::Debug {
                message: match payload {
                    Value::String(s) => s.clone(),
                    _ => str_field(payload, "message"),
                },
            },
            "flow"
            | "block"
            | "log"
            | "knowledgeBase"
            | "entity-filling"
            | "goto"
            | "stream"
            | "audio"
            | "completion"
            | "completion-start"
            | "completion-continue"
            | "completion-end" => Trace::Internal {
                kind,
                payload: payload.clone(),
            },
            "channel-action" => {
                let name = opt_str_field(payload, "name").unwrap_or_else(|| kind.clone());
                let body = payload
                    .get("payload")
                    .or_else(|| payload.get("data"))
                    .cloned()
                    .unwrap_or(Value::Null);
                Trace::CustomAction(custom_action(name, body, raw))
            }
            "" => Trace::Internal {
                kind: String::new(),
                payload: payload.clone(),
            },
            _ => Trace::CustomAction(custom_action(kind, payload.clone(), raw)),
        }
    }
}

fn str_field(v: &Value, key: &str) -> String {
    opt_str_field(v, key).unwrap_or_default()
}

fn opt_str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Buttons from `{buttons: [{name, request}]}` (current) or `{choices: [{name, intent?}]}`
/// (older spec). A legacy choice becomes an intent request (or text without an intent).
fn buttons(payload: &Value) -> Vec<Button> {
    if let Some(list) = payload.get("buttons").and_then(Value::as_array) {
        return list
            .iter()
            .filter_map(|b| {
                let name = opt_str_field(b, "name").or_else(|| {
                    b.get("request")?
                        .get("payload")?
                        .get("label")?
                        .as_str()
                        .map(str::to_owned)
                })?;
                let request = b
                    .get("request")
                    .cloned()
                    .unwrap_or_else(|| text_request(&name));
                Some(Button { name, request })
            })
            .collect();
    }
    payload
        .get("choices")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    let name = opt_str_field(c, "name")?;
                    let request = match opt_str_field(c, "intent") {
                        Some(intent) => Request::Intent {
                            name: intent,
                            query: Some(name.clone()),
                            entities: Vec::new(),
                            confidence: None,
                        }
                        .to_json(),
                        None => text_request(&name),
                    };
                    Some(Button { name, request })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text_request(text: &str) -> Value {
    Request::Text(text.to_owned()).to_json()
}

fn card(payload: &Value) -> Trace {
    let description = match payload.get("description") {
        Some(Value::String(s)) => s.clone(),
        Some(d) => str_field(d, "text"),
        None => String::new(),
    };
    Trace::Card {
        title: str_field(payload, "title"),
        description,
        buttons: buttons(payload),
    }
}

fn custom_action(name: String, payload: Value, raw: &Value) -> CustomAction {
    // A JSON body may arrive as a string holding JSON; parse it when it does.
    let payload = match payload {
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
            _ => Value::String(s),
        },
        other => other,
    };
    let paths = raw
        .get("paths")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    let ev = p.get("event")?;
                    opt_str_field(ev, "type").or_else(|| opt_str_field(ev, "name"))
                })
                .collect()
        })
        .unwrap_or_default();
    let default_path = raw
        .get("defaultPath")
        .and_then(lenient::value_as_f64)
        .filter(|f| *f >= 0.0)
        .map(|f| f as usize);
    CustomAction {
        name,
        payload,
        paths,
        default_path,
    }
}

/// A Dialog Manager request (the `action` of an interact call).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Launch,
    Text(String),
    Intent {
        name: String,
        query: Option<String>,
        entities: Vec<Entity>,
        confidence: Option<f64>,
    },
    NoReply,
    Event(String),
    /// Sent verbatim: a button's own request, a custom-action path (`{"type": "done"}`)
    /// or any action an operator typed into the conversation tools.
    Raw(Value),
}

/// An entity of an intent request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub value: String,
}

impl Request {
    /// The JSON Voiceflow expects in `action`.
    pub fn to_json(&self) -> Value {
        match self {
            Request::Launch => json!({"type": "launch"}),
            Request::Text(t) => json!({"type": "text", "payload": t}),
            Request::Intent {
                name,
                query,
                entities,
                confidence,
            } => {
                let mut payload = Map::new();
                payload.insert("intent".into(), json!({ "name": name }));
                payload.insert("entities".into(), json!(entities));
                if let Some(q) = query {
                    payload.insert("query".into(), json!(q));
                }
                if let Some(c) = confidence {
                    payload.insert("confidence".into(), json!(c));
                }
                json!({"type": "intent", "payload": payload})
            }
            Request::NoReply => json!({"type": "no-reply"}),
            Request::Event(name) => json!({"type": "event", "payload": {"event": {"name": name}}}),
            Request::Raw(v) => v.clone(),
        }
    }

    /// The request's `type` (bounded for launch/text/intent/no-reply/event;
    /// `path` for buttons and custom paths), for logs and metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Request::Launch => "launch",
            Request::Text(_) => "text",
            Request::Intent { .. } => "intent",
            Request::NoReply => "no-reply",
            Request::Event(_) => "event",
            Request::Raw(_) => "path",
        }
    }
}

/// `config` of an interact call (reference §2.3). The defaults keep `debug` traces
/// (so they reach our logs) and never ask Voiceflow for TTS audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractConfig {
    pub tts: bool,
    #[serde(rename = "stripSSML")]
    pub strip_ssml: bool,
    pub stop_all: bool,
    pub exclude_types: Vec<String>,
}

impl Default for InteractConfig {
    fn default() -> Self {
        Self {
            tts: false,
            strip_ssml: true,
            stop_all: false,
            exclude_types: vec!["block".into(), "flow".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &Value) -> Vec<Trace> {
        Trace::parse_response(v)
    }

    #[test]
    fn known_traces_parse_into_their_variants() {
        let traces = parse(&json!([
            {"type": "speak", "payload": {"type": "message", "message": "Hi", "voice": "Polly.Joanna"}},
            {"type": "text", "payload": {"message": "Text", "slate": {}}},
            {"type": "choice", "payload": {"buttons": [{"name": "Accept", "request": {"type": "path-abc", "payload": {"label": "Accept"}}}]}},
            {"type": "no-reply", "payload": {"timeout": "5"}},
            {"type": "end"},
            {"type": "path", "payload": {"path": "choice:1"}},
            {"type": "visual", "payload": {"image": "https://x/p.png"}},
            {"type": "debug", "payload": {"message": "matched"}},
            {"type": "flow", "payload": {"diagramID": "d"}}
        ]));
        assert_eq!(traces.len(), 9);
        assert!(
            matches!(&traces[0], Trace::Speak(s) if s.message == "Hi" && s.voice.as_deref() == Some("Polly.Joanna"))
        );
        assert!(matches!(&traces[1], Trace::Text { message } if message == "Text"));
        assert!(
            matches!(&traces[2], Trace::Choice { buttons } if buttons[0].request["type"] == "path-abc")
        );
        assert_eq!(traces[3], Trace::NoReply { timeout: Some(5) });
        assert_eq!(traces[4], Trace::End);
        assert!(matches!(&traces[8], Trace::Internal { kind, .. } if kind == "flow"));
    }

    #[test]
    fn unknown_types_are_custom_actions_never_errors() {
        let t = Trace::parse(&json!({
            "type": "Pay Credit Card", "payload": "{ \"amount\": 25 }", "defaultPath": 0,
            "paths": [{"event": {"type": "success"}}, {"event": {"name": "denied"}}]
        }));
        let Trace::CustomAction(a) = t else {
            panic!("not a custom action")
        };
        assert_eq!(a.name, "Pay Credit Card");
        assert_eq!(a.paths, vec!["success", "denied"]);
        // Not valid JSON (single quotes are fine inside), kept as a string.
        assert!(a.payload.is_object() || a.payload.is_string());
        assert_eq!(a.resume_request().to_json(), json!({"type": "success"}));
    }

    #[test]
    fn legacy_choices_and_verbose_responses_are_understood() {
        let traces = parse(&json!({"trace": [
            {"type": "choice", "payload": {"choices": [{"name": "Yes", "intent": "yes_intent"}, {"name": "No"}]}}
        ], "state": {}}));
        let Trace::Choice { buttons } = &traces[0] else {
            panic!()
        };
        assert_eq!(
            buttons[0].request["payload"]["intent"]["name"],
            "yes_intent"
        );
        assert_eq!(buttons[1].request, json!({"type": "text", "payload": "No"}));
    }

    #[test]
    fn garbage_yields_no_traces() {
        assert!(parse(&json!("oops")).is_empty());
        assert!(parse(&json!({"unexpected": true})).is_empty());
        assert_eq!(
            Trace::parse(&json!(42)),
            Trace::Internal {
                kind: String::new(),
                payload: Value::Null
            }
        );
    }

    #[test]
    fn requests_serialize_as_voiceflow_expects() {
        assert_eq!(Request::Launch.to_json(), json!({"type": "launch"}));
        assert_eq!(
            Request::Intent {
                name: "accept".into(),
                query: None,
                entities: vec![],
                confidence: None
            }
            .to_json(),
            json!({"type": "intent", "payload": {"intent": {"name": "accept"}, "entities": []}})
        );
        assert_eq!(Request::NoReply.to_json(), json!({"type": "no-reply"}));
        assert_eq!(
            Request::Event("checkout".into()).to_json(),
            json!({"type": "event", "payload": {"event": {"name": "checkout"}}})
        );
    }
}
