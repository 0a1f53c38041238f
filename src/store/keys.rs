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
//! | `P:{sNN}:asst-use` | hash assistant id → calling callouts using it | none | `commit.lua` | assistant deletion |
//! | `P:{assistants}` | hash id → assistant JSON (key encrypted) | none | assistants API | engine, assistants API |
//! | `P:{assistants}:names` | hash name → id | none | assistants API | name lookups |
//! | `P:tool:<assistant id>:<session>` | string: JSON of a conversation-tools session (turn, last menu, no-reply expectation) | 24 h after its last turn | conversation tools | conversation tools (`digits` on any replica) |
//! | `P:lock:<job>` | string holder, `PX` ttl | ttl | periodic jobs | periodic jobs (one replica at a time) |
//! | `P:rate:calls` | string: next free slot (ms, Redis clock) | a few intervals | `rate.lua` | call placement (all replicas) |
//!
//! `P` is `REDIS_PREFIX` (default `ivr`).

use crate::domain::{AssistantId, CalloutId, CalloutStatus};

/// Number of shards. Fixed: changing it would orphan existing callouts.
pub const SHARDS: u16 = 16;

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

    pub fn assistant_use(&self, shard: u16) -> String {
        format!("{}:asst-use", self.tag(shard))
    }

    pub fn assistants(&self) -> String {
        format!("{}:{{assistants}}", self.prefix)
    }

    pub fn assistant_names(&self) -> String {
        format!("{}:{{assistants}}:names", self.prefix)
    }

    /// A conversation-tools session. `session` is validated at the edge
    /// (`[A-Za-z0-9_-]{1,64}`), so it cannot contain `:` or a hash tag.
    pub fn tool_session(&self, assistant: AssistantId, session: &str) -> String {
        format!("{}:tool:{assistant}:{session}", self.prefix)
    }

    pub fn lock(&self, job: &str) -> String {
        format!("{}:lock:{job}", self.prefix)
    }

    pub fn call_rate(&self) -> String {
        format!("{}:rate:calls", self.prefix)
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
    fn shards_spread_callouts() {
        let mut seen = [0u32; SHARDS as usize];
        for _ in 0..1600 {
            seen[shard_of(CalloutId::new()) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 40), "{seen:?}");
    }
}
