//! A private `redis-server` per test: its own temporary directory and unix socket,
//! killed when dropped. Tests never touch a shared instance's contents.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// A server keeping nothing on disk.
    pub fn start() -> Self {
        Self::start_with(&["--appendonly", "no"])
    }

    /// A server with AOF persistence (survives `restart`).
    pub fn start_persistent() -> Self {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            child: None,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// `unix://` URL of this server.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--unixsocketperm", "700", "--save", "", "--dir"])
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the tests (apt-get install redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the server (as `kill -9` would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts it again on the same directory and socket.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[path = "../support/redis_ha.rs"]
pub mod ha;

/// One Redis Cluster (3 primaries, 3 replicas) for the whole test binary; each
/// test keeps to its own key prefix ([`unique_prefix`]). Tests that kill nodes
/// start their own.
pub fn shared_cluster() -> &'static ha::RedisCluster {
    static CLUSTER: std::sync::OnceLock<ha::RedisCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(ha::RedisCluster::start)
}

/// One Sentinel setup (primary, replica, three sentinels) for the whole test binary.
pub fn shared_sentinel() -> &'static ha::RedisSentinel {
    static SENTINEL: std::sync::OnceLock<ha::RedisSentinel> = std::sync::OnceLock::new();
    SENTINEL.get_or_init(ha::RedisSentinel::start)
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A `redis-server` speaking TLS only, with its own throwaway CA (made with the
/// `openssl` command line, as Redis's own test suite does), a server certificate
/// for `localhost`/127.0.0.1, a client certificate, and an ACL user `gw`.
pub struct TlsRedis {
    pub port: u16,
    // Dropped first: the server is killed through its pid file in `dir`.
    _node: ha::Node,
    pub dir: tempfile::TempDir,
}

pub const TLS_USER: &str = "gw";
pub const TLS_PASSWORD: &str = "gw-password-0123456789";

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn issue(dir: &std::path::Path, name: &str, subject: &str, ext: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    let extfile = format!("{name}.ext");
    std::fs::write(dir.join(&extfile), ext).expect("ext");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ],
    );
}

impl TlsRedis {
    /// `require_client_cert`: the server asks for a client certificate (mutual TLS).
    pub fn start(require_client_cert: bool) -> TlsRedis {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=ivr-gateway test CA",
            ],
        );
        issue(
            d,
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        issue(
            d,
            "client",
            "/CN=ivr-gateway",
            "extendedKeyUsage=clientAuth\n",
        );
        let port = ha::free_port_pair();
        let path = |f: &str| d.join(f).display().to_string();
        let args: Vec<String> = vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path("server.crt"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.crt"),
            "--tls-auth-clients".into(),
            if require_client_cert { "yes" } else { "no" }.into(),
            // Like a line of redis.conf: `user default off`, `user gw on >pw ...`.
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
            TLS_USER.into(),
            "on".into(),
            format!(">{TLS_PASSWORD}"),
            // The least the gateway needs (the runbook's ACL line, on every key).
            "~*".into(),
            "resetchannels".into(),
            "-@all".into(),
            "+@read".into(),
            "+@write".into(),
            "+@scripting".into(),
            "+@connection".into(),
            "+wait".into(),
            "+time".into(),
            "+info".into(),
            "+config|get".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
        ];
        // `Node` turns the plain port off and checks readiness over TLS.
        let node = ha::Node::start_tls(port, &d.join("data"), &args, d);
        TlsRedis {
            port,
            _node: node,
            dir,
        }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}
