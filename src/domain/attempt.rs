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

use super::conversation::{CachedAnswer, Conversation};
use super::{CallId, CallStatus, Decision, Timestamp};

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
    /// Answered, listened to the end and made no decision (silence, or the
    /// third invalid key).
    NoInput,
    /// Answered, then hung up mid-prompt without a decision.
    HungUp,
    /// Answered by a machine (Routee's detection): a message was left, no
    /// decision; retried like no answer.
    Voicemail,
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
            Outcome::HungUp => "hung_up",
            Outcome::Voicemail => "voicemail",
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

/// The second leg of a call, opened by a `DIAL` (a transfer): Routee reports
/// on it with its own `messageId` to the same status URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeg {
    pub message_id: String,
    /// Its last status as the timeline names it (see [`TransferLeg::status_name`]).
    pub status: String,
}

impl TransferLeg {
    /// A carrier status of the transfer's leg as the timeline names it
    /// (`None`: a status nobody can act on).
    pub fn status_name(status: &CallStatus) -> Option<&'static str> {
        Some(match status {
            CallStatus::Queued | CallStatus::Initiated => "dialing",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "answered",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no_answer",
            CallStatus::Failed | CallStatus::Unsent | CallStatus::Terminated => "failed",
            CallStatus::Unknown | CallStatus::Other(_) => return None,
        })
    }
}

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
    /// The transfer a `DIAL` opened, once Routee reported on its leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferLeg>,
    /// Creation tries that failed and were retried.
    #[serde(default)]
    pub placement_tries: u32,
    /// When the carrier first failed to create this attempt's call, while it
    /// still has not: the outage the attempt waits out (see
    /// `Timing::carrier_outage_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_down_since: Option<Timestamp>,
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
    /// The callout's lane that placed it (0 unless `policy.parallel` > 1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lane: u32,
    /// The round it belongs to (0-based; see `policy.rounds`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
    /// The least time the last dialplan sent to the call takes to run out, in
    /// milliseconds (see [`Attempt::heard_plan`]), and from when (`None`: from
    /// the answer, for the dialplan the call was placed with).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub plan_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_from: Option<Timestamp>,
    /// Routee's answering-machine detection reported a machine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub machine: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if takes a reference
pub(crate) fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl Attempt {
    /// A dialplan that takes at least `min_ms` milliseconds to run out was
    /// sent to the call at `now` (`None`: the one it is placed with, heard
    /// from the answer).
    pub fn heard_plan(&mut self, min_ms: u64, now: Option<Timestamp>) {
        self.plan_ms = min_ms;
        self.plan_from = now;
    }

    /// The call ended at `now` before its last dialplan could have run out:
    /// the callee hung up mid-prompt (`hung_up`); otherwise they heard it all
    /// and did not decide (`no_input`). Unanswered: `false`.
    pub fn hung_up_mid_prompt(&self, now: Timestamp) -> bool {
        self.plan_from
            .or(self.answered_at)
            .is_some_and(|from| now < from.plus(std::time::Duration::from_millis(self.plan_ms)))
    }

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
            transfer: None,
            carrier_down_since: None,
            placement_tries: 0,
            plan_ms: 0,
            machine: false,
            plan_from: None,
            grace_until: None,
            deadline,
            reconcile_tries: 0,
            hangup: None,
            turn: 0,
            conversation: Conversation::default(),
            answers: Vec::new(),
            lane: 0,
            round: 0,
        }
    }

    /// The attempt is over (its outcome is known).
    pub fn is_over(&self) -> bool {
        self.outcome.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_ending_before_its_dialplan_could_run_out_was_hung_up() {
        let mut a = Attempt::new(CallId::new(), 0, 1, Timestamp(0), Timestamp(600_000));
        // Never answered: neither.
        assert!(!a.hung_up_mid_prompt(Timestamp(5_000)));
        // The first dialplan counts from the answer.
        a.answered_at = Some(Timestamp(2_000));
        a.heard_plan(27_000, None);
        assert!(a.hung_up_mid_prompt(Timestamp(28_999)));
        assert!(!a.hung_up_mid_prompt(Timestamp(29_000)));
        // A later one from when it was sent.
        a.heard_plan(11_000, Some(Timestamp(40_000)));
        assert!(a.hung_up_mid_prompt(Timestamp(50_000)));
        assert!(!a.hung_up_mid_prompt(Timestamp(51_000)));
        // Unknown length (a turn being asked): never called a hang-up.
        a.heard_plan(0, Some(Timestamp(60_000)));
        assert!(!a.hung_up_mid_prompt(Timestamp(60_000)));
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
}
