//! The connection behind [`super::RedisStore`], for each kind of deployment
//! ([`Target`]), behind the crate's own `ConnectionLike` so every command and
//! script is written once.
//!
//! - One server: a multiplexed `ConnectionManager`, which reconnects by itself.
//! - Redis Cluster: the crate's async cluster connection. It follows `MOVED` and
//!   `ASK`, refreshes the slot map after a failover, and *retries* a command whose
//!   connection dropped (so a write may run twice: see the commit script's writer
//!   token). A pipeline must stay on one slot (the crate refuses one that does not)
//!   or be routed explicitly to one node: see [`Conn::shard_groups`].
//! - Sentinel: a `ConnectionManager` on the primary the sentinels name. When that
//!   server stops answering or answers `READONLY` (it was demoted), the sentinels
//!   are asked again and a new manager is built on the new primary; a command that
//!   got `READONLY` provably did not run and is sent once more to the new primary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, TlsCertificates, TlsMode, Value,
};

use super::keys::{SHARDS, shard_slot};
use super::target::Target;

/// Connect and response timeouts of every connection. The crate's defaults (1 s
/// connect, 500 ms response) turn a busy moment into errors.
struct Timeouts {
    connect: Duration,
    response: Duration,
}

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    response: Duration::from_secs(3),
};

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUTS.connect))
        .set_response_timeout(Some(TIMEOUTS.response))
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2))
}

/// A connection of any kind; cheap to clone (every kind multiplexes).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection, Arc<Topology>),
    Sentinel(Arc<SentinelConn>),
}

impl Conn {
    /// Connects. `tls` (a private CA, a client certificate) applies to `rediss`
    /// URLs; without it the system's trusted roots are used.
    pub async fn open(target: &Target, tls: Option<&TlsCertificates>) -> RedisResult<Conn> {
        crate::net::install_crypto_provider();
        match target {
            Target::Single(url) => {
                let client = match tls {
                    Some(certs) if url.starts_with("rediss") => {
                        redis::Client::build_with_tls(url.as_str(), certs.clone())?
                    }
                    _ => redis::Client::open(url.as_str())?,
                };
                Ok(Conn::Single(
                    client
                        .get_connection_manager_with_config(manager_config())
                        .await?,
                ))
            }
            Target::Cluster { nodes } => {
                let mut builder = ClusterClientBuilder::new(nodes.clone());
                if let Some(certs) = tls.filter(|_| nodes.iter().any(|n| n.starts_with("rediss"))) {
                    builder = builder.certs(certs.clone());
                }
                let client = builder
                    .connection_timeout(TIMEOUTS.connect)
                    .response_timeout(TIMEOUTS.response)
                    // About 10 s of retries: long enough for a replica to be
                    // promoted (node timeout + election), short enough to fail.
                    .retries(10)
                    .min_retry_wait(100)
                    .max_retry_wait(1500)
                    .build()?;
                let conn = client.get_async_connection().await?;
                let topology = Arc::new(Topology::default());
                topology.refresh(&conn).await?;
                Ok(Conn::Cluster(conn, topology))
            }
            Target::Sentinel {
                sentinels,
                master,
                node,
            } => Ok(Conn::Sentinel(Arc::new(
                SentinelConn::open(sentinels, master, node, tls).await?,
            ))),
        }
    }

    /// The shards grouped by the server that holds them: one group per primary in
    /// a cluster, one group of all shards otherwise. Each group can be sent as one
    /// pipeline ([`Conn::pipeline_on`]).
    pub fn shard_groups(&self, shards: &[u16]) -> Vec<Vec<u16>> {
        match self {
            Conn::Cluster(_, topology) => topology.group(shards),
            _ => vec![shards.to_vec()],
        }
    }

    /// Sends `pipe` (commands of `shards`, all held by one server) as one round trip.
    pub async fn pipeline_on(&self, shards: &[u16], pipe: Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Cluster(conn, _) if shards.len() > 1 => {
                let route = Route::new(shard_slot(shards[0]), SlotAddr::Master);
                let n = pipe.len();
                conn.clone()
                    .route_pipeline(pipe, 0, n, SingleNodeRoutingInfo::SpecificNode(route))
                    .await
            }
            _ => pipe.query_async(&mut self.clone()).await,
        }
    }

    /// After an error on a grouped pipeline: the slot map may have moved.
    pub async fn topology_changed(&self) {
        if let Conn::Cluster(conn, topology) = self
            && let Err(e) = topology.refresh(conn).await
        {
            tracing::warn!(error = %e, "could not read the cluster's slot map");
        }
    }

    /// The server's name for this deployment, for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Conn::Single(_) => "single",
            Conn::Cluster(..) => "cluster",
            Conn::Sentinel(_) => "sentinel",
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c, _) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => {
                let s = Arc::clone(s);
                Box::pin(async move { s.command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c, _) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(s) => {
                let s = Arc::clone(s);
                Box::pin(async move { s.commands(pipeline, offset, count).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c, _) => c.get_db(),
            Conn::Sentinel(s) => s.current().get_db(),
        }
    }
}

/// Which primary holds each shard's slot, read with `CLUSTER SLOTS`.
#[derive(Default)]
pub(super) struct Topology {
    /// Primary address per shard.
    owners: RwLock<Vec<String>>,
}

impl Topology {
    async fn refresh(&self, conn: &ClusterConnection) -> RedisResult<()> {
        let reply: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn.clone())
            .await?;
        let mut ranges = Vec::new();
        if let Value::Array(items) = reply {
            for item in items {
                let Value::Array(parts) = item else { continue };
                if let [
                    Value::Int(start),
                    Value::Int(end),
                    Value::Array(primary),
                    ..,
                ] = parts.as_slice()
                {
                    let addr = match primary.as_slice() {
                        [Value::BulkString(host), Value::Int(port), ..] => {
                            format!("{}:{port}", String::from_utf8_lossy(host))
                        }
                        _ => continue,
                    };
                    ranges.push((*start, *end, addr));
                }
            }
        }
        let owners = (0..SHARDS)
            .map(|shard| {
                let slot = i64::from(shard_slot(shard));
                ranges
                    .iter()
                    .find(|(s, e, _)| (*s..=*e).contains(&slot))
                    .map_or_else(|| format!("unassigned-{shard}"), |r| r.2.clone())
            })
            .collect();
        *self.owners.write().unwrap_or_else(|p| p.into_inner()) = owners;
        Ok(())
    }

    fn group(&self, shards: &[u16]) -> Vec<Vec<u16>> {
        let owners = self.owners.read().unwrap_or_else(|p| p.into_inner());
        let mut by_node: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        for &s in shards {
            let owner = owners.get(usize::from(s)).map_or("", String::as_str);
            by_node.entry(owner).or_default().push(s);
        }
        by_node.into_values().collect()
    }
}

/// Errors after which the primary may have changed.
fn is_gone(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn is_readonly(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(ServerErrorKind::ReadOnly)
}

/// TLS mode of an address, if it is TLS.
fn tls_mode(addr: &ConnectionAddr) -> Option<TlsMode> {
    match addr {
        ConnectionAddr::TcpTls { insecure, .. } => Some(if *insecure {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        }),
        _ => None,
    }
}

/// A Sentinel client from the URLs of [`Target::Sentinel`]: the sentinels' own
/// credentials and TLS, and the primary's credentials, database and TLS.
fn sentinel_client(
    sentinels: &[String],
    master: &str,
    node: &str,
    tls: Option<&TlsCertificates>,
) -> RedisResult<SentinelClient> {
    let node = node.into_connection_info()?;
    let infos = sentinels
        .iter()
        .map(|s| s.as_str().into_connection_info())
        .collect::<RedisResult<Vec<_>>>()?;
    let addrs: Vec<ConnectionAddr> = infos.iter().map(|i| i.addr().clone()).collect();
    let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
        .set_client_to_redis_db(node.redis_settings().db());
    let redis = node.redis_settings();
    if let Some(u) = redis.username() {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = redis.password() {
        b = b.set_client_to_redis_password(p);
    }
    if let Some(mode) = tls_mode(node.addr()) {
        b = b.set_client_to_redis_tls_mode(mode);
        if let Some(certs) = tls {
            b = b.set_client_to_redis_certificates(certs.clone());
        }
    }
    if let Some(first) = infos.first() {
        let s = first.redis_settings();
        if let Some(u) = s.username() {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = s.password() {
            b = b.set_client_to_sentinel_password(p);
        }
        if let Some(mode) = tls_mode(first.addr()) {
            b = b.set_client_to_sentinel_tls_mode(mode);
            if let Some(certs) = tls {
                b = b.set_client_to_sentinel_certificates(certs.clone());
            }
        }
    }
    b.build()
}

/// The primary that the sentinels name, followed across failovers.
pub(super) struct SentinelConn {
    client: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<(ConnectionAddr, ConnectionManager)>,
    /// When the sentinels were last asked (asking is rate-limited).
    asked: Mutex<Instant>,
}

impl SentinelConn {
    async fn open(
        sentinels: &[String],
        master: &str,
        node: &str,
        tls: Option<&TlsCertificates>,
    ) -> RedisResult<SentinelConn> {
        let mut client = sentinel_client(sentinels, master, node, tls)?;
        let primary = client.async_get_client().await?;
        let addr = primary.get_connection_info().addr().clone();
        let manager = primary
            .get_connection_manager_with_config(manager_config())
            .await?;
        Ok(SentinelConn {
            client: tokio::sync::Mutex::new(client),
            current: RwLock::new((addr, manager)),
            asked: Mutex::new(Instant::now()),
        })
    }

    fn current(&self) -> ConnectionManager {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Asks the sentinels for the primary and moves to it if it changed. At most
    /// once per 250 ms; concurrent callers wait for the one asking.
    async fn follow(&self) {
        let mut client = self.client.lock().await;
        {
            let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
            if asked.elapsed() < Duration::from_millis(250) {
                return;
            }
            *asked = Instant::now();
        }
        let primary = match client.async_get_client().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "the sentinels named no reachable primary");
                return;
            }
        };
        let addr = primary.get_connection_info().addr().clone();
        let same = self.current.read().unwrap_or_else(|p| p.into_inner()).0 == addr;
        if same {
            return;
        }
        match primary
            .get_connection_manager_with_config(manager_config())
            .await
        {
            Ok(manager) => {
                tracing::warn!(primary = %addr, "Redis primary changed (Sentinel failover)");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (addr, manager);
            }
            Err(e) => tracing::warn!(error = %e, primary = %addr, "cannot reach the new primary"),
        }
    }

    async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self.current().req_packed_command(cmd).await {
            Err(e) if is_readonly(&e) => {
                self.follow().await;
                self.current().req_packed_command(cmd).await
            }
            Err(e) if is_gone(&e) => {
                self.follow().await;
                Err(e)
            }
            r => r,
        }
    }

    async fn commands(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        // A pipeline's replies carry a READONLY as a value, not as an error.
        let readonly = |v: &Vec<Value>| {
            v.iter()
                .any(|x| matches!(x, Value::ServerError(e) if e.code() == "READONLY"))
        };
        match self
            .current()
            .req_packed_commands(pipe, offset, count)
            .await
        {
            Ok(v) if readonly(&v) => {
                self.follow().await;
                self.current()
                    .req_packed_commands(pipe, offset, count)
                    .await
            }
            Err(e) if is_readonly(&e) => {
                self.follow().await;
                self.current()
                    .req_packed_commands(pipe, offset, count)
                    .await
            }
            Err(e) if is_gone(&e) => {
                self.follow().await;
                Err(e)
            }
            r => r,
        }
    }
}
