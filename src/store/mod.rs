//! Where state lives: one interface, two implementations.
//!
//! - [`RedisStore`] (`REDIS_URL` set): durable, shared by every replica. Each state
//!   change of a callout is one Lua script on one slot (see [`keys`]).
//! - [`MemoryStore`] (the sandbox default): the same semantics in process memory,
//!   for a single replica with nothing to install.
//!
//! The engine never sees which one it has: [`Store`] dispatches with a `match`
//! (no trait objects, no boxing on the hot path). Both implementations run the
//! same escalation test suite.
//!
//! The data model is a document per callout (its state, attempts and conversation
//! context, with a version number), an append-only timeline per callout, and a few
//! indexes derived from the document on every commit: the timer (its
//! [`Callout::next_due`]), the deadline of its live call, its status.

mod conn;
pub mod keys;
mod memory;
mod redis;
pub mod target;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::memory::MemoryStore;
pub use self::redis::{RedisOptions, RedisStore};
use crate::domain::{
    Assistant, AssistantId, CallId, CallState, Callout, CalloutId, CalloutStatus, Conversation,
    Dialing, E164, Event, EventKind, PersonLimits, Schedule, ScheduleId, Script, Team, TeamId,
    Timestamp,
};

/// A value with the version it was read at (for compare-and-set).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub version: u64,
    pub value: T,
}

/// Result of a compare-and-set commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitResult {
    /// Written; the callout is now at `version`.
    Done { version: u64 },
    /// Someone else wrote first: reload, re-apply, try again.
    Conflict,
}

/// Gauges derived from the store (identical on every replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub active_callouts: u64,
    pub live_calls: u64,
}

/// What happened to a request to delete an assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Yes,
    NotFound,
    /// Running callouts use it (how many).
    InUse(u64),
}

/// A `POST /v1/callouts` made with an `Idempotency-Key`: the digest of its
/// body, and once answered the answer to replay to its retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotentRequest {
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<serde_json::Value>,
}

/// What happened to a request to save an assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Yes,
    /// Another assistant has this name.
    NameTaken,
}

/// What happened to a compare-and-set replacement of an assistant
/// ([`Store::replace_assistant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Yes,
    /// Another assistant has the new name.
    NameTaken,
    /// The stored assistant changed since it was read: read it again.
    Changed,
    NotFound,
}

/// A conversation-tools session of an assistant: what its last turn offered, so
/// the next `digits` are read exactly as a call would read them, on any replica.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolSession {
    /// Turns run so far (the placeholder eventUrl carries the next one).
    pub turn: u32,
    /// The menu, no-reply expectation and end of the last turn.
    pub conversation: Conversation,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
    /// A callout was to be created on an assistant that no longer exists.
    #[error("assistant {0} does not exist (any more)")]
    AssistantGone(AssistantId),
}

impl StoreError {
    /// Transient: worth answering 503 and letting the caller retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Redis(_))
    }
}

/// The indexes of a callout, derived from its document at commit time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexInfo {
    pub status: CalloutStatus,
    pub created: Timestamp,
    pub next_due: Option<Timestamp>,
    pub live_deadline: Option<Timestamp>,
    /// Set once the callout is final: it expires after the retention period.
    pub expires_in: Option<Duration>,
    pub assistant: Option<AssistantId>,
}

impl IndexInfo {
    pub fn of(c: &Callout, retention: Duration) -> Self {
        Self {
            status: c.status,
            created: c.created_at,
            next_due: c.next_due(),
            live_deadline: c.live_call_deadline(),
            // Kept while a notification is still being retried.
            expires_in: (c.status.is_final() && c.next_due().is_none()).then_some(retention),
            assistant: match &c.script {
                Script::Assistant { id } => Some(*id),
                Script::Template { .. } => None,
            },
        }
    }
}

/// A commit whose loss in a failover would cost most: a callout just created (the
/// dispatcher was answered 201 and would find it gone), a callee's decision, a call
/// about to be sent (losing `Sending` would let another replica send it again) or
/// just placed, and a callout reaching its end. The Redis store has such commits
/// acknowledged by a replica (`WAIT`) before it answers.
pub(crate) fn needs_replicas(callout: &Callout, events: &[Event]) -> bool {
    let sending = callout
        .attempts
        .iter()
        .any(|a| matches!(a.state, CallState::Dialing(Dialing::Sending { .. })));
    sending
        || events.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::CalloutCreated
                    | EventKind::Decided { .. }
                    | EventKind::CallPlaced
                    | EventKind::CalloutAccepted
                    | EventKind::CalloutExhausted
                    | EventKind::CalloutCancelled
                    | EventKind::CalloutFailed { .. }
            )
        })
}

/// The store in use.
#[derive(Clone, Debug)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Memory($s) => $e,
            Store::Redis($s) => $e,
        }
    };
}

impl Store {
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Reachable and answering.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Stores a new callout (version 1) with its first events.
    ///
    /// A callout on an assistant first records its use of the assistant, in one
    /// step with checking that the assistant exists ([`StoreError::AssistantGone`]
    /// if not); deleting an assistant checks those records in the same step, so a
    /// creation racing a deletion either blocks it or is refused by it.
    pub async fn insert(&self, callout: &Callout, events: &[Event]) -> Result<u64, StoreError> {
        let assistant = IndexInfo::of(callout, Duration::ZERO).assistant;
        if let (Store::Redis(s), Some(a)) = (self, assistant) {
            s.use_assistant(a, callout.id).await?;
        }
        // The memory store checks the assistant inside its commit (one mutex).
        let inserted = match self.commit(callout, 0, events).await {
            Ok(CommitResult::Done { version }) => Ok(version),
            Ok(CommitResult::Conflict) => Err(StoreError::Refused(format!(
                "callout {} already exists",
                callout.id
            ))),
            Err(e) => Err(e),
        };
        if inserted.is_err()
            && let (Store::Redis(s), Some(a)) = (self, assistant)
        {
            s.release_assistant(a, callout.id).await;
        }
        inserted
    }

    pub async fn load(&self, id: CalloutId) -> Result<Option<Versioned<Callout>>, StoreError> {
        dispatch!(self, s => s.load(id).await)
    }

    /// Writes `callout` if it is still at `expected` (0: must not exist), appending
    /// `events` and updating its timer and indexes, all in one atomic step.
    pub async fn commit(
        &self,
        callout: &Callout,
        expected: u64,
        events: &[Event],
    ) -> Result<CommitResult, StoreError> {
        dispatch!(self, s => s.commit(callout, expected, events).await)
    }

    /// The whole timeline, oldest first.
    pub async fn events(&self, id: CalloutId) -> Result<Vec<Event>, StoreError> {
        dispatch!(self, s => s.events(id).await)
    }

    /// The timeline from index `from` on (0 is the first event), oldest first:
    /// what a stream that has seen `from` events has not. Empty when there is
    /// nothing new, or no such callout.
    pub async fn events_since(&self, id: CalloutId, from: usize) -> Result<Vec<Event>, StoreError> {
        dispatch!(self, s => s.events_since(id, from).await)
    }

    /// Newest first, optionally by status, starting after the callout `before`.
    pub async fn list(
        &self,
        status: Option<CalloutStatus>,
        limit: usize,
        before: Option<CalloutId>,
    ) -> Result<Vec<Callout>, StoreError> {
        dispatch!(self, s => s.list(status, limit, before).await)
    }

    /// Records every calling callout on an assistant in that assistant's set
    /// of users (Redis only), for callouts created before the sets existed (an
    /// upgrade from per-shard counts). Idempotent; a callout that ends
    /// meanwhile is dropped from the set when a deletion repairs it.
    pub async fn backfill_assistant_users(&self) -> Result<usize, StoreError> {
        const PAGE: usize = 500;
        let Store::Redis(s) = self else {
            return Ok(0);
        };
        let (mut recorded, mut before) = (0, None);
        loop {
            let page = self
                .list(Some(CalloutStatus::Calling), PAGE, before)
                .await?;
            for c in &page {
                if let Script::Assistant { id } = c.script {
                    s.record_assistant_user(id, c.id).await?;
                    recorded += 1;
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => before = Some(last.id),
                _ => return Ok(recorded),
            }
        }
    }

    /// Claims up to `max` callouts whose timer is due at `now`, leasing each for
    /// `lease` (exactly one replica gets each). Returns ids with their due times.
    pub async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<(CalloutId, Timestamp)>, StoreError> {
        dispatch!(self, s => s.claim_due(now, lease, max).await)
    }

    /// Sets a claimed timer back to the callout's next due time if the callout is
    /// still at `version`.
    pub async fn release(
        &self,
        id: CalloutId,
        version: u64,
        next_due: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.release(id, version, next_due).await)
    }

    /// Drops the index entries of a callout that no longer exists (expired).
    pub async fn forget(&self, id: CalloutId) -> Result<(), StoreError> {
        dispatch!(self, s => s.forget(id).await)
    }

    /// Callouts whose live call is past its deadline.
    pub async fn overdue_calls(
        &self,
        now: Timestamp,
        max: usize,
    ) -> Result<Vec<CalloutId>, StoreError> {
        dispatch!(self, s => s.overdue_calls(now, max).await)
    }

    pub async fn counts(&self) -> Result<Counts, StoreError> {
        dispatch!(self, s => s.counts().await)
    }

    /// Removes what the retention period has expired. Returns how many callouts.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge_expired(now).await)
    }

    /// Takes or renews the named lock for `holder`; true when held.
    pub async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.try_lock(name, holder, ttl).await)
    }

    /// Reserves the next outbound-call slot of the shared rate limit; returns how
    /// long to wait for it.
    pub async fn reserve_call_slot(&self, interval: Duration) -> Result<Duration, StoreError> {
        dispatch!(self, s => s.reserve_call_slot(interval).await)
    }

    /// Counts call `call` to `phone` against the per-person limits, across every
    /// callout and replica, if both windows have room: `None`. Otherwise nothing
    /// is counted and the answer is when the call may be placed. A call already
    /// counted (a placement tried again) is not counted twice.
    pub async fn reserve_person_call(
        &self,
        phone: &E164,
        call: CallId,
        limits: PersonLimits,
    ) -> Result<Option<Timestamp>, StoreError> {
        if limits.is_off() {
            return Ok(None);
        }
        dispatch!(self, s => s.reserve_person_call(phone, call, limits).await)
    }

    /// Creates or replaces an assistant (names are unique).
    pub async fn save_assistant(&self, assistant: &Assistant) -> Result<Saved, StoreError> {
        dispatch!(self, s => s.save_assistant(assistant).await)
    }

    pub async fn assistant(&self, id: AssistantId) -> Result<Option<Assistant>, StoreError> {
        dispatch!(self, s => s.assistant(id).await)
    }

    pub async fn assistant_by_name(&self, name: &str) -> Result<Option<Assistant>, StoreError> {
        dispatch!(self, s => s.assistant_by_name(name).await)
    }

    /// Every registered assistant, oldest first (then by name).
    pub async fn assistants(&self) -> Result<Vec<Assistant>, StoreError> {
        let mut all = dispatch!(self, s => s.assistants().await)?;
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(all)
    }

    /// Replaces an assistant if its stored `updated_at` is still `expected` (the
    /// version the caller read), so concurrent updates (an admin's PATCH, a
    /// replica re-encrypting the key) never overwrite each other. Names stay unique.
    pub async fn replace_assistant(
        &self,
        assistant: &Assistant,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        dispatch!(self, s => s.replace_assistant(assistant, expected).await)
    }

    /// Deletes an assistant unless running callouts use it.
    pub async fn delete_assistant(&self, id: AssistantId) -> Result<Deleted, StoreError> {
        dispatch!(self, s => s.delete_assistant(id).await)
    }

    /// Creates a team (names are unique).
    pub async fn save_team(&self, team: &Team) -> Result<Saved, StoreError> {
        dispatch!(self, s => s.save_team(team).await)
    }

    pub async fn team(&self, id: TeamId) -> Result<Option<Team>, StoreError> {
        dispatch!(self, s => s.team(id).await)
    }

    pub async fn team_by_name(&self, name: &str) -> Result<Option<Team>, StoreError> {
        dispatch!(self, s => s.team_by_name(name).await)
    }

    /// Every team, by name.
    pub async fn teams(&self) -> Result<Vec<Team>, StoreError> {
        let mut all = dispatch!(self, s => s.teams().await)?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Replaces a team if its stored `updated_at` is still `expected`, so two
    /// concurrent changes never overwrite each other unseen. Names stay unique.
    pub async fn replace_team(
        &self,
        team: &Team,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        dispatch!(self, s => s.replace_team(team, expected).await)
    }

    /// Deletes a team; false when there was none. Callouts made from it keep
    /// their copy of its contacts.
    pub async fn delete_team(&self, id: TeamId) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_team(id).await)
    }

    /// Creates a schedule (`expected` none: it must not exist) or replaces it
    /// if its stored `updated_at` is still `expected`; its place in the due
    /// index ([`Schedule::due`]) is set in the same step.
    pub async fn save_schedule(
        &self,
        schedule: &Schedule,
        expected: Option<Timestamp>,
    ) -> Result<Replaced, StoreError> {
        dispatch!(self, s => s.save_schedule(schedule, expected).await)
    }

    pub async fn schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        dispatch!(self, s => s.schedule(id).await)
    }

    /// Every schedule, oldest first.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        let mut all = dispatch!(self, s => s.schedules().await)?;
        all.sort_by_key(|s| (s.created_at, s.id));
        Ok(all)
    }

    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_schedule(id).await)
    }

    /// Claims up to `max` schedules due at `now`, leasing each for `lease`
    /// (exactly one replica gets each until the lease ends; saving the
    /// schedule sets its next due time).
    pub async fn claim_due_schedules(
        &self,
        now: Timestamp,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ScheduleId>, StoreError> {
        dispatch!(self, s => s.claim_due_schedules(now, lease, max).await)
    }

    /// Counts one more call placed on UTC day `day` (days since the epoch),
    /// across all replicas; returns the day's count including it.
    pub async fn count_call_today(&self, day: i64, by: Option<&str>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.count_call_today(day, by).await)
    }

    /// The calls placed on UTC day `day` (all, or for the API key `by`), without
    /// counting one more.
    pub async fn calls_today(&self, day: i64, by: Option<&str>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.calls_today(day, by).await)
    }

    /// Claims the `Idempotency-Key` record `key` (a digest) for `record` for
    /// `ttl`, unless one is already stored: then it is returned and nothing
    /// changes. Atomic: of two requests racing for one key, one claims it.
    pub async fn claim_idempotency_key(
        &self,
        key: &str,
        record: &IdempotentRequest,
        ttl: Duration,
    ) -> Result<Option<IdempotentRequest>, StoreError> {
        dispatch!(self, s => s.claim_idempotency_key(key, record, ttl).await)
    }

    /// Stores the answered record of an `Idempotency-Key` for `ttl`.
    pub async fn save_idempotency_key(
        &self,
        key: &str,
        record: &IdempotentRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_idempotency_key(key, record, ttl).await)
    }

    /// Drops an `Idempotency-Key` record (its request failed: a retry may run).
    pub async fn forget_idempotency_key(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.forget_idempotency_key(key).await)
    }

    /// The conversation-tools session `session` of an assistant, unless expired.
    /// A converted audio clip kept for every replica (Redis only: the memory
    /// store is one process, whose own cache in [`crate::audio`] serves it).
    pub async fn audio_clip(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Memory(_) => Ok(None),
            Store::Redis(s) => s.audio_clip(name).await,
        }
    }

    /// Keeps a converted audio clip for `ttl` (Redis only, see [`Self::audio_clip`]).
    pub async fn save_audio_clip(
        &self,
        name: &str,
        wav: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(s) => s.save_audio_clip(name, wav, ttl).await,
        }
    }

    pub async fn tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
    ) -> Result<Option<ToolSession>, StoreError> {
        dispatch!(self, s => s.tool_session(assistant, session).await)
    }

    /// Stores a conversation-tools session; it expires `ttl` after its last turn.
    pub async fn save_tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
        value: &ToolSession,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_tool_session(assistant, session, value, ttl).await)
    }

    pub async fn delete_tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.delete_tool_session(assistant, session).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallId, Contact, Decision, NewCallout, Policy, Timing};

    fn callout() -> Callout {
        let input = NewCallout {
            name: "Ticket".into(),
            script: Script::Template {
                name: "ticket-escalation".into(),
            },
            variables: Default::default(),
            contacts: vec![Contact {
                name: "A".into(),
                phone: "+306900000001".parse().expect("phone"),
                language: None,
            }],
            policy: Policy::default(),
            notify_url: None,
        };
        Callout::create(CalloutId::new(), input, Timestamp::now()).0
    }

    #[test]
    fn a_creation_a_call_about_to_be_sent_and_a_decision_need_a_replica_and_a_ringing_status_does_not()
     {
        let timing = Timing::default();
        let mut c = callout();
        let now = Timestamp::now().plus_secs(1);
        assert!(!needs_replicas(&c, &[]), "a new callout");
        let call = CallId::new();
        c.on_timer(now, &timing, call);
        c.begin_preparing(call, 7, now, &timing);
        assert!(!needs_replicas(&c, &[]), "preparing: nothing sent yet");
        c.begin_sending(call, 7, now, &timing);
        assert!(needs_replicas(&c, &[]), "the call may leave next");
        let ringing = Event::new(
            now,
            EventKind::CallStatus {
                status: "Ringing".into(),
            },
        );
        let decided = Event::new(
            now,
            EventKind::Decided {
                decision: Decision::Accepted,
            },
        );
        let plain = callout();
        assert!(needs_replicas(
            &plain,
            &[Event::new(now, EventKind::CalloutCreated)]
        ));
        assert!(!needs_replicas(&plain, &[ringing]));
        assert!(needs_replicas(&plain, &[decided]));
        assert!(needs_replicas(
            &plain,
            &[Event::new(now, EventKind::CalloutCancelled)]
        ));
    }
}
