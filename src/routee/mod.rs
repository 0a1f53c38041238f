//! Routee's Voice Conversation API: typed verbs and payloads ([`types`]) and the
//! HTTP client that authenticates and calls it ([`client`]).

pub mod client;
pub mod types;

pub use client::{RouteeClient, RouteeClientConfig, RouteeError};
pub use types::*;
