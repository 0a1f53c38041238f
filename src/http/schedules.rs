//! Scheduled and recurring callouts (`/v1/schedules`): a stored
//! `POST /v1/callouts` body made into a callout at `start_at`, or at every
//! occurrence of a cron expression in a time zone; listed, paused, resumed and
//! deleted through the API. The rules are pure in [`crate::domain::schedule`].
//!
//! [`run`] is the loop every replica runs: it claims due schedules from the
//! store (leased, like callout timers), creates each occurrence's callout under
//! an id derived from the schedule and the occurrence (the store creates it
//! once, whichever replica or retry gets there), then records the firing and
//! the next occurrence with a compare-and-set. The stored body is read again at
//! every occurrence with the callouts' own parser, so a named team's contacts
//! are those it has then.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Dispatcher;
use super::callout_input::{self, NewCalloutBody, field_name, kind, name_field};
use super::callouts::{check_notify_target, resolve_script, rules};
use super::error::{ApiError, ErrorBody, body_rejection};
use super::idempotency;
use super::openapi::{BadRequest, Invalid, Unavailable};
use super::state::AppState;
use crate::domain::schedule::Recurrence;
use crate::domain::{FieldError, Firing, Schedule, ScheduleId, Timestamp, When};
use crate::store::Replaced;
use crate::telemetry::metrics as m;

/// How long a claimed schedule is leased to the replica firing it.
const LEASE: Duration = Duration::from_secs(30);
/// How often each replica looks for due schedules.
const POLL: Duration = Duration::from_millis(250);
/// A one-off's `start_at` may be this far in the past (clock skew) and no more.
const PAST_SLACK: Duration = Duration::from_secs(60);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, delete))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Schedule)]
pub struct ScheduleView {
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    pub name: String,
    /// The NewCallout body each occurrence creates.
    #[schema(value_type = Object)]
    pub callout: Value,
    #[schema(format = DateTime, required = true)]
    pub start_at: Option<String>,
    #[schema(required = true)]
    pub cron: Option<String>,
    pub timezone: String,
    pub paused: bool,
    /// The next occurrence (shown while paused too); null once a one-off has
    /// fired.
    #[schema(format = DateTime, required = true)]
    pub next_at: Option<String>,
    /// The latest occurrences handled, oldest first (at most 20).
    pub fired: Vec<FiringView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ScheduleFiring)]
pub struct FiringView {
    /// The occurrence.
    #[schema(format = DateTime)]
    pub at: String,
    /// The callout made for it.
    #[schema(required = true, pattern = "^[0-9a-f]{32}$")]
    pub callout_id: Option<String>,
    /// Why none was (the stored request no longer valid).
    #[schema(required = true)]
    pub error: Option<String>,
}

impl ScheduleView {
    fn of(s: &Schedule) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name.clone(),
            callout: s.callout.clone(),
            start_at: s.when.start_at.map(Timestamp::rfc3339),
            cron: s.when.cron.clone(),
            timezone: s.when.timezone.clone(),
            paused: s.paused,
            next_at: s.next_at.map(Timestamp::rfc3339),
            fired: s
                .fired
                .iter()
                .map(|f| FiringView {
                    at: f.at.rfc3339(),
                    callout_id: f.callout.map(|c| c.to_string()),
                    error: f.error.clone(),
                })
                .collect(),
            created_at: s.created_at.rfc3339(),
            updated_at: s.updated_at.rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = ScheduleList)]
struct Schedules {
    schedules: Vec<ScheduleView>,
}

/// `POST /v1/schedules`, for the OpenAPI document (read field by field by
/// [`parse`]). At least one of start_at or cron.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewSchedule)]
pub struct NewScheduleBody {
    #[schema(min_length = 1, max_length = 200, example = "Weekday roster check")]
    pub name: String,
    /// The callout each occurrence creates, as POST /v1/callouts takes it
    /// (checked now, and again at each occurrence).
    pub callout: NewCalloutBody,
    /// RFC 3339. Alone: once, at this time. With cron: the first occurrence
    /// from this time on.
    #[schema(format = DateTime, nullable = false)]
    pub start_at: Option<String>,
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with
    /// seconds first; names (MON-FRI, JAN) allowed.
    #[schema(nullable = false, example = "0 7 * * MON-FRI")]
    pub cron: Option<String>,
    /// The IANA time zone cron is read in (default UTC).
    #[schema(nullable = false, example = "Europe/Athens")]
    pub timezone: Option<String>,
}

/// The `{id}` of a schedule's paths.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SchedulePath {
    /// A schedule id: 32 lowercase hex digits. Anything else is a 404.
    pub id: String,
}

const FIELDS: [&str; 5] = ["name", "callout", "start_at", "cron", "timezone"];

/// A problem of the stored callout body, named under `callout.`.
fn under_callout(mut e: FieldError) -> FieldError {
    e.field = format!("callout.{}", e.field);
    e
}

/// The checks that need no IO: the schedule's fields, and its callout as the
/// callouts' parser reads it.
fn parse(
    body: &Value,
    state: &AppState,
    now: Timestamp,
) -> Result<(String, Value, When), Vec<FieldError>> {
    let Value::Object(obj) = body else {
        return Err(vec![FieldError::new(
            "body",
            format!("must be a JSON object, not {}", kind(body)),
        )]);
    };
    let mut errors = Vec::new();
    for key in obj.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(FieldError::new(
            field_name(key),
            format!("unknown field (expected one of {})", FIELDS.join(", ")),
        ));
    }
    let name = name_field(obj.get("name"), "name", &mut errors);
    let callout = match obj.get("callout") {
        Some(c @ Value::Object(_)) => match callout_input::parse(c, None, &rules(state)) {
            Ok(_) => Some(c.clone()),
            Err(e) => {
                errors.extend(e.into_iter().map(under_callout));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "callout",
                "required: the callout to create",
            ));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                "callout",
                format!("must be an object, not {}", kind(other)),
            ));
            None
        }
    };
    let when = parse_when(obj, now, &mut errors);
    match (name, callout, when) {
        (Some(n), Some(c), Some(w)) if errors.is_empty() => Ok((n, c, w)),
        _ => Err(errors),
    }
}

fn text<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim()),
        Some(Value::String(_)) => {
            errors.push(FieldError::new(key, "must not be empty"));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                key,
                format!("must be a string, not {}", kind(other)),
            ));
            None
        }
    }
}

fn parse_when(
    obj: &Map<String, Value>,
    now: Timestamp,
    errors: &mut Vec<FieldError>,
) -> Option<When> {
    let before = errors.len();
    let start_at = text(obj, "start_at", errors).and_then(|s| {
        let parsed = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok());
        if parsed.is_none() {
            errors.push(FieldError::new(
                "start_at",
                "not an RFC 3339 time (e.g. 2026-12-01T07:00:00+02:00)",
            ));
        }
        parsed.map(Timestamp)
    });
    let cron = text(obj, "cron", errors).map(str::to_owned);
    let timezone = text(obj, "timezone", errors).map(str::to_owned);
    match (&cron, &timezone, start_at) {
        (None, None, None) => errors.push(FieldError::new(
            "start_at",
            "give start_at (once), cron (recurring), or both",
        )),
        (None, Some(_), _) => errors.push(FieldError::new(
            "timezone",
            "only with cron (start_at carries its own offset)",
        )),
        (None, None, Some(at)) if now.since(at) > PAST_SLACK => {
            errors.push(FieldError::new("start_at", "in the past"));
        }
        _ => {}
    }
    let when = When {
        start_at,
        cron: cron.clone(),
        timezone: timezone.unwrap_or_else(|| "UTC".to_owned()),
    };
    if let Some(c) = &cron {
        match Recurrence::parse(c, &when.timezone) {
            Ok(_) if when.first(now).is_none() => {
                errors.push(FieldError::new("cron", "never occurs (after start_at)"));
            }
            Ok(_) => {}
            Err(problems) => errors.extend(
                problems
                    .into_iter()
                    .map(|(field, message)| FieldError::new(field, message)),
            ),
        }
    }
    (errors.len() == before).then_some(when)
}

/// The `{id}` of a schedule path; anything but an id names no schedule.
fn schedule_id(path: Result<Path<String>, PathRejection>) -> Result<ScheduleId, ApiError> {
    let raw = path.map(|Path(p)| p).unwrap_or_default();
    raw.parse().map_err(|_| {
        ApiError::not_found(format!(
            "no schedule has id {raw:?} (ids are 32 lowercase hex digits)"
        ))
    })
}

fn no_schedule(id: ScheduleId) -> ApiError {
    ApiError::not_found(format!("no schedule has id {id}"))
}

/// Schedule a callout, once or recurring
#[utoipa::path(
    post,
    path = "/v1/schedules",
    tag = "schedules",
    operation_id = "createSchedule",
    extensions(("x-required-role" = json!("dispatcher"))),
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "As on POST /v1/callouts: a retry with the same key and body gets the first answer again."),
    ),
    request_body(content((NewScheduleBody = "application/json", example = json!({
        "name": "Weekday roster check",
        "cron": "0 7 * * MON-FRI",
        "timezone": "Europe/Athens",
        "callout": {
            "name": "Roster check",
            "dialplan": "ticket-escalation",
            "variables": {"ticket": "Confirm you are on shift today"},
            "team": "linemen"
        }
    })))),
    responses(
        (status = 201, description = "Saved; it fires at next_at.", body = ScheduleView,
            headers(
                ("Location" = String),
                ("Idempotent-Replayed" = String, description = "`true` on the replayed answer to a retry with the same Idempotency-Key."),
            )),
        (status = 409, description = "A request with this Idempotency-Key is still running (`idempotency_key_in_use`).", body = ErrorBody),
        (status = 400, response = BadRequest),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES.", body = ErrorBody),
        (status = 415, description = "Not application/json.", body = ErrorBody),
        (status = 422, response = Invalid),
        (status = 503, response = Unavailable),
    ),
)]
async fn create(
    Dispatcher(caller): Dispatcher,
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let by = caller.key;
    let answer = idempotency::run(&state, by, request, |request| async {
        let body = Bytes::from_request(request, &state)
            .await
            .map_err(|e| body_rejection(&e, state.config.max_body_bytes))?;
        Ok(json!(create_schedule(&state, by.as_str(), &body).await?))
    })
    .await?;
    Ok(idempotency::created("/v1/schedules", answer))
}

async fn create_schedule(
    state: &AppState,
    by: &str,
    body: &[u8],
) -> Result<ScheduleView, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let now = Timestamp::now();
    let (name, callout, when) = parse(&value, state, now).map_err(ApiError::invalid)?;
    // What needs IO: the callout's team, assistant and notify_url exist now.
    check_callout(state, &callout).await.map_err(|e| {
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            ApiError::invalid(e.details.into_iter().map(under_callout).collect())
        } else {
            e
        }
    })?;
    let mut schedule = Schedule::new(ScheduleId::new(), name, callout, when, now);
    schedule.created_by = Some(by.to_owned());
    match state.engine.store.save_schedule(&schedule, None).await? {
        Replaced::Yes => {}
        other => {
            return Err(ApiError::internal(&std::io::Error::other(format!(
                "a new schedule id was taken: {other:?}"
            ))));
        }
    }
    tracing::info!(schedule_id = %schedule.id, next_at = ?schedule.next_at, api_key = %by, "schedule saved");
    Ok(ScheduleView::of(&schedule))
}

/// The stored callout body, checked as a creation would check it (team,
/// assistant and notify_url included), without creating anything.
async fn check_callout(
    state: &AppState,
    body: &Value,
) -> Result<crate::domain::NewCallout, ApiError> {
    let draft = callout_input::parse(body, None, &rules(state)).map_err(ApiError::invalid)?;
    check_notify_target(state, &draft).await?;
    resolve_script(state, draft).await
}

/// List the schedules, oldest first
#[utoipa::path(
    get,
    path = "/v1/schedules",
    tag = "schedules",
    operation_id = "listSchedules",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "Every schedule, oldest first.", body = Schedules),
        (status = 503, response = Unavailable),
    ),
)]
async fn list(
    _caller: Dispatcher,
    State(state): State<AppState>,
) -> Result<Json<Schedules>, ApiError> {
    let all = state.engine.store.schedules().await?;
    Ok(Json(Schedules {
        schedules: all.iter().map(ScheduleView::of).collect(),
    }))
}

/// A schedule, with its latest firings
#[utoipa::path(
    get,
    path = "/v1/schedules/{id}",
    tag = "schedules",
    operation_id = "getSchedule",
    params(SchedulePath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleView),
        (status = 404, description = "No such schedule.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn show(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ScheduleView>, ApiError> {
    let id = schedule_id(path)?;
    let s = state
        .engine
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| no_schedule(id))?;
    Ok(Json(ScheduleView::of(&s)))
}

/// Delete a schedule
///
/// No further occurrence fires; callouts it made run on.
#[utoipa::path(
    delete,
    path = "/v1/schedules/{id}",
    tag = "schedules",
    operation_id = "deleteSchedule",
    params(SchedulePath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such schedule.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn delete(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = schedule_id(path)?;
    if state.engine.store.delete_schedule(id).await? {
        tracing::info!(schedule_id = %id, "schedule deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_schedule(id))
    }
}

/// Pause a schedule
///
/// No occurrence fires while paused. Idempotent.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/pause",
    tag = "schedules",
    operation_id = "pauseSchedule",
    params(SchedulePath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "Paused.", body = ScheduleView),
        (status = 404, description = "No such schedule.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn pause(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, schedule_id(path)?, true).await
}

/// Resume a schedule
///
/// From now on: occurrences that passed while paused are skipped, not fired
/// late (a one-off that has not fired fires at once if its time passed).
/// Idempotent.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/resume",
    tag = "schedules",
    operation_id = "resumeSchedule",
    params(SchedulePath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "Resumed.", body = ScheduleView),
        (status = 404, description = "No such schedule.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn resume(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, schedule_id(path)?, false).await
}

async fn set_paused(
    state: &AppState,
    id: ScheduleId,
    paused: bool,
) -> Result<Json<ScheduleView>, ApiError> {
    let store = &state.engine.store;
    for _ in 0..5 {
        let mut s = store.schedule(id).await?.ok_or_else(|| no_schedule(id))?;
        let read = s.updated_at;
        if !s.set_paused(paused, Timestamp::now()) {
            return Ok(Json(ScheduleView::of(&s)));
        }
        match store.save_schedule(&s, Some(read)).await? {
            Replaced::Yes => {
                tracing::info!(schedule_id = %id, paused, "schedule paused or resumed");
                return Ok(Json(ScheduleView::of(&s)));
            }
            Replaced::NotFound => return Err(no_schedule(id)),
            Replaced::Changed | Replaced::NameTaken => {}
        }
    }
    Err(ApiError::unavailable(
        "the schedule is being changed; retry",
    ))
}

/// The loop every replica runs until `shutdown`: fires due schedules.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let now = Timestamp::now();
        match state.engine.store.claim_due_schedules(now, LEASE, 64).await {
            Ok(ids) => {
                for id in ids {
                    fire(&state, id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not claim due schedules; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Fires the pending occurrence of a claimed schedule, if it is due.
#[tracing::instrument(name = "schedule", skip_all, fields(schedule_id = %id))]
async fn fire(state: &AppState, id: ScheduleId) {
    if let Err(e) = try_fire(state, id).await {
        tracing::warn!(error = %e, "schedule firing failed; its lease will retry it");
    }
}

async fn try_fire(state: &AppState, id: ScheduleId) -> Result<(), crate::store::StoreError> {
    let store = &state.engine.store;
    let Some(mut s) = store.schedule(id).await? else {
        return Ok(());
    };
    let now = Timestamp::now();
    let Some(at) = s.next_at.filter(|at| *at <= now && !s.paused) else {
        // Woken early or paused meanwhile: put the due index back as the
        // document says.
        let read = s.updated_at;
        store.save_schedule(&s, Some(read)).await?;
        return Ok(());
    };
    let firing = occurrence(state, &s, at).await?;
    loop {
        let read = s.updated_at;
        if !s.record(firing.clone(), Timestamp::now()) {
            return Ok(()); // recorded by another replica
        }
        match store.save_schedule(&s, Some(read)).await? {
            Replaced::Yes => return Ok(()),
            Replaced::NotFound => return Ok(()), // deleted meanwhile
            Replaced::Changed | Replaced::NameTaken => {
                let Some(fresh) = store.schedule(id).await? else {
                    return Ok(());
                };
                s = fresh;
            }
        }
    }
}

/// Makes the callout of occurrence `at` (once: its id is the occurrence's).
async fn occurrence(
    state: &AppState,
    s: &Schedule,
    at: Timestamp,
) -> Result<Firing, crate::store::StoreError> {
    let callout_id = s.callout_id(at);
    let made = |result: &'static str| {
        metrics::counter!(m::SCHEDULE_FIRINGS, "result" => result).increment(1);
        Firing {
            at,
            callout: Some(callout_id),
            error: None,
        }
    };
    if state.engine.store.load(callout_id).await?.is_some() {
        return Ok(made("already"));
    }
    let input = match check_callout(state, &s.callout).await {
        Ok(input) => input,
        // The store or a lookup failed, not the request: the lease retries it.
        Err(e) if e.status.is_server_error() => {
            return Err(crate::store::StoreError::Refused(e.message));
        }
        Err(e) => {
            metrics::counter!(m::SCHEDULE_FIRINGS, "result" => "failed").increment(1);
            let details: Vec<String> = e
                .details
                .iter()
                .map(|d| format!("{}: {}", d.field, d.message))
                .collect();
            tracing::warn!(error = %e.message, ?details, "a scheduled callout could not be made");
            return Ok(Firing {
                at,
                callout: None,
                error: Some(if details.is_empty() {
                    e.message
                } else {
                    details.join("; ")
                }),
            });
        }
    };
    match state
        .engine
        .create_callout_as(callout_id, input, s.created_by.as_deref())
        .await
    {
        Ok((callout, _)) => {
            tracing::info!(callout_id = %callout.id, occurrence = %at.rfc3339(), "scheduled callout created");
            Ok(made("created"))
        }
        // Another replica created it between the check and here.
        Err(_) if state.engine.store.load(callout_id).await?.is_some() => Ok(made("already")),
        Err(e) => Err(crate::store::StoreError::Refused(e.to_string())),
    }
}
