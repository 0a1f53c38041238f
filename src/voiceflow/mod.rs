//! Voiceflow's Dialog Manager API: requests and traces ([`types`]).

pub mod types;

pub use types::*;
