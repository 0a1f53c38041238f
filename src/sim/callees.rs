//! Simulated callees: who answers, after how long, and which keys they press.
//!
//! A [`Callees`] map gives each phone number a [`CalleeScript`]: one
//! [`Behaviour`], or one per attempt (the k-th call to that number plays entry k,
//! the last entry repeats). Numbers without an entry use the `default` script.
//! The JSON format (a behaviour file, `PUT /sim/callees`) is documented in the
//! [module doc of `sim`](super); this module parses it by hand so that every error
//! names the entry that is wrong.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::domain::keys::is_dtmf;
use crate::domain::phone::E164;

/// Seconds of ringing before an answering callee picks up, unless told otherwise.
pub const DEFAULT_RING_S: f64 = 2.0;
/// An answering machine's greeting, before its beep.
pub const DEFAULT_GREETING_S: f64 = 2.0;

/// How one call to a callee goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Rings until the conversation's `hangupDelay` (30 s when absent): `NoAnswer`.
    NeverAnswers,
    /// The line is busy: `Busy`, without ringing.
    Busy,
    /// The carrier cannot place the call: `Failed`.
    Fails,
    /// Declines the call after a short ring: `NoAnswer`.
    Rejects,
    /// Answers after `ring_s` and never presses a key.
    Silent { ring_s: f64 },
    /// Answers and presses keys.
    Press(Press),
    /// Answers after `ring_s` and hangs up `after_s` seconds later, whatever is playing.
    HangUp { ring_s: f64, after_s: f64 },
    /// An answering machine: answers after `ring_s`, plays its greeting for
    /// `greeting_s`, then records whatever is played and never presses a key.
    /// Routee's `machineDetection` (when the conversation asked for it) reports
    /// it after the greeting: `Hangup` ends the call, `Continue` POSTs to its
    /// `eventUrl` and plays the dialplan answered.
    Voicemail { ring_s: f64, greeting_s: f64 },
}

/// A callee who answers and presses keys, in one or several turns.
#[derive(Debug, Clone, PartialEq)]
pub struct Press {
    /// One string per turn, e.g. `["9", "1"]` for "a wrong key, then 1". Each
    /// turn's keys are entered together (a fast typist).
    pub turns: Vec<String>,
    pub ring_s: f64,
    pub timing: PressTiming,
}

/// When a [`Press`] callee enters each turn.
#[derive(Debug, Clone, PartialEq)]
pub enum PressTiming {
    /// When the next `bargeIn` verb starts (plus a short reaction delay).
    OnPrompt,
    /// The first turn this many seconds after answering, each next turn as many
    /// seconds after the previous one.
    AfterAnswer(f64),
    /// Turn k at second `at[k]` after answering, whatever is playing (a `PAUSE`
    /// included): `[3, 8]` presses the first turn 3 s and the second 8 s in.
    /// Sorted ascending; as long as the turns.
    At(Vec<f64>),
}

impl Behaviour {
    /// The built-in default: answers after 2 s and presses `1` at the first prompt.
    pub fn accepts() -> Behaviour {
        Behaviour::press_on_prompt(["1"])
    }

    /// Answers after 2 s and presses one turn of keys per prompt.
    pub fn press_on_prompt<I, S>(turns: I) -> Behaviour
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Behaviour::Press(Press {
            turns: turns.into_iter().map(Into::into).collect(),
            ring_s: DEFAULT_RING_S,
            timing: PressTiming::OnPrompt,
        })
    }

    /// Answers after 2 s and presses `keys` `after_s` seconds later.
    pub fn press_after(keys: impl Into<String>, after_s: f64) -> Behaviour {
        Behaviour::Press(Press {
            turns: vec![keys.into()],
            ring_s: DEFAULT_RING_S,
            timing: PressTiming::AfterAnswer(after_s),
        })
    }

    /// Answers after 2 s and presses turn k of `turns` at second `at_s[k]`
    /// after the answer (a turn's keys at once, whatever is playing).
    pub fn press_at<I, S>(turns: I, at_s: &[f64]) -> Behaviour
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let turns: Vec<String> = turns.into_iter().map(Into::into).collect();
        let mut at: Vec<f64> = at_s.iter().copied().take(turns.len()).collect();
        at.sort_by(f64::total_cmp);
        Behaviour::Press(Press {
            turns: turns.into_iter().take(at.len()).collect(),
            ring_s: DEFAULT_RING_S,
            timing: PressTiming::At(at),
        })
    }

    /// Answers after 2 s and presses nothing.
    pub fn silent() -> Behaviour {
        Behaviour::Silent {
            ring_s: DEFAULT_RING_S,
        }
    }

    /// Answers after 2 s and hangs up `after_s` seconds later.
    pub fn hang_up(after_s: f64) -> Behaviour {
        Behaviour::HangUp {
            ring_s: DEFAULT_RING_S,
            after_s,
        }
    }

    /// An answering machine with a 2-second greeting, answering after 2 s.
    pub fn voicemail() -> Behaviour {
        Behaviour::Voicemail {
            ring_s: DEFAULT_RING_S,
            greeting_s: DEFAULT_GREETING_S,
        }
    }

    /// Seconds of ringing before answering; `None` for callees who never answer.
    pub fn ring_s(&self) -> Option<f64> {
        match self {
            Behaviour::Silent { ring_s }
            | Behaviour::Voicemail { ring_s, .. }
            | Behaviour::HangUp { ring_s, .. }
            | Behaviour::Press(Press { ring_s, .. }) => Some(*ring_s),
            Behaviour::NeverAnswers | Behaviour::Busy | Behaviour::Fails | Behaviour::Rejects => {
                None
            }
        }
    }

    /// The behaviour in the behaviour-file format.
    pub fn to_json(&self) -> Value {
        match self {
            Behaviour::NeverAnswers => json!("never_answers"),
            Behaviour::Busy => json!("busy"),
            Behaviour::Fails => json!("fails"),
            Behaviour::Rejects => json!("rejects"),
            Behaviour::Silent { ring_s } => json!({"silent": {"ring_s": ring_s}}),
            Behaviour::HangUp { ring_s, after_s } => {
                json!({"hang_up": {"ring_s": ring_s, "after_s": after_s}})
            }
            Behaviour::Voicemail { ring_s, greeting_s } => {
                json!({"voicemail": {"ring_s": ring_s, "greeting_s": greeting_s}})
            }
            Behaviour::Press(p) => {
                let mut params = Map::new();
                params.insert("keys".into(), json!(p.turns));
                params.insert("ring_s".into(), json!(p.ring_s));
                match &p.timing {
                    PressTiming::OnPrompt => params.insert("on_prompt".into(), json!(true)),
                    PressTiming::AfterAnswer(s) => params.insert("after_s".into(), json!(s)),
                    PressTiming::At(at) => params.insert("at_s".into(), json!(at)),
                };
                json!({ "press": params })
            }
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl Serialize for Behaviour {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// What a callee does on each call: `first` on attempt 1, then `then[0]` on
/// attempt 2, and so on; the last behaviour repeats. Never empty by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct CalleeScript {
    first: Behaviour,
    then: Vec<Behaviour>,
}

impl CalleeScript {
    /// The same behaviour on every attempt.
    pub fn always(behaviour: Behaviour) -> Self {
        Self {
            first: behaviour,
            then: Vec::new(),
        }
    }

    /// Appends the behaviour of the next attempt.
    #[must_use]
    pub fn then(mut self, behaviour: Behaviour) -> Self {
        self.then.push(behaviour);
        self
    }

    /// The behaviour of the `attempt`-th call (1-based) to this callee.
    pub fn for_attempt(&self, attempt: u32) -> &Behaviour {
        let index = attempt.saturating_sub(1) as usize;
        match index.checked_sub(1) {
            None => &self.first,
            Some(i) => self
                .then
                .get(i)
                .or_else(|| self.then.last())
                .unwrap_or(&self.first),
        }
    }

    /// Parses one script: a behaviour, or `{"attempts": [behaviour, ...]}`.
    pub fn from_json(text: &str) -> Result<Self, CalleesError> {
        let value: Value = serde_json::from_str(text).map_err(|source| CalleesError::Json {
            origin: "callee script".into(),
            source,
        })?;
        parse_script("script", &value)
    }

    /// The script in the behaviour-file format.
    pub fn to_json(&self) -> Value {
        if self.then.is_empty() {
            self.first.to_json()
        } else {
            let all: Vec<Value> = std::iter::once(&self.first)
                .chain(&self.then)
                .map(Behaviour::to_json)
                .collect();
            json!({ "attempts": all })
        }
    }
}

impl From<Behaviour> for CalleeScript {
    fn from(b: Behaviour) -> Self {
        CalleeScript::always(b)
    }
}

impl Serialize for CalleeScript {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Every simulated callee, by phone number, plus the script for anyone else.
#[derive(Debug, Clone, PartialEq)]
pub struct Callees {
    default: CalleeScript,
    by_phone: BTreeMap<String, CalleeScript>,
}

impl Default for Callees {
    /// Everyone accepts: answers after 2 s and presses `1` at the first prompt.
    fn default() -> Self {
        Self::new(CalleeScript::always(Behaviour::accepts()))
    }
}

impl Callees {
    /// No numbered callees; everyone plays `default`.
    pub fn new(default: CalleeScript) -> Self {
        Self {
            default,
            by_phone: BTreeMap::new(),
        }
    }

    /// Sets the script of one number (normalised to E.164 when it parses).
    pub fn insert(&mut self, phone: &str, script: impl Into<CalleeScript>) {
        self.by_phone.insert(phone_key(phone), script.into());
    }

    /// Builder form of [`Callees::insert`].
    #[must_use]
    pub fn with(mut self, phone: &str, script: impl Into<CalleeScript>) -> Self {
        self.insert(phone, script);
        self
    }

    /// Replaces the script of numbers without an entry.
    pub fn set_default(&mut self, script: impl Into<CalleeScript>) {
        self.default = script.into();
    }

    /// The script of `phone`, or the default one.
    pub fn script_for(&self, phone: &str) -> &CalleeScript {
        self.by_phone
            .get(&phone_key(phone))
            .unwrap_or(&self.default)
    }

    /// Parses a behaviour file: `{"default": <script>?, "<E.164>": <script>, ...}`.
    pub fn from_json(text: &str) -> Result<Self, CalleesError> {
        let value: Value = serde_json::from_str(text).map_err(|source| CalleesError::Json {
            origin: "callee behaviours".into(),
            source,
        })?;
        Self::from_value(&value)
    }

    /// Reads and parses a behaviour file; errors name the file and the bad entry.
    pub fn from_file(path: &Path) -> Result<Self, CalleesError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalleesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| CalleesError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Parses an already-decoded behaviour file.
    pub fn from_value(value: &Value) -> Result<Self, CalleesError> {
        let Value::Object(entries) = value else {
            return Err(CalleesError::NotAnObject);
        };
        let mut callees = Callees::default();
        for (key, script) in entries {
            let parsed = parse_script(key, script)?;
            if key == "default" {
                callees.default = parsed;
                continue;
            }
            let phone: E164 = key.parse().map_err(|e| CalleesError::Entry {
                entry: key.clone(),
                message: format!("the key must be \"default\" or a phone number: {e}"),
            })?;
            callees.by_phone.insert(phone.to_string(), parsed);
        }
        Ok(callees)
    }

    /// The whole map in the behaviour-file format.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("default".into(), self.default.to_json());
        for (phone, script) in &self.by_phone {
            map.insert(phone.clone(), script.to_json());
        }
        Value::Object(map)
    }
}

/// The lookup key of a number: its E.164 form when it parses, else as given.
pub(crate) fn phone_key(phone: &str) -> String {
    phone
        .parse::<E164>()
        .map(|e| e.to_string())
        .unwrap_or_else(|_| phone.trim().to_owned())
}

/// Why a behaviour file (or one script) was refused.
#[derive(Debug, thiserror::Error)]
pub enum CalleesError {
    #[error("cannot read callee behaviours from {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("in {}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<CalleesError>,
    },
    #[error("{origin} is not valid JSON: {source}")]
    Json {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("callee behaviours must be a JSON object mapping phone numbers to behaviours")]
    NotAnObject,
    #[error("callee entry {entry:?}: {message}")]
    Entry { entry: String, message: String },
}

const BEHAVIOUR_NAMES: &str =
    "never_answers, busy, fails, rejects, silent, accepts, press, hang_up, voicemail";

fn entry_error(entry: &str, message: impl Into<String>) -> CalleesError {
    CalleesError::Entry {
        entry: entry.to_owned(),
        message: message.into(),
    }
}

fn parse_script(entry: &str, value: &Value) -> Result<CalleeScript, CalleesError> {
    if let Value::Object(obj) = value
        && let Some(list) = obj.get("attempts")
    {
        if obj.len() != 1 {
            return Err(entry_error(
                entry,
                "an \"attempts\" script takes no other keys",
            ));
        }
        let Value::Array(items) = list else {
            return Err(entry_error(
                entry,
                "\"attempts\" must be a list of behaviours",
            ));
        };
        let mut behaviours: VecDeque<Behaviour> = items
            .iter()
            .enumerate()
            .map(|(i, b)| parse_behaviour(&format!("{entry}.attempts[{i}]"), b))
            .collect::<Result<_, _>>()?;
        let Some(first) = behaviours.pop_front() else {
            return Err(entry_error(entry, "\"attempts\" must not be empty"));
        };
        return Ok(CalleeScript {
            first,
            then: behaviours.into(),
        });
    }
    parse_behaviour(entry, value).map(CalleeScript::always)
}

fn parse_behaviour(entry: &str, value: &Value) -> Result<Behaviour, CalleesError> {
    let (name, params) = match value {
        Value::String(name) => (name.as_str(), None),
        Value::Object(obj) if obj.len() == 1 => {
            let (name, params) = obj
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .ok_or_else(|| entry_error(entry, "a behaviour object needs exactly one key"))?;
            (name, Some(params))
        }
        _ => {
            return Err(entry_error(
                entry,
                format!(
                    "a behaviour is a name or an object with exactly one key (one of {BEHAVIOUR_NAMES})"
                ),
            ));
        }
    };
    let ctx = format!("{entry} ({name})");
    match name {
        "never_answers" | "busy" | "fails" | "rejects" => {
            Params::new(&ctx, params)?.finish()?;
            Ok(match name {
                "never_answers" => Behaviour::NeverAnswers,
                "busy" => Behaviour::Busy,
                "fails" => Behaviour::Fails,
                _ => Behaviour::Rejects,
            })
        }
        "silent" => {
            let mut p = Params::new(&ctx, params)?;
            let ring_s = p.seconds("ring_s")?.unwrap_or(DEFAULT_RING_S);
            p.finish()?;
            Ok(Behaviour::Silent { ring_s })
        }
        "accepts" => {
            let mut p = Params::new(&ctx, params)?;
            let ring_s = p.seconds("ring_s")?.unwrap_or(DEFAULT_RING_S);
            p.finish()?;
            Ok(Behaviour::Press(Press {
                turns: vec!["1".into()],
                ring_s,
                timing: PressTiming::OnPrompt,
            }))
        }
        "hang_up" => {
            let mut p = Params::new(&ctx, params)?;
            let ring_s = p.seconds("ring_s")?.unwrap_or(DEFAULT_RING_S);
            let after_s = p
                .seconds("after_s")?
                .ok_or_else(|| entry_error(&ctx, "\"after_s\" is required"))?;
            p.finish()?;
            Ok(Behaviour::HangUp { ring_s, after_s })
        }
        "voicemail" => {
            let mut p = Params::new(&ctx, params)?;
            let ring_s = p.seconds("ring_s")?.unwrap_or(DEFAULT_RING_S);
            let greeting_s = p.seconds("greeting_s")?.unwrap_or(DEFAULT_GREETING_S);
            p.finish()?;
            Ok(Behaviour::Voicemail { ring_s, greeting_s })
        }
        "press" => parse_press(&ctx, params),
        other => Err(entry_error(
            entry,
            format!("unknown behaviour {other:?} (expected one of {BEHAVIOUR_NAMES})"),
        )),
    }
}

fn parse_press(ctx: &str, params: Option<&Value>) -> Result<Behaviour, CalleesError> {
    // Shorthand: {"press": "1"} or {"press": ["9", "1"]}.
    if let Some(keys @ (Value::String(_) | Value::Array(_))) = params {
        return Ok(Behaviour::Press(Press {
            turns: parse_turns(ctx, keys)?,
            ring_s: DEFAULT_RING_S,
            timing: PressTiming::OnPrompt,
        }));
    }
    let mut p = Params::new(ctx, params)?;
    let keys = p
        .take("keys")
        .ok_or_else(|| entry_error(ctx, "\"keys\" is required"))?;
    let turns = parse_turns(ctx, &keys)?;
    let ring_s = p.seconds("ring_s")?.unwrap_or(DEFAULT_RING_S);
    let after_s = p.seconds("after_s")?;
    let at_s = parse_at_s(ctx, p.take("at_s"), turns.len())?;
    let on_prompt = match p.take("on_prompt") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(entry_error(ctx, "\"on_prompt\" must be true or false")),
    };
    p.finish()?;
    if let Some(at) = at_s {
        if after_s.is_some() || on_prompt.is_some() {
            return Err(entry_error(
                ctx,
                "give one of \"at_s\", \"after_s\" or \"on_prompt\"",
            ));
        }
        return Ok(Behaviour::Press(Press {
            turns,
            ring_s,
            timing: PressTiming::At(at),
        }));
    }
    let timing = match (after_s, on_prompt) {
        (Some(_), Some(true)) => {
            return Err(entry_error(
                ctx,
                "give either \"after_s\" or \"on_prompt\": true, not both",
            ));
        }
        (Some(s), _) => PressTiming::AfterAnswer(s),
        (None, Some(false)) => {
            return Err(entry_error(
                ctx,
                "\"on_prompt\": false needs \"after_s\" to say when to press",
            ));
        }
        (None, _) => PressTiming::OnPrompt,
    };
    Ok(Behaviour::Press(Press {
        turns,
        ring_s,
        timing,
    }))
}

/// `"at_s"`: one second (after the answer) per turn, ascending.
fn parse_at_s(
    ctx: &str,
    value: Option<Value>,
    turns: usize,
) -> Result<Option<Vec<f64>>, CalleesError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let items = match value {
        Value::Array(items) => items,
        single @ Value::Number(_) => vec![single],
        _ => return Err(entry_error(ctx, "\"at_s\" must be a list of seconds")),
    };
    let at: Vec<f64> = items
        .iter()
        .map(|v| v.as_f64().filter(|s| s.is_finite() && *s >= 0.0))
        .collect::<Option<_>>()
        .ok_or_else(|| entry_error(ctx, "\"at_s\" must hold seconds (numbers, 0 or more)"))?;
    if at.len() != turns {
        return Err(entry_error(
            ctx,
            format!(
                "\"at_s\" has {} entries for {turns} turn(s) of \"keys\": give one second per turn",
                at.len()
            ),
        ));
    }
    if at.windows(2).any(|w| w[1] < w[0]) {
        return Err(entry_error(ctx, "\"at_s\" must be in ascending order"));
    }
    Ok(Some(at))
}

fn parse_turns(ctx: &str, keys: &Value) -> Result<Vec<String>, CalleesError> {
    let turns: Vec<String> = match keys {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(items) => items
            .iter()
            .map(|k| match k {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(entry_error(ctx, "each turn of \"keys\" must be a string")),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(entry_error(
                ctx,
                "\"keys\" must be a string (\"12#\") or a list of turns ([\"9\", \"1\"])",
            ));
        }
    };
    if turns.is_empty() || turns.iter().any(String::is_empty) {
        return Err(entry_error(ctx, "\"keys\" must not be empty"));
    }
    if let Some(bad) = turns.iter().flat_map(|t| t.chars()).find(|c| !is_dtmf(*c)) {
        return Err(entry_error(
            ctx,
            format!("{bad:?} is not a DTMF key (0-9, *, #, A-D)"),
        ));
    }
    Ok(turns)
}

/// The parameters object of a behaviour, consumed field by field so that unknown
/// fields can be reported.
struct Params<'a> {
    ctx: &'a str,
    fields: Map<String, Value>,
}

impl<'a> Params<'a> {
    fn new(ctx: &'a str, params: Option<&Value>) -> Result<Self, CalleesError> {
        let fields = match params {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(entry_error(ctx, "parameters must be an object")),
        };
        Ok(Self { ctx, fields })
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.fields.remove(key)
    }

    fn seconds(&mut self, key: &str) -> Result<Option<f64>, CalleesError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(s)),
                _ => Err(entry_error(
                    self.ctx,
                    format!("\"{key}\" must be a non-negative number of seconds"),
                )),
            },
            Some(_) => Err(entry_error(
                self.ctx,
                format!("\"{key}\" must be a number of seconds"),
            )),
        }
    }

    fn finish(self) -> Result<(), CalleesError> {
        match self.fields.keys().next() {
            None => Ok(()),
            Some(unknown) => Err(entry_error(
                self.ctx,
                format!("unknown parameter {unknown:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_behaviour_file_maps_numbers_to_scripts() {
        let callees = Callees::from_json(
            r#"{
              "default": "silent",
              "+30 690 000 0001": "never_answers",
              "+306900000002": {"press": {"keys": ["9", "1"], "ring_s": 4}},
              "+306900000003": {"attempts": ["busy", "rejects", {"press": "2"}]},
              "+306900000004": {"hang_up": {"after_s": 3}},
              "+306900000005": {"press": {"keys": "12#", "after_s": 1.5}}
            }"#,
        )
        .unwrap();
        assert_eq!(
            callees.script_for("+306900000001").for_attempt(1),
            &Behaviour::NeverAnswers
        );
        assert_eq!(
            callees.script_for("+306900000002").for_attempt(1),
            &Behaviour::Press(Press {
                turns: vec!["9".into(), "1".into()],
                ring_s: 4.0,
                timing: PressTiming::OnPrompt
            })
        );
        let third = callees.script_for("+306900000003");
        assert_eq!(third.for_attempt(1), &Behaviour::Busy);
        assert_eq!(third.for_attempt(2), &Behaviour::Rejects);
        assert_eq!(
            third.for_attempt(3),
            &Behaviour::press_on_prompt(["2"]),
            "the third attempt presses 2"
        );
        assert_eq!(
            third.for_attempt(9),
            third.for_attempt(3),
            "the last repeats"
        );
        assert_eq!(
            callees.script_for("+306900000004").for_attempt(1),
            &Behaviour::hang_up(3.0)
        );
        assert_eq!(
            callees.script_for("+306900000005").for_attempt(1),
            &Behaviour::press_after("12#", 1.5)
        );
        assert_eq!(
            callees.script_for("+306999999999").for_attempt(1),
            &Behaviour::silent()
        );
    }

    #[test]
    fn the_default_callee_accepts_at_the_first_prompt() {
        let callees = Callees::default();
        assert_eq!(
            callees.script_for("+306900000001").for_attempt(1),
            &Behaviour::Press(Press {
                turns: vec!["1".into()],
                ring_s: 2.0,
                timing: PressTiming::OnPrompt
            })
        );
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let cases = [
            (r#"{"+306900000001": "nevr_answers"}"#, "+306900000001"),
            (r#"{"0690": "busy"}"#, "0690"),
            (
                r#"{"+306900000002": {"press": {"keys": "1x"}}}"#,
                "+306900000002",
            ),
            (
                r#"{"+306900000003": {"attempts": ["busy", {"hang_up": {}}]}}"#,
                "+306900000003.attempts[1]",
            ),
            (
                r#"{"+306900000004": {"silent": {"rings": 3}}}"#,
                "+306900000004",
            ),
            (
                r#"{"+306900000005": {"press": {"keys": "1", "after_s": 1, "on_prompt": true}}}"#,
                "+306900000005",
            ),
            (r#"{"default": {"attempts": []}}"#, "default"),
        ];
        for (json, entry) in cases {
            let err = Callees::from_json(json).unwrap_err().to_string();
            assert!(err.contains(entry), "{err} should name {entry}");
        }
        assert!(matches!(
            Callees::from_json("[]"),
            Err(CalleesError::NotAnObject)
        ));
    }

    #[test]
    fn a_missing_file_is_reported_with_its_path() {
        let err = Callees::from_file(Path::new("/nonexistent/callees.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/callees.json"));
    }

    #[test]
    fn scripts_round_trip_through_the_file_format() {
        let callees = Callees::default()
            .with(
                "+306900000001",
                CalleeScript::always(Behaviour::NeverAnswers).then(Behaviour::accepts()),
            )
            .with("+306900000002", Behaviour::hang_up(1.0));
        let again = Callees::from_value(&callees.to_json()).unwrap();
        assert_eq!(again, callees);
    }
}
