//! Every Redis key the gateway uses, built here and nowhere else.
//!
//! Callouts are spread over [`SHARDS`] shards. All keys of one callout, and the
//! indexes of its shard, carry the same hash tag `{sNN}`, so every state change of a
//! callout (its document, its timeline, its timer, its index entries) is ONE Lua
//! script on ONE slot: atomic on a single server and valid on Redis Cluster. The
//! shard of a callout is a hash of its id, so any replica finds it from the id.
//!
//! | key | type | TTL | written by | read by |
//! |---|---|---|---|---|
//! | `P:{sNN}:co:<id>` | hash `v` version, `d` callout JSON, `s` status, `w` last writer token | retention once final | `commit.lua` | API, webhooks, timers |
//! | `P:{sNN}:ev:<id>` | list of event JSON, oldest first | retention once final | `commit.lua` | `GET /v1/callouts/{id}`, `GET /v1/callouts/{id}/events` (from an index: the stream's resume point) |
//! | `P:{sNN}:timers` | zset id → due (ms) | none | `commit.lua`, `claim.lua` (lease), `release.lua` | timer loop |
//! | `P:{sNN}:live` | zset id → live call deadline (ms) | none | `commit.lua` | reconciliation job, active-calls gauge |
//! | `P:{sNN}:all` | zset id → created (ms) | trimmed by the retention job | `commit.lua` | list API |
//! | `P:{sNN}:st:<status>` | zset id → created (ms), one per callout status | trimmed by the retention job | `commit.lua` | list API with `status`, active-callouts gauge |
//! | `P:{assistants}` | hash id → assistant JSON (key encrypted) | none | assistants API | engine, assistants API |
//! | `P:{assistants}:names` | hash name → id | none | assistants API | name lookups |
//! | `P:{assistants}:using:<assistant id>` | set of the ids of callouts calling with it | none (members leave as their callout ends) | `use_assistant.lua` (creation), the store's commit (end), deletion (repair) | `delete_assistant.lua` |
//! | `P:{teams}` | hash id → team JSON (a saved call list) | none | teams API | teams API, callout creation (`team`) |
//! | `P:{teams}:names` | hash name → id | none | teams API | name lookups |
//! | `P:{schedules}` | hash id → schedule JSON (a stored callout request, its time or cron schedule, its latest firings) | none | schedules API, the schedule loop | schedules API, the schedule loop |
//! | `P:{schedules}:due` | zset id → next occurrence (ms); absent while paused or finished | none | `save_schedule.lua`, `claim.lua` (lease), `delete_schedule.lua` | the schedule loop (every replica) |
//! | `P:tool:<assistant id>:<session>` | string: JSON of a conversation-tools session (turn, last menu, no-reply expectation) | 24 h after its last turn | conversation tools | conversation tools (`digits` on any replica) |
//! | `P:audio:<name>` | string: a converted Voiceflow audio clip, 8 kHz mono WAV; `<name>` is `<16 hex of its SHA-256>.wav` | 24 h after its last conversion | audio conversion (a turn) | `GET /audio/{name}` on any replica |
//! | `P:lock:<job>` | string holder, `PX` ttl | ttl | periodic jobs | periodic jobs (one replica at a time) |
//! | `P:idem:<digest>` | string: JSON of an idempotent `POST /v1/callouts` (its body's digest, then its answer) | `IDEMPOTENCY_TTL_H` (a minute while the request runs) | `idempotency.lua`, the callouts API | the callouts API |
//! | `P:calls:day:<n>` | string: calls placed on UTC day `n` (days since 1970) | 48 h | `day_count.lua` (call placement) | call placement (`MAX_CALLS_PER_DAY`) |
//! | `P:calls:day:<n>:by:<fingerprint>` | string: calls placed on UTC day `n` for callouts of one API key | 48 h | `day_count.lua` (call placement) | call placement (`MAX_CALLS_PER_DAY_PER_KEY`) |
//! | `P:rate:calls` | string: next free slot (ms, Redis clock) | a few intervals | `rate.lua` | call placement (all replicas) |
//! | `P:person:<16 hex of SHA-256 of the number>` | zset call id → placed (ms, Redis clock): the calls of the last hour to one number | 1 h | `person_call.lua` (call placement) | call placement (per-person limits) |
//!
//! `P` is `REDIS_PREFIX` (default `ivr`; it may not contain `{` or `}`).
//!
//! # Redis Cluster
//!
//! A Lua script may only touch keys of one hash slot. [`Keys::script_calls`] lists
//! the keys every script is called with (for a callout of each shard), and
//! [`Keys::check_single_slot`] proves each list is on one slot; the store runs it
//! at startup, and the tests run it too. Multi-shard reads and the timer claim
//! are pipelines, sent one per server (see `conn.rs`).

use crate::domain::{AssistantId, CalloutId, CalloutStatus};

/// Number of shards. Fixed: changing it would orphan existing callouts.
pub const SHARDS: u16 = 16;

/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag (the
/// part between the first `{` and the next `}`, when not empty), mod 16384.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        rest.iter()
            .position(|b| *b == b'}')
            .filter(|close| *close > 0)
            .map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16384
}

/// The slot of every key of shard `shard`.
pub fn shard_slot(shard: u16) -> u16 {
    slot(&format!("{{s{shard:02}}}"))
}

/// Builds keys under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// The shard of a callout: FNV-1a of its id's bytes.
pub fn shard_of(id: CalloutId) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_uuid().as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(SHARDS)) as u16
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn tag(&self, shard: u16) -> String {
        format!("{}:{{s{shard:02}}}", self.prefix)
    }

    pub fn callout(&self, id: CalloutId) -> String {
        format!("{}:co:{id}", self.tag(shard_of(id)))
    }

    pub fn events(&self, id: CalloutId) -> String {
        format!("{}:ev:{id}", self.tag(shard_of(id)))
    }

    pub fn timers(&self, shard: u16) -> String {
        format!("{}:timers", self.tag(shard))
    }

    pub fn live(&self, shard: u16) -> String {
        format!("{}:live", self.tag(shard))
    }

    pub fn all(&self, shard: u16) -> String {
        format!("{}:all", self.tag(shard))
    }

    pub fn by_status(&self, shard: u16, status: CalloutStatus) -> String {
        format!("{}:st:{}", self.tag(shard), status.as_str())
    }

    /// The callouts calling with an assistant: in the assistants' slot, so
    /// that deleting it and checking it is unused are one script.
    pub fn assistant_users(&self, id: AssistantId) -> String {
        format!("{}:{{assistants}}:using:{id}", self.prefix)
    }

    pub fn assistants(&self) -> String {
        format!("{}:{{assistants}}", self.prefix)
    }

    pub fn assistant_names(&self) -> String {
        format!("{}:{{assistants}}:names", self.prefix)
    }

    pub fn teams(&self) -> String {
        format!("{}:{{teams}}", self.prefix)
    }

    pub fn team_names(&self) -> String {
        format!("{}:{{teams}}:names", self.prefix)
    }

    pub fn schedules(&self) -> String {
        format!("{}:{{schedules}}", self.prefix)
    }

    pub fn schedules_due(&self) -> String {
        format!("{}:{{schedules}}:due", self.prefix)
    }

    /// `save_schedule.lua`, `delete_schedule.lua`.
    pub fn schedule_keys(&self) -> Vec<String> {
        vec![self.schedules(), self.schedules_due()]
    }

    /// A conversation-tools session. `session` is validated at the edge
    /// (`[A-Za-z0-9_-]{1,64}`), so it cannot contain `:` or a hash tag.
    pub fn tool_session(&self, assistant: AssistantId, session: &str) -> String {
        format!("{}:tool:{assistant}:{session}", self.prefix)
    }

    /// A converted audio clip. `name` is checked by [`crate::audio::is_clip_name`]
    /// before it reaches here (hex digits and `.wav`).
    pub fn audio_clip(&self, name: &str) -> String {
        format!("{}:audio:{name}", self.prefix)
    }

    pub fn lock(&self, job: &str) -> String {
        format!("{}:lock:{job}", self.prefix)
    }

    /// An `Idempotency-Key` record. `digest` is the hex SHA-256 of the API key's
    /// fingerprint and the client's key (computed at the edge), so no client
    /// text reaches a key name.
    pub fn idempotency(&self, digest: &str) -> String {
        format!("{}:idem:{digest}", self.prefix)
    }

    /// The calls placed on UTC day `day` (days since the Unix epoch).
    pub fn calls_on_day(&self, day: i64) -> String {
        format!("{}:calls:day:{day}", self.prefix)
    }

    /// The calls placed on UTC day `day` for callouts of the API key whose
    /// fingerprint is `by` (`key-` and hex digits, never client text).
    pub fn calls_on_day_by(&self, day: i64, by: &str) -> String {
        format!("{}:calls:day:{day}:by:{by}", self.prefix)
    }

    /// The recent calls to one phone number (per-person limits); the number is
    /// named by a digest, so no phone number is in a key.
    pub fn person_calls(&self, phone: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(phone.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:person:{hex}", self.prefix)
    }

    pub fn call_rate(&self) -> String {
        format!("{}:rate:calls", self.prefix)
    }

    // ----- the keys each script is called with (KEYS[1..]) ------------------

    /// `commit.lua`: the document, timeline and every index of its shard.
    pub fn commit_keys(&self, id: CalloutId) -> Vec<String> {
        let shard = shard_of(id);
        let mut keys = vec![
            self.callout(id),
            self.events(id),
            self.timers(shard),
            self.live(shard),
            self.all(shard),
        ];
        keys.extend(CalloutStatus::ALL.iter().map(|s| self.by_status(shard, *s)));
        keys
    }

    /// `release.lua`.
    pub fn release_keys(&self, id: CalloutId) -> Vec<String> {
        vec![self.callout(id), self.timers(shard_of(id))]
    }

    /// `save_assistant.lua`, `replace_assistant.lua`.
    pub fn assistant_keys(&self) -> Vec<String> {
        vec![self.assistants(), self.assistant_names()]
    }

    /// `delete_assistant.lua`.
    pub fn delete_assistant_keys(&self, id: AssistantId) -> Vec<String> {
        vec![
            self.assistants(),
            self.assistant_names(),
            self.assistant_users(id),
        ]
    }

    /// `save_assistant.lua` and `replace_assistant.lua` saving a team (the
    /// scripts keep any named documents' names unique), and `delete_team.lua`.
    pub fn team_keys(&self) -> Vec<String> {
        vec![self.teams(), self.team_names()]
    }

    /// `use_assistant.lua`.
    pub fn use_assistant_keys(&self, id: AssistantId) -> Vec<String> {
        vec![self.assistants(), self.assistant_users(id)]
    }

    /// Every script with the keys it is called with, for a callout of each shard
    /// and each lock the jobs take.
    pub fn script_calls(&self) -> Vec<(&'static str, Vec<String>)> {
        let mut calls = Vec::new();
        let mut seen = [false; SHARDS as usize];
        while seen.iter().any(|s| !s) {
            let id = CalloutId::new();
            let shard = shard_of(id);
            if std::mem::replace(&mut seen[usize::from(shard)], true) {
                continue;
            }
            calls.push(("commit.lua", self.commit_keys(id)));
            calls.push(("release.lua", self.release_keys(id)));
            calls.push(("claim.lua", vec![self.timers(shard)]));
        }
        calls.push(("lock.lua", vec![self.lock("any-job")]));
        calls.push(("rate.lua", vec![self.call_rate()]));
        calls.push(("person_call.lua", vec![self.person_calls("+306900000001")]));
        calls.push(("idempotency.lua", vec![self.idempotency("0")]));
        calls.push(("day_count.lua", vec![self.calls_on_day(0)]));
        calls.push(("day_count.lua", vec![self.calls_on_day_by(0, "key-0")]));
        for script in ["save_assistant.lua", "replace_assistant.lua"] {
            calls.push((script, self.assistant_keys()));
        }
        let assistant = AssistantId::new();
        calls.push((
            "delete_assistant.lua",
            self.delete_assistant_keys(assistant),
        ));
        calls.push(("use_assistant.lua", self.use_assistant_keys(assistant)));
        for script in [
            "save_assistant.lua",
            "replace_assistant.lua",
            "delete_team.lua",
        ] {
            calls.push((script, self.team_keys()));
        }
        for script in ["save_schedule.lua", "delete_schedule.lua"] {
            calls.push((script, self.schedule_keys()));
        }
        calls.push(("claim.lua", vec![self.schedules_due()]));
        calls
    }

    /// Every script touches keys of one hash slot only (Redis Cluster refuses a
    /// script that does not, with `CROSSSLOT`), and the shards are on 16 distinct
    /// slots (so a cluster can spread them). Names the first problem.
    pub fn check_single_slot(&self) -> Result<(), String> {
        let shard_slots: std::collections::BTreeSet<u16> =
            (0..SHARDS).map(|s| slot(&self.timers(s))).collect();
        if shard_slots.len() != usize::from(SHARDS) {
            return Err(format!(
                "REDIS_PREFIX {:?} puts the {SHARDS} shards on {} hash slot(s): it may not contain {{ or }}",
                self.prefix,
                shard_slots.len()
            ));
        }
        for (script, keys) in self.script_calls() {
            let slots: std::collections::BTreeSet<u16> = keys.iter().map(|k| slot(k)).collect();
            if slots.len() != 1 {
                return Err(format!(
                    "{script} would touch {} hash slots ({keys:?}): check REDIS_PREFIX",
                    slots.len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_callout_share_its_shards_hash_tag() {
        let keys = Keys::new("ivr");
        let id = CalloutId::new();
        let tag = format!("{{s{:02}}}", shard_of(id));
        for k in [
            keys.callout(id),
            keys.events(id),
            keys.timers(shard_of(id)),
            keys.live(shard_of(id)),
        ] {
            assert!(k.contains(&tag), "{k}");
            assert_eq!(k.matches('{').count(), 1, "exactly one hash tag in {k}");
        }
    }

    #[test]
    fn every_script_touches_keys_of_one_hash_slot() {
        for prefix in ["ivr", "t", "a:b", "tenant-7"] {
            Keys::new(prefix).check_single_slot().unwrap();
        }
        let calls = Keys::new("ivr").script_calls();
        assert!(calls.iter().filter(|c| c.0 == "commit.lua").count() == usize::from(SHARDS));
        // A hash tag in the prefix would put every shard on one slot.
        let tagged = Keys::new("{x}");
        let slots: std::collections::BTreeSet<u16> =
            (0..SHARDS).map(|s| slot(&tagged.timers(s))).collect();
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn slots_are_redis_clusters_own() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{}foo"), 9500, "an empty tag hashes the whole key");
        // The 16 shards land on distinct slots, spread over the slot space.
        let slots: std::collections::BTreeSet<u16> = (0..SHARDS).map(shard_slot).collect();
        assert_eq!(slots.len(), usize::from(SHARDS));
    }

    #[test]
    fn shards_spread_callouts() {
        let mut seen = [0u32; SHARDS as usize];
        for _ in 0..1600 {
            seen[shard_of(CalloutId::new()) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 40), "{seen:?}");
    }
}
