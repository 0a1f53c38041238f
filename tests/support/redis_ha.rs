//! Real Redis high-availability deployments for tests and the benchmark: a Redis
//! Cluster of `redis-server --cluster-enabled yes` processes on free ports, and a
//! Sentinel setup (a primary, a replica, three sentinels).
//!
//! Each server runs under a small `sh` watchdog that kills it when the process
//! that started it exits, so a cluster shared by a whole test binary (kept in a
//! `static`, never dropped) does not outlive it. A node can be killed (`kill -9`
//! through its pid file) and started again on the same directory: with its
//! `nodes.conf` it rejoins the cluster, as a replica of whoever took its slots.
//!
//! Included with `#[path]` by `tests/api`, `tests/faults` and `benches/bench`.

// Support code: a failed setup panics, which is how a test or a benchmark run fails.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port free now whose cluster bus port (`port + 10000`) is free too.
pub fn free_port_pair() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// `redis-cli -p port args...`, its stdout.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `redis-server` (or sentinel) process under its watchdog.
pub struct Node {
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    watchdog: Option<Child>,
    /// For a TLS-only server: the directory with `ca.crt`, `client.crt`/`.key`.
    tls: Option<PathBuf>,
}

impl Node {
    /// Starts `redis-server <args>` on `port` in `dir` (created).
    pub fn start(port: u16, dir: &Path, args: &[String]) -> Node {
        std::fs::create_dir_all(dir).expect("node dir");
        let mut node = Node {
            port,
            dir: dir.to_owned(),
            args: args.to_vec(),
            watchdog: None,
            tls: None,
        };
        node.spawn();
        node
    }

    /// A TLS-only server (`args` carry `--tls-port`); `certs` holds the CA and a
    /// client certificate for the readiness check.
    pub fn start_tls(port: u16, dir: &Path, args: &[String], certs: &Path) -> Node {
        std::fs::create_dir_all(dir).expect("node dir");
        let mut node = Node {
            port,
            dir: dir.to_owned(),
            args: args.to_vec(),
            watchdog: None,
            tls: Some(certs.to_owned()),
        };
        node.spawn();
        node
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.pidfile());
        let script = format!(
            "redis-server \"$@\" & r=$!; trap 'kill -9 $r 2>/dev/null' EXIT; \
             while kill -0 $r 2>/dev/null && kill -0 {owner} 2>/dev/null; do sleep 0.5; done",
            owner = std::process::id()
        );
        let mut args: Vec<String> = self.args.clone();
        let plain_port = if self.tls.is_some() { 0 } else { self.port };
        args.extend([
            "--port".into(),
            plain_port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--pidfile".into(),
            self.pidfile().display().to_string(),
            "--logfile".into(),
            "redis.log".into(),
        ]);
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        self.watchdog = Some(child);
        let port = self.port;
        let tls = self.tls.clone();
        wait_for(
            &format!("redis-server on port {port} answers"),
            Duration::from_secs(20),
            || match &tls {
                // Any answer over TLS (NOAUTH included) means it is up.
                Some(certs) => {
                    let out = Command::new("redis-cli")
                        .args(["-p", &port.to_string(), "--tls", "--cacert"])
                        .arg(certs.join("ca.crt"))
                        .arg("--cert")
                        .arg(certs.join("client.crt"))
                        .arg("--key")
                        .arg(certs.join("client.key"))
                        .arg("PING")
                        .stdin(Stdio::null())
                        .output();
                    out.is_ok_and(|o| !o.stdout.is_empty())
                }
                None => cli(port, &["PING"]).trim() == "PONG",
            },
        );
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// `kill -9` the server (nothing flushed, no goodbye to the cluster).
    pub fn kill(&mut self) {
        let Some(mut w) = self.watchdog.take() else {
            return;
        };
        match self.pid() {
            Some(pid) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            // No pid file (its directory is gone): stop the watchdog instead.
            None => {
                let _ = w.kill();
            }
        }
        let _ = w.wait();
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn is_running(&self) -> bool {
        self.watchdog.is_some()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Arguments of a cluster node.
fn cluster_args() -> Vec<String> {
    [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        // Failover within about two seconds of a primary's death.
        "--cluster-node-timeout",
        "1000",
        "--cluster-replica-validity-factor",
        "0",
        "--appendonly",
        "no",
        "--save",
        "",
    ]
    .map(String::from)
    .to_vec()
}

/// How the slots are given to the primaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slots {
    /// `redis-cli --cluster create` (equal slot ranges; needs 3 or more primaries).
    RedisCli,
    /// Ranges cut so that the gateway's 16 shards are spread as evenly as they
    /// can be (with equal ranges, 3 primaries would hold 8, 4 and 4 of them).
    ByShard,
}

/// A Redis Cluster: `primaries` primaries with `replicas` replicas each.
pub struct RedisCluster {
    // Before `_dir`: nodes are killed through pid files in it.
    pub nodes: Vec<Node>,
    pub primaries: usize,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Three primaries, a replica each, created with `redis-cli --cluster create`.
    pub fn start() -> RedisCluster {
        Self::start_with(3, 1, Slots::RedisCli)
    }

    pub fn start_with(primaries: usize, replicas: usize, slots: Slots) -> RedisCluster {
        let dir = tempfile::Builder::new()
            .prefix("ivr-cluster-")
            .tempdir()
            .expect("cluster dir");
        let n = primaries * (1 + replicas);
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let port = free_port_pair();
                Node::start(port, &dir.path().join(format!("n{i}")), &cluster_args())
            })
            .collect();
        let cluster = RedisCluster {
            nodes,
            primaries,
            _dir: dir,
        };
        match slots {
            Slots::RedisCli => cluster.create_with_redis_cli(replicas),
            Slots::ByShard => cluster.create_by_shard(replicas),
        }
        cluster.wait_healthy();
        cluster
    }

    fn create_with_redis_cli(&self, replicas: usize) {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn create_by_shard(&self, replicas: usize) {
        let ranges = shard_balanced_ranges(self.primaries);
        for (node, (start, end)) in self.nodes.iter().zip(&ranges) {
            let out = cli(
                node.port,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &start.to_string(),
                    &end.to_string(),
                ],
            );
            assert!(out.contains("OK"), "ADDSLOTSRANGE: {out}");
        }
        let first = self.nodes[0].port.to_string();
        for node in &self.nodes[1..] {
            cli(node.port, &["CLUSTER", "MEET", "127.0.0.1", &first]);
        }
        let total = self.nodes.len();
        for node in &self.nodes {
            wait_for(
                "every node knows every other",
                Duration::from_secs(20),
                || cli(node.port, &["CLUSTER", "NODES"]).lines().count() == total,
            );
        }
        for (i, node) in self.nodes.iter().enumerate().skip(self.primaries) {
            let primary = &self.nodes[(i - self.primaries) % self.primaries];
            let id = cli(primary.port, &["CLUSTER", "MYID"]).trim().to_owned();
            wait_for(
                "a replica follows its primary",
                Duration::from_secs(20),
                || cli(node.port, &["CLUSTER", "REPLICATE", &id]).contains("OK"),
            );
        }
        let _ = replicas;
    }

    /// Every node sees a healthy cluster and every primary has its replicas in sync.
    pub fn wait_healthy(&self) {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            wait_for("cluster_state:ok", Duration::from_secs(30), || {
                cli(node.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        let replicas = self.nodes.len() / self.primaries - 1;
        for port in self.primary_ports() {
            wait_for("replicas in sync", Duration::from_secs(60), || {
                let info = cli(port, &["INFO", "replication"]);
                info.lines().filter(|l| l.contains("state=online")).count() >= replicas
            });
        }
    }

    /// Every node runs and every primary has its replicas in sync (so that one
    /// more primary may die without losing slots).
    pub fn healthy(&self) -> bool {
        if self.nodes.iter().any(|n| !n.is_running()) {
            return false;
        }
        let replicas = self.nodes.len() / self.primaries - 1;
        let ports = self.primary_ports();
        ports.len() == self.primaries
            && ports.iter().all(|p| {
                cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && cli(*p, &["INFO", "replication"])
                        .lines()
                        .filter(|l| l.contains("state=online"))
                        .count()
                        >= replicas
            })
    }

    /// `redis+cluster://` URL naming every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Ports of the current primaries (as a running node sees them).
    pub fn primary_ports(&self) -> Vec<u16> {
        let Some(alive) = self.nodes.iter().find(|n| n.is_running()) else {
            return Vec::new();
        };
        // Masters holding slots: a restarted old primary shows as an empty master
        // for a moment before it learns it was replaced and turns replica.
        cli(alive.port, &["CLUSTER", "NODES"])
            .lines()
            .filter(|l| {
                l.contains("master") && !l.contains("fail") && l.split_whitespace().count() > 8
            })
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect()
    }

    /// The port of the primary holding `key`'s slot.
    pub fn primary_of(&self, key: &str) -> u16 {
        let alive = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        let slot: u16 = cli(alive.port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("keyslot");
        let slots = cli(alive.port, &["CLUSTER", "NODES"]);
        for line in slots.lines().filter(|l| l.contains("master")) {
            let mut parts = line.split_whitespace();
            let addr = parts.nth(1).unwrap_or_default();
            let owns = parts.skip(6).any(|r| match r.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => r.parse::<u16>() == Ok(slot),
            });
            if owns {
                return addr
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("port");
            }
        }
        panic!("no primary holds slot {slot}")
    }

    pub fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("node")
    }

    /// Waits until a node other than `dead` holds `key`'s slot (a replica was promoted).
    pub fn wait_promoted(&self, key: &str, dead: u16, limit: Duration) -> u16 {
        let started = Instant::now();
        loop {
            let p = self.primary_of(key);
            if p != dead && cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                return p;
            }
            assert!(
                started.elapsed() < limit,
                "no replica promoted within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Slot ranges for `k` primaries such that the gateway's shard tags `{s00}`…`{s15}`
/// are spread evenly (their slots are sorted and cut into `k` runs).
pub fn shard_balanced_ranges(k: usize) -> Vec<(u16, u16)> {
    let mut slots: Vec<u16> = (0..16u16)
        .map(ivr_gateway::store::keys::shard_slot)
        .collect();
    slots.sort_unstable();
    let mut ranges = Vec::new();
    let mut start = 0u16;
    for i in 1..=k {
        let end = if i == k {
            16383
        } else {
            let cut = i * slots.len() / k;
            (slots[cut - 1] + slots[cut]) / 2
        };
        ranges.push((start, end));
        start = end + 1;
    }
    ranges
}

/// A primary, a replica and three sentinels watching them as `mymaster`.
pub struct RedisSentinel {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    _dir: tempfile::TempDir,
}

pub const MASTER_NAME: &str = "mymaster";

impl RedisSentinel {
    pub fn start() -> RedisSentinel {
        let dir = tempfile::Builder::new()
            .prefix("ivr-sentinel-")
            .tempdir()
            .expect("sentinel dir");
        let data = ["--appendonly", "no", "--save", ""].map(String::from);
        let primary = Node::start(free_port_pair(), &dir.path().join("primary"), &data);
        let mut replica_args = data.to_vec();
        replica_args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ]);
        let replica = Node::start(free_port_pair(), &dir.path().join("replica"), &replica_args);
        let sentinels = (0..3)
            .map(|i| {
                let d = dir.path().join(format!("sentinel{i}"));
                std::fs::create_dir_all(&d).expect("dir");
                let conf = d.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "sentinel monitor {MASTER_NAME} 127.0.0.1 {p} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 5000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        p = primary.port
                    ),
                )
                .expect("sentinel.conf");
                Node::start(
                    free_port_pair(),
                    &d,
                    &[conf.display().to_string(), "--sentinel".into()],
                )
            })
            .collect::<Vec<_>>();
        let s = RedisSentinel {
            primary,
            replica,
            sentinels,
            _dir: dir,
        };
        for sentinel in &s.sentinels {
            wait_for(
                "sentinels see the replica and each other",
                Duration::from_secs(30),
                || {
                    let m = cli(sentinel.port, &["SENTINEL", "MASTER", MASTER_NAME]);
                    let lines: Vec<&str> = m.lines().collect();
                    let field = |name: &str| {
                        lines
                            .iter()
                            .position(|l| *l == name)
                            .and_then(|i| lines.get(i + 1))
                            .and_then(|v| v.parse::<u32>().ok())
                            .unwrap_or(0)
                    };
                    field("num-slaves") >= 1 && field("num-other-sentinels") >= 2
                },
            );
        }
        wait_for("the replica is in sync", Duration::from_secs(30), || {
            cli(s.primary.port, &["INFO", "replication"]).contains("state=online")
        });
        s
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The primary's port as the sentinels name it.
    pub fn primary_port(&self) -> u16 {
        let out = cli(
            self.sentinels[0].port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        );
        out.lines().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0)
    }
}
