//! Integration tests: the real application and stores against a real
//! `redis-server` (one per test) and HTTP fakes of Voiceflow and Routee (the
//! built-in carrier simulator, the simulated assistant, wiremock).

// Test support code may panic on setup failures: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assistants;
mod audio;
mod callee;
mod callouts;
mod console;
mod escalation;
mod events;
mod fidelity;
mod hardening;
mod helpers;
mod hostile;
mod lifecycle;
mod openapi;
mod probe;
mod redis_server;
mod replicas;
mod schedules;
mod security;
mod store;
mod store_ha;
mod teams;
mod voiceflow_calls;
