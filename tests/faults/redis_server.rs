//! The run's private `redis-server`: AOF with `appendfsync always` (an
//! acknowledged write survives `kill -9`), a unix socket in the run directory,
//! and the three ways the suite takes it away: killed and started again at once,
//! frozen (`SIGSTOP`, then `SIGCONT`: connections stay open but nothing answers,
//! the nastiest kind of outage), and killed and left down for a while.

use std::path::{Path, PathBuf};

#[path = "../support/redis_ha.rs"]
pub mod ha;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisProcess {
    dir: PathBuf,
    child: Option<Child>,
    frozen: bool,
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill {sig} {pid} failed");
}

impl RedisProcess {
    /// Starts a server keeping its data (AOF) and log in `dir`.
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("redis dir");
        let mut server = Self {
            dir: dir.to_owned(),
            child: None,
            frozen: false,
        };
        server.spawn();
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--unixsocketperm", "700", "--save", "", "--dir"])
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        // Connectable is not enough after a restart: the AOF must be loaded.
        while !self.answers_ping() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not start (see {})",
                self.dir.join("redis.log").display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: whatever was acknowledged is in the AOF.
    pub fn kill(&mut self) {
        self.thaw();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same directory (AOF) and socket.
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// `SIGSTOP`: the socket accepts, nothing answers.
    pub fn freeze(&mut self) {
        if let Some(pid) = self.pid()
            && !self.frozen
        {
            signal(pid, "-STOP");
            self.frozen = true;
        }
    }

    /// `SIGCONT`.
    pub fn thaw(&mut self) {
        if let Some(pid) = self.pid()
            && self.frozen
        {
            signal(pid, "-CONT");
            self.frozen = false;
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
