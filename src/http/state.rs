//! What every handler can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_exporter_prometheus::PrometheusHandle;

use super::auth::KeyRing;
use crate::config::Config;
use crate::engine::Engine;

pub struct StateInner {
    pub engine: Engine,
    pub config: Arc<Config>,
    pub keys: KeyRing,
    pub prometheus: PrometheusHandle,
    /// Set on SIGTERM: readiness fails so load balancers stop sending new work.
    pub draining: AtomicBool,
    /// The carrier simulator, in the sandbox (its callees are edited through
    /// `/v1/sandbox/...`).
    pub sandbox: Option<crate::sim::SimHandle>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<StateInner>);

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
