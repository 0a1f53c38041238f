//! A key press to the next dialplan, always within Routee's 3-second window.
//!
//! For every COLLECT event (`/routee/collect/{callout}/{call}/{turn}`):
//!
//! 1. A repeated delivery of a turn already answered gets the same dialplan back
//!    (answers are cached per turn in the callout document), never a second
//!    Voiceflow turn.
//! 2. Template calls: the key is looked up in the template's keypad map; the answer
//!    and the decision are committed in one step.
//! 3. Voiceflow calls: the turn is *claimed* in the document first (Voiceflow keeps
//!    no per-user lock, so turns of one call are serialized here), then the
//!    request runs with the time left before the deadline. If Voiceflow is slow,
//!    the caller gets a holding dialplan ("one moment... press any key") and the
//!    request keeps running: its output (and any accept/reject in it) is recorded
//!    when it arrives and played at the next key press. If Voiceflow fails, the call
//!    continues on a fallback keypad (accept/reject) so a decision is never lost;
//!    and the keys of a turn whose answer never came (failed, or lost with a
//!    replica that died while Voiceflow was slow) are read on that keypad when
//!    the call ends with nothing more pressed: the caller who pressed the accept
//!    key as the call ended, or who waited on hold, still accepted.
//! 4. If the store itself is down, the caller is asked to press again (same turn).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::place::{assistant_context, assistant_rendering, extend, log_notes, template_vars};
use super::{Engine, EngineError, Update};
use crate::assistants::ResolvedAssistant;
use crate::dialplan::input::{CallerInput, request_for_input};
use crate::dialplan::render::{self, Listen, Voice};
use crate::dialplan::template::Closing;
use crate::domain::{
    CallId, Callout, CalloutId, CalloutStatus, Changes, Decision, EventKind, InFlightTurn, Keys,
    PendingTurn, Script, Timestamp, Tones,
};
use crate::routee::{Collect, CollectEvent, Dialplan, Language, Verb};
use crate::store::Versioned;
use crate::telemetry::metrics as m;
use crate::voiceflow::Request;

/// How long a slow Voiceflow turn may still complete after the caller was given a
/// holding dialplan.
pub const LATE_WINDOW: Duration = Duration::from_secs(15);
/// Time kept back from the deadline for committing and answering.
const SAFETY: Duration = Duration::from_millis(200);
/// Poll interval while another delivery of the same turn is being answered.
const WAIT_POLL: Duration = Duration::from_millis(50);

const ACCEPTED_TEXT: &str = "Thank you. You have accepted. Goodbye.";
const REJECTED_TEXT: &str = "Understood. We will call someone else. Goodbye.";
const CLOSED_TEXT: &str = "This request has already been handled. Goodbye.";
const CANCELLED_TEXT: &str = "This request has been cancelled. Goodbye.";
const RETRY_TEXT: &str = "Sorry, we could not record your answer. Please press your choice again.";

/// What the state says to do with an event.
enum Step {
    /// Answer this dialplan JSON (cached, or computed and committed).
    Answer(String),
    /// The call is over for us: say goodbye.
    Closing(Closing),
    /// Another delivery of this turn holds it: wait for its answer.
    Wait,
    /// Ask Voiceflow (the turn is claimed).
    Run(Request),
    /// A previous Voiceflow turn is still computing: hold again (committed).
    Hold(String),
}

impl Engine {
    /// Answers a COLLECT event. Never fails, and never late: a dialplan is always
    /// returned by the deadline.
    ///
    /// The work runs in its own task: when the store is slow (frozen, failing
    /// over, reconnecting) the caller is asked to press again at the deadline,
    /// while the work goes on and still commits what the keys decided. A key
    /// press on the end-of-call post, which nobody answers, is then not lost.
    pub async fn on_collect(
        &self,
        id: CalloutId,
        call: CallId,
        turn: u32,
        event: &CollectEvent,
    ) -> String {
        let deadline = Instant::now() + self.settings.webhook_deadline;
        let engine = self.clone();
        let event = event.clone();
        let mut work = self
            .tasks
            .spawn(async move { engine.collect(id, call, turn, &event, deadline).await });
        let budget = deadline.saturating_duration_since(Instant::now());
        let reason = match tokio::time::timeout(budget, &mut work).await {
            Ok(Ok(Ok(json))) => return json,
            Ok(Ok(Err(e))) => {
                tracing::error!(callout_id = %id, call_id = %call, error = %e, "could not process a key press");
                "store_error"
            }
            Ok(Err(e)) => {
                tracing::error!(callout_id = %id, call_id = %call, error = %e, "processing a key press failed");
                "store_error"
            }
            Err(_) => {
                tracing::warn!(callout_id = %id, call_id = %call, "a key press is taking too long (store slow); asking the caller to press again while it completes");
                "store_timeout"
            }
        };
        metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => reason).increment(1);
        json(&self.retry_dialplan(id, call, turn))
    }

    async fn collect(
        &self,
        id: CalloutId,
        call: CallId,
        turn: u32,
        event: &CollectEvent,
        deadline: Instant,
    ) -> Result<String, EngineError> {
        let Some((loaded, cached)) = self.load_cached(id).await? else {
            return Ok(json(&render::closing_dialplan(
                CLOSED_TEXT,
                default_voice(),
            )));
        };
        let tones = event.tones();
        match loaded.value.script.clone() {
            Script::Template { name } => {
                self.template_turn(loaded, cached, &name, call, turn, &tones)
                    .await
            }
            Script::Assistant { id: assistant } => {
                let resolved = self.assistants.resolve(assistant).await.ok().flatten();
                self.assistant_turn(loaded, cached, resolved, call, turn, &tones, deadline)
                    .await
            }
        }
    }

    /// Checks shared by both kinds of calls. `Some` when the event needs no new turn.
    fn settled(c: &Callout, call: CallId, turn: u32) -> Option<Step> {
        let Some(a) = c.attempt(call) else {
            return Some(Step::Closing(Closing::Closed));
        };
        if let Some(cached) = a.cached_answer(turn) {
            return Some(Step::Answer(cached.to_owned()));
        }
        if turn < a.turn {
            // Older than anything cached: the call has moved on.
            return Some(match a.last_answer() {
                Some(last) => Step::Answer(last.to_owned()),
                None => Step::Closing(Closing::Closed),
            });
        }
        if a.decision.is_none() && c.status != CalloutStatus::Calling {
            return Some(Step::Closing(if c.status == CalloutStatus::Cancelled {
                Closing::Cancelled
            } else {
                Closing::Closed
            }));
        }
        if a.conversation.ended || a.is_over() {
            return Some(Step::Closing(Closing::Closed));
        }
        None
    }

    async fn template_turn(
        &self,
        loaded: Versioned<Callout>,
        cached: bool,
        name: &str,
        call: CallId,
        turn: u32,
        tones: &Tones,
    ) -> Result<String, EngineError> {
        let id = loaded.value.id;
        let Some(template) = self.templates.get(name) else {
            return Ok(json(&render::closing_dialplan(
                CLOSED_TEXT,
                default_voice(),
            )));
        };
        let next_url = self.collect_url(id, call, turn + 1);
        let silence_url = self.silence_url();
        let timing = self.settings.timing;
        let outcome = self
            .update_from(loaded, cached, |c, now| {
                if let Some(step) = Self::settled(c, call, turn) {
                    return (Changes::default(), step);
                }
                let Some(a) = c.attempt(call) else {
                    return (Changes::default(), Step::Closing(Closing::Closed));
                };
                let digits = tones.after(&a.conversation.consumed).to_string();
                if digits.is_empty() {
                    // The end-of-call report with nothing pressed.
                    return (Changes::default(), Step::Closing(Closing::Closed));
                }
                let vars = template_vars(c, a);
                let language = c.contacts[a.contact].language;
                let t = template.on_input(
                    &digits,
                    &vars,
                    language,
                    c.policy.input_timeout_s,
                    c.policy.reprompts,
                    Listen::new(&next_url, &silence_url),
                    a.conversation.invalid,
                );
                let answer = json(&t.dialplan);
                let mut ch = c.on_keys(call, &digits, now);
                if let Some(a) = c.attempt_mut(call) {
                    a.turn = a.turn.max(turn + 1);
                    a.cache_answer(turn, answer.clone());
                    a.conversation.invalid += u32::from(t.invalid);
                    a.conversation.consumed.push_str(&digits);
                    a.conversation.ended = t.ends_call;
                }
                if let Some(d) = t.decision {
                    extend(&mut ch, c.on_decision(call, d, now, &timing));
                }
                (ch, Step::Answer(answer))
            })
            .await?;
        Ok(match outcome {
            Update::Missing => json(&template.closing(Closing::Closed, &Default::default(), None)),
            Update::Committed {
                callout, result, ..
            }
            | Update::Unchanged {
                callout, result, ..
            } => match result {
                Step::Answer(j) | Step::Hold(j) => j,
                Step::Closing(which) => {
                    let vars = callout
                        .attempt(call)
                        .map(|a| template_vars(&callout, a))
                        .unwrap_or_default();
                    let language = callout
                        .attempt(call)
                        .and_then(|a| callout.contacts[a.contact].language);
                    json(&template.closing(which, &vars, language))
                }
                Step::Wait | Step::Run(_) => {
                    json(&template.closing(Closing::Closed, &Default::default(), None))
                }
            },
        })
    }

    #[allow(clippy::too_many_lines)] // one decision procedure, kept in one place on purpose
    #[allow(clippy::too_many_arguments)] // the turn's inputs, each distinct
    async fn assistant_turn(
        &self,
        loaded: Versioned<Callout>,
        cached: bool,
        resolved: Option<Arc<ResolvedAssistant>>,
        call: CallId,
        turn: u32,
        tones: &Tones,
        deadline: Instant,
    ) -> Result<String, EngineError> {
        let id = loaded.value.id;
        let timing = self.settings.timing;
        let next_url = self.collect_url(id, call, turn + 1);
        let silence_url = self.silence_url();
        let keypad = resolved
            .as_ref()
            .map(|r| r.assistant.settings.keypad.clone())
            .unwrap_or_default();
        let fallback_keys = fallback_keypad(resolved.as_deref());
        let voice = loaded
            .value
            .attempt(call)
            .map(|a| assistant_voice(&loaded.value, a.contact, resolved.as_deref()))
            .unwrap_or_else(default_voice);
        let in_flight_for = self.settings.webhook_deadline + LATE_WINDOW;
        let (input_timeout_s, reprompts) = (
            loaded.value.policy.input_timeout_s,
            loaded.value.policy.reprompts,
        );
        let (actions, phrases) = resolved
            .as_ref()
            .map(|r| assistant_rendering(r))
            .unwrap_or_default();
        let fallback_plan = |url: &str| {
            let ctx = render::TurnContext {
                voice,
                event_url: url,
                silence_url: &silence_url,
                input_timeout_s,
                reprompts,
                actions: &actions,
                caller_id: &self.settings.caller_id,
                phrases: &phrases,
            };
            render::fallback_dialplan(&ctx, &fallback_menu_prompt(&fallback_keys))
        };
        let holding_plan = |url: &str| {
            let ctx = render::TurnContext {
                voice,
                event_url: url,
                silence_url: &silence_url,
                input_timeout_s,
                reprompts,
                actions: &actions,
                caller_id: &self.settings.caller_id,
                phrases: &phrases,
            };
            render::holding_dialplan(&ctx)
        };
        let no_assistant = resolved.is_none();

        let outcome = self
            .update_from(loaded, cached, |c, now| {
                if let Some(step) = Self::settled(c, call, turn) {
                    return (Changes::default(), step);
                }
                let Some(a) = c.attempt(call) else {
                    return (Changes::default(), Step::Closing(Closing::Closed));
                };
                let digits = tones.after(&a.conversation.consumed).to_string();
                let mut ch = c.on_keys(call, &digits, now);
                let Some(a) = c.attempt_mut(call) else {
                    return (ch, Step::Closing(Closing::Closed));
                };
                a.conversation.consumed.push_str(&digits);

                // A late Voiceflow turn is ready: play it now.
                if let Some(p) = a.conversation.pending.take() {
                    let answer = with_event_url(&p.dialplan, &next_url);
                    a.turn = a.turn.max(turn + 1);
                    a.cache_answer(turn, answer.clone());
                    a.conversation.menu = p.menu;
                    a.conversation.expects_no_reply = p.expects_no_reply;
                    a.conversation.ended = p.ended;
                    metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "late_output").increment(1);
                    return (ch, Step::Answer(answer));
                }

                // Voiceflow failed earlier in this call (or the assistant is gone):
                // the fallback keypad decides.
                if a.conversation.fallback || no_assistant {
                    if digits.is_empty() {
                        return (ch, Step::Closing(Closing::Closed));
                    }
                    let decision = fallback_decision(&fallback_keys, &digits);
                    let plan = match decision {
                        Some(Decision::Accepted) => render::closing_dialplan(ACCEPTED_TEXT, voice),
                        Some(Decision::Rejected) => render::closing_dialplan(REJECTED_TEXT, voice),
                        None => fallback_plan(&next_url),
                    };
                    let answer = json(&plan);
                    a.turn = a.turn.max(turn + 1);
                    a.cache_answer(turn, answer.clone());
                    a.conversation.fallback = true;
                    a.conversation.ended = decision.is_some();
                    // A new choice (even an invalid one) replaces one never answered.
                    a.conversation.unanswered_decision = None;
                    if let Some(d) = decision {
                        extend(&mut ch, c.on_decision(call, d, now, &timing));
                    }
                    return (ch, Step::Answer(answer));
                }

                // A turn is still being computed.
                if let Some(f) = a.conversation.in_flight
                    && f.until > now
                {
                    if f.turn == turn {
                        return (Changes::default(), Step::Wait);
                    }
                    let answer = json(&holding_plan(&next_url));
                    a.turn = a.turn.max(turn + 1);
                    a.cache_answer(turn, answer.clone());
                    return (ch, Step::Hold(answer));
                }

                let input = if digits.is_empty() {
                    CallerInput::Silence
                } else {
                    CallerInput::Digits(digits)
                };
                let Some(request) = request_for_input(
                    &input,
                    &a.conversation.menu,
                    &keypad,
                    a.conversation.expects_no_reply,
                ) else {
                    return (ch, Step::Closing(Closing::Closed));
                };
                // Committed with the claim, before Voiceflow is asked: if its answer
                // never comes (slow, failed, this replica dies), a press of the
                // accept key still decides when the call ends (see the domain).
                if let CallerInput::Digits(d) = &input {
                    a.conversation.unanswered_decision = fallback_decision(&fallback_keys, d);
                }
                a.conversation.in_flight = Some(InFlightTurn {
                    turn,
                    until: now.plus(in_flight_for),
                });
                (ch, Step::Run(request))
            })
            .await?;

        // The document as this claim left it: the turn's answer is committed on top
        // of it (compare-and-set on its version, re-read only on a conflict), which
        // saves reading it back after Voiceflow answers.
        let (claimed, step) = match outcome {
            Update::Missing => return Ok(json(&render::closing_dialplan(CLOSED_TEXT, voice))),
            Update::Committed {
                callout,
                version,
                result,
            }
            | Update::Unchanged {
                callout,
                version,
                result,
            } => (
                Versioned {
                    version,
                    value: callout,
                },
                result,
            ),
        };
        let request = match step {
            Step::Answer(j) | Step::Hold(j) => return Ok(j),
            Step::Closing(which) => {
                return Ok(json(&render::closing_dialplan(closing_text(which), voice)));
            }
            Step::Wait => {
                return Ok(self
                    .wait_for_answer(id, call, turn, deadline, &holding_plan(&next_url))
                    .await);
            }
            Step::Run(request) => request,
        };
        let Some(resolved) = resolved else {
            return Ok(json(&fallback_plan(&next_url)));
        };

        // Run the turn in its own task so it can outlive this request.
        let engine = self.clone();
        let creds = resolved.credentials.clone();
        let mut task = tokio::spawn(async move {
            engine
                .run_turn(&creds, call, request, None, LATE_WINDOW)
                .await
        });
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(SAFETY);
        let finished = tokio::time::timeout(budget, &mut task).await;
        let render_with = |c: &Callout, traces: &[crate::voiceflow::Trace], url: &str| {
            let a = c.attempt(call)?;
            let ctx = assistant_context(
                c,
                a,
                &resolved,
                Listen::new(url, &silence_url),
                &actions,
                &phrases,
                &self.settings.caller_id,
            );
            let turn = render::render_turn(traces, &ctx);
            log_notes(&turn.notes);
            Some(turn)
        };
        match finished {
            Ok(Ok(Ok(traces))) => {
                let outcome = self
                    .update_from(claimed, false, |c, now| {
                        if let Some(cached) = c.attempt(call).and_then(|a| a.cached_answer(turn)) {
                            return (Changes::default(), Some(cached.to_owned()));
                        }
                        let Some(r) = render_with(c, &traces, &next_url) else {
                            return (Changes::default(), None);
                        };
                        let answer = json(&r.dialplan);
                        let mut ch = Changes::default();
                        if let Some(a) = c.attempt_mut(call) {
                            a.conversation.in_flight = None;
                            a.conversation.unanswered_decision = None;
                            if a.turn > turn + 1 {
                                // While this turn ran, later key presses were answered
                                // with holding dialplans: the caller has moved on, so
                                // this output is played at their next key press.
                                a.conversation.pending = Some(PendingTurn {
                                    dialplan: answer.clone(),
                                    menu: r.menu,
                                    expects_no_reply: r.no_reply_timeout.is_some(),
                                    ended: r.ends_call,
                                });
                            } else {
                                a.turn = turn + 1;
                                a.cache_answer(turn, answer.clone());
                                a.conversation.menu = r.menu;
                                a.conversation.expects_no_reply = r.no_reply_timeout.is_some();
                                a.conversation.ended = r.ends_call;
                            }
                        }
                        if let Some(d) = r.decision {
                            extend(&mut ch, c.on_decision(call, d, now, &timing));
                        }
                        (ch, Some(answer))
                    })
                    .await?;
                Ok(match outcome {
                    Update::Committed {
                        result: Some(j), ..
                    }
                    | Update::Unchanged {
                        result: Some(j), ..
                    } => j,
                    _ => json(&render::closing_dialplan(CLOSED_TEXT, voice)),
                })
            }
            Ok(result) => {
                let reason = match result {
                    Ok(Err(e)) => e.to_string(),
                    Err(join) => format!("turn task failed: {join}"),
                    Ok(Ok(_)) => String::new(),
                };
                tracing::warn!(callout_id = %id, call_id = %call, reason = %reason, "Voiceflow failed; continuing on the fallback keypad");
                metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "voiceflow_error").increment(1);
                let answer = json(&fallback_plan(&next_url));
                let a2 = answer.clone();
                self.update(id, |c, now| {
                    let Some(a) = c.attempt_mut(call) else {
                        return (Changes::default(), ());
                    };
                    if a.cached_answer(turn).is_some() {
                        return (Changes::default(), ());
                    }
                    a.turn = a.turn.max(turn + 1);
                    a.cache_answer(turn, a2.clone());
                    a.conversation.fallback = true;
                    a.conversation.in_flight = None;
                    let (contact, number) = (a.contact, a.number);
                    let mut ch = Changes::default();
                    ch.events.push(crate::domain::Event::for_call(
                        now,
                        EventKind::ConversationFallback {
                            reason: short(&reason),
                        },
                        contact,
                        number,
                    ));
                    (ch, ())
                })
                .await?;
                Ok(answer)
            }
            Err(_elapsed) => {
                metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "voiceflow_timeout")
                    .increment(1);
                let answer = json(&holding_plan(&next_url));
                let a2 = answer.clone();
                self.update(id, |c, now| {
                    let Some(a) = c.attempt_mut(call) else {
                        return (Changes::default(), ());
                    };
                    if a.cached_answer(turn).is_some() {
                        return (Changes::default(), ());
                    }
                    a.turn = a.turn.max(turn + 1);
                    a.cache_answer(turn, a2.clone());
                    let (contact, number) = (a.contact, a.number);
                    let mut ch = Changes::default();
                    ch.events.push(crate::domain::Event::for_call(
                        now,
                        EventKind::ConversationFallback {
                            reason: "Voiceflow did not answer in time".into(),
                        },
                        contact,
                        number,
                    ));
                    (ch, ())
                })
                .await?;
                // Keep the slow turn: record its output (and decision) when it comes.
                let engine = self.clone();
                self.tasks.spawn(async move {
                    let result = task.await;
                    engine.finish_late_turn(id, call, result, resolved).await;
                });
                Ok(answer)
            }
        }
    }

    /// A slow turn finished after the caller got a holding dialplan.
    async fn finish_late_turn(
        &self,
        id: CalloutId,
        call: CallId,
        result: Result<
            Result<Vec<crate::voiceflow::Trace>, crate::voiceflow::client::VoiceflowError>,
            tokio::task::JoinError,
        >,
        resolved: Arc<ResolvedAssistant>,
    ) {
        let timing = self.settings.timing;
        let silence_url = self.silence_url();
        let (actions, phrases) = assistant_rendering(&resolved);
        let traces = match result {
            Ok(Ok(t)) => Some(t),
            Ok(Err(e)) => {
                tracing::warn!(callout_id = %id, call_id = %call, error = %e, "late Voiceflow turn failed");
                None
            }
            Err(e) => {
                tracing::warn!(callout_id = %id, call_id = %call, error = %e, "late Voiceflow turn task failed");
                None
            }
        };
        let r = self
            .update(id, |c, now| {
                let rendered = traces.as_ref().and_then(|t| {
                    let a = c.attempt(call)?;
                    // The event URL is rewritten when the turn is played.
                    let ctx = assistant_context(
                        c,
                        a,
                        &resolved,
                        Listen::new("", &silence_url),
                        &actions,
                        &phrases,
                        &self.settings.caller_id,
                    );
                    Some(render::render_turn(t, &ctx))
                });
                let Some(a) = c.attempt_mut(call) else {
                    return (Changes::default(), ());
                };
                a.conversation.in_flight = None;
                let mut ch = Changes::default();
                match rendered {
                    Some(r) => {
                        a.conversation.unanswered_decision = None;
                        a.conversation.pending = Some(PendingTurn {
                            dialplan: json(&r.dialplan),
                            menu: r.menu,
                            expects_no_reply: r.no_reply_timeout.is_some(),
                            ended: r.ends_call,
                        });
                        if let Some(d) = r.decision {
                            extend(&mut ch, c.on_decision(call, d, now, &timing));
                        }
                    }
                    None => a.conversation.fallback = true,
                }
                (ch, ())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(callout_id = %id, call_id = %call, error = %e, "could not record a late Voiceflow turn");
        }
    }

    /// Another delivery of the same turn is being answered: wait for its answer.
    async fn wait_for_answer(
        &self,
        id: CalloutId,
        call: CallId,
        turn: u32,
        deadline: Instant,
        holding: &Dialplan,
    ) -> String {
        metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "turn_busy").increment(1);
        while Instant::now() + WAIT_POLL + SAFETY < deadline {
            tokio::time::sleep(WAIT_POLL).await;
            if let Ok(Some(v)) = self.store.load(id).await
                && let Some(answer) = v.value.attempt(call).and_then(|a| a.cached_answer(turn))
            {
                return answer.to_owned();
            }
        }
        json(holding)
    }

    /// When the store is unreachable: ask for the key again, same turn.
    fn retry_dialplan(&self, id: CalloutId, call: CallId, turn: u32) -> Dialplan {
        let url = self.collect_url(id, call, turn);
        let silence_url = self.silence_url();
        Dialplan::new(vec![
            Verb::say(RETRY_TEXT, Language::EnUs, None).with_barge_in(true),
            render::wait(Listen::new(&url, &silence_url), 5),
            Verb::Collect(Collect {
                event_url: url,
                max_digits: None,
                submit_on_hash: true,
            }),
        ])
    }

    /// Like [`Engine::update`] but starts from an already loaded document (saves a
    /// round trip on the webhook hot path).
    /// `cached`: the document came from this replica's cache and may be stale. A
    /// change made on it is caught by the commit's compare-and-set; a "nothing to
    /// do" is not (a stale document may lack the very attempt a webhook is about),
    /// so that answer is only trusted after a fresh read.
    pub(crate) async fn update_from<R>(
        &self,
        loaded: Versioned<Callout>,
        cached: bool,
        mut transition: impl FnMut(&mut Callout, Timestamp) -> (Changes, R),
    ) -> Result<Update<R>, EngineError> {
        let Versioned { version, value } = loaded;
        let mut callout = value;
        let before = callout.clone();
        let now = Timestamp::now();
        let (changes, result) = transition(&mut callout, now);
        if changes.is_empty() && callout == before {
            if cached {
                return self.update(callout.id, transition).await;
            }
            return Ok(Update::Unchanged {
                callout,
                version,
                result,
            });
        }
        match self
            .store
            .commit(&callout, version, &changes.events)
            .await?
        {
            crate::store::Commit::Done { version } => {
                self.docs.put(version, callout.clone());
                self.after_commit(&callout, changes);
                Ok(Update::Committed {
                    callout,
                    version,
                    result,
                })
            }
            crate::store::Commit::Conflict => {
                // Another replica (or task) moved on: drop what we had and retry on
                // a fresh read.
                metrics::counter!(m::STORE_CONFLICTS).increment(1);
                self.docs.forget(callout.id);
                self.update(callout.id, transition).await
            }
        }
    }
}

fn json(plan: &Dialplan) -> String {
    serde_json::to_string(plan)
        .unwrap_or_else(|_| r#"{"verbs":[{"type":"PAUSE","duration":1}]}"#.to_owned())
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
            json(&plan)
        }
        Err(_) => plan_json.to_owned(),
    }
}

fn closing_text(which: Closing) -> &'static str {
    match which {
        Closing::Cancelled => CANCELLED_TEXT,
        Closing::Closed => CLOSED_TEXT,
    }
}

fn default_voice() -> Voice {
    Voice {
        language: Language::EnUs,
        gender: None,
    }
}

fn assistant_voice(c: &Callout, contact: usize, resolved: Option<&ResolvedAssistant>) -> Voice {
    let settings = resolved.map(|r| &r.assistant.settings);
    Voice {
        language: c.contacts[contact]
            .language
            .or(settings.map(|s| s.language))
            .unwrap_or(Language::EnUs),
        gender: settings.and_then(|s| s.gender),
    }
}

/// Keys that decide when Voiceflow is unavailable: the assistant's keypad entries
/// whose intent is one of its accept/reject action names, else 1 and 2.
/// The decision of `digits` on the fallback keypad (single keys: the last key
/// pressed decides).
fn fallback_decision(keypad: &[(String, Decision)], digits: &str) -> Option<Decision> {
    let keys = Keys::parse(digits);
    let choice = keys.choice(keypad.iter().map(|(k, _)| k.as_str()));
    keypad.iter().find(|(k, _)| k == choice).map(|(_, d)| *d)
}

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

fn fallback_menu_prompt(keys: &[(String, Decision)]) -> String {
    keys.iter()
        .map(|(k, d)| match d {
            Decision::Accepted => format!("Press {k} to accept."),
            Decision::Rejected => format!("Press {k} to reject."),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn short(reason: &str) -> String {
    reason.chars().take(200).collect()
}
