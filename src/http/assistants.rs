//! The assistants API: register, read, update (rotate the key) and delete
//! Voiceflow assistants (admin), and the conversation tools (dispatcher or
//! admin) that run an assistant's conversation without a call.
//!
//! Roles: changing the registry needs the admin role. Reading it needs the
//! dispatcher role: dispatchers name an assistant in every Voiceflow-driven
//! callout, and no answer holds more of a key than its last four characters.
//!
//! No answer, and no log line written here, ever holds an API key.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

use super::assistant_input as input;
use super::auth::{Admin, Dispatcher};
use super::error::{ApiError, body_rejection};
use super::state::AppState;
use crate::assistants::tools::{SessionName, ToolError, Tools, TurnReport};
use crate::assistants::{Registered, RegistryError, ResolveError, ResolvedAssistant};
use crate::domain::{Assistant, AssistantId, AssistantSettings};
use crate::routee::{Gender, Language};
use crate::voiceflow::VoiceflowError;

pub fn router() -> Router<AppState> {
    // Paths are literals, so `tests/api/openapi.rs` can find each in the source.
    Router::new()
        .route("/v1/assistants", post(register).get(list))
        .route(
            "/v1/assistants/{id}",
            get(show).patch(update).delete(delete),
        )
        .route(
            "/v1/assistants/{id}/sessions/{session}/launch",
            post(launch),
        )
        .route(
            "/v1/assistants/{id}/sessions/{session}/interact",
            post(interact),
        )
        .route(
            "/v1/assistants/{id}/sessions/{session}/state",
            get(get_state).delete(delete_state),
        )
        .route(
            "/v1/assistants/{id}/sessions/{session}/variables",
            patch(patch_variables),
        )
        .route(
            "/v1/assistants/{id}/sessions/{session}/transcript",
            put(save_transcript),
        )
}

/// An assistant as the API shows it: never the key, only its last characters.
#[derive(Debug, Clone, Serialize)]
pub struct AssistantView {
    pub id: String,
    pub name: String,
    /// As registered: `production`, `development` or a version id.
    pub version: String,
    /// The version id Voiceflow resolved it to, when known.
    pub version_id: Option<String>,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub key_hint: String,
    pub created_at: String,
    pub updated_at: String,
    pub settings: SettingsView,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub language: Language,
    pub voice: Option<Gender>,
    pub keypad: std::collections::BTreeMap<String, String>,
    pub accept_actions: Vec<String>,
    pub reject_actions: Vec<String>,
    pub save_transcripts: bool,
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
            },
            warnings,
        }
    }

    fn registered(r: Registered) -> Self {
        Self::of(&r.assistant, r.warnings)
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

/// `POST /v1/assistants`: checks the key with Voiceflow, then stores it encrypted.
async fn register(
    _caller: Admin,
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, HeaderMap, Json<AssistantView>), ApiError> {
    let new = input::registration(&json_body(&state, body)?).map_err(ApiError::invalid)?;
    let registered = state
        .engine
        .assistants
        .register(&state.engine.voiceflow, new)
        .await
        .map_err(registry_error)?;
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

/// `GET /v1/assistants`: oldest first.
async fn list(_caller: Dispatcher, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = state.engine.store.assistants().await?;
    let views: Vec<AssistantView> = all
        .iter()
        .map(|a| AssistantView::of(a, Vec::new()))
        .collect();
    Ok(Json(json!({ "assistants": views })))
}

/// `GET /v1/assistants/{id}`: by id or name.
async fn show(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AssistantView>, ApiError> {
    let a = find(&state, &assistant_key(path)?).await?;
    Ok(Json(AssistantView::of(&a, Vec::new())))
}

/// `PATCH /v1/assistants/{id}`: new settings, name, or key (checked first).
async fn update(
    _caller: Admin,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AssistantView>, ApiError> {
    let id = find(&state, &assistant_key(path)?).await?.id;
    let change = input::update(&json_body(&state, body)?).map_err(ApiError::invalid)?;
    let updated = state
        .engine
        .assistants
        .update(&state.engine.voiceflow, id, change)
        .await
        .map_err(registry_error)?;
    Ok(Json(AssistantView::registered(updated)))
}

/// `DELETE /v1/assistants/{id}`: refused while running callouts use it.
async fn delete(
    _caller: Admin,
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
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../sessions/{session}/launch`.
async fn launch(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TurnReport>, ApiError> {
    tool_turn(&state, path, body, input::launch).await
}

/// `POST .../sessions/{session}/interact`.
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
    parse: fn(&Value) -> Result<crate::assistants::tools::Input, Vec<crate::domain::FieldError>>,
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

/// `GET .../sessions/{session}/state`: Voiceflow's state and the gateway's.
async fn get_state(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (key, session) = session_path(path)?;
    let resolved = resolve(&state, &key).await?;
    let (vf_state, kept) = tools(&state)
        .state(&resolved, &session)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(Json(json!({
        "session": session.as_str(),
        "user_id": session.user_id(resolved.assistant.id),
        "state": vf_state,
        "gateway": kept,
    })))
}

/// `DELETE .../sessions/{session}/state`.
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

/// `PATCH .../sessions/{session}/variables`: a flat object.
async fn patch_variables(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (key, session) = session_path(path)?;
    let vars = input::variables(&json_body(&state, body)?).map_err(ApiError::invalid)?;
    let resolved = resolve(&state, &key).await?;
    let vf_state = tools(&state)
        .patch_variables(&resolved, &session, &vars)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(Json(json!({
        "session": session.as_str(),
        "user_id": session.user_id(resolved.assistant.id),
        "state": vf_state,
    })))
}

/// `PUT .../sessions/{session}/transcript`.
async fn save_transcript(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (key, session) = session_path(path)?;
    let details =
        input::transcript(&json_body(&state, body)?, &session).map_err(ApiError::invalid)?;
    let resolved = resolve(&state, &key).await?;
    let record = tools(&state)
        .save_transcript(&resolved, &session, details)
        .await
        .map_err(|e| tool_error(e, resolved.assistant.id))?;
    Ok(Json(json!({
        "session": session.as_str(),
        "user_id": session.user_id(resolved.assistant.id),
        "transcript": record,
    })))
}

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
