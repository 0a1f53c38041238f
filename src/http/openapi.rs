//! `GET /openapi.json`: the OpenAPI 3.0 document of the public HTTP API,
//! generated from the code by utoipa. Each handler's `#[utoipa::path]` says its
//! method, path, role and answers; the types it answers with derive their
//! schemas; the request schemas live beside the parsers that read them
//! (`callout_input`, `assistant_input`, which read fields one by one to report
//! every problem, so their schemas are types of their own, never stricter than
//! the parser). Public routes are registered with `utoipa_axum::routes!`, which
//! takes the method and path from that same annotation: a public route cannot
//! be routed undocumented, nor documented unrouted.
//!
//! What several operations share is here: the answers reused by name
//! (`#/components/responses`), the role rule (an operation's `x-required-role`
//! brings its 401, and with the admin role its 403), and the limits that are
//! configuration (`MAX_CONTACTS`, `MAX_BODY_BYTES`), filled in from the gateway
//! that serves the document. `tests/api/openapi.rs` checks the document against
//! the router and real answers against the schemas; `.ci/schemathesis` fuzzes
//! the running gateway from it. The Routee webhooks are not here: their paths
//! are private to the gateway and the carrier.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::state::AppState;
use crate::config::Config;

/// What the handlers' annotations do not say: the title, the tags, the key
/// scheme, and the answers they name.
#[derive(OpenApi)]
#[openapi(
    info(title = "ivr-gateway API"),
    tags(
        (name = "callouts", description = "The dispatcher API: create, list, read and cancel callouts."),
        (name = "teams", description = "Saved call lists a callout may name instead of listing contacts (copied into the callout when it is made); CSV import and export."),
        (name = "schedules", description = "Callouts made at a time, or on a cron schedule in a time zone, from a stored callout request; paused, resumed, deleted."),
        (name = "assistants", description = "Registered Voiceflow assistants (changing the registry needs the admin role) and the conversation tools that run one without a call."),
        (name = "operations", description = "Health, metrics, this document and the audio the gateway plays through Routee: no key needed."),
        (name = "sandbox", description = "Only in the sandbox: the simulated phones and the seed scenario (404 in live mode)."),
        (name = "console", description = "The dispatcher console's pages and files: no key needed to load them (they hold no data; it comes from the API, with a key)."),
    ),
    security(("bearer" = [])),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest, Unauthorized, Forbidden, NotFound, Invalid, Unavailable,
            AssistantNotFound, BadRequestOrRefused, Refused, VoiceflowFailed,
            VoiceflowTimeout, UnavailableOrRateLimited,
        ),
    ),
    modifiers(&BearerKeys),
)]
pub struct ApiDoc;

/// The `bearer` scheme: API keys with a role.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key from API_KEYS, with its role: dispatcher (callouts, reading \
                 assistants, the conversation tools) or admin (everything, including \
                 registering, changing and deleting assistants). Each operation's \
                 x-required-role says which; a key without it is a 403. A sandbox on \
                 loopback without API_KEYS needs none.",
            ))
            .build();
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// An answer with the error body.
fn error_response(description: &str, retry_after: bool) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
    }
    response.build()
}

/// Answers several operations give, each a `#/components/responses` entry named
/// after its type, for `(status = .., response = Name)` in an annotation.
macro_rules! error_responses {
    ($($name:ident { $description:expr, retry_after: $retry:expr })*) => {$(
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description, $retry).into())
            }
        }
    )*};
}

error_responses! {
    BadRequest {
        "The body or query could not be read (not JSON, not a form, bad query string).",
        retry_after: false
    }
    Unauthorized { "No API key, or not a valid one.", retry_after: false }
    Forbidden { "The API key lacks the role this needs.", retry_after: false }
    NotFound { "No such callout (or route).", retry_after: false }
    Invalid {
        "The input was read but is wrong: every bad field is in details.",
        retry_after: false
    }
    Unavailable {
        "The store is unavailable (code unavailable), or the callout is contended; retry shortly.",
        retry_after: true
    }
    AssistantNotFound {
        "No assistant has this id or name (code not_found).",
        retry_after: false
    }
    BadRequestOrRefused {
        "The body is not JSON (code bad_request), or Voiceflow refused the request itself \
         (code voiceflow_refused_request, e.g. a malformed raw action).",
        retry_after: false
    }
    Refused {
        "Voiceflow refused the request itself (code voiceflow_refused_request).",
        retry_after: false
    }
    VoiceflowFailed {
        "Voiceflow failed, not the gateway: it refused the assistant's stored key \
         (voiceflow_refused_key: rotate it with PATCH), cannot use its version \
         (voiceflow_version_unusable), could not be reached (voiceflow_unreachable), \
         answered an error (voiceflow_error) or something unreadable \
         (voiceflow_bad_answer); or the stored key or version cannot be sent in a header \
         (voiceflow_request_invalid, which registration prevents). Nothing was stored.",
        retry_after: false
    }
    VoiceflowTimeout {
        "Voiceflow did not answer in time (code voiceflow_timeout), not the gateway's \
         fault. Nothing was stored.",
        retry_after: false
    }
    UnavailableOrRateLimited {
        "Voiceflow's rate limit for the assistant's key was hit (code \
         voiceflow_rate_limited), or the store is unavailable (code unavailable); retry \
         shortly.",
        retry_after: true
    }
}

/// What every operation that asks Voiceflow answers when Voiceflow fails: 502,
/// 503 and 504 with a `voiceflow_*` code (which `.ci/schemathesis` accepts
/// where documented, and no other 5xx).
pub struct VoiceflowFailures;

impl IntoResponses for VoiceflowFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("502", "VoiceflowFailed"),
            ("503", "UnavailableOrRateLimited"),
            ("504", "VoiceflowTimeout"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_owned(), Ref::from_response_name(name).into()))
        .collect()
    }
}

/// `schema` (an object's or an array's) that also takes `null`, which the
/// parsers read as absent.
pub fn nullable(mut schema: Schema) -> Schema {
    let schema_type = match &mut schema {
        Schema::Object(object) => &mut object.schema_type,
        Schema::Array(array) => &mut array.schema_type,
        _ => return schema,
    };
    if let SchemaType::Type(ty) = schema_type.clone() {
        *schema_type = SchemaType::from_iter([ty, Type::Null]);
    }
    schema
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(serve))
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", body = Object)),
)]
async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    let document = state.openapi.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], document)
}

/// The document as served by a gateway with this configuration: `api` (the
/// routes' annotations and [`ApiDoc`]) with the role rule applied, the limits
/// filled in, in OpenAPI 3.0.
pub fn document(api: &utoipa::openapi::OpenApi, config: &Config) -> Bytes {
    let mut doc = serde_json::to_value(api).unwrap_or(Value::Null);
    to_openapi_3_0(&mut doc);
    doc["openapi"] = json!("3.0.3");
    doc["info"]["description"] = json!(format!(
        "Call a list of people in order until one of them accepts (callouts), and manage \
         the Voiceflow assistants that drive those calls (assistants). Every refusal is a \
         4xx with the Error body, naming each bad field in `details`; nothing is created \
         or changed. A 502, 503 or 504 with a `voiceflow_*` code is Voiceflow's failure, \
         not the gateway's. Request bodies are at most {} bytes; a callout has at most {} \
         contacts.",
        config.max_body_bytes, config.max_contacts
    ));
    if let Some(info) = doc["info"].as_object_mut() {
        info.remove("license");
    }
    doc["components"]["schemas"]["NewCallout"]["properties"]["contacts"]["maxItems"] =
        json!(config.max_contacts);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(Value::as_object_mut) {
            operation.values_mut().for_each(apply_role);
        }
    }
    serde_json::to_vec(&doc).unwrap_or_default().into()
}

/// The role rule: an operation that needs a key can answer 401, and one that
/// needs the admin role 403 (a dispatcher key never is: it is the lowest role).
fn apply_role(operation: &mut Value) {
    let (needs, forbidden) = match operation["x-required-role"].as_str() {
        Some("dispatcher") => ("Needs the dispatcher or admin role.", false),
        Some("admin") => ("Needs the admin role: a dispatcher key is a 403.", true),
        _ => return,
    };
    let responses = &mut operation["responses"];
    responses["401"] = json!({"$ref": "#/components/responses/Unauthorized"});
    if forbidden {
        responses["403"] = json!({"$ref": "#/components/responses/Forbidden"});
    }
    let description = operation["description"].as_str().unwrap_or_default();
    operation["description"] = json!(format!("{description} {needs}").trim_start());
}

/// utoipa writes OpenAPI 3.1; the document is served as 3.0.3, which the
/// fuzzer and the tests read. What differs in what is generated here: how a
/// schema takes `null` (3.1: a `"null"` member of `type`, or a `{"type":
/// "null"}` branch of `oneOf`; 3.0: `nullable: true`), that 3.0 ignores the
/// siblings of a `$ref` (so a `$ref` with a description becomes an `allOf`),
/// a schema's `examples` list (3.0: one `example`), and `propertyNames`
/// (unknown to 3.0; utoipa writes it for a map's string keys).
fn to_openapi_3_0(value: &mut Value) {
    match value {
        Value::Object(object) => {
            nullable_type(object);
            nullable_one_of(object);
            ref_with_siblings(object);
            object.remove("propertyNames");
            if let Some(Value::Array(examples)) = object.remove("examples")
                && let Some(first) = examples.into_iter().next()
            {
                object.insert("example".into(), first);
            }
            object.values_mut().for_each(to_openapi_3_0);
        }
        Value::Array(items) => items.iter_mut().for_each(to_openapi_3_0),
        _ => {}
    }
}

/// `"type": ["string", "null"]` is `"type": "string", "nullable": true`.
fn nullable_type(object: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = object.get_mut("type") else {
        return;
    };
    let before = types.len();
    types.retain(|t| t != "null");
    let nullable = types.len() < before;
    if let [single] = types.as_slice() {
        let single = single.clone();
        object.insert("type".into(), single);
    }
    if nullable {
        object.insert("nullable".into(), Value::Bool(true));
    }
}

/// `"oneOf": [{"type": "null"}, X]` is X with `"nullable": true`.
fn nullable_one_of(object: &mut Map<String, Value>) {
    let Some(Value::Array(branches)) = object.get_mut("oneOf") else {
        return;
    };
    let before = branches.len();
    branches.retain(|b| b != &json!({"type": "null"}));
    if branches.len() == before {
        return;
    }
    if let [Value::Object(only)] = branches.as_mut_slice() {
        let only = std::mem::take(only);
        object.remove("oneOf");
        object.extend(only);
    }
    object.insert("nullable".into(), Value::Bool(true));
}

/// `{"$ref": R, ...}` is `{"allOf": [{"$ref": R}], ...}`.
fn ref_with_siblings(object: &mut Map<String, Value>) {
    if object.len() > 1
        && let Some(reference) = object.remove("$ref")
    {
        object.insert("allOf".into(), json!([{"$ref": reference}]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tools::MAX_SESSION_CHARS;
    use crate::http::error::MAX_DETAILS;
    use crate::http::{assistant_input, callout_input};

    /// The generated document before the served one's limits and role rule.
    fn generated() -> Value {
        let mut doc =
            serde_json::to_value(super::super::public_routes().into_openapi()).unwrap_or_default();
        to_openapi_3_0(&mut doc);
        doc
    }

    #[test]
    fn the_documented_bounds_are_the_parsers() {
        let doc = generated();
        let schemas = &doc["components"]["schemas"];
        let name = callout_input::MAX_NAME_CHARS;
        assert_eq!(
            schemas["NewCallout"]["properties"]["name"]["maxLength"],
            name
        );
        assert_eq!(
            schemas["NewContact"]["properties"]["name"]["maxLength"],
            name
        );
        for body in ["NewAssistant", "AssistantChange"] {
            assert_eq!(
                schemas[body]["properties"]["api_key"]["maxLength"],
                assistant_input::MAX_KEY_CHARS,
                "{body}"
            );
        }
        assert_eq!(
            schemas["Error"]["properties"]["error"]["properties"]["details"]["maxItems"],
            MAX_DETAILS + 1
        );
        let session =
            &doc["paths"]["/v1/assistants/{id}/sessions/{session}/state"]["get"]["parameters"][1];
        assert_eq!(session["name"], "session");
        let bound = format!("{{1,{MAX_SESSION_CHARS}}}");
        assert!(
            session["schema"]["pattern"]
                .as_str()
                .is_some_and(|p| p.contains(&bound))
        );
        let described = format!("1 to {MAX_SESSION_CHARS} of");
        assert!(
            session["description"]
                .as_str()
                .is_some_and(|d| d.contains(&described))
        );
    }

    #[test]
    fn a_nullable_type_or_one_of_is_written_as_openapi_3_0_spells_it() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": ["string", "null"], "maxLength": 4},
                "b": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/B"}]},
                "c": {"oneOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
                "d": {"$ref": "#/components/schemas/D", "description": "A d."},
                "e": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                "f": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/F", "description": "An f."}]},
                "g": {"type": "object", "propertyNames": {"type": "string"}, "examples": [{"a": 1}, {}]}
            }
        });
        to_openapi_3_0(&mut schema);
        assert_eq!(
            schema["properties"],
            json!({
                "a": {"type": "string", "maxLength": 4, "nullable": true},
                "b": {"allOf": [{"$ref": "#/components/schemas/B"}], "nullable": true},
                "c": {"type": "integer", "minimum": 1, "nullable": true},
                "d": {"allOf": [{"$ref": "#/components/schemas/D"}], "description": "A d."},
                "e": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                "f": {"allOf": [{"$ref": "#/components/schemas/F"}], "description": "An f.", "nullable": true},
                "g": {"type": "object", "example": {"a": 1}}
            })
        );
    }

    #[test]
    fn an_operation_that_needs_the_admin_role_documents_its_401_and_403() {
        let mut admin =
            json!({"x-required-role": "admin", "description": "Deletes.", "responses": {}});
        let mut dispatcher = json!({"x-required-role": "dispatcher", "responses": {}});
        let mut open = json!({"responses": {}});
        apply_role(&mut admin);
        apply_role(&mut dispatcher);
        apply_role(&mut open);
        assert_eq!(
            admin["responses"]["403"]["$ref"],
            "#/components/responses/Forbidden"
        );
        assert_eq!(
            admin["description"],
            "Deletes. Needs the admin role: a dispatcher key is a 403."
        );
        assert!(dispatcher["responses"]["401"].is_object());
        assert!(dispatcher["responses"]["403"].is_null());
        assert_eq!(open, json!({"responses": {}}));
    }
}
