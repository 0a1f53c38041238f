//! Integration tests: the real application and stores against a real
//! `redis-server` (one per test) and HTTP fakes of Voiceflow and Routee.

mod redis_server;
mod store;
