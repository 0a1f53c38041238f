//! The sandbox's own endpoints (the console's sandbox page uses them; they
//! answer 404 in live mode, where there is no simulator):
//!
//! - `GET /v1/sandbox/callees`: the simulated callees, in the behaviour-file
//!   format of `SIM_CALLEES_FILE` (see [`crate::sim`]);
//! - `PUT /v1/sandbox/callees`: replaces them all; a bad entry is a 422 naming
//!   it (`callees.<phone>`), and nothing changes;
//! - `POST /v1/sandbox/seed`: the seed scenario of `ivr-gateway demo` (Alice
//!   never answers, Bob rejects, Carol accepts): scripts those three callees and
//!   creates the callout, answering 201 with it as `POST /v1/callouts` does.
//!
//! The dispatcher role is enough: the callees are the sandbox's pretend phone
//! book, and the seed scenario is a callout like any other.
//!
//! Also here, for every mode: `GET /v1/me`, who the presented key is (its role)
//! and what the gateway is (sandbox or live, keys needed or not), which is how
//! the console signs in and decides what to show.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Dispatcher;
use super::callout_input;
use super::callouts::{resolve_script, rules};
use super::error::{ApiError, ErrorBody, body_rejection};
use super::openapi::{BadRequest, Unavailable};
use super::state::AppState;
use crate::domain::FieldError;
use crate::engine::view::CalloutView;
use crate::sim::{Callees, CalleesError, SimHandle};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(callees, put_callees))
        .routes(routes!(seed))
}

/// The presented key's role, and what this gateway is
///
/// `{role: dispatcher | admin, mode: sandbox | live, keys_required}`
/// (`keys_required` is false in the open sandbox: no API_KEYS, loopback).
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "callouts",
    operation_id = "me",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses((status = 200, description = "Who you are here.", body = Object)),
)]
async fn me(caller: Dispatcher, State(state): State<AppState>) -> Json<Value> {
    let Dispatcher(super::auth::Caller { role, .. }) = caller;
    Json(json!({
        "role": role.as_str(),
        "mode": if state.config.is_sandbox() { "sandbox" } else { "live" },
        "keys_required": !state.config.auth_disabled(),
    }))
}

fn simulator(state: &AppState) -> Result<&SimHandle, ApiError> {
    state.sandbox.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "the simulated callees exist only in the sandbox (this gateway is live)",
        )
    })
}

/// The simulated phones
///
/// The behaviour-file format of SIM_CALLEES_FILE: phone numbers (E.164) and
/// `default` to a script.
#[utoipa::path(
    get,
    path = "/v1/sandbox/callees",
    tag = "sandbox",
    operation_id = "getSandboxCallees",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "By phone number, and default.", body = Object),
        (status = 404, description = "Not in the sandbox (code not_found).", body = ErrorBody),
    ),
)]
async fn callees(
    _caller: Dispatcher,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(simulator(&state)?.callees().to_json()))
}

/// Replace the simulated phones
///
/// The whole behaviour file: phone numbers (E.164) and `default` to a script,
/// a behaviour (never_answers, busy, fails, rejects, silent, accepts;
/// `{press: {keys, ring_s?, after_s?}}`, `{silent: {ring_s?}}`,
/// `{hang_up: {after_s, ring_s?}}`) or `{attempts: [behaviour, ...]}`.
#[utoipa::path(
    put,
    path = "/v1/sandbox/callees",
    tag = "sandbox",
    operation_id = "putSandboxCallees",
    extensions(("x-required-role" = json!("dispatcher"))),
    request_body(content((Object = "application/json", example = json!({
        "default": "accepts", "+306900000001": "never_answers", "+306900000002": {"press": {"keys": "2"}}
    })))),
    responses(
        (status = 204, description = "Replaced: the next calls use them."),
        (status = 400, response = BadRequest),
        (status = 404, description = "Not in the sandbox (code not_found).", body = ErrorBody),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES.", body = ErrorBody),
        (status = 422, description = "An entry is wrong: details name it (callees.<phone>).", body = ErrorBody),
    ),
)]
async fn put_callees(
    _caller: Dispatcher,
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let sim = simulator(&state)?;
    let body = body.map_err(|e| body_rejection(&e, state.config.max_body_bytes))?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let parsed = Callees::from_value(&value).map_err(|e| {
        let field = match &e {
            CalleesError::Entry { entry, .. } => format!("callees.{entry}"),
            _ => "callees".to_owned(),
        };
        let message = match e {
            CalleesError::Entry { message, .. } => message,
            other => other.to_string(),
        };
        ApiError::invalid(vec![FieldError::new(field, message)])
    })?;
    sim.set_callees(parsed);
    Ok(StatusCode::NO_CONTENT)
}

/// Start the seed scenario: Alice never answers, Bob rejects, Carol accepts
#[utoipa::path(
    post,
    path = "/v1/sandbox/seed",
    tag = "sandbox",
    operation_id = "startSeedScenario",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 201, description = "Started: the callout as POST /v1/callouts answers it.",
            body = CalloutView, headers(("Location" = String))),
        (status = 404, description = "Not in the sandbox (code not_found).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn seed(
    Dispatcher(caller): Dispatcher,
    State(state): State<AppState>,
) -> Result<(StatusCode, HeaderMap, Json<CalloutView>), ApiError> {
    let sim = simulator(&state)?;
    let body = crate::demo::seed_callout(false);
    let draft = callout_input::parse(&body, None, &rules(&state)).map_err(ApiError::invalid)?;
    let input = resolve_script(&state, draft).await?;
    crate::demo::script_seed_callees(sim);
    let (callout, events) = state
        .engine
        .create_callout_by(input, Some(caller.key.as_str()))
        .await?;
    tracing::info!(callout_id = %callout.id, api_key = %caller.key, "seed scenario started");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/callouts/{}", callout.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(CalloutView::build(&callout, Some(&events))),
    ))
}
