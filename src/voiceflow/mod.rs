//! Voiceflow's Dialog Manager API: requests and traces ([`types`]) and the HTTP
//! client that sends them ([`client`]).

pub mod client;
pub mod types;

pub use client::{
    StreamEvent, TranscriptRequest, TranscriptUser, VersionInfo, VoiceflowClient,
    VoiceflowClientConfig, VoiceflowCredentials, VoiceflowError,
};
pub use types::*;
