//! Observability: the metrics catalogue ([`metrics`]) and log setup.

pub mod metrics;
