//! The console's routes in `GET /openapi.json`: the event stream of a callout,
//! what composing a callout needs (`/v1/dialplans`, `/v1/policy`,
//! `/v1/callouts/preview`), `/v1/me`, the sandbox's endpoints, and the console's
//! pages and files (HTML, CSS, JavaScript: no key needed, they hold no data).

use serde_json::{Map, Value, json};

use super::{error_response, reference};

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn dispatcher_op(id: &str, tag: &str, summary: &str, responses: Vec<(&str, Value)>) -> Value {
    let mut all = Map::new();
    all.insert("401".into(), reference("Unauthorized"));
    all.insert("503".into(), reference("Unavailable"));
    for (status, response) in responses {
        all.insert(status.into(), response);
    }
    json!({
        "operationId": id,
        "tags": [tag],
        "x-required-role": "dispatcher",
        "summary": summary,
        "responses": all,
    })
}

fn sandbox_only() -> Value {
    error_response(
        "Not in the sandbox: this gateway is live and has no simulator (code not_found).",
    )
}

fn html_page(id: &str, summary: &str, not_found: Option<&str>) -> Value {
    let mut responses = json!({
        "200": {"description": "The page (HTML; its data comes from the /v1 API).", "content": {"text/html": {"schema": {"type": "string"}}}}
    });
    if let Some(why) = not_found {
        responses["404"] =
            json!({"description": why, "content": {"text/html": {"schema": {"type": "string"}}}});
    }
    json!({"get": {"operationId": id, "tags": ["console"], "summary": summary, "security": [], "responses": responses}})
}

fn callout_request_body() -> Value {
    json!({
        "required": true,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/NewCallout"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["contacts"],
                    "properties": {
                        "contacts": {"type": "string", "format": "binary", "description": "The call list as CSV: name,phone[,language]."},
                        "callout": {"type": "string", "description": "The JSON of NewCallout without contacts."}
                    }
                },
                "encoding": {"contacts": {"contentType": "text/csv"}, "callout": {"contentType": "application/json"}}
            }
        }
    })
}

fn events() -> Value {
    let mut op = dispatcher_op(
        "calloutEvents",
        "callouts",
        "The callout's timeline as Server-Sent Events, live until it is settled",
        vec![
            (
                "200",
                json!({
                    "description": "text/event-stream. Each message: `id` the event's index in the timeline, `data` the Event as JSON. The stream ends, after an `end` message (`data: {\"status\": ...}`, no id), once the callout is final with no call live and nothing left to do. A comment every 15 s keeps it open.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}
                }),
            ),
            (
                "204",
                json!({"description": "Settled, and Last-Event-ID is its last event: nothing more will come (EventSource stops reconnecting)."}),
            ),
            (
                "400",
                error_response("Last-Event-ID is not a number (code bad_request)."),
            ),
            ("404", reference("NotFound")),
        ],
    );
    op["description"] = json!(
        "Works on any replica (the events are read from the store) and resumes after `Last-Event-ID` (what a reconnecting EventSource sends)."
    );
    op["parameters"] = json!([{
        "name": "Last-Event-ID", "in": "header", "required": false,
        "description": "Resume after this event (its id); absent: from the first event.",
        "schema": {"type": "string", "pattern": "^\\s*[0-9]*\\s*$"}
    }]);
    json!({"parameters": [{"$ref": "#/components/parameters/CalloutId"}], "get": op})
}

fn compose() -> Vec<(&'static str, Value)> {
    let mut preview = dispatcher_op(
        "previewCallout",
        "callouts",
        "Check a callout as POST /v1/callouts would, create nothing, and show what the first person hears",
        vec![
            (
                "200",
                ok(
                    "Valid. The callout as it would be created, and the first call's words (null for an assistant: its words come from Voiceflow).",
                    "CalloutPreview",
                ),
            ),
            ("400", reference("BadRequest")),
            (
                "413",
                error_response("The body is larger than MAX_BODY_BYTES."),
            ),
            (
                "415",
                error_response("Neither application/json nor multipart/form-data."),
            ),
            ("422", reference("Invalid")),
        ],
    );
    preview["requestBody"] = callout_request_body();
    vec![
        (
            "/v1/dialplans",
            json!({"get": dispatcher_op("listDialplans", "callouts", "The dialplan templates, with the variables each needs", vec![("200", ok("By name.", "DialplanList"))])}),
        ),
        (
            "/v1/policy",
            json!({"get": dispatcher_op("getPolicy", "callouts", "The policy defaults and each field's bounds", vec![("200", ok("Defaults and bounds.", "PolicyDefaults"))])}),
        ),
        ("/v1/callouts/preview", json!({ "post": preview })),
        (
            "/v1/me",
            json!({"get": dispatcher_op("me", "callouts", "The presented key's role, and what this gateway is", vec![("200", ok("Who you are here.", "Me"))])}),
        ),
    ]
}

fn sandbox() -> Vec<(&'static str, Value)> {
    let mut put = dispatcher_op(
        "putSandboxCallees",
        "sandbox",
        "Replace the simulated phones (a behaviour file)",
        vec![
            (
                "204",
                json!({"description": "Replaced: the next calls use them."}),
            ),
            ("400", reference("BadRequest")),
            (
                "413",
                error_response("The body is larger than MAX_BODY_BYTES."),
            ),
            (
                "422",
                error_response("An entry is wrong: details name it (callees.<phone>)."),
            ),
            ("404", sandbox_only()),
        ],
    );
    put["requestBody"] = json!({
        "required": true,
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Callees"},
            "example": {"default": "accepts", "+306900000001": "never_answers", "+306900000002": {"press": {"keys": "2"}}}
        }}
    });
    let seed = dispatcher_op(
        "startSeedScenario",
        "sandbox",
        "Start the seed scenario: Alice never answers, Bob rejects, Carol accepts",
        vec![
            (
                "201",
                json!({
                    "description": "Started: the callout as POST /v1/callouts answers it.",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Callout"}}}
                }),
            ),
            ("404", sandbox_only()),
        ],
    );
    vec![
        (
            "/v1/sandbox/callees",
            json!({
                "get": dispatcher_op("getSandboxCallees", "sandbox", "The simulated phones (the behaviour-file format of SIM_CALLEES_FILE)", vec![("200", ok("By phone number, and default.", "Callees")), ("404", sandbox_only())]),
                "put": put
            }),
        ),
        ("/v1/sandbox/seed", json!({ "post": seed })),
    ]
}

fn pages() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/console",
            html_page(
                "consoleCallouts",
                "The console: callouts, newest first",
                None,
            ),
        ),
        (
            "/console/sign-in",
            html_page(
                "consoleSignIn",
                "The console: sign in with an API key",
                None,
            ),
        ),
        (
            "/console/callouts/new",
            html_page("consoleNewCallout", "The console: a new callout", None),
        ),
        ("/console/callouts/{id}", {
            let mut p = html_page(
                "consoleCallout",
                "The console: one callout, live",
                Some("Not a callout id."),
            );
            p["parameters"] = json!([{"$ref": "#/components/parameters/CalloutId"}]);
            p
        }),
        (
            "/console/assistants",
            html_page("consoleAssistants", "The console: assistants (admin)", None),
        ),
        (
            "/console/sandbox",
            html_page(
                "consoleSandbox",
                "The console: the seed scenario and the simulated phones",
                Some("Not in the sandbox."),
            ),
        ),
        (
            "/console/assets/{file}",
            json!({"get": {
                "operationId": "consoleAsset",
                "tags": ["console"],
                "summary": "The console's stylesheet and JavaScript modules",
                "security": [],
                "parameters": [{"name": "file", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The file (revalidate with its ETag).", "content": {
                        "text/css": {"schema": {"type": "string"}},
                        "text/javascript": {"schema": {"type": "string"}}
                    }},
                    "304": {"description": "Not modified (If-None-Match)."},
                    "404": error_response("No such file (code not_found).")
                }
            }}),
        ),
    ]
}

pub(super) fn paths() -> Map<String, Value> {
    let mut paths = Map::new();
    paths.insert("/v1/callouts/{id}/events".into(), events());
    for (path, item) in compose().into_iter().chain(sandbox()).chain(pages()) {
        paths.insert(path.into(), item);
    }
    paths
}

pub(super) fn tags() -> Vec<Value> {
    vec![
        json!({"name": "sandbox", "description": "Only in the sandbox: the simulated phones and the seed scenario."}),
        json!({"name": "console", "description": "The dispatcher console's pages and files: no key needed to load them (they hold no data; it comes from the API, with a key)."}),
    ]
}

pub(super) fn schemas() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Dialplan".into(), json!({
        "type": "object",
        "required": ["name", "description", "language", "variables", "builtins", "keys"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string", "nullable": true},
            "language": {"type": "string"},
            "variables": {"type": "array", "items": {"type": "string"}, "description": "What a callout must give in variables."},
            "builtins": {"type": "array", "items": {"type": "string"}, "description": "Built-in variables it uses (filled in per call)."},
            "keys": {"type": "object", "additionalProperties": {"type": "string", "enum": ["accepted", "rejected", "menu"]}}
        }
    }));
    m.insert("DialplanList".into(), json!({
        "type": "object",
        "required": ["dialplans"],
        "properties": {"dialplans": {"type": "array", "items": {"$ref": "#/components/schemas/Dialplan"}}}
    }));
    m.insert(
        "PolicyDefaults".into(),
        json!({
            "type": "object",
            "required": ["defaults", "bounds", "max_contacts"],
            "properties": {
                "defaults": {"$ref": "#/components/schemas/Policy"},
                "bounds": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["min", "max"],
                    "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}
                }},
                "max_contacts": {"type": "integer", "minimum": 1}
            }
        }),
    );
    m.insert("CalloutPreview".into(), json!({
        "type": "object",
        "required": ["callout", "first_call"],
        "properties": {
            "callout": {"type": "object", "description": "NewCallout as it would be created: policy complete, phones in E.164, the assistant by id."},
            "first_call": {
                "type": "object", "nullable": true,
                "required": ["contact", "name", "phone", "language", "script", "verbs"],
                "properties": {
                    "contact": {"type": "integer", "minimum": 0},
                    "name": {"type": "string"},
                    "phone": {"type": "string"},
                    "language": {"type": "string"},
                    "script": {"type": "array", "description": "One entry per verb, as a person reads it: {kind: say, text, voice, interruptible}, {kind: pause, seconds}, {kind: play, url}, {kind: collect}.", "items": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string", "enum": ["say", "pause", "play", "collect", "dial"]}}}},
                    "verbs": {"type": "array", "description": "The Routee verbs placed with the call (the COLLECT's eventUrl is signed per call; shown with placeholders).", "items": {"type": "object"}}
                }
            }
        }
    }));
    m.insert("Me".into(), json!({
        "type": "object",
        "required": ["role", "mode", "keys_required"],
        "properties": {
            "role": {"type": "string", "enum": ["dispatcher", "admin"]},
            "mode": {"type": "string", "enum": ["sandbox", "live"]},
            "keys_required": {"type": "boolean", "description": "False in the open sandbox (no API_KEYS, loopback)."}
        }
    }));
    m.insert("Callees".into(), json!({
        "type": "object",
        "description": "Phone numbers (E.164) and `default` to a script: a behaviour (never_answers, busy, fails, rejects, silent, accepts; or {press: {keys, ring_s?, after_s?}}, {silent: {ring_s?}}, {hang_up: {after_s, ring_s?}}), or {attempts: [behaviour, ...]} (one per call, the last repeats).",
        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "object"}]}
    }));
    m
}
