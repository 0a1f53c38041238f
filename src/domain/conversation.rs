//! The conversation of one call, as a pure state machine beside the callout's.
//!
//! A call's conversation is a sequence of *turns*: turn `n` is the caller's
//! `n`-th input (the COLLECT event whose eventUrl carries `n`) and the dialplan
//! answered to it. [`Attempt::turn`] is the input the caller is at; answers are
//! cached per turn, so a repeated delivery of a COLLECT event gets the same
//! dialplan back and never runs a second turn.
//!
//! ```text
//!                      keys: ask Voiceflow (claim)            answer in time
//!  NoTurnYet ──┐   ┌──────────────────────────▶ TurnInFlight ─────────────────▶ WaitingForKeys
//!              ├─▶ WaitingForKeys                 │ keys (other turn): hold      ▲
//!  first turn ─┘        │                         │ answer too late ──▶ LateAnswerPending ─(keys: play it)─┘
//!                       │                         └ Voiceflow failed ──▶ FallbackKeypad ─(accept/reject key)─▶ Ended
//!                       └ `end` trace, a template's goodbye, a decided call ─────────────────────────────────▶ Ended
//!  any state ─(callout over with no decision here)─▶ Closing
//! ```
//!
//! The machine decides and records; the engine does the I/O around it (loading
//! and committing the callout, asking Voiceflow, rendering dialplans). Rendering
//! comes in through [`Answers`], so every transition here runs, and is tested,
//! on plain values.
//!
//! Stored shape: a [`Conversation`] is stored as the loose fields it always had
//! (`menu`, `expects_no_reply`, `fallback`, `pending`, `in_flight`, `ended`, ...)
//! through [`StoredConversation`], so callouts written before the state machine
//! (live in Redis across an upgrade) read as they were, and a replica of the
//! previous release reads what this one writes. Flag combinations no transition
//! ever produced read as the strongest of them: ended, then a late answer, then
//! the fallback keypad, then a turn in flight.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Attempt, CalloutStatus, Decision, Event, EventKind, Keys, MenuItem, Timestamp, Tones};

/// How many answered turns are remembered for duplicates.
pub const CACHED_ANSWERS: usize = 3;

/// Which goodbye the caller hears when the call is over for the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closing {
    /// The dispatcher cancelled the callout.
    Cancelled,
    /// The callout is over (someone else accepted, or it ended otherwise).
    Closed,
}

/// The conversation state carried between turns of one call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "StoredConversation", into = "StoredConversation")]
pub struct Conversation {
    /// Where the conversation is.
    pub phase: Phase,
    /// Keypad menu offered by the last Voiceflow turn.
    pub menu: Vec<MenuItem>,
    /// The last turn asked for input with a `no-reply` timeout.
    pub expects_no_reply: bool,
    /// The last keys the caller pressed whose Voiceflow turn never answered (too
    /// slow, failed, or its replica died), read on the fallback keypad: the
    /// decision if the call ends with nothing more pressed, so a press of the
    /// accept key is not lost with the turn. Cleared when Voiceflow answers or the
    /// caller chooses again.
    pub unanswered_decision: Option<Decision>,
    /// Invalid inputs so far (templates say goodbye after three).
    pub invalid: u32,
    /// The keys of the call already consumed (no `#`): with cumulative tones a
    /// POST's new input is what follows them ([`Attempt::new_keys`]); its
    /// length is how much of the call's tones has been read.
    pub consumed: String,
    /// The last POST only repeated the consumed keys (see [`Attempt::keys_of`]).
    pub echoed: bool,
    /// The assistant's no-reply turn, already run for the dialplan that is
    /// playing (see [`NoReplyAhead`]); settled by the next input
    /// ([`Attempt::settle_no_reply_ahead`]).
    pub ahead: Option<NoReplyAhead>,
}

/// The stored part of a conversation's state (see [`State`] for the whole).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Phase {
    /// Keys are read as the last answer asked (its menu, the template's keypad).
    #[default]
    Listening,
    /// A Voiceflow turn is being computed (turns are serialized: Voiceflow keeps
    /// no per-user lock).
    InFlight(InFlightTurn),
    /// A Voiceflow turn answered after the caller got a holding dialplan: played
    /// at the next key press.
    LatePending(AnsweredTurn),
    /// Voiceflow failed during this call: keys are read on the fallback keypad.
    Fallback,
    /// The conversation has ended (an `end` trace, a template's goodbye, a
    /// decision on the fallback keypad).
    Ended,
}

/// A Voiceflow turn rendered for the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnsweredTurn {
    /// The dialplan JSON. Kept for later: its COLLECT is pointed at the input
    /// after the next when it is played.
    pub dialplan: String,
    #[serde(default)]
    pub menu: Vec<MenuItem>,
    #[serde(default)]
    pub expects_no_reply: bool,
    #[serde(default)]
    pub ended: bool,
    /// The no-reply turn run ahead for this answer, whose response the
    /// dialplan plays after the wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<NoReplyAhead>,
}

/// The assistant's no-reply turn, run ahead (issue 13 item 8).
///
/// Routee posts nothing when a callee stays silent (only a key during a
/// barge-in verb, `#`, or the end of the call), so a no-reply response that
/// Voiceflow computed *after* the silence could never be played. Instead,
/// when a turn asks for input with a `no-reply` timeout, the engine saves
/// Voiceflow's state, runs the no-reply turn at once and answers a dialplan
/// that plays its response after the wait. Voiceflow has then moved on as if
/// the callee had been silent; what the callee actually does settles it
/// ([`Attempt::settle_no_reply_ahead`]): a key that answers the question asked
/// before the silence puts `saved_state` back first (the key press wins),
/// silence keeps the no-reply turn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoReplyAhead {
    /// Voiceflow's state before the no-reply turn, as `PUT /state/user/{id}`
    /// takes it back (`{stack, storage, variables}`), kept as raw JSON.
    pub saved_state: Box<serde_json::value::RawValue>,
    /// The no-reply turn as the dialplan plays it after the wait; `None` when
    /// it did not come back in time (the dialplan then plays the gateway's
    /// reprompts, and the state is put back whatever the callee does: the
    /// no-reply request may or may not have run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard: Option<HeardAfterSilence>,
}

impl PartialEq for NoReplyAhead {
    fn eq(&self, other: &Self) -> bool {
        self.saved_state.get() == other.saved_state.get() && self.heard == other.heard
    }
}

/// What the no-reply turn offers, once the callee has heard it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HeardAfterSilence {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub menu: Vec<MenuItem>,
    #[serde(default)]
    pub expects_no_reply: bool,
    #[serde(default)]
    pub ended: bool,
    /// A decision the no-reply turn made (an assistant that reads silence as
    /// a refusal): it counts only once the silence is settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

/// How an input settled a [`NoReplyAhead`].
#[derive(Debug, Clone)]
pub enum Settled {
    /// The keys answer the question asked before the silence: put this state
    /// back before the next Voiceflow request.
    Restore(Box<serde_json::value::RawValue>),
    /// The callee heard the no-reply response: its menu reads the keys, and
    /// its decision, if any, is to be applied.
    Heard(Option<Decision>),
}

impl PartialEq for Settled {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Restore(a), Self::Restore(b)) => a.get() == b.get(),
            (Self::Heard(a), Self::Heard(b)) => a == b,
            _ => false,
        }
    }
}

/// A Voiceflow turn claimed for input `turn` until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightTurn {
    pub turn: u32,
    pub until: Timestamp,
}

/// A dialplan already answered for a turn: a repeated delivery of the same
/// COLLECT event gets the same answer, not a second Voiceflow turn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub turn: u32,
    /// The dialplan JSON exactly as answered, kept as raw JSON inside the callout
    /// document: storing it as a string would escape and unescape every quote of
    /// it on each commit and load of the document (a hot path of every key press).
    pub dialplan: Box<serde_json::value::RawValue>,
}

impl PartialEq for CachedAnswer {
    fn eq(&self, other: &Self) -> bool {
        self.turn == other.turn && self.dialplan.get() == other.dialplan.get()
    }
}

/// A conversation's legal states, read from the attempt and its callout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No input answered yet (the call's first dialplan is playing).
    NoTurnYet,
    /// The last answer is playing; keys start the next turn.
    WaitingForKeys,
    /// A Voiceflow turn is being computed.
    TurnInFlight(InFlightTurn),
    /// A late Voiceflow answer waits for the next key press.
    LateAnswerPending,
    /// Keys decide on the fallback keypad.
    FallbackKeypad,
    /// The callout is over with no decision on this call: say goodbye.
    Closing(Closing),
    /// The conversation or the call is over.
    Ended,
}

/// What the engine must do with a key press.
#[derive(Debug, Clone, PartialEq)]
pub enum Next<R> {
    /// Answer what was already answered (a repeated delivery, an old turn).
    Replay(String),
    /// Say the goodbye (nothing recorded).
    Close(Closing),
    /// Another delivery of this turn holds it: wait for its answer.
    Wait,
    /// A turn is still in flight: answer this holding dialplan (recorded).
    Hold(String),
    /// Answer the late Voiceflow turn (recorded).
    Play(String),
    /// Answer this (recorded); `decision`, when the keys decided, is to be
    /// applied to the callout.
    Decide {
        answer: String,
        decision: Option<Decision>,
    },
    /// Ask Voiceflow this request: the turn is claimed.
    Ask(R),
}

/// The assistant's rules for reading keys.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Keys that decide when Voiceflow is unavailable.
    pub fallback_keys: &'a [(String, Decision)],
    /// The assistant is gone: every key is read on the fallback keypad.
    pub no_assistant: bool,
    /// How long a claimed turn is held for its Voiceflow answer.
    pub in_flight_for: Duration,
}

impl Rules<'_> {
    /// The decision `keys` make on the fallback keypad (its keys are single
    /// keys: the last key pressed decides, see [`Keys::choice`]).
    pub fn fallback_decision(&self, keys: &str) -> Option<Decision> {
        let keys = Keys::parse(keys);
        let choice = keys.choice(self.fallback_keys.iter().map(|(k, _)| k.as_str()));
        self.fallback_keys
            .iter()
            .find(|(k, _)| k == choice)
            .map(|(_, d)| *d)
    }
}

/// The dialplans (as JSON) and requests a turn may need, rendered by the engine
/// for the turn at hand; asked for only when the transition needs them.
pub trait Answers {
    /// What is sent to Voiceflow.
    type Request;
    /// "One moment..." while a turn is in flight.
    fn holding(&self) -> String;
    /// The fallback keypad's answer: its goodbye when `decision`, else its menu.
    fn fallback(&self, decision: Option<Decision>) -> String;
    /// A late answer's stored dialplan, pointed at the next input.
    fn late(&self, dialplan: &str) -> String;
    /// The request for `keys` (empty: silence) given the last turn's menu, or
    /// `None` when there is nothing to tell Voiceflow.
    fn request(
        &self,
        keys: &str,
        menu: &[MenuItem],
        expects_no_reply: bool,
    ) -> Option<Self::Request>;
}

/// A template's answer to keys, rendered with the invalid inputs so far.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypadAnswer {
    pub dialplan: String,
    /// The keys matched nothing.
    pub invalid: bool,
    pub ends_call: bool,
    pub decision: Option<Decision>,
}

impl Attempt {
    /// The answer already given for `turn`, if any.
    pub fn cached_answer(&self, turn: u32) -> Option<&str> {
        self.answers
            .iter()
            .find(|a| a.turn == turn)
            .map(|a| a.dialplan.get())
    }

    /// The most recent answer given, if any.
    pub fn last_answer(&self) -> Option<&str> {
        self.answers.last().map(|a| a.dialplan.get())
    }

    /// Remembers the answer for `turn` (a dialplan's JSON), keeping the last few.
    /// Text that is not JSON is not cached (answers are always serialized
    /// dialplans, so that never happens in practice).
    pub fn cache_answer(&mut self, turn: u32, dialplan: String) {
        let Ok(dialplan) = serde_json::value::RawValue::from_string(dialplan) else {
            return;
        };
        self.answers.retain(|a| a.turn != turn);
        self.answers.push(CachedAnswer { turn, dialplan });
        if self.answers.len() > CACHED_ANSWERS {
            let excess = self.answers.len() - CACHED_ANSWERS;
            self.answers.drain(..excess);
        }
    }

    /// The new keys in `tones`: what follows the keys of this call already
    /// consumed when the tones continue them (cumulative tones), else all of
    /// them (a per-submit POST); see [`Tones::after`].
    pub fn new_keys(&self, tones: &Tones) -> Keys {
        tones.after(&self.conversation.consumed)
    }

    /// The new keys of a COLLECT event on input `turn`, or `None` for an
    /// **echo**: tones that only repeat the keys already consumed. With
    /// cumulative tones that is the end-of-call report (nothing new); with
    /// per-submit tones, the callee pressed the same key again. The two cannot
    /// be told apart from the tones, so an echo records nothing and is answered
    /// "press your choice again": a call that is over ignores the answer, and
    /// a live callee presses again, which a second echo in a row reads as the
    /// key it is. A delivery the closing rules answer (a repeat of an answered
    /// turn, a call that is over) is never an echo, and neither is another
    /// delivery of the turn in flight: its keys are the ones that turn
    /// consumed, and it waits for that turn's answer.
    pub fn keys_of(
        &mut self,
        status: CalloutStatus,
        turn: u32,
        tones: &Tones,
        now: Timestamp,
    ) -> Option<Keys> {
        let in_flight_here = matches!(
            self.conversation_state(status, now),
            State::TurnInFlight(f) if f.turn == turn
        );
        if in_flight_here || self.closing_rule(status, turn, now).is_some() {
            return Some(self.new_keys(tones));
        }
        let c = &mut self.conversation;
        let echo = !c.consumed.is_empty() && tones.keys() == c.consumed;
        if !echo {
            c.echoed = false;
            return Some(tones.after(&c.consumed));
        }
        if std::mem::replace(&mut c.echoed, true) {
            c.echoed = false;
            return Some(Keys::parse(tones.keys()));
        }
        None
    }

    /// The conversation's state at `now` in a callout of `status`.
    pub fn conversation_state(&self, status: CalloutStatus, now: Timestamp) -> State {
        if self.decision.is_none() && status != CalloutStatus::Calling {
            return State::Closing(if status == CalloutStatus::Cancelled {
                Closing::Cancelled
            } else {
                Closing::Closed
            });
        }
        if self.is_over() {
            return State::Ended;
        }
        match &self.conversation.phase {
            Phase::Ended => State::Ended,
            Phase::LatePending(_) => State::LateAnswerPending,
            Phase::Fallback => State::FallbackKeypad,
            Phase::InFlight(f) if f.until > now => State::TurnInFlight(*f),
            // An expired claim: its replica died, or its answer was lost.
            Phase::InFlight(_) | Phase::Listening if self.turn == 0 => State::NoTurnYet,
            Phase::InFlight(_) | Phase::Listening => State::WaitingForKeys,
        }
    }

    /// A delivery of a turn already answered, or older than the last answer:
    /// what it gets instead of a new turn.
    fn replay(&self, turn: u32) -> Option<Next<std::convert::Infallible>> {
        if let Some(cached) = self.cached_answer(turn) {
            return Some(Next::Replay(cached.to_owned()));
        }
        if turn < self.turn {
            // Older than anything cached: the call has moved on.
            return Some(match self.last_answer() {
                Some(last) => Next::Replay(last.to_owned()),
                None => Next::Close(Closing::Closed),
            });
        }
        None
    }

    /// The closing rules: a repeated delivery replays its answer, a call that
    /// is over (or whose callout is) says goodbye. `None`: the keys make a turn.
    pub fn closing_rule(
        &self,
        status: CalloutStatus,
        turn: u32,
        now: Timestamp,
    ) -> Option<Next<std::convert::Infallible>> {
        if let Some(replayed) = self.replay(turn) {
            return Some(replayed);
        }
        match self.conversation_state(status, now) {
            State::Closing(which) => Some(Next::Close(which)),
            State::Ended => Some(Next::Close(Closing::Closed)),
            _ => None,
        }
    }

    /// The answer `answer` is given to input `turn`: the caller moves past it.
    fn answer_turn(&mut self, turn: u32, answer: String) {
        self.turn = self.turn.max(turn + 1);
        self.cache_answer(turn, answer);
    }

    /// Settles the no-reply turn run ahead for the dialplan that is playing
    /// (see [`NoReplyAhead`]), before `keys` on input `turn` are read
    /// ([`Attempt::on_keys`]). `None` when there is nothing to settle: no turn
    /// ran ahead, or the keys make no new turn (a repeated delivery, a call
    /// that is over, a turn in flight).
    ///
    /// - Silence (the end-of-call report with no new keys): the callee heard
    ///   the no-reply response; its menu and end become the conversation's.
    /// - Keys that only the no-reply turn's menu takes: pressed after its
    ///   response was heard; likewise.
    /// - Any other keys: the key press wins. They answer the question asked
    ///   before the silence, on Voiceflow's state from before the no-reply turn.
    /// - A no-reply turn that never came back: the state is put back whatever
    ///   the input.
    pub fn settle_no_reply_ahead(
        &mut self,
        status: CalloutStatus,
        turn: u32,
        keys: &str,
        now: Timestamp,
    ) -> Option<Settled> {
        if self.conversation.ahead.is_none()
            || self.closing_rule(status, turn, now).is_some()
            || !matches!(
                self.conversation_state(status, now),
                State::WaitingForKeys | State::NoTurnYet
            )
        {
            return None;
        }
        let ahead = self.conversation.ahead.take()?;
        let Some(heard) = ahead.heard else {
            return Some(Settled::Restore(ahead.saved_state));
        };
        let keys = Keys::parse(keys);
        let takes = |menu: &[MenuItem]| {
            let choice = keys.choice(menu.iter().map(|m| m.digit.as_str()));
            !keys.is_empty() && menu.iter().any(|m| m.digit == choice)
        };
        if keys.is_empty() || (takes(&heard.menu) && !takes(&self.conversation.menu)) {
            let c = &mut self.conversation;
            c.menu = heard.menu;
            c.expects_no_reply = heard.expects_no_reply;
            if heard.ended {
                c.phase = Phase::Ended;
            }
            Some(Settled::Heard(heard.decision))
        } else {
            Some(Settled::Restore(ahead.saved_state))
        }
    }

    /// Keys (new digits; empty for the end-of-call report with nothing pressed)
    /// on input `turn` of a Voiceflow call.
    pub fn on_keys<A: Answers>(
        &mut self,
        status: CalloutStatus,
        turn: u32,
        keys: &str,
        now: Timestamp,
        rules: &Rules<'_>,
        answers: &A,
    ) -> Next<A::Request> {
        if let Some(next) = self.closing_rule(status, turn, now) {
            return widen(next);
        }
        let state = self.conversation_state(status, now);
        self.conversation.consumed.push_str(keys);
        match state {
            State::LateAnswerPending => self.play_late_answer(turn, answers),
            State::FallbackKeypad => self.on_fallback_keys(turn, keys, rules, answers),
            _ if rules.no_assistant => self.on_fallback_keys(turn, keys, rules, answers),
            State::TurnInFlight(f) if f.turn == turn => Next::Wait,
            State::TurnInFlight(_) => {
                let answer = answers.holding();
                self.answer_turn(turn, answer.clone());
                Next::Hold(answer)
            }
            _ => self.claim_turn(turn, keys, now, rules, answers),
        }
    }

    /// Plays the late answer: its menu is the one the next keys are read with.
    fn play_late_answer<A: Answers>(&mut self, turn: u32, answers: &A) -> Next<A::Request> {
        let Phase::LatePending(late) = std::mem::take(&mut self.conversation.phase) else {
            return Next::Close(Closing::Closed);
        };
        let answer = answers.late(&late.dialplan);
        self.answer_turn(turn, answer.clone());
        self.listen_to(late);
        Next::Play(answer)
    }

    /// The menu and end of an answered turn become the conversation's.
    fn listen_to(&mut self, answered: AnsweredTurn) {
        self.conversation.menu = answered.menu;
        self.conversation.expects_no_reply = answered.expects_no_reply;
        self.conversation.ahead = answered.ahead;
        self.conversation.phase = if answered.ended {
            Phase::Ended
        } else {
            Phase::Listening
        };
    }

    fn on_fallback_keys<A: Answers>(
        &mut self,
        turn: u32,
        keys: &str,
        rules: &Rules<'_>,
        answers: &A,
    ) -> Next<A::Request> {
        if keys.is_empty() {
            return Next::Close(Closing::Closed);
        }
        let decision = rules.fallback_decision(keys);
        let answer = answers.fallback(decision);
        self.answer_turn(turn, answer.clone());
        self.conversation.phase = if decision.is_some() {
            Phase::Ended
        } else {
            Phase::Fallback
        };
        // A new choice (even an invalid one) replaces one never answered.
        self.conversation.unanswered_decision = None;
        Next::Decide { answer, decision }
    }

    fn claim_turn<A: Answers>(
        &mut self,
        turn: u32,
        keys: &str,
        now: Timestamp,
        rules: &Rules<'_>,
        answers: &A,
    ) -> Next<A::Request> {
        let c = &mut self.conversation;
        let Some(request) = answers.request(keys, &c.menu, c.expects_no_reply) else {
            return Next::Close(Closing::Closed);
        };
        // Committed with the claim, before Voiceflow is asked: if its answer
        // never comes (slow, failed, this replica dies), a press of the accept
        // key still decides when the call ends (see `Callout::end_undecided`).
        if !keys.is_empty() {
            c.unanswered_decision = rules.fallback_decision(keys);
        }
        c.phase = Phase::InFlight(InFlightTurn {
            turn,
            until: now.plus(rules.in_flight_for),
        });
        Next::Ask(request)
    }

    /// Voiceflow answered input `turn` while its delivery still waits. Returns
    /// the answer for that delivery: one already given to the turn if there is
    /// one (nothing changes then), else `answered`'s dialplan. If the caller has
    /// moved on meanwhile (holding answers to later keys), the answer is kept for
    /// the next key press instead.
    pub fn on_answer(&mut self, turn: u32, answered: AnsweredTurn) -> String {
        if let Some(cached) = self.cached_answer(turn) {
            return cached.to_owned();
        }
        let answer = answered.dialplan.clone();
        self.conversation.unanswered_decision = None;
        if self.turn > turn + 1 {
            self.conversation.phase = Phase::LatePending(answered);
        } else {
            self.answer_turn(turn, answer.clone());
            self.listen_to(answered);
        }
        answer
    }

    /// Voiceflow answered (`Some`) or failed (`None`) after the caller was given
    /// a holding dialplan: the answer waits for the next key press; a failure
    /// leaves the fallback keypad. An ended conversation stays ended.
    pub fn on_late_answer(&mut self, answered: Option<AnsweredTurn>) {
        if self.conversation.phase == Phase::Ended {
            return;
        }
        match answered {
            Some(answered) => {
                self.conversation.unanswered_decision = None;
                self.conversation.phase = Phase::LatePending(answered);
            }
            None => self.conversation.phase = Phase::Fallback,
        }
    }

    /// Voiceflow failed on input `turn` while its delivery still waits: answer
    /// `fallback` (the fallback keypad's menu) and read keys on it from now on.
    /// `None` when the turn was answered already (nothing changes).
    pub fn on_voiceflow_failed(
        &mut self,
        turn: u32,
        fallback: String,
        reason: &str,
        now: Timestamp,
    ) -> Option<Event> {
        if self.cached_answer(turn).is_some() {
            return None;
        }
        self.answer_turn(turn, fallback);
        if self.conversation.phase != Phase::Ended {
            self.conversation.phase = Phase::Fallback;
        }
        Some(self.fallback_event(now, reason.chars().take(200).collect()))
    }

    /// Voiceflow did not answer input `turn` by the deadline: answer `holding`;
    /// the turn stays in flight and its answer is recorded by
    /// [`Attempt::on_late_answer`]. `None` when the turn was answered already.
    pub fn on_voiceflow_slow(
        &mut self,
        turn: u32,
        holding: String,
        now: Timestamp,
    ) -> Option<Event> {
        if self.cached_answer(turn).is_some() {
            return None;
        }
        self.answer_turn(turn, holding);
        Some(self.fallback_event(now, "Voiceflow did not answer in time".into()))
    }

    fn fallback_event(&self, now: Timestamp, reason: String) -> Event {
        Event::for_call(
            now,
            EventKind::ConversationFallback { reason },
            self.contact,
            self.number,
        )
    }

    /// Keys on input `turn` of a template call: `render` answers them given the
    /// invalid inputs so far. Empty keys (the end-of-call report) close.
    pub fn on_template_keys(
        &mut self,
        status: CalloutStatus,
        turn: u32,
        keys: &str,
        now: Timestamp,
        render: impl FnOnce(u32) -> KeypadAnswer,
    ) -> Next<std::convert::Infallible> {
        if let Some(next) = self.closing_rule(status, turn, now) {
            return next;
        }
        if keys.is_empty() {
            return Next::Close(Closing::Closed);
        }
        let answered = render(self.conversation.invalid);
        self.answer_turn(turn, answered.dialplan.clone());
        let c = &mut self.conversation;
        c.invalid += u32::from(answered.invalid);
        c.consumed.push_str(keys);
        c.phase = if answered.ends_call {
            Phase::Ended
        } else {
            Phase::Listening
        };
        Next::Decide {
            answer: answered.dialplan,
            decision: answered.decision,
        }
    }
}

impl Conversation {
    /// The conversation after the call's first dialplan (a launch turn or a
    /// template's greeting): nothing asked yet beyond what it offers.
    pub fn after_turn(menu: Vec<MenuItem>, expects_no_reply: bool, ended: bool) -> Self {
        Self {
            menu,
            expects_no_reply,
            phase: if ended {
                Phase::Ended
            } else {
                Phase::Listening
            },
            ..Self::default()
        }
    }

    /// The conversation with a no-reply turn run ahead for its dialplan.
    #[must_use]
    pub fn with_ahead(mut self, ahead: Option<NoReplyAhead>) -> Self {
        self.ahead = ahead;
        self
    }

    /// The conversation has ended.
    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The Voiceflow turn in flight, if any (expired or not).
    pub fn in_flight(&self) -> Option<InFlightTurn> {
        match self.phase {
            Phase::InFlight(f) => Some(f),
            _ => None,
        }
    }
}

fn widen<R>(next: Next<std::convert::Infallible>) -> Next<R> {
    match next {
        Next::Replay(a) => Next::Replay(a),
        Next::Close(c) => Next::Close(c),
        Next::Wait => Next::Wait,
        Next::Hold(a) => Next::Hold(a),
        Next::Play(a) => Next::Play(a),
        Next::Decide { answer, decision } => Next::Decide { answer, decision },
        Next::Ask(never) => match never {},
    }
}

/// The stored shape of a [`Conversation`] (unchanged since before the state
/// machine; see the module doc).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredConversation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    menu: Vec<MenuItem>,
    #[serde(default)]
    expects_no_reply: bool,
    #[serde(default)]
    fallback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unanswered_decision: Option<Decision>,
    #[serde(default)]
    invalid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    consumed: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    echoed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<AnsweredTurn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_flight: Option<InFlightTurn>,
    #[serde(default)]
    ended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_reply_ahead: Option<NoReplyAhead>,
}

impl From<StoredConversation> for Conversation {
    fn from(s: StoredConversation) -> Self {
        let phase = if s.ended {
            Phase::Ended
        } else if let Some(late) = s.pending {
            Phase::LatePending(late)
        } else if s.fallback {
            Phase::Fallback
        } else if let Some(f) = s.in_flight {
            Phase::InFlight(f)
        } else {
            Phase::Listening
        };
        Self {
            phase,
            menu: s.menu,
            expects_no_reply: s.expects_no_reply,
            unanswered_decision: s.unanswered_decision,
            invalid: s.invalid,
            consumed: s.consumed,
            echoed: s.echoed,
            ahead: s.no_reply_ahead,
        }
    }
}

impl From<Conversation> for StoredConversation {
    fn from(c: Conversation) -> Self {
        let mut s = StoredConversation {
            menu: c.menu,
            expects_no_reply: c.expects_no_reply,
            unanswered_decision: c.unanswered_decision,
            invalid: c.invalid,
            consumed: c.consumed,
            echoed: c.echoed,
            no_reply_ahead: c.ahead,
            ..StoredConversation::default()
        };
        match c.phase {
            Phase::Listening => {}
            Phase::InFlight(f) => s.in_flight = Some(f),
            Phase::LatePending(late) => s.pending = Some(late),
            Phase::Fallback => s.fallback = true,
            Phase::Ended => s.ended = true,
        }
        s
    }
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
