//! What the conversation tools answer, and the path parameters of the
//! assistants API, as types that derive their part of `GET /openapi.json`.
//!
//! A turn's answer is `engine::tools::TurnReport`; its schema is
//! [`TurnReportSchema`] here, beside the other answers of the HTTP edge, so the
//! tools' module stays free of documentation concerns. It says only what a
//! client relies on; what Voiceflow answered is passed through as it came.
//! `tests/api/openapi.rs` checks real answers against it.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

use super::openapi::nullable;
use crate::domain::Decision;
use crate::engine::view::string_enum;
use crate::store::ToolSession;

/// The `{id}` of an assistant's paths.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssistantPath {
    /// An assistant's id (32 hex digits) or its name. None such is a 404.
    #[param(example = "sandbox")]
    pub id: String,
}

/// The `{id}` of a delete: without an example, or the examples phase of a
/// fuzzer would delete the assistant every other example uses.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssistantPathNoExample {
    /// An assistant's id (32 hex digits) or its name. None such is a 404.
    pub id: String,
}

/// The `{id}` and `{session}` of the conversation tools' paths.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// An assistant's id (32 hex digits) or its name. None such is a 404.
    #[param(example = "sandbox")]
    pub id: String,
    /// A test conversation's name, chosen by the caller: 1 to 64 of A-Z a-z 0-9
    /// _ -. Its Voiceflow userID is tool-<assistant id>-<session>. Anything
    /// else is a 422 naming session.
    #[param(example = "demo", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub session: String,
}

/// The Dialog Manager userID of a tools session.
fn user_id_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^tool-[0-9a-f]{32}-[A-Za-z0-9_-]+$"))
        .description(Some(
            "The Dialog Manager userID: tool-<assistant id>-<session>.",
        ))
        .into()
}

/// Anything, as Voiceflow answered it.
fn as_voiceflow_answered(what: &str) -> Schema {
    voiceflow_answer(what).into()
}

fn voiceflow_answer(what: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(format!("{what}, as Voiceflow answered it.")))
}

/// A test conversation's state, in Voiceflow and in the gateway.
// Fields in the order they have always been written (a sorted map's).
#[derive(Serialize, ToSchema)]
pub struct SessionState {
    /// What the gateway keeps for 24 hours after the last turn; null when
    /// nothing.
    #[schema(value_type = Option<KeptSession>, required = true)]
    pub gateway: Option<ToolSession>,
    pub session: String,
    #[schema(schema_with = stored_state_schema)]
    pub state: Value,
    #[schema(schema_with = user_id_schema)]
    pub user_id: String,
}

fn stored_state_schema() -> Schema {
    as_voiceflow_answered("The session's stored state ({} when none)")
}

/// What the gateway keeps of a tools session.
#[derive(ToSchema)]
pub struct KeptSession {
    pub turn: u32,
    /// The last menu, and whether silence is a no-reply.
    #[schema(value_type = Object)]
    pub conversation: Value,
}

/// A test conversation's variables after a merge.
#[derive(Serialize, ToSchema)]
pub struct SessionVariables {
    pub session: String,
    #[schema(schema_with = merged_state_schema)]
    pub state: Value,
    #[schema(schema_with = user_id_schema)]
    pub user_id: String,
}

fn merged_state_schema() -> Schema {
    as_voiceflow_answered("The state after the merge")
}

/// A test conversation's saved transcript.
#[derive(Serialize, ToSchema)]
pub struct SavedTranscript {
    pub session: String,
    #[schema(schema_with = transcript_schema)]
    pub transcript: Value,
    #[schema(schema_with = user_id_schema)]
    pub user_id: String,
}

fn transcript_schema() -> Schema {
    as_voiceflow_answered("The transcript record")
}

/// One turn of a test conversation: Voiceflow's side, then the gateway's.
// `engine::tools::TurnReport` as the document shows it.
#[derive(ToSchema)]
#[schema(as = TurnReport)]
pub struct TurnReportSchema {
    pub session: String,
    #[schema(schema_with = user_id_schema)]
    pub user_id: String,
    /// The input number the dialplan's COLLECT eventUrl carries.
    pub turn: u32,
    #[schema(inline)]
    pub input: InputReportSchema,
    /// Every request of the turn (a custom action the runtime stopped on is
    /// resumed, as on a call) with Voiceflow's answer.
    #[schema(inline)]
    pub exchanges: Vec<ExchangeSchema>,
    #[schema(schema_with = traces_schema)]
    pub traces: Vec<Value>,
    #[schema(inline)]
    pub dialplan: DialplanSchema,
    #[schema(required = true)]
    pub decision: Option<Decision>,
    pub menu: Vec<MenuItemSchema>,
    #[schema(required = true)]
    pub no_reply_timeout: Option<u32>,
    pub ends_call: bool,
    #[schema(schema_with = resume_schema, required = true)]
    pub resume: Option<Value>,
    #[schema(required = true)]
    pub transfer_to: Option<String>,
    pub spoken: Vec<String>,
    /// What was not rendered, and why.
    pub notes: Vec<String>,
}

/// How the input became the turn's first request.
#[derive(ToSchema)]
pub struct InputReportSchema {
    #[schema(schema_with = sent_as_schema)]
    pub sent_as: String,
    #[schema(nullable = false)]
    pub digits: Option<String>,
    /// The first Dialog Manager request of the turn.
    #[schema(value_type = Object)]
    pub request: Value,
}

fn sent_as_schema() -> Schema {
    string_enum(&["launch", "menu", "keypad", "text", "no_reply", "action"])
}

/// One request of the turn and Voiceflow's answer.
#[derive(ToSchema)]
pub struct ExchangeSchema {
    #[schema(value_type = Object)]
    pub request: Value,
    #[schema(schema_with = answer_schema)]
    pub response: Value,
}

fn answer_schema() -> Schema {
    as_voiceflow_answered("The answer (a list of traces)")
}

fn traces_schema() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(voiceflow_answer("A trace"))
        .into()
}

/// Exactly what Routee would get on a call. Its eventUrl names no callout or
/// call.
#[derive(ToSchema)]
pub struct DialplanSchema {
    pub verbs: Vec<VerbSchema>,
}

/// A Routee dialplan verb; the other fields depend on its type.
#[derive(ToSchema)]
#[schema(as = Verb)]
pub struct VerbSchema {
    #[schema(rename = "type", schema_with = verb_type_schema)]
    pub kind: String,
}

fn verb_type_schema() -> Schema {
    string_enum(&["SAY", "PLAY", "PAUSE", "COLLECT", "DIAL"])
}

/// One key of the menu a turn offers.
#[derive(ToSchema)]
#[schema(as = MenuItem)]
pub struct MenuItemSchema {
    pub digit: String,
    pub label: String,
    /// The button's own request, sent when digit is pressed.
    #[schema(value_type = Object)]
    pub request: Value,
}

/// The request that continues a custom action the runtime stopped on.
fn resume_schema() -> Schema {
    nullable(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The request that continues a custom action the runtime stopped on.",
            ))
            .into(),
    )
}
