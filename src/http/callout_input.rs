//! Parsing a callout request (JSON, or CSV contacts plus a JSON part) into the
//! domain's [`NewCallout`], collecting *every* problem as a [`FieldError`] named by
//! its path (`contacts[3].phone: not an E.164 number`), so a dispatcher fixes a
//! call list in one round. Nothing is created unless there are no problems.
//!
//! Fields are read by hand from a `serde_json::Value` rather than derived, because
//! a derived deserializer stops at the first error.

use std::collections::HashMap;

use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use super::error::MAX_DETAILS;
use super::openapi::nullable;
use crate::dialplan::language::routee_language;
use crate::dialplan::template::Templates;
use crate::domain::{Contact, Destinations, E164, FieldError, Policy, PolicyInput};
use crate::engine::view::{policy_schema, scalar_schema};

/// Longest callout or contact name.
pub const MAX_NAME_CHARS: usize = 200;
/// Most variables per callout, longest variable value.
pub const MAX_VARIABLES: usize = 64;
pub const MAX_VARIABLE_CHARS: usize = 1000;

/// Limits and lookups the parser needs.
pub struct InputRules<'a> {
    pub templates: &'a Templates,
    pub max_contacts: usize,
    pub allow_private_urls: bool,
    pub default_policy: Policy,
    /// `ALLOWED_DESTINATIONS`.
    pub destinations: &'a Destinations,
}

/// Where the conversation comes from, before the assistant is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptRef {
    Template(String),
    /// An assistant id or name.
    Assistant(String),
}

/// A request that passed every check that needs no IO.
#[derive(Debug, Clone)]
pub struct Draft {
    pub name: String,
    pub script: ScriptRef,
    pub variables: Map<String, Value>,
    /// Empty when the callout names a `team` (whose contacts are copied in
    /// when it is looked up).
    pub contacts: Vec<Contact>,
    /// A team's id or name, instead of contacts.
    pub team: Option<String>,
    pub policy: Policy,
    pub notify_url: Option<String>,
}

const TOP_FIELDS: [&str; 8] = [
    "name",
    "dialplan",
    "assistant",
    "variables",
    "contacts",
    "team",
    "policy",
    "notify_url",
];

/// How a problem names a field the client called `key`: as written, except that
/// an empty name is shown as `""` (an empty `field` would name nothing).
pub fn field_name(key: &str) -> String {
    if key.is_empty() {
        "\"\"".to_owned()
    } else {
        key.to_owned()
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

pub(crate) fn name_field(
    v: Option<&Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match v {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field, "required"));
            None
        }
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                errors.push(FieldError::new(field, "must not be empty"));
                None
            } else if s.chars().count() > MAX_NAME_CHARS {
                errors.push(FieldError::new(
                    field,
                    format!("longer than {MAX_NAME_CHARS} characters"),
                ));
                None
            } else if has_control_chars(s) {
                errors.push(FieldError::new(
                    field,
                    "must not contain control characters",
                ));
                None
            } else {
                Some(s.to_owned())
            }
        }
        Some(other) => {
            errors.push(FieldError::new(
                field,
                format!("must be a string, not {}", kind(other)),
            ));
            None
        }
    }
}

/// Parses the JSON body (or the `callout` part of a CSV upload when `csv_contacts`
/// is given; then `contacts` must not be in the JSON).
pub fn parse(
    body: &Value,
    csv_contacts: Option<Vec<RawContact>>,
    rules: &InputRules<'_>,
) -> Result<Draft, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Value::Object(obj) = body else {
        return Err(vec![FieldError::new(
            "body",
            format!("must be a JSON object, not {}", kind(body)),
        )]);
    };
    for key in obj.keys() {
        if !TOP_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                field_name(key),
                format!("unknown field (expected one of {})", TOP_FIELDS.join(", ")),
            ));
        }
    }
    let name = name_field(obj.get("name"), "name", &mut errors);

    let dialplan = opt_string(obj.get("dialplan"), "dialplan", &mut errors);
    let assistant = opt_string(obj.get("assistant"), "assistant", &mut errors);
    let script = match (dialplan, assistant) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "assistant",
                "give exactly one of dialplan or assistant, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError::new(
                "dialplan",
                "exactly one of dialplan (a template name) or assistant is required",
            ));
            None
        }
        (Some(t), None) => {
            if rules.templates.get(&t).is_none() {
                let known: Vec<&str> = rules.templates.names().collect();
                errors.push(FieldError::new(
                    "dialplan",
                    format!("unknown template {t:?} (available: {})", known.join(", ")),
                ));
                None
            } else {
                Some(ScriptRef::Template(t))
            }
        }
        (None, Some(a)) => Some(ScriptRef::Assistant(a)),
    };

    let variables = parse_variables(obj.get("variables"), &mut errors);
    if let (Some(ScriptRef::Template(t)), Some(vars)) = (&script, &variables)
        && let Some(template) = rules.templates.get(t)
    {
        for missing in template
            .required_variables()
            .iter()
            .filter(|v| !vars.contains_key(*v))
        {
            errors.push(FieldError::new(
                format!("variables.{missing}"),
                format!("required by template {t:?}"),
            ));
        }
    }

    let team = opt_string(obj.get("team"), "team", &mut errors);
    let contacts = if team.is_some() {
        if csv_contacts.is_some() || obj.contains_key("contacts") {
            errors.push(FieldError::new("team", "give contacts or a team, not both"));
        }
        Some(Vec::new())
    } else {
        contacts_field(csv_contacts, obj.get("contacts"), rules, &mut errors)
    };

    let policy = match obj.get("policy") {
        None | Some(Value::Null) => Some(rules.default_policy),
        Some(Value::Object(_)) => {
            parse_policy(obj.get("policy"), rules.default_policy, &mut errors)
        }
        Some(other) => {
            errors.push(FieldError::new(
                "policy",
                format!("must be an object, not {}", kind(other)),
            ));
            None
        }
    };

    // A team's contacts are known when it is looked up (`team_contacts`).
    if let (Some(rows), Some(p), None) = (&contacts, &policy, &team) {
        needed_field(p.needed, rows.len(), "contacts listed", &mut errors);
    }

    let notify_url = opt_string(obj.get("notify_url"), "notify_url", &mut errors).and_then(|u| {
        match crate::net::check_outbound_url(&u, rules.allow_private_urls) {
            Ok(url) => Some(url.to_string()),
            Err(e) => {
                errors.push(FieldError::new("notify_url", e));
                None
            }
        }
    });

    match (name, script, variables, contacts, policy) {
        (Some(name), Some(script), Some(variables), Some(contacts), Some(policy))
            if errors.is_empty() =>
        {
            Ok(Draft {
                name,
                script,
                variables,
                contacts,
                team,
                policy,
                notify_url,
            })
        }
        _ => Err(errors),
    }
}

/// The `contacts` of a request: a CSV file's rows (`csv_contacts`) or the JSON
/// array `json`, checked (what callouts and teams both read).
pub(crate) fn contacts_field(
    csv_contacts: Option<Vec<RawContact>>,
    json: Option<&Value>,
    rules: &InputRules<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<Contact>> {
    let rows = match (csv_contacts, json) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "contacts",
                "given both as a CSV file and in the JSON part; give one",
            ));
            None
        }
        (Some(rows), None) => Some(rows),
        // Too many is one problem, not one per item: checking each of a million
        // items would only bury that problem under a million others.
        (None, Some(Value::Array(items))) if items.len() > rules.max_contacts => {
            errors.push(too_many_contacts(items.len(), rules.max_contacts));
            None
        }
        (None, Some(Value::Array(items))) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| RawContact::from_json(item, i, errors))
                .collect(),
        ),
        (None, Some(other)) => {
            errors.push(FieldError::new(
                "contacts",
                format!("must be an array, not {}", kind(other)),
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError::new(
                "contacts",
                "required: at least one contact (or a team)",
            ));
            None
        }
    };
    rows.map(|rows| check_contacts(rows, rules, errors))
}

/// A team's contacts copied into a callout, checked again against the rules in
/// force now (`ALLOWED_DESTINATIONS` or `MAX_CONTACTS` may have changed since
/// the team was saved): each refusal names the team's contact.
pub fn team_contacts(
    team: &crate::domain::Team,
    needed: u32,
    rules: &InputRules<'_>,
) -> Result<Vec<Contact>, Vec<FieldError>> {
    let mut errors = Vec::new();
    needed_field(
        needed,
        team.contacts.len(),
        "contacts in the team",
        &mut errors,
    );
    if team.contacts.len() > rules.max_contacts {
        errors.push(FieldError::new(
            "team",
            format!(
                "team {:?} has {} contacts; at most {} per callout (MAX_CONTACTS)",
                team.name,
                team.contacts.len(),
                rules.max_contacts
            ),
        ));
    }
    for (i, c) in team.contacts.iter().enumerate() {
        if !rules.destinations.allows(&c.phone) {
            errors.push(FieldError::new(
                "team",
                format!(
                    "team {:?} contacts[{i}].phone is outside the destinations this gateway may call (ALLOWED_DESTINATIONS)",
                    team.name
                ),
            ));
        }
    }
    if team.contacts.is_empty() {
        errors.push(FieldError::new(
            "team",
            format!("team {:?} has no contacts", team.name),
        ));
    }
    if errors.is_empty() {
        Ok(team.contacts.clone())
    } else {
        Err(errors)
    }
}

/// `policy.needed` cannot ask for more people than the callout will call.
fn needed_field(needed: u32, contacts: usize, what: &str, errors: &mut Vec<FieldError>) {
    if needed as usize > contacts {
        errors.push(FieldError::new(
            "policy.needed",
            format!("{needed} people needed but {contacts} {what}"),
        ));
    }
}

fn opt_string(v: Option<&Value>, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::String(_)) => {
            errors.push(FieldError::new(field, "must not be empty"));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                field,
                format!("must be a string, not {}", kind(other)),
            ));
            None
        }
    }
}

fn valid_variable_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && k.len() <= 64
}

/// A flat object of variables (the callout's, and the conversation tools').
pub(crate) fn parse_variables(
    v: Option<&Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Map<String, Value>> {
    let obj = match v {
        None | Some(Value::Null) => return Some(Map::new()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            errors.push(FieldError::new(
                "variables",
                format!("must be an object, not {}", kind(other)),
            ));
            return None;
        }
    };
    let before = errors.len();
    if obj.len() > MAX_VARIABLES {
        errors.push(FieldError::new(
            "variables",
            format!("more than {MAX_VARIABLES} variables"),
        ));
    }
    for (k, val) in obj {
        let field = format!("variables.{k}");
        if !valid_variable_name(k) {
            errors.push(FieldError::new(
                field,
                "names are letters, digits and _ (not starting with a digit), at most 64",
            ));
            continue;
        }
        match val {
            Value::String(s) if s.chars().count() > MAX_VARIABLE_CHARS => {
                errors.push(FieldError::new(
                    field,
                    format!("longer than {MAX_VARIABLE_CHARS} characters"),
                ));
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
            other => errors.push(FieldError::new(
                field,
                format!("must be a string, number or boolean, not {}", kind(other)),
            )),
        }
    }
    (errors.len() == before).then(|| obj.clone())
}

fn parse_policy(
    v: Option<&Value>,
    defaults: Policy,
    errors: &mut Vec<FieldError>,
) -> Option<Policy> {
    let Some(Value::Object(obj)) = v else {
        return Some(defaults);
    };
    let mut input = PolicyInput::default();
    let before = errors.len();
    for (k, val) in obj {
        if k == "voicemail_message" {
            match val.as_bool() {
                Some(b) => input.voicemail_message = Some(b),
                None => errors.push(FieldError::new(
                    "policy.voicemail_message",
                    "must be true or false",
                )),
            }
            continue;
        }
        let slot = match k.as_str() {
            "attempts_per_contact" => &mut input.attempts_per_contact,
            "retry_delay_s" => &mut input.retry_delay_s,
            "input_timeout_s" => &mut input.input_timeout_s,
            "reprompts" => &mut input.reprompts,
            "ring_timeout_s" => &mut input.ring_timeout_s,
            "max_call_s" => &mut input.max_call_s,
            "needed" => &mut input.needed,
            "parallel" => &mut input.parallel,
            "rounds" => &mut input.rounds,
            "round_delay_s" => &mut input.round_delay_s,
            _ => {
                errors.push(FieldError::new(
                    format!("policy.{k}"),
                    "unknown policy field",
                ));
                continue;
            }
        };
        match val.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => *slot = Some(n),
            None => errors.push(FieldError::new(
                format!("policy.{k}"),
                "must be a whole number of 0 or more",
            )),
        }
    }
    // Bounds are checked even when another policy field was refused, so every
    // problem is named in one answer.
    let had_errors = errors.len() > before;
    match input.resolve(defaults) {
        Ok(p) if !had_errors => Some(p),
        Ok(_) => None,
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    }
}

/// A contact as given, before checks. `line` is set for CSV rows.
#[derive(Debug, Clone, Default)]
pub struct RawContact {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub language: Option<String>,
    pub line: Option<usize>,
    /// Fields already reported as the wrong type (not reported again as missing).
    pub wrong_type: Vec<&'static str>,
}

impl RawContact {
    pub(crate) fn from_json(v: &Value, i: usize, errors: &mut Vec<FieldError>) -> RawContact {
        let Value::Object(o) = v else {
            errors.push(FieldError::new(
                format!("contacts[{i}]"),
                format!("must be an object, not {}", kind(v)),
            ));
            return RawContact::default();
        };
        for k in o.keys() {
            if !["name", "phone", "language"].contains(&k.as_str()) {
                errors.push(FieldError::new(
                    format!("contacts[{i}].{k}"),
                    "unknown field (expected name, phone, language)",
                ));
            }
        }
        let mut wrong_type = Vec::new();
        let mut text = |key: &'static str, errors: &mut Vec<FieldError>| match o.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(FieldError::new(
                    format!("contacts[{i}].{key}"),
                    format!("must be a string, not {}", kind(other)),
                ));
                wrong_type.push(key);
                None
            }
        };
        let (name, phone, language) = (
            text("name", errors),
            text("phone", errors),
            text("language", errors),
        );
        RawContact {
            name,
            phone,
            language,
            line: None,
            wrong_type,
        }
    }
}

fn too_many_contacts(count: usize, max: usize) -> FieldError {
    FieldError::new(
        "contacts",
        format!("{count} contacts; at most {max} per callout (MAX_CONTACTS)"),
    )
}

fn check_contacts(
    rows: Vec<RawContact>,
    rules: &InputRules<'_>,
    errors: &mut Vec<FieldError>,
) -> Vec<Contact> {
    let max = rules.max_contacts;
    if rows.is_empty() {
        errors.push(FieldError::new(
            "contacts",
            "at least one contact is required",
        ));
        return Vec::new();
    }
    if rows.len() > max {
        errors.push(too_many_contacts(rows.len(), max));
        return Vec::new();
    }
    let mut seen: HashMap<E164, usize> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let at = |field: &str| format!("contacts[{i}].{field}");
        let line = row.line.map(|l| format!("line {l}: ")).unwrap_or_default();
        let wrong = |field: &str| row.wrong_type.contains(&field);
        let name = if wrong("name") {
            None
        } else {
            name_field(
                row.name.clone().map(Value::String).as_ref(),
                &at("name"),
                errors,
            )
        };
        let phone = match row.phone.as_deref().map(str::trim) {
            None if wrong("phone") => None,
            None | Some("") => {
                errors.push(FieldError::new(at("phone"), format!("{line}required")));
                None
            }
            Some(p) => match p.parse::<E164>() {
                Ok(n) if !rules.destinations.allows(&n) => {
                    errors.push(FieldError::new(
                        at("phone"),
                        format!("{line}outside the destinations this gateway may call (ALLOWED_DESTINATIONS)"),
                    ));
                    None
                }
                Ok(n) => {
                    if let Some(first) = seen.get(&n) {
                        errors.push(FieldError::new(
                            at("phone"),
                            format!("{line}duplicate of contacts[{first}]"),
                        ));
                        None
                    } else {
                        seen.insert(n.clone(), i);
                        Some(n)
                    }
                }
                Err(e) => {
                    errors.push(FieldError::new(at("phone"), format!("{line}{e}")));
                    None
                }
            },
        };
        let language = match row.language.as_deref().map(str::trim) {
            None if wrong("language") => None,
            None | Some("") => Some(None),
            Some(l) => match routee_language(l) {
                Ok(lang) => Some(Some(lang)),
                Err(e) => {
                    errors.push(FieldError::new(at("language"), format!("{line}{e}")));
                    None
                }
            },
        };
        if let (Some(name), Some(phone), Some(language)) = (name, phone, language) {
            out.push(Contact {
                name,
                phone,
                language,
            });
        }
    }
    out
}

/// A CSV cell, read back from a file a spreadsheet-safe export wrote (a `'`
/// before a formula character is dropped: `'+3069...` is `+3069...`).
fn cell(record: &csv::StringRecord, col: Option<usize>) -> Option<String> {
    col.and_then(|c| record.get(c))
        .map(|v| crate::domain::team::unescape_spreadsheet_cell(v).to_owned())
}

/// Reads a CSV call list: a header row with `name` and `phone` (and optionally
/// `language`), then one contact per row. A cell written by an export that
/// escapes formulas (`'=...`, `'+...`) is read without its escape.
pub fn parse_csv(bytes: &[u8], max_contacts: usize) -> Result<Vec<RawContact>, Vec<FieldError>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        vec![FieldError::new(
            "contacts",
            format!("the CSV file is not UTF-8 text (byte {})", e.valid_up_to()),
        )]
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| {
            vec![FieldError::new(
                "contacts",
                format!("the CSV header row cannot be read: {e}"),
            )]
        })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(name_col), Some(phone_col)) = (col("name"), col("phone")) else {
        return Err(vec![FieldError::new(
            "contacts",
            "the CSV header row must have the columns name and phone (and optionally language)",
        )]);
    };
    let language_col = col("language");
    let mut errors = Vec::new();
    for h in headers.iter() {
        if !["name", "phone", "language"]
            .iter()
            .any(|k| h.eq_ignore_ascii_case(k))
        {
            errors.push(FieldError::new(
                "contacts",
                format!("unknown CSV column {h:?} (expected name, phone, language)"),
            ));
        }
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        if rows.len() >= max_contacts {
            errors.push(FieldError::new("contacts", format!("more than {max_contacts} contacts; at most {max_contacts} per callout (MAX_CONTACTS)")));
            break;
        }
        match record {
            Ok(r) => rows.push(RawContact {
                wrong_type: Vec::new(),
                name: cell(&r, Some(name_col)),
                phone: cell(&r, Some(phone_col)),
                language: cell(&r, language_col),
                line: r.position().map(|p| p.line() as usize),
            }),
            Err(e) => errors.push(FieldError::new(
                format!("contacts[{i}]"),
                format!("line {}: {e}", i + 2),
            )),
        }
        // A file of nothing but broken rows stops being read once the answer
        // could not list more of them anyway.
        if errors.len() > MAX_DETAILS {
            break;
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

// `POST /v1/callouts` as JSON, for the OpenAPI document: what [`parse`]
// accepts. Never deserialized (the parser reads the fields one by one); its
// bounds are this module's constants (`contacts`' `maxItems` is filled in
// from `MAX_CONTACTS` when the document is served), which
// `openapi::tests::the_documented_bounds_are_the_parsers` checks.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = NewCallout,
    description = "Exactly one of dialplan or assistant; exactly one of contacts or team."
)]
pub struct NewCalloutBody {
    #[schema(min_length = 1, max_length = 200, example = "Ticket 4711")]
    pub name: String,
    /// A template name (dialplans/).
    #[schema(example = "ticket-escalation")]
    pub dialplan: Option<String>,
    /// A registered assistant's id or name.
    pub assistant: Option<String>,
    #[schema(schema_with = variables_schema)]
    pub variables: Option<Map<String, Value>>,
    #[schema(min_items = 1, nullable = false)]
    pub contacts: Option<Vec<NewContactBody>>,
    /// A saved team's id or name: its contacts are copied into the callout
    /// now, so later changes to the team do not change this callout. `null`
    /// is none, as for `dialplan` and `assistant`.
    #[schema(min_length = 1, example = "linemen")]
    pub team: Option<String>,
    #[schema(schema_with = policy_input_schema)]
    pub policy: Option<PolicyInput>,
    /// http(s); POSTed the final state, signed: X-Ivr-Signature `t=<unix>,v1=<hex>`,
    /// the hex HMAC-SHA256 keyed by NOTIFY_SECRET over `<unix>.<body>`; receivers
    /// refuse a t more than 300 s from their clock. Internal addresses are
    /// refused unless ALLOW_PRIVATE_URLS.
    pub notify_url: Option<String>,
}

/// One contact of a JSON callout.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewContact)]
pub struct NewContactBody {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// E.164: + and the country code, digits (spaces, - . ( ) allowed).
    #[schema(example = "+306900000001")]
    pub phone: String,
    /// A Routee voice (en-US, el-GR...) or a locale mapped to one.
    #[schema(example = "el-GR")]
    pub language: Option<String>,
}

/// The `{id}` of a callout's paths, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CalloutPath {
    /// A callout id: 32 lowercase hex digits. Anything else is a 404.
    pub id: String,
}

/// A callout whose call list is a CSV file.
#[derive(ToSchema)]
pub struct CalloutUpload {
    /// The call list as CSV (UTF-8): a header row with name and phone (and
    /// optionally language), then one contact per row.
    #[schema(value_type = String, format = Binary)]
    pub contacts: Vec<u8>,
    /// The JSON of NewCallout without contacts.
    #[schema(nullable = false)]
    pub callout: Option<String>,
}

/// A request's variables: at most [`MAX_VARIABLES`], each value a scalar of at
/// most [`MAX_VARIABLE_CHARS`]; `null` is none.
pub fn variables_schema() -> Schema {
    let variables = ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(MAX_VARIABLES))
        .additional_properties(Some(scalar_schema(Some(MAX_VARIABLE_CHARS))))
        .examples([serde_json::json!({"ticket": "Server room 2 is flooding"})]);
    nullable(variables.into())
}

/// A request's policy: any of the fields, each within its bounds; `null` is the
/// defaults.
fn policy_input_schema() -> Schema {
    nullable(policy_schema(false))
}
