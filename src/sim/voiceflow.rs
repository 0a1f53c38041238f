//! A simulated Voiceflow assistant, so the Voiceflow-driven path can be shown
//! and tested without an account: the Dialog Manager subset the gateway uses
//! (`shared/reference/voiceflow-dm-api.md` §2, §4, §7, §8) running one fixed
//! ticket flow per `userID`.
//!
//! | method and path | |
//! |---|---|
//! | `POST /state/user/{userID}/interact` | one turn: `{action}` (or the deprecated `request`; none means no-reply), `state.variables` merged first; `?verbose=true` answers `{trace, state, request}` |
//! | `GET`, `DELETE /state/user/{userID}` | the stored state (`{}` when none), or forget it |
//! | `PUT /state/user/{userID}` | replaces the whole state with `{stack, storage, variables}` (all three required, nothing else allowed, every stack frame with a `diagramID`, else 400), as `GET` shows it |
//! | `PATCH /state/user/{userID}/variables` | merges a flat object into the variables |
//! | `POST /v2/project/{projectID}/user/{userID}/interact/stream` | the same turn as Server-Sent Events (§3.2): one `event: trace` per trace (the trace itself as data), then `event: end`; `?environment=` names the version; another project is a 401 |
//! | `PUT /v2/transcripts` | records a transcript (`versionID` and `sessionID` required) |
//! | `GET /v2/versions/{id}/export` | a small export: `project._id`, `project.name`, `version._id` |
//! | `GET /sim/transcripts`, `GET /sim/interactions`, `GET`/`PUT /sim/faults` | inspection and failure injection |
//!
//! Every state request (`GET`, `PUT`, `DELETE`, `PATCH`) is tallied too
//! ([`SimVoiceflowHandle::state_requests`]), so a test can count what a call
//! cost in Dialog Manager requests.
//!
//! Every Dialog Manager route needs `Authorization: VF.DM.<anything>` (else 401
//! `Auth Key Required`, Voiceflow's body) and a `versionID` header of
//! `development` (also when absent), `production` or the simulated version id
//! (else 400, Voiceflow's `verror`).
//!
//! The flow: `launch` (reading `contact_name` and `ticket` from the variables)
//! says "Hello {contact_name}. {ticket}", offers the buttons Accept
//! (`path-accept`) and Reject (`path-reject`) and waits 10 s (`no-reply`). Accept,
//! or `text` "1", answers the custom action `accept` (not stopping), "Thank you.
//! The ticket is yours. Goodbye." and `end`; Reject or "2" likewise with `reject`.
//! A first `no-reply` reprompts (`path` reprompt, the choice again, another
//! no-reply), a second one says "We did not hear from you. Goodbye." and ends.
//! Anything else: "Sorry, I did not get that." and the choice again. A request
//! on a user with no conversation (or an ended one) starts the flow over, as the
//! runtime does with an empty stack.
//!
//! A stream can be slowed and broken ([`SimVoiceflowHandle::set_stream`]):
//! each trace after the first waits `delay_ms`, a stream may close without
//! `end` after `break_after` traces, and the next `malformed` streams open
//! with an event whose data is not JSON.
//!
//! Failure injection, for the gateway's timeout and fallback tests: `latency_ms`
//! delays every answer; `fail_next` makes the next requests answer those
//! statuses (a 429 with `Retry-After: 1`); `garbage_next` makes the next answers
//! a 200 whose body is not JSON. Injected failures come before authentication,
//! as an outage would, and the failed request changes nothing. What was served
//! is tallied ([`SimVoiceflowHandle::injected`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

use super::SimError;
use super::state::now_rfc3339;

/// The no-reply timeout the flow asks for, in seconds (the seed's 10 s).
pub const NO_REPLY_TIMEOUT_S: u32 = 10;

pub const HELLO_SUFFIX_DEFAULT_TICKET: &str = "You have a new ticket.";
pub const ACCEPTED_TEXT: &str = "Thank you. The ticket is yours. Goodbye.";
pub const REJECTED_TEXT: &str = "Thank you. We will ask someone else. Goodbye.";
pub const REPROMPT_TEXT: &str = "Are you still there? Please accept or reject the ticket.";
pub const NO_REPLY_GOODBYE_TEXT: &str = "We did not hear from you. Goodbye.";
pub const NOT_UNDERSTOOD_TEXT: &str = "Sorry, I did not get that.";

/// How the simulated assistant starts.
#[derive(Debug, Clone, PartialEq)]
pub struct SimVoiceflowSettings {
    /// Delay before every answer, in milliseconds (wall clock).
    pub latency_ms: u64,
    /// The next requests answer these HTTP statuses, in order.
    pub fail_next: Vec<u16>,
    /// The next N answers are a 200 with a body that is not JSON.
    pub garbage_next: u32,
    pub project_id: String,
    pub project_name: String,
    pub version_id: String,
}

impl Default for SimVoiceflowSettings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fail_next: Vec::new(),
            garbage_next: 0,
            project_id: object_id(),
            project_name: "Ticket escalation (simulated)".into(),
            version_id: object_id(),
        }
    }
}

impl SimVoiceflowSettings {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The injectable failures, as `GET`/`PUT /sim/faults` shows them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceflowFaults {
    pub latency_ms: u64,
    pub fail_next: Vec<u16>,
    pub garbage_next: u32,
}

/// The failures the simulated assistant actually served, for reliability tests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VoiceflowInjected {
    /// Requests answered with an injected status, by status.
    pub failures: BTreeMap<u16, u32>,
    /// Requests answered 200 with a body that is not JSON.
    pub garbage: u32,
    /// Requests held back by `latency_ms`.
    pub delayed: u32,
}

/// One interact request as received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InteractRecord {
    pub at: String,
    pub user_id: String,
    /// `development`, `production` or the version id, as resolved.
    pub version: String,
    /// The action (`null` when none was sent).
    pub action: Value,
}

/// One request to `/state/user/{userID}` other than interact, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateRecord {
    pub user_id: String,
    /// `GET`, `PUT`, `DELETE` or `PATCH`.
    pub method: &'static str,
}

/// How the simulated streams play ([`SimVoiceflowHandle::set_stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamShape {
    /// Wall-clock milliseconds before every trace but the first.
    pub delay_ms: u64,
    /// Close the stream without `end` after this many traces.
    pub break_after: Option<usize>,
    /// The next this many streams open with an event that is not JSON.
    pub malformed: u32,
}

/// A Mongo-style 24-hex id, like Voiceflow's project and version ids.
fn object_id() -> String {
    Uuid::new_v4().simple().to_string()[..24].to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// Waiting for Accept/Reject.
    Menu,
    /// The conversation ended; the next request starts over.
    Ended,
}

#[derive(Debug, Clone)]
struct UserState {
    variables: Map<String, Value>,
    node: Node,
    no_replies: u32,
}

impl Default for UserState {
    fn default() -> Self {
        Self {
            variables: Map::new(),
            node: Node::Ended,
            no_replies: 0,
        }
    }
}

#[derive(Clone, Copy)]
enum Decision {
    Accept,
    Reject,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn trace(kind: &str, payload: Value) -> Value {
    let mut t = Map::new();
    t.insert("type".into(), json!(kind));
    t.insert("payload".into(), payload);
    t.insert("time".into(), json!(now_ms()));
    Value::Object(t)
}

fn speak(text: &str) -> Value {
    trace("speak", json!({"type": "message", "message": text}))
}

fn button(name: &str, request_type: &str) -> Value {
    json!({"name": name, "request": {"type": request_type, "payload": {"label": name}}})
}

fn choice() -> Value {
    trace(
        "choice",
        json!({"buttons": [button("Accept", "path-accept"), button("Reject", "path-reject")]}),
    )
}

fn no_reply() -> Value {
    trace("no-reply", json!({"timeout": NO_REPLY_TIMEOUT_S}))
}

fn path(p: &str) -> Value {
    trace("path", json!({"path": p}))
}

/// A custom action the runtime does not stop on (it goes on along its path).
fn custom_action(name: &str) -> Value {
    json!({
        "type": name,
        "payload": {},
        "defaultPath": 0,
        "paths": [{"event": {"type": "done"}}],
        "time": now_ms(),
    })
}

fn end() -> Value {
    json!({"type": "end", "time": now_ms()})
}

impl UserState {
    /// One turn of the ticket flow.
    fn respond(&mut self, action: &Value) -> Vec<Value> {
        let kind = match action {
            Value::Null => "no-reply",
            other => other.get("type").and_then(Value::as_str).unwrap_or(""),
        };
        if kind == "launch" || self.node != Node::Menu {
            return self.launch();
        }
        match kind {
            "path-accept" => self.decide(Decision::Accept),
            "path-reject" => self.decide(Decision::Reject),
            "text" => match action.get("payload").and_then(Value::as_str).map(str::trim) {
                Some("1") => self.decide(Decision::Accept),
                Some("2") => self.decide(Decision::Reject),
                _ => self.not_understood(),
            },
            "no-reply" => self.no_reply(),
            _ => self.not_understood(),
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        match self.variables.get(name)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn launch(&mut self) -> Vec<Value> {
        self.node = Node::Menu;
        self.no_replies = 0;
        let hello = match self.var("contact_name") {
            Some(name) => format!("Hello {name}."),
            None => "Hello.".to_owned(),
        };
        let ticket = self
            .var("ticket")
            .unwrap_or_else(|| HELLO_SUFFIX_DEFAULT_TICKET.to_owned());
        vec![speak(&format!("{hello} {ticket}")), choice(), no_reply()]
    }

    fn decide(&mut self, decision: Decision) -> Vec<Value> {
        self.node = Node::Ended;
        let (action, text) = match decision {
            Decision::Accept => ("accept", ACCEPTED_TEXT),
            Decision::Reject => ("reject", REJECTED_TEXT),
        };
        vec![custom_action(action), speak(text), end()]
    }

    fn no_reply(&mut self) -> Vec<Value> {
        self.no_replies += 1;
        if self.no_replies == 1 {
            vec![path("reprompt"), speak(REPROMPT_TEXT), choice(), no_reply()]
        } else {
            self.node = Node::Ended;
            vec![path("choice:noReply"), speak(NO_REPLY_GOODBYE_TEXT), end()]
        }
    }

    fn not_understood(&mut self) -> Vec<Value> {
        vec![speak(NOT_UNDERSTOOD_TEXT), choice(), no_reply()]
    }

    /// The state a `PUT /state/user/{userID}` body describes, read as
    /// [`Self::to_json`] writes it; the runtime's schema
    /// (`{stack, storage, variables}`, additional properties refused, every
    /// frame with a `diagramID`) is checked first.
    fn from_json(body: &Value) -> Result<Self, String> {
        let Some(fields) = body.as_object() else {
            return Err("the state must be an object".into());
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), "stack" | "storage" | "variables") {
                return Err(format!("should NOT have additional properties: {key}"));
            }
        }
        let (Some(stack), Some(storage), Some(variables)) = (
            fields.get("stack").and_then(Value::as_array),
            fields.get("storage").and_then(Value::as_object),
            fields.get("variables").and_then(Value::as_object),
        ) else {
            return Err("stack (an array), storage and variables (objects) are required".into());
        };
        if !stack
            .iter()
            .all(|f| f.get("diagramID").is_some_and(Value::is_string))
        {
            return Err("every stack frame needs a diagramID".into());
        }
        let at_menu = stack
            .last()
            .and_then(|f| f.get("nodeID"))
            .is_some_and(|n| n == "menu");
        Ok(Self {
            variables: variables.clone(),
            node: if at_menu { Node::Menu } else { Node::Ended },
            no_replies: storage
                .get("noRepliesCounter")
                .and_then(Value::as_u64)
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        })
    }

    /// The state as `GET /state/user/{userID}` shows it.
    fn to_json(&self) -> Value {
        let stack = match self.node {
            Node::Menu => json!([{
                "diagramID": "ticket-flow",
                "nodeID": "menu",
                "variables": {},
                "storage": {},
                "commands": [],
            }]),
            Node::Ended => json!([]),
        };
        json!({
            "stack": stack,
            "storage": {"noRepliesCounter": self.no_replies},
            "variables": self.variables,
        })
    }
}

struct VfState {
    users: HashMap<String, UserState>,
    transcripts: Vec<Value>,
    interactions: Vec<InteractRecord>,
    state_requests: Vec<StateRecord>,
    stream: StreamShape,
    latency_ms: u64,
    fail_next: VecDeque<u16>,
    garbage_next: u32,
    injected: VoiceflowInjected,
}

impl VfState {
    fn tally(&mut self, user_id: &str, method: &'static str) {
        self.state_requests.push(StateRecord {
            user_id: user_id.to_owned(),
            method,
        });
    }
}

struct VfShared {
    project_id: String,
    project_name: String,
    version_id: String,
    state: Mutex<VfState>,
}

impl VfShared {
    fn lock(&self) -> MutexGuard<'_, VfState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `versionID` resolved (absent means `development`, like the runtime);
    /// `None` when it names no version of this project.
    fn version(&self, headers: &HeaderMap) -> Option<String> {
        let raw = headers
            .get("versionID")
            .and_then(|v| v.to_str().ok())
            .map_or("development", str::trim);
        (raw == "development" || raw == "production" || raw == self.version_id)
            .then(|| raw.to_owned())
    }
}

/// Voiceflow's error body for auth and injected failures.
fn vf_error(status: StatusCode, data: &str) -> Response {
    let body = json!({
        "code": status.as_u16(),
        "status": status.canonical_reason().unwrap_or("Error"),
        "dateTime": now_rfc3339(),
        "timestamp": now_ms(),
        "data": data,
    });
    (status, Json(body)).into_response()
}

fn unknown_version() -> Response {
    verror(
        StatusCode::BAD_REQUEST,
        "Cannot resolve version alias, please verify that your API key is correct.",
    )
}

/// Voiceflow's `VError` body (validation errors).
fn verror(status: StatusCode, message: &str) -> Response {
    let body =
        json!({"name": "verror", "message": message, "requestID": Uuid::new_v4().to_string()});
    (status, Json(body)).into_response()
}

/// Latency, then injected failures, then authentication: in front of every
/// Dialog Manager and project route.
async fn gate(State(vf): State<Arc<VfShared>>, request: Request, next: Next) -> Response {
    let latency = {
        let mut state = vf.lock();
        if state.latency_ms > 0 {
            state.injected.delayed += 1;
        }
        state.latency_ms
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    enum Inject {
        Fail(u16),
        Garbage,
    }
    let inject = {
        let mut state = vf.lock();
        if let Some(status) = state.fail_next.pop_front() {
            *state.injected.failures.entry(status).or_insert(0) += 1;
            Some(Inject::Fail(status))
        } else if state.garbage_next > 0 {
            state.garbage_next -= 1;
            state.injected.garbage += 1;
            Some(Inject::Garbage)
        } else {
            None
        }
    };
    match inject {
        Some(Inject::Fail(status)) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = vf_error(code, "simulated failure");
            if code == StatusCode::TOO_MANY_REQUESTS {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            return resp;
        }
        Some(Inject::Garbage) => {
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("<html><body>502 upstream hiccup</body></html>"))
                .unwrap_or_else(|_| StatusCode::OK.into_response());
        }
        None => {}
    }
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("VF.DM."));
    if !authorized {
        return vf_error(StatusCode::UNAUTHORIZED, "Auth Key Required");
    }
    next.run(request).await
}

async fn interact(
    State(vf): State<Arc<VfShared>>,
    Path(user_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(version) = vf.version(&headers) else {
        return unknown_version();
    };
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return verror(StatusCode::BAD_REQUEST, "Invalid request body"),
        }
    };
    // `request` is the deprecated name of `action`; neither means a no-reply.
    let action = body
        .get("action")
        .or_else(|| body.get("request"))
        .cloned()
        .unwrap_or(Value::Null);
    let variables = body
        .pointer("/state/variables")
        .and_then(Value::as_object)
        .cloned();
    let (traces, state) = {
        let mut state = vf.lock();
        state.interactions.push(InteractRecord {
            at: now_rfc3339(),
            user_id: user_id.clone(),
            version,
            action: action.clone(),
        });
        let user = state.users.entry(user_id).or_default();
        if let Some(vars) = variables {
            user.variables.extend(vars);
        }
        let traces = user.respond(&action);
        (traces, user.to_json())
    };
    if query.get("verbose").is_some_and(|v| v == "true") {
        Json(json!({"trace": traces, "state": state, "request": action})).into_response()
    } else {
        Json(traces).into_response()
    }
}

async fn interact_stream(
    State(vf): State<Arc<VfShared>>,
    Path((project_id, user_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if project_id != vf.project_id {
        return vf_error(
            StatusCode::UNAUTHORIZED,
            "the key cannot access this project",
        );
    }
    let env = query.get("environment").map_or("development", |e| e.trim());
    if !(env == "development" || env == "production" || env == vf.version_id) {
        return unknown_version();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return verror(StatusCode::BAD_REQUEST, "Invalid request body");
    };
    let action = body.get("action").cloned().unwrap_or(Value::Null);
    let (traces, shape) = {
        let mut state = vf.lock();
        state.interactions.push(InteractRecord {
            at: now_rfc3339(),
            user_id: user_id.clone(),
            version: env.to_owned(),
            action: action.clone(),
        });
        let shape = state.stream;
        if state.stream.malformed > 0 {
            state.stream.malformed -= 1;
        }
        let user = state.users.entry(user_id).or_default();
        if let Some(vars) = body.get("variables").and_then(Value::as_object) {
            user.variables.extend(vars.clone());
        }
        (user.respond(&action), shape)
    };
    let mut frames: Vec<(u64, String)> = Vec::new();
    if shape.malformed > 0 {
        frames.push((0, "event: trace\ndata: {not json\n\n".to_owned()));
    }
    let kept = shape.break_after.unwrap_or(usize::MAX);
    for (i, t) in traces.iter().enumerate().take(kept) {
        let delay = if i == 0 { 0 } else { shape.delay_ms };
        frames.push((delay, format!("event: trace\ndata: {t}\n\n")));
    }
    if shape.break_after.is_none() {
        frames.push((0, "event: end\ndata: {}\n\n".to_owned()));
    }
    let stream = futures::stream::unfold(frames.into_iter(), |mut frames| async move {
        let (delay, frame) = frames.next()?;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(frame)),
            frames,
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn get_state(
    State(vf): State<Arc<VfShared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if vf.version(&headers).is_none() {
        return unknown_version();
    }
    let mut shared = vf.lock();
    shared.tally(&user_id, "GET");
    let state = shared.users.get(&user_id).map(UserState::to_json);
    Json(state.unwrap_or_else(|| json!({}))).into_response()
}

async fn put_state(
    State(vf): State<Arc<VfShared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if vf.version(&headers).is_none() {
        return unknown_version();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return verror(StatusCode::BAD_REQUEST, "Invalid request body");
    };
    let user = match UserState::from_json(&body) {
        Ok(user) => user,
        Err(e) => return verror(StatusCode::BAD_REQUEST, &e),
    };
    let mut shared = vf.lock();
    shared.tally(&user_id, "PUT");
    let state = user.to_json();
    shared.users.insert(user_id, user);
    Json(state).into_response()
}

async fn delete_state(
    State(vf): State<Arc<VfShared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if vf.version(&headers).is_none() {
        return unknown_version();
    }
    let mut shared = vf.lock();
    shared.tally(&user_id, "DELETE");
    shared.users.remove(&user_id);
    Json(json!({})).into_response()
}

async fn patch_variables(
    State(vf): State<Arc<VfShared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if vf.version(&headers).is_none() {
        return unknown_version();
    }
    let Ok(Value::Object(vars)) = serde_json::from_slice::<Value>(&body) else {
        return verror(
            StatusCode::BAD_REQUEST,
            "the body must be an object of variables",
        );
    };
    let mut state = vf.lock();
    state.tally(&user_id, "PATCH");
    let user = state.users.entry(user_id).or_default();
    user.variables.extend(vars);
    Json(user.to_json()).into_response()
}

async fn put_transcript(State(vf): State<Arc<VfShared>>, body: Bytes) -> Response {
    let Ok(Value::Object(mut transcript)) = serde_json::from_slice::<Value>(&body) else {
        return verror(
            StatusCode::BAD_REQUEST,
            "the body must be a transcript object",
        );
    };
    for required in ["versionID", "sessionID"] {
        if !transcript.get(required).is_some_and(Value::is_string) {
            return verror(StatusCode::BAD_REQUEST, &format!("{required} is required"));
        }
    }
    transcript.insert("_id".into(), json!(object_id()));
    transcript.insert("createdAt".into(), json!(now_rfc3339()));
    let stored = Value::Object(transcript);
    vf.lock().transcripts.push(stored.clone());
    Json(stored).into_response()
}

async fn export(State(vf): State<Arc<VfShared>>, Path(version): Path<String>) -> Response {
    if version != "development" && version != "production" && version != vf.version_id {
        return vf_error(StatusCode::NOT_FOUND, "Version not found");
    }
    Json(json!({
        "_version": "1.2",
        "project": {
            "_id": vf.project_id,
            "name": vf.project_name,
            "devVersion": vf.version_id,
            "liveVersion": vf.version_id,
            "platform": "voice",
            "type": "voice",
        },
        "version": {
            "_id": vf.version_id,
            "name": "Simulated version",
            "projectID": vf.project_id,
            "variables": ["ticket", "contact_name", "callout_name", "attempt"],
        },
        "diagrams": {},
        "programs": {},
    }))
    .into_response()
}

async fn sim_transcripts(State(vf): State<Arc<VfShared>>) -> Response {
    Json(vf.lock().transcripts.clone()).into_response()
}

async fn sim_interactions(State(vf): State<Arc<VfShared>>) -> Response {
    Json(vf.lock().interactions.clone()).into_response()
}

async fn sim_get_faults(State(vf): State<Arc<VfShared>>) -> Response {
    let state = vf.lock();
    Json(VoiceflowFaults {
        latency_ms: state.latency_ms,
        fail_next: state.fail_next.iter().copied().collect(),
        garbage_next: state.garbage_next,
    })
    .into_response()
}

async fn sim_put_faults(State(vf): State<Arc<VfShared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<VoiceflowFaults>(&body) {
        Ok(faults) => {
            let mut state = vf.lock();
            state.latency_ms = faults.latency_ms;
            state.fail_next = faults.fail_next.into();
            state.garbage_next = faults.garbage_next;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "invalid_faults", "message": e.to_string()}})),
        )
            .into_response(),
    }
}

/// The simulated assistant (not yet serving).
#[derive(Clone)]
pub struct SimVoiceflow {
    shared: Arc<VfShared>,
}

impl SimVoiceflow {
    pub fn new(settings: SimVoiceflowSettings) -> Self {
        Self {
            shared: Arc::new(VfShared {
                project_id: settings.project_id,
                project_name: settings.project_name,
                version_id: settings.version_id,
                state: Mutex::new(VfState {
                    users: HashMap::new(),
                    transcripts: Vec::new(),
                    interactions: Vec::new(),
                    state_requests: Vec::new(),
                    stream: StreamShape::default(),
                    latency_ms: settings.latency_ms,
                    fail_next: settings.fail_next.into(),
                    garbage_next: settings.garbage_next,
                    injected: VoiceflowInjected::default(),
                }),
            }),
        }
    }

    /// The routes, to serve on a listener of one's choosing. The same routes
    /// answer both Voiceflow bases (runtime and project API).
    pub fn router(&self) -> Router {
        let dialog = Router::new()
            .route("/state/user/{user_id}/interact", post(interact))
            .route(
                "/v2/project/{project_id}/user/{user_id}/interact/stream",
                post(interact_stream),
            )
            .route(
                "/state/user/{user_id}",
                get(get_state).put(put_state).delete(delete_state),
            )
            .route(
                "/state/user/{user_id}/variables",
                axum::routing::patch(patch_variables),
            )
            .route("/v2/transcripts", put(put_transcript))
            .route("/v2/versions/{version}/export", get(export))
            .route_layer(middleware::from_fn_with_state(
                Arc::clone(&self.shared),
                gate,
            ));
        let control = Router::new()
            .route("/sim/transcripts", get(sim_transcripts))
            .route("/sim/interactions", get(sim_interactions))
            .route("/sim/faults", get(sim_get_faults).put(sim_put_faults));
        dialog.merge(control).with_state(Arc::clone(&self.shared))
    }

    /// Serves the assistant on `addr` (usually `127.0.0.1:0`).
    pub async fn start(
        settings: SimVoiceflowSettings,
        addr: SocketAddr,
    ) -> Result<SimVoiceflowHandle, SimError> {
        let vf = SimVoiceflow::new(settings);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let base_url = super::base_url_of(local)?;
        let stop = CancellationToken::new();
        let app = vf.router();
        let until = stop.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "Voiceflow simulator stopped serving");
            }
        });
        tracing::info!(%base_url, "Voiceflow simulator listening");
        Ok(SimVoiceflowHandle {
            inner: Arc::new(VfHandleInner {
                vf,
                base_url,
                stop,
                server: Mutex::new(Some(server)),
            }),
        })
    }
}

/// A running simulated assistant. Clones share it; it stops on
/// [`SimVoiceflowHandle::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct SimVoiceflowHandle {
    inner: Arc<VfHandleInner>,
}

struct VfHandleInner {
    vf: SimVoiceflow,
    base_url: Url,
    stop: CancellationToken,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for VfHandleInner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for SimVoiceflowHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimVoiceflowHandle")
            .field("base_url", &self.inner.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl SimVoiceflowHandle {
    /// The base of both the runtime (`VOICEFLOW_RUNTIME_URL`) and the project API
    /// (`VOICEFLOW_API_URL`).
    pub fn base_url(&self) -> Url {
        self.inner.base_url.clone()
    }

    pub fn project_id(&self) -> String {
        self.inner.vf.shared.project_id.clone()
    }

    pub fn project_name(&self) -> String {
        self.inner.vf.shared.project_name.clone()
    }

    pub fn version_id(&self) -> String {
        self.inner.vf.shared.version_id.clone()
    }

    fn lock(&self) -> MutexGuard<'_, VfState> {
        self.inner.vf.shared.lock()
    }

    /// Delays every later answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    }

    /// The next requests answer these statuses, in order (replacing any left).
    pub fn fail_next(&self, statuses: Vec<u16>) {
        self.lock().fail_next = statuses.into();
    }

    /// The next `n` answers are a 200 whose body is not JSON.
    pub fn garbage_next(&self, n: u32) {
        self.lock().garbage_next = n;
    }

    /// The failures served so far (injected statuses, garbage, delayed answers).
    pub fn injected(&self) -> VoiceflowInjected {
        self.lock().injected.clone()
    }

    /// Every transcript PUT so far.
    pub fn transcripts(&self) -> Vec<Value> {
        self.lock().transcripts.clone()
    }

    /// Every interact request so far.
    pub fn interactions(&self) -> Vec<InteractRecord> {
        self.lock().interactions.clone()
    }

    /// How the next streams play (see [`StreamShape`]).
    pub fn set_stream(&self, shape: StreamShape) {
        self.lock().stream = shape;
    }

    /// Every state request (`GET`, `PUT`, `DELETE`, `PATCH`) so far.
    pub fn state_requests(&self) -> Vec<StateRecord> {
        self.lock().state_requests.clone()
    }

    /// The variables stored for `user_id`.
    pub fn variables(&self, user_id: &str) -> Option<Map<String, Value>> {
        self.lock().users.get(user_id).map(|u| u.variables.clone())
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(self) {
        self.inner.stop.cancel();
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server
            && let Err(e) = server.await
        {
            tracing::warn!(error = %e, "Voiceflow simulator server task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(traces: &[Value]) -> Vec<&str> {
        traces
            .iter()
            .map(|t| t["type"].as_str().unwrap_or(""))
            .collect()
    }

    fn launched() -> UserState {
        let mut user = UserState::default();
        user.variables.insert("contact_name".into(), json!("Alice"));
        user.variables
            .insert("ticket".into(), json!("Server room 2 is flooding."));
        let traces = user.respond(&json!({"type": "launch"}));
        assert_eq!(types(&traces), ["speak", "choice", "no-reply"]);
        assert_eq!(
            traces[0]["payload"]["message"],
            "Hello Alice. Server room 2 is flooding."
        );
        user
    }

    #[test]
    fn the_accept_button_accepts_and_ends() {
        let mut user = launched();
        let traces = user.respond(&json!({"type": "path-accept", "payload": {"label": "Accept"}}));
        assert_eq!(types(&traces), ["accept", "speak", "end"]);
        assert_eq!(traces[1]["payload"]["message"], ACCEPTED_TEXT);
    }

    #[test]
    fn two_silences_reprompt_then_say_goodbye() {
        let mut user = launched();
        let first = user.respond(&Value::Null);
        assert_eq!(types(&first), ["path", "speak", "choice", "no-reply"]);
        let second = user.respond(&json!({"type": "no-reply"}));
        assert_eq!(types(&second), ["path", "speak", "end"]);
        assert_eq!(second[1]["payload"]["message"], NO_REPLY_GOODBYE_TEXT);
    }

    #[test]
    fn an_ended_conversation_starts_over() {
        let mut user = launched();
        user.respond(&json!({"type": "text", "payload": "2"}));
        let again = user.respond(&json!({"type": "text", "payload": "1"}));
        assert_eq!(types(&again), ["speak", "choice", "no-reply"]);
    }

    #[test]
    fn a_state_put_back_resumes_where_it_was_read() {
        let mut user = launched();
        let saved = user.to_json();
        user.respond(&Value::Null);
        // Put back before the first silence: the next silence reprompts again.
        let mut user = UserState::from_json(&saved).unwrap();
        assert_eq!(user.to_json(), saved);
        let again = user.respond(&Value::Null);
        assert_eq!(types(&again), ["path", "speak", "choice", "no-reply"]);
    }

    #[test]
    fn a_state_put_takes_only_the_runtimes_schema() {
        let ok = json!({"stack": [], "storage": {}, "variables": {}});
        assert!(UserState::from_json(&ok).is_ok());
        let extra = json!({"stack": [], "storage": {}, "variables": {}, "updatedAt": 1});
        assert!(
            UserState::from_json(&extra)
                .unwrap_err()
                .contains("additional")
        );
        let missing = json!({"stack": [], "variables": {}});
        assert!(UserState::from_json(&missing).is_err());
        let frame = json!({"stack": [{"nodeID": "menu"}], "storage": {}, "variables": {}});
        assert!(
            UserState::from_json(&frame)
                .unwrap_err()
                .contains("diagramID")
        );
    }
}
