//! The assistants API: register, read, update (rotate the key) and delete
//! Voiceflow assistants (admin), and the conversation tools (dispatcher or
//! admin) that run an assistant's conversation without a call.
//!
//! Roles: changing the registry needs the admin role. Reading it needs the
//! dispatcher role: dispatchers name an assistant in every Voiceflow-driven
//! callout, and no answer holds more of a key than its last four characters.
//!
//! No answer, and no log line written here, ever holds an API key.

use axum::Json;
use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::Schema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::assistant_input::{
    self as input, AssistantChangeBody, NewAssistantBody, SessionInputBody, SessionLaunchBody,
    TranscriptBody, VariablesPatchBody,
};
use super::assistant_views::{
    AssistantPath, AssistantPathNoExample, SavedTranscript, SessionPath, SessionState,
    SessionVariables, TurnReportSchema,
};
use super::auth::{Admin, Dispatcher};
use super::error::{ApiError, ErrorBody, body_rejection};
use super::openapi::{
    AssistantNotFound, BadRequest, BadRequestOrRefused, Refused, Unavailable, VoiceflowFailures,
};
use super::state::AppState;
use crate::assistants::{Registered, RegistryError, ResolveError, ResolvedAssistant};
use crate::domain::{Assistant, AssistantId, AssistantSettings};
use crate::engine::tools::{SessionName, ToolError, Tools, TurnReport};
use crate::engine::view::string_enum;
use crate::routee::{Gender, Language};
use crate::voiceflow::VoiceflowError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(show, update, delete))
        .routes(routes!(launch))
        .routes(routes!(interact))
        .routes(routes!(get_state, delete_state))
        .routes(routes!(patch_variables))
        .routes(routes!(save_transcript))
}

/// An assistant as the API shows it: never the key, only its last characters.
#[derive(Debug, Clone, Serialize, ToSchema)]
// In the schema: no other field (in particular never the key).
#[serde(deny_unknown_fields)]
#[schema(as = Assistant)]
pub struct AssistantView {
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    pub name: String,
    /// As registered: production, development or a version id.
    pub version: String,
    /// The version id Voiceflow resolved it to, when known.
    #[schema(required = true)]
    pub version_id: Option<String>,
    #[schema(required = true)]
    pub project_id: Option<String>,
    #[schema(required = true)]
    pub project_name: Option<String>,
    /// The key's last four characters; the key itself is never shown.
    #[schema(max_length = 4)]
    pub key_hint: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub settings: SettingsView,
    /// Only in the answer to a registration or update, e.g. why Voiceflow's
    /// metadata is missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AssistantSettings)]
pub struct SettingsView {
    #[schema(schema_with = language_schema)]
    pub language: Language,
    #[schema(schema_with = voice_schema, required = true)]
    pub voice: Option<Gender>,
    pub keypad: std::collections::BTreeMap<String, String>,
    pub accept_actions: Vec<String>,
    pub reject_actions: Vec<String>,
    pub save_transcripts: bool,
    /// The numbers a transfer may dial (empty: none).
    pub transfer_targets: Vec<String>,
    /// Turns use Voiceflow's streaming interact.
    pub streaming: bool,
}

/// One of the languages Routee speaks, by its code.
fn language_schema() -> Schema {
    let codes: Vec<&str> = Language::ALL.iter().map(|l| l.code()).collect();
    string_enum(&codes)
}

/// The voice's gender, or none.
fn voice_schema() -> Schema {
    super::openapi::nullable(string_enum(&["female", "male"]))
}

/// The registered assistants.
#[derive(Serialize, ToSchema)]
#[schema(as = AssistantList)]
struct Assistants {
    assistants: Vec<AssistantView>,
}

impl AssistantView {
    fn of(a: &Assistant, warnings: Vec<String>) -> Self {
        let s: &AssistantSettings = &a.settings;
        Self {
            id: a.id.to_string(),
            name: a.name.clone(),
            version: a.version.clone(),
            version_id: a.version_id.clone(),
            project_id: a.project_id.clone(),
            project_name: a.project_name.clone(),
            key_hint: a.key_hint.clone(),
            created_at: a.created_at.rfc3339(),
            updated_at: a.updated_at.rfc3339(),
            settings: SettingsView {
                language: s.language,
                voice: s.gender,
                keypad: s.keypad.clone(),
                accept_actions: s.accept_actions.clone(),
                reject_actions: s.reject_actions.clone(),
                save_transcripts: s.save_transcripts,
                transfer_targets: s.transfer_targets.iter().map(ToString::to_string).collect(),
                streaming: s.streaming,
            },
            warnings,
        }
    }

    fn registered(r: Registered) -> Self {
        Self::of(&r.assistant, r.warnings)
    }
}

/// Transfer targets must lie inside `ALLOWED_DESTINATIONS` like any callee.
fn check_transfer_targets(
    state: &AppState,
    settings: &crate::assistants::SettingsChange,
) -> Result<(), ApiError> {
    let errors: Vec<crate::domain::FieldError> = settings
        .transfer_targets
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, n)| !state.config.allowed_destinations.allows(n))
        .map(|(i, _)| {
            crate::domain::FieldError::new(
                format!("transfer_targets[{i}]"),
                "outside the destinations this gateway may call (ALLOWED_DESTINATIONS)",
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// The body as JSON (`null` when empty); the size limit and syntax errors are
/// reported like everywhere else.
fn json_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|e| body_rejection(&e, state.config.max_body_bytes))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// The `{id}` segment. axum refuses a segment that is not UTF-8 once
/// percent-decoded (with a plain-text 400 of its own): no name can be such a
/// segment, so it names no assistant.
fn assistant_key(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(key)| key)
        .map_err(|_| ApiError::not_found("no assistant has this id or name (it is not UTF-8)"))
}

/// The `{id}` and `{session}` segments, the session parsed (a 422 naming
/// `session`, before the assistant is looked up).
fn session_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, SessionName), ApiError> {
    match path {
        Ok(Path((key, session))) => Ok((key, input::session(&session).map_err(ApiError::invalid)?)),
        Err(PathRejection::FailedToDeserializePathParams(e)) if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { key } if key == "session") => {
            Err(ApiError::invalid(input::session_not_utf8()))
        }
        Err(_) => Err(ApiError::not_found(
            "no assistant has this id or name (it is not UTF-8)",
        )),
    }
}

async fn find(state: &AppState, key: &str) -> Result<Assistant, ApiError> {
    state
        .engine
        .assistants
        .find(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no assistant has the id or name {key:?}")))
}

/// The assistant with its decrypted key, for the conversation tools.
async fn resolve(
    state: &AppState,
    key: &str,
) -> Result<std::sync::Arc<ResolvedAssistant>, ApiError> {
    let id = find(state, key).await?.id;
    match state.engine.assistants.resolve(id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(ApiError::not_found(format!(
            "no assistant has the id or name {key:?}"
        ))),
        Err(ResolveError::Store(e)) => Err(e.into()),
        Err(ResolveError::Key(id, _)) => Err(stored_key_unusable(id)),
    }
}

fn stored_key_unusable(id: AssistantId) -> ApiError {
    ApiError::conflict(
        "stored_key_unusable",
        format!(
            "the assistant's stored API key does not decrypt with GATEWAY_SECRET (or \
             GATEWAY_SECRET_PREVIOUS): give the key again with PATCH /v1/assistants/{id}"
        ),
    )
}

fn tools(state: &AppState) -> Tools<'_> {
    Tools::new(&state.engine, state.config.default_policy)
}

/// Register a Voiceflow assistant
///
/// Checks the key and version with Voiceflow, reads the version's project
/// metadata, and stores the key encrypted. Nothing is stored on any error.
#[utoipa::path(
    post,
    path = "/v1/assistants",
    tag = "assistants",
    operation_id = "registerAssistant",
    extensions(("x-required-role" = json!("admin"))),
    request_body(content = NewAssistantBody, example = json!({
        "name": "ticket-bot",
        "api_key": "VF.DM.0123456789abcdef01234567.ExampleKeyOnly",
        "version": "production",
        "keypad": {"1": "accept", "2": "reject"},
        "language": "en-GB",
        "voice": "female"
    })),
    responses(
        (status = 201, description = "Registered. The assistant (never its key: only \
            key_hint), with warnings when Voiceflow's project metadata could not be read.",
            body = AssistantView,
            headers(("Location" = String, description = "/v1/assistants/{id}")),
            links(
                ("GetAssistant" = (operation_id = "getAssistant", parameters(("id" = "$response.body#/id")))),
                ("UpdateAssistant" = (operation_id = "updateAssistant", parameters(("id" = "$response.body#/id")))),
                ("DeleteAssistant" = (operation_id = "deleteAssistant", parameters(("id" = "$response.body#/id")))),
                ("LaunchSession" = (operation_id = "launchSession", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, response = BadRequest),
        (status = 409, description = "Another assistant has this name (code name_taken).", body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 422, description = "Every bad field in details, Voiceflow's verdict \
            included: the key refused (api_key), the version unusable (version), project_id \
            not the key's project, name required when Voiceflow's metadata is unavailable, \
            save_transcripts without known project and version ids.", body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn register(
    Admin(caller): Admin,
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, HeaderMap, Json<AssistantView>), ApiError> {
    let new = input::registration(&json_body(&state, body)?).map_err(ApiError::invalid)?;
    check_transfer_targets(&state, &new.settings)?;
    let registered = state
        .engine
        .assistants
        .register(&state.engine.voiceflow, new)
        .await
        .map_err(registry_error)?;
    tracing::info!(assistant_id = %registered.assistant.id, api_key = %caller.key, "assistant registered");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/assistants/{}", registered.assistant.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(AssistantView::registered(registered)),
    ))
}

/// List the registered assistants, oldest first
///
/// No answer holds a key: only its last four characters.
#[utoipa::path(
    get,
    path = "/v1/assistants",
    tag = "assistants",
    operation_id = "listAssistants",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "The assistants.", body = Assistants),
        (status = 503, response = Unavailable),
    ),
)]
async fn list(
    _caller: Dispatcher,
    State(state): State<AppState>,
) -> Result<Json<Assistants>, ApiError> {
    let all = state.engine.store.assistants().await?;
    let assistants = all
        .iter()
        .map(|a| AssistantView::of(a, Vec::new()))
        .collect();
    Ok(Json(Assistants { assistants }))
}

/// An assistant, by id or name
///
/// No answer holds a key: only its last four characters.
#[utoipa::path(
    get,
    path = "/v1/assistants/{id}",
    tag = "assistants",
    operation_id = "getAssistant",
    params(AssistantPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "The assistant.", body = AssistantView),
        (status = 404, response = AssistantNotFound),
        (status = 503, response = Unavailable),
    ),
)]
async fn show(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AssistantView>, ApiError> {
    let a = find(&state, &assistant_key(path)?).await?;
    Ok(Json(AssistantView::of(&a, Vec::new())))
}

/// Change an assistant, or rotate its key
///
/// Any of the registration's fields; the others are kept. A new api_key,
/// version or project_id is checked with Voiceflow like a registration.
/// Nothing changes on any error.
#[utoipa::path(
    patch,
    path = "/v1/assistants/{id}",
    tag = "assistants",
    operation_id = "updateAssistant",
    params(AssistantPath),
    extensions(("x-required-role" = json!("admin"))),
    request_body(content = AssistantChangeBody, example = json!({"language": "el-GR", "voice": null})),
    responses(
        (status = 200, description = "Updated: the assistant as it is now, with warnings when \
            Voiceflow's metadata could not be read.", body = AssistantView),
        (status = 400, response = BadRequest),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = "Another assistant has the name (name_taken), the \
            assistant changed meanwhile (changed_concurrently: read it and retry), or its \
            stored key no longer decrypts and must be given again (stored_key_unusable).",
            body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 422, description = "Every bad field in details, as for a registration; \
            nothing to change (body).", body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn update(
    Admin(caller): Admin,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AssistantView>, ApiError> {
    let id = find(&state, &assistant_key(path)?).await?.id;
    let change = input::update(&json_body(&state, body)?).map_err(ApiError::invalid)?;
    check_transfer_targets(&state, &change.settings)?;
    let updated = state
        .engine
        .assistants
        .update(&state.engine.voiceflow, id, change)
        .await
        .map_err(registry_error)?;
    tracing::info!(assistant_id = %id, api_key = %caller.key, "assistant changed");
    Ok(Json(AssistantView::registered(updated)))
}

/// Delete an assistant (only the gateway's record, nothing in Voiceflow)
///
/// Refused while callouts that are still calling use it.
#[utoipa::path(
    delete,
    path = "/v1/assistants/{id}",
    tag = "assistants",
    operation_id = "deleteAssistant",
    params(AssistantPathNoExample),
    extensions(("x-required-role" = json!("admin"))),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = "Running callouts use the assistant (code \
            assistant_in_use): cancel them or let them finish.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn delete(
    Admin(caller): Admin,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = find(&state, &assistant_key(path)?).await?.id;
    state
        .engine
        .assistants
        .delete(id)
        .await
        .map_err(registry_error)?;
    tracing::info!(assistant_id = %id, api_key = %caller.key, "assistant deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Start (or restart) a test conversation
///
/// Runs the assistant's launch turn for this session, without a call, and
/// renders it as a call would (the assistant's settings, the default policy).
#[utoipa::path(
    post,
    path = "/v1/assistants/{id}/sessions/{session}/launch",
    tag = "assistants",
    operation_id = "launchSession",
    params(SessionPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    request_body(content = Option<SessionLaunchBody>, example = json!(
        {"variables": {"contact_name": "Alice", "ticket": "Server room 2 is flooding."}}
    )),
    responses(
        (status = 200, description = TURN, body = TurnReportSchema, links(
            ("Interact" = (operation_id = "interactSession", parameters(("id" = "$request.path.id"), ("session" = "$response.body#/session")))),
            ("GetState" = (operation_id = "getSessionState", parameters(("id" = "$request.path.id"), ("session" = "$response.body#/session")))),
        )),
        (status = 400, response = BadRequestOrRefused),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = KEY_CONFLICT, body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 422, description = SESSION_INVALID, body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn launch(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TurnReport>, ApiError> {
    tool_turn(&state, path, body, input::launch).await
}

/// One turn of a test conversation
///
/// Exactly one of digits (read as a call reads them: a key of the last menu,
/// the keypad, else text), text, no_reply or a raw Dialog Manager action.
#[utoipa::path(
    post,
    path = "/v1/assistants/{id}/sessions/{session}/interact",
    tag = "assistants",
    operation_id = "interactSession",
    params(SessionPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    request_body(content = SessionInputBody, example = json!({"digits": "1"})),
    responses(
        (status = 200, description = TURN, body = TurnReportSchema, links(
            ("Interact" = (operation_id = "interactSession", parameters(("id" = "$request.path.id"), ("session" = "$response.body#/session")))),
            ("GetState" = (operation_id = "getSessionState", parameters(("id" = "$request.path.id"), ("session" = "$response.body#/session")))),
        )),
        (status = 400, response = BadRequestOrRefused),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = "Silence (no_reply, or digits of only #) when the \
            previous turn sent no no-reply trace (code nothing_to_send: a call would tell \
            Voiceflow nothing), or the stored key no longer decrypts (stored_key_unusable).",
            body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 422, description = SESSION_INVALID, body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn interact(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TurnReport>, ApiError> {
    tool_turn(&state, path, body, input::interact).await
}

/// One turn of a test session, its input read from the body by `parse`.
async fn tool_turn(
    state: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&Value) -> Result<crate::engine::tools::Input, Vec<crate::domain::FieldError>>,
) -> Result<Json<TurnReport>, ApiError> {
    let (key, session) = session_path(path)?;
    let given = parse(&json_body(state, body)?).map_err(ApiError::invalid)?;
    let resolved = resolve(state, &key).await?;
    let report = tools(state)
        .turn(&resolved, &session, given)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(Json(report))
}

/// A test conversation's state, in Voiceflow and in the gateway
///
/// Voiceflow's stored state ({} when none) and the gateway's (the last menu
/// and turn; null when none).
#[utoipa::path(
    get,
    path = "/v1/assistants/{id}/sessions/{session}/state",
    tag = "assistants",
    operation_id = "getSessionState",
    params(SessionPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "Voiceflow's state of the session and what the gateway \
            keeps.", body = SessionState),
        (status = 400, response = Refused),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = KEY_CONFLICT, body = ErrorBody),
        (status = 422, description = SESSION_INVALID, body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn get_state(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SessionState>, ApiError> {
    let (key, session) = session_path(path)?;
    let resolved = resolve(&state, &key).await?;
    let (vf_state, kept) = tools(&state)
        .state(&resolved, &session)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(Json(SessionState {
        gateway: kept,
        session: session.as_str().to_owned(),
        state: vf_state,
        user_id: session.user_id(resolved.assistant.id),
    }))
}

/// Forget a test conversation
///
/// Deletes the session's state in Voiceflow and the gateway's.
#[utoipa::path(
    delete,
    path = "/v1/assistants/{id}/sessions/{session}/state",
    tag = "assistants",
    operation_id = "deleteSessionState",
    params(SessionPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 204, description = "Forgotten, in Voiceflow and here."),
        (status = 400, response = Refused),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = KEY_CONFLICT, body = ErrorBody),
        (status = 422, description = SESSION_INVALID, body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn delete_state(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (key, session) = session_path(path)?;
    let resolved = resolve(&state, &key).await?;
    tools(&state)
        .delete_state(&resolved, &session)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Merge variables into a test conversation's state
///
/// The body is the flat object of variables.
#[utoipa::path(
    patch,
    path = "/v1/assistants/{id}/sessions/{session}/variables",
    tag = "assistants",
    operation_id = "patchSessionVariables",
    params(SessionPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    request_body(content = VariablesPatchBody, example = json!({"ticket": "4711", "priority": 2})),
    responses(
        (status = 200, description = "The state Voiceflow answers after the merge.", body = SessionVariables),
        (status = 400, response = BadRequestOrRefused),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = KEY_CONFLICT, body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 422, description = SESSION_INVALID, body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn patch_variables(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SessionVariables>, ApiError> {
    let (key, session) = session_path(path)?;
    let vars = input::variables(&json_body(&state, body)?).map_err(ApiError::invalid)?;
    let resolved = resolve(&state, &key).await?;
    let vf_state = tools(&state)
        .patch_variables(&resolved, &session, &vars)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(Json(SessionVariables {
        session: session.as_str().to_owned(),
        state: vf_state,
        user_id: session.user_id(resolved.assistant.id),
    }))
}

/// Save a test conversation's transcript to Voiceflow
///
/// Every field is optional: device phone, os ivr-gateway, browser
/// conversation-tools, user_name test session <session> by default.
#[utoipa::path(
    put,
    path = "/v1/assistants/{id}/sessions/{session}/transcript",
    tag = "assistants",
    operation_id = "saveSessionTranscript",
    params(SessionPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    request_body(content = Option<TranscriptBody>, example = json!(
        {"device": "desktop", "os": "macOS", "browser": "curl", "user_name": "QA run 12"}
    )),
    responses(
        (status = 200, description = "Saved: Voiceflow's transcript record.", body = SavedTranscript),
        (status = 400, response = BadRequestOrRefused),
        (status = 404, response = AssistantNotFound),
        (status = 409, description = "The assistant's Voiceflow project and version ids are \
            unknown (code transcripts_unavailable), or its stored key no longer decrypts \
            (stored_key_unusable).", body = ErrorBody),
        (status = 413, description = TOO_LARGE, body = ErrorBody),
        (status = 422, description = SESSION_INVALID, body = ErrorBody),
        VoiceflowFailures,
    ),
)]
async fn save_transcript(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SavedTranscript>, ApiError> {
    let (key, session) = session_path(path)?;
    let details =
        input::transcript(&json_body(&state, body)?, &session).map_err(ApiError::invalid)?;
    let resolved = resolve(&state, &key).await?;
    let record = tools(&state)
        .save_transcript(&resolved, &session, details)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(Json(SavedTranscript {
        session: session.as_str().to_owned(),
        transcript: record,
        user_id: session.user_id(resolved.assistant.id),
    }))
}

const TOO_LARGE: &str = "The body is larger than MAX_BODY_BYTES (code payload_too_large).";
const TURN: &str = "The turn: Voiceflow's answers and the dialplan a call would get.";
const SESSION_INVALID: &str =
    "The session name (session) or the body is wrong: every bad field in details.";
const KEY_CONFLICT: &str = "The assistant's stored key no longer decrypts with GATEWAY_SECRET \
                            (code stored_key_unusable): give it again with PATCH.";

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Invalid(details) => ApiError::invalid(details),
        RegistryError::NameTaken(name) => ApiError::conflict(
            "name_taken",
            format!("an assistant named {name:?} already exists: choose another name"),
        ),
        RegistryError::NotFound => ApiError::not_found("no such assistant"),
        RegistryError::InUse(n) => ApiError::conflict(
            "assistant_in_use",
            format!(
                "{n} running callout(s) use this assistant: cancel them or let them finish, \
                 then delete it"
            ),
        ),
        RegistryError::Changed => ApiError::conflict("changed_concurrently", e.to_string()),
        RegistryError::Voiceflow(ref vf) => voiceflow_error(vf, None),
        RegistryError::StoredKey(id, _) => stored_key_unusable(id),
        RegistryError::Store(s) => s.into(),
    }
}

fn tool_error(e: ToolError, assistant: AssistantId) -> ApiError {
    match e {
        ToolError::NothingToSend(message) => ApiError::conflict("nothing_to_send", message),
        ToolError::TranscriptsUnavailable(_) => {
            ApiError::conflict("transcripts_unavailable", e.to_string())
        }
        ToolError::Voiceflow(vf) => voiceflow_error(&vf, Some(assistant)),
        ToolError::Store(s) => s.into(),
    }
}

/// Voiceflow's failures as the gateway's: a 502 when Voiceflow refused or
/// failed, 504 when it was too slow, 503 when rate-limited, 400 when it
/// refused the request itself. Messages are Voiceflow's, with keys cut out.
fn voiceflow_error(e: &VoiceflowError, assistant: Option<AssistantId>) -> ApiError {
    let bad_gateway = |code, message: String| ApiError::new(StatusCode::BAD_GATEWAY, code, message);
    let error = match e {
        VoiceflowError::Unauthorized => {
            let path = assistant.map_or("{id}".to_owned(), |id| id.to_string());
            bad_gateway(
                "voiceflow_refused_key",
                format!(
                    "Voiceflow refused the assistant's stored API key (revoked or rotated?): \
                     give the new key with PATCH /v1/assistants/{path}"
                ),
            )
        }
        VoiceflowError::VersionNotFound { message } => bad_gateway(
            "voiceflow_version_unusable",
            format!("Voiceflow cannot use the assistant's version: {message}"),
        ),
        VoiceflowError::RateLimited { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "voiceflow_rate_limited",
            "Voiceflow's rate limit for this key was hit: retry shortly",
        ),
        VoiceflowError::Timeout { .. } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "voiceflow_timeout",
            "Voiceflow did not answer in time",
        ),
        VoiceflowError::Connect { .. } | VoiceflowError::Transport { .. } => bad_gateway(
            "voiceflow_unreachable",
            "Voiceflow could not be reached".into(),
        ),
        // 408: Voiceflow gave up waiting (retried once already): slow, not refused.
        VoiceflowError::Upstream { status: 408, .. } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "voiceflow_timeout",
            "Voiceflow did not answer in time (it answered 408)",
        ),
        VoiceflowError::Upstream { status, message } if (400..500).contains(status) => {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "voiceflow_refused_request",
                format!("Voiceflow refused the request (HTTP {status}): {message}"),
            )
        }
        VoiceflowError::Upstream { .. } => bad_gateway("voiceflow_error", e.to_string()),
        VoiceflowError::Decode { .. } => bad_gateway("voiceflow_bad_answer", e.to_string()),
        VoiceflowError::Invalid { .. } => bad_gateway("voiceflow_request_invalid", e.to_string()),
    };
    if error.status.is_server_error() {
        tracing::warn!(error = %e, code = error.code, "Voiceflow request failed");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16) -> ApiError {
        let e = VoiceflowError::Upstream {
            status,
            message: "m".into(),
        };
        voiceflow_error(&e, None)
    }

    #[test]
    fn voiceflow_refusing_is_a_400_and_voiceflow_timing_out_a_504() {
        assert_eq!(
            (upstream(400).status, upstream(400).code),
            (StatusCode::BAD_REQUEST, "voiceflow_refused_request")
        );
        assert_eq!(
            (upstream(408).status, upstream(408).code),
            (StatusCode::GATEWAY_TIMEOUT, "voiceflow_timeout")
        );
        assert_eq!(upstream(500).status, StatusCode::BAD_GATEWAY);
    }
}
