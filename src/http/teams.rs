//! Teams: saved, named, ordered call lists (`/v1/teams`), created and replaced
//! from JSON or a CSV upload, exported as CSV a spreadsheet opens safely. A
//! callout may name a team (`team`) instead of listing contacts: the team's
//! contacts are copied into it at creation (see `callouts::resolve_script`).
//!
//! Contacts are checked by the callouts' own parser (`callout_input`), so a
//! team holds exactly what a callout's `contacts` may. Roles: dispatcher, like
//! the callouts API.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Dispatcher;
use super::callout_input::{self, NewContactBody, field_name, kind, name_field};
use super::callouts::{Body, read_body, rules};
use super::error::{ApiError, ErrorBody};
use super::idempotency;
use super::openapi::{BadRequest, Invalid, Unavailable};
use super::state::AppState;
use crate::domain::team::spreadsheet_cell;
use crate::domain::{Contact, FieldError, Team, TeamId, Timestamp};
use crate::store::{Replaced, Saved, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, replace, delete))
        .routes(routes!(export))
}

/// A team by id, or else by name.
pub(super) async fn find(state: &AppState, key: &str) -> Result<Option<Team>, StoreError> {
    let store = &state.engine.store;
    if let Ok(id) = key.parse::<TeamId>()
        && let Some(team) = store.team(id).await?
    {
        return Ok(Some(team));
    }
    store.team_by_name(key).await
}

/// A team as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Team)]
pub struct TeamView {
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    pub name: String,
    /// In calling order.
    pub contacts: Vec<TeamContactView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TeamContact)]
pub struct TeamContactView {
    pub name: String,
    pub phone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub language: Option<String>,
}

impl TeamView {
    fn of(team: &Team) -> Self {
        Self {
            id: team.id.to_string(),
            name: team.name.clone(),
            contacts: team
                .contacts
                .iter()
                .map(|c| TeamContactView {
                    name: c.name.clone(),
                    phone: c.phone.to_string(),
                    language: c.language.map(|l| l.code().to_owned()),
                })
                .collect(),
            created_at: team.created_at.rfc3339(),
            updated_at: team.updated_at.rfc3339(),
        }
    }
}

/// The saved teams, by name.
#[derive(Serialize, ToSchema)]
#[schema(as = TeamList)]
struct Teams {
    teams: Vec<TeamView>,
}

/// `POST /v1/teams` and `PUT /v1/teams/{id}` as JSON, for the OpenAPI document
/// (the parser, [`parse`], reads the fields one by one).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewTeam)]
pub struct NewTeamBody {
    /// Unique among teams; not 32 hex digits (that is an id).
    #[schema(min_length = 1, max_length = 200, example = "linemen")]
    pub name: String,
    /// In calling order; the same contacts a callout takes.
    #[schema(min_items = 1)]
    pub contacts: Vec<NewContactBody>,
}

/// A team whose call list is a CSV file.
#[derive(ToSchema)]
#[schema(as = TeamUpload)]
pub struct TeamUpload {
    /// The call list as CSV (UTF-8): a header row with name and phone (and
    /// optionally language), then one contact per row. Cells escaped by the
    /// export (`'+3069...`) are read without the `'`.
    #[schema(value_type = String, format = Binary)]
    pub contacts: Vec<u8>,
    /// The JSON of NewTeam without contacts: `{"name": "..."}`.
    pub team: String,
}

/// The `{id}` of a team's paths.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TeamPath {
    /// The team's id or name.
    pub id: String,
}

const TEAM_FIELDS: [&str; 2] = ["name", "contacts"];

/// Parses a team (the JSON body, or the `team` part of a CSV upload when
/// `csv_contacts` is given), collecting every problem.
fn parse(
    body: &Value,
    csv_contacts: Option<Vec<callout_input::RawContact>>,
    rules: &callout_input::InputRules<'_>,
) -> Result<(String, Vec<Contact>), Vec<FieldError>> {
    let Value::Object(obj) = body else {
        return Err(vec![FieldError::new(
            "body",
            format!("must be a JSON object, not {}", kind(body)),
        )]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !TEAM_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                field_name(key),
                format!("unknown field (expected one of {})", TEAM_FIELDS.join(", ")),
            ));
        }
    }
    let name = name_field(obj.get("name"), "name", &mut errors);
    if let Some(n) = &name
        && n.parse::<TeamId>().is_ok()
    {
        errors.push(FieldError::new(
            "name",
            "must not be 32 hex digits (a team is found by id or name: that is an id)",
        ));
    }
    let contacts =
        callout_input::contacts_field(csv_contacts, obj.get("contacts"), rules, &mut errors);
    match (name, contacts) {
        (Some(name), Some(contacts)) if errors.is_empty() => Ok((name, contacts)),
        _ => Err(errors),
    }
}

async fn read_team(state: &AppState, request: Request) -> Result<(String, Vec<Contact>), ApiError> {
    let (meta, rows) = match read_body(state, request, "team").await? {
        Body::Json(value) => (value, None),
        Body::Upload { rows, meta } => (meta, Some(rows)),
    };
    parse(&meta, rows, &rules(state)).map_err(ApiError::invalid)
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict("team_name_taken", format!("another team is named {name:?}"))
}

fn no_team(key: &str) -> ApiError {
    ApiError::not_found(format!("no team has the id or name {key:?}"))
}

/// The `{id}` segment (not UTF-8 once decoded: it names no team).
fn team_key(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(key)| key)
        .map_err(|_| ApiError::not_found("no team has this id or name (it is not UTF-8)"))
}

/// Save a team
///
/// A JSON body, or `multipart/form-data` with a `contacts` CSV file and a
/// `team` JSON part (`{"name": ...}`).
#[utoipa::path(
    post,
    path = "/v1/teams",
    tag = "teams",
    operation_id = "createTeam",
    extensions(("x-required-role" = json!("dispatcher"))),
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "As on POST /v1/callouts: a retry with the same key and body gets the first answer again."),
    ),
    request_body(content(
        (NewTeamBody = "application/json", example = json!({
            "name": "linemen",
            "contacts": [
                {"name": "Alice", "phone": "+306900000001"},
                {"name": "Bob", "phone": "+306900000002", "language": "el-GR"}
            ]
        })),
        (TeamUpload = "multipart/form-data", encoding(
            ("contacts" = (content_type = "text/csv")),
            ("team" = (content_type = "application/json")),
        )),
    )),
    responses(
        (status = 201, description = "Saved.", body = TeamView,
            headers(
                ("Location" = String),
                ("Idempotent-Replayed" = String, description = "`true` on the replayed answer to a retry with the same Idempotency-Key."),
            )),
        (status = 400, response = BadRequest),
        (status = 409, description = "Another team has the name (`team_name_taken`), or a request with this Idempotency-Key is still running (`idempotency_key_in_use`).", body = ErrorBody),
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
        Ok(json!(create_team(&state, request).await?))
    })
    .await?;
    Ok(idempotency::created("/v1/teams", answer))
}

async fn create_team(state: &AppState, request: Request) -> Result<TeamView, ApiError> {
    let (name, contacts) = read_team(state, request).await?;
    let team = Team::new(TeamId::new(), name, contacts, Timestamp::now());
    match state.engine.store.save_team(&team).await? {
        Saved::Yes => {
            tracing::info!(team_id = %team.id, contacts = team.contacts.len(), "team saved");
            Ok(TeamView::of(&team))
        }
        Saved::NameTaken => Err(name_taken(&team.name)),
    }
}

/// List the teams, by name
#[utoipa::path(
    get,
    path = "/v1/teams",
    tag = "teams",
    operation_id = "listTeams",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "Every team, by name.", body = Teams),
        (status = 503, response = Unavailable),
    ),
)]
async fn list(_caller: Dispatcher, State(state): State<AppState>) -> Result<Json<Teams>, ApiError> {
    let teams = state.engine.store.teams().await?;
    Ok(Json(Teams {
        teams: teams.iter().map(TeamView::of).collect(),
    }))
}

/// A team
#[utoipa::path(
    get,
    path = "/v1/teams/{id}",
    tag = "teams",
    operation_id = "getTeam",
    params(TeamPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "The team.", body = TeamView),
        (status = 404, description = "No team has this id or name.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn show(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TeamView>, ApiError> {
    let key = team_key(path)?;
    let team = find(&state, &key).await?.ok_or_else(|| no_team(&key))?;
    Ok(Json(TeamView::of(&team)))
}

/// Replace a team's name and call list
///
/// The same body as POST /v1/teams (JSON, or a CSV upload). Callouts already
/// made from the team keep the contacts they were made with.
#[utoipa::path(
    put,
    path = "/v1/teams/{id}",
    tag = "teams",
    operation_id = "replaceTeam",
    params(TeamPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    request_body(content(
        (NewTeamBody = "application/json"),
        (TeamUpload = "multipart/form-data", encoding(
            ("contacts" = (content_type = "text/csv")),
            ("team" = (content_type = "application/json")),
        )),
    )),
    responses(
        (status = 200, description = "Replaced.", body = TeamView),
        (status = 400, response = BadRequest),
        (status = 404, description = "No team has this id or name.", body = ErrorBody),
        (status = 409, description = "Another team has the name (`team_name_taken`).", body = ErrorBody),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES.", body = ErrorBody),
        (status = 415, description = "Neither application/json nor multipart/form-data.", body = ErrorBody),
        (status = 422, response = Invalid),
        (status = 503, response = Unavailable),
    ),
)]
async fn replace(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Json<TeamView>, ApiError> {
    let key = team_key(path)?;
    let (name, contacts) = read_team(&state, request).await?;
    // A replacement of the whole team: a concurrent change that lands between
    // the read and the write is replaced too, never merged (nor lost unseen:
    // the store refuses a stale base, and the team is read again).
    for _ in 0..5 {
        let current = find(&state, &key).await?.ok_or_else(|| no_team(&key))?;
        let team = current.replaced(name.clone(), contacts.clone(), Timestamp::now());
        match state
            .engine
            .store
            .replace_team(&team, current.updated_at)
            .await?
        {
            Replaced::Yes => {
                tracing::info!(team_id = %team.id, contacts = team.contacts.len(), "team replaced");
                return Ok(Json(TeamView::of(&team)));
            }
            Replaced::NameTaken => return Err(name_taken(&team.name)),
            Replaced::NotFound => return Err(no_team(&key)),
            Replaced::Changed => {}
        }
    }
    Err(ApiError::unavailable(
        "the team is being changed by other requests; retry",
    ))
}

/// Delete a team
///
/// Callouts made from it keep their copy of its contacts.
#[utoipa::path(
    delete,
    path = "/v1/teams/{id}",
    tag = "teams",
    operation_id = "deleteTeam",
    params(TeamPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No team has this id or name.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn delete(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let key = team_key(path)?;
    let team = find(&state, &key).await?.ok_or_else(|| no_team(&key))?;
    if state.engine.store.delete_team(team.id).await? {
        tracing::info!(team_id = %team.id, "team deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_team(&key))
    }
}

/// A team's call list as CSV
///
/// name, phone, language: the columns POST /v1/teams and POST /v1/callouts read
/// back. A cell a spreadsheet would run as a formula (starting with = + - @,
/// tab or carriage return; phone numbers too, which a spreadsheet would
/// otherwise read as numbers) starts with `'`.
#[utoipa::path(
    get,
    path = "/v1/teams/{id}/contacts.csv",
    tag = "teams",
    operation_id = "exportTeam",
    params(TeamPath),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "The call list.", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String))),
        (status = 404, description = "No team has this id or name.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
async fn export(
    _caller: Dispatcher,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = team_key(path)?;
    let team = find(&state, &key).await?.ok_or_else(|| no_team(&key))?;
    let csv = to_csv(&team).map_err(|e| ApiError::internal(&e))?;
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"team-{}.csv\"", team.id),
        ),
    ];
    Ok((headers, csv).into_response())
}

/// The team's contacts as CSV, every cell spreadsheet-safe.
fn to_csv(team: &Team) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["name", "phone", "language"])?;
    for c in &team.contacts {
        let phone = c.phone.to_string();
        let language = c.language.map(|l| l.code()).unwrap_or_default();
        writer.write_record([
            spreadsheet_cell(&c.name).as_ref(),
            spreadsheet_cell(&phone).as_ref(),
            spreadsheet_cell(language).as_ref(),
        ])?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialplan::template::Templates;
    use crate::domain::{Destinations, Policy};

    fn with_rules<T>(f: impl FnOnce(&callout_input::InputRules<'_>) -> T) -> T {
        let templates = Templates::default();
        let destinations = Destinations::anywhere();
        f(&callout_input::InputRules {
            templates: &templates,
            max_contacts: 3,
            allow_private_urls: false,
            default_policy: Policy::default(),
            destinations: &destinations,
        })
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_team_names_every_bad_field_at_once() {
        let body = json!({
            "name": "",
            "contacts": [{"name": "A", "phone": "nope"}, {"phone": "+306900000001", "x": 1}],
            "colour": "red"
        });
        let errors = with_rules(|r| parse(&body, None, r)).unwrap_err();
        let f = fields(&errors);
        for expected in [
            "colour",
            "name",
            "contacts[0].phone",
            "contacts[1].x",
            "contacts[1].name",
        ] {
            assert!(f.contains(&expected), "{expected} in {f:?}");
        }
    }

    #[test]
    fn a_team_name_may_not_look_like_an_id_and_contacts_are_required() {
        let id = TeamId::new().to_string();
        let errors = with_rules(|r| parse(&json!({"name": id}), None, r)).unwrap_err();
        assert_eq!(fields(&errors), ["name", "contacts"]);
        let too_many: Vec<Value> = (1..=4)
            .map(|n| json!({"name": "P", "phone": format!("+30690000000{n}")}))
            .collect();
        let errors = with_rules(|r| parse(&json!({"name": "t", "contacts": too_many}), None, r))
            .unwrap_err();
        assert_eq!(fields(&errors), ["contacts"]);
    }

    #[test]
    fn a_good_team_parses_in_order() {
        let body = json!({"name": " linemen ", "contacts": [
            {"name": "B", "phone": "+306900000002", "language": "el-GR"},
            {"name": "A", "phone": "+306900000001"}
        ]});
        let (name, contacts) = with_rules(|r| parse(&body, None, r)).unwrap();
        assert_eq!(name, "linemen");
        assert_eq!(
            contacts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["B", "A"]
        );
    }

    #[test]
    fn the_export_escapes_formulas_and_reads_back_as_the_same_contacts() {
        let contacts = vec![
            Contact {
                name: "=HYPERLINK(\"http://evil\",\"x\")".into(),
                phone: "+306900000001".parse().unwrap(),
                language: Some(crate::domain::Language::ElGr),
            },
            Contact {
                name: "@Bob, \"the\" lineman".into(),
                phone: "+306900000002".parse().unwrap(),
                language: None,
            },
        ];
        let team = Team::new(TeamId::new(), "t".into(), contacts.clone(), Timestamp(0));
        let csv = to_csv(&team).unwrap();
        let text = String::from_utf8(csv.clone()).unwrap();
        assert_eq!(
            text,
            "name,phone,language\n\
             \"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",'+306900000001,el-GR\n\
             \"'@Bob, \"\"the\"\" lineman\",'+306900000002,\n"
        );
        let rows = callout_input::parse_csv(&csv, 10).unwrap();
        let (_, back) = with_rules(|r| parse(&json!({"name": "t"}), Some(rows), r)).unwrap();
        assert_eq!(back, contacts);
    }
}
