//! The dispatcher API: create (JSON or CSV upload), read, list, cancel callouts.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Dispatcher, KeyFingerprint};
use super::callout_input::{
    self, CalloutPath, CalloutUpload, Draft, InputRules, NewCalloutBody, ScriptRef,
};
use super::error::{ApiError, ErrorBody, body_rejection};
use super::idempotency;
use super::openapi::{BadRequest, Invalid, NotFound, Unavailable};
use super::state::AppState;
use crate::domain::{CalloutId, CalloutStatus, FieldError, NewCallout, Script};
use crate::engine::view::{CalloutView, string_enum};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show))
        .routes(routes!(cancel))
}

pub(super) fn rules(state: &AppState) -> InputRules<'_> {
    InputRules {
        templates: &state.engine.templates,
        max_contacts: state.config.max_contacts,
        allow_private_urls: state.config.allow_private_urls,
        default_policy: state.config.default_policy,
        destinations: &state.config.allowed_destinations,
    }
}

/// The `{id}` of a callout path. A segment that is not even UTF-8 once
/// percent-decoded names no callout either: a 404 with our error body, like any
/// other id that does not exist, rather than axum's plain-text 400.
pub(super) fn parse_id(path: Result<Path<String>, PathRejection>) -> Result<CalloutId, ApiError> {
    let Ok(Path(raw)) = path else {
        return Err(ApiError::not_found(
            "no such callout (ids are 32 lowercase hex digits)",
        ));
    };
    raw.parse().map_err(|_| {
        ApiError::not_found(format!(
            "no callout has id {raw:?} (ids are 32 lowercase hex digits)"
        ))
    })
}

/// Create a callout and start calling
///
/// A JSON body, or `multipart/form-data` with a `contacts` CSV file and an
/// optional `callout` JSON part.
#[utoipa::path(
    post,
    path = "/v1/callouts",
    tag = "callouts",
    operation_id = "createCallout",
    extensions(("x-required-role" = json!("dispatcher"))),
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes retries safe: up to 255 visible ASCII characters, unique per callout \
            you mean to create. The first request with a key creates the callout; a retry with the \
            same key and the same body (content type and bytes) creates nothing and gets the first \
            answer again (201, header `Idempotent-Replayed: true`) for IDEMPOTENCY_TTL_H hours. The \
            same key with a different body is a 422 (`idempotency_key_reused`); a retry while the \
            first request still runs is a 409 (`idempotency_key_in_use`). Keys are per API key."),
    ),
    request_body(content(
        (NewCalloutBody = "application/json", example = json!({
            "name": "Ticket 4711",
            "dialplan": "ticket-escalation",
            "variables": {"ticket": "Server room 2 is flooding"},
            "contacts": [
                {"name": "Alice", "phone": "+306900000001"},
                {"name": "Bob", "phone": "+306900000002", "language": "el-GR"}
            ],
            "policy": {"attempts_per_contact": 3, "retry_delay_s": 60, "input_timeout_s": 10, "reprompts": 1}
        })),
        (CalloutUpload = "multipart/form-data", encoding(
            ("contacts" = (content_type = "text/csv")),
            ("callout" = (content_type = "application/json")),
        )),
    )),
    responses(
        (status = 201, description = "Created; calling starts. The callout as GET returns it.",
            body = CalloutView,
            headers(
                ("Location" = String),
                ("Idempotent-Replayed" = String, description = "`true` on the replayed answer to a retry with the same Idempotency-Key."),
            ),
            links(
                ("GetCallout" = (operation_id = "getCallout", parameters(("id" = "$response.body#/id")))),
                ("CancelCallout" = (operation_id = "cancelCallout", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, response = BadRequest),
        (status = 409, description = "A request with this Idempotency-Key is still running (`idempotency_key_in_use`): retry in a moment.", body = ErrorBody),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES.", body = ErrorBody),
        (status = 415, description = "Neither application/json nor multipart/form-data.", body = ErrorBody),
        (status = 422, response = Invalid),
        (status = 503, response = Unavailable),
    ),
)]
async fn create(
    Dispatcher(caller): Dispatcher,
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let answer = idempotency::run(&state, caller.key, request, |request| async {
        Ok(json!(create_callout(&state, caller.key, request).await?))
    })
    .await?;
    Ok(idempotency::created("/v1/callouts", answer))
}

async fn create_callout(
    state: &AppState,
    by: KeyFingerprint,
    request: Request,
) -> Result<CalloutView, ApiError> {
    let draft = read_draft(state, request).await?;
    check_notify_target(state, &draft).await?;
    let input = resolve_script(state, draft).await?;
    let (callout, events) = state
        .engine
        .create_callout_by(input, Some(by.as_str()))
        .await?;
    tracing::info!(callout_id = %callout.id, contacts = callout.contacts.len(), api_key = %by, "callout created");
    Ok(CalloutView::build(&callout, Some(&events)))
}

/// A callout request (JSON, or a CSV upload) checked as far as it can be
/// without IO: what `POST /v1/callouts` and `POST /v1/callouts/preview` read.
pub(super) async fn read_draft(state: &AppState, request: Request) -> Result<Draft, ApiError> {
    let (meta, rows) = match read_body(state, request, "callout").await? {
        Body::Json(value) => (value, None),
        Body::Upload { rows, meta } => (meta, Some(rows)),
    };
    callout_input::parse(&meta, rows, &rules(state)).map_err(ApiError::invalid)
}

/// A body that carries a call list: JSON, or a CSV upload.
pub(super) enum Body {
    Json(Value),
    /// `multipart/form-data`: the `contacts` CSV file's rows, and the JSON part
    /// (`{}` when absent).
    Upload {
        rows: Vec<callout_input::RawContact>,
        meta: Value,
    },
}

/// Reads a JSON body, or a `multipart/form-data` one with a `contacts` CSV file
/// and an optional JSON part named `meta_part` (callouts' `callout`, teams'
/// `team`).
pub(super) async fn read_body(
    state: &AppState,
    request: Request,
    meta_part: &'static str,
) -> Result<Body, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let limit = state.config.max_body_bytes;
    if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, state).await.map_err(|e| {
            ApiError::bad_request(format!("the multipart body could not be read: {e}"))
        })?;
        parse_multipart(multipart, state, meta_part).await
    } else if content_type.starts_with("application/json") || content_type.ends_with("+json") {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| body_rejection(&e, limit))?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        Ok(Body::Json(value))
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json, or multipart/form-data with a contacts CSV file",
        ))
    }
}

async fn parse_multipart(
    mut multipart: Multipart,
    state: &AppState,
    meta_part: &'static str,
) -> Result<Body, ApiError> {
    let limit = state.config.max_body_bytes;
    let mut csv: Option<Bytes> = None;
    let mut meta: Option<Value> = None;
    let mut errors = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::too_large(format!(
                    "the body is larger than {limit} bytes"
                )));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "the multipart body could not be read: {e}"
                )));
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(format!("the body is larger than {limit} bytes"))
            } else {
                ApiError::bad_request(format!("part {name:?} could not be read: {e}"))
            }
        })?;
        match name.as_str() {
            "contacts" if csv.is_some() => errors.push(FieldError::new(
                "contacts",
                "given more than once: send one CSV file",
            )),
            "contacts" => csv = Some(bytes),
            part if part == meta_part => match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => meta = Some(v),
                Err(e) => errors.push(FieldError::new(meta_part, format!("not valid JSON: {e}"))),
            },
            other => errors.push(FieldError::new(
                callout_input::field_name(other),
                format!("unknown part (expected contacts and {meta_part})"),
            )),
        }
    }
    let Some(csv) = csv else {
        errors.push(FieldError::new(
            "contacts",
            "a CSV file part named contacts is required",
        ));
        return Err(ApiError::invalid(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let rows =
        callout_input::parse_csv(&csv, state.config.max_contacts).map_err(ApiError::invalid)?;
    Ok(Body::Upload {
        rows,
        meta: meta.unwrap_or_else(|| json!({})),
    })
}

/// Refuses a `notify_url` whose name resolves to an internal address (unless
/// `ALLOW_PRIVATE_URLS`). The parser already refused internal IP literals; the
/// delivery client refuses such names again at every connection.
pub(super) async fn check_notify_target(state: &AppState, draft: &Draft) -> Result<(), ApiError> {
    let Some(raw) = &draft.notify_url else {
        return Ok(());
    };
    if state.config.allow_private_urls {
        return Ok(());
    }
    let Ok(url) = url::Url::parse(raw) else {
        return Ok(());
    };
    if crate::net::resolves_internal(&url, std::time::Duration::from_secs(2)).await {
        return Err(ApiError::invalid(vec![FieldError::new(
            "notify_url",
            "resolves to an internal address (set ALLOW_PRIVATE_URLS=true to allow)",
        )]));
    }
    Ok(())
}

/// What a draft names, looked up: its assistant, and its team (whose contacts
/// are copied in now).
pub(super) async fn resolve_script(
    state: &AppState,
    mut draft: Draft,
) -> Result<NewCallout, ApiError> {
    if let Some(key) = &draft.team {
        let team = super::teams::find(state, key).await?.ok_or_else(|| {
            ApiError::invalid(vec![FieldError::new(
                "team",
                format!("no team has the id or name {key:?}"),
            )])
        })?;
        draft.contacts = callout_input::team_contacts(&team, draft.policy.needed, &rules(state))
            .map_err(ApiError::invalid)?;
    }
    let script = match draft.script {
        ScriptRef::Template(name) => Script::Template { name },
        ScriptRef::Assistant(key) => match state.engine.assistants.find(&key).await? {
            Some(a) => Script::Assistant { id: a.id },
            None => {
                return Err(ApiError::invalid(vec![FieldError::new(
                    "assistant",
                    format!("no assistant has the id or name {key:?}"),
                )]));
            }
        },
    };
    Ok(NewCallout {
        name: draft.name,
        script,
        variables: draft.variables,
        contacts: draft.contacts,
        policy: draft.policy,
        notify_url: draft.notify_url,
    })
}

/// A callout with its contacts, attempts and timeline
#[utoipa::path(
    get,
    path = "/v1/callouts/{id}",
    tag = "callouts",
    operation_id = "getCallout",
    params(CalloutPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "The callout.", body = CalloutView),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
async fn show(
    _caller: Dispatcher,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CalloutView>, ApiError> {
    let id = parse_id(id)?;
    let (callout, events) = state
        .engine
        .callout(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no callout has id {id}")))?;
    Ok(Json(CalloutView::build(&callout, Some(&events))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[param(schema_with = status_filter_schema)]
    status: Option<String>,
    #[param(nullable = false, minimum = 1, maximum = 200, default = 50)]
    limit: Option<usize>,
    /// Only callouts created before this one (the `next` of the previous page);
    /// empty means from the newest.
    #[param(nullable = false, pattern = "^([0-9a-f]{32})?$")]
    before: Option<String>,
}

/// A status, or empty for any.
fn status_filter_schema() -> Schema {
    let mut statuses: Vec<&str> = CalloutStatus::ALL.iter().map(|s| s.as_str()).collect();
    statuses.push("");
    let mut schema = string_enum(&statuses);
    if let Schema::Object(object) = &mut schema {
        object.description = Some("Only callouts in this status; empty means any.".into());
    }
    schema
}

/// A page of callouts.
#[derive(Serialize, ToSchema)]
#[schema(as = CalloutList)]
struct CalloutPage {
    callouts: Vec<CalloutView>,
    /// Pass as before= for the next page; null on the last.
    #[schema(required = true)]
    next: Option<String>,
}

/// List callouts, newest first
#[utoipa::path(
    get,
    path = "/v1/callouts",
    tag = "callouts",
    operation_id = "listCallouts",
    params(ListQuery),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "Callouts, newest first (without their events).", body = CalloutPage),
        (status = 400, response = BadRequest),
        (status = 422, response = Invalid),
        (status = 503, response = Unavailable),
    ),
)]
async fn list(
    _caller: Dispatcher,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CalloutPage>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let mut errors = Vec::new();
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => match s.parse::<CalloutStatus>() {
            Ok(st) => Some(st),
            Err(e) => {
                errors.push(FieldError::new("status", e));
                None
            }
        },
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 200"));
    }
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => match b.parse::<CalloutId>() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(FieldError::new("before", "not a callout id"));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let callouts = state.engine.list(status, limit, before).await?;
    let next = (callouts.len() == limit)
        .then(|| callouts.last().map(|c| c.id.to_string()))
        .flatten();
    let callouts = callouts
        .iter()
        .map(|c| CalloutView::build(c, None))
        .collect();
    Ok(Json(CalloutPage { callouts, next }))
}

/// Stop a callout: no further calls, a live call is hung up
#[utoipa::path(
    post,
    path = "/v1/callouts/{id}/cancel",
    tag = "callouts",
    operation_id = "cancelCallout",
    params(CalloutPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "Cancelled: no further calls; a live call is hung up.", body = CalloutView),
        (status = 404, response = NotFound),
        (status = 409, description = "The callout has already finished (code already_finished).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn cancel(
    Dispatcher(caller): Dispatcher,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CalloutView>, ApiError> {
    let id = parse_id(id)?;
    let callout = state
        .engine
        .cancel_by(id, Some(caller.key.as_str()))
        .await?;
    tracing::info!(callout_id = %id, api_key = %caller.key, "callout cancelled");
    let events = state.engine.store.events(id).await?;
    Ok(Json(CalloutView::build(&callout, Some(&events))))
}
