//! One simulated call, from `Queued` to its final status, in its own task.
//!
//! The call rings, is answered (or not) as its callee's [`Behaviour`] says, then
//! plays the dialplan verb by verb while the callee presses keys, hangs up, or
//! listens. All durations are simulated seconds scaled by the clock; the eventUrl
//! answer window is wall-clock (it measures the gateway, not the callee).
//!
//! The readings of the reference's gaps that this module implements are listed in
//! the [`sim`](super) module doc.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::callees::{Behaviour, PressTiming};
use super::faults::probability;
use super::state::{
    CallEntry, DialLegRecord, EndCause, EventOutcome, EventPostRecord, Shared, SimCallRecord,
    SimEvent, StatusChange, ToneReading, deadline, now_rfc3339,
};
use super::webhook::{post_event, post_event_duplicate, spawn_status_delivery};
use crate::domain::phone::E164;
use crate::routee::{
    CallStatus, CallbackStrategy, Collect, CollectEvent, CreateConversation, Destination, Dial,
    Dialplan, MachineDetection, MachineStrategy, StatusCallback, StatusInfo, Verb,
};

/// Simulated seconds from creation to `Queued`, `Initiated` and `Ringing`.
const QUEUE_S: f64 = 0.2;
const INITIATE_S: f64 = 0.5;
const RING_START_S: f64 = 0.5;
/// The wall-clock floor before the first callback, so that `Queued` does not
/// overtake the create answer on a fast machine with a tiny time scale.
const MIN_FIRST_CALLBACK: Duration = Duration::from_millis(50);
/// How long a failing or busy line takes to say so.
const FAIL_S: f64 = 0.5;
const BUSY_S: f64 = 1.0;
/// How long a rejecting callee lets it ring before declining.
const REJECT_AFTER_S: f64 = 1.5;
/// Ringing limit when the conversation has no `hangupDelay`.
pub(crate) const DEFAULT_HANGUP_DELAY_S: u32 = 30;
/// Text-to-speech pace, and the shortest SAY.
const SAY_CHARS_PER_S: f64 = 15.0;
const SAY_MIN_S: f64 = 0.5;
/// How long a `PLAY` file may take to fetch (Routee's limit is undocumented).
const PLAY_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest `PLAY` file read (reference §3.3: 5 MB suggested by field evidence).
const PLAY_MAX_BYTES: usize = 5 << 20;
/// A DIAL rings the other party this long, then bridges this long.
const DIAL_RING_S: f64 = 2.0;
const DIAL_BRIDGE_S: f64 = 5.0;
/// How long after a prompt starts an `on_prompt` callee presses (at most half the prompt).
const PROMPT_REACTION_S: f64 = 0.5;
/// COLLECT's default `maxDigits` (reference §3.5).
const DEFAULT_MAX_DIGITS: u32 = 30;
/// Simulated price per started minute of an answered call (currency undocumented).
const PRICE_PER_MINUTE: f64 = 0.02;

/// What `POST /voice/conversation` answers about a call it placed.
pub(crate) struct Placed {
    pub tracking_id: String,
    pub created_at: String,
}

/// The price of a call, as callbacks and tracking report it.
pub(crate) fn price(duration_s: f64, answered: bool) -> f64 {
    if answered {
        (duration_s / 60.0).ceil().max(1.0) * PRICE_PER_MINUTE
    } else {
        0.0
    }
}

/// Records a new call and starts its task.
pub(crate) fn place(sim: &Arc<Shared>, request: &CreateConversation, to: &E164) -> Placed {
    let message_id = Uuid::new_v4().to_string();
    let tracking_id = Uuid::new_v4().to_string();
    let created_at = now_rfc3339();
    let to = to.to_string();
    let (end_tx, end_rx) = watch::channel(None);
    let cancel = sim.shutdown.child_token();
    let (behaviour, attempt, call_rng, delivery_rng, tones) = {
        let mut state = sim.lock();
        let attempt = {
            let n = state.attempts.entry(to.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let behaviour = state.callees.script_for(&to).for_attempt(attempt).clone();
        let call_rng = state.faults.call_rng();
        let delivery_rng = state.faults.call_rng();
        let tones = state.tones;
        let record = SimCallRecord {
            message_id: message_id.clone(),
            conversation_tracking_id: tracking_id.clone(),
            to: to.clone(),
            from: request.from.clone(),
            attempt,
            behaviour: behaviour.clone(),
            dialplan: request.dial_plan.clone(),
            callback_url: request.callback.as_ref().map(|cb| cb.url.clone()),
            hangup_delay: request.hangup_delay,
            max_duration: request.max_duration,
            status: CallStatus::Queued,
            statuses: Vec::new(),
            callbacks: Vec::new(),
            heard: Vec::new(),
            heard_at: Vec::new(),
            keys: Vec::new(),
            keys_at: Vec::new(),
            collected_tones: String::new(),
            event_posts: Vec::new(),
            dialed: None,
            dial_leg: None,
            protocol_errors: Vec::new(),
            created_at: created_at.clone(),
            answered_at: None,
            ended_at: None,
            duration_s: 0.0,
            end_reason: None,
            machine_detected: false,
            longest_silence_s: 0.0,
            longest_answer_wait_ms: 0,
        };
        let index = state.calls.len();
        state.by_message_id.insert(message_id.clone(), index);
        state.calls.push(CallEntry {
            record,
            end_tx,
            cancel: cancel.clone(),
        });
        (behaviour, attempt, call_rng, delivery_rng, tones)
    };
    sim.emit(SimEvent::CallPlaced {
        message_id: message_id.clone(),
        to: to.clone(),
        attempt,
    });
    let outbox = request.callback.as_ref().map(|cb| {
        let tx = spawn_status_delivery(
            sim,
            message_id.clone(),
            cb.url.clone(),
            delivery_rng,
            cancel.clone(),
        );
        (tx, cb.strategy)
    });
    let call = Call {
        sim: Arc::clone(sim),
        message_id,
        tracking_id: tracking_id.clone(),
        to,
        from: request.from.clone(),
        hangup_delay: request.hangup_delay,
        max_duration: request.max_duration,
        behaviour,
        dialplan: request.dial_plan.clone(),
        end_rx,
        cancel,
        callback: request.callback.clone(),
        outbox,
        rng: call_rng,
        answered_at: None,
        tones,
        machine_detection: request.machine_detection.clone(),
        silence: Silence::default(),
    };
    sim.tasks.spawn(call.run());
    Placed {
        tracking_id,
        created_at,
    }
}

/// Why a wait was cut short.
enum Stop {
    /// The Routee API hung up or rejected the call.
    Api(EndCause),
    /// Shutdown or reset: stop without a word.
    Cancelled,
}

/// How the answered part of a call ended.
enum Ended {
    VerbsDone,
    Dialed,
    CalleeHungUp,
    /// `machineDetection` with the `Hangup` strategy met a machine.
    MachineHangup,
    MaxDuration,
    Api(EndCause),
    Cancelled,
}

/// The second leg of a DIAL while it runs.
struct Leg {
    message_id: String,
    to: String,
    from: String,
    outbox: Option<(mpsc::UnboundedSender<StatusCallback>, CallbackStrategy)>,
    answered_at: Option<Instant>,
}

/// How a DIAL leg ended.
enum LegEnd {
    /// Answered and talked until the other party hung up.
    Talked,
    /// Busy, failed or not answered: the caller's dialplan goes on.
    Unanswered(CallStatus),
    /// The caller's call ended meanwhile.
    CallEnded(Ended),
}

/// What woke the player up.
enum Wake {
    VerbDone,
    Key,
    /// An answering machine's greeting ended: detection reports it.
    Machine,
    End(Ended),
}

/// What a turn of keys did to the playing verb.
enum KeyEffect {
    /// Nothing visible: buffered, or not gathered at all.
    None,
    /// A `bargeIn` verb was stopped and the dialplan goes on with the next verb.
    Interrupted,
    /// The eventUrl answered a dialplan that replaces the rest of the playing one.
    Replaced(Dialplan),
    Ended(Ended),
}

/// The outcome of one eventUrl POST.
enum Submitted {
    Replace(Dialplan),
    Keep,
    Ended(Ended),
}

struct Call {
    sim: Arc<Shared>,
    message_id: String,
    tracking_id: String,
    to: String,
    from: String,
    hangup_delay: Option<u32>,
    max_duration: Option<u32>,
    behaviour: Behaviour,
    dialplan: Dialplan,
    end_rx: watch::Receiver<Option<EndCause>>,
    cancel: CancellationToken,
    /// The conversation's `callback` (a DIAL leg without its own reports there).
    callback: Option<crate::routee::Callback>,
    /// Where status callbacks go, when the conversation asked for them.
    outbox: Option<(mpsc::UnboundedSender<StatusCallback>, CallbackStrategy)>,
    rng: StdRng,
    answered_at: Option<Instant>,
    tones: ToneReading,
    /// The conversation's `machineDetection`.
    machine_detection: Option<MachineDetection>,
    /// What the callee hears as silence (see [`Silence`]).
    silence: Silence,
}

/// The callee's silences: the time between the end of one `SAY` and the start
/// of the next (or the end of the call), in simulated seconds, without the
/// time the gateway took to answer an eventUrl POST (wall-clock, measured on
/// its own: at a time scale of 0.02 a 100 ms answer would read as 5 s).
#[derive(Debug, Default)]
struct Silence {
    /// When the last `SAY` ends (or was cut by a key).
    say_end: f64,
    /// Simulated seconds spent waiting on eventUrl answers since then.
    waited: f64,
    longest: f64,
    longest_answer_ms: u64,
}

impl Silence {
    /// A `SAY` of `seconds` starts at `now`.
    fn say(&mut self, now: f64, seconds: f64) {
        self.close(now);
        self.say_end = now + seconds;
    }

    /// A silence ends at `now` (a `SAY` starts, or the call ends).
    fn close(&mut self, now: f64) {
        let gap = now - self.say_end - self.waited;
        self.longest = self.longest.max(gap);
        self.waited = 0.0;
    }
}

/// The playing dialplan and the callee's pending actions.
struct Playback {
    verbs: Vec<Verb>,
    idx: usize,
    /// The COLLECT of the playing dialplan: where tones go, if anywhere.
    collect: Option<Collect>,
    /// Tones gathered since the last submit (what a per-submit POST carries).
    buffer: String,
    /// Every tone gathered on the call, `#` included (what a cumulative POST carries).
    call_tones: String,
    turns: VecDeque<String>,
    /// Turns pressed so far.
    pressed: usize,
    timing: Option<PressTiming>,
    answered: Instant,
    next_key_at: Option<Instant>,
    hangup_at: Option<Instant>,
    max_at: Option<Instant>,
    /// When an answering machine's greeting ends and detection reports it.
    machine_at: Option<Instant>,
}

impl Playback {
    fn new(call: &Call) -> Self {
        let clock = call.sim.clock;
        let (turns, timing) = match &call.behaviour {
            Behaviour::Press(p) => (p.turns.iter().cloned().collect(), Some(p.timing.clone())),
            _ => (VecDeque::new(), None),
        };
        let next_key_at = match &timing {
            Some(PressTiming::AfterAnswer(s)) => Some(deadline(clock.secs(*s))),
            Some(PressTiming::At(at)) => at.first().map(|s| deadline(clock.secs(*s))),
            _ => None,
        };
        let hangup_at = match &call.behaviour {
            Behaviour::HangUp { after_s, .. } => Some(deadline(clock.secs(*after_s))),
            _ => None,
        };
        let machine_at = match &call.behaviour {
            Behaviour::Voicemail { greeting_s, .. } => Some(deadline(clock.secs(*greeting_s))),
            _ => None,
        };
        let mut playback = Self {
            verbs: Vec::new(),
            idx: 0,
            collect: None,
            buffer: String::new(),
            call_tones: String::new(),
            turns,
            pressed: 0,
            timing,
            answered: Instant::now(),
            next_key_at,
            hangup_at,
            max_at: call
                .max_duration
                .map(|m| deadline(clock.secs(f64::from(m)))),
            machine_at,
        };
        playback.load(call.dialplan.clone());
        playback
    }

    /// Starts playing `plan` from its first verb.
    fn load(&mut self, plan: Dialplan) {
        self.collect = plan.verbs.iter().find_map(|v| match v {
            Verb::Collect(c) => Some(c.clone()),
            _ => None,
        });
        self.verbs = plan.verbs;
        self.idx = 0;
    }
}

/// Simulated seconds a verb plays; `None` for `repeat: -1` (until interrupted).
/// `play_s` is the length of a `PLAY`'s file.
pub fn verb_seconds(verb: &Verb, play_s: f64) -> Option<f64> {
    let times = |repeat: Option<i32>| match repeat {
        Some(r) if r < 0 => None,
        Some(r) => Some(f64::from(r) + 1.0),
        None => Some(1.0),
    };
    match verb {
        Verb::Say(say) => {
            let once = (say.message.text.chars().count() as f64 / SAY_CHARS_PER_S).max(SAY_MIN_S);
            times(say.repeat).map(|n| n * once)
        }
        Verb::Play(play) => times(play.repeat).map(|n| n * play_s),
        Verb::Pause(pause) => Some(f64::from(pause.duration)),
        Verb::Collect(_) => Some(0.0),
        Verb::Dial(_) => Some(DIAL_RING_S + DIAL_BRIDGE_S),
    }
}

fn barges_in(verb: &Verb) -> bool {
    match verb {
        Verb::Say(s) => s.barge_in,
        Verb::Play(p) => p.barge_in,
        _ => false,
    }
}

fn verb_name(verb: &Verb) -> &'static str {
    match verb {
        Verb::Say(_) => "SAY",
        Verb::Play(_) => "PLAY",
        Verb::Pause(_) => "PAUSE",
        Verb::Collect(_) => "COLLECT",
        Verb::Dial(_) => "DIAL",
    }
}

fn destination(d: &Destination) -> &str {
    match d {
        Destination::Phone(s) | Destination::Sip(s) | Destination::Viber(s) => s,
    }
}

fn api_reason(cause: EndCause) -> &'static str {
    match cause {
        EndCause::Hangup => "hung up through the API",
        EndCause::Reject => "rejected through the API",
    }
}

/// GETs a `PLAY` URL and reads it as a WAV (what Routee plays, reference §3.3):
/// its length in seconds, or why it cannot be played.
async fn fetch_wav_seconds(http: &reqwest::Client, url: &str) -> Result<f64, String> {
    let parsed = url::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
    if !parsed.path().to_ascii_lowercase().ends_with(".wav") {
        return Err(format!("{url:?}: Routee plays .wav files only"));
    }
    let resp = http
        .get(url)
        .timeout(PLAY_FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url:?} is not reachable: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url:?} answered HTTP {}", resp.status().as_u16()));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("{url:?} could not be read: {e}"))?;
    if bytes.len() > PLAY_MAX_BYTES {
        return Err(format!("{url:?} is larger than {PLAY_MAX_BYTES} bytes"));
    }
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("{url:?} is not a WAV file: {e}"))?;
    let spec = reader.spec();
    if spec.sample_rate == 0 {
        return Err(format!("{url:?} has a sample rate of 0"));
    }
    Ok(f64::from(reader.duration()) / f64::from(spec.sample_rate))
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the Routee API ended the call (at once if it already did).
async fn api_end(rx: &mut watch::Receiver<Option<EndCause>>) -> EndCause {
    let cause = rx.wait_for(Option::is_some).await.ok().and_then(|v| *v);
    match cause {
        Some(cause) => cause,
        // The sender is gone only when the call was reset; cancellation follows.
        None => std::future::pending().await,
    }
}

impl Call {
    async fn run(mut self) {
        let outcome = match self.ring().await {
            Ok(Some(unanswered)) => Some(unanswered),
            Ok(None) => self
                .converse()
                .await
                .map(|reason| (CallStatus::Completed, reason)),
            // The API can only reject before the answer (hangup needs InProgress).
            Err(Stop::Api(cause)) => Some((CallStatus::NoAnswer, api_reason(cause).into())),
            Err(Stop::Cancelled) => None,
        };
        if let Some((status, reason)) = outcome {
            self.finish(status, reason);
        }
    }

    /// Queued → Initiated → Ringing → answered (`None`) or a final status.
    async fn ring(&mut self) -> Result<Option<(CallStatus, String)>, Stop> {
        let clock = self.sim.clock;
        self.wait(clock.secs(QUEUE_S).max(MIN_FIRST_CALLBACK))
            .await?;
        self.status(CallStatus::Queued)?;
        self.wait_s(INITIATE_S).await?;
        self.status(CallStatus::Initiated)?;
        match self.behaviour {
            Behaviour::Fails => {
                self.wait_s(FAIL_S).await?;
                return Ok(Some((
                    CallStatus::Failed,
                    "the network failed the call".into(),
                )));
            }
            Behaviour::Busy => {
                self.wait_s(BUSY_S).await?;
                return Ok(Some((CallStatus::Busy, "the line is busy".into())));
            }
            _ => {}
        }
        self.wait_s(RING_START_S).await?;
        self.status(CallStatus::Ringing)?;
        let limit = f64::from(self.hangup_delay.unwrap_or(DEFAULT_HANGUP_DELAY_S));
        if self.behaviour == Behaviour::Rejects {
            self.wait_s(REJECT_AFTER_S.min(limit)).await?;
            return Ok(Some((CallStatus::NoAnswer, "the callee declined".into())));
        }
        match self.behaviour.ring_s() {
            Some(ring) if ring < limit => {
                self.wait_s(ring).await?;
                self.status(CallStatus::InProgress)?;
                self.answered_at = Some(Instant::now());
                let at = now_rfc3339();
                self.sim
                    .with_record(&self.message_id, |r| r.answered_at = Some(at));
                Ok(None)
            }
            _ => {
                self.wait_s(limit).await?;
                Ok(Some((
                    CallStatus::NoAnswer,
                    format!("no answer within {limit} s"),
                )))
            }
        }
    }

    /// Plays the dialplan; the reason the call ended, or `None` when cancelled.
    async fn converse(&mut self) -> Option<String> {
        let mut playback = Playback::new(self);
        let reason = match self.play(&mut playback).await {
            Ended::VerbsDone => "the dialplan ran out",
            Ended::Dialed => "the bridged call ended",
            Ended::CalleeHungUp => "the callee hung up",
            Ended::MachineHangup => "machine detection hung up",
            Ended::MaxDuration => "maxDuration reached",
            Ended::Api(cause) => api_reason(cause),
            Ended::Cancelled => return None,
        };
        // The end-of-call POST (reference §4.1 item 3, observed on live calls):
        // whatever is buffered, possibly nothing; its answer is ignored. It goes
        // out before the final status is reported.
        if let Some(collect) = playback.collect.clone() {
            let tones = match self.tones {
                ToneReading::Cumulative => playback.call_tones.clone(),
                ToneReading::PerSubmit => std::mem::take(&mut playback.buffer),
            };
            if let Submitted::Ended(Ended::Cancelled) =
                self.submit(&collect.event_url, tones, true, None).await
            {
                return None;
            }
        }
        Some(reason.to_owned())
    }

    async fn play(&mut self, pb: &mut Playback) -> Ended {
        let clock = self.sim.clock;
        loop {
            let Some(verb) = pb.verbs.get(pb.idx).cloned() else {
                return Ended::VerbsDone;
            };
            self.verb_started(pb.idx, &verb);
            if let Verb::Dial(dial) = &verb {
                match self.bridge(dial, pb).await {
                    Some(ended) => return ended,
                    None => {
                        pb.idx += 1;
                        continue;
                    }
                }
            }
            let fetch_from = self.since_answer();
            let fetched = match &verb {
                Verb::Play(play) => Some(self.audio_seconds(&play.file_url).await),
                _ => None,
            };
            // Fetching the file is the simulator's wall-clock work, not silence.
            self.silence.waited += self.since_answer() - fetch_from;
            let play_s = match fetched {
                Some(fetched) => match fetched {
                    Ok(s) => s,
                    Err(e) => {
                        self.protocol_error(format!("verbs[{}]: PLAY {e}", pb.idx));
                        pb.idx += 1;
                        continue;
                    }
                },
                _ => 0.0,
            };
            let seconds = verb_seconds(&verb, play_s);
            if matches!(verb, Verb::Say(_)) {
                self.silence
                    .say(self.since_answer(), seconds.unwrap_or_default());
            }
            let barge = barges_in(&verb);
            if barge
                && matches!(pb.timing, Some(PressTiming::OnPrompt))
                && !pb.turns.is_empty()
                && pb.next_key_at.is_none()
            {
                let delay = seconds.map_or(PROMPT_REACTION_S, |s| PROMPT_REACTION_S.min(s / 2.0));
                pb.next_key_at = Some(deadline(clock.secs(delay)));
            }
            let verb_end = seconds.map(|s| deadline(clock.secs(s)));
            loop {
                match self.next_wake(pb, verb_end).await {
                    Wake::VerbDone => {
                        pb.idx += 1;
                        break;
                    }
                    Wake::Key => {
                        let pressed_at = self.since_answer();
                        let effect = self.press_turn(pb, barge).await;
                        if matches!(effect, KeyEffect::Interrupted | KeyEffect::Replaced(_))
                            && matches!(verb, Verb::Say(_))
                        {
                            // The key cut the SAY short.
                            self.silence.say_end = self.silence.say_end.min(pressed_at);
                        }
                        match effect {
                            KeyEffect::None => {}
                            KeyEffect::Interrupted => {
                                pb.idx += 1;
                                break;
                            }
                            KeyEffect::Replaced(plan) => {
                                pb.load(plan);
                                break;
                            }
                            KeyEffect::Ended(ended) => return ended,
                        }
                    }
                    Wake::Machine => {
                        pb.machine_at = None;
                        match self.machine_detected().await {
                            Submitted::Replace(plan) => {
                                pb.load(plan);
                                break;
                            }
                            Submitted::Keep => {}
                            Submitted::Ended(ended) => return ended,
                        }
                    }
                    Wake::End(ended) => return ended,
                }
            }
        }
    }

    /// Machine detection met a machine (reference §2): with no
    /// `machineDetection` nothing happens (the machine records what plays);
    /// `Hangup` ends the call; `Continue` POSTs to its `eventUrl` (the payload
    /// is a GAP: the sim sends what a COLLECT event carries) and plays the
    /// dialplan answered.
    async fn machine_detected(&mut self) -> Submitted {
        let Some(md) = self.machine_detection.clone() else {
            return Submitted::Keep;
        };
        self.sim
            .with_record(&self.message_id, |r| r.machine_detected = true);
        match (md.strategy, md.event_url) {
            (MachineStrategy::Hangup, _) => Submitted::Ended(Ended::MachineHangup),
            (MachineStrategy::Continue, None) => Submitted::Keep,
            (MachineStrategy::Continue, Some(url)) => {
                self.submit(&url, String::new(), false, None).await
            }
        }
    }

    /// Sleeps until the earliest pending deadline. Deadlines are compared rather
    /// than raced, so a task woken late (a loaded machine, a tiny time scale)
    /// still sees a key due before a verb's end as pressed during that verb.
    async fn next_wake(&mut self, pb: &Playback, verb_end: Option<Instant>) -> Wake {
        #[derive(Clone, Copy)]
        enum Due {
            HangUp,
            MaxDuration,
            Machine,
            Key,
            VerbDone,
        }
        // On equal deadlines the first listed wins.
        let next = [
            (pb.hangup_at, Due::HangUp),
            (pb.max_at, Due::MaxDuration),
            (pb.machine_at, Due::Machine),
            (pb.next_key_at, Due::Key),
            (verb_end, Due::VerbDone),
        ]
        .into_iter()
        .filter_map(|(at, due)| at.map(|at| (at, due)))
        .min_by_key(|(at, _)| *at);
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Wake::End(Ended::Cancelled),
            cause = api_end(&mut self.end_rx) => Wake::End(Ended::Api(cause)),
            () = sleep_until_opt(next.map(|(at, _)| at)) => match next.map(|(_, due)| due) {
                Some(Due::HangUp) => Wake::End(Ended::CalleeHungUp),
                Some(Due::MaxDuration) => Wake::End(Ended::MaxDuration),
                Some(Due::Machine) => Wake::Machine,
                Some(Due::Key) => Wake::Key,
                Some(Due::VerbDone) | None => Wake::VerbDone,
            },
        }
    }

    /// DIAL: a second leg, with its own `messageId` and status callbacks (to
    /// the DIAL's `callback.url`, else the conversation's), rings the other
    /// number, whose behaviour is its callee script. Answered, it talks for
    /// `DIAL_BRIDGE_S` (at most the DIAL's `maxDuration`) and the call ends when
    /// it hangs up: `Some(Ended::Dialed)`. Busy, failing or unanswered (past the
    /// DIAL's `hangupDelay`, 30 s when absent), the leg ends and the caller's
    /// dialplan goes on with the next verb: `None` (a GAP in the reference).
    /// Keys pressed meanwhile go to the other party, not to COLLECT.
    async fn bridge(&mut self, dial: &Dial, pb: &mut Playback) -> Option<Ended> {
        let other = destination(&dial.to).to_owned();
        let leg = Uuid::new_v4().to_string();
        let callback = dial.callback.clone().or_else(|| self.callback.clone());
        let behaviour = self
            .sim
            .lock()
            .callees
            .script_for(&other)
            .for_attempt(1)
            .clone();
        self.sim.with_record(&self.message_id, |r| {
            r.dialed = Some(other.clone());
            r.dial_leg = Some(DialLegRecord {
                message_id: leg.clone(),
                to: other.clone(),
                statuses: Vec::new(),
                callback_url: callback.as_ref().map(|c| c.url.clone()),
            });
        });
        pb.next_key_at = None;
        pb.turns.clear();
        let outbox = callback.map(|cb| {
            let rng = rand::SeedableRng::from_rng(&mut self.rng);
            let tx =
                spawn_status_delivery(&self.sim, leg.clone(), cb.url, rng, self.cancel.clone());
            (tx, cb.strategy)
        });
        let mut leg = Leg {
            message_id: leg,
            to: other,
            from: dial.from.clone(),
            outbox,
            answered_at: None,
        };
        let result = self.run_leg(dial, &behaviour, &mut leg, pb).await;
        let status = match &result {
            LegEnd::Talked => CallStatus::Completed,
            LegEnd::Unanswered(status) => status.clone(),
            LegEnd::CallEnded(_) => {
                if leg.answered_at.is_some() {
                    CallStatus::Completed
                } else {
                    CallStatus::NoAnswer
                }
            }
        };
        self.leg_status(&mut leg, status);
        match result {
            LegEnd::Talked => Some(Ended::Dialed),
            LegEnd::Unanswered(_) => None,
            LegEnd::CallEnded(ended) => Some(ended),
        }
    }

    async fn run_leg(
        &mut self,
        dial: &Dial,
        behaviour: &Behaviour,
        leg: &mut Leg,
        pb: &mut Playback,
    ) -> LegEnd {
        self.leg_status(leg, CallStatus::Initiated);
        match behaviour {
            Behaviour::Busy => {
                return match self.leg_wait(pb, BUSY_S).await {
                    Ok(()) => LegEnd::Unanswered(CallStatus::Busy),
                    Err(e) => LegEnd::CallEnded(e),
                };
            }
            Behaviour::Fails => {
                return match self.leg_wait(pb, FAIL_S).await {
                    Ok(()) => LegEnd::Unanswered(CallStatus::Failed),
                    Err(e) => LegEnd::CallEnded(e),
                };
            }
            _ => {}
        }
        if let Err(e) = self.leg_wait(pb, RING_START_S).await {
            return LegEnd::CallEnded(e);
        }
        self.leg_status(leg, CallStatus::Ringing);
        let limit = f64::from(dial.hangup_delay.unwrap_or(DEFAULT_HANGUP_DELAY_S));
        let ring = match behaviour.ring_s() {
            Some(ring) if ring < limit && *behaviour != Behaviour::Rejects => ring,
            _ => {
                let wait = if *behaviour == Behaviour::Rejects {
                    REJECT_AFTER_S.min(limit)
                } else {
                    limit
                };
                return match self.leg_wait(pb, wait).await {
                    Ok(()) => LegEnd::Unanswered(CallStatus::NoAnswer),
                    Err(e) => LegEnd::CallEnded(e),
                };
            }
        };
        if let Err(e) = self.leg_wait(pb, ring.min(DIAL_RING_S)).await {
            return LegEnd::CallEnded(e);
        }
        leg.answered_at = Some(Instant::now());
        self.leg_status(leg, CallStatus::InProgress);
        let talk = dial
            .max_duration
            .map_or(DIAL_BRIDGE_S, |m| DIAL_BRIDGE_S.min(f64::from(m)));
        match self.leg_wait(pb, talk).await {
            Ok(()) => LegEnd::Talked,
            Err(e) => LegEnd::CallEnded(e),
        }
    }

    /// Waits `secs` simulated seconds of a DIAL unless the caller's call ends.
    async fn leg_wait(&mut self, pb: &mut Playback, secs: f64) -> Result<(), Ended> {
        let until = Some(deadline(self.sim.clock.secs(secs)));
        loop {
            match self.next_wake(pb, until).await {
                Wake::VerbDone => return Ok(()),
                Wake::Key => pb.next_key_at = None,
                // A machine bridged to nobody: detection ran on the callee's leg.
                Wake::Machine => pb.machine_at = None,
                Wake::End(ended) => return Err(ended),
            }
        }
    }

    /// Records a status of the DIAL leg and queues its callback.
    fn leg_status(&self, leg: &mut Leg, status: CallStatus) {
        let at = now_rfc3339();
        self.sim.with_record(&self.message_id, |r| {
            if let Some(l) = r.dial_leg.as_mut() {
                l.statuses.push(StatusChange {
                    status: status.clone(),
                    at: at.clone(),
                });
            }
        });
        self.sim.emit(SimEvent::Status {
            message_id: leg.message_id.clone(),
            to: leg.to.clone(),
            status: status.clone(),
        });
        let final_status = status.is_final();
        let Some((outbox, strategy)) = &leg.outbox else {
            return;
        };
        if *strategy == CallbackStrategy::OnCompletion && !final_status {
            return;
        }
        let duration = leg.answered_at.map_or(0.0, |at| {
            (self.sim.clock.simulated(at.elapsed()) * 10.0).round() / 10.0
        });
        let _ = outbox.send(StatusCallback {
            message_id: Some(leg.message_id.clone()),
            conversation_tracking_id: Some(self.tracking_id.clone()),
            to: Some(leg.to.clone()),
            from: Some(leg.from.clone()),
            status: StatusInfo {
                name: status,
                updated_date: Some(at),
            },
            duration: Some(duration.round()),
            price: Some(price(duration, leg.answered_at.is_some())),
            direction: Some("Outbound".into()),
        });
        if final_status {
            leg.outbox = None;
        }
    }

    /// The length in seconds of the `.wav` at `url`, fetched once per URL (the
    /// gateway's audio is content-addressed); why Routee could not play it
    /// otherwise.
    async fn audio_seconds(&self, url: &str) -> Result<f64, String> {
        if let Some(known) = self.sim.lock().audio.get(url) {
            return known.clone();
        }
        let result = fetch_wav_seconds(&self.sim.http, url).await;
        self.sim.lock().audio.insert(url.to_owned(), result.clone());
        result
    }

    /// Records something Routee would not have accepted or played.
    fn protocol_error(&self, error: String) {
        tracing::warn!(%error, "simulated carrier: protocol error");
        let e = error.clone();
        self.sim
            .with_record(&self.message_id, |r| r.protocol_errors.push(e));
        self.sim.emit(SimEvent::ProtocolError {
            message_id: self.message_id.clone(),
            to: self.to.clone(),
            error,
        });
    }

    /// The callee enters the next turn of keys.
    async fn press_turn(&mut self, pb: &mut Playback, barge: bool) -> KeyEffect {
        let clock = self.sim.clock;
        let Some(keys) = pb.turns.pop_front() else {
            pb.next_key_at = None;
            return KeyEffect::None;
        };
        pb.pressed += 1;
        pb.next_key_at = match &pb.timing {
            Some(PressTiming::AfterAnswer(s)) if !pb.turns.is_empty() => {
                Some(deadline(clock.secs(*s)))
            }
            Some(PressTiming::At(at)) if !pb.turns.is_empty() => {
                at.get(pb.pressed).map(|s| pb.answered + clock.secs(*s))
            }
            _ => None,
        };
        let at = self.since_answer();
        self.sim.with_record(&self.message_id, |r| {
            r.keys.push(keys.clone());
            r.keys_at.push(at);
        });
        self.sim.emit(SimEvent::KeysPressed {
            message_id: self.message_id.clone(),
            to: self.to.clone(),
            keys: keys.clone(),
        });
        // Without a COLLECT in the playing dialplan no tone is gathered, and a
        // bargeIn verb is not interrupted.
        let Some(collect) = pb.collect.clone() else {
            return KeyEffect::None;
        };
        let max = collect.max_digits.unwrap_or(DEFAULT_MAX_DIGITS) as usize;
        let mut submit = barge;
        let mut gathered = String::new();
        let mut after_hash = String::new();
        let cumulative = self.tones == ToneReading::Cumulative;
        for (i, key) in keys.char_indices() {
            if key == '#' && collect.submit_on_hash {
                // Per submit, the terminating `#` is not part of the tones; in
                // the cumulative reading every tone of the call is (see the
                // module doc).
                submit = true;
                after_hash = keys[i + 1..].to_owned();
                if cumulative {
                    pb.call_tones.push('#');
                }
                break;
            }
            if pb.buffer.chars().count() < max {
                pb.buffer.push(key);
                gathered.push(key);
                if cumulative {
                    pb.call_tones.push(key);
                }
            }
        }
        // Keys typed after the `#` start the next submission.
        for key in after_hash.chars().take(max) {
            gathered.push(key);
        }
        self.sim
            .with_record(&self.message_id, |r| r.collected_tones.push_str(&gathered));
        if !submit {
            return KeyEffect::None;
        }
        let submitted = std::mem::replace(&mut pb.buffer, after_hash.chars().take(max).collect());
        let tones = if cumulative {
            let all = pb.call_tones.clone();
            pb.call_tones.push_str(&pb.buffer);
            all
        } else {
            submitted
        };
        match self
            .submit(&collect.event_url, tones, false, Some(&*pb))
            .await
        {
            Submitted::Replace(plan) => KeyEffect::Replaced(plan),
            Submitted::Keep if barge => KeyEffect::Interrupted,
            Submitted::Keep => KeyEffect::None,
            Submitted::Ended(ended) => KeyEffect::Ended(ended),
        }
    }

    /// POSTs tones to the eventUrl and waits for the answer (at most the eventUrl
    /// window). Mid-call, the call may end while it waits; the end-of-call POST
    /// (`final_post`) is only cut short by shutdown.
    async fn submit(
        &mut self,
        url: &str,
        tones: String,
        final_post: bool,
        pb: Option<&Playback>,
    ) -> Submitted {
        let event = CollectEvent {
            message_id: Some(self.message_id.clone()),
            conversation_tracking_id: Some(self.tracking_id.clone()),
            from: Some(self.from.clone()),
            to: Some(self.to.clone()),
            collected_tones: tones.clone(),
        };
        let duplicate_p = self.sim.lock().faults.faults.duplicate_callbacks;
        let duplicated = self.rng.random_bool(probability(duplicate_p));
        let (hangup_at, max_at) = pb.map_or((None, None), |p| (p.hangup_at, p.max_at));
        let http = self.sim.http.clone();
        let timeout = self.sim.event_url_timeout;
        let (posted, posted_s) = (std::time::Instant::now(), self.since_answer());
        let cut_short = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Submitted::Ended(Ended::Cancelled),
            cause = api_end(&mut self.end_rx), if !final_post => Err(Ended::Api(cause)),
            () = sleep_until_opt(hangup_at) => Err(Ended::CalleeHungUp),
            () = sleep_until_opt(max_at) => Err(Ended::MaxDuration),
            answer = post_event(&http, url, &event, timeout) => Ok(answer),
        };
        if !final_post {
            let wall_ms = u64::try_from(posted.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.silence.longest_answer_ms = self.silence.longest_answer_ms.max(wall_ms);
        }
        self.silence.waited += self.since_answer() - posted_s;
        if duplicated {
            post_event_duplicate(&self.sim, url.to_owned(), event);
        }
        let (record, result) = match cut_short {
            Err(ended) => (
                EventPostRecord {
                    at: now_rfc3339(),
                    collected_tones: tones,
                    final_post,
                    duplicated,
                    http_status: None,
                    answer: None,
                    outcome: EventOutcome::Continued {
                        reason: "the call ended before the answer".into(),
                    },
                },
                Submitted::Ended(ended),
            ),
            Ok(answer) => {
                let (outcome, result) = match answer.dialplan {
                    _ if final_post => (EventOutcome::Ignored, Submitted::Keep),
                    Ok(plan) => (
                        EventOutcome::Replaced {
                            verbs: plan.verbs.len(),
                        },
                        Submitted::Replace(plan),
                    ),
                    Err(reason) => (EventOutcome::Continued { reason }, Submitted::Keep),
                };
                (
                    EventPostRecord {
                        at: now_rfc3339(),
                        collected_tones: tones,
                        final_post,
                        duplicated,
                        http_status: answer.http_status,
                        answer: answer.body,
                        outcome,
                    },
                    result,
                )
            }
        };
        self.sim.emit(SimEvent::EventPosted {
            message_id: self.message_id.clone(),
            to: self.to.clone(),
            collected_tones: record.collected_tones.clone(),
            final_post,
            outcome: record.outcome.clone(),
        });
        self.sim
            .with_record(&self.message_id, |r| r.event_posts.push(record));
        result
    }

    fn verb_started(&self, index: usize, verb: &Verb) {
        let text = match verb {
            Verb::Say(say) => Some(say.message.text.clone()),
            Verb::Play(play) => Some(play.file_url.clone()),
            Verb::Dial(dial) => Some(destination(&dial.to).to_owned()),
            Verb::Pause(_) | Verb::Collect(_) => None,
        };
        if let Verb::Say(say) = verb {
            let heard = say.message.text.clone();
            let at = self.since_answer();
            self.sim.with_record(&self.message_id, |r| {
                r.heard.push(heard);
                r.heard_at.push(at);
            });
        }
        self.sim.emit(SimEvent::Verb {
            message_id: self.message_id.clone(),
            to: self.to.clone(),
            index,
            verb: verb_name(verb).to_owned(),
            text,
        });
    }

    /// Sleeps `secs` simulated seconds unless the call is ended or cancelled.
    async fn wait_s(&mut self, secs: f64) -> Result<(), Stop> {
        self.wait(self.sim.clock.secs(secs)).await
    }

    async fn wait(&mut self, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Stop::Cancelled),
            cause = api_end(&mut self.end_rx) => Err(Stop::Api(cause)),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Moves to a non-final status and reports it.
    fn status(&mut self, status: CallStatus) -> Result<(), Stop> {
        self.sim
            .set_status(&self.message_id, &status)
            .map_err(Stop::Api)?;
        self.announce(status);
        Ok(())
    }

    /// Simulated seconds since the answer (unrounded).
    fn since_answer(&self) -> f64 {
        self.answered_at
            .map_or(0.0, |at| self.sim.clock.simulated(at.elapsed()))
    }

    fn duration_s(&self) -> f64 {
        self.answered_at.map_or(0.0, |at| {
            let secs = self.sim.clock.simulated(at.elapsed());
            (secs * 10.0).round() / 10.0
        })
    }

    /// Emits the status on the timeline and queues its callback.
    fn announce(&self, status: CallStatus) {
        self.sim.emit(SimEvent::Status {
            message_id: self.message_id.clone(),
            to: self.to.clone(),
            status: status.clone(),
        });
        let Some((outbox, strategy)) = &self.outbox else {
            return;
        };
        if *strategy == CallbackStrategy::OnCompletion && !status.is_final() {
            return;
        }
        let duration = self.duration_s();
        let callback = StatusCallback {
            message_id: Some(self.message_id.clone()),
            conversation_tracking_id: Some(self.tracking_id.clone()),
            to: Some(self.to.clone()),
            from: Some(self.from.clone()),
            status: StatusInfo {
                name: status,
                updated_date: Some(now_rfc3339()),
            },
            duration: Some(duration.round()),
            price: Some(price(duration, self.answered_at.is_some())),
            direction: Some("Outbound".into()),
        };
        // The delivery task only stops on cancellation, when nothing matters any more.
        let _ = outbox.send(callback);
    }

    /// Records the final status and lets the callback queue drain.
    fn finish(mut self, status: CallStatus, reason: String) {
        let duration = self.duration_s();
        if self.answered_at.is_some() {
            self.silence.close(self.since_answer());
        }
        let (longest_silence, longest_answer) =
            (self.silence.longest, self.silence.longest_answer_ms);
        // A final status is never refused.
        let _ = self.sim.set_status(&self.message_id, &status);
        let ended_at = now_rfc3339();
        let why = reason.clone();
        self.sim.with_record(&self.message_id, |r| {
            r.ended_at = Some(ended_at);
            r.duration_s = duration;
            r.end_reason = Some(why);
            r.longest_silence_s = (longest_silence * 10.0).round() / 10.0;
            r.longest_answer_wait_ms = longest_answer;
        });
        self.announce(status.clone());
        self.outbox = None;
        self.sim.emit(SimEvent::CallEnded {
            message_id: self.message_id.clone(),
            to: self.to.clone(),
            status,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routee::{Gender, Language};

    #[test]
    fn say_lasts_in_proportion_to_its_text_and_repeats() {
        let short = Verb::say("Hi", Language::EnUs, Some(Gender::Female));
        assert_eq!(verb_seconds(&short, 0.0), Some(SAY_MIN_S));
        let long = Verb::say("x".repeat(30), Language::EnUs, None);
        assert_eq!(verb_seconds(&long, 0.0), Some(2.0));
        let Verb::Say(mut say) = long else {
            unreachable!()
        };
        say.repeat = Some(2);
        assert_eq!(verb_seconds(&Verb::Say(say.clone()), 0.0), Some(6.0));
        say.repeat = Some(-1);
        assert_eq!(
            verb_seconds(&Verb::Say(say), 0.0),
            None,
            "loops until interrupted"
        );
        assert_eq!(verb_seconds(&Verb::pause(4), 0.0), Some(4.0));
    }

    #[test]
    fn only_answered_calls_cost_something() {
        assert_eq!(price(0.0, false), 0.0);
        assert_eq!(price(10.0, true), PRICE_PER_MINUTE);
        assert_eq!(price(61.0, true), 2.0 * PRICE_PER_MINUTE);
    }
}
