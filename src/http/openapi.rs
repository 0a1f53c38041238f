//! `GET /openapi.json`: an OpenAPI 3.0 description of the public HTTP API: the
//! dispatcher API (callouts), the assistants API (the registry and the
//! conversation tools, in [`assistants`]), the health endpoints and the error
//! body.
//!
//! Written by hand, next to the handlers it describes, rather than derived: the
//! request parsers read fields one by one to report every problem
//! (`callout_input`, `assistant_input`), so there is no request struct to derive
//! from, and the document should say what a client may send (bounds, enums, the
//! CSV upload), not how Rust spells it. Two things keep it true:
//! `tests/api/openapi.rs` checks that every public route of the router is
//! documented and that real responses validate against these schemas, and
//! `.ci/schemathesis` fuzzes the running gateway from this document.
//!
//! Limits that are configuration (`MAX_CONTACTS`, `MAX_BODY_BYTES`) are filled in
//! from the running gateway's configuration, so the document describes the
//! deployment that serves it. The Routee webhooks are not here: their paths are
//! private to the gateway and the carrier.

mod assistants;
mod console;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::callout_input::{MAX_NAME_CHARS, MAX_VARIABLE_CHARS, MAX_VARIABLES};
use super::error::MAX_DETAILS;
use super::state::AppState;
use crate::domain::policy::BOUNDS;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve(State(state): State<AppState>) -> Json<Value> {
    Json(document(
        state.config.max_contacts,
        state.config.max_body_bytes,
    ))
}

/// The whole document, for a gateway with these limits.
pub fn document(max_contacts: usize, max_body_bytes: usize) -> Value {
    let mut paths = paths();
    let mut responses = responses();
    let mut schemas = schemas(max_contacts);
    let mut parameters = json!({
        "CalloutId": {
            "name": "id", "in": "path", "required": true,
            "description": "A callout id: 32 lowercase hex digits. Anything else is a 404.",
            "schema": {"type": "string"}
        }
    });
    extend(&mut paths, assistants::paths());
    extend(&mut responses, assistants::responses());
    extend(&mut schemas, assistants::schemas());
    extend(&mut parameters, assistants::parameters());
    extend(&mut paths, console::paths());
    extend(&mut schemas, console::schemas());
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ivr-gateway API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Call a list of people in order until one of them accepts (callouts), and \
                 manage the Voiceflow assistants that drive those calls (assistants). Every \
                 refusal is a 4xx with the Error body, naming each bad field in `details`; \
                 nothing is created or changed. A 502, 503 or 504 with a `voiceflow_*` code is \
                 Voiceflow's failure, not the gateway's. Request bodies are at most \
                 {max_body_bytes} bytes; a callout has at most {max_contacts} contacts."
            ),
        },
        "tags": [
            {"name": "callouts", "description": "The dispatcher API: create, list, read and cancel callouts."},
            {"name": "assistants", "description": "Registered Voiceflow assistants (changing the registry needs the admin role) and the conversation tools that run one without a call."},
            {"name": "operations", "description": "Health, metrics and this document: no key needed."}
        ],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from API_KEYS, with its role: dispatcher (callouts, \
                                    reading assistants, the conversation tools) or admin \
                                    (everything, including registering, changing and deleting \
                                    assistants). Each operation's x-required-role says which; \
                                    a key without it is a 403. A sandbox on loopback without \
                                    API_KEYS needs none."
                }
            },
            "parameters": parameters,
            "responses": responses,
            "schemas": schemas,
        }
    });
    if let Some(tags) = doc["tags"].as_array_mut() {
        tags.extend(console::tags());
    }
    doc
}

/// Adds the entries of `more` (an object) to `into` (an object).
fn extend(into: &mut Value, more: Map<String, Value>) {
    if let Value::Object(m) = into {
        m.extend(more);
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn callout_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Callout"}}}
    })
}

fn responses() -> Value {
    json!({
        "BadRequest": error_response("The body or query could not be read (not JSON, not a form, bad query string)."),
        "Unauthorized": error_response("No API key, or not a valid one."),
        "Forbidden": error_response("The API key lacks the role this needs."),
        "NotFound": error_response("No such callout (or route)."),
        "Invalid": error_response("The input was read but is wrong: every bad field is in details."),
        "Unavailable": {
            "description": "The store is unavailable (code unavailable), or the callout is contended; retry shortly.",
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        }
    })
}

fn std_errors(extra: &[(&str, Value)]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    // No 403: every callout operation needs only the dispatcher role, the lowest.
    for (code, name) in [("401", "Unauthorized"), ("503", "Unavailable")] {
        m.insert(
            code.into(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    for (code, v) in extra {
        m.insert((*code).into(), v.clone());
    }
    m
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn paths() -> Value {
    let mut create_responses = std_errors(&[
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
    ]);
    create_responses.insert(
        "201".into(),
        json!({
            "description": "Created; calling starts. The callout as GET returns it.",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Callout"}}},
            "links": {
                "GetCallout": {"operationId": "getCallout", "parameters": {"id": "$response.body#/id"}},
                "CancelCallout": {"operationId": "cancelCallout", "parameters": {"id": "$response.body#/id"}}
            }
        }),
    );
    let mut list_responses = std_errors(&[
        ("400", reference("BadRequest")),
        ("422", reference("Invalid")),
    ]);
    list_responses.insert(
        "200".into(),
        json!({
            "description": "Callouts, newest first (without their events).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CalloutList"}}}
        }),
    );
    let mut get_responses = std_errors(&[("404", reference("NotFound"))]);
    get_responses.insert("200".into(), callout_response("The callout."));
    let mut cancel_responses = std_errors(&[
        ("404", reference("NotFound")),
        (
            "409",
            error_response("The callout has already finished (code already_finished)."),
        ),
    ]);
    cancel_responses.insert(
        "200".into(),
        callout_response("Cancelled: no further calls; a live call is hung up."),
    );
    json!({
        "/v1/callouts": {
            "post": {
                "operationId": "createCallout",
                "tags": ["callouts"],
                "x-required-role": "dispatcher",
                "summary": "Create a callout and start calling",
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/NewCallout"},
                            "example": {
                                "name": "Ticket 4711",
                                "dialplan": "ticket-escalation",
                                "variables": {"ticket": "Server room 2 is flooding"},
                                "contacts": [
                                    {"name": "Alice", "phone": "+306900000001"},
                                    {"name": "Bob", "phone": "+306900000002", "language": "el-GR"}
                                ],
                                "policy": {"attempts_per_contact": 3, "retry_delay_s": 60, "input_timeout_s": 10, "reprompts": 1}
                            }
                        },
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["contacts"],
                                "properties": {
                                    "contacts": {
                                        "type": "string",
                                        "format": "binary",
                                        "description": "The call list as CSV (UTF-8): a header row with name and phone (and optionally language), then one contact per row."
                                    },
                                    "callout": {
                                        "type": "string",
                                        "description": "The JSON of NewCallout without contacts."
                                    }
                                }
                            },
                            "encoding": {
                                "contacts": {"contentType": "text/csv"},
                                "callout": {"contentType": "application/json"}
                            }
                        }
                    }
                },
                "responses": create_responses
            },
            "get": {
                "operationId": "listCallouts",
                "tags": ["callouts"],
                "x-required-role": "dispatcher",
                "summary": "List callouts, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "required": false,
                     "description": "Only callouts in this status; empty means any.",
                     "schema": {"type": "string", "enum": ["calling", "accepted", "exhausted", "cancelled", "failed", ""]}},
                    {"name": "limit", "in": "query", "required": false,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                    {"name": "before", "in": "query", "required": false,
                     "description": "Only callouts created before this one (the `next` of the previous page); empty means from the newest.",
                     "schema": {"type": "string", "pattern": "^([0-9a-f]{32})?$"}}
                ],
                "responses": list_responses
            }
        },
        "/v1/callouts/{id}": {
            "parameters": [{"$ref": "#/components/parameters/CalloutId"}],
            "get": {
                "operationId": "getCallout",
                "tags": ["callouts"],
                "x-required-role": "dispatcher",
                "summary": "A callout with its contacts, attempts and timeline",
                "responses": get_responses
            }
        },
        "/v1/callouts/{id}/cancel": {
            "parameters": [{"$ref": "#/components/parameters/CalloutId"}],
            "post": {
                "operationId": "cancelCallout",
                "tags": ["callouts"],
                "x-required-role": "dispatcher",
                "summary": "Stop a callout: no further calls, a live call is hung up",
                "responses": cancel_responses
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["operations"],
                "summary": "Liveness: the process answers and its timer loop turns",
                "security": [],
                "responses": {
                    "200": health_response("Alive.", "Health"),
                    "503": health_response("The timer loop is stalled.", "Health")
                }
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "Readiness: the store answers and the gateway is not shutting down",
                "security": [],
                "responses": {
                    "200": health_response("Ready.", "Readiness"),
                    "503": health_response("Not ready (draining, or the store is unreachable).", "Readiness")
                }
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus metrics (text exposition format)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}
                    }
                }
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["operations"],
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    }
                }
            }
        }
    })
}

fn health_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn nullable(mut schema: Value) -> Value {
    if let Value::Object(m) = &mut schema {
        m.insert("nullable".into(), Value::Bool(true));
    }
    schema
}

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn policy_schema(required: bool) -> Value {
    let properties: serde_json::Map<String, Value> = BOUNDS
        .iter()
        .map(|(name, lo, hi)| {
            (
                (*name).to_owned(),
                json!({"type": "integer", "minimum": lo, "maximum": hi}),
            )
        })
        .collect();
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    });
    if required {
        schema["required"] = BOUNDS.iter().map(|(name, _, _)| json!(name)).collect();
    }
    schema
}

/// A variable's value: a callout's, or a conversation tool's.
fn scalar() -> Value {
    json!({"oneOf": [
        {"type": "string", "maxLength": MAX_VARIABLE_CHARS},
        {"type": "number"},
        {"type": "boolean"}
    ]})
}

fn schemas(max_contacts: usize) -> Value {
    let scalar = scalar();
    let outcome = json!({"type": "string", "enum": ["accepted", "rejected", "no_input", "no_answer", "busy", "failed", "cancelled"]});
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {"type": "string", "description": "Stable and machine-readable, e.g. invalid_request, not_found, unauthorized."},
                        "message": {"type": "string"},
                        "details": {
                            "type": "array",
                            "maxItems": MAX_DETAILS + 1,
                            "items": {
                                "type": "object",
                                "required": ["field", "message"],
                                "properties": {
                                    "field": {"type": "string", "description": "Where, e.g. contacts[3].phone."},
                                    "message": {"type": "string"}
                                }
                            }
                        }
                    }
                }
            }
        },
        "CalloutStatus": {"type": "string", "enum": ["calling", "accepted", "exhausted", "cancelled", "failed"]},
        "Outcome": outcome,
        "NewContact": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "phone"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
                "phone": {"type": "string", "description": "E.164: + and the country code, digits (spaces, - . ( ) allowed).", "example": "+306900000001"},
                "language": {"type": "string", "nullable": true, "description": "A Routee voice (en-US, el-GR...) or a locale mapped to one.", "example": "el-GR"}
            }
        },
        "NewCallout": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "contacts"],
            "description": "Exactly one of dialplan or assistant.",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "example": "Ticket 4711"},
                "dialplan": {"type": "string", "nullable": true, "description": "A template name (dialplans/).", "example": "ticket-escalation"},
                "assistant": {"type": "string", "nullable": true, "description": "A registered assistant's id or name."},
                "variables": {
                    "type": "object",
                    "nullable": true,
                    "maxProperties": MAX_VARIABLES,
                    "additionalProperties": scalar,
                    "example": {"ticket": "Server room 2 is flooding"}
                },
                "contacts": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_contacts,
                    "items": {"$ref": "#/components/schemas/NewContact"}
                },
                "policy": nullable(policy_schema(false)),
                "notify_url": {"type": "string", "nullable": true, "description": "http(s); POSTed the final state, signed (X-Ivr-Signature). Internal addresses are refused unless ALLOW_PRIVATE_URLS."}
            }
        },
        "Policy": policy_schema(true),
        "AcceptedBy": {
            "type": "object",
            "required": ["contact", "name", "phone"],
            "properties": {
                "contact": {"type": "integer", "minimum": 0},
                "name": {"type": "string"},
                "phone": {"type": "string"}
            }
        },
        "Contact": {
            "type": "object",
            "required": ["name", "phone", "attempts", "outcome"],
            "properties": {
                "name": {"type": "string"},
                "phone": {"type": "string"},
                "language": {"type": "string"},
                "attempts": {"type": "integer", "minimum": 0},
                "outcome": nullable(outcome.clone())
            }
        },
        "Attempt": {
            "type": "object",
            "required": ["contact", "attempt", "call_id", "status", "outcome", "started_at", "answered_at", "ended_at"],
            "properties": {
                "contact": {"type": "integer", "minimum": 0},
                "attempt": {"type": "integer", "minimum": 1},
                "call_id": {"type": "string"},
                "status": {"type": "string", "enum": ["dialing", "queued", "initiated", "ringing", "in_progress", "completed", "busy", "no_answer", "failed", "not_placed"]},
                "outcome": nullable(outcome),
                "decision": {"type": "string", "enum": ["accepted", "rejected"]},
                "reason": {"type": "string"},
                "started_at": timestamp(),
                "answered_at": nullable(timestamp()),
                "ended_at": nullable(timestamp())
            }
        },
        "Event": {
            "type": "object",
            "required": ["at", "kind"],
            "description": "One entry of the timeline; some kinds carry more fields (due, retry_at, reason, status, keys, decision, outcome).",
            "properties": {
                "at": timestamp(),
                "kind": {"type": "string", "enum": [
                    "callout_created", "call_scheduled", "call_placed", "placement_retry",
                    "placement_unconfirmed", "call_status", "keys_pressed", "decided",
                    "attempt_ended", "contact_done", "hangup_requested", "conversation_fallback",
                    "reconciled", "callout_accepted", "callout_exhausted", "callout_cancelled",
                    "callout_failed", "notify_delivered", "notify_failed"
                ]},
                "contact": {"type": "integer", "minimum": 0},
                "attempt": {"type": "integer", "minimum": 1}
            }
        },
        "Callout": {
            "type": "object",
            "required": ["id", "name", "status", "dialplan", "assistant", "variables", "policy", "notify_url", "created_at", "ended_at", "next_call_at", "accepted_by", "contacts", "attempts"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "name": {"type": "string"},
                "status": {"$ref": "#/components/schemas/CalloutStatus"},
                "dialplan": {"type": "string", "nullable": true},
                "assistant": {"type": "string", "nullable": true},
                "variables": {"type": "object", "additionalProperties": scalar},
                "policy": {"$ref": "#/components/schemas/Policy"},
                "notify_url": {"type": "string", "nullable": true},
                "created_at": timestamp(),
                "ended_at": nullable(timestamp()),
                "next_call_at": nullable(timestamp()),
                "failure": {"type": "string"},
                "accepted_by": {"allOf": [{"$ref": "#/components/schemas/AcceptedBy"}], "nullable": true},
                "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"}},
                "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/Attempt"}},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}
            }
        },
        "CalloutList": {
            "type": "object",
            "required": ["callouts", "next"],
            "properties": {
                "callouts": {"type": "array", "items": {"$ref": "#/components/schemas/Callout"}},
                "next": {"type": "string", "nullable": true, "description": "Pass as before= for the next page; null on the last."}
            }
        },
        "Health": {
            "type": "object",
            "required": ["status", "timer_loop_age_ms"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "stalled"]},
                "timer_loop_age_ms": {"type": "integer", "minimum": 0}
            }
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "mode", "store"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "draining", "store unreachable", "store timeout"]},
                "mode": {"type": "string", "enum": ["sandbox", "live"]},
                "store": {"type": "string"}
            }
        }
    })
}
