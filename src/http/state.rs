//! What every handler can reach: [`AppState`], a cheap handle on the one
//! [`SharedState`] of the running gateway.
//!
//! This module knows the key ring ([`super::auth`]); `auth` does not know this
//! module: its extractors read keys through [`HasKeyRing`], which `AppState`
//! implements here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;

use super::auth::{HasKeyRing, KeyRing};
use crate::config::Config;
use crate::engine::Engine;

/// The state every handler shares, built once at startup.
pub struct SharedState {
    pub engine: Engine,
    pub config: Arc<Config>,
    pub keys: KeyRing,
    pub prometheus: PrometheusHandle,
    /// Set on SIGTERM: readiness fails so load balancers stop sending new work.
    pub draining: AtomicBool,
    /// `GET /openapi.json`, serialized once when the router is built from the
    /// same registrations that route the requests (see `http::router`).
    pub openapi: OnceLock<Bytes>,
    /// The carrier simulator, in the sandbox (its callees are edited through
    /// `/v1/sandbox/...`).
    pub sandbox: Option<crate::sim::SimHandle>,
}

/// A handle on the [`SharedState`]: what axum clones into every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;
    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl AppState {
    pub fn new(
        engine: Engine,
        config: Arc<Config>,
        prometheus: PrometheusHandle,
        sandbox: Option<crate::sim::SimHandle>,
    ) -> Self {
        Self(Arc::new(SharedState {
            engine,
            keys: KeyRing::new(&config),
            config,
            prometheus,
            draining: AtomicBool::new(false),
            openapi: OnceLock::new(),
            sandbox,
        }))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

impl HasKeyRing for AppState {
    fn key_ring(&self) -> &KeyRing {
        &self.keys
    }
}
