//! Outbound HTTP shared by every upstream client: one way to build a
//! `reqwest::Client` (rustls on the `ring` provider, connect and request timeouts
//! always set) and one way to record upstream latency.

use std::time::{Duration, Instant};

use crate::telemetry::metrics::{UPSTREAM_DURATION, status_class};

/// Installs rustls' `ring` crypto provider once per process. reqwest is built with
/// `rustls-no-provider` (the default aws-lc backend dominates cold builds).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with the given connect and total request timeouts, keep-alive pooling,
/// and no redirects (an upstream redirect is a misconfiguration we want to see).
pub fn http_client(
    connect_timeout: Duration,
    timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ivr-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What happened to one upstream request, for the latency histogram's `status_class`.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamResult {
    Status(u16),
    Timeout,
    Error,
}

impl UpstreamResult {
    pub fn of<T>(r: &reqwest::Result<T>) -> Self
    where
        T: HasStatus,
    {
        match r {
            Ok(resp) => UpstreamResult::Status(resp.status_code()),
            Err(e) if e.is_timeout() => UpstreamResult::Timeout,
            Err(e) => match e.status() {
                Some(s) => UpstreamResult::Status(s.as_u16()),
                None => UpstreamResult::Error,
            },
        }
    }

    fn label(self) -> &'static str {
        match self {
            UpstreamResult::Status(s) => status_class(s),
            UpstreamResult::Timeout => "timeout",
            UpstreamResult::Error => "error",
        }
    }
}

/// Anything with an HTTP status (a `reqwest::Response`).
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for reqwest::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Records one upstream request in `ivr_upstream_request_duration_seconds`.
/// `upstream` and `operation` must be fixed strings (bounded labels).
pub fn record_upstream(
    upstream: &'static str,
    operation: &'static str,
    started: Instant,
    result: UpstreamResult,
) {
    metrics::histogram!(
        UPSTREAM_DURATION,
        "upstream" => upstream,
        "operation" => operation,
        "status_class" => result.label()
    )
    .record(started.elapsed().as_secs_f64());
}
