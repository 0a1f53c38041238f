//! Parsing the assistants API's bodies into [`Registration`], [`AssistantUpdate`] and the
//! conversation tools' inputs, collecting *every* problem as a [`FieldError`]
//! named by its path (`keypad.1: ...`, `accept_actions[0]: ...`), as the
//! callouts API does. Values are read by hand from a `serde_json::Value` so one
//! bad field does not hide the next.
//!
//! An API key is never repeated in an error message, whatever is wrong with it.

use std::collections::BTreeMap;

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::callout_input::{parse_variables, variables_schema};
use super::openapi::nullable;
use crate::assistants::{AssistantUpdate, Registration, SettingsChange, is_version_id};
use crate::config::Secret;
use crate::dialplan::language::{gender_for_voice, routee_language};
use crate::domain::{AssistantId, E164, FieldError};
use crate::engine::tools::{Input, MAX_SESSION_CHARS, SessionName, TranscriptDetails};

/// Longest assistant name.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest API key accepted (Voiceflow's are far shorter).
pub const MAX_KEY_CHARS: usize = 512;
/// Most keypad entries and custom action names.
pub const MAX_KEYPAD: usize = 12;
pub const MAX_ACTIONS: usize = 10;
/// Longest intent or action name, typed text, transcript field.
pub const MAX_LABEL_CHARS: usize = 100;
pub const MAX_TEXT_CHARS: usize = 1000;
/// Most digits in one `digits` input (a PIN, an account number).
pub const MAX_DIGITS: usize = 32;

const ASSISTANT_FIELDS: [&str; 12] = [
    "name",
    "api_key",
    "version",
    "project_id",
    "keypad",
    "language",
    "voice",
    "accept_actions",
    "reject_actions",
    "save_transcripts",
    "transfer_targets",
    "streaming",
];

/// At most this many transfer targets per assistant.
pub const MAX_TRANSFER_TARGETS: usize = 20;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'a>(body: &'a Value, errors: &mut Vec<FieldError>) -> Option<&'a Map<String, Value>> {
    match body {
        Value::Object(o) => Some(o),
        other => {
            errors.push(FieldError::new(
                "body",
                format!("must be a JSON object, not {}", kind(other)),
            ));
            None
        }
    }
}

fn unknown_fields(obj: &Map<String, Value>, known: &[&str], errors: &mut Vec<FieldError>) {
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(FieldError::new(
            k.as_str(),
            format!("unknown field (expected one of {})", known.join(", ")),
        ));
    }
}

/// A present, non-null field.
fn given<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    obj.get(field).filter(|v| !v.is_null())
}

fn string<'a>(v: &'a Value, field: &str, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            errors.push(FieldError::new(
                field,
                format!("must be a string, not {}", kind(other)),
            ));
            None
        }
    }
}

/// A short label: non-empty, at most `max` characters, no control characters.
fn label(v: &Value, field: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let s = string(v, field, errors)?.trim();
    let problem = if s.is_empty() {
        Some("must not be empty".to_owned())
    } else if s.chars().count() > max {
        Some(format!("longer than {max} characters"))
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(p) => {
            errors.push(FieldError::new(field, p));
            None
        }
        None => Some(s.to_owned()),
    }
}

fn name(v: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let name = label(v, "name", MAX_NAME_CHARS, errors)?;
    if name.parse::<AssistantId>().is_ok() {
        // `/v1/assistants/{id}` takes an id or a name: a name that is an id
        // would hide another assistant.
        errors.push(FieldError::new(
            "name",
            "must not look like an assistant id (32 hex digits)",
        ));
        return None;
    }
    Some(name)
}

fn api_key(v: &Value, errors: &mut Vec<FieldError>) -> Option<Secret<String>> {
    let Value::String(raw) = v else {
        errors.push(FieldError::new(
            "api_key",
            format!("must be a string, not {}", kind(v)),
        ));
        return None;
    };
    let key = raw.trim();
    let problem = if !key.starts_with("VF.DM.") {
        Some("not a Voiceflow Dialog Manager API key (those start with VF.DM.)")
    } else if key.len() > MAX_KEY_CHARS {
        Some("too long for a Dialog Manager API key")
    } else if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters")
    } else {
        None
    };
    match problem {
        Some(p) => {
            errors.push(FieldError::new("api_key", p));
            None
        }
        None => Some(Secret::new(key.to_owned())),
    }
}

fn version(v: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let s = string(v, "version", errors)?.trim();
    if s == "production" || s == "development" || is_version_id(s) {
        Some(s.to_owned())
    } else {
        errors.push(FieldError::new(
            "version",
            "must be production, development or a version id (24 hex digits)",
        ));
        None
    }
}

fn project_id(v: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let s = string(v, "project_id", errors)?.trim();
    if is_version_id(s) {
        Some(s.to_owned())
    } else {
        errors.push(FieldError::new(
            "project_id",
            "must be a Voiceflow project id (24 hex digits)",
        ));
        None
    }
}

fn keypad(v: &Value, errors: &mut Vec<FieldError>) -> Option<BTreeMap<String, String>> {
    let Value::Object(map) = v else {
        errors.push(FieldError::new(
            "keypad",
            format!(
                "must be an object of keys to intent names, e.g. {{\"1\": \"accept\"}}, not {}",
                kind(v)
            ),
        ));
        return None;
    };
    let before = errors.len();
    if map.len() > MAX_KEYPAD {
        errors.push(FieldError::new(
            "keypad",
            format!("more than {MAX_KEYPAD} entries"),
        ));
    }
    let mut out = BTreeMap::new();
    for (keys, intent) in map {
        let field = format!("keypad.{keys}");
        let valid_keys = !keys.is_empty()
            && keys.len() <= 8
            && keys.bytes().all(|b| b.is_ascii_digit() || b == b'*');
        if !valid_keys {
            errors.push(FieldError::new(
                field.as_str(),
                "keys are 1 to 8 of 0-9 and * (a trailing # only submits them)",
            ));
            continue;
        }
        if let Some(intent) = label(intent, &field, MAX_LABEL_CHARS, errors) {
            out.insert(keys.clone(), intent);
        }
    }
    (errors.len() == before).then_some(out)
}

fn actions(v: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let Value::Array(items) = v else {
        errors.push(FieldError::new(
            field,
            format!("must be an array of custom action names, not {}", kind(v)),
        ));
        return None;
    };
    if items.is_empty() || items.len() > MAX_ACTIONS {
        errors.push(FieldError::new(
            field,
            format!("must name 1 to {MAX_ACTIONS} custom actions"),
        ));
        return None;
    }
    let before = errors.len();
    let names: Vec<String> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| label(item, &format!("{field}[{i}]"), MAX_LABEL_CHARS, errors))
        .collect();
    (errors.len() == before).then_some(names)
}

/// `transfer_targets`: E.164 numbers (premium rate and the like refused), each
/// named by its index when wrong; `[]` allows no transfer.
fn transfer_targets(v: &Value, errors: &mut Vec<FieldError>) -> Option<Vec<E164>> {
    let Value::Array(items) = v else {
        errors.push(FieldError::new(
            "transfer_targets",
            format!("must be an array of E.164 numbers, not {}", kind(v)),
        ));
        return None;
    };
    if items.len() > MAX_TRANSFER_TARGETS {
        errors.push(FieldError::new(
            "transfer_targets",
            format!("at most {MAX_TRANSFER_TARGETS} numbers"),
        ));
        return None;
    }
    let before = errors.len();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("transfer_targets[{i}]");
        match item.as_str().map(str::parse::<E164>) {
            Some(Ok(n)) if !out.contains(&n) => out.push(n),
            Some(Ok(_)) => errors.push(FieldError::new(field, "listed twice")),
            Some(Err(e)) => errors.push(FieldError::new(field, e.to_string())),
            None => errors.push(FieldError::new(
                field,
                format!("must be a string, not {}", kind(item)),
            )),
        }
    }
    (errors.len() == before).then_some(out)
}

/// The settings fields of a body. In an update, `"voice": null` clears the voice.
fn settings(
    obj: &Map<String, Value>,
    update: bool,
    errors: &mut Vec<FieldError>,
) -> SettingsChange {
    let mut s = SettingsChange::default();
    if let Some(v) = given(obj, "language")
        && let Some(code) = string(v, "language", errors)
    {
        match routee_language(code) {
            Ok(l) => s.language = Some(l),
            Err(e) => errors.push(FieldError::new("language", e.to_string())),
        }
    }
    match obj.get("voice") {
        Some(Value::Null) if update => s.gender = Some(None),
        None | Some(Value::Null) => {}
        Some(v) => {
            if let Some(voice) = string(v, "voice", errors) {
                match gender_for_voice(voice) {
                    Some(g) => s.gender = Some(Some(g)),
                    None => errors.push(FieldError::new(
                        "voice",
                        format!(
                            "unknown voice {voice:?}: use female, male or a known voice name \
                             (e.g. Polly.Joanna, en-US-GuyNeural)"
                        ),
                    )),
                }
            }
        }
    }
    if let Some(v) = given(obj, "keypad") {
        s.keypad = keypad(v, errors);
    }
    if let Some(v) = given(obj, "accept_actions") {
        s.accept_actions = actions(v, "accept_actions", errors);
    }
    if let Some(v) = given(obj, "reject_actions") {
        s.reject_actions = actions(v, "reject_actions", errors);
    }
    if let Some(v) = given(obj, "transfer_targets") {
        s.transfer_targets = transfer_targets(v, errors);
    }
    if let Some(v) = given(obj, "save_transcripts") {
        match v {
            Value::Bool(b) => s.save_transcripts = Some(*b),
            other => errors.push(FieldError::new(
                "save_transcripts",
                format!("must be true or false, not {}", kind(other)),
            )),
        }
    }
    if let Some(v) = given(obj, "streaming") {
        match v {
            Value::Bool(b) => s.streaming = Some(*b),
            other => errors.push(FieldError::new(
                "streaming",
                format!("must be true or false, not {}", kind(other)),
            )),
        }
    }
    s
}

/// `POST /v1/assistants`.
pub fn registration(body: &Value) -> Result<Registration, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = object(body, &mut errors) else {
        return Err(errors);
    };
    unknown_fields(obj, &ASSISTANT_FIELDS, &mut errors);
    let name = given(obj, "name").and_then(|v| name(v, &mut errors));
    let key = match given(obj, "api_key") {
        Some(v) => api_key(v, &mut errors),
        None => {
            errors.push(FieldError::new("api_key", "required"));
            None
        }
    };
    let version = match given(obj, "version") {
        Some(v) => version(v, &mut errors),
        None => {
            errors.push(FieldError::new(
                "version",
                "required: production, development or a version id",
            ));
            None
        }
    };
    let project_id = given(obj, "project_id").and_then(|v| project_id(v, &mut errors));
    let settings = settings(obj, false, &mut errors);
    match (key, version) {
        (Some(api_key), Some(version)) if errors.is_empty() => Ok(Registration {
            name,
            api_key,
            version,
            project_id,
            settings,
        }),
        _ => Err(errors),
    }
}

/// `PATCH /v1/assistants/{id}`: the same fields, all optional, at least one.
pub fn update(body: &Value) -> Result<AssistantUpdate, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = object(body, &mut errors) else {
        return Err(errors);
    };
    unknown_fields(obj, &ASSISTANT_FIELDS, &mut errors);
    let change = AssistantUpdate {
        name: given(obj, "name").and_then(|v| name(v, &mut errors)),
        api_key: given(obj, "api_key").and_then(|v| api_key(v, &mut errors)),
        version: given(obj, "version").and_then(|v| version(v, &mut errors)),
        project_id: given(obj, "project_id").and_then(|v| project_id(v, &mut errors)),
        settings: settings(obj, true, &mut errors),
    };
    // `null` keeps a field (only `"voice": null` changes something), so a body
    // of nulls changes nothing, like an empty one.
    let nothing = change.name.is_none()
        && change.api_key.is_none()
        && change.version.is_none()
        && change.project_id.is_none()
        && change.settings.is_empty();
    if errors.is_empty() && nothing {
        errors.push(FieldError::new(
            "body",
            format!(
                "nothing to change: give any of {} (null keeps a field, except voice)",
                ASSISTANT_FIELDS.join(", ")
            ),
        ));
    }
    if errors.is_empty() {
        Ok(change)
    } else {
        Err(errors)
    }
}

/// The `{session}` path segment.
pub fn session(raw: &str) -> Result<SessionName, Vec<FieldError>> {
    SessionName::try_from(raw).map_err(|e| vec![FieldError::new("session", e)])
}

/// A `{session}` segment that is not UTF-8 once percent-decoded.
pub fn session_not_utf8() -> Vec<FieldError> {
    vec![FieldError::new(
        "session",
        format!(
            "not UTF-8 once percent-decoded: a session name is 1 to {MAX_SESSION_CHARS} \
             letters, digits, `_` or `-`"
        ),
    )]
}

/// `POST .../launch`: an empty body, or `{"variables": {...}}`.
pub fn launch(body: &Value) -> Result<Input, Vec<FieldError>> {
    let mut errors = Vec::new();
    let empty = Map::new();
    let obj = match body {
        Value::Null => &empty,
        other => object(other, &mut errors).unwrap_or(&empty),
    };
    unknown_fields(obj, &["variables"], &mut errors);
    let variables = parse_variables(obj.get("variables"), &mut errors);
    match variables {
        Some(variables) if errors.is_empty() => Ok(Input::Launch { variables }),
        _ => Err(errors),
    }
}

/// `POST .../interact`: exactly one of `digits`, `text`, `no_reply`, `action`.
pub fn interact(body: &Value) -> Result<Input, Vec<FieldError>> {
    const FIELDS: [&str; 4] = ["digits", "text", "no_reply", "action"];
    let mut errors = Vec::new();
    let Some(obj) = object(body, &mut errors) else {
        return Err(errors);
    };
    unknown_fields(obj, &FIELDS, &mut errors);
    let present: Vec<&str> = FIELDS
        .into_iter()
        .filter(|f| obj.contains_key(*f))
        .collect();
    let input = match present.as_slice() {
        ["digits"] => digits(&obj["digits"], &mut errors),
        ["text"] => label(&obj["text"], "text", MAX_TEXT_CHARS, &mut errors).map(Input::Text),
        ["no_reply"] => match &obj["no_reply"] {
            Value::Bool(true) => Some(Input::NoReply),
            _ => {
                errors.push(FieldError::new(
                    "no_reply",
                    "must be true (the callee stayed silent)",
                ));
                None
            }
        },
        ["action"] => action(&obj["action"], &mut errors),
        _ => {
            errors.push(FieldError::new(
                "body",
                "give exactly one of digits, text, no_reply or action",
            ));
            None
        }
    };
    match input {
        Some(input) if errors.is_empty() => Ok(input),
        _ => Err(errors),
    }
}

fn digits(v: &Value, errors: &mut Vec<FieldError>) -> Option<Input> {
    let s = string(v, "digits", errors)?.trim();
    let valid = !s.is_empty()
        && s.len() <= MAX_DIGITS
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    if valid {
        Some(Input::Digits(s.to_owned()))
    } else {
        errors.push(FieldError::new(
            "digits",
            format!("1 to {MAX_DIGITS} keys of a phone keypad: 0-9, * and #"),
        ));
        None
    }
}

fn action(v: &Value, errors: &mut Vec<FieldError>) -> Option<Input> {
    let has_type = v
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.trim().is_empty());
    if v.is_object() && has_type {
        Some(Input::Action(v.clone()))
    } else {
        errors.push(FieldError::new(
            "action",
            "must be a Dialog Manager action: an object with a type, e.g. {\"type\": \"text\", \"payload\": \"hi\"}",
        ));
        None
    }
}

/// `PATCH .../variables`: the body is the flat object of variables.
pub fn variables(body: &Value) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if object(body, &mut errors).is_none() {
        return Err(errors);
    }
    match parse_variables(Some(body), &mut errors) {
        Some(vars) if vars.is_empty() => Err(vec![FieldError::new(
            "body",
            "nothing to change: give a flat object of variables, e.g. {\"ticket\": \"4711\"}",
        )]),
        Some(vars) if errors.is_empty() => Ok(vars),
        _ => Err(errors),
    }
}

/// `PUT .../transcript`: optional `device`, `os`, `browser`, `user_name`.
pub fn transcript(
    body: &Value,
    session: &SessionName,
) -> Result<TranscriptDetails, Vec<FieldError>> {
    const FIELDS: [&str; 4] = ["device", "os", "browser", "user_name"];
    let mut errors = Vec::new();
    let empty = Map::new();
    let obj = match body {
        Value::Null => &empty,
        other => object(other, &mut errors).unwrap_or(&empty),
    };
    unknown_fields(obj, &FIELDS, &mut errors);
    let mut details = TranscriptDetails::defaults(session);
    for (field, slot) in [
        ("device", &mut details.device),
        ("os", &mut details.os),
        ("browser", &mut details.browser),
        ("user_name", &mut details.user_name),
    ] {
        if let Some(v) = given(obj, field)
            && let Some(value) = label(v, field, MAX_LABEL_CHARS, &mut errors)
        {
            *slot = value;
        }
    }
    if errors.is_empty() {
        Ok(details)
    } else {
        Err(errors)
    }
}

/// A Voiceflow assistant to register.
// `POST /v1/assistants`, for the OpenAPI document: what [`registration`]
// accepts. Never deserialized (the parser reads the fields one by one); no
// stricter than the parser, as strict as OpenAPI 3.0 can say (what it cannot,
// such as a name that is not an id, is in the descriptions). Values are
// trimmed before they are checked, so the patterns allow surrounding blanks;
// every optional field also takes `null`, read as absent.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewAssistant)]
pub struct NewAssistantBody {
    #[schema(schema_with = name_schema)]
    pub name: Option<String>,
    /// A Voiceflow Dialog Manager API key. Checked with Voiceflow, stored
    /// encrypted, never shown again (only key_hint).
    #[schema(max_length = 512, pattern = r"^\s*VF\.DM\.\S*\s*$", write_only)]
    pub api_key: String,
    /// production, development or a 24-hex version id.
    #[schema(
        pattern = r"^\s*(production|development|[0-9a-fA-F]{24})\s*$",
        example = "production"
    )]
    pub version: String,
    /// The Voiceflow project id, so an alias version's metadata (project name
    /// and ids) can be read.
    #[schema(pattern = r"^\s*[0-9a-fA-F]{24}\s*$")]
    pub project_id: Option<String>,
    #[schema(schema_with = keypad_schema)]
    pub keypad: Option<BTreeMap<String, String>>,
    /// A locale that maps onto one of Routee's voices (en-AU is en-US); others
    /// are refused, naming what Routee speaks.
    #[schema(example = "en-GB")]
    pub language: Option<String>,
    /// female, male or a known voice name (Polly.Joanna, en-US-GuyNeural); null
    /// is no preference.
    #[schema(example = "female")]
    pub voice: Option<String>,
    #[schema(schema_with = accept_actions_schema)]
    pub accept_actions: Option<Vec<String>>,
    #[schema(schema_with = reject_actions_schema)]
    pub reject_actions: Option<Vec<String>>,
    /// Save every call's conversation to Voiceflow; needs the project and
    /// version ids.
    pub save_transcripts: Option<bool>,
    /// The only numbers a `transfer` custom action may dial (E.164, inside
    /// ALLOWED_DESTINATIONS); none by default, so no transfer.
    #[schema(max_items = 20, example = json!(["+306900000009"]))]
    pub transfer_targets: Option<Vec<String>>,
    /// Turns use Voiceflow's streaming interact (v2, Server-Sent Events): at
    /// Routee's deadline the traces received so far are answered, the rest at
    /// the next key press. Needs the project id. Default false.
    pub streaming: Option<bool>,
}

// `PATCH /v1/assistants/{id}`, for the OpenAPI document: what [`update`]
// accepts, as [`NewAssistantBody`] with every field optional.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = AssistantChange,
    min_properties = 1,
    description = "Any of the registration's fields; at least one that changes something \
                   (null keeps a field, except voice)."
)]
pub struct AssistantChangeBody {
    #[schema(schema_with = name_schema)]
    pub name: Option<String>,
    /// A new Voiceflow Dialog Manager API key (a rotation), checked with
    /// Voiceflow like a registration's.
    #[schema(max_length = 512, pattern = r"^\s*VF\.DM\.\S*\s*$", write_only)]
    pub api_key: Option<String>,
    /// production, development or a 24-hex version id.
    #[schema(
        pattern = r"^\s*(production|development|[0-9a-fA-F]{24})\s*$",
        example = "production"
    )]
    pub version: Option<String>,
    /// The Voiceflow project id, so an alias version's metadata (project name
    /// and ids) can be read.
    #[schema(pattern = r"^\s*[0-9a-fA-F]{24}\s*$")]
    pub project_id: Option<String>,
    #[schema(schema_with = keypad_schema)]
    pub keypad: Option<BTreeMap<String, String>>,
    /// A locale that maps onto one of Routee's voices (en-AU is en-US); others
    /// are refused, naming what Routee speaks.
    #[schema(example = "en-GB")]
    pub language: Option<String>,
    /// female, male or a known voice name (Polly.Joanna, en-US-GuyNeural); null
    /// goes back to Routee's default voice.
    #[schema(example = "female")]
    pub voice: Option<String>,
    #[schema(schema_with = accept_actions_schema)]
    pub accept_actions: Option<Vec<String>>,
    #[schema(schema_with = reject_actions_schema)]
    pub reject_actions: Option<Vec<String>>,
    /// Save every call's conversation to Voiceflow; needs the project and
    /// version ids.
    pub save_transcripts: Option<bool>,
    /// The only numbers a `transfer` custom action may dial (E.164, inside
    /// ALLOWED_DESTINATIONS); none by default, so no transfer.
    #[schema(max_items = 20, example = json!(["+306900000009"]))]
    pub transfer_targets: Option<Vec<String>>,
    /// Turns use Voiceflow's streaming interact (v2, Server-Sent Events): at
    /// Routee's deadline the traces received so far are answered, the rest at
    /// the next key press. Needs the project id. Default false.
    pub streaming: Option<bool>,
}

// `POST .../launch`, for the OpenAPI document: what [`launch`] accepts. The
// body may be empty or `null` (the annotation says `Option<SessionLaunch>`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SessionLaunch, description = "An empty body (or null) launches without variables.")]
pub struct SessionLaunchBody {
    #[schema(schema_with = launch_variables_schema)]
    pub variables: Option<Map<String, Value>>,
}

/// Who the saved transcript says the conversation was with.
// `PUT .../transcript`, for the OpenAPI document: what [`transcript`] accepts;
// every field is optional, and so is the body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TranscriptDetails)]
pub struct TranscriptBody {
    #[schema(schema_with = transcript_field_schema)]
    pub device: Option<String>,
    #[schema(schema_with = transcript_field_schema)]
    pub os: Option<String>,
    #[schema(schema_with = transcript_field_schema)]
    pub browser: Option<String>,
    #[schema(schema_with = transcript_field_schema)]
    pub user_name: Option<String>,
}

/// `POST .../interact`, for the OpenAPI document: exactly one of `digits`,
/// `text`, `no_reply`, `action`, as [`interact`] reads it.
pub struct SessionInputBody;

impl PartialSchema for SessionInputBody {
    fn schema() -> RefOr<Schema> {
        let one = |field: &str, schema: ObjectBuilder| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .required(field)
                .property(field, schema)
        };
        let digits = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(r"^\s*[0-9*#]{{1,{MAX_DIGITS}}}\s*$")))
            .description(Some(
                "Keys pressed, read as a call reads them (a trailing # only submits).",
            ));
        let no_reply = ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([true]))
            .description(Some(
                "The callee stayed silent: sent as a no-reply only when the previous turn \
                 sent a no-reply trace, else a 409.",
            ));
        let action = ObjectBuilder::new()
            .schema_type(Type::Object)
            .required("type")
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .description(Some("Not blank.")),
            )
            .description(Some("A raw Dialog Manager action, sent as it is."))
            .examples([json!({"type": "event", "payload": {"event": {"name": "escalate"}}})]);
        OneOfBuilder::new()
            .description(Some("Exactly one of digits, text, no_reply, action."))
            .item(one("digits", digits))
            .item(one(
                "text",
                label_schema(MAX_TEXT_CHARS, "What the callee said."),
            ))
            .item(one("no_reply", no_reply))
            .item(one("action", action))
            .into()
    }
}

impl ToSchema for SessionInputBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SessionInput")
    }
}

/// `PATCH .../variables`, for the OpenAPI document: the flat object of
/// variables [`variables`] accepts, at least one.
pub struct VariablesPatchBody;

impl PartialSchema for VariablesPatchBody {
    fn schema() -> RefOr<Schema> {
        let Schema::Object(mut variables) = variables_schema() else {
            return Schema::default().into();
        };
        variables.schema_type = Type::Object.into();
        variables.min_properties = Some(1);
        variables.description = Some(VARIABLE_NAMES.into());
        Schema::Object(variables).into()
    }
}

impl ToSchema for VariablesPatchBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("VariablesPatch")
    }
}

const VARIABLE_NAMES: &str = "A flat object: names are letters, digits and _ (not starting \
                              with a digit), at most 64; values strings, numbers or booleans.";

/// A short string the parser trims and bounds (as [`label`] reads it).
fn label_schema(max: usize, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .description(Some(format!(
            "{description} Not blank, no control characters; trimmed."
        )))
}

fn name_schema() -> Schema {
    nullable(
        label_schema(
            MAX_NAME_CHARS,
            "Unique; must not look like an assistant id (32 hex digits). Defaults to the \
             Voiceflow project's name.",
        )
        .into(),
    )
}

fn keypad_schema() -> Schema {
    let keypad = ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(MAX_KEYPAD))
        .additional_properties(Some(label_schema(MAX_LABEL_CHARS, "An intent name.")))
        .description(Some(
            "Keys (1 to 8 of 0-9 and *) to Voiceflow intent names, for digits that match no \
             menu button.",
        ))
        .examples([json!({"1": "accept", "2": "reject"})]);
    nullable(keypad.into())
}

fn actions_schema(default: &str) -> Schema {
    let actions = ArrayBuilder::new()
        .items(label_schema(MAX_LABEL_CHARS, "A custom action name."))
        .min_items(Some(1))
        .max_items(Some(MAX_ACTIONS))
        .description(Some(format!(
            "Custom action names that mean the callee decided (default {default})."
        )));
    nullable(actions.into())
}

fn accept_actions_schema() -> Schema {
    actions_schema("accept")
}

fn reject_actions_schema() -> Schema {
    actions_schema("reject")
}

fn launch_variables_schema() -> Schema {
    let mut variables = variables_schema();
    if let Schema::Object(object) = &mut variables {
        object.description = Some(
            "Put into state.variables before the launch. A call adds contact_name, \
             callout_name and attempt: pass them to mimic one. Names are letters, digits and \
             _ (not starting with a digit), at most 64."
                .into(),
        );
    }
    variables
}

fn transcript_field_schema() -> Schema {
    nullable(label_schema(MAX_LABEL_CHARS, "Shown in Voiceflow.").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(r: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_registration_names_every_bad_field() {
        let bad = json!({
            "name": "0123456789abcdef0123456789abcdef",
            "api_key": "sk-live-123",
            "version": "latest",
            "project_id": "nope",
            "keypad": {"1": "accept", "x": "reject", "2": ""},
            "language": "ja-JP",
            "voice": "Zorg",
            "accept_actions": [],
            "reject_actions": ["reject", 7],
            "save_transcripts": "yes",
            "colour": "blue"
        });
        let mut got = fields(registration(&bad));
        got.sort();
        assert_eq!(
            got,
            [
                "accept_actions",
                "api_key",
                "colour",
                "keypad.2",
                "keypad.x",
                "language",
                "name",
                "project_id",
                "reject_actions[1]",
                "save_transcripts",
                "version",
                "voice"
            ]
        );
    }

    #[test]
    fn a_bad_key_is_never_repeated_in_the_error() {
        let errors = registration(&json!({"api_key": "sk-secret-value", "version": "production"}))
            .err()
            .unwrap_or_default();
        assert!(!format!("{errors:?}").contains("sk-secret-value"));
    }

    #[test]
    fn a_good_registration_maps_locales_and_voices() {
        let r = registration(&json!({
            "api_key": " VF.DM.abc.def ", "version": "production",
            "language": "en-AU", "voice": "Polly.Joanna", "keypad": {"1": "accept"}
        }))
        .unwrap();
        assert_eq!(r.api_key.expose(), "VF.DM.abc.def");
        assert_eq!(r.settings.language, Some(crate::routee::Language::EnUs));
        assert_eq!(r.settings.gender, Some(Some(crate::routee::Gender::Female)));
    }

    #[test]
    fn an_update_needs_something_to_change_and_may_clear_the_voice() {
        assert_eq!(fields(update(&json!({}))), ["body"]);
        assert_eq!(
            fields(update(&json!({"name": null, "keypad": null}))),
            ["body"]
        );
        let u = update(&json!({"voice": null})).unwrap();
        assert_eq!(u.settings.gender, Some(None));
    }

    #[test]
    fn interact_takes_exactly_one_input() {
        assert_eq!(fields(interact(&json!({}))), ["body"]);
        assert_eq!(
            fields(interact(&json!({"digits": "1", "text": "yes"}))),
            ["body"]
        );
        assert_eq!(fields(interact(&json!({"digits": "12a"}))), ["digits"]);
        assert_eq!(fields(interact(&json!({"no_reply": false}))), ["no_reply"]);
        assert_eq!(
            fields(interact(&json!({"action": {"payload": 1}}))),
            ["action"]
        );
        assert_eq!(
            interact(&json!({"digits": "1#"})).unwrap(),
            Input::Digits("1#".into())
        );
    }

    #[test]
    fn variables_are_a_flat_object() {
        assert_eq!(
            fields(variables(&json!({"ok": 1, "nested": {"a": 1}}))),
            ["variables.nested"]
        );
        assert_eq!(fields(variables(&json!({}))), ["body"]);
        assert!(variables(&json!({"ticket": "4711"})).is_ok());
    }
}
