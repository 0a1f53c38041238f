//! A callout and its escalation state machine.
//!
//! ```text
//!                         ┌──────────── retry after policy.retry_delay_s ◀──────────┐
//!                         ▼                                                         │ no_answer / busy / no_input / failed,
//!  created ──▶ Dial{contact, at} ──(due)──▶ InCall ──(attempt over)──▶ contact has attempts left?
//!                         ▲                   │                                     │ no, or rejected, or number refused
//!                         │                   │ accepted (key press)                ▼
//!                         │                   ▼                             next contact? ──no──▶ exhausted / failed
//!                         └──── yes ◀─────────┼─────────────────────────────────────┘
//!                                          accepted
//!  cancel (any time while calling) ──▶ cancelled (a live call is hung up)
//! ```
//!
//! Every method here is a pure transition: it takes `now` (and fresh ids) as
//! arguments, mutates the callout, and returns the timeline [`Event`]s it produced
//! and the [`Effect`]s the engine must carry out (place a call, hang up, notify).
//! Effects that must survive a crash are also written into the state (a pending
//! dial, a hangup with a retry time, a notification with a retry time), so a
//! replica that restarts finds them again through [`Callout::next_due`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::attempt::{Attempt, CallState, Dialing, Hangup, Outcome, TransferLeg, is_zero};
use super::event::{Event, EventKind};
use super::{AssistantId, CallId, CalloutId, Decision, E164, Policy, Timestamp};
use super::{CallStatus, Language};

/// One person on the call list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: E164,
    /// Text-to-speech language for this person, overriding the script's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
}

/// Where the conversation comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Script {
    /// A dialplan template from `dialplans/`.
    Template { name: String },
    /// A registered Voiceflow assistant.
    Assistant { id: AssistantId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalloutStatus {
    Calling,
    Accepted,
    Exhausted,
    Cancelled,
    Failed,
}

impl CalloutStatus {
    pub const ALL: [CalloutStatus; 5] = [
        CalloutStatus::Calling,
        CalloutStatus::Accepted,
        CalloutStatus::Exhausted,
        CalloutStatus::Cancelled,
        CalloutStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CalloutStatus::Calling => "calling",
            CalloutStatus::Accepted => "accepted",
            CalloutStatus::Exhausted => "exhausted",
            CalloutStatus::Cancelled => "cancelled",
            CalloutStatus::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        self != CalloutStatus::Calling
    }
}

impl std::str::FromStr for CalloutStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CalloutStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?} (expected calling, accepted, exhausted, cancelled or failed)"))
    }
}

/// What the callout waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Call `contact` at `at` (its next attempt).
    Dial { contact: usize, at: Timestamp },
    /// The last attempt is not over yet.
    InCall,
    /// Finished; nothing more will be dialled.
    Done,
}

/// Delivery of the final state to `notify_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyState {
    pub tries: u32,
    /// Next delivery attempt (also a lease while one is in flight); `None` when done.
    pub next_at: Option<Timestamp>,
    pub delivered: bool,
}

/// Durations the transitions need, from configuration (pure values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a replica may take to create a call before it is presumed crashed.
    pub placement_lease: Duration,
    /// Creation tries per attempt for retryable errors that are not the
    /// carrier's (a Voiceflow launch, the store, a replica that stopped).
    pub max_placement_tries: u32,
    /// How long the carrier may fail to create an attempt's call (connection
    /// refused, 429, 5xx) before the callout ends `failed` with reason
    /// `carrier_unavailable` (`CARRIER_OUTAGE_LIMIT_S`, 15 minutes). Until then
    /// the same attempt is placed again with backoff: a carrier failure never
    /// consumes a callee's attempt.
    pub carrier_outage_limit: Duration,
    /// How long a creation that may have created a call (a 5xx, a timeout) waits
    /// for a callback that says it did before it is placed again on the same
    /// attempt (`ROUTEE_UNCONFIRMED_WINDOW_S`, 30 s).
    pub unconfirmed_window: Duration,
    /// After an answered call ends without a decision, wait this long for the
    /// trailing COLLECT post that may still carry a key press.
    pub collect_grace: Duration,
    /// After a decision, the call should end soon; reconcile it after this.
    pub decided_call_deadline: Duration,
    /// Lease of an in-flight hangup or notification (retried if not reported).
    pub effect_lease: Duration,
    pub max_hangup_tries: u32,
    pub max_notify_tries: u32,
    pub max_reconcile_tries: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            placement_lease: Duration::from_secs(60),
            max_placement_tries: 4,
            carrier_outage_limit: Duration::from_secs(15 * 60),
            unconfirmed_window: Duration::from_secs(30),
            collect_grace: Duration::from_secs(5),
            decided_call_deadline: Duration::from_secs(90),
            effect_lease: Duration::from_secs(60),
            max_hangup_tries: 5,
            max_notify_tries: 8,
            max_reconcile_tries: 3,
        }
    }
}

/// Something the engine must do after the transition is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Create the call of this attempt (render its first dialplan, POST to Routee).
    /// `slot_reserved`: the outbound rate-limit slot was already reserved.
    PlaceCall {
        call_id: CallId,
        slot_reserved: bool,
    },
    /// End this live call.
    HangUp { call_id: CallId },
    /// POST the final state to `notify_url`.
    Notify,
    /// The attempt is over: save its conversation to Voiceflow transcripts if enabled.
    SaveTranscript { call_id: CallId },
}

/// Events and effects produced by one transition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consequences {
    pub events: Vec<Event>,
    pub effects: Vec<Effect>,
}

impl Consequences {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.effects.is_empty()
    }

    /// Adds what another transition produced, after this one's.
    pub fn extend(&mut self, more: Consequences) {
        self.events.extend(more.events);
        self.effects.extend(more.effects);
    }
}

/// Why creating a call failed, as the engine classifies the carrier's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceFailure {
    /// Nothing was created; trying again later may work (5xx before reaching
    /// Routee, 429, token endpoint down...). `retry_after` honours the carrier.
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The carrier refused this call for good (invalid number, bad request):
    /// the same request would fail again, so the contact is skipped.
    Permanent { reason: String },
    /// The request may have created the call (timeout, 5xx after sending).
    Unconfirmed { reason: String },
    /// The conversation could not be prepared (assistant missing, Voiceflow down at
    /// launch...). Like `Retryable` but never hit the carrier.
    Script { reason: String, retryable: bool },
}

/// What Routee's tracking API said about an overdue call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciliation {
    Final(CallStatus),
    StillLive,
    Unknown,
}

/// The input to create a callout, already parsed and validated at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCallout {
    pub name: String,
    pub script: Script,
    pub variables: Map<String, Value>,
    pub contacts: Vec<Contact>,
    pub policy: Policy,
    pub notify_url: Option<String>,
}

/// Errors of operations a user asked for (as opposed to webhooks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalloutError {
    #[error("the callout is already {0}")]
    AlreadyFinished(&'static str),
}

/// A callout: one call list being worked through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callout {
    pub id: CalloutId,
    pub name: String,
    pub script: Script,
    #[serde(default)]
    pub variables: Map<String, Value>,
    pub contacts: Vec<Contact>,
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    pub created_at: Timestamp,
    pub status: CalloutStatus,
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    #[serde(default)]
    pub accepted_by: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub step: Step,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyState>,
    /// The fingerprint of the API key that created it (`key-1a2b3c4d`), for the
    /// per-key daily call cap; `None` for callouts created before it was kept
    /// or by the gateway itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The lanes after the first (`step`) when `policy.parallel` > 1: each works
    /// one contact at a time, so at most `parallel` calls are under way at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<Step>,
    /// The round being called (0-based; see `policy.rounds`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
    /// Everyone who accepted, in order (`accepted_by` is the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acceptors: Vec<usize>,
}

/// Seconds after the input timeout that an answered call of a filled callout
/// is given to close itself ("This request has been filled. Thank you.")
/// before it is hung up.
pub const FILLED_HANGUP_S: u64 = 15;

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Exponential backoff with a deterministic jitter derived from `seed` (so it is a
/// pure function): about `base * 2^(try-1)`, ±25%, capped at `cap`.
pub fn backoff(base: Duration, try_number: u32, cap: Duration, seed: u128) -> Duration {
    let exp = base.saturating_mul(1u32 << try_number.saturating_sub(1).min(16));
    let capped = exp.min(cap);
    // Jitter in [-25%, +25%] from the seed and the try number.
    let mix = (seed ^ (u128::from(try_number) * 0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0x2545_F491_4F6C_DD1D);
    let frac = (mix % 1000) as f64 / 1000.0; // 0.0..1.0
    capped.mul_f64(0.75 + frac * 0.5)
}

impl Callout {
    /// A new callout; its first contact is due at once.
    pub fn create(id: CalloutId, input: NewCallout, now: Timestamp) -> (Callout, Vec<Event>) {
        let callout = Callout {
            id,
            name: input.name,
            script: input.script,
            variables: input.variables,
            contacts: input.contacts,
            policy: input.policy,
            notify_url: input.notify_url,
            created_at: now,
            status: CalloutStatus::Calling,
            ended_at: None,
            accepted_by: None,
            failure: None,
            step: Step::Done,
            attempts: Vec::new(),
            notify: None,
            created_by: None,
            lanes: Vec::new(),
            round: 0,
            acceptors: Vec::new(),
        };
        let mut callout = callout;
        let mut events = vec![Event::new(now, EventKind::CalloutCreated)];
        callout.fill_lanes(now, &mut events);
        (callout, events)
    }

    /// Gives every idle lane the next contact of the round, due at `at`.
    fn fill_lanes(&mut self, at: Timestamp, events: &mut Vec<Event>) {
        let lanes = self.policy.parallel.max(1) as usize;
        self.lanes.resize(lanes - 1, Step::Done);
        for lane in 0..lanes {
            if self.lane_step(lane) != Step::Done {
                continue;
            }
            let Some(contact) = self.next_contact() else {
                break;
            };
            self.set_lane(lane, Step::Dial { contact, at });
            events.push(Event::for_call(
                at,
                EventKind::CallScheduled { due: at },
                contact,
                1,
            ));
        }
    }

    /// What lane `lane` waits for (lane 0 is `step`).
    pub fn lane_step(&self, lane: usize) -> Step {
        if lane == 0 {
            self.step
        } else {
            self.lanes.get(lane - 1).copied().unwrap_or(Step::Done)
        }
    }

    fn set_lane(&mut self, lane: usize, step: Step) {
        if lane == 0 {
            self.step = step;
        } else if let Some(s) = self.lanes.get_mut(lane - 1) {
            *s = step;
        }
    }

    fn lane_count(&self) -> usize {
        1 + self.lanes.len()
    }

    /// Ends every lane (the callout is over).
    fn close_lanes(&mut self) {
        self.step = Step::Done;
        for s in &mut self.lanes {
            *s = Step::Done;
        }
    }

    /// The attempt of `lane` that is not over yet, if any.
    fn lane_attempt(&self, lane: usize) -> Option<usize> {
        self.attempts
            .iter()
            .rposition(|a| a.lane as usize == lane && !a.is_over())
    }

    /// The next contact of this round nobody has started: contacts are taken in
    /// list order, and someone who already accepted is not called again.
    pub fn next_contact(&self) -> Option<usize> {
        let started = (0..self.lane_count())
            .filter_map(|l| match self.lane_step(l) {
                Step::Dial { contact, .. } => Some(contact),
                _ => None,
            })
            .chain(
                self.attempts
                    .iter()
                    .filter(|a| a.round == self.round)
                    .map(|a| a.contact),
            )
            .max();
        let from = started.map_or(0, |c| c + 1);
        (from..self.contacts.len()).find(|c| !self.acceptors.contains(c))
    }

    /// Calls under way (attempts not over).
    pub fn open_attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| !a.is_over())
    }

    /// The earliest dial any lane waits for, while calling.
    pub fn next_dial(&self) -> Option<Timestamp> {
        if self.status != CalloutStatus::Calling {
            return None;
        }
        (0..self.lane_count())
            .filter_map(|l| match self.lane_step(l) {
                Step::Dial { at, .. } => Some(at),
                _ => None,
            })
            .min()
    }

    /// The attempt with this call id.
    pub fn attempt(&self, call_id: CallId) -> Option<&Attempt> {
        self.attempts.iter().find(|a| a.call_id == call_id)
    }

    pub fn attempt_mut(&mut self, call_id: CallId) -> Option<&mut Attempt> {
        self.attempts.iter_mut().find(|a| a.call_id == call_id)
    }

    /// The latest attempt that is not over yet (with `policy.parallel` > 1
    /// there may be more: see [`Callout::open_attempts`]).
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.iter().rev().find(|a| !a.is_over())
    }

    /// Attempts made so far for a contact in this round.
    pub fn attempts_for(&self, contact: usize) -> u32 {
        self.attempts
            .iter()
            .filter(|a| a.contact == contact && a.round == self.round)
            .count() as u32
    }

    /// The earliest time something is due (a dial, a placement retry or lease, the
    /// end of a grace period, a hangup or notification retry). The store keeps the
    /// callout's timer at exactly this time.
    pub fn next_due(&self) -> Option<Timestamp> {
        let mut due = self.next_dial();
        for a in self.open_attempts() {
            if let CallState::Dialing(d) = &a.state {
                due = min_opt(
                    due,
                    Some(match d {
                        Dialing::Pending { at, .. } => *at,
                        Dialing::InFlight { lease_until }
                        | Dialing::Preparing { lease_until, .. }
                        | Dialing::Sending { lease_until } => *lease_until,
                        Dialing::Unconfirmed { until, .. } => *until,
                    }),
                );
            }
            due = min_opt(due, a.grace_until);
        }
        for a in &self.attempts {
            due = min_opt(due, a.hangup.as_ref().and_then(|h| h.next_at));
        }
        min_opt(due, self.notify.as_ref().and_then(|n| n.next_at))
    }

    /// Deadline of the placed, not-yet-final call, for the reconciliation job.
    pub fn live_call_deadline(&self) -> Option<Timestamp> {
        self.open_attempts()
            .filter(|a| a.state.is_live())
            .map(|a| a.deadline)
            .min()
    }

    /// Fires everything due at `now`. `fresh_call_id` is used if a dial starts
    /// (one at most: [`Callout::on_timer_with`] starts every lane that is due).
    pub fn on_timer(
        &mut self,
        now: Timestamp,
        timing: &Timing,
        fresh_call_id: CallId,
    ) -> Consequences {
        self.on_timer_with(now, timing, &mut || fresh_call_id)
    }

    /// Fires everything due at `now`; each dial that starts takes a call id from
    /// `fresh` (an id already used is not taken: that lane stays due).
    pub fn on_timer_with(
        &mut self,
        now: Timestamp,
        timing: &Timing,
        fresh: &mut dyn FnMut() -> CallId,
    ) -> Consequences {
        let mut ch = Consequences::default();
        for lane in 0..self.lane_count() {
            if let (CalloutStatus::Calling, Step::Dial { contact, at }) =
                (self.status, self.lane_step(lane))
                && at <= now
                && self.lane_attempt(lane).is_none()
            {
                let call_id = fresh();
                if self.attempts.iter().any(|a| a.call_id == call_id) {
                    continue;
                }
                let number = self.attempts_for(contact) + 1;
                let deadline = now.plus_secs(self.policy.call_deadline_s());
                let mut attempt = Attempt::new(call_id, contact, number, now, deadline);
                attempt.state = CallState::Dialing(Dialing::InFlight {
                    lease_until: now.plus(timing.placement_lease),
                });
                attempt.lane = lane as u32;
                attempt.round = self.round;
                self.attempts.push(attempt);
                self.set_lane(lane, Step::InCall);
                ch.effects.push(Effect::PlaceCall {
                    call_id,
                    slot_reserved: false,
                });
            }
        }
        let open: Vec<usize> = (0..self.attempts.len())
            .filter(|&i| !self.attempts[i].is_over())
            .collect();
        for idx in open {
            self.fire_attempt(idx, now, timing, &mut ch);
        }
        for a in &mut self.attempts {
            if let Some(h) = &mut a.hangup
                && h.next_at.is_some_and(|t| t <= now)
            {
                h.next_at = Some(now.plus(timing.effect_lease));
                ch.effects.push(Effect::HangUp { call_id: a.call_id });
            }
        }
        if let Some(n) = &mut self.notify
            && n.next_at.is_some_and(|t| t <= now)
        {
            n.next_at = Some(now.plus(timing.effect_lease));
            ch.effects.push(Effect::Notify);
        }
        ch
    }

    /// What is due on attempt `idx` (not over): a placement retry or lease, the
    /// end of its grace period.
    fn fire_attempt(&mut self, idx: usize, now: Timestamp, timing: &Timing, ch: &mut Consequences) {
        let status = self.status;
        {
            let a = &mut self.attempts[idx];
            match &a.state {
                CallState::Dialing(Dialing::Pending { at, slot_reserved }) if *at <= now => {
                    if status != CalloutStatus::Calling {
                        self.finish_attempt(idx, Outcome::Cancelled, None, now, ch);
                    } else {
                        let reserved = *slot_reserved;
                        a.state = CallState::Dialing(Dialing::InFlight {
                            lease_until: now.plus(timing.placement_lease),
                        });
                        ch.effects.push(Effect::PlaceCall {
                            call_id: a.call_id,
                            slot_reserved: reserved,
                        });
                    }
                }
                CallState::Dialing(Dialing::Preparing { lease_until, .. })
                    if *lease_until <= now =>
                {
                    // Nothing was sent: try again at once (another replica), but not
                    // forever, in case this very callout is what stops replicas.
                    a.placement_tries += 1;
                    let reason = "the replica preparing the call stopped before sending it";
                    if a.placement_tries >= timing.max_placement_tries {
                        a.state = CallState::NotPlaced;
                        let reason =
                            format!("{reason} (gave up after {} tries)", a.placement_tries);
                        self.finish_attempt(idx, Outcome::Failed, Some(reason), now, ch);
                    } else {
                        a.state = CallState::Dialing(Dialing::InFlight {
                            lease_until: now.plus(timing.placement_lease),
                        });
                        let (c, n, call_id) = (a.contact, a.number, a.call_id);
                        ch.events.push(Event::for_call(
                            now,
                            EventKind::PlacementRetry {
                                reason: reason.to_owned(),
                                retry_at: now,
                            },
                            c,
                            n,
                        ));
                        ch.effects.push(Effect::PlaceCall {
                            call_id,
                            slot_reserved: false,
                        });
                    }
                }
                CallState::Dialing(
                    Dialing::InFlight { lease_until } | Dialing::Sending { lease_until },
                ) if *lease_until <= now => {
                    let reason =
                        "the replica creating the call stopped before the carrier answered"
                            .to_owned();
                    a.state = CallState::Dialing(Dialing::Unconfirmed {
                        until: now.plus(timing.unconfirmed_window),
                        reason: reason.clone(),
                    });
                    let (c, n) = (a.contact, a.number);
                    ch.events.push(Event::for_call(
                        now,
                        EventKind::PlacementUnconfirmed { reason },
                        c,
                        n,
                    ));
                }
                CallState::Dialing(Dialing::Unconfirmed { until, reason }) if *until <= now => {
                    // No callback said the call exists: it was not created. It is
                    // placed again, once, on the same attempt.
                    let reason = format!("{reason}; no callback confirmed the call");
                    if status == CalloutStatus::Calling {
                        self.carrier_failed(idx, reason, Duration::ZERO, now, timing, ch);
                    } else {
                        a.state = CallState::NotPlaced;
                        self.finish_attempt(idx, Outcome::Cancelled, None, now, ch);
                    }
                }
                _ => {}
            }
        }
        let a = &mut self.attempts[idx];
        if let Some(g) = a.grace_until
            && g <= now
            && !a.is_over()
        {
            // A Voiceflow turn still being computed (e.g. the no-reply request)
            // may yet decide; wait for it, within its own bound.
            match a.conversation.in_flight() {
                Some(f) if f.until > now => a.grace_until = Some(f.until),
                _ => self.end_undecided(idx, now, timing, ch),
            }
        }
    }

    /// The replica asked to create the call starts preparing it (see the
    /// `attempt` module doc). `token` is fresh: it names this replica's claim, so
    /// a replica that outlived its lease cannot send a call someone else now
    /// prepares. Returns whether the caller owns the placement; a callout
    /// cancelled meanwhile ends the attempt here, since nothing was sent.
    pub fn begin_preparing(
        &mut self,
        call_id: CallId,
        token: u64,
        now: Timestamp,
        timing: &Timing,
    ) -> (Consequences, bool) {
        let mut ch = Consequences::default();
        let calling = self.status == CalloutStatus::Calling;
        let Some(idx) = self.attempts.iter().position(|a| a.call_id == call_id) else {
            return (ch, false);
        };
        let a = &mut self.attempts[idx];
        if !matches!(a.state, CallState::Dialing(Dialing::InFlight { .. })) || a.is_over() {
            return (ch, false); // another replica handled this placement
        }
        if !calling {
            a.state = CallState::NotPlaced;
            a.hangup = None;
            self.finish_attempt(idx, Outcome::Cancelled, None, now, &mut ch);
            return (ch, false);
        }
        a.state = CallState::Dialing(Dialing::Preparing {
            lease_until: now.plus(timing.placement_lease),
            token,
        });
        (ch, true)
    }

    /// The last check before the creation request leaves: only the replica whose
    /// claim (`token`) still prepares this attempt of a callout still calling may
    /// send. After this commit the call may exist.
    pub fn begin_sending(
        &mut self,
        call_id: CallId,
        token: u64,
        now: Timestamp,
        timing: &Timing,
    ) -> (Consequences, bool) {
        let calling = self.status == CalloutStatus::Calling;
        let Some(a) = self.attempt_mut(call_id) else {
            return (Consequences::default(), false);
        };
        match a.state {
            CallState::Dialing(Dialing::Preparing { token: t, .. })
                if t == token && calling && !a.is_over() =>
            {
                a.state = CallState::Dialing(Dialing::Sending {
                    lease_until: now.plus(timing.placement_lease),
                });
                (Consequences::default(), true)
            }
            _ => (Consequences::default(), false),
        }
    }

    /// The shared rate limit gave this attempt a slot at `at`: wait for it durably.
    pub fn defer_placement(&mut self, call_id: CallId, at: Timestamp) -> Consequences {
        if let Some(a) = self.attempt_mut(call_id)
            && matches!(
                a.state,
                CallState::Dialing(Dialing::InFlight { .. } | Dialing::Preparing { .. })
            )
        {
            a.state = CallState::Dialing(Dialing::Pending {
                at,
                slot_reserved: true,
            });
        }
        Consequences::default()
    }

    /// The per-person limits hold this attempt's call back until `until` (the
    /// number was called as often as they allow): it waits, durably, and is
    /// placed then (checked again).
    pub fn hold_placement(
        &mut self,
        call_id: CallId,
        until: Timestamp,
        now: Timestamp,
    ) -> Consequences {
        let mut ch = Consequences::default();
        if let Some(a) = self.attempt_mut(call_id)
            && matches!(
                a.state,
                CallState::Dialing(Dialing::InFlight { .. } | Dialing::Preparing { .. })
            )
        {
            a.state = CallState::Dialing(Dialing::Pending {
                at: until,
                slot_reserved: false,
            });
            ch.events.push(Event::for_call(
                now,
                EventKind::CallHeld { until },
                a.contact,
                a.number,
            ));
        }
        ch
    }

    /// The carrier created the call.
    pub fn on_placed(
        &mut self,
        call_id: CallId,
        tracking_id: String,
        now: Timestamp,
        timing: &Timing,
    ) -> Consequences {
        let mut ch = Consequences::default();
        let cancelled = self.status == CalloutStatus::Cancelled;
        let Some(a) = self.attempt_mut(call_id) else {
            return ch;
        };
        if a.tracking_id.is_none() {
            a.tracking_id = Some(tracking_id);
        }
        if a.placed_at.is_none() {
            a.placed_at = Some(now);
            ch.events.push(Event::for_call(
                now,
                EventKind::CallPlaced,
                a.contact,
                a.number,
            ));
        }
        if matches!(a.state, CallState::Dialing(_)) {
            a.state = CallState::Queued;
        }
        // A call that exists while nobody wants it (cancelled or filled meanwhile,
        // or the attempt was already written off) is ended at once.
        if (cancelled || a.is_over() || a.hangup.is_some()) && !a.state.is_final() {
            match &mut a.hangup {
                None => {
                    a.hangup = Some(Hangup {
                        tries: 0,
                        next_at: Some(now.plus(timing.effect_lease)),
                    });
                    ch.events.push(Event::for_call(
                        now,
                        EventKind::HangupRequested,
                        a.contact,
                        a.number,
                    ));
                    ch.effects.push(Effect::HangUp { call_id });
                }
                Some(h) if h.next_at.is_none() && h.tries == 0 => {
                    h.next_at = Some(now.plus(timing.effect_lease));
                    ch.effects.push(Effect::HangUp { call_id });
                }
                Some(_) => {}
            }
        }
        ch
    }

    /// Creating the call failed.
    pub fn on_place_failed(
        &mut self,
        call_id: CallId,
        failure: PlaceFailure,
        now: Timestamp,
        timing: &Timing,
    ) -> Consequences {
        let mut ch = Consequences::default();
        let cancelled = self.status == CalloutStatus::Cancelled;
        let Some(idx) = self.attempts.iter().position(|a| a.call_id == call_id) else {
            return ch;
        };
        let a = &mut self.attempts[idx];
        if !matches!(
            a.state,
            CallState::Dialing(
                Dialing::InFlight { .. } | Dialing::Preparing { .. } | Dialing::Sending { .. }
            )
        ) {
            return ch; // stale report: the attempt moved on (e.g. a callback adopted it)
        }
        let (contact, number) = (a.contact, a.number);
        enum Kind {
            Carrier(Option<Duration>),
            Retry,
            Unconfirmed,
            Permanent,
        }
        let (kind, reason) = match failure {
            PlaceFailure::Retryable {
                reason,
                retry_after,
            } => (Kind::Carrier(retry_after), reason),
            PlaceFailure::Script {
                reason,
                retryable: true,
            } => (Kind::Retry, reason),
            PlaceFailure::Unconfirmed { reason } => (Kind::Unconfirmed, reason),
            PlaceFailure::Permanent { reason }
            | PlaceFailure::Script {
                reason,
                retryable: false,
            } => (Kind::Permanent, reason),
        };
        match kind {
            Kind::Unconfirmed => {
                // Even when cancelled: the call may exist and must then be hung up.
                a.state = CallState::Dialing(Dialing::Unconfirmed {
                    until: now.plus(timing.unconfirmed_window),
                    reason: reason.clone(),
                });
                ch.events.push(Event::for_call(
                    now,
                    EventKind::PlacementUnconfirmed { reason },
                    contact,
                    number,
                ));
            }
            _ if cancelled => {
                // Cancelled meanwhile and nothing was created: nothing to retry.
                a.state = CallState::NotPlaced;
                self.finish_attempt(idx, Outcome::Cancelled, None, now, &mut ch);
            }
            Kind::Carrier(retry_after) => {
                let seed = call_id.as_uuid().as_u128();
                let wait = backoff(
                    Duration::from_secs(2),
                    a.placement_tries + 1,
                    Duration::from_secs(30),
                    seed,
                )
                .max(
                    retry_after
                        .unwrap_or_default()
                        .min(Duration::from_secs(120)),
                );
                self.carrier_failed(idx, reason, wait, now, timing, &mut ch);
            }
            Kind::Retry => {
                a.placement_tries += 1;
                if a.placement_tries >= timing.max_placement_tries {
                    a.state = CallState::NotPlaced;
                    let reason = format!("{reason} (gave up after {} tries)", a.placement_tries);
                    self.finish_attempt(idx, Outcome::Failed, Some(reason), now, &mut ch);
                } else {
                    let seed = call_id.as_uuid().as_u128();
                    let wait = backoff(
                        Duration::from_secs(2),
                        a.placement_tries,
                        Duration::from_secs(30),
                        seed,
                    );
                    let at = now.plus(wait);
                    a.state = CallState::Dialing(Dialing::Pending {
                        at,
                        slot_reserved: false,
                    });
                    ch.events.push(Event::for_call(
                        now,
                        EventKind::PlacementRetry {
                            reason,
                            retry_at: at,
                        },
                        contact,
                        number,
                    ));
                }
            }
            Kind::Permanent => {
                a.state = CallState::NotPlaced;
                self.finish_attempt_skip(idx, Outcome::Failed, Some(reason), now, true, &mut ch);
            }
        }
        ch
    }

    /// A status of the transfer's leg (`message_id` is not the callee's): on
    /// the timeline as `transfer`, once per change, and on the attempt.
    fn on_transfer_status(
        a: &mut Attempt,
        message_id: &str,
        status: &CallStatus,
        now: Timestamp,
    ) -> Consequences {
        let mut ch = Consequences::default();
        let Some(name) = TransferLeg::status_name(status) else {
            return ch;
        };
        if a.transfer
            .as_ref()
            .is_some_and(|t| t.message_id == message_id && t.status == name)
        {
            return ch; // a duplicate callback
        }
        a.transfer = Some(TransferLeg {
            message_id: message_id.to_owned(),
            status: name.to_owned(),
        });
        ch.events.push(Event::for_call(
            now,
            EventKind::Transfer {
                status: name.to_owned(),
            },
            a.contact,
            a.number,
        ));
        ch
    }

    /// A status callback (or a reconciled status) for a call.
    pub fn on_status(
        &mut self,
        call_id: CallId,
        status: &CallStatus,
        message_id: Option<&str>,
        tracking_id: Option<&str>,
        now: Timestamp,
        timing: &Timing,
    ) -> Consequences {
        let mut ch = Consequences::default();
        let cancelled = self.status == CalloutStatus::Cancelled;
        let Some(idx) = self.attempts.iter().position(|a| a.call_id == call_id) else {
            return ch;
        };
        let a = &mut self.attempts[idx];
        if let (Some(own), Some(m)) = (&a.message_id, message_id)
            && own != m
        {
            // Another leg of this call: the transfer a DIAL opened. It never
            // changes the callee's attempt.
            return Self::on_transfer_status(a, m, status, now);
        }
        if a.message_id.is_none()
            && let Some(m) = message_id
        {
            a.message_id = Some(m.to_owned());
            // A hangup was waiting for the call-leg id.
            if let Some(h) = &mut a.hangup
                && h.next_at.is_none()
                && !a.state.is_final()
                && h.tries == 0
            {
                h.next_at = Some(now.plus(timing.effect_lease));
                ch.effects.push(Effect::HangUp { call_id });
            }
        }
        if a.tracking_id.is_none() {
            a.tracking_id = tracking_id.map(str::to_owned);
        }
        let (contact, number) = (a.contact, a.number);
        let new_state = match status {
            CallStatus::Queued => CallState::Queued,
            CallStatus::Initiated => CallState::Initiated,
            CallStatus::Ringing => CallState::Ringing,
            CallStatus::InProgress => CallState::InProgress,
            CallStatus::Completed => CallState::Completed,
            CallStatus::Busy => CallState::Busy,
            CallStatus::NoAnswer => CallState::NoAnswer,
            CallStatus::Failed | CallStatus::Unsent | CallStatus::Terminated => CallState::Failed,
            CallStatus::Unknown | CallStatus::Other(_) => {
                // Not a state we can act on: keep it in the timeline once, and ask the
                // tracking API soon instead of waiting for the full deadline.
                if !a.is_over() && !a.state.is_final() {
                    a.deadline = a.deadline.min(now.plus_secs(30));
                    ch.events.push(Event::for_call(
                        now,
                        EventKind::CallStatus {
                            status: status.to_string(),
                        },
                        contact,
                        number,
                    ));
                }
                return ch;
            }
        };
        if a.is_over() || a.state.is_final() || new_state.rank() <= a.state.rank() {
            return ch; // duplicate, late or out of order: a final status is final
        }
        if matches!(a.state, CallState::Dialing(_)) && a.placed_at.is_none() {
            // A callback for a call whose creation we never saw confirmed: it exists.
            a.placed_at = Some(now);
            ch.events
                .push(Event::for_call(now, EventKind::CallPlaced, contact, number));
        }
        a.state = new_state.clone();
        ch.events.push(Event::for_call(
            now,
            EventKind::CallStatus {
                status: status.to_string(),
            },
            contact,
            number,
        ));
        if new_state == CallState::InProgress {
            a.answered_at = Some(now);
        }
        if !new_state.is_final() {
            return ch;
        }
        a.ended_at = Some(now);
        if let Some(d) = a.decision {
            self.finish_attempt(idx, d.into(), None, now, &mut ch);
            return ch;
        }
        let outcome = match new_state {
            CallState::Completed => {
                if a.answered_at.is_none() {
                    a.answered_at = Some(now); // InProgress was lost; Completed means answered
                }
                if timing.collect_grace.is_zero() {
                    self.end_undecided(idx, now, timing, &mut ch);
                } else {
                    a.grace_until = Some(now.plus(timing.collect_grace));
                }
                return ch;
            }
            _ if cancelled => Outcome::Cancelled,
            CallState::Busy => Outcome::Busy,
            CallState::NoAnswer => Outcome::NoAnswer,
            _ => Outcome::Failed,
        };
        let reason = (outcome == Outcome::Failed).then(|| format!("the carrier reported {status}"));
        self.finish_attempt(idx, outcome, reason, now, &mut ch);
        ch
    }

    /// The callee decided (a key press, or the assistant's accept/reject action).
    /// The first decision of an attempt wins; a decision after the attempt is over is ignored.
    pub fn on_decision(
        &mut self,
        call_id: CallId,
        decision: Decision,
        now: Timestamp,
        timing: &Timing,
    ) -> Consequences {
        let mut ch = Consequences::default();
        let calling = self.status == CalloutStatus::Calling;
        let Some(idx) = self.attempts.iter().position(|a| a.call_id == call_id) else {
            return ch;
        };
        let a = &mut self.attempts[idx];
        if a.is_over() || a.decision.is_some() || !calling {
            return ch;
        }
        a.decision = Some(decision);
        a.deadline = a.deadline.min(now.plus(timing.decided_call_deadline));
        let (contact, number) = (a.contact, a.number);
        ch.events.push(Event::for_call(
            now,
            EventKind::Decided { decision },
            contact,
            number,
        ));
        if decision == Decision::Accepted {
            if !self.acceptors.contains(&contact) {
                self.acceptors.push(contact);
            }
            if self.acceptors.len() as u32 >= self.policy.needed {
                self.status = CalloutStatus::Accepted;
                self.accepted_by = self.acceptors.first().copied();
                self.ended_at = Some(now);
                self.close_lanes();
                ch.events.push(Event {
                    contact: Some(contact),
                    attempt: Some(number),
                    ..Event::new(now, EventKind::CalloutAccepted)
                });
                // The request is filled: the other calls under way end (politely
                // when answered: see `end_open_attempt`); a call whose callee
                // already decided is closing with its own goodbye.
                let others: Vec<usize> = (0..self.attempts.len())
                    .filter(|&i| {
                        let a = &self.attempts[i];
                        i != idx && !a.is_over() && a.decision.is_none()
                    })
                    .collect();
                for i in others {
                    self.end_open_attempt(i, now, timing, &mut ch);
                }
                self.schedule_notify(now, &mut ch);
            }
        }
        // Already over (the decision arrived in the grace period after the call ended).
        if self.attempts[idx].state.is_final() {
            self.attempts[idx].grace_until = None;
            self.finish_attempt(idx, decision.into(), None, now, &mut ch);
        }
        ch
    }

    /// Records key presses in the timeline.
    pub fn keys_pressed(&self, call_id: CallId, keys: &str, now: Timestamp) -> Consequences {
        let mut ch = Consequences::default();
        if let Some(a) = self.attempt(call_id)
            && !keys.is_empty()
        {
            ch.events.push(Event::for_call(
                now,
                EventKind::KeysPressed {
                    keys: keys.to_owned(),
                },
                a.contact,
                a.number,
            ));
        }
        ch
    }

    /// The dispatcher cancels: no further calls; a live call is hung up.
    pub fn cancel(
        &mut self,
        now: Timestamp,
        timing: &Timing,
    ) -> Result<Consequences, CalloutError> {
        if self.status != CalloutStatus::Calling {
            return Err(CalloutError::AlreadyFinished(self.status.as_str()));
        }
        let mut ch = Consequences::default();
        self.status = CalloutStatus::Cancelled;
        self.ended_at = Some(now);
        self.close_lanes();
        ch.events.push(Event::new(now, EventKind::CalloutCancelled));
        let open: Vec<usize> = (0..self.attempts.len())
            .filter(|&i| !self.attempts[i].is_over())
            .collect();
        for idx in open {
            self.end_open_attempt(idx, now, timing, &mut ch);
        }
        self.schedule_notify(now, &mut ch);
        Ok(ch)
    }

    /// The callout ended (cancelled, or filled) while attempt `idx` was not over:
    /// a call not sent yet is dropped; a call in its grace period is closed; a
    /// call being created or live is hung up. An answered call of a filled
    /// callout is left to close itself first: its next turn says the request was
    /// filled and ends the call; the hangup comes only if it has not after
    /// `FILLED_HANGUP_S` more than the policy's input timeout.
    fn end_open_attempt(
        &mut self,
        idx: usize,
        now: Timestamp,
        timing: &Timing,
        ch: &mut Consequences,
    ) {
        let polite = self.status == CalloutStatus::Accepted;
        let input_timeout = u64::from(self.policy.input_timeout_s);
        let a = &mut self.attempts[idx];
        match &a.state {
            CallState::Dialing(Dialing::Pending { .. } | Dialing::Preparing { .. }) => {
                // Not sent (a preparing replica's last check will see the
                // change): nothing to hang up.
                a.state = CallState::NotPlaced;
                self.finish_attempt(idx, Outcome::Cancelled, None, now, ch);
            }
            s if s.is_final() => {
                // In the grace period after the call: just close it.
                a.grace_until = None;
                self.finish_attempt(idx, Outcome::Cancelled, None, now, ch);
            }
            _ => {
                // Creating or live. With a call-leg id (or a tracking id to look it
                // up) hang up now; otherwise as soon as a callback brings one.
                let can_hang_up = a.message_id.is_some() || a.tracking_id.is_some();
                let answered = a.state == CallState::InProgress;
                let next_at = if polite && answered {
                    Some(now.plus_secs(input_timeout + FILLED_HANGUP_S))
                } else {
                    can_hang_up.then(|| now.plus(timing.effect_lease))
                };
                a.hangup = Some(Hangup { tries: 0, next_at });
                ch.events.push(Event::for_call(
                    now,
                    EventKind::HangupRequested,
                    a.contact,
                    a.number,
                ));
                if can_hang_up && !(polite && answered) {
                    ch.effects.push(Effect::HangUp { call_id: a.call_id });
                }
            }
        }
    }

    /// Result of a hangup request.
    pub fn on_hangup_result(
        &mut self,
        call_id: CallId,
        ok: bool,
        now: Timestamp,
        timing: &Timing,
    ) -> Consequences {
        if let Some(a) = self.attempt_mut(call_id)
            && let Some(h) = &mut a.hangup
        {
            h.tries += 1;
            h.next_at = if ok || h.tries >= timing.max_hangup_tries || a.state.is_final() {
                None
            } else {
                Some(now.plus(backoff(
                    Duration::from_secs(2),
                    h.tries,
                    Duration::from_secs(30),
                    call_id.as_uuid().as_u128(),
                )))
            };
        }
        Consequences::default()
    }

    /// Result of a delivery to `notify_url`.
    pub fn on_notify_result(
        &mut self,
        delivered: Result<(), String>,
        now: Timestamp,
        timing: &Timing,
    ) -> Consequences {
        let mut ch = Consequences::default();
        let Some(n) = &mut self.notify else { return ch };
        if n.delivered {
            return ch;
        }
        n.tries += 1;
        match delivered {
            Ok(()) => {
                n.delivered = true;
                n.next_at = None;
                ch.events.push(Event::new(now, EventKind::NotifyDelivered));
            }
            Err(reason) => {
                let retry_at = (n.tries < timing.max_notify_tries).then(|| {
                    now.plus(backoff(
                        Duration::from_secs(5),
                        n.tries,
                        Duration::from_secs(1800),
                        self.id.as_uuid().as_u128(),
                    ))
                });
                n.next_at = retry_at;
                ch.events.push(Event::new(
                    now,
                    EventKind::NotifyFailed { reason, retry_at },
                ));
            }
        }
        ch
    }

    /// The reconciliation job asked Routee about an overdue call.
    pub fn on_reconciled(
        &mut self,
        call_id: CallId,
        result: Reconciliation,
        now: Timestamp,
        timing: &Timing,
    ) -> Consequences {
        let Some(idx) = self.attempts.iter().position(|a| a.call_id == call_id) else {
            return Consequences::default();
        };
        if !self.attempts[idx].state.is_live() || self.attempts[idx].is_over() {
            return Consequences::default();
        }
        match result {
            Reconciliation::Final(status) => {
                let mut ch = self.on_status(call_id, &status, None, None, now, timing);
                if let Some(a) = self.attempt(call_id) {
                    ch.events.insert(
                        0,
                        Event::for_call(
                            now,
                            EventKind::Reconciled {
                                status: status.to_string(),
                            },
                            a.contact,
                            a.number,
                        ),
                    );
                }
                ch
            }
            Reconciliation::StillLive | Reconciliation::Unknown => {
                let a = &mut self.attempts[idx];
                a.reconcile_tries += 1;
                if a.reconcile_tries < timing.max_reconcile_tries {
                    let wait = if result == Reconciliation::StillLive {
                        120
                    } else {
                        60
                    };
                    a.deadline = now.plus_secs(wait);
                    return Consequences::default();
                }
                // Give up waiting: the call is written off so the escalation goes on.
                let mut ch = Consequences::default();
                let answered = a.answered_at.is_some();
                a.state = CallState::Failed;
                a.ended_at = Some(now);
                let (outcome, reason) = if answered {
                    (Outcome::NoInput, None)
                } else {
                    (
                        Outcome::Failed,
                        Some("no final status from the carrier".to_owned()),
                    )
                };
                let outcome = match a.decision {
                    Some(d) => d.into(),
                    None if self.status == CalloutStatus::Cancelled => Outcome::Cancelled,
                    None => outcome,
                };
                self.finish_attempt(idx, outcome, reason, now, &mut ch);
                ch
            }
        }
    }

    /// An answered call is over without a decision. A key press whose Voiceflow
    /// turn never answered decides on the fallback keypad (see
    /// [`Conversation::unanswered_decision`]); otherwise the attempt is
    /// `no_input` (`cancelled` if the callout was).
    ///
    /// [`Conversation::unanswered_decision`]: super::Conversation::unanswered_decision
    fn end_undecided(
        &mut self,
        idx: usize,
        now: Timestamp,
        timing: &Timing,
        ch: &mut Consequences,
    ) {
        let calling = self.status == CalloutStatus::Calling;
        let a = &mut self.attempts[idx];
        a.grace_until = None;
        let unanswered = a.conversation.unanswered_decision.take();
        if let (true, Some(decision)) = (calling, unanswered) {
            let (contact, number, call_id) = (a.contact, a.number, a.call_id);
            let key = match decision {
                Decision::Accepted => "accept",
                Decision::Rejected => "reject",
            };
            ch.events.push(Event::for_call(
                now,
                EventKind::ConversationFallback {
                    reason: format!(
                        "the call ended before Voiceflow answered the last key press; it is read on the fallback keypad as {key}"
                    ),
                },
                contact,
                number,
            ));
            let decided = self.on_decision(call_id, decision, now, timing);
            ch.events.extend(decided.events);
            ch.effects.extend(decided.effects);
            return;
        }
        let outcome = if self.status == CalloutStatus::Cancelled {
            Outcome::Cancelled
        } else if self.attempts[idx].machine {
            Outcome::Voicemail
        } else if self.attempts[idx].hung_up_mid_prompt(self.attempts[idx].ended_at.unwrap_or(now))
        {
            Outcome::HungUp
        } else {
            Outcome::NoInput
        };
        self.finish_attempt(idx, outcome, None, now, ch);
    }

    fn schedule_notify(&mut self, now: Timestamp, ch: &mut Consequences) {
        if self.notify_url.is_some() && self.notify.is_none() {
            // The effect is carried out right after commit; `next_at` doubles as its
            // lease, so a crash before delivery retries it.
            self.notify = Some(NotifyState {
                tries: 0,
                next_at: Some(now.plus_secs(60)),
                delivered: false,
            });
            ch.effects.push(Effect::Notify);
        }
    }

    /// The carrier did not create attempt `idx`'s call (it refused, or no
    /// callback confirmed a creation that may have worked): the same attempt is
    /// placed again after `wait`, so the callee loses nothing. The first
    /// failure puts `carrier_unavailable` on the timeline; when the carrier has
    /// been failing the attempt for the outage limit, the callout ends `failed`
    /// with that reason.
    fn carrier_failed(
        &mut self,
        idx: usize,
        reason: String,
        wait: Duration,
        now: Timestamp,
        timing: &Timing,
        ch: &mut Consequences,
    ) {
        let a = &mut self.attempts[idx];
        let (contact, number) = (a.contact, a.number);
        a.placement_tries += 1;
        let since = match a.carrier_down_since {
            Some(since) => since,
            None => {
                a.carrier_down_since = Some(now);
                ch.events.push(Event::for_call(
                    now,
                    EventKind::CarrierUnavailable {
                        reason: reason.clone(),
                    },
                    contact,
                    number,
                ));
                now
            }
        };
        if now.since(since) >= timing.carrier_outage_limit {
            a.state = CallState::NotPlaced;
            let reason = format!(
                "carrier_unavailable: the carrier did not create the call for {} s; last: {reason}",
                now.since(since).as_secs()
            );
            if self.status == CalloutStatus::Calling {
                // Failed first, so that ending the attempt schedules nothing more.
                self.status = CalloutStatus::Failed;
                self.close_lanes();
                self.ended_at = Some(now);
                self.failure = Some(reason.clone());
                self.finish_attempt(idx, Outcome::Failed, Some(reason.clone()), now, ch);
                ch.events
                    .push(Event::new(now, EventKind::CalloutFailed { reason }));
                self.schedule_notify(now, ch);
            } else {
                self.finish_attempt(idx, Outcome::Failed, Some(reason), now, ch);
            }
            return;
        }
        let at = now.plus(wait);
        a.state = CallState::Dialing(Dialing::Pending {
            at,
            slot_reserved: false,
        });
        ch.events.push(Event::for_call(
            now,
            EventKind::PlacementRetry {
                reason,
                retry_at: at,
            },
            contact,
            number,
        ));
    }

    fn finish_attempt(
        &mut self,
        idx: usize,
        outcome: Outcome,
        reason: Option<String>,
        now: Timestamp,
        ch: &mut Consequences,
    ) {
        self.finish_attempt_skip(idx, outcome, reason, now, false, ch);
    }

    /// Ends attempt `idx` and decides what comes next. `skip_contact`: the number was
    /// refused for good, so the contact's remaining attempts are not made.
    fn finish_attempt_skip(
        &mut self,
        idx: usize,
        outcome: Outcome,
        reason: Option<String>,
        now: Timestamp,
        skip_contact: bool,
        ch: &mut Consequences,
    ) {
        let a = &mut self.attempts[idx];
        if a.is_over() {
            return;
        }
        a.outcome = Some(outcome);
        a.reason = reason.clone();
        a.grace_until = None;
        if a.ended_at.is_none() {
            a.ended_at = Some(now);
        }
        let (contact, number, call_id) = (a.contact, a.number, a.call_id);
        ch.events.push(Event::for_call(
            now,
            EventKind::AttemptEnded { outcome, reason },
            contact,
            number,
        ));
        if a.placed_at.is_some() {
            ch.effects.push(Effect::SaveTranscript { call_id });
        }
        if self.status != CalloutStatus::Calling {
            return;
        }
        let lane = self.attempts[idx].lane as usize;
        let contact_done = match outcome {
            Outcome::Cancelled => return,
            Outcome::Accepted | Outcome::Rejected => true,
            _ => skip_contact || self.attempts_for(contact) >= self.policy.attempts_per_contact,
        };
        if !contact_done {
            let at = now.plus_secs(u64::from(self.policy.retry_delay_s));
            self.set_lane(lane, Step::Dial { contact, at });
            ch.events.push(Event::for_call(
                now,
                EventKind::CallScheduled { due: at },
                contact,
                number + 1,
            ));
            return;
        }
        ch.events.push(Event {
            contact: Some(contact),
            ..Event::new(now, EventKind::ContactDone)
        });
        self.advance_lane(lane, now, ch);
    }

    /// Lane `lane` finished its contact: it takes the next contact of the round;
    /// with none left it stops, and when every lane has stopped the round is
    /// over: the next round starts after `round_delay_s`, or the callout ends.
    fn advance_lane(&mut self, lane: usize, now: Timestamp, ch: &mut Consequences) {
        if let Some(next) = self.next_contact() {
            self.set_lane(
                lane,
                Step::Dial {
                    contact: next,
                    at: now,
                },
            );
            ch.events.push(Event::for_call(
                now,
                EventKind::CallScheduled { due: now },
                next,
                1,
            ));
            return;
        }
        self.set_lane(lane, Step::Done);
        let busy = (0..self.lane_count()).any(|l| self.lane_step(l) != Step::Done)
            || self.open_attempts().next().is_some();
        if busy {
            return;
        }
        if self.round + 1 < self.policy.rounds {
            self.round += 1;
            let at = now.plus_secs(u64::from(self.policy.round_delay_s));
            let mut events = vec![Event::new(
                now,
                EventKind::RoundStarted {
                    round: self.round + 1,
                    due: at,
                },
            )];
            self.fill_lanes(at, &mut events);
            if self.step != Step::Done {
                ch.events.extend(events);
                return;
            }
        }
        self.end_list(now, ch);
    }

    /// The list is used up (every round): the callout is exhausted, or failed
    /// if no call ever got through to the network's answer.
    fn end_list(&mut self, now: Timestamp, ch: &mut Consequences) {
        self.close_lanes();
        self.ended_at = Some(now);
        let reached = self
            .attempts
            .iter()
            .any(|a| a.outcome.is_some_and(|o| o != Outcome::Failed));
        if reached {
            self.status = CalloutStatus::Exhausted;
            ch.events.push(Event::new(now, EventKind::CalloutExhausted));
        } else {
            let reason = self
                .attempts
                .iter()
                .rev()
                .find_map(|a| a.reason.clone())
                .map_or_else(
                    || "every call failed".to_owned(),
                    |r| format!("every call failed; last: {r}"),
                );
            self.status = CalloutStatus::Failed;
            self.failure = Some(reason.clone());
            ch.events
                .push(Event::new(now, EventKind::CalloutFailed { reason }));
        }
        self.schedule_notify(now, ch);
    }
}

#[cfg(test)]
#[path = "callout_tests.rs"]
mod tests;
