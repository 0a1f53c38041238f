//! What a client needs to compose a callout before creating it (the console's
//! new-callout form uses exactly these):
//!
//! - `GET /v1/dialplans`: the dialplan templates loaded here, each with the
//!   variables a callout must supply (its placeholders less the built-ins) and
//!   what its keys do;
//! - `GET /v1/policy`: the policy defaults and each field's bounds;
//! - `POST /v1/callouts/preview`: the body of `POST /v1/callouts` (JSON or a CSV
//!   upload), checked the same way, with the same 422 naming every bad field and
//!   row, but **nothing is created**; a valid one answers what the first callee
//!   will hear: the template rendered with the variables, as text and as the
//!   Routee verbs placed with the call.
//!
//! The preview renders with [`Template::render_call`], the function the engine
//! places the first call with, and the same variables (the callout's, plus
//! `contact_name`, `callout_name`, `attempt` = 1 and `max_attempts`); only the
//! `COLLECT`'s `eventUrl` differs, since a real one is signed for a call that
//! does not exist yet. An assistant's first words come from Voiceflow when the
//! call is answered; its preview is `null` (the conversation tools run it).

use axum::Json;
use axum::extract::{Request, State};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Dispatcher;
use super::callout_input::{CalloutUpload, NewCalloutBody};
use super::callouts::{check_notify_target, read_draft, resolve_script};
use super::error::{ApiError, ErrorBody};
use super::openapi::{BadRequest, Invalid, Unavailable};
use super::state::AppState;
use crate::dialplan::template::{BUILTIN_VARS, Template, Vars};
use crate::domain::policy::BOUNDS;
use crate::domain::{Decision, NewCallout, Script};
use crate::routee::Verb;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dialplans))
        .routes(routes!(policy))
        .routes(routes!(preview))
}

/// A dialplan template, for composing a callout.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Dialplan)]
struct DialplanView {
    name: String,
    description: Option<String>,
    language: String,
    /// Variables a callout must give (`variables.<name>`).
    variables: Vec<String>,
    /// Built-in variables the template uses (filled in per call).
    builtins: Vec<String>,
    /// Phone key to what it does: `accepted`, `rejected`, or `menu` (says its
    /// text and offers the options again).
    keys: std::collections::BTreeMap<String, String>,
}

/// The templates, by name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DialplanList)]
struct Dialplans {
    dialplans: Vec<DialplanView>,
}

fn dialplan_view(t: &Template) -> DialplanView {
    let mut builtins: Vec<String> = t.placeholders().into_iter().collect();
    builtins.retain(|n| BUILTIN_VARS.contains(&n.as_str()));
    DialplanView {
        name: t.name.clone(),
        description: t.description.clone(),
        language: t.language.code().to_owned(),
        variables: t.required_variables().into_iter().collect(),
        builtins,
        keys: t
            .keys
            .iter()
            .map(|(k, a)| {
                let does = match a.decision {
                    Some(Decision::Accepted) => "accepted",
                    Some(Decision::Rejected) => "rejected",
                    None => "menu",
                };
                (k.clone(), does.to_owned())
            })
            .collect(),
    }
}

/// The dialplan templates, with the variables each needs
#[utoipa::path(
    get,
    path = "/v1/dialplans",
    tag = "callouts",
    operation_id = "listDialplans",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses((status = 200, description = "By name.", body = Dialplans)),
)]
async fn dialplans(_caller: Dispatcher, State(state): State<AppState>) -> Json<Dialplans> {
    Json(Dialplans {
        dialplans: state.engine.templates.iter().map(dialplan_view).collect(),
    })
}

/// The policy defaults and each field's bounds
///
/// What a callout without a `policy` (or with some of its fields) gets:
/// `{defaults, bounds: {field: {min, max}}, max_contacts}`.
#[utoipa::path(
    get,
    path = "/v1/policy",
    tag = "callouts",
    operation_id = "getPolicy",
    extensions(("x-required-role" = json!("dispatcher"))),
    responses((status = 200, description = "Defaults and bounds.", body = Object)),
)]
async fn policy(_caller: Dispatcher, State(state): State<AppState>) -> Json<Value> {
    let bounds: Map<String, Value> = BOUNDS
        .iter()
        .map(|(name, lo, hi)| ((*name).to_owned(), json!({"min": lo, "max": hi})))
        .collect();
    Json(json!({
        "defaults": state.config.default_policy,
        "bounds": bounds,
        "max_contacts": state.config.max_contacts,
    }))
}

/// Check a callout as POST /v1/callouts would, create nothing, and show what the first person hears
///
/// The same body and the same checks as creating (a 422 names every bad field
/// and row); nothing is created. Answers `{callout, first_call}`: the callout as
/// it would be created (policy complete, phones in E.164), and the first call's
/// words (`script`: one entry per verb, `{kind: say, text, voice,
/// interruptible}`, `{kind: pause, seconds}`, `{kind: wait, seconds,
/// interruptible}` (silence a key interrupts), `{kind: play, url}`, `{kind:
/// collect}`) and its Routee `verbs` (the COLLECT's eventUrl, signed per call,
/// with placeholders); `first_call` is null for an assistant, whose words come
/// from Voiceflow.
#[utoipa::path(
    post,
    path = "/v1/callouts/preview",
    tag = "callouts",
    operation_id = "previewCallout",
    extensions(("x-required-role" = json!("dispatcher"))),
    request_body(content(
        (NewCalloutBody = "application/json"),
        (CalloutUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Valid; nothing was created.", body = Object),
        (status = 400, response = BadRequest),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES.", body = ErrorBody),
        (status = 415, description = "Neither application/json nor multipart/form-data.", body = ErrorBody),
        (status = 422, response = Invalid),
        (status = 503, response = Unavailable),
    ),
)]
async fn preview(
    _caller: Dispatcher,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let draft = read_draft(&state, request).await?;
    check_notify_target(&state, &draft).await?;
    let input = resolve_script(&state, draft).await?;
    let first_call = match &input.script {
        Script::Template { name } => state
            .engine
            .templates
            .get(name)
            .map(|t| first_call(&state, t, &input)),
        Script::Assistant { .. } => None,
    };
    let contacts: Vec<Value> = input
        .contacts
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "phone": c.phone.as_str(),
                "language": c.language.map(|l| l.code()),
            })
        })
        .collect();
    let (dialplan, assistant) = match &input.script {
        Script::Template { name } => (Some(name.clone()), None),
        Script::Assistant { id } => (None, Some(id.to_string())),
    };
    Ok(Json(json!({
        "callout": {
            "name": input.name,
            "dialplan": dialplan,
            "assistant": assistant,
            "variables": input.variables,
            "policy": input.policy,
            "notify_url": input.notify_url,
            "contacts": contacts,
        },
        "first_call": first_call,
    })))
}

/// What the first contact hears on their first call.
fn first_call(state: &AppState, template: &Template, input: &NewCallout) -> Value {
    let Some(contact) = input.contacts.first() else {
        return Value::Null;
    };
    let vars = preview_vars(input, 0, 1);
    let base = state
        .engine
        .settings
        .public_url
        .as_str()
        .trim_end_matches('/');
    let event_url = format!("{base}/routee/collect/{{callout}}/{{call}}/0?sig={{signature}}");
    let dialplan = template.render_call(
        &vars,
        contact.language,
        input.policy.input_timeout_s,
        input.policy.reprompts,
        crate::dialplan::render::Listen::new(&event_url, &state.engine.silence_url()),
    );
    json!({
        "contact": 0,
        "name": contact.name,
        "phone": contact.phone.as_str(),
        "language": contact.language.unwrap_or(template.language).code(),
        "script": spoken(&dialplan.verbs, &state.engine.silence_url()),
        "verbs": dialplan.verbs,
    })
}

/// The placeholders of `contact`'s `attempt`-th call, as the engine fills them
/// (`engine::place::template_vars`).
fn preview_vars(input: &NewCallout, contact: usize, attempt: u32) -> Vars {
    let mut vars: Vars = input
        .variables
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    let name = input
        .contacts
        .get(contact)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    vars.insert("contact_name".into(), name);
    vars.insert("callout_name".into(), input.name.clone());
    vars.insert("attempt".into(), attempt.to_string());
    vars.insert(
        "max_attempts".into(),
        input.policy.attempts_per_contact.to_string(),
    );
    vars
}

/// The call as a person reads it: one line per verb.
/// One entry per verb; the gateway's own silence (a wait for a key, see
/// `crate::audio`) shows as `{kind: wait, seconds}` rather than as a file.
fn spoken(verbs: &[Verb], silence_url: &str) -> Vec<Value> {
    verbs
        .iter()
        .map(|v| match v {
            Verb::Play(p) if p.file_url == silence_url => json!({
                "kind": "wait",
                "seconds": p.repeat.unwrap_or(0).max(0) + 1,
                "interruptible": p.barge_in,
            }),
            Verb::Say(s) => json!({
                "kind": "say",
                "text": s.message.text,
                "voice": s.message.gender,
                "interruptible": s.barge_in,
            }),
            Verb::Pause(p) => json!({"kind": "pause", "seconds": p.duration}),
            Verb::Play(p) => json!({"kind": "play", "url": p.file_url}),
            Verb::Collect(_) => json!({"kind": "collect"}),
            Verb::Dial(d) => json!({"kind": "dial", "to": d.to}),
        })
        .collect()
}
