//! The simulator's shared state: issued tokens, callee scripts, faults, and one
//! entry per call placed (its [`SimCallRecord`] and the channel through which the
//! Routee API ends it).
//!
//! Everything sits behind one `std::sync::Mutex`, held only for short,
//! non-awaiting sections. A single lock keeps "check the call's status, then end
//! it" atomic between an API request and the call's own task (see
//! [`Shared::end_call`] and [`Shared::set_status`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::callees::{Behaviour, Callees};
use super::faults::{FaultState, Faults, InjectedFaults};
use crate::domain::phone::mask;
use crate::routee::{CallAction, CallStatus, Dialplan};

/// How long an issued access token stays valid (Routee's default, reference §1).
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Scales simulated seconds into wall-clock durations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    scale: f64,
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        Self { scale }
    }

    /// The wall-clock duration of `secs` simulated seconds.
    pub fn secs(self, secs: f64) -> Duration {
        Duration::try_from_secs_f64((secs * self.scale).max(0.0)).unwrap_or(Duration::MAX)
    }

    /// Simulated seconds elapsed in `wall`.
    pub fn simulated(self, wall: Duration) -> f64 {
        wall.as_secs_f64() / self.scale
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn deadline(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// The current time in RFC 3339, as callbacks and records show it.
pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// One status a call went through, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChange {
    pub status: CallStatus,
    pub at: String,
}

/// One status callback as the simulator tried to deliver it, in delivery order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackRecord {
    pub status: CallStatus,
    /// The gateway answered 2xx (on some try).
    pub delivered: bool,
    /// The `drop_final_status` fault swallowed it: never sent.
    pub dropped: bool,
    /// The `duplicate_callbacks` fault sent it twice.
    pub duplicated: bool,
    /// HTTP requests made (retries included, duplicate excluded).
    pub tries: u32,
}

/// What the simulator did with an eventUrl answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EventOutcome {
    /// A valid dialplan: it replaced the rest of the playing one.
    Replaced { verbs: usize },
    /// No usable answer (late, failed, empty or invalid): the playing dialplan went on.
    Continued { reason: String },
    /// The end-of-call POST: its answer is ignored (as observed on live calls).
    Ignored,
}

/// One POST to a COLLECT `eventUrl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPostRecord {
    pub at: String,
    pub collected_tones: String,
    /// The POST sent when the call ended.
    pub final_post: bool,
    /// The `duplicate_callbacks` fault sent it twice (the second answer is ignored).
    pub duplicated: bool,
    pub http_status: Option<u16>,
    /// The answer body when it was JSON.
    pub answer: Option<serde_json::Value>,
    #[serde(flatten)]
    pub outcome: EventOutcome,
}

/// Everything known about one call placed through the simulator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimCallRecord {
    /// The call leg's id (used by `PUT /voice/conversation/{messageId}`).
    pub message_id: String,
    /// The conversation's id: `trackingId` of the create answer.
    pub conversation_tracking_id: String,
    pub to: String,
    pub from: String,
    /// 1 for the first call to this number, 2 for the second...
    pub attempt: u32,
    /// The behaviour the callee played on this call.
    pub behaviour: Behaviour,
    /// The dialplan the conversation was created with.
    pub dialplan: Dialplan,
    /// Where status callbacks go (`callback.url`), when the creation gave one.
    pub callback_url: Option<String>,
    pub hangup_delay: Option<u32>,
    pub max_duration: Option<u32>,
    /// The current status.
    pub status: CallStatus,
    /// Every status, in the order the call really went through them.
    pub statuses: Vec<StatusChange>,
    /// Status callbacks in the order they were delivered (faults included).
    pub callbacks: Vec<CallbackRecord>,
    /// The text of each `SAY` the callee heard, in order.
    pub heard: Vec<String>,
    /// When each of `heard` started: simulated seconds since the answer.
    pub heard_at: Vec<f64>,
    /// Each turn of keys the callee pressed.
    pub keys: Vec<String>,
    /// When each of `keys` was pressed: simulated seconds since the answer.
    pub keys_at: Vec<f64>,
    /// Every tone gathered on the call (what tracking reports).
    pub collected_tones: String,
    pub event_posts: Vec<EventPostRecord>,
    /// The number a `DIAL` bridged the call to.
    pub dialed: Option<String>,
    /// The second leg a `DIAL` opened (its own `messageId` and callbacks).
    pub dial_leg: Option<DialLegRecord>,
    /// What the gateway sent that Routee would not play (e.g. a `PLAY` of
    /// something that is not a reachable `.wav`); empty on a correct call.
    pub protocol_errors: Vec<String>,
    pub created_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    /// Simulated seconds between answer and end.
    pub duration_s: f64,
    /// Why the call ended, in words.
    pub end_reason: Option<String>,
    /// Answering-machine detection reported a machine on this call.
    pub machine_detected: bool,
    /// The longest silence the callee heard: from the end of a `SAY` to the
    /// start of the next or the end of the call, in simulated seconds, not
    /// counting the gateway's eventUrl answers (see `longest_answer_wait_ms`).
    pub longest_silence_s: f64,
    /// The longest the callee waited, after a key, for the gateway's answer
    /// (wall-clock milliseconds: the silence before the next words).
    pub longest_answer_wait_ms: u64,
}

/// The second call leg of a `DIAL` (reference addendum: its own `messageId`,
/// its own status callbacks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialLegRecord {
    pub message_id: String,
    pub to: String,
    /// Every status the leg went through, in order.
    pub statuses: Vec<StatusChange>,
    /// Where its callbacks went: the `DIAL`'s `callback.url`, else the conversation's.
    pub callback_url: Option<String>,
}

pub use crate::domain::keys::ToneReading;

/// The live timeline, one event per thing that happens on a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SimEvent {
    CallPlaced {
        message_id: String,
        to: String,
        attempt: u32,
    },
    Status {
        message_id: String,
        to: String,
        status: CallStatus,
    },
    /// A verb starts playing (`text` for SAY, the number for DIAL).
    Verb {
        message_id: String,
        to: String,
        index: usize,
        verb: String,
        text: Option<String>,
    },
    KeysPressed {
        message_id: String,
        to: String,
        keys: String,
    },
    EventPosted {
        message_id: String,
        to: String,
        collected_tones: String,
        final_post: bool,
        outcome: EventOutcome,
    },
    CallbackSent {
        message_id: String,
        status: CallStatus,
        delivered: bool,
    },
    /// The gateway sent something Routee would not accept or play.
    ProtocolError {
        message_id: String,
        to: String,
        error: String,
    },
    CallEnded {
        message_id: String,
        to: String,
        status: CallStatus,
        reason: String,
    },
}

impl SimEvent {
    /// The call the event belongs to.
    pub fn message_id(&self) -> &str {
        match self {
            SimEvent::CallPlaced { message_id, .. }
            | SimEvent::Status { message_id, .. }
            | SimEvent::Verb { message_id, .. }
            | SimEvent::KeysPressed { message_id, .. }
            | SimEvent::EventPosted { message_id, .. }
            | SimEvent::CallbackSent { message_id, .. }
            | SimEvent::ProtocolError { message_id, .. }
            | SimEvent::CallEnded { message_id, .. } => message_id,
        }
    }
}

/// One line of the demo's timeline. Numbers are masked (they may be real ones).
impl fmt::Display for SimEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimEvent::CallPlaced { to, attempt, .. } => {
                write!(f, "{} call placed (attempt {attempt})", mask(to))
            }
            SimEvent::Status { to, status, .. } => write!(f, "{} {status}", mask(to)),
            SimEvent::Verb {
                to,
                verb,
                text: Some(t),
                ..
            } if verb == "DIAL" => write!(f, "{} is bridged to {}", mask(to), mask(t)),
            SimEvent::Verb {
                to,
                verb,
                text: Some(t),
                ..
            } => write!(f, "{} hears {verb}: {t:?}", mask(to)),
            SimEvent::Verb { to, verb, .. } => write!(f, "{} {verb}", mask(to)),
            SimEvent::KeysPressed { to, keys, .. } => write!(f, "{} presses {keys}", mask(to)),
            SimEvent::EventPosted {
                to,
                collected_tones,
                final_post,
                outcome,
                ..
            } => {
                let when = if *final_post {
                    "at call end"
                } else {
                    "mid-call"
                };
                let what = match outcome {
                    EventOutcome::Replaced { verbs } => format!("new dialplan of {verbs} verb(s)"),
                    EventOutcome::Continued { reason } => format!("dialplan goes on ({reason})"),
                    EventOutcome::Ignored => "answer ignored".into(),
                };
                write!(
                    f,
                    "{} tones {collected_tones:?} posted {when}: {what}",
                    mask(to)
                )
            }
            SimEvent::CallbackSent {
                status, delivered, ..
            } => write!(
                f,
                "callback {status} {}",
                if *delivered {
                    "delivered"
                } else {
                    "not delivered"
                }
            ),
            SimEvent::ProtocolError { to, error, .. } => {
                write!(f, "{} PROTOCOL ERROR: {error}", mask(to))
            }
            SimEvent::CallEnded {
                to, status, reason, ..
            } => write!(f, "{} call ended {status} ({reason})", mask(to)),
        }
    }
}

/// Why the Routee API ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndCause {
    Hangup,
    Reject,
}

/// Why `PUT /voice/conversation/{messageId}` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndRefused {
    UnknownCall,
    WrongState(CallStatus),
}

pub(crate) struct CallEntry {
    pub record: SimCallRecord,
    pub end_tx: watch::Sender<Option<EndCause>>,
    /// Stops the call's tasks without a word (shutdown or `POST /sim/reset`).
    pub cancel: CancellationToken,
}

/// Mutable state behind the lock.
pub(crate) struct State {
    pub tokens: HashMap<String, Instant>,
    pub callees: Callees,
    pub initial_callees: Callees,
    pub faults: FaultState,
    /// The failures served so far (kept across `set_faults`, cleared by reset).
    pub injected: InjectedFaults,
    pub attempts: HashMap<String, u32>,
    /// How `collectedTones` reads on calls placed from now on.
    pub tones: ToneReading,
    /// Each `PLAY` URL fetched: its length in seconds, or why it cannot be played.
    pub audio: HashMap<String, Result<f64, String>>,
    pub calls: Vec<CallEntry>,
    pub by_message_id: HashMap<String, usize>,
}

/// What every handler and call task shares.
pub(crate) struct Shared {
    pub clock: Clock,
    pub app_id: String,
    pub app_secret: String,
    pub event_url_timeout: Duration,
    pub http: reqwest::Client,
    pub events: broadcast::Sender<SimEvent>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(
        clock: Clock,
        app_id: String,
        app_secret: String,
        event_url_timeout: Duration,
        http: reqwest::Client,
        callees: Callees,
        faults: Faults,
    ) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            clock,
            app_id,
            app_secret,
            event_url_timeout,
            http,
            events,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            state: Mutex::new(State {
                tokens: HashMap::new(),
                initial_callees: callees.clone(),
                callees,
                faults: FaultState::new(faults),
                injected: InjectedFaults::default(),
                attempts: HashMap::new(),
                tones: ToneReading::default(),
                audio: HashMap::new(),
                calls: Vec::new(),
                by_message_id: HashMap::new(),
            }),
        }
    }

    /// The state. A panic while the lock was held cannot leave it half-written in
    /// a way that matters to a simulator, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn emit(&self, event: SimEvent) {
        // No subscriber is fine: the timeline is optional.
        let _ = self.events.send(event);
    }

    /// Runs `f` on one call's record (no-op when the call is unknown).
    pub fn with_record<R>(
        &self,
        message_id: &str,
        f: impl FnOnce(&mut SimCallRecord) -> R,
    ) -> Option<R> {
        let mut state = self.lock();
        let index = *state.by_message_id.get(message_id)?;
        state.calls.get_mut(index).map(|c| f(&mut c.record))
    }

    /// Moves a call to `status`. A non-final move is refused once the API ended the
    /// call (checked under the lock the API handler takes), so a reject accepted
    /// while ringing can never be followed by `InProgress`.
    pub fn set_status(&self, message_id: &str, status: &CallStatus) -> Result<(), EndCause> {
        let mut state = self.lock();
        let Some(index) = state.by_message_id.get(message_id).copied() else {
            return Ok(());
        };
        let Some(entry) = state.calls.get_mut(index) else {
            return Ok(());
        };
        if !status.is_final()
            && let Some(cause) = *entry.end_tx.borrow()
        {
            return Err(cause);
        }
        entry.record.status = status.clone();
        entry.record.statuses.push(StatusChange {
            status: status.clone(),
            at: now_rfc3339(),
        });
        Ok(())
    }

    /// Applies `PUT /voice/conversation/{messageId}`: hangup only while
    /// `InProgress`, reject only while `Initiated` or `Ringing` (reference §6.2).
    pub fn end_call(&self, message_id: &str, action: CallAction) -> Result<(), EndRefused> {
        let mut state = self.lock();
        let index = *state
            .by_message_id
            .get(message_id)
            .ok_or(EndRefused::UnknownCall)?;
        let entry = state.calls.get_mut(index).ok_or(EndRefused::UnknownCall)?;
        let status = &entry.record.status;
        let allowed = match action {
            CallAction::Hangup => *status == CallStatus::InProgress,
            CallAction::Reject => {
                matches!(status, CallStatus::Initiated | CallStatus::Ringing)
            }
        };
        if !allowed || entry.end_tx.borrow().is_some() {
            return Err(EndRefused::WrongState(status.clone()));
        }
        entry.end_tx.send_replace(Some(match action {
            CallAction::Hangup => EndCause::Hangup,
            CallAction::Reject => EndCause::Reject,
        }));
        Ok(())
    }

    /// Whether `token` was issued here and is still valid.
    pub fn token_valid(&self, token: &str) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        state.tokens.retain(|_, expires| *expires > now);
        state.tokens.contains_key(token)
    }

    pub fn records(&self) -> Vec<SimCallRecord> {
        self.lock().calls.iter().map(|c| c.record.clone()).collect()
    }

    /// The records of one conversation.
    pub fn conversation(&self, tracking_id: &str) -> Vec<SimCallRecord> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.record.conversation_tracking_id == tracking_id)
            .map(|c| c.record.clone())
            .collect()
    }

    /// Forgets every call and attempt counter, clears faults and restores the
    /// callees the simulator started with. Issued tokens stay valid so that a
    /// connected gateway is not logged out by a test reset. Calls still running
    /// stop silently: no more callbacks or eventUrl POSTs from them.
    pub fn reset(&self) {
        let mut state = self.lock();
        for call in &state.calls {
            call.cancel.cancel();
        }
        state.calls.clear();
        state.by_message_id.clear();
        state.attempts.clear();
        state.callees = state.initial_callees.clone();
        state.faults = FaultState::new(Faults::none());
        state.injected = InjectedFaults::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_scales_simulated_seconds() {
        let clock = Clock::new(0.5);
        assert_eq!(clock.secs(2.0), Duration::from_secs(1));
        assert_eq!(clock.secs(-1.0), Duration::ZERO);
        assert!((clock.simulated(Duration::from_secs(1)) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn far_deadlines_do_not_overflow() {
        assert!(deadline(Duration::MAX) > Instant::now());
    }
}
