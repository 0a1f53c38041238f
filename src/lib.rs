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
//! - [`app`]: [`app::Application`], built the same way by `main`, the demo and tests.
//! - [`cli`], [`commands`], [`demo`]: the command line and what its subcommands do.
//! - [`config`]: one typed [`config::Config`] read from the environment at startup.
//! - [`domain`]: pure types and the two state machines, the callout's escalation and
//!   a call's conversation; no IO.
//! - [`routee`]: the Routee Voice Conversation API client, verbs and callbacks.
//! - [`voiceflow`]: the Voiceflow Dialog Manager API client and trace types.
//! - [`dialplan`]: renders Voiceflow traces and dialplan templates into Routee verbs,
//!   and maps key presses back to Voiceflow requests.
//! - [`engine`]: the IO around the domain: placing calls, key presses, Voiceflow turns,
//!   the conversation tools, timers, jobs.
//! - [`http`]: the axum edge: dispatcher and assistants APIs, webhooks, health.
//! - [`store`]: where state lives (Redis, or in memory), every key in one module.
//! - [`audio`]: the audio the gateway serves for `PLAY` (the silence of a wait).
//! - [`assistants`]: registered Voiceflow assistants and their decrypted keys.
//! - [`security`]: webhook signatures, notification signatures, key encryption.
//! - [`sim`]: the built-in carrier simulator (a fake Routee) and a simulated
//!   Voiceflow assistant, for sandbox mode and end-to-end tests.
//! - [`lenient`]: tolerant deserializers for payloads we do not control.
//! - [`net`]: the one way upstream HTTP clients are built and measured.
//! - [`telemetry`]: metrics catalogue and logging setup.

// No function in the library over 150 lines (`too-many-lines-threshold` in
// clippy.toml); test scripts may read longer.
#![warn(clippy::too_many_lines)]

pub mod app;
pub mod assistants;
pub mod audio;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod dialplan;
pub mod domain;
pub mod engine;
pub mod http;
pub mod lenient;
pub mod net;
pub mod routee;
pub mod security;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod voiceflow;
