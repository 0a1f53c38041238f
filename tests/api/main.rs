//! Integration tests: the real application and stores against a real
//! `redis-server` (one per test) and HTTP fakes of Voiceflow and Routee (the
//! built-in carrier simulator, the simulated assistant, wiremock).

mod escalation;
mod helpers;
mod redis_server;
mod store;
