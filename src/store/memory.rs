//! The embedded in-memory store: the sandbox default. Same semantics as Redis
//! (versioned compare-and-set, leased timers, indexes derived on commit) behind a
//! mutex, for one replica; nothing survives a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{
    CommitResult, Counts, Deleted, IdempotentRequest, IndexInfo, Replaced, Saved, StoreError,
    ToolSession, Versioned,
};
use crate::domain::{
    Assistant, AssistantId, CallId, Callout, CalloutId, CalloutStatus, E164, Event, PersonLimits,
    Schedule, ScheduleId, Team, TeamId, Timestamp,
};

#[derive(Debug)]
struct Entry {
    version: u64,
    callout: Callout,
    events: Vec<Event>,
    index: IndexInfo,
    expires_at: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Mem {
    callouts: HashMap<CalloutId, Entry>,
    /// (due, id), plus the reverse map to move a timer.
    timers: BTreeSet<(Timestamp, CalloutId)>,
    timer_of: HashMap<CalloutId, Timestamp>,
    assistants: BTreeMap<AssistantId, Assistant>,
    teams: BTreeMap<TeamId, Team>,
    /// Schedules, with when each is next due (or leased until).
    schedules: BTreeMap<ScheduleId, (Schedule, Option<Timestamp>)>,
    locks: HashMap<String, (String, Timestamp)>,
    next_call_slot: Timestamp,
    /// Conversation-tools sessions with their expiry.
    tool_sessions: HashMap<(AssistantId, String), (Timestamp, ToolSession)>,
    /// Calls placed per UTC day.
    /// Calls placed per UTC day, in all (`None`) and per API key fingerprint.
    calls_per_day: HashMap<(i64, Option<String>), u64>,
    /// `Idempotency-Key` records with their expiry.
    idempotency: HashMap<String, (Timestamp, IdempotentRequest)>,
    /// The calls of the last hour to each number (for the per-person limits).
    person_calls: HashMap<String, Vec<(Timestamp, CallId)>>,
}

impl Mem {
    fn set_timer(&mut self, id: CalloutId, due: Option<Timestamp>) {
        if let Some(old) = self.timer_of.remove(&id) {
            self.timers.remove(&(old, id));
        }
        if let Some(due) = due {
            self.timers.insert((due, id));
            self.timer_of.insert(id, due);
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Mem>>,
    retention: Duration,
}

impl MemoryStore {
    pub fn new(retention: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Mem::default())),
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mem> {
        // A panic while holding the lock cannot leave a half-written entry (every
        // mutation below is a few infallible map operations), so keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    pub(super) async fn load(
        &self,
        id: CalloutId,
    ) -> Result<Option<Versioned<Callout>>, StoreError> {
        let m = self.lock();
        Ok(m.callouts.get(&id).map(|e| Versioned {
            version: e.version,
            value: e.callout.clone(),
        }))
    }

    pub(super) async fn commit(
        &self,
        callout: &Callout,
        expected: u64,
        events: &[Event],
    ) -> Result<CommitResult, StoreError> {
        let mut m = self.lock();
        let current = m.callouts.get(&callout.id).map_or(0, |e| e.version);
        if current != expected {
            return Ok(CommitResult::Conflict);
        }
        let index = IndexInfo::of(callout, self.retention);
        // Under the same lock as `delete_assistant`: a new callout never lands
        // on an assistant deleted after the API looked it up.
        if expected == 0
            && let Some(a) = index.assistant
            && !m.assistants.contains_key(&a)
        {
            return Err(StoreError::AssistantGone(a));
        }
        let now = Timestamp::now();
        let expires_at = index.expires_in.map(|d| now.plus(d));
        m.set_timer(callout.id, index.next_due);
        let entry = m.callouts.entry(callout.id).or_insert_with(|| Entry {
            version: 0,
            callout: callout.clone(),
            events: Vec::new(),
            index: index.clone(),
            expires_at: None,
        });
        entry.version = expected + 1;
        entry.callout = callout.clone();
        entry.events.extend_from_slice(events);
        entry.index = index;
        entry.expires_at = expires_at;
        Ok(CommitResult::Done {
            version: expected + 1,
        })
    }

    pub(super) async fn events(&self, id: CalloutId) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .lock()
            .callouts
            .get(&id)
            .map(|e| e.events.clone())
            .unwrap_or_default())
    }

    pub(super) async fn events_since(
        &self,
        id: CalloutId,
        from: usize,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .lock()
            .callouts
            .get(&id)
            .and_then(|e| e.events.get(from..))
            .map(<[Event]>::to_vec)
            .unwrap_or_default())
    }

    pub(super) async fn list(
        &self,
        status: Option<CalloutStatus>,
        limit: usize,
        before: Option<CalloutId>,
    ) -> Result<Vec<Callout>, StoreError> {
        let m = self.lock();
        let mut found: Vec<&Entry> = m
            .callouts
            .values()
            .filter(|e| status.is_none_or(|s| e.index.status == s))
            .filter(|e| before.is_none_or(|b| e.callout.id < b))
            .collect();
        // Callout ids are time-ordered (UUIDv7): newest first is descending id.
        found.sort_by_key(|e| std::cmp::Reverse(e.callout.id));
        Ok(found
            .into_iter()
            .take(limit)
            .map(|e| e.callout.clone())
            .collect())
    }

    pub(super) async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<(CalloutId, Timestamp)>, StoreError> {
        let mut m = self.lock();
        let due: Vec<(Timestamp, CalloutId)> = m
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(max)
            .copied()
            .collect();
        for (_, id) in &due {
            m.set_timer(*id, Some(now.plus(lease)));
        }
        Ok(due.into_iter().map(|(t, id)| (id, t)).collect())
    }

    pub(super) async fn release(
        &self,
        id: CalloutId,
        version: u64,
        next_due: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut m = self.lock();
        if m.callouts.get(&id).is_some_and(|e| e.version == version) {
            m.set_timer(id, next_due);
        }
        Ok(())
    }

    pub(super) async fn forget(&self, id: CalloutId) -> Result<(), StoreError> {
        let mut m = self.lock();
        if !m.callouts.contains_key(&id) {
            m.set_timer(id, None);
        }
        Ok(())
    }

    pub(super) async fn overdue_calls(
        &self,
        now: Timestamp,
        max: usize,
    ) -> Result<Vec<CalloutId>, StoreError> {
        let m = self.lock();
        Ok(m.callouts
            .values()
            .filter(|e| e.index.live_deadline.is_some_and(|d| d <= now))
            .map(|e| e.callout.id)
            .take(max)
            .collect())
    }

    pub(super) async fn counts(&self) -> Result<Counts, StoreError> {
        let m = self.lock();
        Ok(Counts {
            active_callouts: m
                .callouts
                .values()
                .filter(|e| e.index.status == CalloutStatus::Calling)
                .count() as u64,
            live_calls: m
                .callouts
                .values()
                .filter(|e| e.index.live_deadline.is_some())
                .count() as u64,
        })
    }

    pub(super) async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let expired: Vec<CalloutId> = m
            .callouts
            .values()
            .filter(|e| e.expires_at.is_some_and(|t| t <= now))
            .map(|e| e.callout.id)
            .collect();
        for id in &expired {
            m.callouts.remove(id);
            m.set_timer(*id, None);
        }
        Ok(expired.len() as u64)
    }

    pub(super) async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut m = self.lock();
        let now = Timestamp::now();
        let free = match m.locks.get(name) {
            Some((h, until)) => h == holder || *until <= now,
            None => true,
        };
        if free {
            m.locks
                .insert(name.to_owned(), (holder.to_owned(), now.plus(ttl)));
        }
        Ok(free)
    }

    pub(super) async fn reserve_person_call(
        &self,
        phone: &E164,
        call: CallId,
        limits: PersonLimits,
    ) -> Result<Option<Timestamp>, StoreError> {
        let mut m = self.lock();
        let now = Timestamp::now();
        let hour_ago = now.0 - PersonLimits::LONG_WINDOW_MS;
        m.person_calls.retain(|_, calls| {
            calls.retain(|(t, _)| t.0 > hour_ago);
            !calls.is_empty()
        });
        let calls = m.person_calls.entry(phone.to_string()).or_default();
        if calls.iter().any(|(_, c)| *c == call) {
            return Ok(None);
        }
        let times: Vec<Timestamp> = calls.iter().map(|(t, _)| *t).collect();
        let until = limits.next_allowed(&times, now);
        if until.is_none() {
            calls.push((now, call));
        }
        Ok(until)
    }

    pub(super) async fn reserve_call_slot(
        &self,
        interval: Duration,
    ) -> Result<Duration, StoreError> {
        let mut m = self.lock();
        let now = Timestamp::now();
        let slot = m.next_call_slot.max(now);
        m.next_call_slot = slot.plus(interval);
        Ok(slot.since(now))
    }

    pub(super) async fn save_assistant(&self, assistant: &Assistant) -> Result<Saved, StoreError> {
        let mut m = self.lock();
        let taken = m
            .assistants
            .values()
            .any(|a| a.name == assistant.name && a.id != assistant.id);
        if taken {
            return Ok(Saved::NameTaken);
        }
        m.assistants.insert(assistant.id, assistant.clone());
        Ok(Saved::Yes)
    }

    pub(super) async fn save_team(&self, team: &Team) -> Result<Saved, StoreError> {
        let mut m = self.lock();
        if m.teams
            .values()
            .any(|t| t.name == team.name && t.id != team.id)
        {
            return Ok(Saved::NameTaken);
        }
        m.teams.insert(team.id, team.clone());
        Ok(Saved::Yes)
    }

    pub(super) async fn team(&self, id: TeamId) -> Result<Option<Team>, StoreError> {
        Ok(self.lock().teams.get(&id).cloned())
    }

    pub(super) async fn team_by_name(&self, name: &str) -> Result<Option<Team>, StoreError> {
        Ok(self.lock().teams.values().find(|t| t.name == name).cloned())
    }

    pub(super) async fn teams(&self) -> Result<Vec<Team>, StoreError> {
        Ok(self.lock().teams.values().cloned().collect())
    }

    pub(super) async fn replace_team(
        &self,
        team: &Team,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let mut m = self.lock();
        match m.teams.get(&team.id) {
            None => return Ok(Replaced::NotFound),
            Some(current) if current.updated_at != expected => return Ok(Replaced::Changed),
            Some(_) => {}
        }
        if m.teams
            .values()
            .any(|t| t.name == team.name && t.id != team.id)
        {
            return Ok(Replaced::NameTaken);
        }
        m.teams.insert(team.id, team.clone());
        Ok(Replaced::Yes)
    }

    pub(super) async fn delete_team(&self, id: TeamId) -> Result<bool, StoreError> {
        Ok(self.lock().teams.remove(&id).is_some())
    }

    pub(super) async fn save_schedule(
        &self,
        schedule: &Schedule,
        expected: Option<Timestamp>,
    ) -> Result<Replaced, StoreError> {
        let mut m = self.lock();
        match (m.schedules.get(&schedule.id), expected) {
            (Some(_), None) => return Ok(Replaced::Changed),
            (None, Some(_)) => return Ok(Replaced::NotFound),
            (Some((current, _)), Some(e)) if current.updated_at != e => {
                return Ok(Replaced::Changed);
            }
            _ => {}
        }
        m.schedules
            .insert(schedule.id, (schedule.clone(), schedule.due()));
        Ok(Replaced::Yes)
    }

    pub(super) async fn schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        Ok(self.lock().schedules.get(&id).map(|(s, _)| s.clone()))
    }

    pub(super) async fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        Ok(self
            .lock()
            .schedules
            .values()
            .map(|(s, _)| s.clone())
            .collect())
    }

    pub(super) async fn delete_schedule(&self, id: ScheduleId) -> Result<bool, StoreError> {
        Ok(self.lock().schedules.remove(&id).is_some())
    }

    pub(super) async fn claim_due_schedules(
        &self,
        now: Timestamp,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ScheduleId>, StoreError> {
        let mut m = self.lock();
        let mut claimed = Vec::new();
        for (id, (_, due)) in &mut m.schedules {
            if claimed.len() < max && due.is_some_and(|d| d <= now) {
                *due = Some(now.plus(lease));
                claimed.push(*id);
            }
        }
        Ok(claimed)
    }

    pub(super) async fn assistant(&self, id: AssistantId) -> Result<Option<Assistant>, StoreError> {
        Ok(self.lock().assistants.get(&id).cloned())
    }

    pub(super) async fn assistant_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Assistant>, StoreError> {
        Ok(self
            .lock()
            .assistants
            .values()
            .find(|a| a.name == name)
            .cloned())
    }

    pub(super) async fn assistants(&self) -> Result<Vec<Assistant>, StoreError> {
        Ok(self.lock().assistants.values().cloned().collect())
    }

    pub(super) async fn replace_assistant(
        &self,
        assistant: &Assistant,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let mut m = self.lock();
        match m.assistants.get(&assistant.id) {
            None => return Ok(Replaced::NotFound),
            Some(current) if current.updated_at != expected => return Ok(Replaced::Changed),
            Some(_) => {}
        }
        let taken = m
            .assistants
            .values()
            .any(|a| a.name == assistant.name && a.id != assistant.id);
        if taken {
            return Ok(Replaced::NameTaken);
        }
        m.assistants.insert(assistant.id, assistant.clone());
        Ok(Replaced::Yes)
    }

    pub(super) async fn tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
    ) -> Result<Option<ToolSession>, StoreError> {
        let now = Timestamp::now();
        Ok(self
            .lock()
            .tool_sessions
            .get(&(assistant, session.to_owned()))
            .filter(|(expires, _)| *expires > now)
            .map(|(_, s)| s.clone()))
    }

    pub(super) async fn save_tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
        value: &ToolSession,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let mut m = self.lock();
        // Expired sessions go when a new one is written (there is no other reader).
        m.tool_sessions.retain(|_, (expires, _)| *expires > now);
        m.tool_sessions.insert(
            (assistant, session.to_owned()),
            (now.plus(ttl), value.clone()),
        );
        Ok(())
    }

    pub(super) async fn delete_tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
    ) -> Result<(), StoreError> {
        self.lock()
            .tool_sessions
            .remove(&(assistant, session.to_owned()));
        Ok(())
    }

    pub(super) async fn count_call_today(
        &self,
        day: i64,
        by: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut m = self.lock();
        m.calls_per_day.retain(|(d, _), _| *d >= day - 1);
        let n = m
            .calls_per_day
            .entry((day, by.map(str::to_owned)))
            .or_default();
        *n += 1;
        Ok(*n)
    }

    pub(super) async fn calls_today(&self, day: i64, by: Option<&str>) -> Result<u64, StoreError> {
        let m = self.lock();
        Ok(m.calls_per_day
            .get(&(day, by.map(str::to_owned)))
            .copied()
            .unwrap_or(0))
    }

    pub(super) async fn claim_idempotency_key(
        &self,
        digest: &str,
        record: &IdempotentRequest,
        ttl: Duration,
    ) -> Result<Option<IdempotentRequest>, StoreError> {
        let now = Timestamp::now();
        let mut m = self.lock();
        m.idempotency.retain(|_, (expires, _)| *expires > now);
        if let Some((_, found)) = m.idempotency.get(digest) {
            return Ok(Some(found.clone()));
        }
        m.idempotency
            .insert(digest.to_owned(), (now.plus(ttl), record.clone()));
        Ok(None)
    }

    pub(super) async fn save_idempotency_key(
        &self,
        digest: &str,
        record: &IdempotentRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        self.lock()
            .idempotency
            .insert(digest.to_owned(), (now.plus(ttl), record.clone()));
        Ok(())
    }

    pub(super) async fn forget_idempotency_key(&self, digest: &str) -> Result<(), StoreError> {
        self.lock().idempotency.remove(digest);
        Ok(())
    }

    pub(super) async fn delete_assistant(&self, id: AssistantId) -> Result<Deleted, StoreError> {
        let mut m = self.lock();
        if !m.assistants.contains_key(&id) {
            return Ok(Deleted::NotFound);
        }
        let in_use = m
            .callouts
            .values()
            .filter(|e| e.index.status == CalloutStatus::Calling && e.index.assistant == Some(id))
            .count() as u64;
        if in_use > 0 {
            return Ok(Deleted::InUse(in_use));
        }
        m.assistants.remove(&id);
        Ok(Deleted::Yes)
    }
}
