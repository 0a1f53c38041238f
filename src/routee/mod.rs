//! Routee's Voice Conversation API: typed verbs and payloads ([`types`]).

pub mod types;

pub use types::*;
