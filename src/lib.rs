//! # ivr-gateway
//!
//! Turns a dispatcher's call list into phone calls that get answered. The gateway
//! bridges **Voiceflow** (conversation design and runtime, its Dialog Manager API)
//! to **Routee** (the carrier's Voice Conversation API) and runs a Redis-backed
//! retry-and-escalation state machine over an ordered list of contacts until one
//! of them accepts.
//!
//! # Layout
//!
//! - [`config`]: one typed [`config::Config`] read from the environment at startup.
//! - [`domain`]: pure types and the escalation state machine; no IO.
//! - [`routee`]: the Routee Voice Conversation API client, verbs and callbacks.
//! - [`voiceflow`]: the Voiceflow Dialog Manager API client and trace types.
//! - [`dialplan`]: renders Voiceflow traces and dialplan templates into Routee verbs,
//!   and maps key presses back to Voiceflow requests.
//! - [`lenient`]: tolerant deserializers for payloads we do not control.
//! - [`net`]: the one way upstream HTTP clients are built and measured.
//! - [`telemetry`]: metrics catalogue and logging setup.

pub mod config;
pub mod dialplan;
pub mod domain;
pub mod lenient;
pub mod net;
pub mod routee;
pub mod telemetry;
pub mod voiceflow;
