//! The Redis store. Keys and their layout are in [`super::keys`]; every multi-key
//! write is a Lua script in `src/store/lua/` touching one slot.
//!
//! Connection: one multiplexed `ConnectionManager` (reconnects by itself). It does
//! not retry a command that was cut off by a dropped connection, so the one write
//! whose effect matters, [`RedisStore::commit`], carries a random writer token: after
//! an IO error it reads the document back and knows whether its write landed.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::keys::{Keys, SHARDS, shard_of};
use super::{
    Commit, Counts, Deleted, IndexInfo, Replaced, Saved, StoreError, ToolSession, Versioned,
};
use crate::domain::{Assistant, AssistantId, Callout, CalloutId, CalloutStatus, Event, Timestamp};

struct Scripts {
    commit: Script,
    claim: Script,
    release: Script,
    rate: Script,
    lock: Script,
    save_assistant: Script,
    replace_assistant: Script,
    delete_assistant: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            commit: Script::new(include_str!("lua/commit.lua")),
            claim: Script::new(include_str!("lua/claim.lua")),
            release: Script::new(include_str!("lua/release.lua")),
            rate: Script::new(include_str!("lua/rate.lua")),
            lock: Script::new(include_str!("lua/lock.lua")),
            save_assistant: Script::new(include_str!("lua/save_assistant.lua")),
            replace_assistant: Script::new(include_str!("lua/replace_assistant.lua")),
            delete_assistant: Script::new(include_str!("lua/delete_assistant.lua")),
        }
    }
}

/// Cheap to clone: the connection manager multiplexes one connection, and the
/// rest is shared.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    shared: std::sync::Arc<Shared>,
}

struct Shared {
    keys: Keys,
    scripts: Scripts,
    retention: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.shared.keys)
            .finish_non_exhaustive()
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn ms(t: Timestamp) -> String {
    t.millis().to_string()
}

fn opt_ms(t: Option<Timestamp>) -> String {
    t.map(ms).unwrap_or_default()
}

/// Eviction policies that never drop a key without a TTL.
fn eviction_policy_is_safe(policy: &str) -> bool {
    policy == "noeviction" || policy.starts_with("volatile-")
}

impl RedisStore {
    /// Connects, refuses an eviction policy that could drop state, and returns the store.
    pub async fn connect(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(6)
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_with_config(config).await?;
        let store = Self {
            conn,
            shared: std::sync::Arc::new(Shared {
                keys: Keys::new(prefix),
                scripts: Scripts::new(),
                retention,
            }),
        };
        store.check_eviction_policy().await?;
        Ok(store)
    }

    async fn check_eviction_policy(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let from_config: Result<Vec<String>, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await;
        let policy = match from_config {
            Ok(v) if v.len() == 2 => Some(v[1].clone()),
            // Managed Redis often forbids CONFIG; INFO says the same thing.
            _ => {
                let info: String = redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await?;
                info.lines()
                    .find_map(|l| l.strip_prefix("maxmemory_policy:"))
                    .map(|p| p.trim().to_owned())
            }
        };
        match policy {
            Some(p) if !eviction_policy_is_safe(&p) => Err(StoreError::Refused(format!(
                "Redis maxmemory-policy is {p}: Redis could evict callout state under memory pressure. \
                 Set it to noeviction (or a volatile-* policy) with `CONFIG SET maxmemory-policy noeviction` \
                 or in redis.conf"
            ))),
            _ => Ok(()),
        }
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    pub(super) async fn load(
        &self,
        id: CalloutId,
    ) -> Result<Option<Versioned<Callout>>, StoreError> {
        let mut conn = self.conn.clone();
        let (v, d): (Option<u64>, Option<String>) = conn
            .hmget(self.shared.keys.callout(id), &["v", "d"])
            .await?;
        match (v, d) {
            (Some(version), Some(doc)) => {
                let value = serde_json::from_str(&doc).map_err(|e| corrupt("callout", e))?;
                Ok(Some(Versioned { version, value }))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn commit(
        &self,
        callout: &Callout,
        expected: u64,
        events: &[Event],
    ) -> Result<Commit, StoreError> {
        let id = callout.id;
        let shard = shard_of(id);
        let idx = IndexInfo::of(callout, self.shared.retention);
        // Pre-sized: documents are a few KiB, and growing the buffer by doubling
        // copied it several times per commit.
        let mut doc = Vec::with_capacity(8 * 1024);
        serde_json::to_writer(&mut doc, callout).map_err(|e| corrupt("callout", e))?;
        let token = format!("{:032x}", rand::random::<u128>());
        let mut inv = self.shared.scripts.commit.prepare_invoke();
        inv.key(self.shared.keys.callout(id))
            .key(self.shared.keys.events(id))
            .key(self.shared.keys.timers(shard))
            .key(self.shared.keys.live(shard))
            .key(self.shared.keys.all(shard));
        for status in CalloutStatus::ALL {
            inv.key(self.shared.keys.by_status(shard, status));
        }
        inv.key(self.shared.keys.assistant_use(shard))
            .arg(id.to_string())
            .arg(expected.to_string())
            .arg(&doc)
            .arg(idx.status.as_str())
            .arg(ms(idx.created))
            .arg(opt_ms(idx.next_due))
            .arg(opt_ms(idx.live_deadline))
            .arg(
                idx.expires_in
                    .map(|d| d.as_millis().to_string())
                    .unwrap_or_default(),
            )
            .arg(idx.assistant.map(|a| a.to_string()).unwrap_or_default())
            .arg(&token);
        for e in events {
            inv.arg(serde_json::to_string(e).map_err(|e| corrupt("event", e))?);
        }
        let mut conn = self.conn.clone();
        let mut last_err = match inv.invoke_async::<(i64, u64)>(&mut conn).await {
            Ok((1, version)) => return Ok(Commit::Done { version }),
            Ok(_) => return Ok(Commit::Conflict),
            Err(e) if !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) => {
                return Err(e.into());
            }
            Err(e) => e,
        };
        // The command may or may not have run. Find out from the writer token, and
        // only re-run it while the document is provably still at `expected`.
        for attempt in 0..3u32 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            let read: Result<(Option<u64>, Option<String>), _> =
                conn.hmget(self.shared.keys.callout(id), &["v", "w"]).await;
            match read {
                Ok((Some(v), Some(w))) if w == token => return Ok(Commit::Done { version: v }),
                Ok((v, _)) if v.unwrap_or(0) != expected => return Ok(Commit::Conflict),
                Ok(_) => match inv.invoke_async::<(i64, u64)>(&mut conn).await {
                    Ok((1, version)) => return Ok(Commit::Done { version }),
                    Ok(_) => return Ok(Commit::Conflict),
                    Err(e) => last_err = e,
                },
                Err(e) => last_err = e,
            }
        }
        Err(last_err.into())
    }

    pub(super) async fn events(&self, id: CalloutId) -> Result<Vec<Event>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.lrange(self.shared.keys.events(id), 0, -1).await?;
        raw.iter()
            .map(|r| serde_json::from_str(r).map_err(|e| corrupt("event", e)))
            .collect()
    }

    pub(super) async fn events_since(
        &self,
        id: CalloutId,
        from: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let Ok(start) = isize::try_from(from) else {
            return Ok(Vec::new());
        };
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.lrange(self.shared.keys.events(id), start, -1).await?;
        raw.iter()
            .map(|r| serde_json::from_str(r).map_err(|e| corrupt("event", e)))
            .collect()
    }

    pub(super) async fn list(
        &self,
        status: Option<CalloutStatus>,
        limit: usize,
        before: Option<CalloutId>,
    ) -> Result<Vec<Callout>, StoreError> {
        let max = before.map_or_else(|| "+inf".to_owned(), |b| b.created_ms().to_string());
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            let key = match status {
                Some(s) => self.shared.keys.by_status(shard, s),
                None => self.shared.keys.all(shard),
            };
            // A little more than `limit`, for ids created in the cursor's millisecond.
            pipe.zrevrangebyscore_limit(key, &max, "-inf", 0, (limit + 16) as isize);
        }
        let mut conn = self.conn.clone();
        let per_shard: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        let mut ids: Vec<CalloutId> = per_shard
            .into_iter()
            .flatten()
            .filter_map(|s| s.parse().ok())
            .filter(|id| before.is_none_or(|b| *id < b))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(limit);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(self.shared.keys.callout(*id), "d");
        }
        let docs: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        docs.into_iter()
            .flatten()
            .map(|d| serde_json::from_str(&d).map_err(|e| corrupt("callout", e)))
            .collect()
    }

    pub(super) async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<(CalloutId, Timestamp)>, StoreError> {
        let lease_until = now.plus(lease);
        // Shards are visited in a rotating order so one busy shard cannot starve others.
        let start = (now.millis().rem_euclid(i64::from(SHARDS))) as u16;
        let order: Vec<u16> = (0..SHARDS).map(|i| (start + i) % SHARDS).collect();
        // First every shard at once (one pipelined round trip on the multiplexed
        // connection, not sixteen in a row) for an equal share of `max`; then, only
        // when some shard had more than its share, those shards one by one for what
        // is left of `max`.
        let share = max.div_ceil(usize::from(SHARDS)).max(1);
        let firsts = futures::future::try_join_all(
            order
                .iter()
                .map(|&shard| self.claim_shard(shard, now, lease_until, share)),
        )
        .await?;
        let mut out = Vec::new();
        let mut busy = Vec::new();
        for (&shard, claimed) in order.iter().zip(firsts) {
            if claimed.len() >= share {
                busy.push(shard);
            }
            out.extend(claimed);
        }
        for shard in busy {
            if out.len() >= max {
                break;
            }
            let more = self
                .claim_shard(shard, now, lease_until, max - out.len())
                .await?;
            out.extend(more);
        }
        Ok(out)
    }

    /// Claims up to `max` due timers of one shard (the `claim` script).
    async fn claim_shard(
        &self,
        shard: u16,
        now: Timestamp,
        lease_until: Timestamp,
        max: usize,
    ) -> Result<Vec<(CalloutId, Timestamp)>, StoreError> {
        let mut conn = self.conn.clone();
        let flat: Vec<String> = self
            .shared
            .scripts
            .claim
            .key(self.shared.keys.timers(shard))
            .arg(ms(now))
            .arg(ms(lease_until))
            .arg(max)
            .invoke_async(&mut conn)
            .await?;
        flat.chunks_exact(2)
            .map(|pair| {
                let id = pair[0].parse().map_err(|e| corrupt("timer member", e))?;
                let due = pair[1]
                    .parse::<f64>()
                    .map_err(|e| corrupt("timer score", e))?;
                Ok((id, Timestamp(due as i64)))
            })
            .collect()
    }

    pub(super) async fn release(
        &self,
        id: CalloutId,
        version: u64,
        next_due: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .shared
            .scripts
            .release
            .key(self.shared.keys.callout(id))
            .key(self.shared.keys.timers(shard_of(id)))
            .arg(id.to_string())
            .arg(version.to_string())
            .arg(opt_ms(next_due))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(super) async fn forget(&self, id: CalloutId) -> Result<(), StoreError> {
        let shard = shard_of(id);
        let member = id.to_string();
        let mut conn = self.conn.clone();
        let exists: bool = conn.exists(self.shared.keys.callout(id)).await?;
        if !exists {
            let mut pipe = redis::pipe();
            pipe.zrem(self.shared.keys.timers(shard), &member)
                .ignore()
                .zrem(self.shared.keys.live(shard), &member)
                .ignore();
            let () = pipe.query_async(&mut conn).await?;
        }
        Ok(())
    }

    pub(super) async fn overdue_calls(
        &self,
        now: Timestamp,
        max: usize,
    ) -> Result<Vec<CalloutId>, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.zrangebyscore_limit(
                self.shared.keys.live(shard),
                "-inf",
                ms(now),
                0,
                max as isize,
            );
        }
        let mut conn = self.conn.clone();
        let per_shard: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        Ok(per_shard
            .into_iter()
            .flatten()
            .filter_map(|s| s.parse().ok())
            .take(max)
            .collect())
    }

    pub(super) async fn counts(&self) -> Result<Counts, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.zcard(self.shared.keys.by_status(shard, CalloutStatus::Calling));
            pipe.zcard(self.shared.keys.live(shard));
        }
        let mut conn = self.conn.clone();
        let cards: Vec<u64> = pipe.query_async(&mut conn).await?;
        let mut counts = Counts::default();
        for pair in cards.chunks_exact(2) {
            counts.active_callouts += pair[0];
            counts.live_calls += pair[1];
        }
        Ok(counts)
    }

    pub(super) async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        // Documents expire by TTL; here their index entries follow. Only callouts
        // created before the retention window can have expired.
        let horizon =
            now.millis() - i64::try_from(self.shared.retention.as_millis()).unwrap_or(i64::MAX);
        let mut conn = self.conn.clone();
        let mut purged = 0;
        for shard in 0..SHARDS {
            let old: Vec<String> = conn
                .zrangebyscore_limit(self.shared.keys.all(shard), "-inf", horizon, 0, 1000)
                .await?;
            let ids: Vec<CalloutId> = old.iter().filter_map(|s| s.parse().ok()).collect();
            if ids.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.exists(self.shared.keys.callout(*id));
            }
            let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
            let mut pipe = redis::pipe();
            for (id, _) in ids.iter().zip(exists).filter(|(_, e)| !e) {
                let member = id.to_string();
                pipe.zrem(self.shared.keys.all(shard), &member).ignore();
                pipe.zrem(self.shared.keys.timers(shard), &member).ignore();
                pipe.zrem(self.shared.keys.live(shard), &member).ignore();
                for status in CalloutStatus::ALL {
                    pipe.zrem(self.shared.keys.by_status(shard, status), &member)
                        .ignore();
                }
                purged += 1;
            }
            let () = pipe.query_async(&mut conn).await?;
        }
        Ok(purged)
    }

    pub(super) async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let held: i64 = self
            .shared
            .scripts
            .lock
            .key(self.shared.keys.lock(name))
            .arg(holder)
            .arg(ttl.as_millis().to_string())
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }

    pub(super) async fn reserve_call_slot(
        &self,
        interval: Duration,
    ) -> Result<Duration, StoreError> {
        let mut conn = self.conn.clone();
        let wait_ms: i64 = self
            .shared
            .scripts
            .rate
            .key(self.shared.keys.call_rate())
            .arg(interval.as_millis().max(1).to_string())
            .invoke_async(&mut conn)
            .await?;
        Ok(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)))
    }

    pub(super) async fn save_assistant(&self, assistant: &Assistant) -> Result<Saved, StoreError> {
        let json = serde_json::to_string(assistant).map_err(|e| corrupt("assistant", e))?;
        let mut conn = self.conn.clone();
        let saved: i64 = self
            .shared
            .scripts
            .save_assistant
            .key(self.shared.keys.assistants())
            .key(self.shared.keys.assistant_names())
            .arg(assistant.id.to_string())
            .arg(&assistant.name)
            .arg(json)
            .invoke_async(&mut conn)
            .await?;
        Ok(if saved == 1 {
            Saved::Yes
        } else {
            Saved::NameTaken
        })
    }

    pub(super) async fn assistant(&self, id: AssistantId) -> Result<Option<Assistant>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn
            .hget(self.shared.keys.assistants(), id.to_string())
            .await?;
        raw.map(|r| serde_json::from_str(&r).map_err(|e| corrupt("assistant", e)))
            .transpose()
    }

    pub(super) async fn assistant_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Assistant>, StoreError> {
        let mut conn = self.conn.clone();
        let id: Option<String> = conn.hget(self.shared.keys.assistant_names(), name).await?;
        match id.and_then(|s| s.parse().ok()) {
            Some(id) => self.assistant(id).await,
            None => Ok(None),
        }
    }

    pub(super) async fn assistants(&self) -> Result<Vec<Assistant>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.hvals(self.shared.keys.assistants()).await?;
        raw.iter()
            .map(|r| serde_json::from_str(r).map_err(|e| corrupt("assistant", e)))
            .collect()
    }

    pub(super) async fn replace_assistant(
        &self,
        assistant: &Assistant,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let json = serde_json::to_string(assistant).map_err(|e| corrupt("assistant", e))?;
        let mut conn = self.conn.clone();
        let result: i64 = self
            .shared
            .scripts
            .replace_assistant
            .key(self.shared.keys.assistants())
            .key(self.shared.keys.assistant_names())
            .arg(assistant.id.to_string())
            .arg(&assistant.name)
            .arg(json)
            .arg(ms(expected))
            .invoke_async(&mut conn)
            .await?;
        Ok(match result {
            1 => Replaced::Yes,
            0 => Replaced::NameTaken,
            2 => Replaced::Changed,
            _ => Replaced::NotFound,
        })
    }

    pub(super) async fn tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
    ) -> Result<Option<ToolSession>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn
            .get(self.shared.keys.tool_session(assistant, session))
            .await?;
        raw.map(|r| serde_json::from_str(&r).map_err(|e| corrupt("tool session", e)))
            .transpose()
    }

    pub(super) async fn save_tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
        value: &ToolSession,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).map_err(|e| corrupt("tool session", e))?;
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let () = conn
            .pset_ex(
                self.shared.keys.tool_session(assistant, session),
                json,
                ttl_ms,
            )
            .await?;
        Ok(())
    }

    pub(super) async fn delete_tool_session(
        &self,
        assistant: AssistantId,
        session: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn
            .del(self.shared.keys.tool_session(assistant, session))
            .await?;
        Ok(())
    }

    pub(super) async fn delete_assistant(&self, id: AssistantId) -> Result<Deleted, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.hget(self.shared.keys.assistant_use(shard), id.to_string());
        }
        let mut conn = self.conn.clone();
        let uses: Vec<Option<i64>> = pipe.query_async(&mut conn).await?;
        let in_use: i64 = uses.into_iter().flatten().filter(|n| *n > 0).sum();
        if in_use > 0 {
            return Ok(Deleted::InUse(in_use as u64));
        }
        let deleted: i64 = self
            .shared
            .scripts
            .delete_assistant
            .key(self.shared.keys.assistants())
            .key(self.shared.keys.assistant_names())
            .arg(id.to_string())
            .invoke_async(&mut conn)
            .await?;
        Ok(if deleted == 1 {
            Deleted::Yes
        } else {
            Deleted::NotFound
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_eviction_policies_that_keep_untimed_keys_are_safe() {
        for p in ["noeviction", "volatile-lru", "volatile-ttl"] {
            assert!(eviction_policy_is_safe(p), "{p}");
        }
        for p in ["allkeys-lru", "allkeys-random", "allkeys-lfu"] {
            assert!(!eviction_policy_is_safe(p), "{p}");
        }
    }
}
