//! The Voiceflow side of a call's turns: asking the Dialog Manager (with the
//! resumes of a stopped custom action), and recording its answer, its failure
//! or its lateness through the conversation's transitions
//! (`domain::conversation`).
//!
//! [`Engine::interact`] is the one Dialog Manager exchange of the gateway: a
//! call's launch and turns and the conversation tools' turns all run through
//! it, so the tools show what a caller would hear.
//!
//! A turn that asks for input with a `no-reply` timeout has its no-reply turn
//! run ahead ([`Engine::run_no_reply_ahead`]: the state saved, the no-reply
//! sent, its response played after the wait), because Routee posts nothing on
//! silence; a key that answers the first question puts the saved state back
//! first ([`Engine::restore_voiceflow_state`]). See
//! `domain::conversation::NoReplyAhead` and `docs/assistants.md`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::turn::{KeyPress, LATE_WINDOW, Reply, SAFETY, dialplan_json};
use super::{Applied, Engine, EngineError};
use crate::assistants::ResolvedAssistant;
use crate::dialplan::input::{CallerInput, request_for_input};
use crate::dialplan::render::{
    self, ActionNames, Listen, Phrases, RenderedTurn, TurnContext, Voice,
};
use crate::domain::{
    AnsweredTurn, Answers, Attempt, CallId, Callout, CalloutId, Consequences, Decision,
    HeardAfterSilence, MenuItem, NoReplyAhead, Policy, Rules,
};
use crate::routee::{Dialplan, Language, Verb};
use crate::store::Versioned;
use crate::telemetry::metrics as m;
use crate::voiceflow::client::{VoiceflowCredentials, restorable_state};
use crate::voiceflow::{InteractConfig, Request, StreamEvent, Trace, VoiceflowError};

/// How many stopped custom actions one turn resumes through.
const MAX_RESUMES: usize = 2;
/// Below this, a resume is not attempted (it could not finish in time).
const MIN_RESUME_BUDGET: Duration = Duration::from_millis(200);
/// Below this, no no-reply turn is run ahead (saving the state and the turn
/// could not both finish in time).
const MIN_AHEAD_BUDGET: Duration = Duration::from_millis(400);
/// The longest a launch waits for its no-reply turn run ahead (a launch is
/// not in Routee's 3-second window, but the call waits for it).
pub(super) const LAUNCH_AHEAD_BUDGET: Duration = Duration::from_secs(3);
/// The longest a key's turn waits for Voiceflow's state to be put back.
const RESTORE_BUDGET: Duration = Duration::from_secs(1);

/// The traces of a streamed turn received so far, shared between the task
/// reading the stream and the key press that may have to answer before it ends.
#[derive(Debug, Default)]
pub(crate) struct Received {
    traces: std::sync::Mutex<Vec<Trace>>,
    arrived: tokio::sync::Notify,
}

impl Received {
    fn push(&self, trace: Trace) {
        self.lock().push(trace);
        self.arrived.notify_one();
    }

    fn traces(&self) -> Vec<Trace> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Trace>> {
        self.traces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One Dialog Manager request of a turn and Voiceflow's answer, as it came.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub request: Value,
    pub response: Value,
}

/// What one Dialog Manager turn produced.
#[derive(Debug)]
pub struct Interaction {
    /// Every request of the turn with Voiceflow's answer.
    pub exchanges: Vec<Exchange>,
    /// All traces of the turn, in order.
    pub traces: Vec<Trace>,
    /// A resume failed: the turn keeps what it has (the decision is in it).
    pub resume_error: Option<String>,
}

/// The voice a callee hears: their own language when the call list gives one,
/// else the assistant's (with its gender); English without an assistant.
pub(crate) fn voice(
    resolved: Option<&ResolvedAssistant>,
    contact_language: Option<Language>,
) -> Voice {
    match resolved {
        Some(r) => r.voice(contact_language),
        None => Voice {
            language: contact_language.unwrap_or(Language::EnUs),
            gender: None,
        },
    }
}

/// Everything rendering a turn needs but its eventUrl: the one builder of a
/// [`TurnContext`], for calls (launch and turns) and the conversation tools.
#[derive(Debug, Clone)]
pub(crate) struct Rendering {
    pub voice: Voice,
    input_timeout_s: u32,
    reprompts: u32,
    transfer_max_s: u32,
    pub actions: ActionNames,
    /// The gateway's own words in the voice's language.
    pub phrases: &'static Phrases,
}

impl Rendering {
    pub(crate) fn new(resolved: Option<&ResolvedAssistant>, voice: Voice, policy: &Policy) -> Self {
        let actions = resolved.map(|r| r.actions()).unwrap_or_default();
        Self {
            voice,
            input_timeout_s: policy.input_timeout_s,
            reprompts: policy.reprompts,
            transfer_max_s: policy.max_call_s,
            actions,
            phrases: Phrases::of(voice.language),
        }
    }

    /// The rendering of a call's turns to the contact of `attempt`.
    pub(crate) fn for_call(
        resolved: Option<&ResolvedAssistant>,
        callout: &Callout,
        attempt: Option<&Attempt>,
    ) -> Self {
        let voice = match attempt {
            Some(a) => voice(resolved, callout.contacts[a.contact].language),
            None => voice(None, None),
        };
        Self::new(resolved, voice, &callout.policy)
    }

    pub(crate) fn context<'a>(&'a self, listen: Listen<'a>, caller_id: &'a str) -> TurnContext<'a> {
        TurnContext {
            voice: self.voice,
            event_url: listen.event_url,
            silence_url: listen.silence_url,
            input_timeout_s: self.input_timeout_s,
            reprompts: self.reprompts,
            actions: &self.actions,
            caller_id,
            transfer_max_s: self.transfer_max_s,
            phrases: self.phrases,
        }
    }
}

/// A rendered Voiceflow turn as the conversation keeps it.
pub(super) fn answered_turn(r: &RenderedTurn) -> AnsweredTurn {
    AnsweredTurn {
        dialplan: dialplan_json(&r.dialplan),
        menu: r.menu.clone(),
        expects_no_reply: r.no_reply_timeout.is_some(),
        ended: r.ends_call,
        ahead: None,
    }
}

/// A turn's answer with its no-reply turn run ahead: the dialplan that plays
/// the no-reply response after the wait, and what settles it later.
pub(crate) struct RunAhead {
    pub dialplan: Dialplan,
    pub ahead: NoReplyAhead,
}

/// One key press of a Voiceflow call, with what its transitions may render
/// (the conversation's [`Answers`]) and the assistant's rules for keys.
pub(super) struct TurnAnswers<'a> {
    pub rendering: Rendering,
    /// The eventUrl of the input after this one.
    pub next_url: String,
    /// The silence `.wav` of a wait ([`Engine::silence_url`]).
    silence_url: String,
    caller_id: &'a str,
    fallback_keys: Vec<(String, Decision)>,
    keypad: BTreeMap<String, String>,
    no_assistant: bool,
    in_flight_for: Duration,
}

impl<'a> TurnAnswers<'a> {
    pub(super) fn new(
        engine: &'a Engine,
        callout: &Callout,
        press: &KeyPress<'_>,
        resolved: Option<&ResolvedAssistant>,
    ) -> Self {
        Self {
            rendering: Rendering::for_call(resolved, callout, callout.attempt(press.call)),
            next_url: engine.collect_url(callout.id, press.call, press.turn + 1),
            silence_url: engine.silence_url(),
            caller_id: &engine.settings.caller_id,
            fallback_keys: fallback_keypad(resolved),
            keypad: resolved
                .map(|r| r.assistant.settings.keypad.clone())
                .unwrap_or_default(),
            no_assistant: resolved.is_none(),
            in_flight_for: engine.settings.webhook_deadline + LATE_WINDOW,
        }
    }

    pub(super) fn rules(&self) -> Rules<'_> {
        Rules {
            fallback_keys: &self.fallback_keys,
            no_assistant: self.no_assistant,
            in_flight_for: self.in_flight_for,
        }
    }

    /// Where the input after this one is listened for.
    fn listen_next(&self) -> Listen<'_> {
        Listen::new(&self.next_url, &self.silence_url)
    }

    /// How the answer to this key press is rendered.
    fn context_next(&self) -> TurnContext<'_> {
        self.rendering.context(self.listen_next(), self.caller_id)
    }

    /// Renders Voiceflow's traces for the next input (`event_url`: empty for a
    /// late answer, whose eventUrl is set when it is played).
    fn render(&self, traces: &[Trace], event_url: &str) -> RenderedTurn {
        let turn = render::render_turn(
            traces,
            &self
                .rendering
                .context(Listen::new(event_url, &self.silence_url), self.caller_id),
        );
        for note in &turn.notes {
            tracing::debug!(note = %note, "rendering note");
        }
        turn
    }
}

impl TurnAnswers<'_> {
    /// What a streamed turn has said by the deadline, then the holding wait.
    fn partial(&self, said: &[Trace]) -> String {
        let ctx = self.context_next();
        let rendered = render::render_turn(said, &ctx);
        dialplan_json(&render::partial_dialplan(&rendered, &ctx))
    }
}

impl Answers for TurnAnswers<'_> {
    type Request = Request;

    fn holding(&self) -> String {
        let ctx = self.rendering.context(self.listen_next(), self.caller_id);
        dialplan_json(&render::holding_dialplan(&ctx))
    }

    fn fallback(&self, decision: Option<Decision>) -> String {
        let (voice, phrases) = (self.rendering.voice, self.rendering.phrases);
        let plan = match decision {
            Some(Decision::Accepted) => render::closing_dialplan(&phrases.accepted, voice),
            Some(Decision::Rejected) => render::closing_dialplan(&phrases.rejected, voice),
            None => {
                let ctx = self.rendering.context(self.listen_next(), self.caller_id);
                let prompt = fallback_menu_prompt(&self.fallback_keys, phrases);
                render::fallback_dialplan(&ctx, &prompt)
            }
        };
        dialplan_json(&plan)
    }

    fn late(&self, dialplan: &str) -> String {
        with_event_url(dialplan, &self.next_url)
    }

    fn request(&self, keys: &str, menu: &[MenuItem], expects_no_reply: bool) -> Option<Request> {
        let input = if keys.is_empty() {
            CallerInput::Silence
        } else {
            CallerInput::Digits(keys.to_owned())
        };
        request_for_input(&input, menu, &self.keypad, expects_no_reply)
    }
}

impl Engine {
    /// One Dialog Manager turn: the request, then (when the runtime stopped on a
    /// custom action the renderer can resume) its resume request, so the caller
    /// hears what follows an `accept` (the goodbye). Never retried: interact is
    /// not idempotent.
    pub(crate) async fn interact(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        request: &Request,
        variables: Option<&Map<String, Value>>,
        budget: Duration,
        actions: &ActionNames,
    ) -> Result<Interaction, VoiceflowError> {
        let started = Instant::now();
        let config = InteractConfig::default();
        let (raw, traces) = self
            .voiceflow
            .interact_raw(creds, user_id, request, variables, &config, budget)
            .await?;
        let exchanges = vec![Exchange {
            request: request.to_json(),
            response: raw,
        }];
        Ok(self
            .resume(creds, user_id, exchanges, traces, started + budget, actions)
            .await)
    }

    /// Resumes a turn that stopped on a custom action the renderer can resume
    /// (at most [`MAX_RESUMES`] times, while there is time before `until`).
    async fn resume(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        mut exchanges: Vec<Exchange>,
        mut traces: Vec<Trace>,
        until: Instant,
        actions: &ActionNames,
    ) -> Interaction {
        let config = InteractConfig::default();
        let mut resume_error = None;
        for _ in 0..MAX_RESUMES {
            let Some(resume) = render::resume_request(&traces, actions) else {
                break;
            };
            let left = until.saturating_duration_since(Instant::now());
            if left < MIN_RESUME_BUDGET {
                break;
            }
            match self
                .voiceflow
                .interact_raw(creds, user_id, &resume, None, &config, left)
                .await
            {
                Ok((raw, more)) => {
                    traces.extend(more);
                    exchanges.push(Exchange {
                        request: resume.to_json(),
                        response: raw,
                    });
                }
                // What we have is still a valid turn (the decision is in it).
                Err(e) => {
                    tracing::warn!(error = %e, "resuming after a custom action failed");
                    resume_error = Some(e.to_string());
                    break;
                }
            }
        }
        Interaction {
            exchanges,
            traces,
            resume_error,
        }
    }

    /// [`Self::interact`] over Voiceflow's streaming endpoint (issue 19): each
    /// trace is pushed to `received` as it arrives (and `arrived` notified), so
    /// a key press whose deadline comes first can answer with what is there.
    /// Malformed events are skipped, logged and counted. A stream that breaks
    /// fails the turn, as a failed interact does.
    pub(crate) async fn interact_streamed(
        &self,
        creds: &VoiceflowCredentials,
        project_id: &str,
        user_id: &str,
        request: &Request,
        actions: &ActionNames,
        received: &Received,
    ) -> Result<Interaction, VoiceflowError> {
        // A streamed turn is only asked for a key press: it may run on late.
        let budget = LATE_WINDOW;
        use futures::StreamExt;
        let started = Instant::now();
        let stream = self
            .voiceflow
            .interact_stream(creds, project_id, user_id, request, budget)
            .await?;
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event? {
                StreamEvent::Trace(trace) => received.push(trace),
                StreamEvent::Malformed(what) => {
                    metrics::counter!(m::VOICEFLOW_STREAM_MALFORMED).increment(1);
                    tracing::warn!(event = %what, "a malformed event in Voiceflow's stream was skipped");
                }
            }
        }
        let traces = received.traces();
        let exchanges = vec![Exchange {
            request: request.to_json(),
            response: serde_json::json!({ "streamed_traces": traces.len() }),
        }];
        Ok(self
            .resume(creds, user_id, exchanges, traces, started + budget, actions)
            .await)
    }

    /// Asks Voiceflow the claimed turn and answers the key press by its
    /// deadline: Voiceflow's answer, the fallback keypad if it failed, or a
    /// holding dialplan if it is slow. In that last case the answer goes out
    /// through `reply` and this keeps waiting (within [`LATE_WINDOW`]) to record
    /// the late answer, played at the next key press.
    pub(super) async fn ask_voiceflow(
        &self,
        claimed: Versioned<Callout>,
        resolved: &ResolvedAssistant,
        answers: &TurnAnswers<'_>,
        press: &KeyPress<'_>,
        request: Request,
        reply: &mut Reply,
    ) -> Result<String, EngineError> {
        let id = claimed.value.id;
        let user_id = press.call.to_string();
        let (creds, actions) = (&resolved.credentials, &answers.rendering.actions);
        // Streamed when the assistant asks for it (its project id is then known).
        let project = resolved.assistant.project_id.as_deref();
        let streamed = project.filter(|_| resolved.assistant.settings.streaming);
        let received = Received::default();
        let work = async {
            match streamed {
                Some(project) => {
                    self.interact_streamed(creds, project, &user_id, &request, actions, &received)
                        .await
                }
                None => {
                    self.interact(creds, &user_id, &request, None, LATE_WINDOW, actions)
                        .await
                }
            }
        };
        let mut work = std::pin::pin!(work);
        let started = Instant::now();
        let budget = press
            .deadline
            .saturating_duration_since(started)
            .saturating_sub(SAFETY);
        match tokio::time::timeout(budget, &mut work).await {
            Ok(Ok(done)) => {
                let took = started.elapsed();
                self.answer_in_time(claimed, resolved, answers, press, done, took)
                    .await
            }
            Ok(Err(e)) => {
                tracing::warn!(callout_id = %id, call_id = %press.call, reason = %e, "Voiceflow failed; continuing on the fallback keypad");
                metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "voiceflow_error").increment(1);
                self.record_failure(id, press, &e.to_string(), answers)
                    .await
            }
            Err(_elapsed) => {
                metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "voiceflow_timeout")
                    .increment(1);
                // A streamed turn answers what is only said so far; else "one moment".
                let mut played = received.traces();
                played.truncate(render::playable_prefix(&played));
                let first = if played.is_empty() {
                    answers.holding()
                } else {
                    let left = press
                        .deadline
                        .saturating_duration_since(Instant::now())
                        .saturating_sub(SAFETY);
                    self.hear_audio(&mut played, left).await;
                    answers.partial(&played)
                };
                let first = self.record_slow(id, press, first).await?;
                reply.send(Ok(first.clone()));
                // Keep the slow turn: record its output (and decision) when it
                // comes; a streamed turn's decision as soon as it arrives.
                let (late, decided) = if streamed.is_some() {
                    self.decide_on_arrival(id, press.call, &mut work, &received, answers)
                        .await
                } else {
                    (work.await, false)
                };
                let rest = late.map(|mut done| {
                    done.traces.drain(..played.len().min(done.traces.len()));
                    done
                });
                self.record_late_answer(id, press.call, rest, answers, decided)
                    .await;
                Ok(first)
            }
        }
    }

    /// Voiceflow answered in time: the answer, with the no-reply turn run
    /// ahead when it asks for input with a timeout, recorded.
    async fn answer_in_time(
        &self,
        claimed: Versioned<Callout>,
        resolved: &ResolvedAssistant,
        answers: &TurnAnswers<'_>,
        press: &KeyPress<'_>,
        mut done: Interaction,
        took: Duration,
    ) -> Result<String, EngineError> {
        let left = || {
            press
                .deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(SAFETY)
        };
        // Audio conversion gets what is left of the turn's window.
        self.hear_audio(&mut done.traces, left()).await;
        let rendered = answers.render(&done.traces, &answers.next_url);
        let ahead = self
            .run_no_reply_ahead(
                &resolved.credentials,
                &press.call.to_string(),
                &rendered,
                &answers.context_next(),
                left(),
                took,
            )
            .await;
        self.record_answer(claimed, press, &rendered, ahead, answers)
            .await
    }

    /// Waits for the rest of a streamed turn after the caller was answered,
    /// applying a decision (an accept or reject custom action) as soon as its
    /// trace arrives. Returns the turn and whether its decision was applied.
    async fn decide_on_arrival<F>(
        &self,
        id: CalloutId,
        call: CallId,
        work: &mut std::pin::Pin<&mut F>,
        received: &Received,
        answers: &TurnAnswers<'_>,
    ) -> (Result<Interaction, VoiceflowError>, bool)
    where
        F: std::future::Future<Output = Result<Interaction, VoiceflowError>>,
    {
        let timing = self.settings.timing;
        let mut decided = false;
        loop {
            tokio::select! {
                late = work.as_mut() => return (late, decided),
                () = received.arrived.notified(), if !decided => {
                    let Some(d) = answers.render(&received.traces(), "").decision else {
                        continue;
                    };
                    let r = self
                        .update(id, |c, now| (c.on_decision(call, d, now, &timing), ()))
                        .await;
                    match r {
                        Ok(_) => decided = true,
                        Err(e) => {
                            tracing::warn!(callout_id = %id, call_id = %call, error = %e, "could not record a streamed decision; it is recorded with the turn");
                        }
                    }
                }
            }
        }
    }

    /// Voiceflow answered in time: record it on the claimed document, with
    /// the no-reply turn run ahead for it, if any.
    async fn record_answer(
        &self,
        claimed: Versioned<Callout>,
        press: &KeyPress<'_>,
        rendered: &RenderedTurn,
        ahead: Option<RunAhead>,
        answers: &TurnAnswers<'_>,
    ) -> Result<String, EngineError> {
        let (call, input) = (press.call, press.turn);
        let timing = self.settings.timing;
        let mut answered = answered_turn(rendered);
        if let Some(run) = ahead {
            answered.dialplan = dialplan_json(&run.dialplan);
            answered.ahead = Some(run.ahead);
        }
        let applied = self
            .update((claimed, false), |c, now| {
                let Some(a) = c.attempt_mut(call) else {
                    return (Consequences::default(), None);
                };
                if let Some(cached) = a.cached_answer(input) {
                    return (Consequences::default(), Some(cached.to_owned()));
                }
                let answer = a.on_answer(input, answered.clone());
                let ch = match rendered.decision {
                    Some(d) => c.on_decision(call, d, now, &timing),
                    None => Consequences::default(),
                };
                (ch, Some(answer))
            })
            .await?;
        Ok(match applied.into_result() {
            Some(Some(answer)) => answer,
            _ => super::turn::closed_dialplan(answers.rendering.voice),
        })
    }

    /// Runs the assistant's no-reply turn ahead for `first` (see
    /// [`NoReplyAhead`]): saves Voiceflow's state (`GET /state/user/{id}`),
    /// sends the no-reply request, and renders its response to play after the
    /// wait of `first`. Two Dialog Manager requests, within `budget`.
    ///
    /// `None`: `first` is played as it is (it asks for no no-reply, ends the
    /// call, there is no time left, or the state could not be saved, in which
    /// case nothing changed in Voiceflow). A no-reply turn that failed or came
    /// too late is recorded without a response ([`NoReplyAhead::heard`] is
    /// `None`), so the saved state is put back at the next input whatever it
    /// is: the request may have run.
    ///
    /// `expected` is how long `first` took Voiceflow: a no-reply turn is
    /// expected to take as long, so it is not tried when the budget would not
    /// hold it (it would only be undone at the next input).
    pub(crate) async fn run_no_reply_ahead(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        first: &RenderedTurn,
        ctx: &TurnContext<'_>,
        budget: Duration,
        expected: Duration,
    ) -> Option<RunAhead> {
        if first.no_reply_timeout.is_none() || first.ends_call {
            return None;
        }
        if budget < MIN_AHEAD_BUDGET.max(expected.mul_f64(1.25)) {
            metrics::counter!(m::NO_REPLY_AHEAD, "outcome" => "no_time").increment(1);
            return None;
        }
        let started = Instant::now();
        let saved = match tokio::time::timeout(budget, self.voiceflow.get_state(creds, user_id))
            .await
        {
            Ok(Ok(state)) => restorable_state(&state),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not save Voiceflow's state: the no-reply turn is not run ahead");
                None
            }
            Err(_) => None,
        };
        let Some(saved) = saved else {
            metrics::counter!(m::NO_REPLY_AHEAD, "outcome" => "not_saved").increment(1);
            return None;
        };
        let left = budget.saturating_sub(started.elapsed());
        if left < MIN_AHEAD_BUDGET / 2 {
            return None;
        }
        let not_heard = |why: &str| {
            metrics::counter!(m::NO_REPLY_AHEAD, "outcome" => "not_in_time").increment(1);
            tracing::warn!(
                reason = why,
                "the no-reply turn run ahead did not come back: Voiceflow's state is put back at the next input"
            );
            Some(RunAhead {
                dialplan: first.dialplan.clone(),
                ahead: NoReplyAhead {
                    saved_state: saved.clone(),
                    heard: None,
                },
            })
        };
        let turn = self.interact(creds, user_id, &Request::NoReply, None, left, ctx.actions);
        let mut done = match tokio::time::timeout(left, turn).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return not_heard(&e.to_string()),
            Err(_) => return not_heard("too slow"),
        };
        self.hear_audio(&mut done.traces, budget.saturating_sub(started.elapsed()))
            .await;
        let then = render::render_turn(&done.traces, ctx);
        let Some(dialplan) =
            render::after_silence(&first.dialplan, &then.dialplan, ctx.silence_url)
        else {
            return not_heard("the first dialplan has no wait");
        };
        metrics::counter!(m::NO_REPLY_AHEAD, "outcome" => "played").increment(1);
        Some(RunAhead {
            dialplan,
            ahead: NoReplyAhead {
                saved_state: saved,
                heard: Some(HeardAfterSilence {
                    menu: then.menu,
                    expects_no_reply: then.no_reply_timeout.is_some(),
                    ended: then.ends_call,
                    decision: then.decision,
                }),
            },
        })
    }

    /// A key answered the question asked before the silence: Voiceflow's state
    /// from before the no-reply turn run ahead is put back, so the key's turn
    /// runs where the callee was. A failure is logged, and the key's turn runs
    /// on the state as it is.
    pub(super) async fn restore_voiceflow_state(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        state: &serde_json::value::RawValue,
        budget: Duration,
    ) {
        let put = self.voiceflow.put_state(creds, user_id, state);
        match tokio::time::timeout(budget.min(RESTORE_BUDGET), put).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not put Voiceflow's state back before a key's turn");
            }
            Err(_) => {
                tracing::warn!("putting Voiceflow's state back before a key's turn took too long");
            }
        }
    }

    /// Voiceflow failed: the fallback keypad answers, now and from now on.
    async fn record_failure(
        &self,
        id: CalloutId,
        press: &KeyPress<'_>,
        reason: &str,
        answers: &TurnAnswers<'_>,
    ) -> Result<String, EngineError> {
        let answer = answers.fallback(None);
        self.update(id, |c, now| {
            let mut ch = Consequences::default();
            if let Some(a) = c.attempt_mut(press.call) {
                ch.events
                    .extend(a.on_voiceflow_failed(press.turn, answer.clone(), reason, now));
            }
            (ch, ())
        })
        .await?;
        Ok(answer)
    }

    /// Voiceflow is slow: the caller holds (`answer`: the holding dialplan, or
    /// what a streamed turn has said so far) while the turn goes on.
    async fn record_slow(
        &self,
        id: CalloutId,
        press: &KeyPress<'_>,
        answer: String,
    ) -> Result<String, EngineError> {
        self.update(id, |c, now| {
            let mut ch = Consequences::default();
            if let Some(a) = c.attempt_mut(press.call) {
                ch.events
                    .extend(a.on_voiceflow_slow(press.turn, answer.clone(), now));
            }
            (ch, ())
        })
        .await?;
        Ok(answer)
    }

    /// A slow turn finished after the caller got a holding dialplan (its
    /// decision already applied when `decided`).
    async fn record_late_answer(
        &self,
        id: CalloutId,
        call: CallId,
        result: Result<Interaction, VoiceflowError>,
        answers: &TurnAnswers<'_>,
        decided: bool,
    ) {
        let timing = self.settings.timing;
        let rendered = match result {
            // The eventUrl is set when the answer is played.
            Ok(mut done) => {
                self.hear_audio(&mut done.traces, Self::UNHURRIED_AUDIO_BUDGET)
                    .await;
                Some(answers.render(&done.traces, ""))
            }
            Err(e) => {
                tracing::warn!(callout_id = %id, call_id = %call, error = %e, "late Voiceflow turn failed");
                None
            }
        };
        let answered = rendered.as_ref().map(answered_turn);
        let decision = rendered.and_then(|r| r.decision).filter(|_| !decided);
        let r = self
            .update(id, |c, now| {
                let Some(a) = c.attempt_mut(call) else {
                    return (Consequences::default(), ());
                };
                a.on_late_answer(answered.clone());
                let ch = match decision {
                    Some(d) => c.on_decision(call, d, now, &timing),
                    None => Consequences::default(),
                };
                (ch, ())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(callout_id = %id, call_id = %call, error = %e, "could not record a late Voiceflow turn");
        }
    }
}

impl<R> Applied<R> {
    /// The transition's result, unless the callout is gone.
    pub(crate) fn into_result(self) -> Option<R> {
        match self {
            Applied::Committed { result, .. } | Applied::Unchanged { result, .. } => Some(result),
            Applied::Missing => None,
        }
    }
}

/// Points a stored dialplan's COLLECT at `url`.
fn with_event_url(plan_json: &str, url: &str) -> String {
    match serde_json::from_str::<Dialplan>(plan_json) {
        Ok(mut plan) => {
            for verb in &mut plan.verbs {
                if let Verb::Collect(c) = verb {
                    c.event_url = url.to_owned();
                }
            }
            dialplan_json(&plan)
        }
        Err(_) => plan_json.to_owned(),
    }
}

/// Keys that decide when Voiceflow is unavailable: the assistant's keypad entries
/// whose intent is one of its accept/reject action names, else 1 and 2.
fn fallback_keypad(resolved: Option<&ResolvedAssistant>) -> Vec<(String, Decision)> {
    let mut keys = Vec::new();
    if let Some(r) = resolved {
        let s = &r.assistant.settings;
        let is = |list: &[String], name: &str| list.iter().any(|n| n.eq_ignore_ascii_case(name));
        for (digit, intent) in &s.keypad {
            if is(&s.accept_actions, intent) {
                keys.push((digit.clone(), Decision::Accepted));
            } else if is(&s.reject_actions, intent) {
                keys.push((digit.clone(), Decision::Rejected));
            }
        }
    }
    if !keys.iter().any(|(_, d)| *d == Decision::Accepted) {
        keys = vec![
            ("1".into(), Decision::Accepted),
            ("2".into(), Decision::Rejected),
        ];
    }
    keys
}

fn fallback_menu_prompt(keys: &[(String, Decision)], phrases: &Phrases) -> String {
    keys.iter()
        .map(|(k, d)| phrases.fallback_line(k, *d == Decision::Accepted))
        .collect::<Vec<_>>()
        .join(" ")
}
