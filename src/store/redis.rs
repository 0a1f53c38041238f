//! The Redis store. Keys and their layout are in [`super::keys`]; every multi-key
//! write is a Lua script in `src/store/lua/` touching one slot (checked at
//! startup). The deployment (one server, Redis Cluster, Sentinel) is hidden in
//! [`Conn`]; what differs is only how multi-shard reads and the timer claim are
//! batched: one pipeline per server ([`RedisStore::per_shard`]).
//!
//! # A write that may or may not have run
//!
//! A connection that drops mid-command leaves it unknown whether the command ran.
//! The one-server `ConnectionManager` does not retry it; the cluster connection
//! does, on the promoted replica after a failover. Either way no write applies
//! twice: every callout change is a compare-and-set on the document's version and
//! carries a random writer token, so a re-run that finds its own token reports the
//! write done instead of a conflict, and one that finds another version changes
//! nothing. The other scripts are idempotent (lock renewal by the same holder,
//! assistant saves, timer release) or cost only time when re-run (a claim re-run
//! finds its timers leased: they fire when the lease ends; a rate-limit slot
//! reserved twice spaces the next call a little more).
//!
//! # Writes that must survive a failover
//!
//! Redis replicates asynchronously: a write the primary acknowledged and had not
//! yet sent to a replica is lost when that primary dies. For the commits that
//! matter most (a creation, a decision, a call about to be sent or just placed,
//! a callout reaching its end: see [`needs_replicas`]) the store sends `WAIT <replicas>
//! <timeout>` in the same round trip, on a connection of its own (WAIT blocks the
//! connection it is sent on). When the replicas do not acknowledge in time, the
//! write stands (availability over durability: the call goes on), the shortfall
//! is counted in `ivr_store_replica_acks_total{result="timeout"}`, and that shard
//! skips WAIT for a second so that a primary which lost its replica does not add
//! the timeout to every such write. Redis 7.0 has no `WAITAOF`, so WAIT (replica
//! memory, not its disk) is what is used.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use redis::{AsyncCommands, Cmd, FromRedisValue, Script, ServerErrorKind, Value};

use super::conn::Conn;
use super::keys::{Keys, SHARDS, shard_of};
use super::target::Target;
use super::{
    CommitResult, Counts, Deleted, IdempotentRequest, IndexInfo, Replaced, Saved, StoreError,
    ToolSession, Versioned, needs_replicas,
};
use crate::domain::{
    Assistant, AssistantId, CallId, Callout, CalloutId, CalloutStatus, E164, Event, PersonLimits,
    Schedule, ScheduleId, Team, TeamId, Timestamp,
};
use crate::telemetry::metrics as m;

/// A Lua script: its source and SHA1. Sent as `EVALSHA`, and as `EVAL` (which
/// also caches it on that server) when the server does not know it yet: a new
/// node, a promoted replica, a restart.
struct Lua {
    src: &'static str,
    sha: String,
}

impl Lua {
    fn new(src: &'static str) -> Self {
        Self {
            src,
            sha: Script::new(src).get_hash().to_owned(),
        }
    }

    fn cmd(&self, by_sha: bool, keys: &[String], args: &[Vec<u8>]) -> Cmd {
        let mut cmd = if by_sha {
            redis::cmd("EVALSHA").arg(&self.sha).to_owned()
        } else {
            redis::cmd("EVAL").arg(self.src).to_owned()
        };
        cmd.arg(keys.len()).arg(keys).arg(args);
        cmd
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript)
}

struct Scripts {
    commit: Lua,
    claim: Lua,
    release: Lua,
    rate: Lua,
    lock: Lua,
    save_assistant: Lua,
    replace_assistant: Lua,
    delete_assistant: Lua,
    use_assistant: Lua,
    delete_team: Lua,
    save_schedule: Lua,
    delete_schedule: Lua,
    day_count: Lua,
    idempotency: Lua,
    person_call: Lua,
}

impl Scripts {
    fn new() -> Self {
        Self {
            commit: Lua::new(include_str!("lua/commit.lua")),
            claim: Lua::new(include_str!("lua/claim.lua")),
            release: Lua::new(include_str!("lua/release.lua")),
            rate: Lua::new(include_str!("lua/rate.lua")),
            lock: Lua::new(include_str!("lua/lock.lua")),
            save_assistant: Lua::new(include_str!("lua/save_assistant.lua")),
            replace_assistant: Lua::new(include_str!("lua/replace_assistant.lua")),
            delete_assistant: Lua::new(include_str!("lua/delete_assistant.lua")),
            use_assistant: Lua::new(include_str!("lua/use_assistant.lua")),
            delete_team: Lua::new(include_str!("lua/delete_team.lua")),
            save_schedule: Lua::new(include_str!("lua/save_schedule.lua")),
            delete_schedule: Lua::new(include_str!("lua/delete_schedule.lua")),
            day_count: Lua::new(include_str!("lua/day_count.lua")),
            idempotency: Lua::new(include_str!("lua/idempotency.lua")),
            person_call: Lua::new(include_str!("lua/person_call.lua")),
        }
    }
}

/// How the Redis store is used: `REDIS_*` settings.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub prefix: String,
    pub retention: Duration,
    /// Replicas that must acknowledge the writes that matter most (`WAIT`); `None`
    /// means the default: 1 on a cluster or Sentinel, 0 (no WAIT) on one server.
    pub wait_replicas: Option<u32>,
    pub wait_timeout: Duration,
    /// PEM files for `rediss://`: a CA to trust instead of the system's roots,
    /// and a client certificate and key (when the servers ask for one).
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
}

impl RedisOptions {
    pub fn new(prefix: &str, retention: Duration) -> Self {
        Self {
            prefix: prefix.to_owned(),
            retention,
            wait_replicas: None,
            wait_timeout: Duration::from_millis(100),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }

    /// The TLS files, read.
    fn certificates(&self) -> Result<Option<redis::TlsCertificates>, StoreError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| StoreError::Refused(format!("cannot read {}: {e}", p.display())))
        };
        let root_cert = self.tls_ca_file.as_deref().map(read).transpose()?;
        let client_tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Refused(
                    "a client certificate needs both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE"
                        .into(),
                ));
            }
        };
        Ok(
            (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
                client_tls,
                root_cert,
            }),
        )
    }
}

/// Cheap to clone: every connection multiplexes, and the rest is shared.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// Where `WAIT` is sent (its own connection: WAIT blocks the one it is on).
    durable: Conn,
    shared: std::sync::Arc<Shared>,
}

struct Shared {
    keys: Keys,
    scripts: Scripts,
    retention: Duration,
    wait_replicas: u32,
    wait_timeout: Duration,
    /// Per shard: skip WAIT until this time (ms), after replicas did not answer.
    skip_wait_until: [AtomicI64; SHARDS as usize],
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("deployment", &self.conn.kind())
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

fn arg(s: impl Into<String>) -> Vec<u8> {
    s.into().into_bytes()
}

/// A reply as `T`; a server error inside a pipeline's replies becomes an error.
fn decode<T: FromRedisValue>(v: Value) -> Result<T, StoreError> {
    let v = v.extract_error()?;
    redis::from_redis_value(v).map_err(|e| corrupt("reply", e))
}

/// Eviction policies that never drop a key without a TTL.
fn eviction_policy_is_safe(policy: &str) -> bool {
    policy == "noeviction" || policy.starts_with("volatile-")
}

impl RedisStore {
    /// Connects with the default options (see [`RedisStore::connect_with`]).
    pub async fn connect(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        Self::connect_with(url, &RedisOptions::new(prefix, retention)).await
    }

    /// Connects to the deployment `url` names (see [`super::target`]), refuses an
    /// eviction policy that could drop state or a key layout that a cluster would
    /// refuse, and returns the store.
    pub async fn connect_with(url: &str, options: &RedisOptions) -> Result<Self, StoreError> {
        let target =
            Target::parse(url).map_err(|e| StoreError::Refused(format!("REDIS_URL: {e}")))?;
        let keys = Keys::new(&options.prefix);
        keys.check_single_slot().map_err(StoreError::Refused)?;
        let tls = options.certificates()?;
        let conn = Conn::open(&target, tls.as_ref()).await?;
        let wait_replicas =
            options
                .wait_replicas
                .unwrap_or(if matches!(target, Target::Single(_)) {
                    0
                } else {
                    1
                });
        let durable = if wait_replicas > 0 {
            Conn::open(&target, tls.as_ref()).await?
        } else {
            conn.clone()
        };
        let store = Self {
            conn,
            durable,
            shared: std::sync::Arc::new(Shared {
                keys,
                scripts: Scripts::new(),
                retention: options.retention,
                wait_replicas,
                wait_timeout: options.wait_timeout,
                skip_wait_until: std::array::from_fn(|_| AtomicI64::new(0)),
            }),
        };
        store.check_slots_with_server().await?;
        store.check_eviction_policy().await?;
        Ok(store)
    }

    /// `single`, `cluster` or `sentinel`.
    pub fn deployment(&self) -> &'static str {
        self.conn.kind()
    }

    /// How many servers hold the 16 shards (the primaries of a cluster; 1
    /// otherwise): the pipelines a claim round or a list sends.
    pub fn servers(&self) -> usize {
        self.conn
            .shard_groups(&(0..SHARDS).collect::<Vec<_>>())
            .len()
    }

    /// On a cluster: the server computes the same slot for every shard as
    /// [`super::keys::slot`] (which groups the pipelines).
    async fn check_slots_with_server(&self) -> Result<(), StoreError> {
        if self.conn.kind() != "cluster" {
            return Ok(());
        }
        for shard in 0..SHARDS {
            let key = self.shared.keys.timers(shard);
            let server: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query_async(&mut self.conn.clone())
                .await?;
            if server != super::keys::slot(&key) {
                return Err(StoreError::Refused(format!(
                    "the cluster puts {key} on slot {server}, the gateway computed {}",
                    super::keys::slot(&key)
                )));
            }
        }
        Ok(())
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
                let info: String = match redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await
                {
                    Ok(info) => info,
                    Err(e) if e.is_io_error() || e.is_timeout() => return Err(e.into()),
                    // A cluster answers INFO per node: nothing to conclude from here.
                    Err(_) => String::new(),
                };
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

    /// Runs a script; `EVAL` when the server does not have it cached.
    async fn run<T: FromRedisValue>(
        &self,
        lua: &Lua,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<T, redis::RedisError> {
        let mut conn = self.conn.clone();
        match lua.cmd(true, keys, args).query_async(&mut conn).await {
            Err(e) if is_noscript(&e) => lua.cmd(false, keys, args).query_async(&mut conn).await,
            r => r,
        }
    }

    /// Runs `cmds(shard)` for every shard of `shards`, as one pipeline per server
    /// (one in all unless on a cluster), and returns each shard's replies in the
    /// order of `shards`. On a cluster whose slot map moved under a pipeline, the
    /// map is read again and that server's shards are sent one pipeline each
    /// (routed by key, so the client follows MOVED).
    async fn per_shard(
        &self,
        shards: &[u16],
        cmds: &(dyn Fn(u16) -> Vec<Cmd> + Sync),
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let groups = self.conn.shard_groups(shards);
        let results =
            futures::future::join_all(groups.iter().map(|g| self.group_pipeline(g, cmds))).await;
        let mut by_shard: std::collections::HashMap<u16, Vec<Value>> = Default::default();
        for (group, result) in groups.iter().zip(results) {
            let replies = match result {
                Ok(r) => r,
                Err(e) if self.conn.kind() == "cluster" && !is_noscript(&e) => {
                    tracing::debug!(error = %e, "a grouped pipeline failed; sending it per shard");
                    self.conn.topology_changed().await;
                    let mut each = Vec::new();
                    for &shard in group {
                        each.extend(self.group_pipeline(&[shard], cmds).await?);
                    }
                    each
                }
                Err(e) => return Err(e.into()),
            };
            by_shard.extend(group.iter().copied().zip(replies));
        }
        Ok(shards
            .iter()
            .map(|s| by_shard.remove(s).unwrap_or_default())
            .collect())
    }

    async fn group_pipeline(
        &self,
        group: &[u16],
        cmds: &(dyn Fn(u16) -> Vec<Cmd> + Sync),
    ) -> Result<Vec<Vec<Value>>, redis::RedisError> {
        let mut pipe = redis::pipe();
        let mut counts = Vec::with_capacity(group.len());
        for &shard in group {
            let c = cmds(shard);
            counts.push(c.len());
            for cmd in c {
                pipe.add_command(cmd);
            }
        }
        if pipe.is_empty() {
            return Ok(vec![Vec::new(); group.len()]);
        }
        let flat = self.conn.pipeline_on(group, pipe).await?;
        let mut flat = flat.into_iter();
        let mut out = Vec::with_capacity(group.len());
        for n in counts {
            let replies: Vec<Value> = flat.by_ref().take(n).collect();
            if let Some(Value::ServerError(e)) =
                replies.iter().find(|v| matches!(v, Value::ServerError(_)))
            {
                return Err(e.clone().into());
            }
            out.push(replies);
        }
        Ok(out)
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
    ) -> Result<CommitResult, StoreError> {
        let idx = IndexInfo::of(callout, self.shared.retention);
        let done = self
            .commit_document(callout, &idx, expected, events)
            .await?;
        // A callout that ended no longer holds its assistant. Idempotent, and a
        // record missed here (a dropped connection) is repaired by the deletion.
        if let (CommitResult::Done { .. }, Some(a)) = (done, idx.assistant)
            && idx.status.is_final()
        {
            self.release_assistant(a, callout.id).await;
        }
        Ok(done)
    }

    async fn commit_document(
        &self,
        callout: &Callout,
        idx: &IndexInfo,
        expected: u64,
        events: &[Event],
    ) -> Result<CommitResult, StoreError> {
        let id = callout.id;
        // Pre-sized: documents are a few KiB, and growing the buffer by doubling
        // copied it several times per commit.
        let mut doc = Vec::with_capacity(8 * 1024);
        serde_json::to_writer(&mut doc, callout).map_err(|e| corrupt("callout", e))?;
        let token = format!("{:032x}", rand::random::<u128>());
        let keys = self.shared.keys.commit_keys(id);
        let mut args = vec![
            arg(id.to_string()),
            arg(expected.to_string()),
            doc,
            arg(idx.status.as_str()),
            arg(ms(idx.created)),
            arg(opt_ms(idx.next_due)),
            arg(opt_ms(idx.live_deadline)),
            arg(idx
                .expires_in
                .map(|d| d.as_millis().to_string())
                .unwrap_or_default()),
            arg(idx.assistant.map(|a| a.to_string()).unwrap_or_default()),
            arg(token.as_str()),
        ];
        for e in events {
            args.push(serde_json::to_vec(e).map_err(|e| corrupt("event", e))?);
        }
        let durable = needs_replicas(callout, events).then_some(shard_of(id));
        let mut last_err = match self.commit_once(&keys, &args, &token, durable).await {
            Ok(c) => return Ok(c),
            Err(e) if !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) => {
                return Err(e.into());
            }
            Err(e) => e,
        };
        // The command may or may not have run. Find out from the writer token, and
        // only re-run it while the document is provably still at `expected`.
        let mut conn = self.conn.clone();
        for attempt in 0..3u32 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            let read: Result<(Option<u64>, Option<String>), _> =
                conn.hmget(self.shared.keys.callout(id), &["v", "w"]).await;
            match read {
                Ok((Some(v), Some(w))) if w == token => {
                    return Ok(CommitResult::Done { version: v });
                }
                Ok((v, _)) if v.unwrap_or(0) != expected => return Ok(CommitResult::Conflict),
                Ok(_) => match self.commit_once(&keys, &args, &token, durable).await {
                    Ok(c) => return Ok(c),
                    Err(e) => last_err = e,
                },
                Err(e) => last_err = e,
            }
        }
        Err(last_err.into())
    }

    /// One run of `commit.lua` (followed by `WAIT` when `durable` names the shard
    /// of a write that matters). A re-run of a write that did land (the cluster
    /// client retries after a dropped connection) finds its own token: done.
    async fn commit_once(
        &self,
        keys: &[String],
        args: &[Vec<u8>],
        token: &str,
        durable: Option<u16>,
    ) -> Result<CommitResult, redis::RedisError> {
        let lua = &self.shared.scripts.commit;
        let reply: Vec<Value> = match durable.filter(|s| self.should_wait(*s)) {
            Some(shard) => {
                let mut reply = self.commit_and_wait(lua, true, keys, args).await;
                if matches!(&reply, Err(e) if is_noscript(e)) {
                    reply = self.commit_and_wait(lua, false, keys, args).await;
                }
                let (reply, acks) = reply?;
                self.record_acks(shard, acks);
                reply
            }
            None => self.run(lua, keys, args).await?,
        };
        let num = |i: usize| -> u64 {
            reply
                .get(i)
                .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                .unwrap_or(0)
        };
        let writer = reply
            .get(2)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
        Ok(match num(0) {
            1 => CommitResult::Done { version: num(1) },
            _ if writer.as_deref() == Some(token) => CommitResult::Done { version: num(1) },
            _ => CommitResult::Conflict,
        })
    }

    /// `commit.lua` then `WAIT`, in one round trip on the durable connection.
    /// Returns the script's reply and the replicas that acknowledged.
    async fn commit_and_wait(
        &self,
        lua: &Lua,
        by_sha: bool,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<(Vec<Value>, i64), redis::RedisError> {
        let mut pipe = redis::pipe();
        pipe.add_command(lua.cmd(by_sha, keys, args))
            .cmd("WAIT")
            .arg(self.shared.wait_replicas)
            .arg(u64::try_from(self.shared.wait_timeout.as_millis()).unwrap_or(u64::MAX));
        // Raw replies: a NOSCRIPT may come back as an error or as a value.
        let replies: Vec<Value> = pipe.query_async(&mut self.durable.clone()).await?;
        let mut it = replies.into_iter();
        let (Some(script), Some(acks)) = (it.next(), it.next()) else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "short reply to commit + WAIT",
            )));
        };
        let reply: Vec<Value> = redis::from_redis_value(script.extract_error()?)?;
        let acks: i64 = redis::from_redis_value(acks.extract_error()?)?;
        Ok((reply, acks))
    }

    fn should_wait(&self, shard: u16) -> bool {
        if self.shared.wait_replicas == 0 {
            return false;
        }
        let skip = &self.shared.skip_wait_until[usize::from(shard)];
        if Timestamp::now().millis() < skip.load(Ordering::Relaxed) {
            metrics::counter!(m::STORE_REPLICA_ACKS, "result" => "skipped").increment(1);
            return false;
        }
        true
    }

    fn record_acks(&self, shard: u16, acks: i64) {
        if acks >= i64::from(self.shared.wait_replicas) {
            metrics::counter!(m::STORE_REPLICA_ACKS, "result" => "acked").increment(1);
            return;
        }
        metrics::counter!(m::STORE_REPLICA_ACKS, "result" => "timeout").increment(1);
        tracing::warn!(
            shard,
            acks,
            wanted = self.shared.wait_replicas,
            "a write that matters was not acknowledged by enough replicas in time; \
             it stands, but a failover now could lose it"
        );
        self.shared.skip_wait_until[usize::from(shard)]
            .store(Timestamp::now().millis() + 1000, Ordering::Relaxed);
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
        let all: Vec<u16> = (0..SHARDS).collect();
        let keys = &self.shared.keys;
        let per_shard = self
            .per_shard(&all, &|shard| {
                let key = match status {
                    Some(s) => keys.by_status(shard, s),
                    None => keys.all(shard),
                };
                // A little more than `limit`, for ids created in the cursor's millisecond.
                vec![
                    redis::cmd("ZREVRANGEBYSCORE")
                        .arg(key)
                        .arg(&max)
                        .arg("-inf")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit + 16)
                        .to_owned(),
                ]
            })
            .await?;
        let mut ids: Vec<CalloutId> = Vec::new();
        for replies in per_shard {
            for v in replies {
                let members: Vec<String> = decode(v)?;
                ids.extend(members.iter().filter_map(|s| s.parse::<CalloutId>().ok()));
            }
        }
        ids.retain(|id| before.is_none_or(|b| *id < b));
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(limit);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let shards: Vec<u16> = {
            let mut s: Vec<u16> = ids.iter().map(|id| shard_of(*id)).collect();
            s.sort_unstable();
            s.dedup();
            s
        };
        let ids_ref = &ids;
        let docs = self
            .per_shard(&shards, &|shard| {
                ids_ref
                    .iter()
                    .filter(|id| shard_of(**id) == shard)
                    .map(|id| {
                        redis::cmd("HGET")
                            .arg(keys.callout(*id))
                            .arg("d")
                            .to_owned()
                    })
                    .collect()
            })
            .await?;
        let mut by_id = std::collections::HashMap::new();
        for (shard, replies) in shards.iter().zip(docs) {
            let of_shard = ids.iter().filter(|id| shard_of(**id) == *shard);
            for (id, v) in of_shard.zip(replies) {
                if let Some(d) = decode::<Option<String>>(v)? {
                    by_id.insert(*id, d);
                }
            }
        }
        ids.iter()
            .filter_map(|id| by_id.remove(id))
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
        // First every shard at once (one pipeline per server: one round trip on a
        // single server, one per primary on a cluster, sent together) for an
        // equal share of `max`; then, only when some shard had more than its
        // share, those shards one by one for what is left of `max`.
        let share = max.div_ceil(usize::from(SHARDS)).max(1);
        let firsts = self.claim_shards(&order, now, lease_until, share).await?;
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
                .claim_shards(&[shard], now, lease_until, max - out.len())
                .await?;
            out.extend(more.into_iter().flatten());
        }
        Ok(out)
    }

    /// Claims up to `max` due timers of each of `shards` (the `claim` script),
    /// one pipeline per server.
    async fn claim_shards(
        &self,
        shards: &[u16],
        now: Timestamp,
        lease_until: Timestamp,
        max: usize,
    ) -> Result<Vec<Vec<(CalloutId, Timestamp)>>, StoreError> {
        let lua = &self.shared.scripts.claim;
        let args = &[arg(ms(now)), arg(ms(lease_until)), arg(max.to_string())];
        let keys = &self.shared.keys;
        let call =
            |by_sha: bool| move |shard: u16| vec![lua.cmd(by_sha, &[keys.timers(shard)], args)];
        let replies = match self.per_shard(shards, &call(true)).await {
            Err(StoreError::Redis(e)) if is_noscript(&e) => {
                self.per_shard(shards, &call(false)).await?
            }
            r => r?,
        };
        replies
            .into_iter()
            .map(|r| {
                let flat: Vec<String> = match r.into_iter().next() {
                    Some(v) => decode(v)?,
                    None => Vec::new(),
                };
                flat.chunks_exact(2)
                    .map(|pair| {
                        let id = pair[0].parse().map_err(|e| corrupt("timer member", e))?;
                        let due = pair[1]
                            .parse::<f64>()
                            .map_err(|e| corrupt("timer score", e))?;
                        Ok((id, Timestamp(due as i64)))
                    })
                    .collect()
            })
            .collect()
    }

    pub(super) async fn release(
        &self,
        id: CalloutId,
        version: u64,
        next_due: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                &self.shared.scripts.release,
                &self.shared.keys.release_keys(id),
                &[
                    arg(id.to_string()),
                    arg(version.to_string()),
                    arg(opt_ms(next_due)),
                ],
            )
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
        let all: Vec<u16> = (0..SHARDS).collect();
        let keys = &self.shared.keys;
        let now = ms(now);
        let per_shard = self
            .per_shard(&all, &|shard| {
                vec![
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(keys.live(shard))
                        .arg("-inf")
                        .arg(&now)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(max)
                        .to_owned(),
                ]
            })
            .await?;
        let mut out = Vec::new();
        for v in per_shard.into_iter().flatten() {
            let members: Vec<String> = decode(v)?;
            out.extend(members.iter().filter_map(|s| s.parse::<CalloutId>().ok()));
        }
        out.truncate(max);
        Ok(out)
    }

    pub(super) async fn counts(&self) -> Result<Counts, StoreError> {
        let all: Vec<u16> = (0..SHARDS).collect();
        let keys = &self.shared.keys;
        let per_shard = self
            .per_shard(&all, &|shard| {
                vec![
                    redis::cmd("ZCARD")
                        .arg(keys.by_status(shard, CalloutStatus::Calling))
                        .to_owned(),
                    redis::cmd("ZCARD").arg(keys.live(shard)).to_owned(),
                ]
            })
            .await?;
        let mut counts = Counts::default();
        for replies in per_shard {
            let mut it = replies.into_iter();
            if let (Some(a), Some(l)) = (it.next(), it.next()) {
                counts.active_callouts += decode::<u64>(a)?;
                counts.live_calls += decode::<u64>(l)?;
            }
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
        let held: i64 = self
            .run(
                &self.shared.scripts.lock,
                &[self.shared.keys.lock(name)],
                &[arg(holder), arg(ttl.as_millis().to_string())],
            )
            .await?;
        Ok(held == 1)
    }

    pub(super) async fn reserve_person_call(
        &self,
        phone: &E164,
        call: CallId,
        limits: PersonLimits,
    ) -> Result<Option<Timestamp>, StoreError> {
        let wait_ms: i64 = self
            .run(
                &self.shared.scripts.person_call,
                &[self.shared.keys.person_calls(&phone.to_string())],
                &[
                    arg(call.to_string()),
                    arg(limits.per_15_min.to_string()),
                    arg(limits.per_hour.to_string()),
                ],
            )
            .await?;
        Ok((wait_ms > 0).then(|| Timestamp::now().plus(Duration::from_millis(wait_ms as u64))))
    }

    pub(super) async fn reserve_call_slot(
        &self,
        interval: Duration,
    ) -> Result<Duration, StoreError> {
        let wait_ms: i64 = self
            .run(
                &self.shared.scripts.rate,
                &[self.shared.keys.call_rate()],
                &[arg(interval.as_millis().max(1).to_string())],
            )
            .await?;
        Ok(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)))
    }

    // Assistants and teams are named documents: a hash of JSON documents by id,
    // and a hash of ids by name that `save_assistant.lua` and
    // `replace_assistant.lua` keep unique (the same scripts serve both).

    /// Creates or replaces the document `id` named `name` (`keys`: its hash and
    /// its names' hash), unless another one holds the name.
    async fn save_named(
        &self,
        keys: &[String],
        id: String,
        name: &str,
        json: Vec<u8>,
    ) -> Result<Saved, StoreError> {
        let saved: i64 = self
            .run(
                &self.shared.scripts.save_assistant,
                keys,
                &[arg(id), arg(name), json],
            )
            .await?;
        Ok(if saved == 1 {
            Saved::Yes
        } else {
            Saved::NameTaken
        })
    }

    /// Replaces the document `id` if it was last changed at `expected`.
    async fn replace_named(
        &self,
        keys: &[String],
        id: String,
        name: &str,
        json: Vec<u8>,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let result: i64 = self
            .run(
                &self.shared.scripts.replace_assistant,
                keys,
                &[arg(id), arg(name), json, arg(ms(expected))],
            )
            .await?;
        Ok(match result {
            1 => Replaced::Yes,
            0 => Replaced::NameTaken,
            2 => Replaced::Changed,
            _ => Replaced::NotFound,
        })
    }

    /// The document `id` of the hash `docs`.
    async fn named<T: serde::de::DeserializeOwned>(
        &self,
        docs: String,
        id: String,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.hget(docs, id).await?;
        raw.map(|r| serde_json::from_str(&r).map_err(|e| corrupt(what, e)))
            .transpose()
    }

    /// The id that the names' hash `names` holds for `name`.
    async fn id_named<I: std::str::FromStr>(
        &self,
        names: String,
        name: &str,
    ) -> Result<Option<I>, StoreError> {
        let mut conn = self.conn.clone();
        let id: Option<String> = conn.hget(names, name).await?;
        Ok(id.and_then(|s| s.parse().ok()))
    }

    /// Every document of the hash `docs`.
    async fn all_named<T: serde::de::DeserializeOwned>(
        &self,
        docs: String,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.hvals(docs).await?;
        raw.iter()
            .map(|r| serde_json::from_str(r).map_err(|e| corrupt(what, e)))
            .collect()
    }

    pub(super) async fn save_assistant(&self, assistant: &Assistant) -> Result<Saved, StoreError> {
        let json = serde_json::to_vec(assistant).map_err(|e| corrupt("assistant", e))?;
        let keys = self.shared.keys.assistant_keys();
        self.save_named(&keys, assistant.id.to_string(), &assistant.name, json)
            .await
    }

    pub(super) async fn assistant(&self, id: AssistantId) -> Result<Option<Assistant>, StoreError> {
        self.named(self.shared.keys.assistants(), id.to_string(), "assistant")
            .await
    }

    pub(super) async fn assistant_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Assistant>, StoreError> {
        match self
            .id_named(self.shared.keys.assistant_names(), name)
            .await?
        {
            Some(id) => self.assistant(id).await,
            None => Ok(None),
        }
    }

    pub(super) async fn assistants(&self) -> Result<Vec<Assistant>, StoreError> {
        self.all_named(self.shared.keys.assistants(), "assistant")
            .await
    }

    pub(super) async fn replace_assistant(
        &self,
        assistant: &Assistant,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let json = serde_json::to_vec(assistant).map_err(|e| corrupt("assistant", e))?;
        let keys = self.shared.keys.assistant_keys();
        self.replace_named(
            &keys,
            assistant.id.to_string(),
            &assistant.name,
            json,
            expected,
        )
        .await
    }

    /// Creates or replaces a team, keeping names unique.
    pub(super) async fn save_team(&self, team: &Team) -> Result<Saved, StoreError> {
        let json = serde_json::to_vec(team).map_err(|e| corrupt("team", e))?;
        let keys = self.shared.keys.team_keys();
        self.save_named(&keys, team.id.to_string(), &team.name, json)
            .await
    }

    pub(super) async fn team(&self, id: TeamId) -> Result<Option<Team>, StoreError> {
        self.named(self.shared.keys.teams(), id.to_string(), "team")
            .await
    }

    pub(super) async fn team_by_name(&self, name: &str) -> Result<Option<Team>, StoreError> {
        match self.id_named(self.shared.keys.team_names(), name).await? {
            Some(id) => self.team(id).await,
            None => Ok(None),
        }
    }

    pub(super) async fn teams(&self) -> Result<Vec<Team>, StoreError> {
        self.all_named(self.shared.keys.teams(), "team").await
    }

    pub(super) async fn replace_team(
        &self,
        team: &Team,
        expected: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let json = serde_json::to_vec(team).map_err(|e| corrupt("team", e))?;
        let keys = self.shared.keys.team_keys();
        self.replace_named(&keys, team.id.to_string(), &team.name, json, expected)
            .await
    }

    pub(super) async fn delete_team(&self, id: TeamId) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .run(
                &self.shared.scripts.delete_team,
                &self.shared.keys.team_keys(),
                &[arg(id.to_string())],
            )
            .await?;
        Ok(deleted == 1)
    }

    /// Creates (`expected` none) or replaces a schedule if it is still at
    /// `expected`, and sets its place in the due index, in one step.
    pub(super) async fn save_schedule(
        &self,
        schedule: &Schedule,
        expected: Option<Timestamp>,
    ) -> Result<Replaced, StoreError> {
        let json = serde_json::to_vec(schedule).map_err(|e| corrupt("schedule", e))?;
        let result: i64 = self
            .run(
                &self.shared.scripts.save_schedule,
                &self.shared.keys.schedule_keys(),
                &[
                    arg(schedule.id.to_string()),
                    json,
                    arg(expected.map(ms).unwrap_or_default()),
                    arg(schedule.due().map(ms).unwrap_or_default()),
                ],
            )
            .await?;
        Ok(match result {
            1 => Replaced::Yes,
            2 => Replaced::Changed,
            _ => Replaced::NotFound,
        })
    }

    pub(super) async fn schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn
            .hget(self.shared.keys.schedules(), id.to_string())
            .await?;
        raw.map(|r| serde_json::from_str(&r).map_err(|e| corrupt("schedule", e)))
            .transpose()
    }

    pub(super) async fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.hvals(self.shared.keys.schedules()).await?;
        raw.iter()
            .map(|r| serde_json::from_str(r).map_err(|e| corrupt("schedule", e)))
            .collect()
    }

    pub(super) async fn delete_schedule(&self, id: ScheduleId) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .run(
                &self.shared.scripts.delete_schedule,
                &self.shared.keys.schedule_keys(),
                &[arg(id.to_string())],
            )
            .await?;
        Ok(deleted == 1)
    }

    /// Claims due schedules for `lease` (the callouts' `claim.lua` on the
    /// schedules' due index): each goes to one replica until its lease ends.
    pub(super) async fn claim_due_schedules(
        &self,
        now: Timestamp,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ScheduleId>, StoreError> {
        let flat: Vec<String> = self
            .run(
                &self.shared.scripts.claim,
                &[self.shared.keys.schedules_due()],
                &[arg(ms(now)), arg(ms(now.plus(lease))), arg(max.to_string())],
            )
            .await?;
        Ok(flat
            .chunks(2)
            .filter_map(|pair| pair.first().and_then(|id| id.parse().ok()))
            .collect())
    }

    pub(super) async fn audio_clip(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.shared.keys.audio_clip(name)).await?)
    }

    pub(super) async fn save_audio_clip(
        &self,
        name: &str,
        wav: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let () = conn
            .pset_ex(self.shared.keys.audio_clip(name), wav, ttl_ms)
            .await?;
        Ok(())
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

    fn day_counter(&self, day: i64, by: Option<&str>) -> String {
        match by {
            None => self.shared.keys.calls_on_day(day),
            Some(by) => self.shared.keys.calls_on_day_by(day, by),
        }
    }

    pub(super) async fn count_call_today(
        &self,
        day: i64,
        by: Option<&str>,
    ) -> Result<u64, StoreError> {
        let n: u64 = self
            .run(
                &self.shared.scripts.day_count,
                &[self.day_counter(day, by)],
                &[arg((48 * 3600 * 1000u64).to_string())],
            )
            .await?;
        Ok(n)
    }

    pub(super) async fn calls_today(&self, day: i64, by: Option<&str>) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let n: Option<u64> = conn.get(self.day_counter(day, by)).await?;
        Ok(n.unwrap_or(0))
    }

    pub(super) async fn claim_idempotency_key(
        &self,
        digest: &str,
        record: &IdempotentRequest,
        ttl: Duration,
    ) -> Result<Option<IdempotentRequest>, StoreError> {
        let json = serde_json::to_string(record).map_err(|e| corrupt("idempotency record", e))?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let found: Option<String> = self
            .run(
                &self.shared.scripts.idempotency,
                &[self.shared.keys.idempotency(digest)],
                &[arg(json), arg(ttl_ms.to_string())],
            )
            .await?;
        found
            .map(|f| serde_json::from_str(&f).map_err(|e| corrupt("idempotency record", e)))
            .transpose()
    }

    pub(super) async fn save_idempotency_key(
        &self,
        digest: &str,
        record: &IdempotentRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| corrupt("idempotency record", e))?;
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let () = conn
            .pset_ex(self.shared.keys.idempotency(digest), json, ttl_ms)
            .await?;
        Ok(())
    }

    pub(super) async fn forget_idempotency_key(&self, digest: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.del(self.shared.keys.idempotency(digest)).await?;
        Ok(())
    }

    /// `use_assistant.lua`: records that `callout` calls with `assistant`.
    pub(super) async fn use_assistant(
        &self,
        assistant: AssistantId,
        callout: CalloutId,
    ) -> Result<(), StoreError> {
        let recorded: i64 = self
            .run(
                &self.shared.scripts.use_assistant,
                &self.shared.keys.use_assistant_keys(assistant),
                &[arg(assistant.to_string()), arg(callout.to_string())],
            )
            .await?;
        if recorded == 1 {
            Ok(())
        } else {
            Err(StoreError::AssistantGone(assistant))
        }
    }

    /// Records that `callout` calls with `assistant`, unconditionally (the
    /// upgrade backfill; creation goes through `use_assistant`).
    pub(super) async fn record_assistant_user(
        &self,
        assistant: AssistantId,
        callout: CalloutId,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn
            .sadd(
                self.shared.keys.assistant_users(assistant),
                callout.to_string(),
            )
            .await?;
        Ok(())
    }

    /// Drops the record that `callout` calls with `assistant` (best effort: a
    /// record left behind only delays a deletion until it is repaired).
    pub(super) async fn release_assistant(&self, assistant: AssistantId, callout: CalloutId) {
        let mut conn = self.conn.clone();
        let removed: Result<i64, _> = conn
            .srem(
                self.shared.keys.assistant_users(assistant),
                callout.to_string(),
            )
            .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, assistant_id = %assistant, callout_id = %callout, "the end of an assistant's use was not recorded");
        }
    }

    pub(super) async fn delete_assistant(&self, id: AssistantId) -> Result<Deleted, StoreError> {
        let mut repaired = false;
        loop {
            let answer: i64 = self
                .run(
                    &self.shared.scripts.delete_assistant,
                    &self.shared.keys.delete_assistant_keys(id),
                    &[arg(id.to_string())],
                )
                .await?;
            match answer {
                1 => return Ok(Deleted::Yes),
                0 => return Ok(Deleted::NotFound),
                n if repaired => return Ok(Deleted::InUse(n.unsigned_abs())),
                _ => {
                    self.repair_assistant_users(id).await?;
                    repaired = true;
                }
            }
        }
    }

    /// Drops the records of callouts that no longer call with an assistant but
    /// kept their record (a release lost with a connection, a replica that died
    /// between recording a creation and storing the callout): an ended callout,
    /// or one that does not exist ten minutes after its id was made (its
    /// creation would have been stored within the request timeout).
    async fn repair_assistant_users(&self, id: AssistantId) -> Result<(), StoreError> {
        const CREATION_WINDOW_MS: i64 = 10 * 60 * 1000;
        let mut conn = self.conn.clone();
        let key = self.shared.keys.assistant_users(id);
        let members: Vec<String> = conn.smembers(&key).await?;
        let now_ms = Timestamp::now().millis();
        for member in members {
            let Ok(callout) = member.parse::<CalloutId>() else {
                let _: i64 = conn.srem(&key, &member).await?;
                continue;
            };
            let status: Option<String> = conn.hget(self.shared.keys.callout(callout), "s").await?;
            let stale = match status.as_deref() {
                Some(s) => s != CalloutStatus::Calling.as_str(),
                None => now_ms - callout.created_ms() > CREATION_WINDOW_MS,
            };
            if stale {
                let _: i64 = conn.srem(&key, &member).await?;
            }
        }
        Ok(())
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
