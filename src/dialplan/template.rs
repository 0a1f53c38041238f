//! Dialplan templates: a whole call written as a TOML file in `dialplans/`, so a
//! callout needs no Voiceflow assistant. `dialplans/README.md` is the user's
//! guide; this is the reference.
//!
//! # Format
//!
//! ```toml
//! description = "Seed 004: the ticket, then accept or reject"  # optional
//! language = "en-US"        # required; a Routee code or a locale mapped to one
//! gender = "female"         # optional default voice: male | female
//! confirm = true            # optional helpers (defaults shown): "You accepted Ticket 4711."
//! repeat_key = "*"          #   the intro's words and the options again ("" for none)
//! help_key = "0"            #   the options said slowly once more ("" for none)
//! announce_keys = false     #   announce the two keys once, after the options
//!
//! [[intro]]                 # said once when the callee answers, in order
//! pause = 3                 # each step is exactly one of: pause (1..=60 s),
//! [[intro]]
//! say = "{{ticket}}"        # say (text, placeholders allowed),
//! gender = "male"           #   with an optional gender and barge_in = true|false
//! [[intro]]
//! play = "https://cdn.example.com/chime.wav"  # or play (http(s) .wav, no placeholders)
//!
//! [menu]                    # the options: said with barge-in, then repeated
//! say = "Press 1 to accept. Press 2 to reject."   # (gender optional)
//!
//! [keys.1]                  # one table per phone key: 0-9 or "*"
//! outcome = "accepted"      # accepted | rejected: records it and ends the call
//! say = "Thank you, {{contact_name}}. Goodbye."   # said before the call ends
//! [keys.2]
//! outcome = "rejected"
//! say = "Understood. Goodbye."
//! [keys.9]                  # a key without an outcome says its text and
//! say = "{{ticket}}"        # offers the menu again
//!
//! [messages]                # all optional; English defaults
//! invalid = "Sorry, that is not a valid choice."            # then the menu again
//! too_many_invalid = "Sorry, we could not understand your choice. Goodbye."
//! cancelled = "This request has been cancelled. Goodbye."   # callout cancelled
//! closed = "This request has already been handled. Goodbye." # someone accepted
//! ```
//!
//! The name of a template is its file name without `.toml`. A file named
//! `<name>.<language>.toml` is its translation into that language: the same
//! keys, outcomes, placeholders and helpers, other words ([`Template::variant`]
//! picks the one a callee hears).
//!
//! # The call
//!
//! [`Template::render_call`] is the dialplan placed with the call: the intro,
//! the menu (barge-in), then the seed's input phase: `PAUSE(input timeout)`,
//! `reprompts` times the menu again and `PAUSE`, then `COLLECT`.
//! [`Template::on_input`] answers each key: a key with an outcome says its text
//! and ends the call with the decision; a key without one says its text and
//! offers the menu again; any other key says `invalid` and offers the menu again,
//! until the third invalid key, which says `too_many_invalid` and ends the call.
//! [`Template::closing`] is said to a live call whose callout is over.
//!
//! # Placeholders
//!
//! `{{name}}` (spaces inside the braces allowed) is replaced by a variable of the
//! callout; names are `[a-z_][a-z0-9_]*`. The engine also supplies
//! [`BUILTIN_VARS`] to every template: `contact_name`, `callout_name`, `attempt`,
//! `max_attempts`. [`Template::placeholders`] lists every name used so that a
//! callout missing one is refused when it is created. A value is inserted as
//! plain text: control characters and angle brackets are dropped, nothing in it
//! is expanded or interpreted, and it only ever lands in a `SAY`'s
//! `message.text` (split at 1000 characters like any text). A variable can never
//! add a verb or change a URL.
//!
//! # Validation
//!
//! Every error names its line: TOML syntax, unknown keys, an intro step that is
//! empty or does several things, a key that is not a phone key (`#` is refused: it
//! submits the input), an outcome other than accepted/rejected, a key that does
//! nothing, text over 1000 characters even with every placeholder empty, an
//! unsupported language or gender, a malformed placeholder (`{{ ticket`, `{{Ticket}}`,
//! a stray `}}`), a pause outside 1..=60, a `play` URL that is not an http(s)
//! `.wav` or holds a placeholder, and a template where no key accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::language::routee_language;
use super::phrases::Phrases;
use super::render::{
    Listen, Voice, clamp_pause, farewell, input_phase, playable_wav, say_verbs, wait,
};
use super::speech::{finish, plain, strip_tags, unescape_entities};
use crate::domain::Decision;
use crate::domain::Keys;
use crate::routee::{Dialplan, Gender, Language, MAX_SAY_CHARS, Play, Verb};

/// Variables the engine gives every template, besides the callout's own.
pub const BUILTIN_VARS: [&str; 4] = ["contact_name", "callout_name", "attempt", "max_attempts"];

/// The pause between the options said slowly (the help key), in seconds.
const HELP_PAUSE_S: u32 = 1;

/// The invalid key presses after which a call says goodbye and ends.
pub const MAX_INVALID_INPUTS: u32 = 3;

/// The templates shipped in the binary, so it works from any directory.
const EMBEDDED: [(&str, &str); 5] = [
    (
        "ticket-escalation",
        include_str!("../../dialplans/ticket-escalation.toml"),
    ),
    (
        "ticket-escalation.de-DE",
        include_str!("../../dialplans/ticket-escalation.de-DE.toml"),
    ),
    (
        "ticket-escalation.el-GR",
        include_str!("../../dialplans/ticket-escalation.el-GR.toml"),
    ),
    (
        "ticket-escalation.es-ES",
        include_str!("../../dialplans/ticket-escalation.es-ES.toml"),
    ),
    (
        "ticket-escalation.fr-FR",
        include_str!("../../dialplans/ticket-escalation.fr-FR.toml"),
    ),
];

/// A callout's variables by name (its own and the built-ins).
pub type Vars = BTreeMap<String, String>;

/// A validated dialplan template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The file name without `.toml`: what a callout's `dialplan` names.
    pub name: String,
    pub description: Option<String>,
    pub language: Language,
    pub gender: Option<Gender>,
    pub intro: Vec<IntroItem>,
    pub menu: Prompt,
    /// Phone key (`"1"`, `"*"`) to what it does.
    pub keys: BTreeMap<String, KeyAction>,
    pub messages: Messages,
    /// The confirmation, repeat and help keys (the same in every language).
    pub helpers: Helpers,
    /// The same call in other languages (`<name>.<language>.toml` files), by
    /// language: the same keys, outcomes and placeholders, other words.
    pub translations: BTreeMap<Language, Template>,
}

/// One step of the intro.
#[derive(Debug, Clone, PartialEq)]
pub enum IntroItem {
    Say(Prompt),
    Play { url: String, barge_in: bool },
    Pause(u32),
}

/// Text to say, with its voice.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub text: Text,
    /// `None`: the template's gender.
    pub gender: Option<Gender>,
    pub barge_in: bool,
}

/// What a key does.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyAction {
    /// `Some`: the callee decided, and the call ends after `say`.
    pub decision: Option<Decision>,
    pub say: Option<Text>,
}

/// What a template does for a callee besides its menu, on by default: the
/// confirmation of a decision, a key that repeats the last prompt and one that
/// says the options slowly once more; neither counts as an invalid key. A key
/// the template gives an action of its own keeps it (that helper is then off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helpers {
    /// After a decision: "You accepted Ticket 4711." (`confirm`).
    pub confirm: bool,
    /// Repeats the intro's words and the options (`repeat_key`, `*`; `""` off).
    pub repeat_key: Option<String>,
    /// Says the options slowly once more (`help_key`, `0`; `""` off).
    pub help_key: Option<String>,
    /// Announces the two keys once, after the first options (`announce_keys`).
    pub announce_keys: bool,
}

impl Default for Helpers {
    fn default() -> Self {
        Self {
            confirm: true,
            repeat_key: Some("*".into()),
            help_key: Some("0".into()),
            announce_keys: false,
        }
    }
}

/// What the template says outside the flow of its menu.
#[derive(Debug, Clone, PartialEq)]
pub struct Messages {
    pub invalid: Text,
    pub too_many_invalid: Text,
    pub cancelled: Text,
    pub closed: Text,
}

/// Which closing message to say (the conversation's, `domain::conversation`).
pub use crate::domain::Closing;

/// Text with `{{placeholders}}`, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    source: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Var(String),
}

impl Text {
    /// Parses `source`, refusing malformed placeholders.
    pub fn parse(source: &str) -> Result<Text, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            let literal = &rest[..open];
            if literal.contains("}}") {
                return Err("`}}` without a `{{` before it".into());
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(literal.to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed placeholder `{{{{{}`", preview(after)))?;
            let name = after[..close].trim();
            if !is_var_name(name) {
                return Err(format!(
                    "placeholder `{{{{{}}}}}` is not a valid name: use lowercase letters, digits and _, not starting with a digit",
                    &after[..close]
                ));
            }
            pieces.push(Piece::Var(name.to_owned()));
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err("`}}` without a `{{` before it".into());
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        Ok(Text {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The text as written in the template.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Placeholder names, in order of first use.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(name) => Some(name.as_str()),
            Piece::Literal(_) => None,
        })
    }

    /// The text to say: literals made speakable, values inserted as plain text, a
    /// missing variable as nothing.
    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(l) => out.push_str(&unescape_entities(&strip_tags(l))),
                // Literals are unescaped before the value joins them, so a value
                // can never complete an entity or a tag begun by the template.
                Piece::Var(name) => out.push_str(&plain(vars.get(name).map_or("", String::as_str))),
            }
        }
        finish(&out)
    }

    /// What is said when every placeholder is empty.
    fn literal_text(&self) -> String {
        self.render(&Vars::new())
    }

    fn has_placeholders(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var(_)))
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn preview(text: &str) -> String {
    text.chars()
        .take(20)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// What [`Template::on_input`] answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateTurn {
    pub dialplan: Dialplan,
    /// The callee's decision, when the key carried one.
    pub decision: Option<Decision>,
    /// No `COLLECT`: the call ends after this dialplan.
    pub ends_call: bool,
    /// The key meant nothing: count it toward [`MAX_INVALID_INPUTS`].
    pub invalid: bool,
}

impl Template {
    /// Every placeholder the template uses, built-ins included.
    pub fn placeholders(&self) -> BTreeSet<String> {
        std::iter::once(self)
            .chain(self.translations.values())
            .flat_map(Template::texts)
            .flat_map(Text::placeholders)
            .map(str::to_owned)
            .collect()
    }

    /// The placeholders of this language's words only.
    fn own_placeholders(&self) -> BTreeSet<&str> {
        self.texts().flat_map(Text::placeholders).collect()
    }

    /// The placeholders a callout must supply: all but [`BUILTIN_VARS`].
    pub fn required_variables(&self) -> BTreeSet<String> {
        let mut names = self.placeholders();
        names.retain(|n| !BUILTIN_VARS.contains(&n.as_str()));
        names
    }

    fn texts(&self) -> impl Iterator<Item = &Text> {
        let intro = self.intro.iter().filter_map(|s| match s {
            IntroItem::Say(p) => Some(&p.text),
            _ => None,
        });
        let keys = self.keys.values().filter_map(|k| k.say.as_ref());
        let m = &self.messages;
        intro
            .chain(std::iter::once(&self.menu.text))
            .chain(keys)
            .chain([&m.invalid, &m.too_many_invalid, &m.cancelled, &m.closed])
    }

    fn own_voice(&self) -> Voice {
        Voice {
            language: self.language,
            gender: self.gender,
        }
    }

    /// The words a callee speaking `language` (`None`: the template's) hears,
    /// and the voice that reads them:
    /// - the translation into `language`, or the template itself when written in it;
    /// - else the template or a translation in the same language of another
    ///   region (an `en-GB` callee on an `en-US` template), read by the
    ///   callee's own voice;
    /// - else the template as written, read by its own language's voice: text
    ///   is never read by a voice of another language.
    pub fn variant(&self, language: Option<Language>) -> (&Template, Voice) {
        let Some(wanted) = language else {
            return (self, self.own_voice());
        };
        if wanted == self.language {
            return (self, self.own_voice());
        }
        if let Some(t) = self.translations.get(&wanted) {
            return (t, t.own_voice());
        }
        let same = std::iter::once(self)
            .chain(self.translations.values())
            .find(|t| t.language.primary() == wanted.primary());
        match same {
            Some(t) => (
                t,
                Voice {
                    language: wanted,
                    gender: t.gender,
                },
            ),
            None => (self, self.own_voice()),
        }
    }

    /// The languages this template is written in: its own, then its translations'.
    pub fn languages(&self) -> Vec<Language> {
        std::iter::once(self.language)
            .chain(self.translations.keys().copied())
            .collect()
    }

    fn say(&self, prompt: &Prompt, vars: &Vars, voice: Voice) -> Vec<Verb> {
        say_verbs(
            &prompt.text.render(vars),
            voice.language,
            prompt.gender.or(voice.gender),
        )
        .into_iter()
        .map(|v| v.with_barge_in(prompt.barge_in))
        .collect()
    }

    fn say_text(&self, text: &Text, vars: &Vars, voice: Voice, barge_in: bool) -> Vec<Verb> {
        say_verbs(&text.render(vars), voice.language, voice.gender)
            .into_iter()
            .map(|v| v.with_barge_in(barge_in))
            .collect()
    }

    /// `verbs`, then the menu with barge-in and the input phase.
    fn with_menu(
        &self,
        mut verbs: Vec<Verb>,
        vars: &Vars,
        voice: Voice,
        input_timeout_s: u32,
        reprompts: u32,
        listen: Listen<'_>,
    ) -> Dialplan {
        let menu = self.say(&self.menu, vars, voice);
        verbs.extend(menu.iter().cloned());
        input_phase(&mut verbs, &menu, input_timeout_s, reprompts, listen);
        Dialplan::new(verbs)
    }

    /// The dialplan placed with the call. `language` (the contact's) overrides the
    /// template's.
    pub fn render_call(
        &self,
        vars: &Vars,
        language: Option<Language>,
        input_timeout_s: u32,
        reprompts: u32,
        listen: Listen<'_>,
    ) -> Dialplan {
        let (t, voice) = self.variant(language);
        let mut verbs = Vec::new();
        for step in &t.intro {
            match step {
                IntroItem::Say(prompt) => verbs.extend(t.say(prompt, vars, voice)),
                IntroItem::Play { url, barge_in } => verbs.push(Verb::Play(Play {
                    file_url: url.clone(),
                    barge_in: *barge_in,
                    repeat: None,
                })),
                IntroItem::Pause(s) => verbs.push(Verb::pause(clamp_pause(*s))),
            }
        }
        let menu = t.say(&t.menu, vars, voice);
        verbs.extend(menu.iter().cloned());
        if let Some(hint) = self.keys_hint(voice) {
            verbs.extend(
                say_verbs(&hint, voice.language, voice.gender)
                    .into_iter()
                    .map(|v| v.with_barge_in(true)),
            );
        }
        input_phase(&mut verbs, &menu, input_timeout_s, reprompts, listen);
        Dialplan::new(verbs)
    }

    /// The repeat and help keys announced, when the template asks for it and
    /// both are the ones the phrase names (`*`, and a help key of its own).
    fn keys_hint(&self, voice: Voice) -> Option<String> {
        let h = &self.helpers;
        let help = h
            .help_key
            .as_deref()
            .filter(|k| !self.keys.contains_key(*k))?;
        let star_repeats = h.repeat_key.as_deref() == Some("*") && !self.keys.contains_key("*");
        (h.announce_keys && star_repeats).then(|| Phrases::of(voice.language).keys_hint(help))
    }

    /// The answer to a repeat or help key (one the template does not use
    /// itself): the intro's words and the options again, or the options said
    /// slowly, sentence by sentence, once more. `None` for any other key.
    #[allow(clippy::too_many_arguments)] // the engine's per-call inputs, each distinct
    fn helper_turn(
        &self,
        helpers: &Helpers,
        key: &str,
        vars: &Vars,
        voice: Voice,
        input_timeout_s: u32,
        reprompts: u32,
        next: Listen<'_>,
    ) -> Option<Dialplan> {
        if self.keys.contains_key(key) {
            return None;
        }
        if helpers.repeat_key.as_deref() == Some(key) {
            let verbs = self
                .intro
                .iter()
                .filter_map(|s| match s {
                    IntroItem::Say(p) => Some(p),
                    _ => None,
                })
                .flat_map(|p| self.say(p, vars, voice))
                .map(|v| v.with_barge_in(true))
                .collect();
            return Some(self.with_menu(verbs, vars, voice, input_timeout_s, reprompts, next));
        }
        if helpers.help_key.as_deref() != Some(key) {
            return None;
        }
        let phrases = Phrases::of(voice.language);
        let gender = self.menu.gender.or(voice.gender);
        let mut verbs: Vec<Verb> = say_verbs(&phrases.options_again, voice.language, voice.gender)
            .into_iter()
            .map(|v| v.with_barge_in(true))
            .collect();
        let mut slow = Vec::new();
        for (i, sentence) in sentences(&self.menu.text.render(vars)).iter().enumerate() {
            if i > 0 {
                slow.push(wait(next, HELP_PAUSE_S));
            }
            slow.extend(
                say_verbs(sentence, voice.language, gender)
                    .into_iter()
                    .map(|v| v.with_barge_in(true)),
            );
        }
        verbs.extend(slow.iter().cloned());
        input_phase(&mut verbs, &slow, input_timeout_s, 0, next);
        Some(Dialplan::new(verbs))
    }

    /// "You accepted Ticket 4711." in the voice's language, the callout's name
    /// inserted as any variable is; `None` without a name or when off.
    fn confirmation(&self, decision: Decision, vars: &Vars, voice: Voice) -> Option<String> {
        let name = vars.get("callout_name")?;
        if !self.helpers.confirm || name.trim().is_empty() {
            return None;
        }
        let phrases = Phrases::of(voice.language);
        // `{name}` becomes the built-in variable, so the name is inserted
        // (and cleaned) as any variable is.
        let line = phrases.confirmation(decision == Decision::Accepted, "{{callout_name}}");
        Text::parse(&line).ok().map(|t| t.render(vars))
    }

    /// The answer to `digits` pressed during the call; `invalid_so_far` counts the
    /// invalid keys before this one.
    #[allow(clippy::too_many_arguments)] // the engine's per-call inputs, each distinct
    pub fn on_input(
        &self,
        digits: &str,
        vars: &Vars,
        language: Option<Language>,
        input_timeout_s: u32,
        reprompts: u32,
        next: Listen<'_>,
        invalid_so_far: u32,
    ) -> TemplateTurn {
        let (t, voice) = self.variant(language);
        // Parsed as the engine's keys are: `#` dropped, and on a menu of single
        // keys the last key pressed decides (`11` is `1`).
        let keys = Keys::parse(digits);
        let key = keys.choice(self.keys.keys().map(String::as_str));
        if let Some(dialplan) = t.helper_turn(
            &self.helpers,
            key,
            vars,
            voice,
            input_timeout_s,
            reprompts,
            next,
        ) {
            return TemplateTurn {
                dialplan,
                decision: None,
                ends_call: false,
                invalid: false,
            };
        }
        let Some(action) = t.keys.get(key) else {
            if invalid_so_far + 1 >= MAX_INVALID_INPUTS {
                return TemplateTurn {
                    dialplan: farewell(&t.messages.too_many_invalid.render(vars), voice),
                    decision: None,
                    ends_call: true,
                    invalid: true,
                };
            }
            let sorry = t.say_text(&t.messages.invalid, vars, voice, true);
            return TemplateTurn {
                dialplan: t.with_menu(sorry, vars, voice, input_timeout_s, reprompts, next),
                decision: None,
                ends_call: false,
                invalid: true,
            };
        };
        let said = action
            .say
            .as_ref()
            .map(|t| t.render(vars))
            .unwrap_or_default();
        if let Some(decision) = action.decision {
            let said = match self.confirmation(decision, vars, voice) {
                Some(confirmed) if said.is_empty() => confirmed,
                Some(confirmed) => format!("{confirmed} {said}"),
                None => said,
            };
            return TemplateTurn {
                dialplan: farewell(&said, voice),
                decision: Some(decision),
                ends_call: true,
                invalid: false,
            };
        }
        let verbs = say_verbs(&said, voice.language, voice.gender)
            .into_iter()
            .map(|v| v.with_barge_in(true))
            .collect();
        TemplateTurn {
            dialplan: t.with_menu(verbs, vars, voice, input_timeout_s, reprompts, next),
            decision: None,
            ends_call: false,
            invalid: false,
        }
    }

    /// The last words to a live call whose callout is over.
    pub fn closing(&self, which: Closing, vars: &Vars, language: Option<Language>) -> Dialplan {
        let (t, voice) = self.variant(language);
        let text = match which {
            Closing::Cancelled => &t.messages.cancelled,
            Closing::Closed => &t.messages.closed,
        };
        farewell(&text.render(vars), voice)
    }
}

/// `text` cut after each sentence's final `.`, `?` or `!` (followed by a
/// space), each piece trimmed; the options said slowly are said piece by piece.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (n, (i, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(n + 1).is_some_and(|(_, c)| c.is_whitespace());
        if matches!(c, '.' | '?' | '!') && next_is_space {
            out.push(text[start..i + c.len_utf8()].trim().to_owned());
            start = i + c.len_utf8();
        }
    }
    out.push(text[start..].trim().to_owned());
    out.retain(|s| !s.is_empty());
    out
}

/// Why a template was refused: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub path: Option<PathBuf>,
    /// 1-based.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => write!(f, "{}:{line}: {}", path.display(), self.message),
            (Some(path), None) => write!(f, "{}: {}", path.display(), self.message),
            (None, Some(line)) => write!(f, "line {line}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

// The file as written. Every value keeps its span so errors can name a line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    description: Option<String>,
    language: Spanned<String>,
    gender: Option<Spanned<String>>,
    #[serde(default)]
    intro: Vec<Spanned<RawIntroItem>>,
    menu: Spanned<RawPrompt>,
    keys: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawKey>>>>,
    #[serde(default)]
    messages: RawMessages,
    confirm: Option<bool>,
    repeat_key: Option<Spanned<String>>,
    help_key: Option<Spanned<String>>,
    announce_keys: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntroItem {
    say: Option<Spanned<String>>,
    play: Option<Spanned<String>>,
    pause: Option<Spanned<i64>>,
    gender: Option<Spanned<String>>,
    barge_in: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrompt {
    say: Spanned<String>,
    gender: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    outcome: Option<Spanned<String>>,
    say: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMessages {
    invalid: Option<Spanned<String>>,
    too_many_invalid: Option<Spanned<String>>,
    cancelled: Option<Spanned<String>>,
    closed: Option<Spanned<String>>,
}

/// Validation in progress: knows the source, to turn spans into lines.
struct Checker<'s> {
    source: &'s str,
}

type Checked<T> = Result<T, TemplateError>;

impl Checker<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> TemplateError {
        TemplateError {
            path: None,
            line: span.map(|s| line_of(self.source, s.start)),
            message: message.into(),
        }
    }

    fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> TemplateError {
        self.error(Some(value.span()), message)
    }

    fn gender(&self, raw: Option<&Spanned<String>>, what: &str) -> Checked<Option<Gender>> {
        raw.map(|g| {
            g.get_ref()
                .parse()
                .map_err(|e: String| self.at(g, format!("{what}: {e}")))
        })
        .transpose()
    }

    /// Parses a text, refusing it empty or too long even with its placeholders empty.
    fn text(&self, raw: &Spanned<String>, what: &str) -> Checked<Text> {
        let text = Text::parse(raw.get_ref()).map_err(|e| self.at(raw, format!("{what}: {e}")))?;
        let literal = text.literal_text();
        if literal.is_empty() && !text.has_placeholders() {
            return Err(self.at(raw, format!("{what}: empty text, nothing to say")));
        }
        let chars = literal.chars().count();
        if chars > MAX_SAY_CHARS {
            return Err(self.at(
                raw,
                format!(
                    "{what}: {chars} characters; Routee reads at most {MAX_SAY_CHARS} per SAY, split it into several steps"
                ),
            ));
        }
        Ok(text)
    }

    fn opt_text(&self, raw: Option<&Spanned<String>>, what: &str, default: &str) -> Checked<Text> {
        match raw {
            Some(raw) => self.text(raw, what),
            None => Text::parse(default).map_err(|e| self.error(None, e)),
        }
    }

    fn step(&self, raw: &Spanned<RawIntroItem>, index: usize) -> Checked<IntroItem> {
        let what = format!("intro step {}", index + 1);
        let step = raw.get_ref();
        let kinds = [
            step.say.is_some(),
            step.play.is_some(),
            step.pause.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => {
                return Err(self.at(
                    raw,
                    format!("{what}: empty, give it one of say, play or pause"),
                ));
            }
            1 => {}
            _ => {
                return Err(self.at(
                    raw,
                    format!(
                        "{what}: does several things, a step is exactly one of say, play or pause"
                    ),
                ));
            }
        }
        if let (None, Some(g)) = (&step.say, &step.gender) {
            return Err(self.at(g, format!("{what}: gender applies only to say")));
        }
        let barge_in = step.barge_in.as_ref().map(|b| *b.get_ref());
        if let (true, Some(b)) = (step.pause.is_some(), &step.barge_in) {
            return Err(self.at(b, format!("{what}: barge_in applies only to say and play")));
        }
        if let Some(say) = &step.say {
            return Ok(IntroItem::Say(Prompt {
                text: self.text(say, &what)?,
                gender: self.gender(step.gender.as_ref(), &what)?,
                barge_in: barge_in.unwrap_or(false),
            }));
        }
        if let Some(play) = &step.play {
            let url = play.get_ref().trim();
            if url.contains("{{") {
                return Err(self.at(
                    play,
                    format!(
                        "{what}: a play URL cannot hold placeholders, variables never change URLs"
                    ),
                ));
            }
            let Some(normalized) = playable_wav(url) else {
                return Err(self.at(
                    play,
                    format!("{what}: {url:?} is not an http(s) URL of a .wav file, the only audio Routee plays"),
                ));
            };
            return Ok(IntroItem::Play {
                url: normalized,
                barge_in: barge_in.unwrap_or(false),
            });
        }
        match &step.pause {
            Some(p) => {
                let seconds = *p.get_ref();
                match u32::try_from(seconds) {
                    Ok(s) if (1..=60).contains(&s) => Ok(IntroItem::Pause(s)),
                    _ => Err(self.at(
                        p,
                        format!("{what}: pause {seconds} is outside 1..=60 seconds"),
                    )),
                }
            }
            None => Err(self.at(
                raw,
                format!("{what}: empty, give it one of say, play or pause"),
            )),
        }
    }

    fn key(&self, key: &Spanned<String>, raw: &Spanned<RawKey>) -> Checked<(String, KeyAction)> {
        let name = key.get_ref().trim();
        let what = format!("key {name}");
        match name {
            "#" => {
                return Err(self.at(
                    key,
                    "key # cannot be a menu key: it submits the keys pressed (COLLECT submitOnHash)",
                ));
            }
            "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "*" => {}
            _ => {
                return Err(self.at(
                    key,
                    format!("key {name:?} is not a phone key: use one of 0-9 or \"*\""),
                ));
            }
        }
        let action = raw.get_ref();
        let decision = match &action.outcome {
            None => None,
            Some(o) => match o.get_ref().trim() {
                "accepted" => Some(Decision::Accepted),
                "rejected" => Some(Decision::Rejected),
                other => {
                    return Err(self.at(
                        o,
                        format!("{what}: outcome {other:?} is not one of accepted, rejected"),
                    ));
                }
            },
        };
        let say = action
            .say
            .as_ref()
            .map(|s| self.text(s, &what))
            .transpose()?;
        if decision.is_none() && say.is_none() {
            return Err(self.at(
                raw,
                format!("{what}: does nothing, give it an outcome, a say, or both"),
            ));
        }
        Ok((name.to_owned(), KeyAction { decision, say }))
    }

    fn template(&self, name: &str, raw: RawTemplate) -> Checked<Template> {
        let language = routee_language(raw.language.get_ref())
            .map_err(|e| self.at(&raw.language, format!("language: {e}")))?;
        let gender = self.gender(raw.gender.as_ref(), "gender")?;
        let intro = raw
            .intro
            .iter()
            .enumerate()
            .map(|(i, s)| self.step(s, i))
            .collect::<Checked<Vec<_>>>()?;
        let menu_raw = raw.menu.get_ref();
        let menu = Prompt {
            text: self.text(&menu_raw.say, "menu")?,
            gender: self.gender(menu_raw.gender.as_ref(), "menu")?,
            barge_in: true,
        };
        let keys = raw
            .keys
            .iter()
            .flat_map(|k| k.get_ref())
            .map(|(k, v)| self.key(k, v))
            .collect::<Checked<BTreeMap<_, _>>>()?;
        if !keys
            .values()
            .any(|k| k.decision == Some(Decision::Accepted))
        {
            return Err(self.error(
                raw.keys.as_ref().map(Spanned::span),
                "no key has outcome = \"accepted\": nobody could ever accept",
            ));
        }
        // Unwritten messages are the gateway's own words in the template's language.
        let m = &raw.messages;
        let p = Phrases::of(language);
        let messages = Messages {
            invalid: self.opt_text(m.invalid.as_ref(), "messages.invalid", &p.invalid)?,
            too_many_invalid: self.opt_text(
                m.too_many_invalid.as_ref(),
                "messages.too_many_invalid",
                &p.too_many_invalid,
            )?,
            cancelled: self.opt_text(m.cancelled.as_ref(), "messages.cancelled", &p.cancelled)?,
            closed: self.opt_text(m.closed.as_ref(), "messages.closed", &p.closed)?,
        };
        let helpers = self.helpers(&raw)?;
        Ok(Template {
            name: name.to_owned(),
            description: raw.description,
            language,
            gender,
            intro,
            menu,
            keys,
            messages,
            helpers,
            translations: BTreeMap::new(),
        })
    }

    fn helpers(&self, raw: &RawTemplate) -> Checked<Helpers> {
        let defaults = Helpers::default();
        let key = |raw: Option<&Spanned<String>>, default: Option<String>, what: &str| {
            let Some(k) = raw else {
                return Ok(default);
            };
            match k.get_ref().trim() {
                "" => Ok(None),
                "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "*" => {
                    Ok(Some(k.get_ref().trim().to_owned()))
                }
                other => Err(self.at(
                    k,
                    format!("{what}: {other:?} is not a phone key: use one of 0-9, \"*\", or \"\" for none"),
                )),
            }
        };
        let repeat_key = key(raw.repeat_key.as_ref(), defaults.repeat_key, "repeat_key")?;
        let help_key = key(raw.help_key.as_ref(), defaults.help_key, "help_key")?;
        if let (Some(r), Some(h), Some(span)) = (&repeat_key, &help_key, raw.help_key.as_ref()) {
            if r == h {
                return Err(self.at(span, format!("help_key: {h} is also the repeat_key")));
            }
        } else if repeat_key.is_some() && repeat_key == help_key {
            return Err(self.error(None, "repeat_key and help_key are the same key"));
        }
        Ok(Helpers {
            confirm: raw.confirm.unwrap_or(defaults.confirm),
            repeat_key,
            help_key,
            announce_keys: raw.announce_keys.unwrap_or(defaults.announce_keys),
        })
    }
}

/// The 1-based line of a byte offset.
fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parses and validates a template named `name` from its TOML text.
pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
    let checker = Checker { source: text };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(checker.error(
            None,
            format!("{name:?} is not a usable template name: use letters, digits, - and _"),
        ));
    }
    let raw: RawTemplate =
        toml::from_str(text).map_err(|e| checker.error(e.span(), e.message().trim()))?;
    checker.template(name, raw)
}

/// Parses a file named `<stem>.toml`: a template (`ticket-escalation`), or
/// its translation into a language (`ticket-escalation.el-GR`, whose
/// `language` must be that language). Returns the translation's language too.
pub fn parse_file(stem: &str, text: &str) -> Result<(Option<Language>, Template), TemplateError> {
    let Some((base, suffix)) = stem.split_once('.') else {
        return parse(stem, text).map(|t| (None, t));
    };
    let template = parse(base, text)?;
    let named: Language = suffix.parse().map_err(|e: String| TemplateError {
        path: None,
        line: None,
        message: format!(
            "a translation is named <template>.<language>.toml with one of Routee's codes: {e}"
        ),
    })?;
    if template.language != named {
        return Err(TemplateError {
            path: None,
            line: None,
            message: format!(
                "the file name says {named} but language is {}: a translation's file name and language agree",
                template.language
            ),
        });
    }
    Ok((Some(named), template))
}

/// How a translation differs from its template in what must be the same in
/// every language: the keys, what each decides, and the placeholders.
fn differences(template: &Template, translation: &Template) -> Vec<String> {
    let lang = translation.language;
    let mut found = Vec::new();
    let keys = |t: &Template| t.keys.keys().cloned().collect::<Vec<_>>().join(", ");
    if template.keys.keys().ne(translation.keys.keys()) {
        found.push(format!(
            "keys differ between languages: {} in {}, {} in {lang}",
            keys(template),
            template.language,
            keys(translation)
        ));
    } else {
        for (key, action) in &template.keys {
            let other = translation.keys.get(key).and_then(|a| a.decision);
            if action.decision != other {
                found.push(format!(
                    "key {key} decides {:?} in {} but {other:?} in {lang}",
                    action.decision, template.language
                ));
            }
        }
    }
    if template.helpers != translation.helpers {
        found.push(format!(
            "confirm, repeat_key, help_key or announce_keys differ between languages: {:?} in {}, {:?} in {lang}",
            template.helpers, template.language, translation.helpers
        ));
    }
    let (ours, theirs) = (template.own_placeholders(), translation.own_placeholders());
    if ours != theirs {
        let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
        found.push(format!(
            "placeholders differ between languages: {{{}}} in {}, {{{}}} in {lang}",
            list(&ours),
            template.language,
            list(&theirs)
        ));
    }
    found
}

/// A template file as parsed: where it came from (`None`: embedded), the
/// language it translates into (`None`: a template), and the template.
type ParsedFile = (Option<PathBuf>, Option<Language>, Template);

/// Templates and their translations joined: every translation to its
/// template, checked against it.
fn assemble(files: Vec<ParsedFile>) -> Result<Templates, Vec<TemplateError>> {
    let mut templates = Templates::default();
    let mut translations = Vec::new();
    for (path, language, t) in files {
        match language {
            None => templates.insert(t),
            Some(_) => translations.push((path, t)),
        }
    }
    let mut errors = Vec::new();
    for (path, t) in translations {
        let error = |message: String| TemplateError {
            path: path.clone(),
            line: None,
            message,
        };
        let Some(base) = templates.0.get_mut(&t.name) else {
            errors.push(error(format!(
                "a translation of {:?}, which has no {}.toml",
                t.name, t.name
            )));
            continue;
        };
        if t.language == base.language {
            errors.push(error(format!(
                "translates {:?} into {}, the language it is written in",
                t.name, t.language
            )));
            continue;
        }
        let found = differences(base, &t);
        if found.is_empty() {
            base.translations.insert(t.language, t);
        } else {
            errors.extend(found.into_iter().map(error));
        }
    }
    if errors.is_empty() {
        Ok(templates)
    } else {
        Err(errors)
    }
}

/// Loads one template file; its name is the file name without `.toml`.
pub fn load_file(path: &Path) -> Result<Template, TemplateError> {
    let with_path = |mut e: TemplateError| {
        e.path = Some(path.to_owned());
        e
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        with_path(TemplateError {
            path: None,
            line: None,
            message: format!("cannot read: {e}"),
        })
    })?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    parse_file(name, &text).map(|(_, t)| t).map_err(with_path)
}

/// Loads the template `path` belongs to, with all its translations beside it
/// (`dialplan check`): `x.toml` and every `x.<language>.toml` of its directory.
pub fn load_group(path: &Path) -> Result<Template, Vec<TemplateError>> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let base = stem.split('.').next().unwrap_or_default().to_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut paths = toml_files(dir)?;
    paths.retain(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .is_some_and(|s| s.split('.').next() == Some(base.as_str()))
    });
    if !paths.iter().any(|p| p.file_name() == path.file_name()) {
        paths.push(path.to_owned());
    }
    let templates = load_paths(paths)?;
    templates.get(&base).cloned().ok_or_else(|| {
        vec![TemplateError {
            path: Some(path.to_owned()),
            line: None,
            message: format!("a translation of {base:?}, which has no {base}.toml beside it"),
        }]
    })
}

/// Loads and joins the template files at `paths`, reporting every bad one.
fn load_paths(paths: Vec<PathBuf>) -> Result<Templates, Vec<TemplateError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let loaded = std::fs::read_to_string(&path)
            .map_err(|e| TemplateError {
                path: None,
                line: None,
                message: format!("cannot read: {e}"),
            })
            .and_then(|text| parse_file(&stem, &text));
        match loaded {
            Ok((language, t)) => files.push((Some(path), language, t)),
            Err(mut e) => {
                e.path = Some(path);
                errors.push(e);
            }
        }
    }
    match assemble(files) {
        Ok(templates) if errors.is_empty() => Ok(templates),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// Templates by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Templates(BTreeMap<String, Template>);

impl Templates {
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a template, replacing one of the same name.
    pub fn insert(&mut self, template: Template) {
        self.0.insert(template.name.clone(), template);
    }

    /// These templates overlaid with `other`'s (e.g. [`embedded`] then a
    /// `dialplans/` directory whose files replace the shipped ones).
    #[must_use]
    pub fn merge(mut self, other: Templates) -> Templates {
        self.0.extend(other.0);
        self
    }
}

impl FromIterator<Template> for Templates {
    fn from_iter<I: IntoIterator<Item = Template>>(iter: I) -> Self {
        let mut all = Templates::default();
        for t in iter {
            all.insert(t);
        }
        all
    }
}

/// Loads every `*.toml` in `dir` (not recursively), translations joined to
/// their templates. A missing directory holds no templates; every bad file is
/// reported, not only the first.
pub fn load_dir(dir: &Path) -> Result<Templates, Vec<TemplateError>> {
    load_paths(toml_files(dir)?)
}

/// The `*.toml` files of `dir`, sorted; none when it does not exist.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, Vec<TemplateError>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![TemplateError {
                path: Some(dir.to_owned()),
                line: None,
                message: format!("cannot read the directory: {e}"),
            }]);
        }
    };
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => paths.push(e.path()),
            Err(e) => errors.push(TemplateError {
                path: Some(dir.to_owned()),
                line: None,
                message: format!("cannot list the directory: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    paths.retain(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"));
    paths.sort();
    Ok(paths)
}

/// The templates shipped in the binary (`dialplans/*.toml` at build time).
/// `tests/templates.rs` proves they all parse; should one not, it is logged and
/// left out rather than taking the service down.
pub fn embedded() -> Templates {
    let files = EMBEDDED
        .iter()
        .filter_map(|(name, text)| match parse_file(name, text) {
            Ok((language, t)) => Some((None, language, t)),
            Err(e) => {
                tracing::error!(template = name, error = %e, "shipped dialplan template is invalid");
                None
            }
        })
        .collect();
    assemble(files).unwrap_or_else(|errors| {
        for e in errors {
            tracing::error!(error = %e, "shipped dialplan translation is invalid");
        }
        Templates::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_parsed_with_optional_inner_spaces() {
        let t = Text::parse("Hi {{ contact_name }}, {{ticket}}!").unwrap();
        assert_eq!(
            t.placeholders().collect::<Vec<_>>(),
            ["contact_name", "ticket"]
        );
        let vars = Vars::from([
            ("contact_name".to_owned(), "Alice".to_owned()),
            ("ticket".to_owned(), "Room 2 floods".to_owned()),
        ]);
        assert_eq!(t.render(&vars), "Hi Alice, Room 2 floods!");
    }

    #[test]
    fn malformed_placeholders_are_refused() {
        assert!(Text::parse("{{ ticket").unwrap_err().contains("unclosed"));
        assert!(
            Text::parse("{{Ticket}}")
                .unwrap_err()
                .contains("not a valid name")
        );
        assert!(
            Text::parse("{{1st}}")
                .unwrap_err()
                .contains("not a valid name")
        );
        assert!(
            Text::parse("{{}}")
                .unwrap_err()
                .contains("not a valid name")
        );
        assert!(Text::parse("done }}").unwrap_err().contains("without"));
        assert!(Text::parse("a {single} brace is text").is_ok());
    }

    #[test]
    fn values_are_plain_text_and_never_expanded() {
        let t = Text::parse("Ticket: {{ticket}}.").unwrap();
        let vars = Vars::from([(
            "ticket".to_owned(),
            "{{contact_name}} &amp; <b>x</b>\n\u{7}".to_owned(),
        )]);
        assert_eq!(t.render(&vars), "Ticket: {{contact_name}} &amp; b x /b.");
    }

    #[test]
    fn a_missing_variable_renders_as_nothing() {
        let t = Text::parse("Hello {{name}}.").unwrap();
        assert_eq!(t.render(&Vars::new()), "Hello.");
    }

    #[test]
    fn a_value_is_not_unescaped_on_its_way_to_the_last_words() {
        let t = parse(
            "t",
            "language = \"en-US\"\n[menu]\nsay = \"Press 1.\"\n[keys.1]\noutcome = \"accepted\"\nsay = \"Bye {{team}}.\"\n",
        )
        .unwrap();
        let vars = Vars::from([("team".to_owned(), "R&amp;D".to_owned())]);
        let turn = t.on_input(
            "1",
            &vars,
            None,
            10,
            1,
            Listen::new("https://gw/e", "https://gw/s.wav"),
            0,
        );
        let Verb::Say(say) = &turn.dialplan.verbs[0] else {
            panic!("a SAY first")
        };
        assert_eq!(say.message.text, "Bye R&amp;D.");
    }

    #[test]
    fn options_are_cut_into_sentences_for_the_slow_reading() {
        assert_eq!(
            sentences("Press 1 to accept this ticket. Press 2 to reject it."),
            ["Press 1 to accept this ticket.", "Press 2 to reject it."]
        );
        assert_eq!(
            sentences("Version 1.5 is out! Ok?  Yes"),
            ["Version 1.5 is out!", "Ok?", "Yes"]
        );
        assert_eq!(sentences("  "), Vec::<String>::new());
        assert_eq!(
            sentences("Πατήστε 1. Πατήστε 2."),
            ["Πατήστε 1.", "Πατήστε 2."]
        );
    }

    #[test]
    fn lines_are_counted_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
