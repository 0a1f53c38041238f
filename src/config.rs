//! Configuration: read once from the environment into one typed [`Config`].
//!
//! Nothing else in the crate reads environment variables. [`Config::from_env`]
//! decides the mode (sandbox when no Routee credentials are given, live otherwise),
//! applies defaults, and collects *every* problem before failing, so an operator
//! fixes a live deployment in one round. Secrets are wrapped in [`Secret`], whose
//! `Debug` never prints them. The README's configuration table mirrors this file.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::domain::{Destinations, PersonLimits, Policy};

/// The simulator's phones (`+3069000000xx`): the sandbox always allows them.
pub const SANDBOX_TEST_RANGE: &str = "+306900000";

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Call sites are easy to audit with `grep expose`.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Sandbox (built-in carrier simulator) or live (real Routee).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sandbox,
    Live,
}

/// Who an API key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// May create, read and cancel callouts, and use the conversation tools.
    Dispatcher,
    /// Everything, including registering and deleting assistants.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dispatcher => "dispatcher",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub role: Role,
    pub token: Secret<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct RouteeConfig {
    /// `None` in sandbox mode until the simulator supplies its own.
    pub app_id: Option<String>,
    pub app_secret: Option<Secret<String>>,
    pub api_url: Url,
    pub auth_url: Url,
    /// Caller ID for outbound calls.
    pub from: String,
    /// Outbound call creations per second, across all replicas.
    pub calls_per_second: f64,
}

#[derive(Debug, Clone)]
pub struct VoiceflowConfig {
    pub runtime_url: Url,
    pub api_url: Url,
    /// Registers the assistant `default` at startup when set.
    pub api_key: Option<Secret<String>>,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Multiplies every simulated duration (rings, speech, pauses); 0.1 = 10x faster.
    pub time_scale: f64,
    /// A JSON file of callee behaviours by phone number.
    pub callees_file: Option<PathBuf>,
    /// `SIM_TONES`: how the simulator's `collectedTones` read (`cumulative`,
    /// the default, or `per_submit`).
    pub tones: crate::sim::ToneReading,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub listen_addr: SocketAddr,
    pub public_url: Url,
    /// `PUBLIC_URL` was not set: the address actually bound is used (sandbox).
    pub public_url_is_default: bool,
    /// `VOICEFLOW_RUNTIME_URL`/`VOICEFLOW_API_URL` were not set (the sandbox then
    /// serves its simulated assistant when no `VOICEFLOW_API_KEY` is given).
    pub voiceflow_urls_are_default: bool,
    /// One server (`redis://`, `rediss://`, `unix://`), a cluster (`redis+cluster://`)
    /// or Sentinel (`redis+sentinel://`): see `store::target`.
    pub redis_url: Option<Secret<String>>,
    /// Prefix of every Redis key (lets several deployments or tests share a server).
    pub redis_prefix: String,
    /// Replicas that must acknowledge the writes that matter most (`WAIT`);
    /// `None`: 1 on a cluster or Sentinel, 0 on one server.
    pub redis_wait_replicas: Option<u32>,
    /// How long such a write waits for them before it stands unreplicated.
    pub redis_wait_timeout: Duration,
    /// PEM files for `rediss://`: CA (instead of the system roots), client
    /// certificate and key (mutual TLS).
    pub redis_tls_ca_file: Option<PathBuf>,
    pub redis_tls_cert_file: Option<PathBuf>,
    pub redis_tls_key_file: Option<PathBuf>,
    pub routee: RouteeConfig,
    pub voiceflow: VoiceflowConfig,
    /// Signs webhook URLs and notifications; encrypts stored Voiceflow keys.
    pub gateway_secret: Secret<Vec<u8>>,
    /// `NOTIFY_SECRET`: the HMAC key of `notify_url` deliveries (receivers hold
    /// this, never `GATEWAY_SECRET`).
    pub notify_secret: Option<Secret<Vec<u8>>>,
    /// The secret being rotated out: still accepted for verification and decryption.
    pub previous_secret: Option<Secret<Vec<u8>>>,
    /// `GATEWAY_SECRET_NEXT`: accepted to verify and decrypt ahead of a rotation.
    pub next_secret: Option<Secret<Vec<u8>>>,
    /// True when `GATEWAY_SECRET` was unset and a random one was made (sandbox).
    pub secret_is_ephemeral: bool,
    /// Empty means no authentication (only allowed in sandbox on loopback).
    pub api_keys: Vec<ApiKey>,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// A separate listener for `/metrics`, if set (it is also on the main listener).
    pub metrics_addr: Option<SocketAddr>,
    /// Total time the gateway allows itself to answer Routee's eventUrl (Routee waits 3 s).
    pub webhook_deadline: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub dialplans_dir: PathBuf,
    /// How long finished callouts are kept.
    pub retention: Duration,
    pub max_contacts: usize,
    pub max_body_bytes: usize,
    pub timer_poll: Duration,
    /// Seconds to wait, after an answered call ends without a decision, for Routee's
    /// end-of-call COLLECT post that may still carry a key press.
    pub collect_grace: Duration,
    /// `CARRIER_OUTAGE_LIMIT_S`: how long the carrier may fail to create an
    /// attempt's call before its callout ends `failed` (`carrier_unavailable`).
    pub carrier_outage_limit: Duration,
    /// `ROUTEE_UNCONFIRMED_WINDOW_S`: how long a creation that may have made a
    /// call waits for a callback before it is placed again on the same attempt.
    pub unconfirmed_window: Duration,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// HTTP server limits (`http::serve`).
    pub http_header_timeout: Duration,
    pub http_request_timeout: Duration,
    /// `MAX_CALLS_PER_DAY`: calls placed per UTC day, all replicas together.
    pub max_calls_per_day: Option<u64>,
    /// `MAX_CALLS_PER_DAY_PER_KEY`: calls placed per UTC day for the callouts of
    /// one API key (all replicas together).
    pub max_calls_per_day_per_key: Option<u64>,
    /// `PERSON_CALLS_PER_15_MIN`, `PERSON_CALLS_PER_HOUR`: calls to one number
    /// across every callout and replica (0: no limit).
    pub person_limits: PersonLimits,
    /// How long an `Idempotency-Key` of `POST /v1/callouts` is remembered.
    pub idempotency_ttl: Duration,
    pub http_max_connections: usize,
    /// `HTTP_MAX_CONNECTIONS_PER_IP`: open connections per client address
    /// (`None`: no per-address limit, as behind a load balancer).
    pub http_max_connections_per_ip: Option<usize>,
    pub http_max_header_bytes: usize,
    /// Let operator-supplied URLs (`notify_url`) point at private/loopback addresses.
    pub allow_private_urls: bool,
    pub default_policy: Policy,
    /// `ALLOWED_DESTINATIONS`: where callees and transfer targets may be.
    pub allowed_destinations: Destinations,
    pub sim: SimConfig,
}

/// Every problem found in the environment, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads the environment variables named in the README, with problems collected.
struct Reader<'a> {
    env: &'a HashMap<String, String>,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.env
            .get(key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn parse<T: std::str::FromStr>(&mut self, key: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => default,
            Some(raw) => raw.parse().unwrap_or_else(|e| {
                self.problems
                    .push(format!("{key}: cannot parse {raw:?}: {e}"));
                default
            }),
        }
    }

    fn url(&mut self, key: &str, default: &str) -> Url {
        let raw = self.get(key).unwrap_or(default);
        match Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(_) => {
                self.problems
                    .push(format!("{key}: {raw:?} is not an http(s) URL"));
                fallback_url()
            }
            Err(e) => {
                self.problems
                    .push(format!("{key}: {raw:?} is not a URL: {e}"));
                fallback_url()
            }
        }
    }

    fn millis(&mut self, key: &str, default_ms: u64, min: u64, max: u64) -> Duration {
        let v = self.parse(key, default_ms);
        if !(min..=max).contains(&v) {
            self.problems
                .push(format!("{key}: {v} is outside {min}..={max}"));
        }
        Duration::from_millis(v.clamp(min, max))
    }
}

fn fallback_url() -> Url {
    // Only reached after a problem was recorded; startup fails before it is used.
    Url::parse("http://invalid.localhost/").unwrap_or_else(|_| unreachable!("static URL parses"))
}

/// `ROUTEE_APP_ID` and `ROUTEE_APP_SECRET`: both set is live mode, neither the sandbox.
fn read_mode(r: &mut Reader<'_>) -> (Mode, Option<String>, Option<String>) {
    let app_id = r.get("ROUTEE_APP_ID").map(str::to_owned);
    let app_secret = r.get("ROUTEE_APP_SECRET").map(str::to_owned);
    let mode = match (&app_id, &app_secret) {
        (None, None) => Mode::Sandbox,
        (Some(_), Some(_)) => Mode::Live,
        (Some(_), None) => {
            r.problems
                .push("ROUTEE_APP_SECRET: required when ROUTEE_APP_ID is set".into());
            Mode::Live
        }
        (None, Some(_)) => {
            r.problems
                .push("ROUTEE_APP_ID: required when ROUTEE_APP_SECRET is set".into());
            Mode::Live
        }
    };
    (mode, app_id, app_secret)
}

fn read_public_url(r: &mut Reader<'_>, live: bool, listen_addr: SocketAddr) -> Url {
    let public_url = match r.get("PUBLIC_URL") {
        Some(_) => r.url("PUBLIC_URL", ""),
        None if live => {
            r.problems.push(
                "PUBLIC_URL: required in live mode (the base URL at which Routee reaches this gateway)".into(),
            );
            fallback_url()
        }
        None => r.url("PUBLIC_URL", &format!("http://{listen_addr}")),
    };
    // Routee reaches the gateway at PUBLIC_URL: over http the signed
    // webhook URLs (and the key presses) cross the network in clear. A
    // TLS terminator in front means PUBLIC_URL is its https address.
    let allow_insecure_public_url: bool = r.parse("ALLOW_INSECURE_PUBLIC_URL", false);
    if live && public_url.scheme() != "https" && r.get("PUBLIC_URL").is_some() {
        if allow_insecure_public_url {
            tracing::warn!(
                "PUBLIC_URL is not https (ALLOW_INSECURE_PUBLIC_URL): webhook signatures cross the network in clear"
            );
        } else {
            r.problems.push(
                "PUBLIC_URL: must be https in live mode (webhook URLs carry signatures); set ALLOW_INSECURE_PUBLIC_URL=true only for a test network".into(),
            );
        }
    }
    public_url
}

fn read_routee(
    r: &mut Reader<'_>,
    app_id: Option<String>,
    app_secret: Option<String>,
    live: bool,
) -> RouteeConfig {
    let from = match r.get("ROUTEE_FROM") {
        Some(f) => f.to_owned(),
        None if live => {
            r.problems.push(
                "ROUTEE_FROM: required in live mode (the caller ID for outbound calls)".into(),
            );
            String::new()
        }
        None => "+306900000000".to_owned(),
    };
    let calls_per_second: f64 = r.parse("ROUTEE_CALLS_PER_SECOND", 1.0);
    if !(calls_per_second > 0.0 && calls_per_second <= 1000.0) {
        r.problems.push(format!(
            "ROUTEE_CALLS_PER_SECOND: {calls_per_second} is outside (0, 1000]"
        ));
    }

    RouteeConfig {
        app_id,
        app_secret: app_secret.map(Secret::new),
        api_url: r.url("ROUTEE_API_URL", "https://connect.routee.net"),
        auth_url: r.url("ROUTEE_AUTH_URL", "https://auth.routee.net/oauth/token"),
        from,
        calls_per_second,
    }
}

fn read_voiceflow(r: &mut Reader<'_>) -> VoiceflowConfig {
    let voiceflow = VoiceflowConfig {
        runtime_url: r.url(
            "VOICEFLOW_RUNTIME_URL",
            "https://general-runtime.voiceflow.com",
        ),
        api_url: r.url("VOICEFLOW_API_URL", "https://api.voiceflow.com"),
        api_key: r
            .get("VOICEFLOW_API_KEY")
            .map(|k| Secret::new(k.to_owned())),
        version: r
            .get("VOICEFLOW_VERSION")
            .unwrap_or("production")
            .to_owned(),
    };
    if let Some(k) = &voiceflow.api_key
        && !k.expose().starts_with("VF.DM.")
    {
        r.problems.push(
            "VOICEFLOW_API_KEY: not a Dialog Manager API key (it must start with VF.DM.)".into(),
        );
    }
    voiceflow
}

/// The gateway secret, whether it is ephemeral, the previous and next ones,
/// `NOTIFY_SECRET`.
type ReadSecrets = (
    Vec<u8>,
    bool,
    Option<Secret<Vec<u8>>>,
    Option<Secret<Vec<u8>>>,
    Option<Secret<Vec<u8>>>,
);

/// `GATEWAY_SECRET` (random per process in the sandbox), `GATEWAY_SECRET_PREVIOUS`
/// and `NOTIFY_SECRET`.
fn read_secrets(r: &mut Reader<'_>, live: bool) -> ReadSecrets {
    let (gateway_secret, secret_is_ephemeral) = match r.get("GATEWAY_SECRET") {
        Some(s) => match secret_strength(s) {
            Ok(()) => (s.as_bytes().to_vec(), false),
            Err(why) => {
                r.problems.push(format!("GATEWAY_SECRET: {why}"));
                (Vec::new(), false)
            }
        },
        None if live => {
            r.problems.push(format!(
                "GATEWAY_SECRET: required in live mode ({GENERATE_SECRET})"
            ));
            (Vec::new(), false)
        }
        None => {
            let mut bytes = [0u8; 32];
            rand::Rng::fill(&mut rand::rng(), &mut bytes);
            (hex::encode(bytes).into_bytes(), true)
        }
    };
    let previous_secret = match r.get("GATEWAY_SECRET_PREVIOUS") {
        Some(s) => match secret_strength(s) {
            Ok(()) => Some(Secret::new(s.as_bytes().to_vec())),
            Err(why) => {
                r.problems.push(format!("GATEWAY_SECRET_PREVIOUS: {why}"));
                None
            }
        },
        None => None,
    };
    let next_secret = match r.get("GATEWAY_SECRET_NEXT") {
        Some(s) => match secret_strength(s) {
            Ok(()) => Some(Secret::new(s.as_bytes().to_vec())),
            Err(why) => {
                r.problems.push(format!("GATEWAY_SECRET_NEXT: {why}"));
                None
            }
        },
        None => None,
    };
    if next_secret.is_some() && previous_secret.is_some() {
        r.problems.push("GATEWAY_SECRET_NEXT and GATEWAY_SECRET_PREVIOUS: one rotation phase at a time (NEXT announces the new secret, then GATEWAY_SECRET=new with PREVIOUS=old)".into());
    }
    let notify_secret = match r.get("NOTIFY_SECRET") {
        Some(s) if s.len() >= 32 => Some(Secret::new(s.as_bytes().to_vec())),
        Some(s) => {
            r.problems.push(format!(
                "NOTIFY_SECRET: must be at least 32 characters (it has {}); generate one with `openssl rand -hex 32`",
                s.len()
            ));
            None
        }
        None => None,
    };
    if notify_secret.as_ref().map(Secret::expose) == Some(&gateway_secret) {
        r.problems
            .push("NOTIFY_SECRET: must differ from GATEWAY_SECRET (receivers hold it)".into());
    }
    (
        gateway_secret,
        secret_is_ephemeral,
        previous_secret,
        next_secret,
        notify_secret,
    )
}

/// `IDEMPOTENCY_TTL_H`: how long an `Idempotency-Key` is remembered (1 h to 30 days).
fn read_idempotency_ttl(r: &mut Reader<'_>) -> Duration {
    let hours: u64 = r.parse("IDEMPOTENCY_TTL_H", 24);
    if !(1..=24 * 30).contains(&hours) {
        r.problems
            .push(format!("IDEMPOTENCY_TTL_H: {hours} is outside 1..=720"));
    }
    Duration::from_secs(hours.clamp(1, 24 * 30) * 3600)
}

/// `MAX_CALLS_PER_DAY` or `MAX_CALLS_PER_DAY_PER_KEY`: unset for no cap, else
/// at least 1.
fn read_call_cap(r: &mut Reader<'_>, name: &str) -> Option<u64> {
    r.get(name)?;
    let cap: u64 = r.parse(name, 1);
    if cap == 0 {
        r.problems
            .push(format!("{name}: at least 1 (leave it unset for no cap)"));
    }
    Some(cap.max(1))
}

/// `ALLOWED_DESTINATIONS`: where callees may be.
fn read_destinations(r: &mut Reader<'_>, live: bool) -> Destinations {
    // Toll fraud: a leaked key must not be able to call anywhere. Live mode
    // makes the operator decide (`*` is a decision too); the sandbox places
    // no real calls, and always reaches its simulated phones.
    match r.get("ALLOWED_DESTINATIONS") {
        Some(raw) => match Destinations::parse(raw) {
            Ok(d) if live => d,
            Ok(d) => d.with_prefix(SANDBOX_TEST_RANGE),
            Err(bad) => {
                for b in bad {
                    r.problems.push(format!("ALLOWED_DESTINATIONS: {b}"));
                }
                Destinations::default()
            }
        },
        None if live => {
            r.problems.push("ALLOWED_DESTINATIONS: required in live mode: comma-separated E.164 prefixes (+3069) and ISO country codes (GR) callees may have, or * for anywhere".into());
            Destinations::default()
        }
        None => Destinations::anywhere(),
    }
}

/// `HTTP_MAX_CONNECTIONS_PER_IP`: unset for no per-address limit, else at
/// least 1.
fn read_per_ip_limit(r: &mut Reader<'_>) -> Option<usize> {
    r.get("HTTP_MAX_CONNECTIONS_PER_IP")?;
    let n: usize = r.parse("HTTP_MAX_CONNECTIONS_PER_IP", 1);
    if !(1..=100_000).contains(&n) {
        r.problems.push(format!(
            "HTTP_MAX_CONNECTIONS_PER_IP: {n} is outside 1..=100000 (leave it unset for no limit)"
        ));
    }
    Some(n.clamp(1, 100_000))
}

/// `HTTP_MAX_CONNECTIONS` and `HTTP_MAX_HEADER_BYTES`, clamped to their ranges.
fn read_http_limits(r: &mut Reader<'_>) -> (usize, usize) {
    let http_max_connections: usize = r.parse("HTTP_MAX_CONNECTIONS", 1024);
    if !(1..=100_000).contains(&http_max_connections) {
        r.problems.push(format!(
            "HTTP_MAX_CONNECTIONS: {http_max_connections} is outside 1..=100000"
        ));
    }
    let http_max_header_bytes: usize = r.parse("HTTP_MAX_HEADER_BYTES", 64 * 1024);
    if !(8192..=(1 << 20)).contains(&http_max_header_bytes) {
        r.problems.push(format!(
            "HTTP_MAX_HEADER_BYTES: {http_max_header_bytes} is outside 8192..={}",
            1 << 20
        ));
    }
    (
        http_max_connections.clamp(1, 100_000),
        http_max_header_bytes.clamp(8192, 1 << 20),
    )
}

/// The Redis settings of [`Config`].
struct RedisSettings {
    redis_url: Option<Secret<String>>,
    redis_prefix: String,
    redis_wait_replicas: Option<u32>,
    redis_tls_ca_file: Option<PathBuf>,
    redis_tls_cert_file: Option<PathBuf>,
    redis_tls_key_file: Option<PathBuf>,
}

fn read_redis(r: &mut Reader<'_>) -> RedisSettings {
    let redis_url = r.get("REDIS_URL").map(|u| Secret::new(u.to_owned()));
    if let Some(u) = &redis_url
        && let Err(e) = crate::store::target::Target::parse(u.expose())
    {
        r.problems.push(format!("REDIS_URL: {e}"));
    }
    let redis_prefix = r.get("REDIS_PREFIX").unwrap_or("ivr").to_owned();
    if redis_prefix.contains(['{', '}']) {
        r.problems.push(
            "REDIS_PREFIX: may not contain { or } (the gateway's keys carry their own hash tags)"
                .into(),
        );
    }
    let redis_wait_replicas = r
        .get("REDIS_WAIT_REPLICAS")
        .map(|_| r.parse("REDIS_WAIT_REPLICAS", 0u32));
    if redis_wait_replicas.is_some_and(|n| n > 5) {
        r.problems.push("REDIS_WAIT_REPLICAS: at most 5".into());
    }

    let redis_file = |r: &mut Reader<'_>, key: &str| {
        let path = PathBuf::from(r.get(key)?);
        if !path.is_file() {
            r.problems
                .push(format!("{key}: {} is not a readable file", path.display()));
        }
        Some(path)
    };
    let redis_tls_ca_file = redis_file(r, "REDIS_TLS_CA_FILE");
    let redis_tls_cert_file = redis_file(r, "REDIS_TLS_CERT_FILE");
    let redis_tls_key_file = redis_file(r, "REDIS_TLS_KEY_FILE");
    if redis_tls_cert_file.is_some() != redis_tls_key_file.is_some() {
        r.problems.push(
            "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE: give both (a client certificate and its key) or neither".into(),
        );
    }
    RedisSettings {
        redis_url,
        redis_prefix,
        redis_wait_replicas,
        redis_tls_ca_file,
        redis_tls_cert_file,
        redis_tls_key_file,
    }
}

impl Config {
    /// Reads the process environment. The only place the crate calls `std::env`.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_map(&std::env::vars().collect())
    }

    /// Builds a configuration from explicit variables (tests, the demo).
    pub fn from_map(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            env,
            problems: Vec::new(),
        };

        let (mode, app_id, app_secret) = read_mode(&mut r);
        let live = mode == Mode::Live;

        let listen_addr: SocketAddr =
            r.parse("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = read_public_url(&mut r, live, listen_addr);

        let routee = read_routee(&mut r, app_id, app_secret, live);

        let voiceflow = read_voiceflow(&mut r);

        let (gateway_secret, secret_is_ephemeral, previous_secret, next_secret, notify_secret) =
            read_secrets(&mut r, live);

        let api_keys = parse_api_keys(r.get("API_KEYS"), &mut r.problems);
        if api_keys.is_empty() {
            if live {
                r.problems.push("API_KEYS: required in live mode (comma-separated role:token, role admin or dispatcher)".into());
            } else if !listen_addr.ip().is_loopback() {
                r.problems.push(format!(
                    "API_KEYS: required when LISTEN_ADDR ({listen_addr}) is not a loopback address, even in the sandbox"
                ));
            }
        }

        let log_format = match r
            .get("LOG_FORMAT")
            .unwrap_or("pretty")
            .to_ascii_lowercase()
            .as_str()
        {
            "pretty" | "text" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                r.problems
                    .push(format!("LOG_FORMAT: {other:?} is not pretty or json"));
                LogFormat::Pretty
            }
        };
        let log_filter = r
            .get("RUST_LOG")
            .or(r.get("LOG_LEVEL"))
            .unwrap_or("info")
            .to_owned();
        let metrics_addr = r
            .get("METRICS_ADDR")
            .map(|_| r.parse("METRICS_ADDR", listen_addr));

        let retention_h: u64 = r.parse("RETENTION_HOURS", 168);
        if retention_h == 0 || retention_h > 24 * 366 {
            r.problems.push(format!(
                "RETENTION_HOURS: {retention_h} is outside 1..={}",
                24 * 366
            ));
        }
        let max_contacts: usize = r.parse("MAX_CONTACTS", 100);
        if !(1..=1000).contains(&max_contacts) {
            r.problems
                .push(format!("MAX_CONTACTS: {max_contacts} is outside 1..=1000"));
        }
        let max_body_bytes: usize = r.parse("MAX_BODY_BYTES", 1 << 20);
        if !(1024..=(16 << 20)).contains(&max_body_bytes) {
            r.problems.push(format!(
                "MAX_BODY_BYTES: {max_body_bytes} is outside 1024..={}",
                16 << 20
            ));
        }
        let time_scale: f64 = r.parse("SIM_TIME_SCALE", 1.0);
        if !(time_scale > 0.0 && time_scale <= 10.0) {
            r.problems
                .push(format!("SIM_TIME_SCALE: {time_scale} is outside (0, 10]"));
        }

        let RedisSettings {
            redis_url,
            redis_prefix,
            redis_wait_replicas,
            redis_tls_ca_file,
            redis_tls_cert_file,
            redis_tls_key_file,
        } = read_redis(&mut r);

        let allowed_destinations = read_destinations(&mut r, live);

        let webhook_deadline = r.millis("WEBHOOK_DEADLINE_MS", 2500, 500, 2900);
        let http_request_timeout = r.millis("HTTP_REQUEST_TIMEOUT_MS", 30_000, 3000, 600_000);
        let (http_max_connections, http_max_header_bytes) = read_http_limits(&mut r);

        let public_url_is_default = r.get("PUBLIC_URL").is_none();
        let voiceflow_urls_are_default =
            r.get("VOICEFLOW_RUNTIME_URL").is_none() && r.get("VOICEFLOW_API_URL").is_none();
        let config = Config {
            mode,
            listen_addr,
            public_url,
            public_url_is_default,
            voiceflow_urls_are_default,
            redis_url,
            redis_prefix,
            redis_wait_replicas,
            redis_wait_timeout: r.millis("REDIS_WAIT_TIMEOUT_MS", 100, 1, 2000),
            redis_tls_ca_file,
            redis_tls_cert_file,
            redis_tls_key_file,
            routee,
            voiceflow,
            gateway_secret: Secret::new(gateway_secret),
            notify_secret,
            previous_secret,
            next_secret,
            secret_is_ephemeral,
            api_keys,
            log_format,
            log_filter,
            metrics_addr,
            webhook_deadline,
            http_header_timeout: r.millis("HTTP_HEADER_TIMEOUT_MS", 10_000, 1000, 120_000),
            http_request_timeout,
            idempotency_ttl: read_idempotency_ttl(&mut r),
            max_calls_per_day: read_call_cap(&mut r, "MAX_CALLS_PER_DAY"),
            max_calls_per_day_per_key: read_call_cap(&mut r, "MAX_CALLS_PER_DAY_PER_KEY"),
            person_limits: PersonLimits {
                per_15_min: r.parse(
                    "PERSON_CALLS_PER_15_MIN",
                    PersonLimits::default().per_15_min,
                ),
                per_hour: r.parse("PERSON_CALLS_PER_HOUR", PersonLimits::default().per_hour),
            },
            http_max_connections,
            http_max_connections_per_ip: read_per_ip_limit(&mut r),
            http_max_header_bytes,
            upstream_connect_timeout: r.millis("UPSTREAM_CONNECT_TIMEOUT_MS", 2000, 100, 30_000),
            upstream_timeout: r.millis("UPSTREAM_TIMEOUT_MS", 10_000, 500, 120_000),
            dialplans_dir: PathBuf::from(r.get("DIALPLANS_DIR").unwrap_or("dialplans")),
            retention: Duration::from_secs(retention_h.clamp(1, 24 * 366) * 3600),
            max_contacts,
            max_body_bytes,
            timer_poll: r.millis("TIMER_POLL_MS", 100, 10, 5000),
            collect_grace: r.millis("COLLECT_GRACE_MS", 5000, 0, 60_000),
            carrier_outage_limit: r.millis("CARRIER_OUTAGE_LIMIT_S", 900, 1, 86_400) * 1000,
            unconfirmed_window: r.millis("ROUTEE_UNCONFIRMED_WINDOW_S", 30, 1, 600) * 1000,
            shutdown_grace: r.millis("SHUTDOWN_GRACE_MS", 10_000, 0, 120_000),
            allow_private_urls: r.parse("ALLOW_PRIVATE_URLS", !live),
            default_policy: Policy::default(),
            allowed_destinations,
            sim: SimConfig {
                time_scale,
                callees_file: r.get("SIM_CALLEES_FILE").map(PathBuf::from),
                tones: r.parse("SIM_TONES", crate::sim::ToneReading::default()),
            },
        };
        if r.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(r.problems))
        }
    }

    pub fn is_sandbox(&self) -> bool {
        self.mode == Mode::Sandbox
    }

    /// True when requests need no API key (sandbox without `API_KEYS`, on loopback).
    pub fn auth_disabled(&self) -> bool {
        self.api_keys.is_empty() && self.is_sandbox() && self.listen_addr.ip().is_loopback()
    }
}

/// How to make a secret that [`secret_strength`] accepts.
const GENERATE_SECRET: &str =
    "32 random bytes as hex or base64; generate one with `openssl rand -hex 32`";

/// A signing secret must carry 32 random bytes: hex (64 digits) or base64 (44
/// characters, standard or URL-safe, padding optional) of at least 32 bytes,
/// judged after decoding, and not an obvious pattern (a repeated or counting
/// sequence decodes to few distinct bytes). The configured text itself stays
/// the key material, so a secret accepted before keeps its signatures valid.
fn secret_strength(raw: &str) -> Result<(), String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let decoded = hex::decode(raw).ok().or_else(|| {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(raw).ok())
    });
    let Some(bytes) = decoded else {
        return Err(format!("is neither hex nor base64 ({GENERATE_SECRET})"));
    };
    if bytes.len() < 32 {
        return Err(format!(
            "decodes to {} bytes, needs at least 32 ({GENERATE_SECRET})",
            bytes.len()
        ));
    }
    let distinct = bytes
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if distinct < 16 {
        return Err(format!(
            "decodes to only {distinct} distinct byte values: not random ({GENERATE_SECRET})"
        ));
    }
    Ok(())
}

fn parse_api_keys(raw: Option<&str>, problems: &mut Vec<String>) -> Vec<ApiKey> {
    let Some(raw) = raw else { return Vec::new() };
    let mut keys = Vec::new();
    for (i, entry) in raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let Some((role, token)) = entry.split_once(':') else {
            problems.push(format!("API_KEYS: entry {} is not role:token", i + 1));
            continue;
        };
        let role = match role.trim().to_ascii_lowercase().as_str() {
            "admin" => Role::Admin,
            "dispatcher" => Role::Dispatcher,
            other => {
                problems.push(format!(
                    "API_KEYS: entry {} has role {other:?} (expected admin or dispatcher)",
                    i + 1
                ));
                continue;
            }
        };
        let token = token.trim();
        if token.len() < 16 {
            problems.push(format!(
                "API_KEYS: entry {} has a token shorter than 16 characters",
                i + 1
            ));
            continue;
        }
        keys.push(ApiKey {
            role,
            token: Secret::new(token.to_owned()),
        });
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_credentials_means_sandbox_with_defaults() {
        let c = Config::from_map(&env(&[])).unwrap();
        assert_eq!(c.mode, Mode::Sandbox);
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(c.secret_is_ephemeral);
        assert!(c.auth_disabled());
        assert!(c.allow_private_urls);
    }

    #[test]
    fn live_mode_lists_every_missing_setting_at_once() {
        let err = Config::from_map(&env(&[("ROUTEE_APP_ID", "id"), ("ROUTEE_APP_SECRET", "s")]))
            .unwrap_err();
        let text = err.to_string();
        for var in [
            "PUBLIC_URL",
            "ROUTEE_FROM",
            "GATEWAY_SECRET",
            "API_KEYS",
            "ALLOWED_DESTINATIONS",
        ] {
            assert!(text.contains(var), "{var} missing from:\n{text}");
        }
        assert_eq!(err.0.len(), 5, "{text}");
    }

    #[test]
    fn invalid_values_are_named() {
        let err = Config::from_map(&env(&[
            ("LISTEN_ADDR", "nowhere"),
            ("GATEWAY_SECRET", "short"),
            ("API_KEYS", "root:abcdefghijklmnopq,dispatcher:short"),
            ("VOICEFLOW_API_KEY", "sk-123"),
            ("ROUTEE_API_URL", "ftp://x"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "LISTEN_ADDR",
            "GATEWAY_SECRET",
            "role \"root\"",
            "shorter than 16",
            "VF.DM.",
            "ROUTEE_API_URL",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn a_complete_live_environment_is_accepted() {
        let c = Config::from_map(&env(&[
            ("ROUTEE_APP_ID", "id"),
            ("ROUTEE_APP_SECRET", "secret"),
            ("PUBLIC_URL", "https://gw.example.com"),
            ("ROUTEE_FROM", "+306900000000"),
            ("GATEWAY_SECRET", TEST_SECRET),
            (
                "API_KEYS",
                "admin:aaaaaaaaaaaaaaaaaaaa, dispatcher:bbbbbbbbbbbbbbbbbbbb",
            ),
            ("ALLOWED_DESTINATIONS", "GR,+4915"),
        ]))
        .unwrap();
        assert_eq!(c.mode, Mode::Live);
        assert_eq!(c.api_keys.len(), 2);
        assert!(!c.auth_disabled());
        assert!(!c.allow_private_urls);
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let c = Config::from_map(&env(&[
            ("ROUTEE_APP_ID", "id"),
            ("ROUTEE_APP_SECRET", "routee-secret-value"),
            ("PUBLIC_URL", "https://gw.example.com"),
            ("ROUTEE_FROM", "+306900000000"),
            ("GATEWAY_SECRET", TEST_SECRET),
            ("API_KEYS", "admin:api-token-value-123456"),
            ("VOICEFLOW_API_KEY", "VF.DM.key-value"),
            ("REDIS_URL", "redis://:redis-password@localhost"),
            ("ALLOWED_DESTINATIONS", "*"),
        ]))
        .unwrap();
        let dbg = format!("{c:?}");
        for secret in [
            "routee-secret-value",
            TEST_SECRET,
            "api-token-value",
            "key-value",
            "redis-password",
        ] {
            assert!(!dbg.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn redis_settings_are_checked_at_startup() {
        let c = Config::from_map(&env(&[
            ("REDIS_URL", "redis+cluster://n1:7000,n2:7001"),
            ("REDIS_WAIT_REPLICAS", "2"),
            ("REDIS_WAIT_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(c.redis_wait_replicas, Some(2));
        assert_eq!(c.redis_wait_timeout, Duration::from_millis(250));
        let c = Config::from_map(&env(&[("REDIS_URL", "redis://localhost")])).unwrap();
        assert_eq!(
            (c.redis_wait_replicas, c.redis_prefix.as_str()),
            (None, "ivr")
        );
        let err = Config::from_map(&env(&[
            ("REDIS_URL", "redis+sentinel://s1:26379"),
            ("REDIS_PREFIX", "{tenant}"),
            ("REDIS_WAIT_REPLICAS", "many"),
            ("REDIS_WAIT_TIMEOUT_MS", "0"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for var in [
            "REDIS_URL: the master name is missing",
            "REDIS_PREFIX",
            "REDIS_WAIT_REPLICAS",
            "REDIS_WAIT_TIMEOUT_MS",
        ] {
            assert!(text.contains(var), "{var} missing from:\n{text}");
        }
    }

    const TEST_SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn gateway_secret_needs_32_random_bytes_as_hex_or_base64() {
        for good in [
            TEST_SECRET,
            "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
            "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
        ] {
            assert_eq!(secret_strength(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("test-gateway-secret-0123456789abcdef", "needs at least 32"),
            ("0123456789abcdef0123456789abcdef", "decodes to 16 bytes"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "distinct",
            ),
            (&"a".repeat(64), "distinct"),
        ] {
            let e = secret_strength(bad).unwrap_err();
            assert!(
                e.contains(why) && e.contains("openssl rand -hex 32"),
                "{bad}: {e}"
            );
        }
        let err = Config::from_map(&env(&[(
            "GATEWAY_SECRET",
            "correct horse battery staple!!!!!",
        )]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("GATEWAY_SECRET: is neither hex nor base64"),
            "{err}"
        );
    }

    #[test]
    fn live_mode_refuses_an_http_public_url_unless_explicitly_allowed() {
        let live = |extra: &[(&str, &str)]| {
            let mut e = env(&[
                ("ROUTEE_APP_ID", "id"),
                ("ROUTEE_APP_SECRET", "secret"),
                ("PUBLIC_URL", "http://gw.example.com"),
                ("ROUTEE_FROM", "+306900000000"),
                ("GATEWAY_SECRET", TEST_SECRET),
                ("API_KEYS", "admin:aaaaaaaaaaaaaaaaaaaa"),
                ("ALLOWED_DESTINATIONS", "*"),
            ]);
            for (k, v) in extra {
                e.insert((*k).to_owned(), (*v).to_owned());
            }
            Config::from_map(&e)
        };
        let err = live(&[]).unwrap_err();
        assert!(
            err.to_string().contains("PUBLIC_URL: must be https"),
            "{err}"
        );
        assert!(live(&[("ALLOW_INSECURE_PUBLIC_URL", "true")]).is_ok());
    }

    #[test]
    fn sandbox_on_a_public_address_needs_api_keys() {
        let err = Config::from_map(&env(&[("LISTEN_ADDR", "0.0.0.0:8080")])).unwrap_err();
        assert!(err.to_string().contains("API_KEYS"));
    }
}
