//! The engine: the IO around the pure domain.
//!
//! Every change to a callout goes through [`Engine::update`]: load the document,
//! apply a pure transition, commit with compare-and-set, retry on conflict. Only a
//! committed transition's [`Effect`]s are carried out (placing a call, hanging
//! up, notifying), so when two replicas race on one callout exactly one of them
//! acts. Effects that must survive a crash are also recorded in the document and
//! come back through the timer (see `domain::callout`).
//!
//! - [`place`]: creating a call (rate limit, first dialplan, Routee).
//! - [`turn`]: a key press (COLLECT event) to the next dialplan, within Routee's 3 s;
//!   the conversation's rules are `domain::conversation`, the engine does the I/O.
//! - [`dialog`]: the Voiceflow side of a turn: one Dialog Manager exchange
//!   ([`Engine::interact`], shared by calls and the tools) and recording its
//!   answer, failure or late answer.
//! - [`tools`]: the assistants' conversation tools (turns without a call).
//! - [`timers`]: the loop that fires due timers.
//! - [`jobs`]: periodic maintenance (reconciliation, retention, gauges).
//! - [`effects`]: hanging up, `notify_url`, Voiceflow transcripts.
//! - [`view`]: the public JSON of a callout.

mod cache;
mod dialog;
mod effects;
mod jobs;
mod place;
mod timers;
pub mod tools;
mod turn;
pub mod view;
mod voicemail;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::assistants::Assistants;
use crate::dialplan::template::Templates;
use crate::domain::{
    CallId, Callout, CalloutError, CalloutId, CalloutStatus, Consequences, Effect, Event,
    EventKind, NewCallout, PersonLimits, Timestamp, Timing,
};
use crate::routee::StatusCallback;
use crate::routee::client::RouteeClient;
use crate::security::{Purpose, Signer};
use crate::store::{CommitResult, Store, StoreError, Versioned};
use crate::telemetry::metrics as m;
use crate::voiceflow::client::VoiceflowClient;
use crate::voiceflow::types::Trace;

pub use jobs::Jobs;
pub use turn::LATE_WINDOW;

/// Tunables of the engine, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Base URL Routee reaches us at; webhook URLs are built from it.
    pub public_url: Url,
    /// Caller ID for outbound calls (and DIAL).
    pub caller_id: String,
    /// Total time allowed to answer an eventUrl (Routee waits 3 s).
    pub webhook_deadline: Duration,
    pub timing: Timing,
    /// Minimum spacing of outbound call creations across all replicas.
    pub call_interval: Duration,
    pub timer_poll: Duration,
    /// Let `notify_url` reach internal addresses.
    pub allow_private_urls: bool,
    /// Identifies this replica in locks.
    pub replica_id: String,
    /// `MAX_CALLS_PER_DAY`: no call is placed past it on a UTC day.
    pub max_calls_per_day: Option<u64>,
    /// `MAX_CALLS_PER_DAY_PER_KEY`: no call is placed past it on a UTC day for
    /// the callouts of one API key.
    pub max_calls_per_day_per_key: Option<u64>,
    /// Calls to one number across every callout (`PERSON_CALLS_PER_*`).
    pub person_limits: PersonLimits,
    /// How fast the carrier's clock runs against ours: 1 with Routee, the
    /// simulator's `SIM_TIME_SCALE` in tests. Scales how long a dialplan plays
    /// (a hang-up mid-prompt is told from a call that ran out by it).
    pub carrier_time_scale: f64,
}

/// One event of one callout, as broadcast to live observers (the demo).
#[derive(Debug, Clone)]
pub struct TimelineEvent {
    pub callout: CalloutId,
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("callout {0} is changing too fast to update (too many concurrent writers)")]
    Contention(CalloutId),
    #[error("no such callout")]
    NotFound,
    #[error(transparent)]
    Callout(#[from] CalloutError),
}

/// Where [`Engine::update`] starts: the callout's id, or a document already
/// loaded with a flag saying it came from this replica's cache.
pub(crate) struct UpdateFrom {
    id: CalloutId,
    loaded: Option<(Versioned<Callout>, bool)>,
}

impl From<CalloutId> for UpdateFrom {
    fn from(id: CalloutId) -> Self {
        Self { id, loaded: None }
    }
}

impl From<(Versioned<Callout>, bool)> for UpdateFrom {
    fn from(loaded: (Versioned<Callout>, bool)) -> Self {
        Self {
            id: loaded.0.value.id,
            loaded: Some(loaded),
        }
    }
}

/// What [`Engine::update`] did.
pub(crate) enum Applied<R> {
    Committed {
        callout: Callout,
        /// The version the commit gave the document, so a caller can chain
        /// another change on it without reading it back.
        version: u64,
        result: R,
    },
    Unchanged {
        callout: Callout,
        version: u64,
        result: R,
    },
    Missing,
}

/// Optimistic-concurrency retries before giving up on a contended callout.
const MAX_CAS_RETRIES: usize = 16;

/// The engine's collaborators and shared state, behind one `Arc`.
pub struct EngineParts {
    pub store: Store,
    pub routee: RouteeClient,
    pub voiceflow: VoiceflowClient,
    pub assistants: Assistants,
    pub signer: Signer,
    pub templates: Arc<Templates>,
    pub settings: EngineSettings,
    timeline: broadcast::Sender<TimelineEvent>,
    tasks: TaskTracker,
    /// Last time the timer loop went round (ms), for liveness.
    heartbeat: AtomicI64,
    notify_http: reqwest::Client,
    /// Converts Voiceflow audio Routee cannot play ([`crate::audio`]).
    audio: crate::audio::Converter,
    /// Documents recently read or committed here (webhook hot paths only).
    docs: cache::DocCache,
    /// API keys whose daily count this replica has reported
    /// (`ivr_calls_today_by_key`), so the gauge job can refresh them after
    /// midnight.
    keys_counted_today: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine(Arc<EngineParts>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.0.store.kind())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Engine {
    type Target = EngineParts;
    fn deref(&self) -> &EngineParts {
        &self.0
    }
}

impl Engine {
    #[allow(clippy::too_many_arguments)] // wiring only; every argument is a distinct collaborator
    pub fn new(
        store: Store,
        routee: RouteeClient,
        voiceflow: VoiceflowClient,
        assistants: Assistants,
        signer: Signer,
        templates: Arc<Templates>,
        settings: EngineSettings,
    ) -> Result<Self, reqwest::Error> {
        let notify_http =
            crate::net::outbound_client(settings.allow_private_urls, Duration::from_secs(10))?;
        let audio = crate::audio::Converter::new(
            crate::net::outbound_client(settings.allow_private_urls, Duration::from_secs(10))?,
            settings.allow_private_urls,
        );
        let (timeline, _) = broadcast::channel(4096);
        Ok(Self(Arc::new(EngineParts {
            store,
            routee,
            voiceflow,
            assistants,
            signer,
            templates,
            settings,
            keys_counted_today: std::sync::Mutex::default(),
            timeline,
            tasks: TaskTracker::new(),
            heartbeat: AtomicI64::new(Timestamp::now().millis()),
            notify_http,
            audio,
            docs: cache::DocCache::default(),
        })))
    }

    /// Live timeline of every callout (for the demo and tests).
    pub fn subscribe(&self) -> broadcast::Receiver<TimelineEvent> {
        self.timeline.subscribe()
    }

    /// Background work (effects) still running, for graceful shutdown.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// How long ago the timer loop last went round.
    pub fn timer_loop_age(&self) -> Duration {
        Timestamp::now().since(Timestamp(self.heartbeat.load(Ordering::Relaxed)))
    }

    pub(crate) fn beat(&self) {
        self.heartbeat
            .store(Timestamp::now().millis(), Ordering::Relaxed);
    }

    // ----- URLs -------------------------------------------------------------

    /// The silence `.wav` played (with barge-in) wherever a call waits for a key.
    pub fn silence_url(&self) -> String {
        crate::audio::silence().url(self.settings.public_url.as_str())
    }

    /// Makes the audio traces Routee cannot play (an `.mp3` URL, a `data:` URI)
    /// playable, within `budget`: each becomes the gateway's own `.wav` of it
    /// ([`crate::audio`]). One that cannot be fetched or decoded in time loses
    /// its `src`, so its text is said instead (or nothing, if it has none);
    /// that is logged and counted.
    /// Where no caller waits on the line (the first turn, before the call is
    /// placed; a late turn; the console), audio conversion gets this long.
    pub(crate) const UNHURRIED_AUDIO_BUDGET: Duration = Duration::from_secs(5);

    pub(crate) async fn hear_audio(&self, traces: &mut [Trace], budget: Duration) {
        let deadline = tokio::time::Instant::now() + budget;
        // Every conversion starts at once, each on a task of its own: one the
        // turn gives up on still finishes and fills the cache, so the next turn
        // that plays the same audio finds it ready.
        let mut pending = Vec::new();
        for (i, trace) in traces.iter().enumerate() {
            let Trace::Speak(speak) = trace else { continue };
            let Some(src) = speak.src.as_deref().map(str::trim) else {
                continue;
            };
            if crate::audio::is_convertible(src) {
                let (audio, src) = (self.audio.clone(), src.to_owned());
                let store = self.store.clone();
                pending.push((
                    i,
                    tokio::spawn(async move {
                        let (name, fresh) = audio.convert_src(&src).await?;
                        if let Some(clip) = fresh {
                            // Any replica may be asked for it; a failure only
                            // means this one alone can serve it.
                            if let Err(e) = store
                                .save_audio_clip(&name, clip.bytes(), crate::audio::CACHE_TTL)
                                .await
                            {
                                tracing::warn!(clip = %name, error = %e, "converted audio not shared through the store");
                            }
                        }
                        Ok::<_, crate::audio::AudioError>(name)
                    }),
                ));
            }
        }
        let started = Instant::now();
        for (i, task) in pending {
            let Some(Trace::Speak(speak)) = traces.get_mut(i) else {
                continue;
            };
            let src = crate::net::log_safe(speak.src.as_deref().unwrap_or_default(), 120);
            let reason = match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(name))) => {
                    let base = self.settings.public_url.as_str().trim_end_matches('/');
                    speak.src = Some(format!("{base}/audio/{name}"));
                    metrics::histogram!(m::AUDIO_CONVERSION_DURATION)
                        .record(started.elapsed().as_secs_f64());
                    continue;
                }
                Ok(Ok(Err(e))) => {
                    tracing::warn!(src = %src, error = %e, "audio trace not playable; its text is said instead");
                    e.reason()
                }
                Ok(Err(e)) => {
                    tracing::warn!(src = %src, error = %e, "audio conversion task failed; its text is said instead");
                    "undecodable"
                }
                Err(_elapsed) => {
                    tracing::warn!(src = %src, budget_ms = budget.as_millis() as u64, "audio trace not converted in time; its text is said instead");
                    "timeout"
                }
            };
            metrics::counter!(m::AUDIO_FALLBACKS, "reason" => reason).increment(1);
            speak.src = None;
        }
    }

    fn webhook_url(&self, path: &str, sig: &str) -> String {
        let base = self.settings.public_url.as_str().trim_end_matches('/');
        format!("{base}{path}?sig={sig}")
    }

    /// The signed eventUrl for input `turn` of a call.
    pub fn collect_url(&self, callout: CalloutId, call: CallId, turn: u32) -> String {
        let sig = self.signer.sign(Purpose::Collect { turn }, callout, call);
        self.webhook_url(&format!("/routee/collect/{callout}/{call}/{turn}"), &sig)
    }

    /// The signed `machineDetection.eventUrl` of a call.
    pub fn machine_url(&self, callout: CalloutId, call: CallId) -> String {
        let sig = self.signer.sign(Purpose::Machine, callout, call);
        self.webhook_url(&format!("/routee/machine/{callout}/{call}"), &sig)
    }

    /// The signed status callback URL of a call.
    pub fn status_url(&self, callout: CalloutId, call: CallId) -> String {
        let sig = self.signer.sign(Purpose::Status, callout, call);
        self.webhook_url(&format!("/routee/status/{callout}/{call}"), &sig)
    }

    // ----- the update loop ---------------------------------------------------

    /// Load, transition, compare-and-set, retry. The closure must be a pure function
    /// of the callout and `now` (it may run several times). Committed events are
    /// published and measured, and committed effects are started.
    ///
    /// `from` is the callout's id, or a document already loaded with a flag
    /// saying it came from this replica's cache (which saves a round trip on the
    /// webhook hot paths). A cached document may be stale: a change made on it is
    /// caught by the commit's compare-and-set; a "nothing to do" is not (a stale
    /// document may lack the very attempt a webhook is about), so that answer is
    /// only trusted after a fresh read.
    pub(crate) async fn update<R>(
        &self,
        from: impl Into<UpdateFrom>,
        mut transition: impl FnMut(&mut Callout, Timestamp) -> (Consequences, R),
    ) -> Result<Applied<R>, EngineError> {
        let UpdateFrom { id, mut loaded } = from.into();
        for _ in 0..MAX_CAS_RETRIES {
            let (Versioned { version, value }, cached) = match loaded.take() {
                Some(doc) => doc,
                None => match self.store.load(id).await? {
                    Some(doc) => (doc, false),
                    None => {
                        self.docs.forget(id);
                        return Ok(Applied::Missing);
                    }
                },
            };
            let mut callout = value;
            let before = callout.clone();
            let now = Timestamp::now();
            let (changes, result) = transition(&mut callout, now);
            if changes.is_empty() && callout == before {
                if cached {
                    continue;
                }
                self.docs.put(version, before);
                return Ok(Applied::Unchanged {
                    callout,
                    version,
                    result,
                });
            }
            match self
                .store
                .commit(&callout, version, &changes.events)
                .await?
            {
                CommitResult::Done { version } => {
                    self.docs.put(version, callout.clone());
                    self.after_commit(&callout, changes);
                    return Ok(Applied::Committed {
                        callout,
                        version,
                        result,
                    });
                }
                CommitResult::Conflict => {
                    // Another replica (or task) moved on: drop what we had and
                    // retry on a fresh read.
                    metrics::counter!(m::STORE_CONFLICTS).increment(1);
                    self.docs.forget(id);
                }
            }
        }
        Err(EngineError::Contention(id))
    }

    /// The document for a webhook: from this replica's cache when it has one, else
    /// from the store; the flag says which. A cached document may be stale: pass
    /// the flag to `update`, whose commit catches a stale change and which
    /// re-checks a "nothing to do" on a fresh read.
    pub(crate) async fn load_cached(
        &self,
        id: CalloutId,
    ) -> Result<Option<(Versioned<Callout>, bool)>, StoreError> {
        if let Some(hit) = self.docs.take(id) {
            return Ok(Some((hit, true)));
        }
        // Not cached here: the commit that follows caches its result.
        Ok(self.store.load(id).await?.map(|v| (v, false)))
    }

    /// Publishes and measures committed events, then starts committed effects.
    fn after_commit(&self, callout: &Callout, changes: Consequences) {
        for event in &changes.events {
            record_metrics(callout, event);
            let _ = self.timeline.send(TimelineEvent {
                callout: callout.id,
                event: event.clone(),
            });
        }
        for effect in changes.effects {
            let engine = self.clone();
            let id = callout.id;
            self.tasks
                .spawn(async move { engine.run_effect(id, effect).await });
        }
    }

    async fn run_effect(&self, id: CalloutId, effect: Effect) {
        match effect {
            Effect::PlaceCall {
                call_id,
                slot_reserved,
            } => self.place_call(id, call_id, slot_reserved).await,
            Effect::HangUp { call_id } => self.hang_up(id, call_id).await,
            Effect::Notify => self.notify(id).await,
            Effect::SaveTranscript { call_id } => self.save_transcript(id, call_id).await,
        }
    }

    // ----- the dispatcher's operations ----------------------------------------

    /// Creates a callout and starts calling at once.
    pub async fn create_callout(
        &self,
        input: NewCallout,
    ) -> Result<(Callout, Vec<Event>), EngineError> {
        self.create_callout_by(input, None).await
    }

    /// [`Self::create_callout`] for an API caller: `by` (its key's fingerprint)
    /// goes on the `callout_created` event.
    pub async fn create_callout_by(
        &self,
        input: NewCallout,
        by: Option<&str>,
    ) -> Result<(Callout, Vec<Event>), EngineError> {
        self.create_callout_as(CalloutId::new(), input, by).await
    }

    /// [`Self::create_callout_by`] with a given id (a scheduled occurrence's,
    /// the same on every replica): the store refuses a second creation.
    pub async fn create_callout_as(
        &self,
        id: CalloutId,
        input: NewCallout,
        by: Option<&str>,
    ) -> Result<(Callout, Vec<Event>), EngineError> {
        let now = Timestamp::now();
        let (mut callout, mut events) = Callout::create(id, input, now);
        callout.created_by = by.map(str::to_owned);
        mark_by(&mut events, by, |k| matches!(k, EventKind::CalloutCreated));
        self.store.insert(&callout, &events).await?;
        self.after_commit(
            &callout,
            Consequences {
                events: events.clone(),
                effects: Vec::new(),
            },
        );
        // Don't wait for the timer loop's next round for the first call.
        let engine = self.clone();
        let id = callout.id;
        self.tasks.spawn(async move { engine.fire(id).await });
        Ok((callout, events))
    }

    pub async fn callout(
        &self,
        id: CalloutId,
    ) -> Result<Option<(Callout, Vec<Event>)>, EngineError> {
        let Some(v) = self.store.load(id).await? else {
            return Ok(None);
        };
        let events = self.store.events(id).await?;
        Ok(Some((v.value, events)))
    }

    pub async fn list(
        &self,
        status: Option<CalloutStatus>,
        limit: usize,
        before: Option<CalloutId>,
    ) -> Result<Vec<Callout>, EngineError> {
        Ok(self.store.list(status, limit, before).await?)
    }

    /// Cancels: no further calls; a live call is hung up.
    pub async fn cancel(&self, id: CalloutId) -> Result<Callout, EngineError> {
        self.cancel_by(id, None).await
    }

    /// [`Self::cancel`] for an API caller: `by` goes on the `callout_cancelled` event.
    pub async fn cancel_by(&self, id: CalloutId, by: Option<&str>) -> Result<Callout, EngineError> {
        let timing = self.settings.timing;
        match self
            .update(id, |c, now| match c.cancel(now, &timing) {
                Ok(mut ch) => {
                    mark_by(&mut ch.events, by, |k| {
                        matches!(k, EventKind::CalloutCancelled)
                    });
                    (ch, Ok(()))
                }
                Err(e) => (Consequences::default(), Err(e)),
            })
            .await?
        {
            Applied::Missing => Err(EngineError::NotFound),
            Applied::Committed {
                callout, result, ..
            }
            | Applied::Unchanged {
                callout, result, ..
            } => {
                result?;
                Ok(callout)
            }
        }
    }

    /// Applies a status callback. An error means it was not stored: answer 5xx so
    /// the carrier retries.
    pub async fn on_status(
        &self,
        id: CalloutId,
        call: CallId,
        cb: &StatusCallback,
    ) -> Result<(), EngineError> {
        let timing = self.settings.timing;
        let status = cb.status.name.clone();
        let message_id = cb.message_id.clone();
        let tracking_id = cb.conversation_tracking_id.clone();
        let Some((loaded, cached)) = self.load_cached(id).await? else {
            return Ok(()); // an expired callout: nothing to apply
        };
        self.update((loaded, cached), |c, now| {
            (
                c.on_status(
                    call,
                    &status,
                    message_id.as_deref(),
                    tracking_id.as_deref(),
                    now,
                    &timing,
                ),
                (),
            )
        })
        .await?;
        Ok(())
    }
}

/// Puts the API caller `by` on the events of `events` that it caused.
fn mark_by(events: &mut [Event], by: Option<&str>, caused: impl Fn(&EventKind) -> bool) {
    for e in events.iter_mut().filter(|e| caused(&e.kind)) {
        e.by = by.map(str::to_owned);
    }
}

/// Metrics derived from committed events: each event is committed exactly once
/// across all replicas, so counting here never double counts.
fn record_metrics(callout: &Callout, event: &Event) {
    match &event.kind {
        EventKind::CalloutCreated => metrics::counter!(m::CALLOUTS_CREATED).increment(1),
        EventKind::AttemptEnded { outcome, .. } => {
            metrics::counter!(m::ATTEMPT_OUTCOMES, "outcome" => outcome.as_str()).increment(1);
        }
        EventKind::CarrierUnavailable { .. } => {
            metrics::counter!(m::CARRIER_UNAVAILABLE).increment(1);
        }
        EventKind::KeysPressed { keys } => {
            for k in keys.chars() {
                metrics::counter!(m::DTMF_RECEIVED, "key" => m::dtmf_key_label(k)).increment(1);
            }
        }
        EventKind::CalloutAccepted => {
            metrics::counter!(m::CALLOUTS_FINISHED, "status" => "accepted").increment(1);
            metrics::histogram!(m::TIME_TO_ACCEPT)
                .record(event.at.since(callout.created_at).as_secs_f64());
        }
        EventKind::CalloutExhausted => {
            metrics::counter!(m::CALLOUTS_FINISHED, "status" => "exhausted").increment(1)
        }
        EventKind::CalloutCancelled => {
            metrics::counter!(m::CALLOUTS_FINISHED, "status" => "cancelled").increment(1)
        }
        EventKind::CalloutFailed { .. } => {
            metrics::counter!(m::CALLOUTS_FINISHED, "status" => "failed").increment(1)
        }
        _ => {}
    }
}
