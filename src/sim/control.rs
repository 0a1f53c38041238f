//! The simulator's own HTTP control API, under `/sim/` on the carrier's listener:
//! what the demo, an operator poking at the sandbox, or a test in another
//! language uses instead of [`SimHandle`](super::SimHandle).
//!
//! | method and path | body | effect |
//! |---|---|---|
//! | `GET /sim/calls` | | every call placed ([`SimCallRecord`](super::SimCallRecord)s) |
//! | `GET /sim/callees` | | the callee map, in the behaviour-file format |
//! | `PUT /sim/callees` | a behaviour file | replaces the whole map |
//! | `PUT /sim/callees/{phone}` | one script | sets one number (`default` sets the default) |
//! | `GET`, `PUT /sim/faults` | [`Faults`] | reads or replaces the faults |
//! | `POST /sim/reset` | | forgets calls and attempt counts, clears faults, restores the initial callees |
//!
//! Refusals are `400 {"error": {"code", "message"}}`. The API has no
//! authentication: the simulator listens on loopback, inside the sandbox.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use super::callees::{CalleeScript, Callees};
use super::faults::{FaultState, Faults};
use super::state::Shared;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sim/calls", get(calls))
        .route("/sim/callees", get(get_callees).put(put_callees))
        .route("/sim/callees/{phone}", put(put_callee))
        .route("/sim/faults", get(get_faults).put(put_faults))
        .route("/sim/reset", post(reset))
}

fn bad_request(code: &str, message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

async fn calls(State(sim): State<Arc<Shared>>) -> Response {
    Json(sim.records()).into_response()
}

async fn get_callees(State(sim): State<Arc<Shared>>) -> Response {
    Json(sim.lock().callees.to_json()).into_response()
}

async fn put_callees(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match Callees::from_json(&text) {
        Ok(callees) => {
            sim.lock().callees = callees;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request("invalid_callees", e.to_string()),
    }
}

async fn put_callee(
    State(sim): State<Arc<Shared>>,
    Path(phone): Path<String>,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    match CalleeScript::from_json(&text) {
        Ok(script) => {
            let mut state = sim.lock();
            if phone == "default" {
                state.callees.set_default(script);
            } else {
                state.callees.insert(&phone, script);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request("invalid_callee", format!("{phone}: {e}")),
    }
}

async fn get_faults(State(sim): State<Arc<Shared>>) -> Response {
    Json(sim.lock().faults.faults.clone()).into_response()
}

async fn put_faults(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return bad_request("invalid_faults", e.to_string()),
    };
    if let Err(e) = faults.validate() {
        return bad_request("invalid_faults", e);
    }
    sim.lock().faults = FaultState::new(faults);
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(sim): State<Arc<Shared>>) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}
