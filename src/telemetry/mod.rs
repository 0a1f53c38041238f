//! Observability: the metrics catalogue ([`metrics`]) and structured logs.
//!
//! Logs are `tracing` events, pretty for people or JSON for machines
//! (`LOG_FORMAT`), filtered by `RUST_LOG`/`LOG_LEVEL`. Call handling runs inside
//! spans carrying `callout_id` and `call_id`, so every line of a call's handling
//! names them. Phone numbers are masked at the source (`E164::masked`).

pub mod metrics;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;

use crate::config::LogFormat;

/// Installs the global subscriber (a no-op if one is installed already, e.g. in tests).
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match format {
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_span_list(true)
            .with_target(false)
            .try_init(),
        LogFormat::Pretty => fmt().with_env_filter(filter).with_target(false).try_init(),
    };
    // Already initialised (tests, or the demo) is fine.
    let _ = result;
}
