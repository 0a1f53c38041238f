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
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::auth::Dispatcher;
use super::callout_input;
use super::callouts::{resolve_script, rules};
use super::error::{ApiError, body_rejection};
use super::state::AppState;
use crate::domain::FieldError;
use crate::engine::view::CalloutView;
use crate::sim::{Callees, CalleesError, SimHandle};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(me))
        .route("/v1/sandbox/callees", get(callees).put(put_callees))
        .route("/v1/sandbox/seed", post(seed))
}

/// `GET /v1/me`.
async fn me(caller: Dispatcher, State(state): State<AppState>) -> Json<Value> {
    let Dispatcher(super::auth::Caller(role)) = caller;
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

/// `GET /v1/sandbox/callees`.
async fn callees(
    _caller: Dispatcher,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(simulator(&state)?.callees().to_json()))
}

/// `PUT /v1/sandbox/callees`: the whole behaviour file.
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

/// `POST /v1/sandbox/seed`.
async fn seed(
    _caller: Dispatcher,
    State(state): State<AppState>,
) -> Result<(StatusCode, HeaderMap, Json<CalloutView>), ApiError> {
    let sim = simulator(&state)?;
    let body = crate::demo::seed_callout(false);
    let draft = callout_input::parse(&body, None, &rules(&state)).map_err(ApiError::invalid)?;
    let input = resolve_script(&state, draft).await?;
    crate::demo::script_seed_callees(sim);
    let (callout, events) = state.engine.create_callout(input).await?;
    tracing::info!(callout_id = %callout.id, "seed scenario started");
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
