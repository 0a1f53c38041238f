//! The assistants API in `GET /openapi.json`: the registry (`/v1/assistants`,
//! `/v1/assistants/{id}`) and the conversation tools
//! (`/v1/assistants/{id}/sessions/{session}/...`), as `http/assistants.rs`
//! answers and `http/assistant_input.rs` reads.
//!
//! Request schemas are never stricter than the parsers: a body the gateway
//! accepts must validate, or a generated "invalid" example that is accepted
//! fails schemathesis' negative checks. They are as strict as OpenAPI 3.0 can
//! say (bounds, patterns, `additionalProperties: false` where unknown fields
//! are refused); what it cannot say (a name that is not an id, keypad keys,
//! variable names) is in the descriptions. Every optional field also takes
//! `null`, which the parsers read as absent. Values are trimmed before they are
//! checked, so the patterns allow surrounding whitespace.
//!
//! Voiceflow's failures are the upstream's, not the gateway's: 502, 503
//! (`voiceflow_rate_limited`) and 504, each with a `voiceflow_*` code, which
//! `.ci/schemathesis` accepts where documented (and nothing else of the 5xx).

use serde_json::{Map, Value, json};

use super::{error_response, reference, scalar, timestamp};
use crate::assistants::tools::MAX_SESSION_CHARS;
use crate::http::assistant_input::{
    MAX_ACTIONS, MAX_DIGITS, MAX_KEY_CHARS, MAX_KEYPAD, MAX_LABEL_CHARS, MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
};
use crate::http::callout_input::MAX_VARIABLES;
use crate::routee::Language;

/// Which role an operation needs, for its description and `x-required-role`.
#[derive(Clone, Copy)]
enum Role {
    /// Dispatcher or admin: a dispatcher key can never be a 403.
    Dispatcher,
    Admin,
}

/// One operation: its id, summary, description, role, body and answers.
struct Op {
    id: &'static str,
    summary: &'static str,
    description: &'static str,
    role: Role,
    body: Option<Value>,
    responses: Vec<(&'static str, Value)>,
}

impl Op {
    fn build(self) -> Value {
        let (role, needs) = match self.role {
            Role::Dispatcher => ("dispatcher", "Needs the dispatcher or admin role."),
            Role::Admin => ("admin", "Needs the admin role: a dispatcher key is a 403."),
        };
        let mut responses = Map::new();
        responses.insert("401".into(), reference("Unauthorized"));
        if matches!(self.role, Role::Admin) {
            responses.insert("403".into(), reference("Forbidden"));
        }
        for (status, response) in self.responses {
            responses.insert(status.into(), response);
        }
        let mut op = json!({
            "operationId": self.id,
            "tags": ["assistants"],
            "summary": self.summary,
            "description": format!("{} {needs}", self.description),
            "x-required-role": role,
            "responses": responses,
        });
        if let Some(body) = self.body {
            op["requestBody"] = body;
        }
        op
    }
}

fn json_body(required: bool, schema: &str, example: Value) -> Value {
    let mut content = json!({"schema": {"$ref": format!("#/components/schemas/{schema}")}});
    content["example"] = example;
    json!({"required": required, "content": {"application/json": content}})
}

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// The answers every operation that asks Voiceflow can give when Voiceflow fails.
fn upstream() -> [(&'static str, Value); 3] {
    [
        ("502", reference("VoiceflowFailed")),
        ("503", reference("UnavailableOrRateLimited")),
        ("504", reference("VoiceflowTimeout")),
    ]
}

/// 400 of a body that is not JSON, and 413.
fn unreadable(voiceflow_too: bool) -> [(&'static str, Value); 2] {
    let bad = if voiceflow_too {
        reference("BadRequestOrRefused")
    } else {
        reference("BadRequest")
    };
    [
        ("400", bad),
        (
            "413",
            error_response("The body is larger than MAX_BODY_BYTES (code payload_too_large)."),
        ),
    ]
}

pub(super) fn paths() -> Map<String, Value> {
    let mut paths = Map::new();
    paths.insert("/v1/assistants".into(), registry());
    paths.insert("/v1/assistants/{id}".into(), assistant());
    for (tool, item) in tools() {
        paths.insert(
            format!("/v1/assistants/{{id}}/sessions/{{session}}/{tool}"),
            item,
        );
    }
    paths
}

fn assistant_links() -> Value {
    let id = json!({"id": "$response.body#/id"});
    json!({
        "GetAssistant": {"operationId": "getAssistant", "parameters": id},
        "UpdateAssistant": {"operationId": "updateAssistant", "parameters": id},
        "DeleteAssistant": {"operationId": "deleteAssistant", "parameters": id},
        "LaunchSession": {"operationId": "launchSession", "parameters": id}
    })
}

fn registry() -> Value {
    let mut created = ok(
        "Registered. The assistant (never its key: only key_hint), with warnings when \
         Voiceflow's project metadata could not be read.",
        "Assistant",
    );
    created["headers"] =
        json!({"Location": {"schema": {"type": "string"}, "description": "/v1/assistants/{id}"}});
    created["links"] = assistant_links();
    let mut responses = vec![
        ("201", created),
        (
            "409",
            error_response("Another assistant has this name (code name_taken)."),
        ),
        (
            "422",
            error_response(
                "Every bad field in details, Voiceflow's verdict included: the key refused \
                 (api_key), the version unusable (version), project_id not the key's project, \
                 name required when Voiceflow's metadata is unavailable, save_transcripts \
                 without known project and version ids.",
            ),
        ),
    ];
    responses.extend(unreadable(false));
    responses.extend(upstream());
    let register = Op {
        id: "registerAssistant",
        summary: "Register a Voiceflow assistant",
        description: "Checks the key and version with Voiceflow, reads the version's project \
                      metadata, and stores the key encrypted. Nothing is stored on any error.",
        role: Role::Admin,
        body: Some(json_body(
            true,
            "NewAssistant",
            json!({
                "name": "ticket-bot",
                "api_key": "VF.DM.0123456789abcdef01234567.ExampleKeyOnly",
                "version": "production",
                "keypad": {"1": "accept", "2": "reject"},
                "language": "en-GB",
                "voice": "female"
            }),
        )),
        responses,
    };
    let list = Op {
        id: "listAssistants",
        summary: "List the registered assistants, oldest first",
        description: "No answer holds a key: only its last four characters.",
        role: Role::Dispatcher,
        body: None,
        responses: vec![
            ("200", ok("The assistants.", "AssistantList")),
            ("503", reference("Unavailable")),
        ],
    };
    json!({"post": register.build(), "get": list.build()})
}

fn assistant() -> Value {
    let get = Op {
        id: "getAssistant",
        summary: "An assistant, by id or name",
        description: "No answer holds a key: only its last four characters.",
        role: Role::Dispatcher,
        body: None,
        responses: vec![
            ("200", ok("The assistant.", "Assistant")),
            ("404", reference("AssistantNotFound")),
            ("503", reference("Unavailable")),
        ],
    };
    let mut responses = vec![
        (
            "200",
            ok(
                "Updated: the assistant as it is now, with warnings when Voiceflow's \
                 metadata could not be read.",
                "Assistant",
            ),
        ),
        ("404", reference("AssistantNotFound")),
        (
            "409",
            error_response(
                "Another assistant has the name (name_taken), the assistant changed meanwhile \
                 (changed_concurrently: read it and retry), or its stored key no longer \
                 decrypts and must be given again (stored_key_unusable).",
            ),
        ),
        (
            "422",
            error_response(
                "Every bad field in details, as for a registration; nothing to change (body).",
            ),
        ),
    ];
    responses.extend(unreadable(false));
    responses.extend(upstream());
    let update = Op {
        id: "updateAssistant",
        summary: "Change an assistant, or rotate its key",
        description: "Any of the registration's fields; the others are kept. A new api_key, \
                      version or project_id is checked with Voiceflow like a registration. \
                      Nothing changes on any error.",
        role: Role::Admin,
        body: Some(json_body(
            true,
            "AssistantChange",
            json!({"language": "el-GR", "voice": null}),
        )),
        responses,
    };
    let delete = Op {
        id: "deleteAssistant",
        summary: "Delete an assistant (only the gateway's record, nothing in Voiceflow)",
        description: "Refused while callouts that are still calling use it.",
        role: Role::Admin,
        body: None,
        responses: vec![
            ("204", json!({"description": "Deleted."})),
            ("404", reference("AssistantNotFound")),
            (
                "409",
                error_response(
                    "Running callouts use the assistant (code assistant_in_use): cancel them \
                     or let them finish.",
                ),
            ),
            ("503", reference("Unavailable")),
        ],
    };
    // `{id}` of a delete has no example: the examples phase of a fuzzer would
    // otherwise delete the assistant every other example uses.
    let mut delete = delete.build();
    delete["parameters"] = json!([{"$ref": "#/components/parameters/AssistantIdNoExample"}]);
    let mut get = get.build();
    get["parameters"] = json!([{"$ref": "#/components/parameters/AssistantId"}]);
    let mut update = update.build();
    update["parameters"] = json!([{"$ref": "#/components/parameters/AssistantId"}]);
    json!({"get": get, "patch": update, "delete": delete})
}

/// The errors of every tool: the session, the assistant, its stored key, Voiceflow.
fn tool_errors(conflicts: &'static str, body: bool) -> Vec<(&'static str, Value)> {
    let mut responses = vec![
        ("404", reference("AssistantNotFound")),
        ("409", error_response(conflicts)),
        (
            "422",
            error_response(
                "The session name (session) or the body is wrong: every bad field in details.",
            ),
        ),
    ];
    if body {
        responses.extend(unreadable(true));
    } else {
        responses.push(("400", reference("Refused")));
    }
    responses.extend(upstream());
    responses
}

const KEY_CONFLICT: &str = "The assistant's stored key no longer decrypts with GATEWAY_SECRET \
                            (code stored_key_unusable): give it again with PATCH.";

fn tools() -> Vec<(&'static str, Value)> {
    let turn_links = json!({
        "Interact": {"operationId": "interactSession", "parameters": {"id": "$request.path.id", "session": "$response.body#/session"}},
        "GetState": {"operationId": "getSessionState", "parameters": {"id": "$request.path.id", "session": "$response.body#/session"}}
    });
    let mut turn = ok(
        "The turn: Voiceflow's answers and the dialplan a call would get.",
        "TurnReport",
    );
    turn["links"] = turn_links;
    let mut launch_answers = vec![("200", turn.clone())];
    launch_answers.extend(tool_errors(KEY_CONFLICT, true));
    let launch = Op {
        id: "launchSession",
        summary: "Start (or restart) a test conversation",
        description: "Runs the assistant's launch turn for this session, without a call, and \
                      renders it as a call would (the assistant's settings, the default policy).",
        role: Role::Dispatcher,
        body: Some(json_body(
            false,
            "SessionLaunch",
            json!({"variables": {"contact_name": "Alice", "ticket": "Server room 2 is flooding."}}),
        )),
        responses: launch_answers,
    };
    let mut interact_answers = vec![("200", turn)];
    interact_answers.extend(tool_errors(
        "Silence (no_reply, or digits of only #) when the previous turn sent no no-reply \
         trace (code nothing_to_send: a call would tell Voiceflow nothing), or the stored key \
         no longer decrypts (stored_key_unusable).",
        true,
    ));
    let interact = Op {
        id: "interactSession",
        summary: "One turn of a test conversation",
        description: "Exactly one of digits (read as a call reads them: a key of the last \
                      menu, the keypad, else text), text, no_reply or a raw Dialog Manager \
                      action.",
        role: Role::Dispatcher,
        body: Some(json_body(true, "SessionInput", json!({"digits": "1"}))),
        responses: interact_answers,
    };
    let mut state_answers = vec![(
        "200",
        ok(
            "Voiceflow's state of the session and what the gateway keeps.",
            "SessionState",
        ),
    )];
    state_answers.extend(tool_errors(KEY_CONFLICT, false));
    let get_state = Op {
        id: "getSessionState",
        summary: "A test conversation's state, in Voiceflow and in the gateway",
        description: "Voiceflow's stored state ({} when none) and the gateway's (the last \
                      menu and turn; null when none).",
        role: Role::Dispatcher,
        body: None,
        responses: state_answers,
    };
    let mut forget_answers = vec![(
        "204",
        json!({"description": "Forgotten, in Voiceflow and here."}),
    )];
    forget_answers.extend(tool_errors(KEY_CONFLICT, false));
    let delete_state = Op {
        id: "deleteSessionState",
        summary: "Forget a test conversation",
        description: "Deletes the session's state in Voiceflow and the gateway's.",
        role: Role::Dispatcher,
        body: None,
        responses: forget_answers,
    };
    let mut variables_answers = vec![(
        "200",
        ok(
            "The state Voiceflow answers after the merge.",
            "SessionVariables",
        ),
    )];
    variables_answers.extend(tool_errors(KEY_CONFLICT, true));
    let variables = Op {
        id: "patchSessionVariables",
        summary: "Merge variables into a test conversation's state",
        description: "The body is the flat object of variables.",
        role: Role::Dispatcher,
        body: Some(json_body(
            true,
            "VariablesPatch",
            json!({"ticket": "4711", "priority": 2}),
        )),
        responses: variables_answers,
    };
    let mut transcript_answers = vec![(
        "200",
        ok("Saved: Voiceflow's transcript record.", "SavedTranscript"),
    )];
    transcript_answers.extend(tool_errors(
        "The assistant's Voiceflow project and version ids are unknown (code \
         transcripts_unavailable), or its stored key no longer decrypts (stored_key_unusable).",
        true,
    ));
    let transcript = Op {
        id: "saveSessionTranscript",
        summary: "Save a test conversation's transcript to Voiceflow",
        description: "Every field is optional: device phone, os ivr-gateway, browser \
                      conversation-tools, user_name test session <session> by default.",
        role: Role::Dispatcher,
        body: Some(json_body(
            false,
            "TranscriptDetails",
            json!({"device": "desktop", "os": "macOS", "browser": "curl", "user_name": "QA run 12"}),
        )),
        responses: transcript_answers,
    };
    let item = |ops: Value| {
        let mut item = ops;
        item["parameters"] = json!([
            {"$ref": "#/components/parameters/AssistantId"},
            {"$ref": "#/components/parameters/Session"}
        ]);
        item
    };
    vec![
        ("launch", item(json!({"post": launch.build()}))),
        ("interact", item(json!({"post": interact.build()}))),
        (
            "state",
            item(json!({"get": get_state.build(), "delete": delete_state.build()})),
        ),
        ("variables", item(json!({"patch": variables.build()}))),
        ("transcript", item(json!({"put": transcript.build()}))),
    ]
}

pub(super) fn parameters() -> Map<String, Value> {
    let id = |example: bool| {
        let mut p = json!({
            "name": "id", "in": "path", "required": true,
            "description": "An assistant's id (32 hex digits) or its name. None such is a 404.",
            "schema": {"type": "string"}
        });
        if example {
            p["example"] = json!("sandbox");
        }
        p
    };
    let mut m = Map::new();
    m.insert("AssistantId".into(), id(true));
    m.insert("AssistantIdNoExample".into(), id(false));
    m.insert(
        "Session".into(),
        json!({
            "name": "session", "in": "path", "required": true,
            "description": format!(
                "A test conversation's name, chosen by the caller: 1 to {MAX_SESSION_CHARS} of \
                 A-Z a-z 0-9 _ -. Its Voiceflow userID is tool-<assistant id>-<session>. \
                 Anything else is a 422 naming session."
            ),
            "example": "demo",
            "schema": {"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_SESSION_CHARS}}}$")}
        }),
    );
    m
}

pub(super) fn responses() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "AssistantNotFound".into(),
        error_response("No assistant has this id or name (code not_found)."),
    );
    m.insert(
        "BadRequestOrRefused".into(),
        error_response(
            "The body is not JSON (code bad_request), or Voiceflow refused the request itself \
             (code voiceflow_refused_request, e.g. a malformed raw action).",
        ),
    );
    m.insert(
        "Refused".into(),
        error_response("Voiceflow refused the request itself (code voiceflow_refused_request)."),
    );
    m.insert(
        "VoiceflowFailed".into(),
        error_response(
            "Voiceflow failed, not the gateway: it refused the assistant's stored key \
             (voiceflow_refused_key: rotate it with PATCH), cannot use its version \
             (voiceflow_version_unusable), could not be reached (voiceflow_unreachable), \
             answered an error (voiceflow_error) or something unreadable \
             (voiceflow_bad_answer); or the stored key or version cannot be sent in a header \
             (voiceflow_request_invalid, which registration prevents). Nothing was stored.",
        ),
    );
    m.insert(
        "VoiceflowTimeout".into(),
        error_response(
            "Voiceflow did not answer in time (code voiceflow_timeout), not the gateway's \
             fault. Nothing was stored.",
        ),
    );
    m.insert(
        "UnavailableOrRateLimited".into(),
        json!({
            "description": "Voiceflow's rate limit for the assistant's key was hit (code \
                            voiceflow_rate_limited), or the store is unavailable (code \
                            unavailable); retry shortly.",
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        }),
    );
    m
}

/// A short label the parser trims and bounds (`assistant_input::label`).
fn label(max: usize, description: &str) -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": max,
        "description": format!("{description} Not blank, no control characters; trimmed.")
    })
}

fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

/// The fields of a registration; `update` makes the key and version optional.
fn assistant_fields(update: bool) -> Map<String, Value> {
    let voice_null = if update {
        "null goes back to Routee's default voice."
    } else {
        "null is no preference."
    };
    let api_key = json!({
        "type": "string",
        "maxLength": MAX_KEY_CHARS,
        "pattern": "^\\s*VF\\.DM\\.\\S*\\s*$",
        "description": "A Voiceflow Dialog Manager API key. Checked with Voiceflow, stored \
                        encrypted, never shown again (only key_hint).",
        "writeOnly": true
    });
    let version = json!({
        "type": "string",
        "pattern": "^\\s*(production|development|[0-9a-fA-F]{24})\\s*$",
        "description": "production, development or a 24-hex version id.",
        "example": "production"
    });
    let mut fields = Map::new();
    fields.insert(
        "name".into(),
        nullable(label(
            MAX_NAME_CHARS,
            "Unique; must not look like an assistant id (32 hex digits). Defaults to the \
             Voiceflow project's name.",
        )),
    );
    fields.insert(
        "api_key".into(),
        if update { nullable(api_key) } else { api_key },
    );
    fields.insert(
        "version".into(),
        if update { nullable(version) } else { version },
    );
    fields.insert(
        "project_id".into(),
        json!({
            "type": "string", "nullable": true,
            "pattern": "^\\s*[0-9a-fA-F]{24}\\s*$",
            "description": "The Voiceflow project id, so an alias version's metadata (project \
                            name and ids) can be read."
        }),
    );
    fields.insert(
        "keypad".into(),
        json!({
            "type": "object", "nullable": true,
            "maxProperties": MAX_KEYPAD,
            "description": "Keys (1 to 8 of 0-9 and *) to Voiceflow intent names, for digits \
                            that match no menu button.",
            "additionalProperties": label(MAX_LABEL_CHARS, "An intent name."),
            "example": {"1": "accept", "2": "reject"}
        }),
    );
    fields.insert(
        "language".into(),
        json!({
            "type": "string", "nullable": true,
            "description": "A locale that maps onto one of Routee's voices (en-AU is en-US); \
                            others are refused, naming what Routee speaks.",
            "example": "en-GB"
        }),
    );
    fields.insert(
        "voice".into(),
        json!({
            "type": "string", "nullable": true,
            "description": format!("female, male or a known voice name (Polly.Joanna, \
                                    en-US-GuyNeural); {voice_null}"),
            "example": "female"
        }),
    );
    for (field, default) in [("accept_actions", "accept"), ("reject_actions", "reject")] {
        fields.insert(
            field.into(),
            json!({
                "type": "array", "nullable": true,
                "minItems": 1, "maxItems": MAX_ACTIONS,
                "items": label(MAX_LABEL_CHARS, "A custom action name."),
                "description": format!("Custom action names that mean the callee decided (default {default})."),
            }),
        );
    }
    fields.insert(
        "save_transcripts".into(),
        json!({
            "type": "boolean", "nullable": true,
            "description": "Save every call's conversation to Voiceflow; needs the project and \
                            version ids."
        }),
    );
    fields
}

pub(super) fn schemas() -> Map<String, Value> {
    let languages: Vec<&str> = Language::ALL.iter().map(|l| l.code()).collect();
    let mut m = Map::new();
    m.insert(
        "NewAssistant".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["api_key", "version"],
            "properties": assistant_fields(false)
        }),
    );
    m.insert(
        "AssistantChange".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "description": "Any of the registration's fields; at least one that changes \
                            something (null keeps a field, except voice).",
            "properties": assistant_fields(true)
        }),
    );
    m.insert(
        "AssistantSettings".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["language", "voice", "keypad", "accept_actions", "reject_actions", "save_transcripts"],
            "properties": {
                "language": {"type": "string", "enum": languages},
                "voice": {"type": "string", "enum": ["female", "male"], "nullable": true},
                "keypad": {"type": "object", "additionalProperties": {"type": "string"}},
                "accept_actions": {"type": "array", "items": {"type": "string"}},
                "reject_actions": {"type": "array", "items": {"type": "string"}},
                "save_transcripts": {"type": "boolean"}
            }
        }),
    );
    m.insert(
        "Assistant".into(),
        json!({
            "type": "object",
            // No other field: in particular never the key.
            "additionalProperties": false,
            "required": ["id", "name", "version", "version_id", "project_id", "project_name", "key_hint", "created_at", "updated_at", "settings"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "name": {"type": "string"},
                "version": {"type": "string", "description": "As registered: production, development or a version id."},
                "version_id": {"type": "string", "nullable": true, "description": "The version id Voiceflow resolved it to, when known."},
                "project_id": {"type": "string", "nullable": true},
                "project_name": {"type": "string", "nullable": true},
                "key_hint": {"type": "string", "maxLength": 4, "description": "The key's last four characters; the key itself is never shown."},
                "created_at": timestamp(),
                "updated_at": timestamp(),
                "settings": {"$ref": "#/components/schemas/AssistantSettings"},
                "warnings": {"type": "array", "items": {"type": "string"}, "description": "Only in the answer to a registration or update, e.g. why Voiceflow's metadata is missing."}
            }
        }),
    );
    m.insert(
        "AssistantList".into(),
        json!({
            "type": "object",
            "required": ["assistants"],
            "properties": {
                "assistants": {"type": "array", "items": {"$ref": "#/components/schemas/Assistant"}}
            }
        }),
    );
    let variables = json!({
        "type": "object",
        "maxProperties": MAX_VARIABLES,
        "description": "A flat object: names are letters, digits and _ (not starting with a \
                        digit), at most 64; values strings, numbers or booleans.",
        "additionalProperties": scalar()
    });
    let mut launch_variables = nullable(variables.clone());
    launch_variables["description"] = json!(
        "Put into state.variables before the launch. A call adds contact_name, callout_name \
         and attempt: pass them to mimic one. Names are letters, digits and _ (not starting \
         with a digit), at most 64."
    );
    m.insert(
        "SessionLaunch".into(),
        json!({
            "type": "object",
            "nullable": true,
            "additionalProperties": false,
            "description": "An empty body (or null) launches without variables.",
            "properties": {
                "variables": launch_variables
            }
        }),
    );
    let one = |field: &str, schema: Value| {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": [field],
            "properties": {field: schema}
        })
    };
    m.insert(
        "SessionInput".into(),
        json!({
            "description": "Exactly one of digits, text, no_reply, action.",
            "oneOf": [
                one("digits", json!({
                    "type": "string",
                    "pattern": format!("^\\s*[0-9*#]{{1,{MAX_DIGITS}}}\\s*$"),
                    "description": "Keys pressed, read as a call reads them (a trailing # only submits)."
                })),
                one("text", label(MAX_TEXT_CHARS, "What the callee said.")),
                one("no_reply", json!({
                    "type": "boolean", "enum": [true],
                    "description": "The callee stayed silent: sent as a no-reply only when the previous turn sent a no-reply trace, else a 409."
                })),
                one("action", json!({
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"type": "string", "minLength": 1, "description": "Not blank."}},
                    "description": "A raw Dialog Manager action, sent as it is.",
                    "example": {"type": "event", "payload": {"event": {"name": "escalate"}}}
                }))
            ]
        }),
    );
    let mut patch = variables;
    patch["minProperties"] = json!(1);
    m.insert("VariablesPatch".into(), patch);
    let transcript_fields: Map<String, Value> = ["device", "os", "browser", "user_name"]
        .into_iter()
        .map(|f| {
            (
                f.to_owned(),
                nullable(label(MAX_LABEL_CHARS, "Shown in Voiceflow.")),
            )
        })
        .collect();
    m.insert(
        "TranscriptDetails".into(),
        json!({
            "type": "object",
            "nullable": true,
            "additionalProperties": false,
            "properties": transcript_fields
        }),
    );
    m.extend(turn_schemas());
    m
}

/// What the tools answer: a turn, a session's state, variables, a transcript.
fn turn_schemas() -> Map<String, Value> {
    let as_voiceflow_answered =
        |what: &str| json!({"description": format!("{what}, as Voiceflow answered it.")});
    let session = json!({"type": "string"});
    let user_id = json!({"type": "string", "pattern": "^tool-[0-9a-f]{32}-[A-Za-z0-9_-]+$", "description": "The Dialog Manager userID: tool-<assistant id>-<session>."});
    let mut m = Map::new();
    m.insert(
        "Verb".into(),
        json!({
            "type": "object",
            "required": ["type"],
            "description": "A Routee dialplan verb; the other fields depend on its type.",
            "properties": {"type": {"type": "string", "enum": ["SAY", "PLAY", "PAUSE", "COLLECT", "DIAL"]}}
        }),
    );
    m.insert(
        "MenuItem".into(),
        json!({
            "type": "object",
            "required": ["digit", "label", "request"],
            "properties": {
                "digit": {"type": "string"},
                "label": {"type": "string"},
                "request": {"type": "object", "description": "The button's own request, sent when digit is pressed."}
            }
        }),
    );
    m.insert(
        "TurnReport".into(),
        json!({
            "type": "object",
            "required": ["session", "user_id", "turn", "input", "exchanges", "traces", "dialplan", "decision", "menu", "no_reply_timeout", "ends_call", "resume", "transfer_to", "spoken", "notes"],
            "properties": {
                "session": session,
                "user_id": user_id,
                "turn": {"type": "integer", "minimum": 0, "description": "The input number the dialplan's COLLECT eventUrl carries."},
                "input": {
                    "type": "object",
                    "required": ["sent_as", "request"],
                    "properties": {
                        "sent_as": {"type": "string", "enum": ["launch", "menu", "keypad", "text", "no_reply", "action"]},
                        "digits": {"type": "string"},
                        "request": {"type": "object", "description": "The first Dialog Manager request of the turn."}
                    }
                },
                "exchanges": {
                    "type": "array",
                    "description": "Every request of the turn (a custom action the runtime stopped on is resumed, as on a call) with Voiceflow's answer.",
                    "items": {
                        "type": "object",
                        "required": ["request", "response"],
                        "properties": {
                            "request": {"type": "object"},
                            "response": as_voiceflow_answered("The answer (a list of traces)")
                        }
                    }
                },
                "traces": {"type": "array", "items": as_voiceflow_answered("A trace")},
                "dialplan": {
                    "type": "object",
                    "required": ["verbs"],
                    "description": "Exactly what Routee would get on a call. Its eventUrl names no callout or call.",
                    "properties": {"verbs": {"type": "array", "items": {"$ref": "#/components/schemas/Verb"}}}
                },
                "decision": {"type": "string", "enum": ["accepted", "rejected"], "nullable": true},
                "menu": {"type": "array", "items": {"$ref": "#/components/schemas/MenuItem"}},
                "no_reply_timeout": {"type": "integer", "minimum": 0, "nullable": true},
                "ends_call": {"type": "boolean"},
                "resume": {"type": "object", "nullable": true, "description": "The request that continues a custom action the runtime stopped on."},
                "transfer_to": {"type": "string", "nullable": true},
                "spoken": {"type": "array", "items": {"type": "string"}},
                "notes": {"type": "array", "items": {"type": "string"}, "description": "What was not rendered, and why."}
            }
        }),
    );
    m.insert(
        "SessionState".into(),
        json!({
            "type": "object",
            "required": ["session", "user_id", "state", "gateway"],
            "properties": {
                "session": session,
                "user_id": user_id,
                "state": as_voiceflow_answered("The session's stored state ({} when none)"),
                "gateway": {
                    "type": "object",
                    "nullable": true,
                    "required": ["turn", "conversation"],
                    "description": "What the gateway keeps for 24 hours after the last turn; null when nothing.",
                    "properties": {
                        "turn": {"type": "integer", "minimum": 0},
                        "conversation": {"type": "object", "description": "The last menu, and whether silence is a no-reply."}
                    }
                }
            }
        }),
    );
    m.insert(
        "SessionVariables".into(),
        json!({
            "type": "object",
            "required": ["session", "user_id", "state"],
            "properties": {
                "session": session,
                "user_id": user_id,
                "state": as_voiceflow_answered("The state after the merge")
            }
        }),
    );
    m.insert(
        "SavedTranscript".into(),
        json!({
            "type": "object",
            "required": ["session", "user_id", "transcript"],
            "properties": {
                "session": session,
                "user_id": user_id,
                "transcript": as_voiceflow_answered("The transcript record")
            }
        }),
    );
    m
}
