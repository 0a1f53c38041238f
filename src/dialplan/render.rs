//! Voiceflow traces to Routee verbs: one Dialog Manager turn becomes one dialplan.
//!
//! Routee hears nothing from a call until a key is pressed or the call ends
//! (reference §4), so each dialplan must carry the whole turn: what the assistant
//! says, the keypad menu, the seed's reprompt, and the `COLLECT` that sends the
//! next keys back. [`render_turn`] builds it, and reports what it decided
//! ([`RenderedTurn`]) so the engine can record outcomes and map the next input.
//!
//! # Rules, trace by trace
//!
//! Traces are read in order; every rule has a golden case in `tests/golden/render/`.
//!
//! - **`speak`**: the message is made speakable ([`spoken`]: Markdown and SSML tags
//!   stripped, entities unescaped, whitespace collapsed) and said, split into
//!   several `SAY`s when longer than 1000 characters; empty text says nothing. A
//!   `src` that is an `http(s)` URL whose path ends in `.wav` (any case, query
//!   ignored) is `PLAY`ed instead, since Routee plays only `.wav`; any other `src`
//!   falls back to saying the message, with a note, or is only a note when there
//!   is no message. (Before rendering, the engine has already turned an `.mp3`
//!   URL or a `data:audio/...` URI into the gateway's own `.wav` of it, see
//!   [`crate::audio`], or dropped a `src` it could not convert in time.) `voice` picks the
//!   gender ([`gender_for_voice`]), else the context's default.
//! - **`text`**: said like a `speak` message.
//! - **`choice`** and card buttons: a keypad menu. Buttons are numbered in order
//!   across the turn, 1 to 9 (a phone has no key 10: more are dropped with a
//!   note), and each menu is announced where it appears with [`Phrases::menu_item`]
//!   ("Press 1 for Accept. Press 2 for Reject."). A pressed key sends that
//!   button's own request, verbatim ([`RenderedTurn::menu`]).
//! - **cards** (`cardV2`, each card of a `carousel`): the title and description
//!   are said, then the card's buttons are announced as above.
//! - **`no-reply`**: its timeout replaces the policy's input timeout for this
//!   turn, and [`RenderedTurn::no_reply_timeout`] tells the engine that silence
//!   must be reported to Voiceflow (and only then: reference §6). The engine
//!   runs the no-reply turn ahead and [`after_silence`] puts its response after
//!   the wait, in place of the repeated options.
//! - **`end`**: the call ends after what precedes it. Traces after it are ignored
//!   (Voiceflow sends none).
//! - **`visual`**, **`debug`**, **`path`** and Voiceflow's internal types
//!   (`flow`, `block`, `log`...): nothing is heard, deliberately. Images and
//!   unexpected internal types are noted; debug text is noted, never spoken.
//! - **custom actions**, by name ([`ActionNames`], case-insensitive):
//!   - `accept` / `reject`: the callee's decision ([`RenderedTurn::decision`]); the
//!     first one in a turn counts, a contradicting second is noted. The
//!     conversation goes on (the goodbye after it is still said).
//!   - `transfer` (`forward-call`, `CALL`): a `DIAL` from the caller ID to the
//!     E.164 number in the payload (`number`, `phone`, `to`, `to.phone`, or the
//!     payload itself), as the last verb; one per dialplan, so a second transfer
//!     is noted and dropped; an invalid number is noted and not dialled.
//!   - `hangup` (`end-call`): the call ends after what is said this turn.
//!   - `DTMF` (Voiceflow's telephony convention): its paths `DTMF 1`, `DTMF 2`...
//!     join the keypad menu, pressing `1` sends `{"type": "DTMF 1"}`. Nothing is
//!     announced: the assistant says its own options.
//!   - anything else: noted, and otherwise ignored.
//!
//!   A custom action that is the last meaningful trace (only `path`, `debug` or
//!   internal traces after it) and has paths is where the runtime *stopped*:
//!   [`RenderedTurn::resume`] holds the request that continues along its default
//!   path. `DTMF` is the exception: it stops to wait for a key, which the menu
//!   handles.
//! - A key conflict (a `DTMF 1` path and a first button both on key 1) keeps the
//!   first and notes the other.
//!
//! # Shape of the dialplan
//!
//! When the call goes on (no `end`, `hangup` or transfer), the turn asks for a
//! key, as the seed does (`shared/seeds/004`): every `SAY`/`PLAY` gets
//! `bargeIn: true` (the first key interrupts and is submitted at once), then
//! `PAUSE(timeout)`, then `reprompts` times the options again (with barge-in) and
//! `PAUSE(timeout)`, then `COLLECT { eventUrl, submitOnHash: true }`. "The
//! options" are what the menu-bearing traces said (the menu lines, with the card
//! text for cards), or else the last thing said (an assistant offering `DTMF`
//! keys in its own words). Pauses are clamped to 1..=60 seconds.
//!
//! When the call ends, the dialplan is what was said (without barge-in, since no
//! key can be collected), then the `DIAL` of a transfer. A menu or no-reply of
//! that turn is dropped with a note, and so are the "Press 1 for..." lines: an
//! offer nobody can take is worse than none. A dialplan is never empty (Routee refuses
//! one): with nothing to say it is a one-second `PAUSE`.
//!
//! # When there is no turn to render
//!
//! - [`holding_dialplan`] (Voiceflow is slow, Routee's 3-second window is
//!   closing): "One moment, please.", a 2-second pause, then "Press any key to
//!   continue." as the options of an ordinary input phase. The key press brings
//!   the caller back when the turn is ready.
//! - [`fallback_dialplan`] (Voiceflow is down): an apology, then the engine's own
//!   menu prompt as the options of an ordinary input phase.
//! - [`closing_dialplan`]: a goodbye and a one-second pause, no `COLLECT`.
//!
//! The gateway's own words come from [`Phrases`], in the call's language.
//!
//! # What may reach a verb
//!
//! Assistant and caller text only ever lands in `message.text`, made speakable
//! first. The `COLLECT` URL and the `DIAL` caller ID come from the context; a
//! `DIAL` number must parse as E.164; a `PLAY` URL must be an `http(s)` `.wav`.

use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

use super::language::gender_for_voice;
use super::speech::{say_pieces, spoken};
use crate::domain::phone::mask;
use crate::domain::{Decision, E164, MenuItem};
use crate::routee::{Collect, Destination, Dial, Dialplan, Gender, Language, Play, Verb};
use crate::voiceflow::{Button, CustomAction, Request, Speak, Trace};

/// Routee's pause bounds as the gateway uses them (reference §3.4: undocumented,
/// 1..=60 observed).
const MIN_PAUSE_S: u32 = 1;
const MAX_PAUSE_S: u32 = 60;
/// Keys a keypad menu of buttons can use: 1 to 9, in order.
const MAX_MENU_BUTTONS: u32 = 9;
/// The pause after the holding message, before "press any key".
const HOLDING_PAUSE_S: u32 = 2;
/// Internal trace types that are pure bookkeeping: not even worth a note.
const QUIET_INTERNAL: [&str; 6] = [
    "flow",
    "block",
    "log",
    "goto",
    "entity-filling",
    "knowledgeBase",
];

/// The text-to-speech voice of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voice {
    pub language: Language,
    /// `None` lets Routee choose.
    #[serde(default)]
    pub gender: Option<Gender>,
}

/// Which custom action names mean what, per assistant; matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionNames {
    pub accept: Vec<String>,
    pub reject: Vec<String>,
    pub transfer: Vec<String>,
    pub hangup: Vec<String>,
    /// The numbers a transfer may `DIAL` (the assistant's `transfer_targets`):
    /// none unless configured, so an edited flow cannot dial anywhere it likes.
    pub transfer_targets: Vec<E164>,
}

impl Default for ActionNames {
    fn default() -> Self {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            accept: names(&["accept"]),
            reject: names(&["reject"]),
            // `forward-call` is Voiceflow's telephony name, `CALL` the one of its Twilio IVR.
            transfer: names(&["transfer", "forward-call", "CALL"]),
            hangup: names(&["hangup", "end-call"]),
            transfer_targets: Vec::new(),
        }
    }
}

/// What a custom action does for the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Accept,
    Reject,
    Transfer,
    Hangup,
    Dtmf,
    Unknown,
}

impl ActionNames {
    fn kind(&self, name: &str) -> ActionKind {
        let is = |list: &[String]| list.iter().any(|n| same_name(n, name));
        if is(&self.accept) {
            ActionKind::Accept
        } else if is(&self.reject) {
            ActionKind::Reject
        } else if is(&self.transfer) {
            ActionKind::Transfer
        } else if is(&self.hangup) {
            ActionKind::Hangup
        } else if same_name("DTMF", name) {
            ActionKind::Dtmf
        } else {
            ActionKind::Unknown
        }
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

pub use super::phrases::Phrases;

/// Everything a turn's rendering depends on besides the traces.
#[derive(Debug, Clone, Copy)]
pub struct TurnContext<'a> {
    pub voice: Voice,
    /// The signed `COLLECT` URL for the input that answers this turn.
    pub event_url: &'a str,
    /// The `.wav` of silence played (with barge-in) while a key is awaited
    /// ([`crate::audio::silence`] under `PUBLIC_URL`).
    pub silence_url: &'a str,
    /// Seconds to wait for a key, when Voiceflow sends no `no-reply` timeout.
    pub input_timeout_s: u32,
    /// How many times the options are said again before the input ends.
    pub reprompts: u32,
    pub actions: &'a ActionNames,
    /// The caller ID a transfer `DIAL` shows.
    pub caller_id: &'a str,
    /// The longest a transfer's `DIAL` may last, in seconds (its `maxDuration`;
    /// the callout policy's `max_call_s`): a bridged call never runs unbounded.
    pub transfer_max_s: u32,
    pub phrases: &'a Phrases,
}

/// A rendered turn: the dialplan, and what the engine needs to know about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedTurn {
    pub dialplan: Dialplan,
    /// An `accept`/`reject` custom action seen this turn.
    pub decision: Option<Decision>,
    /// The keypad menu offered: a key maps to the request sent verbatim.
    pub menu: Vec<MenuItem>,
    /// `Some(seconds)` when a `no-reply` trace asked for input: silence is then
    /// reported to Voiceflow as a `no-reply` request.
    pub no_reply_timeout: Option<u32>,
    /// The dialplan has no `COLLECT`: it ends (`end`, transfer, hangup).
    pub ends_call: bool,
    /// The runtime stopped on a custom action: send this to continue.
    #[serde(serialize_with = "request_json")]
    pub resume: Option<Request>,
    /// The E.164 number a `DIAL` transfers the call to.
    pub transfer_to: Option<String>,
    /// Texts said, in order (for timelines and transcripts); options said again
    /// are not repeated here.
    pub spoken: Vec<String>,
    /// What was not rendered, and why.
    pub notes: Vec<String>,
}

fn request_json<S: Serializer>(request: &Option<Request>, s: S) -> Result<S::Ok, S::Error> {
    request.as_ref().map(Request::to_json).serialize(s)
}

/// Renders one Dialog Manager turn into one dialplan (see the module doc).
pub fn render_turn(traces: &[Trace], ctx: &TurnContext<'_>) -> RenderedTurn {
    let stopped = stopped_action(traces);
    let mut turn = Turn::new(ctx);
    for (i, trace) in traces.iter().enumerate() {
        turn.trace(trace, stopped == Some(i));
    }
    turn.finish()
}

/// The request that resumes a runtime stopped on a custom action, by the same rule
/// [`render_turn`] applies (and without rendering): the last meaningful trace is
/// a custom action with paths, other than `DTMF` (which waits for a key).
pub fn resume_request(traces: &[Trace], actions: &ActionNames) -> Option<Request> {
    match &traces[stopped_action(traces)?] {
        Trace::CustomAction(a) => resume_of(a, actions.kind(&a.name)),
        _ => None,
    }
}

/// What resumes a runtime stopped on `action`: its default path, except for
/// `DTMF`, which stops to wait for a key (the menu answers it).
fn resume_of(action: &CustomAction, kind: ActionKind) -> Option<Request> {
    (kind != ActionKind::Dtmf).then(|| action.resume_request())
}

/// The index of the custom action the runtime stopped on, if any: the last
/// meaningful trace, when it is a custom action with paths.
fn stopped_action(traces: &[Trace]) -> Option<usize> {
    let (i, last) = traces.iter().enumerate().rev().find(|(_, t)| {
        !matches!(
            t,
            Trace::Path { .. } | Trace::Debug { .. } | Trace::Internal { .. }
        )
    })?;
    match last {
        Trace::CustomAction(a) if !a.paths.is_empty() => Some(i),
        _ => None,
    }
}

/// The role of something said, which decides whether the reprompt repeats it and
/// whether it survives a turn that ends the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Speech with no menu attached.
    Prompt,
    /// A card's title and description, whose buttons follow.
    MenuText,
    /// "Press 1 for ...": pointless, and dropped, when the call ends.
    MenuLines,
}

/// One trace's worth of speech: its verbs and the text they say.
struct Said {
    verbs: Vec<Verb>,
    text: Option<String>,
    role: Role,
}

/// The state of one turn being rendered.
struct Turn<'c, 'a> {
    ctx: &'c TurnContext<'a>,
    /// Everything said or played, in order (barge-in is decided at the end).
    said: Vec<Said>,
    menu: Vec<MenuItem>,
    /// The key the next button gets.
    next_button: u32,
    no_reply: Option<u32>,
    decision: Option<Decision>,
    ended: bool,
    ends_call: bool,
    dial: Option<Dial>,
    resume: Option<Request>,
    notes: Vec<String>,
}

impl<'c, 'a> Turn<'c, 'a> {
    fn new(ctx: &'c TurnContext<'a>) -> Self {
        Self {
            ctx,
            said: Vec::new(),
            menu: Vec::new(),
            next_button: 1,
            no_reply: None,
            decision: None,
            ended: false,
            ends_call: false,
            dial: None,
            resume: None,
            notes: Vec::new(),
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    fn trace(&mut self, trace: &Trace, stopped_here: bool) {
        // Bookkeeping traces may follow `end`; anything audible after it is a bug upstream.
        let silent = matches!(
            trace,
            Trace::Path { .. } | Trace::Debug { .. } | Trace::Internal { .. }
        );
        if self.ended && !silent {
            self.note(format!("{}: ignored, it comes after end", trace.kind()));
            return;
        }
        match trace {
            Trace::Speak(speak) => self.speak(speak),
            Trace::Text { message } => {
                self.say(spoken(message), self.ctx.voice.gender, Role::Prompt);
            }
            Trace::Choice { buttons } => {
                if buttons.is_empty() {
                    self.note("choice: no buttons, no menu offered");
                } else {
                    self.buttons("choice", buttons);
                }
            }
            Trace::Card {
                title,
                description,
                buttons,
            } => self.card(title, description, buttons),
            Trace::NoReply { timeout } => {
                self.no_reply = Some(clamp_pause(timeout.unwrap_or(self.ctx.input_timeout_s)));
            }
            Trace::End => {
                self.ended = true;
                self.ends_call = true;
            }
            Trace::Path { .. } => {}
            Trace::Visual { image } => {
                let what = image.as_deref().map(note_excerpt).unwrap_or_default();
                self.note(format!(
                    "visual: not rendered, an image cannot be heard ({what})"
                ));
            }
            Trace::Debug { message } => {
                self.note(format!("debug: not spoken: {}", note_excerpt(message)));
            }
            Trace::Internal { kind, .. } => {
                if kind.is_empty() {
                    self.note("trace without a type: ignored");
                } else if !QUIET_INTERNAL.contains(&kind.as_str()) {
                    self.note(format!("{kind}: not rendered on a phone call"));
                }
            }
            Trace::CustomAction(action) => self.custom_action(action, stopped_here),
        }
    }

    fn speak(&mut self, speak: &Speak) {
        let gender = match speak.voice.as_deref() {
            Some(voice) => gender_for_voice(voice).or_else(|| {
                self.note(format!(
                    "speak: voice {:?} unknown, default voice used",
                    note_excerpt(voice)
                ));
                self.ctx.voice.gender
            }),
            None => self.ctx.voice.gender,
        };
        let text = spoken(&speak.message);
        if let Some(src) = speak
            .src
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if let Some(url) = playable_wav(src) {
                self.said.push(Said {
                    verbs: vec![Verb::Play(Play {
                        file_url: url,
                        barge_in: false,
                        repeat: None,
                    })],
                    text: None,
                    role: Role::Prompt,
                });
                return;
            }
            let fallback = if text.is_empty() {
                ""
            } else {
                "; its text is said instead"
            };
            self.note(format!(
                "speak: audio not playable, Routee plays only .wav over http(s){fallback} ({})",
                note_excerpt(src)
            ));
        }
        self.say(text, gender, Role::Prompt);
    }

    fn card(&mut self, title: &str, description: &str, buttons: &[Button]) {
        let title = spoken(title);
        let description = spoken(description);
        let text = match (title.is_empty(), description.is_empty()) {
            (true, _) => description,
            (false, true) => title,
            (false, false) if title.ends_with(['.', '!', '?', ':']) => {
                format!("{title} {description}")
            }
            (false, false) => format!("{title}. {description}"),
        };
        let role = if buttons.is_empty() {
            Role::Prompt
        } else {
            Role::MenuText
        };
        self.say(text, self.ctx.voice.gender, role);
        if !buttons.is_empty() {
            self.buttons("card", buttons);
        }
    }

    /// Says already speakable text (split at Routee's limit); nothing when empty.
    fn say(&mut self, text: String, gender: Option<Gender>, role: Role) {
        if text.is_empty() {
            return;
        }
        self.said.push(Said {
            verbs: say_verbs(&text, self.ctx.voice.language, gender),
            text: Some(text),
            role,
        });
    }

    /// Numbers the buttons into the menu and announces them.
    fn buttons(&mut self, kind: &str, buttons: &[Button]) {
        let mut lines = Vec::new();
        let mut dropped = 0;
        for button in buttons {
            if self.next_button > MAX_MENU_BUTTONS {
                dropped += 1;
                continue;
            }
            let digit = self.next_button.to_string();
            self.next_button += 1;
            let label = spoken(&button.name);
            if self.add_menu_item(kind, &digit, &label, &button.request) {
                lines.push(self.ctx.phrases.menu_line(&digit, &label));
            }
        }
        if dropped > 0 {
            self.note(format!(
                "{kind}: {dropped} button(s) dropped, a keypad menu offers keys 1 to 9 only"
            ));
        }
        self.say(
            spoken(&lines.join(" ")),
            self.ctx.voice.gender,
            Role::MenuLines,
        );
    }

    /// Adds a menu entry unless its key is taken (the first one keeps it).
    fn add_menu_item(&mut self, kind: &str, digit: &str, label: &str, request: &Value) -> bool {
        if let Some(taken) = self.menu.iter().find(|m| m.digit == digit) {
            let note = format!(
                "{kind}: key {digit} already means {:?}, {label:?} not offered",
                taken.label
            );
            self.note(note);
            return false;
        }
        self.menu.push(MenuItem::new(digit, label, request));
        true
    }

    fn custom_action(&mut self, action: &CustomAction, stopped_here: bool) {
        let kind = self.ctx.actions.kind(&action.name);
        match kind {
            ActionKind::Accept => self.decide(Decision::Accepted, &action.name),
            ActionKind::Reject => self.decide(Decision::Rejected, &action.name),
            ActionKind::Transfer => self.transfer(action),
            ActionKind::Hangup => self.ends_call = true,
            ActionKind::Dtmf => self.dtmf(action),
            ActionKind::Unknown => self.note(format!(
                "{}: custom action not handled by the gateway",
                action.name
            )),
        }
        if stopped_here {
            self.resume = resume_of(action, kind);
        }
    }

    fn decide(&mut self, decision: Decision, action: &str) {
        match self.decision {
            None => self.decision = Some(decision),
            Some(first) if first != decision => {
                let first = match first {
                    Decision::Accepted => "accepted",
                    Decision::Rejected => "rejected",
                };
                self.note(format!("{action}: ignored, this turn already {first}"));
            }
            Some(_) => {}
        }
    }

    fn transfer(&mut self, action: &CustomAction) {
        let Some(raw) = transfer_number(&action.payload) else {
            self.note(format!(
                "{}: no number in the payload (number, phone or to), not transferred",
                action.name
            ));
            return;
        };
        let number = match E164::from_str(&raw) {
            Ok(n) => n,
            Err(e) => {
                self.note(format!(
                    "{}: {} is {e}, not transferred",
                    action.name,
                    mask(&raw)
                ));
                return;
            }
        };
        if !self.ctx.actions.transfer_targets.contains(&number) {
            self.note(format!(
                "{}: {} is not one of the assistant's transfer_targets, not transferred",
                action.name,
                number.masked()
            ));
            return;
        }
        if self.dial.is_some() {
            self.note(format!(
                "{}: a second transfer ({}) in one turn is dropped, a dialplan holds one DIAL",
                action.name,
                number.masked()
            ));
            return;
        }
        self.dial = Some(Dial {
            from: self.ctx.caller_id.to_owned(),
            to: Destination::Phone(number.as_str().to_owned()),
            hangup_delay: None,
            // Every DIAL is bounded: a transfer is billed per minute.
            max_duration: Some(self.ctx.transfer_max_s),
            callback: None,
        });
        self.ends_call = true;
    }

    fn dtmf(&mut self, action: &CustomAction) {
        let mut offered = 0;
        for path in &action.paths {
            let Some(keys) = dtmf_path_keys(path) else {
                continue;
            };
            offered += 1;
            // Voiceflow's telephony sends the key as `last_event.data` too.
            let request = json!({ "type": path, "data": keys });
            self.add_menu_item(&action.name, keys, path, &request);
        }
        if offered == 0 {
            self.note(format!(
                "{}: no paths named \"DTMF <key>\", no keys offered",
                action.name
            ));
        }
    }

    fn finish(mut self) -> RenderedTurn {
        if self.ends_call {
            if !self.menu.is_empty() {
                self.note("menu: not offered, the call ends this turn");
                self.menu.clear();
            }
            self.said.retain(|s| s.role != Role::MenuLines);
            if self.no_reply.take().is_some() {
                self.note("no-reply: ignored, the call ends this turn");
            }
            let mut verbs: Vec<Verb> = self.said.iter().flat_map(|s| s.verbs.clone()).collect();
            let transfer_to = self.dial.as_ref().map(|d| match &d.to {
                Destination::Phone(p) | Destination::Sip(p) | Destination::Viber(p) => p.clone(),
            });
            verbs.extend(self.dial.take().map(Verb::Dial));
            if verbs.is_empty() {
                verbs.push(Verb::pause(MIN_PAUSE_S));
            }
            return self.into_rendered(verbs, transfer_to);
        }
        if self.said.is_empty()
            && self.menu.is_empty()
            && self.no_reply.is_none()
            && self.resume.is_none()
        {
            self.note(
                "turn: nothing to say and no input asked for (an empty or failed Voiceflow turn?)",
            );
        }
        let mut options: Vec<Verb> = self
            .said
            .iter()
            .filter(|s| s.role != Role::Prompt)
            .flat_map(|s| s.verbs.clone())
            .collect();
        if options.is_empty() {
            options = self
                .said
                .iter()
                .rev()
                .find(|s| s.role == Role::Prompt)
                .map(|s| s.verbs.clone())
                .unwrap_or_default();
        }
        let mut verbs: Vec<Verb> = self
            .said
            .iter()
            .flat_map(|s| s.verbs.iter().cloned().map(|v| v.with_barge_in(true)))
            .collect();
        let ctx = self.ctx;
        let timeout = self.no_reply.unwrap_or(ctx.input_timeout_s);
        input_phase(&mut verbs, &options, timeout, ctx.reprompts, ctx.listen());
        self.into_rendered(verbs, None)
    }

    fn into_rendered(self, verbs: Vec<Verb>, transfer_to: Option<String>) -> RenderedTurn {
        RenderedTurn {
            dialplan: Dialplan::new(verbs),
            decision: self.decision,
            menu: self.menu,
            no_reply_timeout: self.no_reply,
            ends_call: self.ends_call,
            resume: self.resume,
            transfer_to,
            spoken: self.said.into_iter().filter_map(|s| s.text).collect(),
            notes: self.notes,
        }
    }
}

/// The keys of a `DTMF <keys>` path (case-insensitive), if it is one.
fn dtmf_path_keys(path: &str) -> Option<&str> {
    let (word, keys) = path.trim().split_once(' ')?;
    let keys = keys.trim();
    (word.eq_ignore_ascii_case("DTMF")
        && !keys.is_empty()
        && keys
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#'))
    .then_some(keys)
}

/// Where a transfer action keeps its number: `number`, `phone` or `to` (a string,
/// or `{phone}`), or the payload itself when it is a bare string.
fn transfer_number(payload: &Value) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match payload {
        Value::Object(fields) => ["number", "phone", "to"].iter().find_map(|key| {
            let v = fields.get(*key)?;
            text(v).or_else(|| v.get("phone").and_then(text))
        }),
        other => text(other),
    }
    .filter(|s| !s.is_empty())
}

/// An `http(s)` URL whose path ends in `.wav` (what Routee's `PLAY` accepts), in
/// its normalized spelling; `None` for anything else. The URL is sent as it was
/// judged: the parser repairs spellings such as `https:/host/a.wav` or
/// `https://HOST/./a.wav`, and sending the raw string instead would leave Routee
/// to read it its own way.
pub(crate) fn playable_wav(src: &str) -> Option<String> {
    url::Url::parse(src.trim())
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.path().to_ascii_lowercase().ends_with(".wav")
        })
        .map(String::from)
}

#[cfg(test)]
fn is_playable_wav(src: &str) -> bool {
    playable_wav(src).is_some()
}

/// A string cut to a length fit for a note (data URIs are megabytes).
fn note_excerpt(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

pub(crate) fn clamp_pause(seconds: u32) -> u32 {
    seconds.clamp(MIN_PAUSE_S, MAX_PAUSE_S)
}

/// `SAY`s of speakable text, split at Routee's limit (none for empty text).
pub(crate) fn say_verbs(text: &str, language: Language, gender: Option<Gender>) -> Vec<Verb> {
    say_pieces(text)
        .into_iter()
        .map(|piece| Verb::say(piece, language, gender))
        .collect()
}

/// Where the keys that answer a dialplan go, and what plays while they are awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen<'a> {
    /// The signed `COLLECT` URL.
    pub event_url: &'a str,
    /// The silence `.wav` of a wait ([`crate::audio::silence`]).
    pub silence_url: &'a str,
}

impl<'a> Listen<'a> {
    pub fn new(event_url: &'a str, silence_url: &'a str) -> Self {
        Self {
            event_url,
            silence_url,
        }
    }
}

impl TurnContext<'_> {
    pub fn listen(&self) -> Listen<'_> {
        Listen::new(self.event_url, self.silence_url)
    }
}

/// Appends the seed's input phase: a wait of `timeout`, then `reprompts` times
/// the options again (with barge-in) and a wait, then `COLLECT`.
///
/// A wait is the silence clip played with `bargeIn: true`, repeated to last
/// `timeout` seconds, never a `PAUSE`: Routee posts the tones only when a key
/// interrupts a barge-in verb (or on `#`, or when the call ends), so a key pressed
/// during a `PAUSE` would be answered only at the next prompt, or never.
pub(crate) fn input_phase(
    verbs: &mut Vec<Verb>,
    options: &[Verb],
    timeout_s: u32,
    reprompts: u32,
    listen: Listen<'_>,
) {
    verbs.push(wait(listen, timeout_s));
    for _ in 0..reprompts {
        verbs.extend(options.iter().cloned().map(|v| v.with_barge_in(true)));
        verbs.push(wait(listen, timeout_s));
    }
    verbs.push(collect(listen.event_url));
}

/// `seconds` (clamped to 1..=60) of interruptible silence: the one-second clip
/// with `repeat: seconds - 1` (Routee's `repeat` counts repetitions, 0 = once).
pub(crate) fn wait(listen: Listen<'_>, seconds: u32) -> Verb {
    let times = clamp_pause(seconds) / crate::audio::SILENCE_CLIP_S;
    Verb::Play(Play {
        file_url: listen.silence_url.to_owned(),
        barge_in: true,
        repeat: Some(times.saturating_sub(1).try_into().unwrap_or(i32::MAX)),
    })
}

/// The least time `plan` takes to run out when no key interrupts it, in
/// seconds: its `PAUSE`s and the gateway's waits (its silence clip, the only
/// `PLAY` with a `repeat`). What is said is not counted (its speed is the
/// voice's), so a call that ends sooner was certainly hung up mid-prompt.
pub fn min_seconds(plan: &Dialplan) -> u32 {
    plan.verbs
        .iter()
        .map(|v| match v {
            Verb::Pause(p) => p.duration,
            Verb::Play(Play {
                repeat: Some(r), ..
            }) => u32::try_from(*r)
                .unwrap_or(0)
                .saturating_add(1)
                .saturating_mul(crate::audio::SILENCE_CLIP_S),
            _ => 0,
        })
        .fold(0, u32::saturating_add)
}

fn collect(event_url: &str) -> Verb {
    Verb::Collect(Collect {
        event_url: event_url.to_owned(),
        max_digits: None,
        submit_on_hash: true,
    })
}

/// The dialplan of a turn whose no-reply turn ran ahead
/// (`domain::conversation::NoReplyAhead`): `first` up to the end of its first
/// wait for a key, then `then`, the no-reply turn rendered for the same
/// eventUrl. The assistant's own no-reply response takes the place of the
/// gateway's reprompts. When `then` collects nothing (it ends the call), the
/// `COLLECT` of `first` goes before it, so a key pressed during the wait is
/// still posted. `None` when `first` has no wait (it asks for nothing).
pub fn after_silence(first: &Dialplan, then: &Dialplan, silence_url: &str) -> Option<Dialplan> {
    let is_wait = |v: &Verb| matches!(v, Verb::Play(p) if p.barge_in && p.file_url == silence_url);
    let wait_at = first.verbs.iter().position(is_wait)?;
    let mut verbs = first.verbs[..=wait_at].to_vec();
    if !then.verbs.iter().any(|v| matches!(v, Verb::Collect(_))) {
        let collect = first.verbs.iter().find(|v| matches!(v, Verb::Collect(_)))?;
        verbs.push(collect.clone());
    }
    verbs.extend(then.verbs.iter().cloned());
    Some(Dialplan::new(verbs))
}

/// How many of a streamed turn's first traces can be played before the rest
/// has come (issue 19): the leading run of what is only said (`speak`, `text`)
/// or not heard at all (`path`, `debug`, `visual`, internal types). It stops
/// at the first trace that offers keys (a `choice`, a card), asks for input,
/// ends, or is a custom action, so a menu is never offered before the whole
/// turn is known, and a decision is never read from half a turn.
pub fn playable_prefix(traces: &[Trace]) -> usize {
    traces
        .iter()
        .position(|t| {
            !matches!(
                t,
                Trace::Speak(_)
                    | Trace::Text { .. }
                    | Trace::Path { .. }
                    | Trace::Debug { .. }
                    | Trace::Visual { .. }
                    | Trace::Internal { .. }
            )
        })
        .unwrap_or(traces.len())
}

/// What the engine answers when a streamed turn is not over by the deadline:
/// what `said` (the [`playable_prefix`], rendered) says, then the holding
/// dialplan's wait and "Press any key to continue." The key press fetches the
/// rest of the turn, like [`holding_dialplan`]'s.
pub fn partial_dialplan(said: &RenderedTurn, ctx: &TurnContext<'_>) -> Dialplan {
    let is_wait =
        |v: &Verb| matches!(v, Verb::Play(p) if p.barge_in && p.file_url == ctx.silence_url);
    let first: Vec<Verb> = said
        .dialplan
        .verbs
        .iter()
        .take_while(|v| !is_wait(v) && !matches!(v, Verb::Collect(_)))
        .cloned()
        .collect();
    holding_after(first, ctx)
}

/// What the engine answers when Voiceflow is slow: "One moment, please.", a short
/// wait (interruptible, like every wait for a key), then "Press any key to continue." (with barge-in, repeated like any
/// options) and a `COLLECT`, so the key press fetches the real turn.
pub fn holding_dialplan(ctx: &TurnContext<'_>) -> Dialplan {
    let (language, gender) = (ctx.voice.language, ctx.voice.gender);
    holding_after(
        say_verbs(&spoken(&ctx.phrases.holding), language, gender),
        ctx,
    )
}

/// `first` (with barge-in), a short wait, then "Press any key to continue." as
/// the options of an ordinary input phase.
fn holding_after(first: Vec<Verb>, ctx: &TurnContext<'_>) -> Dialplan {
    let (language, gender) = (ctx.voice.language, ctx.voice.gender);
    let mut verbs: Vec<Verb> = first.into_iter().map(|v| v.with_barge_in(true)).collect();
    verbs.push(wait(ctx.listen(), HOLDING_PAUSE_S));
    let options: Vec<Verb> = say_verbs(&spoken(&ctx.phrases.holding_continue), language, gender)
        .into_iter()
        .map(|v| v.with_barge_in(true))
        .collect();
    verbs.extend(options.iter().cloned());
    input_phase(
        &mut verbs,
        &options,
        ctx.input_timeout_s,
        ctx.reprompts,
        ctx.listen(),
    );
    Dialplan::new(verbs)
}

/// What the engine answers when Voiceflow is down: an apology, then
/// `menu_prompt` (the options the engine can still handle) with barge-in,
/// repeated like any options, and a `COLLECT`.
pub fn fallback_dialplan(ctx: &TurnContext<'_>, menu_prompt: &str) -> Dialplan {
    let (language, gender) = (ctx.voice.language, ctx.voice.gender);
    let mut verbs: Vec<Verb> = say_verbs(&spoken(&ctx.phrases.fallback_apology), language, gender)
        .into_iter()
        .map(|v| v.with_barge_in(true))
        .collect();
    let options: Vec<Verb> = say_verbs(&spoken(menu_prompt), language, gender)
        .into_iter()
        .map(|v| v.with_barge_in(true))
        .collect();
    verbs.extend(options.iter().cloned());
    input_phase(
        &mut verbs,
        &options,
        ctx.input_timeout_s,
        ctx.reprompts,
        ctx.listen(),
    );
    Dialplan::new(verbs)
}

/// The last words of a call: `text` said, then a one-second pause so the line
/// does not drop on the last syllable. No `COLLECT`: the call ends.
pub fn closing_dialplan(text: &str, voice: Voice) -> Dialplan {
    farewell(&spoken(text), voice)
}

/// [`closing_dialplan`] of text that is already speakable (a rendered template
/// text, whose variable values must not be unescaped a second time).
pub(crate) fn farewell(text: &str, voice: Voice) -> Dialplan {
    let mut verbs = say_verbs(text, voice.language, voice.gender);
    verbs.push(Verb::pause(MIN_PAUSE_S));
    Dialplan::new(verbs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_wav_urls_are_playable() {
        assert!(is_playable_wav("https://cdn.example.com/a/b.WAV?sig=1"));
        assert!(is_playable_wav("http://x.example/prompt.wav#t"));
        assert!(!is_playable_wav("https://x.example/prompt.mp3"));
        assert!(!is_playable_wav("https://x.example/prompt.mp3?f=a.wav"));
        assert!(!is_playable_wav("data:audio/wav;base64,UklGRg=="));
        assert!(!is_playable_wav("ftp://x.example/a.wav"));
        assert!(!is_playable_wav("a.wav"));
        // What is sent is the URL as judged, not the raw spelling.
        assert_eq!(
            playable_wav("https:/CDN.example.com/./a.WAV").as_deref(),
            Some("https://cdn.example.com/a.WAV")
        );
    }

    #[test]
    fn transfer_numbers_are_found_where_assistants_put_them() {
        let cases = [
            (json!({"number": "+306900000001"}), Some("+306900000001")),
            (json!({"phone": "+306900000001"}), Some("+306900000001")),
            (
                json!({"to": {"phone": "+306900000001"}}),
                Some("+306900000001"),
            ),
            (json!("+306900000001"), Some("+306900000001")),
            (json!({"number": ""}), None),
            (json!({"other": "+306900000001"}), None),
        ];
        for (payload, expected) in cases {
            assert_eq!(transfer_number(&payload).as_deref(), expected, "{payload}");
        }
    }

    #[test]
    fn dtmf_paths_name_their_keys() {
        assert_eq!(dtmf_path_keys("DTMF 1"), Some("1"));
        assert_eq!(dtmf_path_keys("dtmf 12"), Some("12"));
        assert_eq!(dtmf_path_keys("DTMF *"), Some("*"));
        assert_eq!(dtmf_path_keys("DTMF"), None);
        assert_eq!(dtmf_path_keys("DTMF one"), None);
        assert_eq!(dtmf_path_keys("else"), None);
    }

    fn plan_with_input(text: &str, listen: Listen<'_>) -> Dialplan {
        let mut verbs = vec![Verb::say(text, Language::EnUs, None).with_barge_in(true)];
        let options = verbs.clone();
        input_phase(&mut verbs, &options, 10, 1, listen);
        Dialplan::new(verbs)
    }

    fn kinds(plan: &Dialplan) -> Vec<String> {
        plan.verbs
            .iter()
            .map(|v| match v {
                Verb::Say(s) => format!("SAY {}", s.message.text),
                Verb::Play(p) => format!("PLAY {}", p.file_url),
                Verb::Pause(_) => "PAUSE".into(),
                Verb::Collect(c) => format!("COLLECT {}", c.event_url),
                Verb::Dial(_) => "DIAL".into(),
            })
            .collect()
    }

    #[test]
    fn a_no_reply_response_follows_the_first_wait_instead_of_the_reprompts() {
        let listen = Listen::new("https://gw/next", "https://gw/s.wav");
        let first = plan_with_input("Accept?", listen);
        let then = plan_with_input("Still there?", listen);
        let plan = after_silence(&first, &then, listen.silence_url).unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "SAY Accept?",
                "PLAY https://gw/s.wav",
                "SAY Still there?",
                "PLAY https://gw/s.wav",
                "SAY Still there?",
                "PLAY https://gw/s.wav",
                "COLLECT https://gw/next",
            ]
        );
    }

    #[test]
    fn a_no_reply_goodbye_keeps_the_first_collect_so_keys_in_the_wait_are_posted() {
        let listen = Listen::new("https://gw/next", "https://gw/s.wav");
        let first = plan_with_input("Accept?", listen);
        let voice = Voice {
            language: Language::EnUs,
            gender: None,
        };
        let then = closing_dialplan("Goodbye.", voice);
        let plan = after_silence(&first, &then, listen.silence_url).unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "SAY Accept?",
                "PLAY https://gw/s.wav",
                "COLLECT https://gw/next",
                "SAY Goodbye.",
                "PAUSE",
            ]
        );
        // A dialplan that waits for nothing has no place for a no-reply response.
        assert_eq!(after_silence(&then, &first, listen.silence_url), None);
    }

    #[test]
    fn a_streamed_turn_plays_what_is_only_said_before_the_rest_comes() {
        let say = |m: &str| Trace::Text { message: m.into() };
        let path = Trace::Path { path: "p".into() };
        let choice = Trace::Choice {
            buttons: Vec::new(),
        };
        assert_eq!(playable_prefix(&[]), 0);
        assert_eq!(playable_prefix(&[say("a"), path, say("b")]), 3);
        assert_eq!(playable_prefix(&[say("a"), choice.clone(), say("b")]), 1);
        assert_eq!(playable_prefix(&[choice, say("a")]), 0);
        assert_eq!(
            playable_prefix(&[say("a"), Trace::NoReply { timeout: None }]),
            1
        );
        assert_eq!(playable_prefix(&[say("a"), Trace::End]), 1);
    }

    #[test]
    fn pauses_are_clamped_to_routees_range() {
        assert_eq!(clamp_pause(0), 1);
        assert_eq!(clamp_pause(10), 10);
        assert_eq!(clamp_pause(600), 60);
    }

    #[test]
    fn menu_lines_never_expand_a_placeholder_inside_a_label() {
        let p = Phrases::default();
        assert_eq!(p.menu_line("1", "Accept"), "Press 1 for Accept.");
        assert_eq!(p.menu_line("2", "{digit}"), "Press 2 for {digit}.");
        assert_eq!(p.menu_line("3", ""), "Press 3.");
    }

    #[test]
    fn action_names_match_case_insensitively() {
        let names = ActionNames::default();
        assert_eq!(names.kind("Accept"), ActionKind::Accept);
        assert_eq!(names.kind("call"), ActionKind::Transfer);
        assert_eq!(names.kind("End-Call"), ActionKind::Hangup);
        assert_eq!(names.kind("dtmf"), ActionKind::Dtmf);
        assert_eq!(names.kind("SMS"), ActionKind::Unknown);
    }
}
