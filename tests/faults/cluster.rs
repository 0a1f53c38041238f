//! The gateway replicas: real `ivr-gateway serve` processes in live mode, all on
//! one Redis and one `GATEWAY_SECRET`, behind the [`LoadBalancer`]. A replica is
//! killed with `SIGKILL` (no drain, no goodbye) and started again on the same
//! port; it rejoins the load balancer only once `/readyz` answers 200, which also
//! means "Redis is reachable", so while Redis is away restarts wait for it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::lb::LoadBalancer;

struct Replica {
    index: usize,
    port: u16,
    child: Option<Child>,
    starts: u32,
}

pub struct Cluster {
    env: Vec<(String, String)>,
    logdir: PathBuf,
    replicas: Vec<Arc<Mutex<Replica>>>,
    lb: LoadBalancer,
    http: reqwest::Client,
}

/// A port free right now (the replica binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Cluster {
    pub fn new(env: Vec<(String, String)>, logdir: &Path, lb: LoadBalancer, n: usize) -> Self {
        let replicas = (0..n)
            .map(|index| {
                Arc::new(Mutex::new(Replica {
                    index,
                    port: free_port(),
                    child: None,
                    starts: 0,
                }))
            })
            .collect();
        Self {
            env,
            logdir: logdir.to_owned(),
            replicas,
            lb,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
        }
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    fn log_file(&self, index: usize) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logdir.join(format!("replica-{index}.log")))
            .expect("replica log")
    }

    fn spawn(&self, r: &mut Replica) {
        let mut log = self.log_file(r.index);
        r.starts += 1;
        let _ = writeln!(
            log,
            "===== replica {} start #{} on port {} at {}",
            r.index,
            r.starts,
            r.port,
            ivr_gateway::domain::Timestamp::now()
        );
        let err = log.try_clone().expect("log clone");
        let child = Command::new(env!("CARGO_BIN_EXE_ivr-gateway"))
            .arg("serve")
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", r.port))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("the gateway binary starts");
        r.child = Some(child);
    }

    async fn ready(&self, port: u16) -> bool {
        matches!(
            self.http.get(format!("http://127.0.0.1:{port}/readyz")).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// Starts replica `i` (if it is not running) and returns once it is ready and
    /// in the load balancer. A process that exits (Redis unreachable at startup)
    /// is started again.
    pub async fn start(&self, i: usize) {
        let mut r = self.replicas[i].lock().await;
        let started = Instant::now();
        loop {
            let exited = match r.child.as_mut().map(Child::try_wait) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => true,
                Some(Ok(None)) => false,
            };
            if exited {
                self.spawn(&mut r);
            }
            if self.ready(r.port).await {
                self.lb.set_up(i, Some(r.port));
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "replica {i} did not become ready (see {})",
                self.logdir.join(format!("replica-{i}.log")).display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9` replica `i`; false if it was not running (or being started).
    pub async fn kill(&self, i: usize) -> bool {
        let Ok(mut r) = self.replicas[i].try_lock() else {
            return false; // being started: leave it alone
        };
        let Some(mut child) = r.child.take() else {
            return false;
        };
        self.lb.set_up(i, None);
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    /// Indices of replicas that are running and not being started.
    pub fn running(&self) -> Vec<usize> {
        self.replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.try_lock().is_ok_and(|r| r.child.is_some()))
            .map(|(i, _)| i)
            .collect()
    }

    pub async fn start_all(self: &Arc<Self>) {
        let starts: Vec<_> = (0..self.len())
            .map(|i| {
                let c = Arc::clone(self);
                tokio::spawn(async move { c.start(i).await })
            })
            .collect();
        for s in starts {
            s.await.expect("start task");
        }
    }

    /// `SIGTERM` every replica and waits for it (killing what does not stop).
    pub async fn stop_all(&self) {
        for (i, r) in self.replicas.iter().enumerate() {
            let mut r = r.lock().await;
            self.lb.set_up(i, None);
            if let Some(mut child) = r.child.take() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
                let started = Instant::now();
                while matches!(child.try_wait(), Ok(None))
                    && started.elapsed() < Duration::from_secs(15)
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in &self.replicas {
            if let Ok(mut r) = r.try_lock()
                && let Some(mut child) = r.child.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
