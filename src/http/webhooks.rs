//! Routee-facing webhooks: status callbacks and COLLECT events.
//!
//! Every URL the gateway gives Routee carries `sig`, an HMAC over the callout, the
//! call and the purpose (and the turn, for COLLECT). The [`Signed`] extractor checks
//! it before any handler runs: missing → 401, wrong (forged, or replayed for another
//! call or turn) → 403, and nothing is read or changed. Paths never log the
//! signature.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::error::{ApiError, body_rejection};
use super::state::AppState;
use crate::domain::{CallId, CalloutId};
use crate::routee::{CollectEvent, StatusCallback};
use crate::security::Purpose;
use crate::telemetry::metrics as m;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/routee/status/{callout}/{call}", post(status))
        .route("/routee/collect/{callout}/{call}/{turn}", post(collect))
        .route("/routee/machine/{callout}/{call}", post(machine))
}

#[derive(Debug, Deserialize)]
struct SigQuery {
    sig: Option<String>,
}

/// A webhook whose URL signature verified.
#[derive(Debug, Clone, Copy)]
pub struct Signed {
    pub callout: CalloutId,
    pub call: CallId,
    pub turn: Option<u32>,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Path(segments) = Path::<Vec<String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("unknown webhook"))?;
        let (callout, call, turn) = match segments.as_slice() {
            [co, call] => (co, call, None),
            [co, call, turn] => (
                co,
                call,
                Some(
                    turn.parse::<u32>()
                        .map_err(|_| ApiError::not_found("unknown webhook"))?,
                ),
            ),
            _ => return Err(ApiError::not_found("unknown webhook")),
        };
        let callout: CalloutId = callout
            .parse()
            .map_err(|_| ApiError::not_found("unknown webhook"))?;
        let call: CallId = call
            .parse()
            .map_err(|_| ApiError::not_found("unknown webhook"))?;
        let Query(q) = Query::<SigQuery>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::unauthorized("missing webhook signature"))?;
        let Some(sig) = q.sig.filter(|s| !s.is_empty()) else {
            return Err(ApiError::unauthorized("missing webhook signature"));
        };
        let purpose = match turn {
            None if parts.uri.path().starts_with("/routee/machine/") => Purpose::Machine,
            None => Purpose::Status,
            Some(turn) => Purpose::Collect { turn },
        };
        if !state.engine.signer.verify(purpose, callout, call, &sig) {
            tracing::warn!(callout_id = %callout, call_id = %call, "refused a webhook with a bad signature");
            return Err(ApiError::forbidden("bad webhook signature"));
        }
        Ok(Signed {
            callout,
            call,
            turn,
        })
    }
}

fn record(route: &'static str, started: Instant, status: StatusCode) {
    metrics::histogram!(m::WEBHOOK_DURATION, "route" => route, "status_class" => m::status_class(status.as_u16()))
        .record(started.elapsed().as_secs_f64());
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// The body as JSON, whether it came as JSON or as a form.
fn body_value(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    let form = content_type.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
        let mut obj = serde_json::Map::new();
        let mut status = serde_json::Map::new();
        for (k, v) in pairs {
            match k.as_str() {
                "status.name" | "status[name]" | "statusName" => {
                    status.insert("name".into(), Value::String(v));
                }
                "status.updatedDate" | "status[updatedDate]" | "updatedDate" => {
                    status.insert("updatedDate".into(), Value::String(v));
                }
                _ => {
                    obj.insert(k, Value::String(v));
                }
            }
        }
        if !status.is_empty() {
            obj.insert("status".into(), Value::Object(status));
        }
        return Some(Value::Object(obj));
    }
    serde_json::from_slice(body).ok()
}

/// A status callback body as the status webhook reads it: JSON or a form
/// (`content_type`), with `status` possibly flattened to its name. Public so the
/// parser can be fuzzed exactly as the webhook runs it.
pub fn parse_status(content_type: Option<&str>, body: &[u8]) -> Result<StatusCallback, String> {
    let mut value = body_value(content_type, body).ok_or("the body is neither JSON nor a form")?;
    // Some senders flatten `status` to its name.
    if let Some(Value::String(name)) = value.get("status").cloned() {
        value["status"] = json!({ "name": name });
    }
    serde_json::from_value(value).map_err(|e| format!("not a status callback: {e}"))
}

/// A COLLECT event body as the collect webhook reads it. An unreadable body
/// still gets a dialplan: it counts as no keys.
pub fn parse_collect(content_type: Option<&str>, body: &[u8]) -> CollectEvent {
    body_value(content_type, body)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// `POST /routee/status/{callout}/{call}`: a call's status changed.
async fn status(
    signed: Signed,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_rejection(&e, state.config.max_body_bytes).into_response(),
    };
    let span =
        tracing::info_span!("status_webhook", callout_id = %signed.callout, call_id = %signed.call);
    let cb = match parse_status(content_type(&headers), &body) {
        Ok(cb) => cb,
        Err(e) => {
            let response = ApiError::bad_request(e).into_response();
            record("status", started, response.status());
            return response;
        }
    };
    // In its own task, like key presses: a status received is applied even if the
    // sender hangs up before our answer.
    let engine = state.engine.clone();
    let work = state.engine.tasks().spawn(
        async move {
            tracing::debug!(status = %cb.status.name, "status callback");
            engine.on_status(signed.callout, signed.call, &cb).await
        }
        .instrument(span),
    );
    let response = match work.await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"ok": true}))).into_response(),
        // Not stored: a 5xx makes the carrier deliver it again.
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => {
            tracing::error!(callout_id = %signed.callout, call_id = %signed.call, error = %e, "the status task failed");
            ApiError::unavailable("the status could not be applied; retry").into_response()
        }
    };
    record("status", started, response.status());
    response
}

/// `POST /routee/machine/{callout}/{call}`: Routee's answering-machine
/// detection met a machine (`machineDetection.eventUrl`; the body is
/// undocumented and not read). Answers the voicemail dialplan.
async fn machine(signed: Signed, State(state): State<AppState>) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!("machine_webhook", callout_id = %signed.callout, call_id = %signed.call);
    let engine = state.engine.clone();
    let work = state.engine.tasks().spawn(
        async move { engine.on_machine(signed.callout, signed.call).await }.instrument(span),
    );
    let answer = work.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the machine detection task failed");
        r#"{"verbs":[{"type":"PAUSE","duration":1}]}"#.to_owned()
    });
    let response = ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    record("machine", started, response.status());
    response
}

/// `POST /routee/collect/{callout}/{call}/{turn}`: keys pressed (or the call ended).
/// Always answers a dialplan.
async fn collect(
    signed: Signed,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    // An oversized body cannot be Routee's: refuse it like any other endpoint.
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_rejection(&e, state.config.max_body_bytes).into_response(),
    };
    let span = tracing::info_span!("collect_webhook", callout_id = %signed.callout, call_id = %signed.call, turn = signed.turn);
    let event = parse_collect(content_type(&headers), &body);
    // The work runs in a task of its own (`Engine::on_collect`): if Routee stops
    // waiting and drops the connection, hyper drops this handler, but the turn
    // (and any decision in it) is still committed, or an accept would be lost.
    let answer = state
        .engine
        .on_collect(
            signed.callout,
            signed.call,
            signed.turn.unwrap_or(0),
            &event,
        )
        .instrument(span)
        .await;
    let response = ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    record("collect", started, response.status());
    response
}
