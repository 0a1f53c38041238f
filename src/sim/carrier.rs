//! The Routee endpoints the simulator serves: the OAuth2 token endpoint, creating
//! a conversation, hanging up or rejecting a call leg, and conversation tracking.
//!
//! Requests are validated the way Routee documents (reference §1, §2, §3, §6)
//! and refused with Routee's error body `{code, developerMessage}`, whose 9-digit
//! code is the HTTP status, the module (`013` voice, `000` generic) and `000`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use base64::Engine;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::call;
use super::dialplan_rules::{check_dialplan, check_url};
use super::faults::RefusedCreation;
use super::state::{EndRefused, Shared, TOKEN_LIFETIME, deadline, now_rfc3339};
use crate::domain::phone::E164;
use crate::lenient;
use crate::routee::{CallAction, CallActionBody, CreateConversation, Destination, ErrorBody};

const MODULE_VOICE: &str = "013";
const MODULE_GENERIC: &str = "000";

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/voice/conversation", post(create_conversation))
        .route("/voice/conversation/{message_id}", put(control_call))
        .route(
            "/voice/tracking/conversation/{tracking_id}",
            axum::routing::get(tracking),
        )
}

/// A Routee error answer.
pub(crate) fn routee_error(
    status: StatusCode,
    module: &str,
    message: impl Into<String>,
) -> Response {
    let body = ErrorBody {
        code: format!("{}{module}000", status.as_u16()),
        developer_message: message.into(),
    };
    (status, Json(body)).into_response()
}

fn unauthorized() -> Response {
    routee_error(
        StatusCode::UNAUTHORIZED,
        MODULE_GENERIC,
        "Full authentication is required: send Authorization: Bearer <access_token>",
    )
}

/// Whether the request carries a valid `Authorization: Bearer` token issued here.
fn authorized(sim: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| sim.token_valid(t.trim()))
}

/// `POST /oauth/token`: client credentials in HTTP Basic, form `grant_type`.
async fn token(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let fail = {
        let mut state = sim.lock();
        let fail = state.faults.take_token_failure();
        if fail {
            state.injected.token_failures += 1;
        }
        fail
    };
    if fail {
        return routee_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            MODULE_GENERIC,
            "simulated failure of the token endpoint",
        );
    }
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let expected = format!("{}:{}", sim.app_id, sim.app_secret);
    if credentials.as_deref() != Some(expected.as_str()) {
        return routee_error(
            StatusCode::UNAUTHORIZED,
            MODULE_GENERIC,
            "Bad credentials: the application id or secret is wrong",
        );
    }
    let grant_type = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned());
    if grant_type.as_deref() != Some("client_credentials") {
        return routee_error(
            StatusCode::BAD_REQUEST,
            MODULE_GENERIC,
            "grant_type must be client_credentials",
        );
    }
    let access_token = Uuid::new_v4().to_string();
    sim.lock()
        .tokens
        .insert(access_token.clone(), deadline(TOKEN_LIFETIME));
    // Scope and permission names are not documented (reference §1, GAP); these are
    // placeholders the gateway must not interpret.
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "scope": "voice",
        "permissions": ["MT_ROLE_VOICE"],
    }))
    .into_response()
}

/// `POST /voice/conversation`: validates, answers the conversation, starts the call.
async fn create_conversation(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let fault = {
        let mut state = sim.lock();
        let fault = state.faults.take_create_failure();
        if let Some(status) = fault {
            // The number is read loosely: a refusal is recorded even for a body
            // that would not have parsed.
            let to = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                v.pointer("/to/phone")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            state.injected.refused_creations.push(RefusedCreation {
                at: now_rfc3339(),
                to,
                status,
            });
        }
        fault
    };
    if let Some(status) = fault {
        return injected_failure(status);
    }
    let (request, to) = match parse_create(&body) {
        Ok(valid) => valid,
        Err(message) => return routee_error(StatusCode::BAD_REQUEST, MODULE_VOICE, message),
    };
    let placed = call::place(&sim, &request, &to);
    if sim.lock().faults.take_create_then_fail() {
        // The call exists; the answer says otherwise.
        return injected_failure(500);
    }
    let mut answer = Map::new();
    answer.insert("trackingId".into(), json!(placed.tracking_id));
    answer.insert("createdAt".into(), json!(placed.created_at));
    answer.insert("direction".into(), json!("Outbound"));
    answer.insert("from".into(), json!(request.from));
    answer.insert("to".into(), json!({ "phone": to.as_str() }));
    answer.insert("dialPlan".into(), json!(request.dial_plan));
    if let Some(cb) = &request.callback {
        answer.insert("callback".into(), json!(cb));
    }
    if let Some(d) = request.hangup_delay {
        answer.insert("hangupDelay".into(), json!(d));
    }
    if let Some(d) = request.max_duration {
        answer.insert("maxDuration".into(), json!(d));
    }
    Json(Value::Object(answer)).into_response()
}

/// The answer of a `fail_create` fault.
fn injected_failure(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = routee_error(
        code,
        MODULE_VOICE,
        format!("simulated failure: HTTP {}", code.as_u16()),
    );
    if code == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Parses and validates a create request like Routee would.
fn parse_create(body: &[u8]) -> Result<(CreateConversation, E164), String> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if raw.get("dialPlan").is_none() && raw.get("dialPlanUrl").is_some() {
        return Err("dialPlanUrl is not supported by the simulator: send dialPlan".into());
    }
    // Checked on the raw value: the lenient parse would read -1 as "absent".
    if let Some(v) = raw.get("hangupDelay").filter(|v| !v.is_null()) {
        match lenient::value_as_f64(v) {
            Some(s) if (1.0..=60.0).contains(&s) => {}
            _ => return Err("hangupDelay must be between 1 and 60 seconds".into()),
        }
    }
    if let Some(v) = raw.get("maxDuration").filter(|v| !v.is_null()) {
        match lenient::value_as_f64(v) {
            Some(s) if s >= 1.0 => {}
            _ => return Err("maxDuration must be at least 1 second".into()),
        }
    }
    let request: CreateConversation =
        serde_json::from_value(raw).map_err(|e| format!("invalid conversation: {e}"))?;
    let to = match &request.to {
        Destination::Phone(phone) => phone
            .parse::<E164>()
            .map_err(|e| format!("to.phone {phone:?} is {e}"))?,
        Destination::Sip(_) | Destination::Viber(_) => {
            return Err("the simulator only calls to.phone numbers".into());
        }
    };
    if request.from.trim().is_empty() {
        return Err("from must not be empty".into());
    }
    check_dialplan(&request.dial_plan).map_err(|e| format!("dialPlan: {e}"))?;
    if let Some(cb) = &request.callback {
        check_url("callback.url", &cb.url)?;
    }
    Ok((request, to))
}

/// `PUT /voice/conversation/{messageId}` with `{"action": "hangup" | "reject"}`.
async fn control_call(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(message_id): Path<String>,
    body: Bytes,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let Ok(CallActionBody { action }) = serde_json::from_slice::<CallActionBody>(&body) else {
        return routee_error(
            StatusCode::BAD_REQUEST,
            MODULE_VOICE,
            "the body must be {\"action\": \"hangup\"} or {\"action\": \"reject\"}",
        );
    };
    let verb = match action {
        CallAction::Hangup => "hangup",
        CallAction::Reject => "reject",
    };
    match sim.end_call(&message_id, action) {
        Ok(()) => Json(json!({
            "messageId": message_id,
            "message": format!("{verb} requested"),
            "createdAt": now_rfc3339(),
        }))
        .into_response(),
        Err(EndRefused::UnknownCall) => routee_error(
            StatusCode::NOT_FOUND,
            MODULE_VOICE,
            format!("no call with messageId {message_id}"),
        ),
        Err(EndRefused::WrongState(status)) => routee_error(
            StatusCode::CONFLICT,
            MODULE_VOICE,
            format!(
                "cannot {verb} a call that is {status}: hangup needs InProgress, reject needs Initiated or Ringing"
            ),
        ),
    }
}

/// `GET /voice/tracking/conversation/{conversationTrackingId}`: the call legs.
async fn tracking(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(tracking_id): Path<String>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let legs = sim.conversation(&tracking_id);
    if legs.is_empty() {
        return routee_error(
            StatusCode::NOT_FOUND,
            MODULE_VOICE,
            format!("no conversation with trackingId {tracking_id}"),
        );
    }
    let content: Vec<Value> = legs
        .iter()
        .map(|r| {
            let date = r
                .statuses
                .last()
                .map_or_else(|| r.created_at.clone(), |s| s.at.clone());
            let answered = r.answered_at.is_some();
            json!({
                "messageId": r.message_id,
                "conversationTrackingId": r.conversation_tracking_id,
                "to": r.to,
                "from": r.from,
                "status": { "status": r.status, "date": date },
                "originatingService": "Voice",
                "direction": "Outbound",
                "duration": r.duration_s.round(),
                "price": call::price(r.duration_s, answered),
                "collectedTones": r.collected_tones,
                "recordings": [],
                "answeredBy": if answered { Value::from("HUMAN") } else { Value::Null },
            })
        })
        .chain(legs.iter().filter_map(|r| {
            // A DIAL's second leg: its own messageId in the same conversation.
            let leg = r.dial_leg.as_ref()?;
            let last = leg.statuses.last()?;
            Some(json!({
                "messageId": leg.message_id,
                "conversationTrackingId": r.conversation_tracking_id,
                "to": leg.to,
                "from": r.from,
                "status": { "status": last.status, "date": last.at },
                "originatingService": "Voice",
                "direction": "Outbound",
                "collectedTones": "",
                "recordings": [],
            }))
        }))
        .collect();
    let n = content.len();
    Json(json!({
        "content": content,
        "first": true,
        "last": true,
        "number": 0,
        "numberOfElements": n,
        "size": 20,
        "totalElements": n,
        "totalPages": 1,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: &Value) -> Result<(CreateConversation, E164), String> {
        parse_create(body.to_string().as_bytes())
    }

    fn valid() -> Value {
        json!({
            "from": "Acme",
            "to": {"phone": "+306900000001"},
            "dialPlan": {"verbs": [{"type": "PAUSE", "duration": 1}]},
        })
    }

    #[test]
    fn a_valid_creation_is_accepted() {
        let (req, to) = create(&valid()).unwrap();
        assert_eq!(to.as_str(), "+306900000001");
        assert_eq!(req.from, "Acme");
    }

    #[test]
    fn creations_that_routee_would_refuse_are_refused() {
        let mut cases = Vec::new();
        let mut v = valid();
        v["to"] = json!({"phone": "6900000001"});
        cases.push((v, "to.phone"));
        let mut v = valid();
        v["from"] = json!("  ");
        cases.push((v, "from"));
        let mut v = valid();
        v["dialPlan"] = json!({"verbs": []});
        cases.push((v, "empty"));
        let mut v = valid();
        let dial = json!({"type": "DIAL", "from": "A", "to": {"phone": "+306900000002"}});
        v["dialPlan"] = json!({"verbs": [dial.clone(), dial]});
        cases.push((v, "DIAL"));
        let mut v = valid();
        v["hangupDelay"] = json!(61);
        cases.push((v, "hangupDelay"));
        let mut v = valid();
        v["hangupDelay"] = json!(0);
        cases.push((v, "hangupDelay"));
        let mut v = valid();
        v["dialPlan"] = json!({"verbs": [{"type": "HANGUP"}]});
        cases.push((v, "invalid conversation"));
        let mut v = valid();
        v["callback"] = json!({"url": "not a url", "strategy": "OnChange"});
        cases.push((v, "callback.url"));
        for (body, needle) in cases {
            let err = create(&body).unwrap_err();
            assert!(
                err.contains(needle),
                "{body}: {err} should mention {needle}"
            );
        }
    }
}
