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
//!
//! Which of these applies is decided by the conversation's state machine
//! (`domain::conversation`: `Attempt::on_keys`, `on_template_keys`), inside the
//! one commit of the key press; this module and `dialog` only load, commit,
//! render and ask Voiceflow around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::Instrument;

use super::dialog::{self, TurnAnswers};
use super::place::template_vars;
use super::{Engine, EngineError};
use crate::assistants::ResolvedAssistant;
use crate::dialplan::phrases::Phrases;
use crate::dialplan::render::{self, Listen, Voice};
use crate::dialplan::template::Template;
use crate::domain::{
    Answers, CallId, Callout, CalloutId, CalloutStatus, Closing, Consequences, KeypadAnswer, Next,
    Script, Settled, Tones,
};
use crate::routee::{Collect, CollectEvent, Dialplan, Language, Verb};
use crate::store::Versioned;
use crate::telemetry::metrics as m;

/// How long a slow Voiceflow turn may still complete after the caller was given a
/// holding dialplan.
pub const LATE_WINDOW: Duration = Duration::from_secs(15);
/// Time kept back from the deadline for committing and answering.
pub(super) const SAFETY: Duration = Duration::from_millis(200);
/// Poll interval while another delivery of the same turn is being answered.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// One COLLECT event: which input of which call, and by when it is answered.
pub(super) struct KeyPress<'a> {
    pub call: CallId,
    /// The input number the eventUrl carries.
    pub turn: u32,
    /// The tones as the carrier reported them, parsed once.
    pub tones: &'a Tones,
    pub deadline: Instant,
}

/// Where the answer to a key press goes: the webhook handler waiting for it,
/// once. The work may go on after it was answered (a late Voiceflow turn).
pub(super) struct Reply(Option<oneshot::Sender<Result<String, EngineError>>>);

impl Reply {
    pub(super) fn send(&mut self, answer: Result<String, EngineError>) {
        if let Some(tx) = self.0.take() {
            // The handler gave up at its deadline: the work is recorded anyway.
            let _ = tx.send(answer);
        }
    }
}

impl Engine {
    /// Answers a COLLECT event. Never fails, and never late: a dialplan is always
    /// returned by the deadline.
    ///
    /// The work runs in one task of its own, which survives this request: when
    /// the store is slow (frozen, failing over, reconnecting) the caller is asked
    /// to press again at the deadline while the work goes on and still commits
    /// what the keys decided (a key press on the end-of-call post, which nobody
    /// answers, is then not lost); and a slow Voiceflow turn is answered with a
    /// holding dialplan while the same task waits for its late answer.
    pub async fn on_collect(
        &self,
        id: CalloutId,
        call: CallId,
        turn: u32,
        event: &CollectEvent,
    ) -> String {
        let deadline = Instant::now() + self.settings.webhook_deadline;
        let engine = self.clone();
        let tones = event.tones();
        let (tx, answer) = oneshot::channel();
        let work = async move {
            let mut reply = Reply(Some(tx));
            let press = KeyPress {
                call,
                turn,
                tones: &tones,
                deadline,
            };
            let answer = engine.collect(id, &press, &mut reply).await;
            reply.send(answer);
        };
        // The webhook's span goes with the work, which outlives the request.
        self.tasks.spawn(work.in_current_span());
        let budget = deadline.saturating_duration_since(Instant::now());
        let reason = match tokio::time::timeout(budget, answer).await {
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
        dialplan_json(&self.retry_dialplan(id, call, turn))
    }

    async fn collect(
        &self,
        id: CalloutId,
        press: &KeyPress<'_>,
        reply: &mut Reply,
    ) -> Result<String, EngineError> {
        let Some((loaded, cached)) = self.load_cached(id).await? else {
            return Ok(closed_dialplan(dialog::voice(None, None)));
        };
        match loaded.value.script.clone() {
            Script::Template { name } => match self.templates.get(&name) {
                Some(template) => self.template_turn(loaded, cached, template, press).await,
                None => Ok(closed_dialplan(dialog::voice(None, None))),
            },
            Script::Assistant { id: assistant } => {
                let resolved = self.assistants.resolve(assistant).await.ok().flatten();
                self.assistant_turn(loaded, cached, resolved, press, reply)
                    .await
            }
        }
    }

    async fn template_turn(
        &self,
        loaded: Versioned<Callout>,
        cached: bool,
        template: &Template,
        press: &KeyPress<'_>,
    ) -> Result<String, EngineError> {
        let (call, turn) = (press.call, press.turn);
        let next_url = self.collect_url(loaded.value.id, call, turn + 1);
        let silence_url = self.silence_url();
        // The answer to an echo (tones that only repeat the keys already read,
        // see `Attempt::keys_of`), in the words and voice of the call.
        let (_, voice) = template.variant(
            loaded
                .value
                .attempt(call)
                .and_then(|a| loaded.value.contacts[a.contact].language),
        );
        let again = &Phrases::of(voice.language).press_again;
        let press_again =
            dialplan_json(&self.press_again(loaded.value.id, call, turn, again, voice));
        let timing = self.settings.timing;
        let applied = self
            .update((loaded, cached), |c, now| {
                let (status, policy) = (c.status, c.policy);
                let Some(a) = c.attempt_mut(call) else {
                    return (Consequences::default(), Next::Close(Closing::Closed));
                };
                let Some(keys) = a.keys_of(status, turn, press.tones, now) else {
                    return (Consequences::default(), Next::Replay(press_again.clone()));
                };
                let keys = keys.to_string();
                let Some(a) = c.attempt(call) else {
                    return (Consequences::default(), Next::Close(Closing::Closed));
                };
                let vars = template_vars(c, a);
                let language = c.contacts[a.contact].language;
                let render = |invalid| {
                    let t = template.on_input(
                        &keys,
                        &vars,
                        language,
                        policy.input_timeout_s,
                        policy.reprompts,
                        Listen::new(&next_url, &silence_url),
                        invalid,
                    );
                    KeypadAnswer {
                        dialplan: dialplan_json(&t.dialplan),
                        invalid: t.invalid,
                        ends_call: t.ends_call,
                        decision: t.decision,
                    }
                };
                let Some(a) = c.attempt_mut(call) else {
                    return (Consequences::default(), Next::Close(Closing::Closed));
                };
                let next = a.on_template_keys(status, turn, &keys, now, render);
                // Keys, not the post of a call that ended (no keys): that one
                // plays nothing more.
                if !keys.is_empty()
                    && let Some(plan) = heard(&next)
                {
                    a.heard_plan(self.plan_ms(&plan), Some(now));
                }
                let mut ch = Consequences::default();
                if let Next::Decide { decision, .. } = &next {
                    ch = c.keys_pressed(call, &keys, now);
                    if let Some(d) = *decision {
                        ch.extend(c.on_decision(call, d, now, &timing));
                    }
                }
                (ch, next)
            })
            .await?;
        let (callout, next) = match applied {
            super::Applied::Committed {
                callout, result, ..
            }
            | super::Applied::Unchanged {
                callout, result, ..
            } => (callout, result),
            super::Applied::Missing => {
                return Ok(dialplan_json(&template.closing(
                    Closing::Closed,
                    &Default::default(),
                    None,
                )));
            }
        };
        Ok(match next {
            Next::Replay(j) | Next::Hold(j) | Next::Play(j) | Next::Decide { answer: j, .. } => j,
            Next::Close(which) => {
                let a = callout.attempt(call);
                let vars = a.map(|a| template_vars(&callout, a)).unwrap_or_default();
                let language = a.and_then(|a| callout.contacts[a.contact].language);
                if filled_while_calling(&callout, call) {
                    let voice = dialog::voice(None, language);
                    let filled = &Phrases::of(voice.language).filled;
                    return Ok(dialplan_json(&render::closing_dialplan(filled, voice)));
                }
                dialplan_json(&template.closing(which, &vars, language))
            }
            Next::Wait => {
                dialplan_json(&template.closing(Closing::Closed, &Default::default(), None))
            }
            Next::Ask(never) => match never {},
        })
    }

    /// A key press on a Voiceflow call: the conversation decides
    /// (`domain::conversation`), in one commit; a claimed turn is asked of
    /// Voiceflow ([`Engine::ask_voiceflow`]).
    async fn assistant_turn(
        &self,
        loaded: Versioned<Callout>,
        cached: bool,
        resolved: Option<Arc<ResolvedAssistant>>,
        press: &KeyPress<'_>,
        reply: &mut Reply,
    ) -> Result<String, EngineError> {
        let id = loaded.value.id;
        let call = press.call;
        let timing = self.settings.timing;
        let answers = TurnAnswers::new(self, &loaded.value, press, resolved.as_deref());
        let (voice, phrases) = (answers.rendering.voice, answers.rendering.phrases);
        let press_again =
            dialplan_json(&self.press_again(id, call, press.turn, &phrases.press_again, voice));
        let rules = answers.rules();
        let applied = self
            .update((loaded, cached), |c, now| {
                let status = c.status;
                let Some(a) = c.attempt_mut(call) else {
                    return (
                        Consequences::default(),
                        (Next::Close(Closing::Closed), None),
                    );
                };
                let Some(keys) = a.keys_of(status, press.turn, press.tones, now) else {
                    return (
                        Consequences::default(),
                        (Next::Replay(press_again.clone()), None),
                    );
                };
                let keys = keys.to_string();
                let settled = a.settle_no_reply_ahead(status, press.turn, &keys, now);
                let next = a.on_keys(status, press.turn, &keys, now, &rules, &answers);
                // Keys, not the post of a call that ended (no keys): that one
                // plays nothing more.
                if !keys.is_empty()
                    && let Some(plan) = heard(&next)
                {
                    a.heard_plan(self.plan_ms(&plan), Some(now));
                }
                let mut ch = match next {
                    Next::Replay(_) | Next::Close(_) | Next::Wait => Consequences::default(),
                    _ => c.keys_pressed(call, &keys, now),
                };
                // The callee stayed silent through a no-reply turn that decided.
                if let Some(Settled::Heard(Some(d))) = settled {
                    ch.extend(c.on_decision(call, d, now, &timing));
                }
                match &next {
                    Next::Play(_) => {
                        metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "late_output")
                            .increment(1);
                    }
                    Next::Decide {
                        decision: Some(d), ..
                    } => ch.extend(c.on_decision(call, *d, now, &timing)),
                    _ => {}
                }
                (ch, (next, settled))
            })
            .await?;
        // The document as the claim left it: the turn's answer is committed on
        // top of it (compare-and-set on its version, re-read only on a
        // conflict), which saves reading it back after Voiceflow answers.
        let (claimed, (next, settled)) = match applied {
            super::Applied::Committed {
                callout,
                version,
                result,
            }
            | super::Applied::Unchanged {
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
            super::Applied::Missing => return Ok(closed_dialplan(answers.rendering.voice)),
        };
        let restore = match settled {
            Some(Settled::Restore(state)) => {
                metrics::counter!(m::NO_REPLY_AHEAD, "outcome" => "key_won").increment(1);
                Some(state)
            }
            Some(Settled::Heard(_)) => {
                metrics::counter!(m::NO_REPLY_AHEAD, "outcome" => "heard").increment(1);
                None
            }
            None => None,
        };
        match next {
            Next::Replay(j) | Next::Hold(j) | Next::Play(j) | Next::Decide { answer: j, .. } => {
                Ok(j)
            }
            Next::Close(which) => Ok(dialplan_json(&render::closing_dialplan(
                if filled_while_calling(&claimed.value, call) {
                    &phrases.filled
                } else {
                    closing_text(which, phrases)
                },
                voice,
            ))),
            Next::Wait => Ok(self.wait_for_answer(id, press, &answers.holding()).await),
            Next::Ask(request) => match resolved {
                Some(resolved) => {
                    if let Some(state) = restore {
                        let left = press
                            .deadline
                            .saturating_duration_since(Instant::now())
                            .saturating_sub(SAFETY);
                        let user_id = call.to_string();
                        self.restore_voiceflow_state(&resolved.credentials, &user_id, &state, left)
                            .await;
                    }
                    self.ask_voiceflow(claimed, &resolved, &answers, press, request, reply)
                        .await
                }
                // Not reached: without the assistant the fallback keypad reads keys.
                None => Ok(answers.fallback(None)),
            },
        }
    }

    /// Another delivery of the same turn is being answered: wait for its answer.
    async fn wait_for_answer(&self, id: CalloutId, press: &KeyPress<'_>, holding: &str) -> String {
        metrics::counter!(m::WEBHOOK_FALLBACKS, "reason" => "turn_busy").increment(1);
        while Instant::now() + WAIT_POLL + SAFETY < press.deadline {
            tokio::time::sleep(WAIT_POLL).await;
            if let Ok(Some(v)) = self.store.load(id).await
                && let Some(answer) = v
                    .value
                    .attempt(press.call)
                    .and_then(|a| a.cached_answer(press.turn))
            {
                return answer.to_owned();
            }
        }
        holding.to_owned()
    }

    /// When the store is unreachable: ask for the key again, same turn. In
    /// English: the call's language is in the store.
    fn retry_dialplan(&self, id: CalloutId, call: CallId, turn: u32) -> Dialplan {
        let english = Voice {
            language: Language::EnUs,
            gender: None,
        };
        let text = &Phrases::of(english.language).retry;
        self.press_again(id, call, turn, text, english)
    }

    /// `text`, then the wait for a key on the same input `turn`.
    fn press_again(
        &self,
        id: CalloutId,
        call: CallId,
        turn: u32,
        text: &str,
        voice: Voice,
    ) -> Dialplan {
        let url = self.collect_url(id, call, turn);
        let silence_url = self.silence_url();
        Dialplan::new(vec![
            Verb::say(text, voice.language, voice.gender).with_barge_in(true),
            render::wait(Listen::new(&url, &silence_url), 5),
            Verb::Collect(Collect {
                event_url: url,
                max_digits: None,
                submit_on_hash: true,
            }),
        ])
    }
}

/// The dialplan the call hears from now on after `next` (see
/// `Attempt::hung_up_mid_prompt`): empty when not known yet (a Voiceflow turn
/// still being asked, a goodbye); `None` when the call hears nothing new (a
/// repeated delivery).
fn heard<R>(next: &Next<R>) -> Option<Dialplan> {
    match next {
        // A goodbye (no COLLECT) is the gateway ending the call: a callee who
        // hangs up on it did not hang up on a prompt.
        Next::Hold(j) | Next::Play(j) | Next::Decide { answer: j, .. } => Some(
            serde_json::from_str::<Dialplan>(j)
                .ok()
                .filter(|plan| plan.event_url().is_some())
                .unwrap_or_default(),
        ),
        Next::Ask(_) | Next::Close(_) => Some(Dialplan::default()),
        Next::Replay(_) | Next::Wait => None,
    }
}

impl Engine {
    /// The least time `plan` takes to play on the carrier's clock, in our
    /// milliseconds.
    pub(super) fn plan_ms(&self, plan: &Dialplan) -> u64 {
        let seconds = f64::from(render::min_seconds(plan)) * self.settings.carrier_time_scale;
        // Whole milliseconds of a bounded duration (at most a few hours).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (seconds * 1000.0).max(0.0) as u64;
        ms
    }
}

/// A dialplan as the JSON answered to Routee.
pub(super) fn dialplan_json(plan: &Dialplan) -> String {
    serde_json::to_string(plan)
        .unwrap_or_else(|_| r#"{"verbs":[{"type":"PAUSE","duration":1}]}"#.to_owned())
}

/// "This request has already been handled. Goodbye.", in `voice`'s language.
pub(super) fn closed_dialplan(voice: Voice) -> String {
    dialplan_json(&render::closing_dialplan(
        &Phrases::of(voice.language).closed,
        voice,
    ))
}

/// The call was under way, undecided, when the callout filled: its callee
/// hears the `filled` phrase (the fill scheduled its hangup, see
/// `Callout::end_open_attempt`).
fn filled_while_calling(c: &Callout, call: CallId) -> bool {
    c.status == CalloutStatus::Accepted
        && c.attempt(call)
            .is_some_and(|a| a.decision.is_none() && a.hangup.is_some())
}

fn closing_text(which: Closing, phrases: &Phrases) -> &str {
    match which {
        Closing::Cancelled => &phrases.cancelled,
        Closing::Closed => &phrases.closed,
    }
}
