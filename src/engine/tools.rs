//! Conversation tools: run an assistant's conversation without placing a call,
//! and see both what Voiceflow answered and what the gateway would make of it.
//!
//! A *session* is a named test conversation of one assistant. Its Dialog
//! Manager `userID` is `tool-<assistant id>-<session>` ([`SessionName::user_id`]):
//! a call's `userID` is its 32-hex call id, so the two can never meet in
//! Voiceflow's state, and two assistants of one Voiceflow project never share a
//! session.
//!
//! Each turn runs as a call's turn does: the request (digits mapped through the
//! previous turn's menu and the assistant's keypad by
//! [`request_for_input`], silence sent only when the previous turn asked for it),
//! then the resume of a custom action the runtime stopped on, and the traces are
//! rendered by [`render_turn`] with the assistant's settings, the default policy
//! and an eventUrl of the gateway's own shape (signed for a callout and call
//! that do not exist, so nothing can act on it).
//!
//! What a call keeps between turns (the menu, whether silence is a `no-reply`)
//! is kept per session in the store ([`ToolSession`], 24 hours after the last
//! turn), so `digits` read the same on any replica. Turns of one session are not
//! serialized: send one request at a time, as a caller would.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Engine;
pub use super::dialog::Exchange;
use super::dialog::{self, Rendering};
use crate::assistants::ResolvedAssistant;
use crate::dialplan::input::{CallerInput, request_for_input};
use crate::dialplan::render::{Listen, RenderedTurn, render_turn};
use crate::domain::{AssistantId, CallId, CalloutId, Conversation, Policy};
use crate::store::{StoreError, ToolSession};
use crate::voiceflow::client::{TranscriptRequest, TranscriptUser};
use crate::voiceflow::{Request, VoiceflowError};

/// How long a session's last menu is kept after its last turn.
pub const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest session name.
pub const MAX_SESSION_CHARS: usize = 64;
/// Time allowed for one turn, resumes included (no caller is waiting on a line).
const TURN_BUDGET: Duration = Duration::from_secs(15);

/// A valid session name: 1 to 64 of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionName(String);

impl TryFrom<&str> for SessionName {
    type Error = String;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_SESSION_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "a session name is 1 to {MAX_SESSION_CHARS} letters, digits, `_` or `-`"
            ))
        }
    }
}

impl SessionName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Dialog Manager `userID` of this session of `assistant`.
    pub fn user_id(&self, assistant: AssistantId) -> String {
        format!("tool-{assistant}-{}", self.0)
    }
}

/// What the tester does this turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start (or restart) the conversation; `variables` go into `state.variables`.
    Launch {
        variables: Map<String, Value>,
    },
    /// Keys pressed, read like a call reads them.
    Digits(String),
    Text(String),
    /// The callee stayed silent.
    NoReply,
    /// A raw Dialog Manager action, sent as it is.
    Action(Value),
}

/// Why a turn was not run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The input maps to no request (silence when none was asked for).
    #[error("{0}")]
    NothingToSend(String),
    /// Transcripts need the project and version ids, which the assistant lacks.
    #[error(
        "assistant {0} has no Voiceflow project and version ids, which transcripts need: \
         update it with a 24-hex version id, or with project_id"
    )]
    TranscriptsUnavailable(String),
    #[error(transparent)]
    Voiceflow(#[from] VoiceflowError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How the input became the first request of the turn.
#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    /// `launch`, `menu` (a key of the last menu), `keypad` (the assistant's key
    /// map, an intent), `text`, `no_reply` or `action`.
    pub sent_as: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<String>,
    pub request: Value,
}

/// A turn as the tools report it: Voiceflow's side, then the gateway's.
#[derive(Debug, Clone, Serialize)]
pub struct TurnReport {
    pub session: String,
    pub user_id: String,
    /// The input number whose eventUrl the dialplan's `COLLECT` carries.
    pub turn: u32,
    pub input: InputReport,
    /// Every request of the turn with Voiceflow's answer.
    pub exchanges: Vec<Exchange>,
    /// All traces of the turn, in order, as Voiceflow returned them.
    pub traces: Vec<Value>,
    /// The dialplan (`{"verbs": [...]}`) and what the gateway concluded:
    /// `decision`, `menu`, `ends_call`, `no_reply_timeout`, `resume`,
    /// `transfer_to`, `spoken`, `notes`.
    #[serde(flatten)]
    pub rendered: RenderedTurn,
}

/// Who a saved transcript says the conversation was with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptDetails {
    pub device: String,
    pub os: String,
    pub browser: String,
    pub user_name: String,
}

impl TranscriptDetails {
    /// Defaults that tell a tools session apart from a real call's transcript
    /// (`phone` / `routee` / `ivr-gateway`).
    pub fn defaults(session: &SessionName) -> Self {
        Self {
            device: "phone".into(),
            os: "ivr-gateway".into(),
            browser: "conversation-tools".into(),
            user_name: format!("test session {}", session.as_str()),
        }
    }
}

/// The conversation tools over one engine (its Voiceflow client, store, caller
/// ID and webhook URL shape).
#[derive(Debug, Clone, Copy)]
pub struct Tools<'a> {
    engine: &'a Engine,
    /// Input timeout and reprompts, as for a callout that sets none.
    policy: Policy,
}

impl<'a> Tools<'a> {
    pub fn new(engine: &'a Engine, policy: Policy) -> Self {
        Self { engine, policy }
    }

    /// Runs one turn of `session` and renders it as a call would.
    pub async fn turn(
        &self,
        resolved: &ResolvedAssistant,
        session: &SessionName,
        input: Input,
    ) -> Result<TurnReport, ToolError> {
        let id = resolved.assistant.id;
        let store = &self.engine.store;
        let state = match &input {
            Input::Launch { .. } => ToolSession::default(),
            _ => store
                .tool_session(id, session.as_str())
                .await?
                .unwrap_or_default(),
        };
        let conversation = &state.conversation;
        let mut notes = Vec::new();
        if conversation.ended() && !matches!(input, Input::Launch { .. }) {
            notes.push(
                "the previous turn ended the call: a caller could not have answered it".to_owned(),
            );
        }
        let keypad = &resolved.assistant.settings.keypad;
        let (request, variables, report) = match input {
            Input::Launch { variables } => (Request::Launch, Some(variables), None),
            Input::Digits(digits) => {
                let request = request_for_input(
                    &CallerInput::Digits(digits.clone()),
                    &conversation.menu,
                    keypad,
                    conversation.expects_no_reply,
                )
                .ok_or_else(|| {
                    no_reply_refused("digits without a key (only `#`) are silence, and")
                })?;
                (request, None, Some(digits))
            }
            Input::Text(text) => (Request::Text(text), None, None),
            Input::NoReply => {
                let request = request_for_input(
                    &CallerInput::Silence,
                    &conversation.menu,
                    keypad,
                    conversation.expects_no_reply,
                )
                .ok_or_else(|| no_reply_refused("silence is reported only when asked for, and"))?;
                (request, None, None)
            }
            Input::Action(action) => (Request::Raw(action), None, None),
        };
        let sent_as = match (&request, &report) {
            (Request::Launch, _) => "launch",
            (Request::Raw(_), Some(_)) => "menu",
            (Request::Raw(_), None) => "action",
            (Request::Intent { .. }, _) => "keypad",
            (Request::NoReply, _) => "no_reply",
            _ => "text",
        };
        let input = InputReport {
            sent_as,
            digits: report,
            request: request.to_json(),
        };
        let turn = state.turn;
        let event_url = placeholder_event_url(self.engine, turn);
        let rendering = Rendering::new(
            Some(resolved),
            dialog::voice(Some(resolved), None),
            &self.policy,
        );
        let silence_url = self.engine.silence_url();
        let ctx = rendering.context(
            Listen::new(&event_url, &silence_url),
            &self.engine.settings.caller_id,
        );
        let user_id = session.user_id(id);
        let mut done = self
            .engine
            .interact(
                &resolved.credentials,
                &user_id,
                &request,
                variables.as_ref(),
                TURN_BUDGET,
                &rendering.actions,
            )
            .await?;
        if let Some(e) = &done.resume_error {
            notes.push(format!("resuming after the custom action failed: {e}"));
        }
        self.engine
            .hear_audio(&mut done.traces, Engine::UNHURRIED_AUDIO_BUDGET)
            .await;
        let exchanges = done.exchanges;
        let mut rendered = render_turn(&done.traces, &ctx);
        rendered.notes.extend(notes);
        let next = ToolSession {
            turn: turn + 1,
            conversation: Conversation::after_turn(
                rendered.menu.clone(),
                rendered.no_reply_timeout.is_some(),
                rendered.ends_call,
            ),
        };
        store
            .save_tool_session(id, session.as_str(), &next, SESSION_TTL)
            .await?;
        Ok(TurnReport {
            session: session.as_str().to_owned(),
            user_id,
            turn,
            input,
            traces: exchanges
                .iter()
                .flat_map(|e| raw_traces(&e.response))
                .collect(),
            exchanges,
            rendered,
        })
    }

    /// Voiceflow's stored state of the session, and what the gateway keeps of it.
    pub async fn state(
        &self,
        resolved: &ResolvedAssistant,
        session: &SessionName,
    ) -> Result<(Value, Option<ToolSession>), ToolError> {
        let id = resolved.assistant.id;
        let state = self
            .engine
            .voiceflow
            .get_state(&resolved.credentials, &session.user_id(id))
            .await?;
        let kept = self.engine.store.tool_session(id, session.as_str()).await?;
        Ok((state, kept))
    }

    /// Forgets the session, in Voiceflow and here.
    pub async fn delete_state(
        &self,
        resolved: &ResolvedAssistant,
        session: &SessionName,
    ) -> Result<(), ToolError> {
        let id = resolved.assistant.id;
        self.engine
            .voiceflow
            .delete_state(&resolved.credentials, &session.user_id(id))
            .await?;
        self.engine
            .store
            .delete_tool_session(id, session.as_str())
            .await?;
        Ok(())
    }

    /// Merges variables into the session's state; returns the state Voiceflow answers.
    pub async fn patch_variables(
        &self,
        resolved: &ResolvedAssistant,
        session: &SessionName,
        variables: &Map<String, Value>,
    ) -> Result<Value, ToolError> {
        Ok(self
            .engine
            .voiceflow
            .patch_variables(
                &resolved.credentials,
                &session.user_id(resolved.assistant.id),
                variables,
            )
            .await?)
    }

    /// Saves the session's transcript to Voiceflow; returns Voiceflow's record.
    pub async fn save_transcript(
        &self,
        resolved: &ResolvedAssistant,
        session: &SessionName,
        details: TranscriptDetails,
    ) -> Result<Value, ToolError> {
        let a = &resolved.assistant;
        let (Some(project_id), Some(version_id)) = (&a.project_id, &a.version_id) else {
            return Err(ToolError::TranscriptsUnavailable(a.name.clone()));
        };
        let request = TranscriptRequest {
            project_id: project_id.clone(),
            version_id: version_id.clone(),
            session_id: session.user_id(a.id),
            device: details.device,
            os: details.os,
            browser: details.browser,
            user: TranscriptUser {
                name: details.user_name,
                image: None,
            },
            report_tags: None,
        };
        Ok(self
            .engine
            .voiceflow
            .save_transcript(&resolved.credentials, &request)
            .await?)
    }
}

fn no_reply_refused(why: &str) -> ToolError {
    ToolError::NothingToSend(format!(
        "nothing to send: {why} the previous turn sent no `no-reply` trace, so a call \
         would tell Voiceflow nothing (it hangs up after the reprompt). To send a \
         no-reply anyway: {{\"action\": {{\"type\": \"no-reply\"}}}}"
    ))
}

/// The trace objects of an interact answer (a list, or `verbose`'s `trace`).
fn raw_traces(response: &Value) -> Vec<Value> {
    match response {
        Value::Array(items) => items.clone(),
        Value::Object(m) => m
            .get("trace")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// An eventUrl of exactly the gateway's shape for input `turn`, for a callout
/// and call that do not exist (all-zero ids): a key sent there gets the
/// "already handled" goodbye, never a turn of a real call.
fn placeholder_event_url(engine: &Engine, turn: u32) -> String {
    const NIL: &str = "00000000000000000000000000000000";
    match (NIL.parse::<CalloutId>(), NIL.parse::<CallId>()) {
        (Ok(callout), Ok(call)) => engine.collect_url(callout, call, turn),
        _ => unreachable!("the all-zero id is a valid id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_short_and_url_safe() {
        for ok in ["a", "demo-1", "QA_run_42", &"x".repeat(64)] {
            assert!(SessionName::try_from(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "a/b", "a:b", "é", &"x".repeat(65), "{tag}"] {
            assert!(SessionName::try_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_session_user_id_can_never_be_a_call_id() {
        let assistant = AssistantId::new();
        let user = SessionName::try_from("s1").unwrap().user_id(assistant);
        assert_eq!(user, format!("tool-{assistant}-s1"));
        assert!(user.parse::<CallId>().is_err());
    }

    #[test]
    fn raw_traces_come_from_a_list_or_a_verbose_answer() {
        let list = serde_json::json!([{"type": "speak"}]);
        let verbose = serde_json::json!({"trace": [{"type": "end"}], "state": {}});
        assert_eq!(raw_traces(&list).len(), 1);
        assert_eq!(raw_traces(&verbose)[0]["type"], "end");
        assert!(raw_traces(&Value::Null).is_empty());
    }
}
