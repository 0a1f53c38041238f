//! The built-in carrier simulator: a fake Routee that speaks Routee's HTTP
//! protocol, so the gateway's real Routee client talks to it over HTTP (no second
//! code path). It runs inside the gateway in sandbox mode, on its own internal
//! listener, and is the end-to-end test harness (like GoAlert's fake Twilio).
//! [`voiceflow`] is its counterpart for the Dialog Manager API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ivr_gateway::sim::SimError> {
//! use ivr_gateway::sim::{Behaviour, SimSettings, Simulator};
//! let mut settings = SimSettings::new(0.1); // ten times faster than life
//! settings.callees.insert("+306900000001", Behaviour::NeverAnswers);
//! let sim = Simulator::start(settings, "127.0.0.1:0".parse().unwrap()).await?;
//! let (app_id, app_secret) = sim.credentials();
//! // point the Routee client at sim.base_url() / sim.auth_url() with these credentials
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`callees`]: who answers and what they press ([`Callees`], the behaviour file).
//! - [`faults`]: carrier misbehaviour on demand ([`Faults`]).
//! - `carrier`: the Routee endpoints (token, conversation, hangup/reject, tracking).
//! - `call`: one call's life, in its own task: rings, plays verbs, gathers tones.
//! - `webhook`: status callbacks (ordered, retried, faulted) and eventUrl POSTs.
//! - `control`: the `/sim/...` HTTP control API.
//! - `state`: the shared state, [`SimCallRecord`] and the [`SimEvent`] timeline.
//! - [`voiceflow`]: the simulated Voiceflow assistant.
//!
//! # Protocol served
//!
//! | method and path | |
//! |---|---|
//! | `POST /oauth/token` | `Authorization: Basic base64(app_id:app_secret)`, form `grant_type=client_credentials` → `{access_token, token_type: "Bearer", expires_in: 3600, scope, permissions}`; wrong credentials → 401 |
//! | `POST /voice/conversation` | needs `Authorization: Bearer <token>`; validated (to.phone E.164, `from`, non-empty verbs, one DIAL at most, `hangupDelay` 1..=60, `maxDuration` ≥ 1, SAY text ≤ 1000 characters, absolute URLs) → 400 `{code: "400013000", developerMessage}`; else the conversation, and the call starts |
//! | `PUT /voice/conversation/{messageId}` | `{"action": "hangup"}` only while `InProgress`, `{"action": "reject"}` only while `Initiated`/`Ringing`, else 409; a reject ends the call `NoAnswer`, a hangup `Completed` |
//! | `GET /voice/tracking/conversation/{trackingId}` | `{content: [{messageId, conversationTrackingId, to, from, status: {status, date}, collectedTones, duration, price, answeredBy}], totalElements, ...}`; unknown id → 404 |
//! | `/sim/...` | the control API, see `control` |
//!
//! Errors carry Routee's body `{code, developerMessage}`.
//!
//! # How a call plays
//!
//! Statuses: `Queued`, `Initiated`, `Ringing`, then `InProgress` when answered,
//! then one final: `Completed`, `Busy`, `NoAnswer` or `Failed`. With
//! `callback.strategy: OnChange` each change is POSTed to `callback.url`; with
//! `OnCompletion` only the final. The payload is
//! [`StatusCallback`](crate::routee::StatusCallback) (`updatedDate` RFC 3339,
//! `duration` in simulated seconds, `direction: "Outbound"`). A busy line and a
//! failing one never ring. Ringing lasts the callee's `ring_s`; past `hangupDelay`
//! (30 s when absent) the call ends `NoAnswer`. `maxDuration` counts from the
//! answer and ends the call `Completed`.
//!
//! Verbs run in order: `SAY` lasts its text at 15 characters/second (at least
//! 0.5 s) times `repeat + 1` (`repeat: -1` plays until interrupted), `PAUSE` its
//! `duration`, `PLAY` 3 s, `COLLECT` no time; every duration is multiplied by
//! `time_scale`. A `DIAL` rings the other number 2 s, bridges 5 s, and then the
//! call ends (the other party hung up). The call ends `Completed` when the verbs
//! run out.
//!
//! Keys: when the playing dialplan holds a `COLLECT` (anywhere), tones are
//! gathered and sent to its `eventUrl` as
//! [`CollectEvent`](crate::routee::CollectEvent). A turn of keys pressed while a
//! `bargeIn: true` verb plays stops that verb and is POSTed at once; a turn
//! pressed at another time is buffered and POSTed when a `#` is pressed (with
//! `submitOnHash`), with the next barge-in interruption, or when the call ends.
//! The simulator waits up to 3 s (wall clock, [`SimSettings::event_url_timeout`])
//! for the answer: a valid non-empty dialplan replaces the rest of the playing
//! one; anything else (late, non-2xx, empty, invalid) lets the playing dialplan
//! go on after the interrupted verb. When the call ends (verbs ran out, callee or
//! API hung up, `maxDuration`) and the playing dialplan holds a `COLLECT`, a last
//! POST carries what is buffered, possibly `""`; its answer is ignored; only then
//! is `Completed` reported.
//!
//! # Readings of the reference's gaps (`shared/reference/routee-voice-api.md`)
//!
//! - `collectedTones` is **not cumulative**: each POST carries the tones since the
//!   previous POST (§4.2 leaves it open). The gateway must not diff.
//! - The `#` that triggers a `submitOnHash` POST is **not** included (the field
//!   evidence of §4.2 compares `"1"` after `"1#"`); a `#` without `submitOnHash`
//!   is an ordinary tone.
//! - Reaching `maxDigits` does not submit (§3.5); tones beyond it are dropped.
//! - A key with no `COLLECT` in the playing dialplan is not gathered and does not
//!   interrupt a barge-in verb (§3.5: tones are gathered "if a COLLECT is placed").
//! - The eventUrl that receives tones is the playing dialplan's `COLLECT`; a
//!   replacing dialplan without one stops the gathering, including the end POST.
//! - An eventUrl answer that is late, non-2xx, empty or not a valid dialplan is
//!   ignored and the playing dialplan continues (§4.3 GAP); no POST is retried.
//! - The end-of-call POST goes out for every answered call whose playing dialplan
//!   has a `COLLECT`, however it ended, and before the final status callback.
//! - Status callbacks are retried twice (100 ms, then 400 ms) on failure (§6.6
//!   GAP); eventUrl POSTs are not.
//! - `duration` is simulated seconds from the answer; `price` is 0.02 per started
//!   minute of an answered call (currency undocumented).
//! - Token scope/permission names are placeholders (§1 GAP).
//!
//! # Behaviour file (`SIM_CALLEES_FILE`, `PUT /sim/callees`)
//!
//! A JSON object mapping phone numbers (E.164) to scripts; the key `default`
//! covers every other number. Without a file every callee **accepts**: answers
//! after 2 s of ringing and presses `1` when the first barge-in prompt starts.
//!
//! ```json
//! {
//!   "default": "silent",
//!   "+306900000001": "never_answers",
//!   "+306900000002": "busy",
//!   "+306900000003": {"press": {"keys": "2"}},
//!   "+306900000004": {"press": {"keys": ["9", "1"], "ring_s": 5}},
//!   "+306900000005": {"press": {"keys": "12#", "after_s": 4}},
//!   "+306900000006": {"hang_up": {"after_s": 3}},
//!   "+306900000007": {"attempts": ["never_answers", "silent", "accepts"]}
//! }
//! ```
//!
//! | behaviour | what the callee does |
//! |---|---|
//! | `"never_answers"` | rings until `hangupDelay` (30 s when absent): `NoAnswer` |
//! | `"busy"` | `Busy`, without ringing |
//! | `"fails"` | `Failed`, without ringing |
//! | `"rejects"` | declines after 1.5 s of ringing: `NoAnswer` |
//! | `"silent"`, `{"silent": {"ring_s": 3}}` | answers, presses nothing |
//! | `"accepts"`, `{"accepts": {"ring_s": 3}}` | answers, presses `1` at the first prompt (the default) |
//! | `{"press": {"keys": ..., "ring_s"?, "after_s"?, "on_prompt"?}}` | answers after `ring_s` (default 2) and presses `keys`: a string is one turn (`"12#"`), a list is one turn per entry (`["9", "1"]`: a wrong key, then 1). Each turn goes in when the next barge-in verb starts, 0.5 s in (`on_prompt`, the default), or with `after_s`: the first turn `after_s` seconds after the answer and each next one `after_s` later. `{"press": "2"}` is short for `{"press": {"keys": "2"}}` |
//! | `{"hang_up": {"after_s": 3, "ring_s"?}}` | answers, hangs up `after_s` seconds later whatever is playing: `Completed` |
//! | `"voicemail"`, `{"voicemail": {"ring_s"?, "greeting_s"?}}` | an answering machine: answers, plays its greeting (2 s), then `machineDetection` reports it as the conversation asked (`Continue`: POSTs its `eventUrl` and plays the answer; `Hangup`: ends the call; none: it records whatever plays); never presses a key |
//! | `{"attempts": [b1, b2, ...]}` | the k-th call to the number plays `bk`; the last one repeats (`["never_answers", "accepts"]` answers on the 2nd attempt) |
//!
//! All times are simulated seconds (multiplied by `time_scale`). Keys are DTMF:
//! `0-9`, `*`, `#`, `A-D`. An error names the bad entry, e.g.
//! `callee entry "+306900000004 (press)": unknown parameter "ring"`.
//!
//! # Faults
//!
//! See [`Faults`]: duplicated callbacks and eventUrl POSTs, random callback
//! delays, reordered intermediate callbacks (a final is still delivered, possibly
//! before a late `Ringing`), failing creations (`[500, 429, 400]`, the 429 with
//! `Retry-After: 1`) and token requests, dropped final statuses (visible only
//! through tracking). With `seed`, reproducible for calls created in the same order.
//! Failures can also be queued on a running simulator without resetting the rest
//! ([`SimHandle::queue_create_failures`]), and [`SimHandle::injected`] tallies
//! what was actually served, so a fault suite counts injections, not intentions.

mod call;
pub mod callees;
mod carrier;
mod control;
mod dialplan_rules;
pub mod faults;
mod state;
pub mod voiceflow;
mod webhook;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use url::Url;
use uuid::Uuid;

pub use call::verb_seconds;
pub use callees::{Behaviour, CalleeScript, Callees, CalleesError, Press, PressTiming};
pub use faults::{Faults, InjectedFaults, RefusedCreation};
pub use state::{
    CallbackRecord, DialLegRecord, EventOutcome, EventPostRecord, SimCallRecord, SimEvent,
    StatusChange, ToneReading,
};
pub use voiceflow::{
    SimVoiceflow, SimVoiceflowHandle, SimVoiceflowSettings, StateRecord, StreamShape,
    VoiceflowInjected,
};

use crate::config::SimConfig;
use crate::net;
use state::{Clock, Shared};

/// How the simulator starts.
#[derive(Clone)]
pub struct SimSettings {
    /// Multiplies every simulated duration; 0.1 runs ten times faster than life.
    pub time_scale: f64,
    pub callees: Callees,
    pub faults: Faults,
    /// The Routee application credentials the token endpoint accepts.
    pub app_id: String,
    pub app_secret: String,
    /// How long an eventUrl answer is awaited (Routee: 3 s). Wall clock, not
    /// scaled: it measures the gateway, not the callee.
    pub event_url_timeout: Duration,
    /// How `collectedTones` reads: cumulative (the default) or per submit.
    pub tones: ToneReading,
}

impl SimSettings {
    /// Random credentials, every callee accepting, no faults.
    pub fn new(time_scale: f64) -> Self {
        Self {
            time_scale,
            callees: Callees::default(),
            faults: Faults::none(),
            app_id: format!("sim-{}", Uuid::new_v4().simple()),
            app_secret: Uuid::new_v4().simple().to_string(),
            event_url_timeout: Duration::from_secs(3),
            tones: ToneReading::default(),
        }
    }

    /// From the sandbox configuration: its time scale and behaviour file.
    pub fn from_config(config: &SimConfig) -> Result<Self, SimError> {
        let mut settings = Self::new(config.time_scale);
        settings.tones = config.tones;
        if let Some(path) = &config.callees_file {
            settings.callees = Callees::from_file(path)?;
        }
        Ok(settings)
    }
}

impl fmt::Debug for SimSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSettings")
            .field("time_scale", &self.time_scale)
            .field("callees", &self.callees)
            .field("faults", &self.faults)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("event_url_timeout", &self.event_url_timeout)
            .field("tones", &self.tones)
            .finish()
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the simulator's time scale must be a positive number, not {0}")]
    InvalidTimeScale(f64),
    #[error("invalid simulator faults: {0}")]
    InvalidFaults(String),
    #[error("the simulator cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the simulator's HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot read the simulator's callee behaviours")]
    Callees(#[from] CalleesError),
    #[error("cannot form the simulator's base URL")]
    Url(#[source] url::ParseError),
}

/// The carrier simulator.
pub struct Simulator;

impl Simulator {
    /// Binds `addr` (usually `127.0.0.1:0`) and serves Routee's protocol and the
    /// `/sim` control API until [`SimHandle::shutdown`] (or the last handle drops).
    pub async fn start(settings: SimSettings, addr: SocketAddr) -> Result<SimHandle, SimError> {
        if !(settings.time_scale.is_finite() && settings.time_scale > 0.0) {
            return Err(SimError::InvalidTimeScale(settings.time_scale));
        }
        settings
            .faults
            .validate()
            .map_err(SimError::InvalidFaults)?;
        // The generous total timeout is a backstop: eventUrl POSTs and callbacks set
        // their own, shorter, per-request limits.
        let http = net::http_client(Duration::from_secs(2), Duration::from_secs(30))
            .map_err(SimError::HttpClient)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let base_url = base_url_of(local)?;
        let shared = Arc::new(Shared::new(
            Clock::new(settings.time_scale),
            settings.app_id,
            settings.app_secret,
            settings.event_url_timeout,
            http,
            settings.callees,
            settings.faults,
        ));
        shared.lock().tones = settings.tones;
        let app = carrier::router()
            .merge(control::router())
            .with_state(Arc::clone(&shared));
        let stop = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "carrier simulator stopped serving");
            }
        });
        tracing::info!(%base_url, "carrier simulator listening");
        Ok(SimHandle {
            inner: Arc::new(HandleInner {
                shared,
                base_url,
                server: Mutex::new(Some(server)),
            }),
        })
    }
}

/// The URL at which a listener bound to `addr` is reached (loopback for a
/// wildcard bind).
pub(crate) fn base_url_of(addr: SocketAddr) -> Result<Url, SimError> {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Url::parse(&format!("http://{}/", SocketAddr::new(ip, addr.port()))).map_err(SimError::Url)
}

/// A running simulator. Clones share it; it stops on [`SimHandle::shutdown`] or
/// when the last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    shared: Arc<Shared>,
    base_url: Url,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.inner.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Routee's API base: `POST {base}voice/conversation`...
    pub fn base_url(&self) -> Url {
        self.inner.base_url.clone()
    }

    /// The token endpoint: `{base}oauth/token`.
    pub fn auth_url(&self) -> Url {
        let mut url = self.inner.base_url.clone();
        url.set_path("/oauth/token");
        url
    }

    /// `(app_id, app_secret)` accepted by the token endpoint.
    pub fn credentials(&self) -> (String, String) {
        let s = &self.inner.shared;
        (s.app_id.clone(), s.app_secret.clone())
    }

    /// The live timeline. Events sent before subscribing are not replayed; a
    /// receiver that falls more than 4096 events behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<SimEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Sets the script of one number (`"default"` sets the default script).
    pub fn set_callee(&self, phone: &str, script: impl Into<CalleeScript>) {
        let mut state = self.inner.shared.lock();
        if phone == "default" {
            state.callees.set_default(script);
        } else {
            state.callees.insert(phone, script);
        }
    }

    /// Every callee script, as they are now.
    pub fn callees(&self) -> Callees {
        self.inner.shared.lock().callees.clone()
    }

    /// How `collectedTones` reads on calls placed from now on.
    pub fn set_tone_reading(&self, tones: ToneReading) {
        self.inner.shared.lock().tones = tones;
    }

    /// Replaces every callee script.
    pub fn set_callees(&self, callees: Callees) {
        self.inner.shared.lock().callees = callees;
    }

    /// Replaces the faults (and restarts their queues and random source).
    /// Probabilities outside 0..=1 are clamped.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.shared.lock().faults = faults::FaultState::new(faults);
    }

    /// Queues creation failures after any still pending, without resetting the
    /// other faults or their random source (unlike [`SimHandle::set_faults`]).
    pub fn queue_create_failures(&self, statuses: &[u16]) -> Result<(), SimError> {
        if let Some(bad) = statuses.iter().find(|s| !(400..=599).contains(*s)) {
            return Err(SimError::InvalidFaults(format!(
                "fail_create status {bad} is not an HTTP error status (400-599)"
            )));
        }
        self.inner
            .shared
            .lock()
            .faults
            .queue_create_failures(statuses);
        Ok(())
    }

    /// Makes `n` more token requests fail, without resetting the other faults.
    pub fn queue_token_failures(&self, n: u32) {
        self.inner.shared.lock().faults.queue_token_failures(n);
    }

    /// The failures served so far: refused creations (with their numbers) and
    /// failed token requests. Callback faults are in each [`SimCallRecord`].
    pub fn injected(&self) -> InjectedFaults {
        self.inner.shared.lock().injected.clone()
    }

    /// Every call placed so far, in creation order.
    pub fn calls(&self) -> Vec<SimCallRecord> {
        self.inner.shared.records()
    }

    /// One call, by its `messageId`.
    pub fn call(&self, message_id: &str) -> Option<SimCallRecord> {
        self.inner.shared.with_record(message_id, |r| r.clone())
    }

    /// What `POST /sim/reset` does: forget calls and attempt counts, clear faults,
    /// restore the initial callees; running calls stop silently.
    pub fn reset(&self) {
        self.inner.shared.reset();
    }

    /// Stops serving, stops every call (no further callbacks), and waits for the
    /// tasks to finish.
    pub async fn shutdown(self) {
        let shared = Arc::clone(&self.inner.shared);
        shared.shutdown.cancel();
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server
            && let Err(e) = server.await
        {
            tracing::warn!(error = %e, "carrier simulator server task failed");
        }
        shared.tasks.close();
        shared.tasks.wait().await;
    }
}
