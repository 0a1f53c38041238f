//! One call to one contact (an attempt) and its state machine.
//!
//! ```text
//!            place            callback                    final callback
//!  Dialing ─────────▶ Queued/Initiated/Ringing/InProgress ───────────────▶ Completed/Busy/NoAnswer/Failed
//!   │  Pending ─(due)─▶ InFlight ─(replica starts)─▶ Preparing ─(last check)─▶ Sending
//!   │                      │                          │ lease lost: nothing sent     │ carrier said no, retryable ─▶ Pending (backoff)
//!   │                      │                          └──────────▶ Pending           ├─ carrier said no, permanent ─▶ NotPlaced
//!   │                      └─ lease lost ─┐                                          └─ timeout/5xx: may exist; or lease lost ─┐
//!   │                                     └──────────────▶ Unconfirmed ◀─────────────────────────────────────────────────────┘
//!   │                                                          └─(no callback in time)─▶ NotPlaced
//!   └─ any callback while Dialing adopts the carrier's state
//! ```
//! A status update only ever moves forward ([`CallState::rank`]); a final state is
//! final. The attempt's `outcome` is set once, when the call is over.
//!
//! Why three phases between "due" and "sent": a replica that dies while it is
//! still preparing a call (waiting for a rate-limit slot, running the assistant's
//! launch turn) has provably sent nothing, so another replica simply tries again;
//! only a replica that dies after committing `Sending` leaves a call that may
//! exist. `Sending` is also the last compare-and-set before the request leaves: a
//! cancel committed before it stops the call; one committed after it finds a call
//! on its way and hangs it up. `InFlight` (asked, not yet started) keeps the
//! conservative reading, since nothing says how far its replica got.

use serde::{Deserialize, Serialize};

use super::{CallId, Decision, MenuItem, Timestamp};

/// Where a call is, as far as the gateway knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Dialing {
    /// The call is to be created at `at` (first try, a backoff retry, or a reserved
    /// slot of the shared rate limit).
    Pending {
        at: Timestamp,
        /// A rate-limit slot was already reserved for `at`: do not reserve again.
        #[serde(default)]
        slot_reserved: bool,
    },
    /// A replica was asked to create the call; if it has not reported by
    /// `lease_until` it crashed, and the call's existence is unknown.
    InFlight { lease_until: Timestamp },
    /// The replica holding `token` is preparing the call and has not sent it: if
    /// it has not reported by `lease_until`, it crashed before sending and the
    /// call is tried again.
    Preparing { lease_until: Timestamp, token: u64 },
    /// The creation request is being sent: if the replica has not reported by
    /// `lease_until`, the call's existence is unknown.
    Sending { lease_until: Timestamp },
    /// The carrier may have created the call (timeout, 5xx, lost lease). Any callback
    /// for this call confirms it; none by `until` means it was not placed.
    Unconfirmed { until: Timestamp, reason: String },
}

/// The status of a call, from `dialing` to a final carrier status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Dialing(Dialing),
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    /// The carrier never created the call.
    NotPlaced,
}

impl CallState {
    /// Progress order: a status with a lower or equal rank never replaces one with a
    /// higher rank, so a late `Ringing` cannot overwrite `Completed`.
    pub fn rank(&self) -> u8 {
        match self {
            CallState::Dialing(_) => 0,
            CallState::Queued => 1,
            CallState::Initiated => 2,
            CallState::Ringing => 3,
            CallState::InProgress => 4,
            CallState::Completed
            | CallState::Busy
            | CallState::NoAnswer
            | CallState::Failed
            | CallState::NotPlaced => 5,
        }
    }

    pub fn is_final(&self) -> bool {
        self.rank() == 5
    }

    /// The carrier has the call and it is not over.
    pub fn is_live(&self) -> bool {
        (1..5).contains(&self.rank())
    }

    /// The name the API shows (`dialing`, `ringing`, `completed`...).
    pub fn name(&self) -> &'static str {
        match self {
            CallState::Dialing(_) => "dialing",
            CallState::Queued => "queued",
            CallState::Initiated => "initiated",
            CallState::Ringing => "ringing",
            CallState::InProgress => "in_progress",
            CallState::Completed => "completed",
            CallState::Busy => "busy",
            CallState::NoAnswer => "no_answer",
            CallState::Failed => "failed",
            CallState::NotPlaced => "not_placed",
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    Rejected,
    /// Answered, but no decision was made.
    NoInput,
    NoAnswer,
    Busy,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::NoInput => "no_input",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl From<Decision> for Outcome {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Accepted => Outcome::Accepted,
            Decision::Rejected => Outcome::Rejected,
        }
    }
}

/// The conversation state carried between turns of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Conversation {
    /// Keypad menu offered by the last Voiceflow turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub menu: Vec<MenuItem>,
    /// The last turn asked for input with a `no-reply` timeout.
    #[serde(default)]
    pub expects_no_reply: bool,
    /// Voiceflow failed during this call: key presses are read with the fallback keypad.
    #[serde(default)]
    pub fallback: bool,
    /// The last keys the caller pressed whose Voiceflow turn never answered (too
    /// slow, failed, or its replica died), read on the fallback keypad: the
    /// decision if the call ends with nothing more pressed, so a press of the
    /// accept key is not lost with the turn. Cleared when Voiceflow answers or the
    /// caller chooses again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered_decision: Option<Decision>,
    /// Invalid inputs so far (templates say goodbye after three).
    #[serde(default)]
    pub invalid: u32,
    /// The keys of the call already consumed (no `#`): with cumulative tones a
    /// POST's new input is what follows them ([`Tones::after`](super::Tones::after));
    /// its length is how much of the call's tones has been read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consumed: String,
    /// A Voiceflow turn that answered after the caller got a holding dialplan,
    /// already rendered for the next input; played at the next key press.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingTurn>,
    /// A Voiceflow turn is being computed for `turn` until `until` (turns are
    /// serialized: Voiceflow keeps no per-user lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlightTurn>,
    /// The conversation has ended (an `end` trace, or a template's goodbye).
    #[serde(default)]
    pub ended: bool,
}

/// A rendered Voiceflow turn waiting to be played (see [`Conversation::pending`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingTurn {
    /// The dialplan JSON, its COLLECT already pointing at the input after the next.
    pub dialplan: String,
    #[serde(default)]
    pub menu: Vec<MenuItem>,
    #[serde(default)]
    pub expects_no_reply: bool,
    #[serde(default)]
    pub ended: bool,
}

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

/// How many answered turns are remembered for duplicates.
pub const CACHED_ANSWERS: usize = 3;

/// A pending request to end a live call (cancellation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hangup {
    pub tries: u32,
    /// When to try (again); `None` once done or given up.
    pub next_at: Option<Timestamp>,
}

/// One call to one contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub call_id: CallId,
    /// Index of the contact in the callout's list.
    pub contact: usize,
    /// 1-based attempt number for this contact.
    pub number: u32,
    pub state: CallState,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub decision: Option<Decision>,
    /// Why the attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub placed_at: Option<Timestamp>,
    #[serde(default)]
    pub answered_at: Option<Timestamp>,
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// Routee's conversation tracking id (from the create response or a callback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// Routee's call-leg id, needed to hang up (arrives with callbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Creation tries that failed and were retried.
    #[serde(default)]
    pub placement_tries: u32,
    /// Answered and over without a decision: wait until then for a trailing key press.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<Timestamp>,
    /// After this, a live call is reconciled with Routee's tracking API.
    pub deadline: Timestamp,
    #[serde(default)]
    pub reconcile_tries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup: Option<Hangup>,
    /// The COLLECT turn the caller is in (0 until the first key press).
    #[serde(default)]
    pub turn: u32,
    #[serde(default)]
    pub conversation: Conversation,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<CachedAnswer>,
}

impl Attempt {
    pub fn new(
        call_id: CallId,
        contact: usize,
        number: u32,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Self {
        Self {
            call_id,
            contact,
            number,
            state: CallState::Dialing(Dialing::Pending {
                at: now,
                slot_reserved: false,
            }),
            outcome: None,
            decision: None,
            reason: None,
            created_at: now,
            placed_at: None,
            answered_at: None,
            ended_at: None,
            tracking_id: None,
            message_id: None,
            placement_tries: 0,
            grace_until: None,
            deadline,
            reconcile_tries: 0,
            hangup: None,
            turn: 0,
            conversation: Conversation::default(),
            answers: Vec::new(),
        }
    }

    /// The attempt is over (its outcome is known).
    pub fn is_over(&self) -> bool {
        self.outcome.is_some()
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> Attempt {
        Attempt::new(CallId::new(), 0, 1, Timestamp(0), Timestamp(1000))
    }

    #[test]
    fn ranks_only_move_forward_and_finals_are_final() {
        let order = [
            CallState::Dialing(Dialing::InFlight {
                lease_until: Timestamp(0),
            }),
            CallState::Queued,
            CallState::Initiated,
            CallState::Ringing,
            CallState::InProgress,
            CallState::Completed,
        ];
        for pair in order.windows(2) {
            assert!(pair[0].rank() < pair[1].rank(), "{pair:?}");
        }
        for s in [
            CallState::Completed,
            CallState::Busy,
            CallState::NoAnswer,
            CallState::Failed,
            CallState::NotPlaced,
        ] {
            assert!(s.is_final() && !s.is_live());
        }
        assert!(CallState::Ringing.is_live());
    }

    #[test]
    fn answers_are_cached_per_turn_and_bounded() {
        let mut a = attempt();
        for t in 0..5 {
            a.cache_answer(t, format!("{{\"plan\":{t}}}"));
        }
        assert_eq!(a.answers.len(), CACHED_ANSWERS);
        assert_eq!(a.cached_answer(4), Some("{\"plan\":4}"));
        assert_eq!(a.cached_answer(0), None);
        a.cache_answer(4, "{\"again\":true}".into());
        assert_eq!(a.cached_answer(4), Some("{\"again\":true}"));
        // Not JSON: never cached (answers are serialized dialplans).
        a.cache_answer(5, "not json".into());
        assert_eq!(a.cached_answer(5), None);
    }
}
