//! What the gateway itself says, in each of Routee's 14 languages: the holding
//! phrase, the fallback keypad, "not a valid choice", "press your choice again",
//! the cancelled and closed goodbyes, the confirmation of a decision, the help
//! and repeat keys' words and the voicemail message.
//!
//! Each language is one data file, `dialplans/phrases/<code>.toml`, embedded in
//! the binary; every key is required, so a language can never fall back to
//! English for one phrase without a test failing (`tests/phrases.rs` renders
//! every phrase of every language). Placeholders are single-braced and filled
//! here: `{digit}`/`{label}` (a menu line), `{name}` (the callout's name) and
//! `{help}` (the help key).
//!
//! [`Phrases::of`] picks a language's phrases; the call's language is the
//! contact's, else the callout's template or assistant default (see
//! `docs/callee.md`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::routee::Language;

/// The shipped phrase files, one per language, in [`Language::ALL`] order.
pub const FILES: [(Language, &str); 14] = [
    (
        Language::EnUs,
        include_str!("../../dialplans/phrases/en-US.toml"),
    ),
    (
        Language::DeDe,
        include_str!("../../dialplans/phrases/de-DE.toml"),
    ),
    (
        Language::FrFr,
        include_str!("../../dialplans/phrases/fr-FR.toml"),
    ),
    (
        Language::ItIt,
        include_str!("../../dialplans/phrases/it-IT.toml"),
    ),
    (
        Language::PtBr,
        include_str!("../../dialplans/phrases/pt-BR.toml"),
    ),
    (
        Language::EsEs,
        include_str!("../../dialplans/phrases/es-ES.toml"),
    ),
    (
        Language::EsLa,
        include_str!("../../dialplans/phrases/es-LA.toml"),
    ),
    (
        Language::EnGb,
        include_str!("../../dialplans/phrases/en-GB.toml"),
    ),
    (
        Language::ElGr,
        include_str!("../../dialplans/phrases/el-GR.toml"),
    ),
    (
        Language::BgBg,
        include_str!("../../dialplans/phrases/bg-BG.toml"),
    ),
    (
        Language::PlPl,
        include_str!("../../dialplans/phrases/pl-PL.toml"),
    ),
    (
        Language::HuHu,
        include_str!("../../dialplans/phrases/hu-HU.toml"),
    ),
    (
        Language::SvSe,
        include_str!("../../dialplans/phrases/sv-SE.toml"),
    ),
    (
        Language::RuRu,
        include_str!("../../dialplans/phrases/ru-RU.toml"),
    ),
];

/// What the gateway itself says in one language. Every field is required in
/// the data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phrases {
    /// One menu line per button: `{digit}`, `{label}`.
    pub menu_item: String,
    /// A menu line for a button without a name: `{digit}`.
    pub menu_item_unnamed: String,
    /// Said when Voiceflow is slow.
    pub holding: String,
    /// Said after [`Phrases::holding`], inviting a key press.
    pub holding_continue: String,
    /// Said before the fallback keypad when Voiceflow is down.
    pub fallback_apology: String,
    /// The fallback keypad's accept line: `{digit}`.
    pub fallback_accept: String,
    /// The fallback keypad's reject line: `{digit}`.
    pub fallback_reject: String,
    /// A key that means nothing (then the options again).
    pub invalid: String,
    /// The third key that meant nothing: the call ends.
    pub too_many_invalid: String,
    /// Keys that only repeat what was already read (a carrier echo).
    pub press_again: String,
    /// The answer could not be stored: the same input again.
    pub retry: String,
    /// The dispatcher cancelled the callout.
    pub cancelled: String,
    /// Someone else already accepted.
    pub closed: String,
    /// Enough people accepted (`policy.needed`) while this call was under way.
    pub filled: String,
    /// The fallback keypad recorded an accept.
    pub accepted: String,
    /// The fallback keypad recorded a reject.
    pub rejected: String,
    /// The spoken confirmation of an accept: `{name}`.
    pub confirm_accepted: String,
    /// The spoken confirmation of a reject: `{name}`.
    pub confirm_rejected: String,
    /// Said before the options are said slowly again (the help key).
    pub options_again: String,
    /// The repeat and help keys, announced when a template asks: `{help}`.
    pub keys_hint: String,
    /// Left on an answering machine: `{name}`.
    pub voicemail: String,
}

static ALL: LazyLock<BTreeMap<Language, Phrases>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|(language, text)| match parse(text) {
            Ok(p) => Some((*language, p)),
            Err(e) => {
                tracing::error!(language = %language, error = %e, "shipped phrase file is invalid");
                None
            }
        })
        .collect()
});

/// The English phrases when even the shipped English file failed to parse
/// (`tests/phrases.rs` proves it does not).
static LAST_RESORT: LazyLock<Phrases> = LazyLock::new(|| Phrases {
    menu_item: "Press {digit} for {label}.".into(),
    menu_item_unnamed: "Press {digit}.".into(),
    holding: "One moment, please.".into(),
    holding_continue: "Press any key to continue.".into(),
    fallback_apology: "We are sorry, we are having technical difficulties.".into(),
    fallback_accept: "Press {digit} to accept.".into(),
    fallback_reject: "Press {digit} to reject.".into(),
    invalid: "Sorry, that is not a valid choice.".into(),
    too_many_invalid: "Sorry, we could not understand your choice. Goodbye.".into(),
    press_again: "Please press your choice again.".into(),
    retry: "Sorry, we could not record your answer. Please press your choice again.".into(),
    cancelled: "This request has been cancelled. Goodbye.".into(),
    closed: "This request has already been handled. Goodbye.".into(),
    filled: "This request has been filled. Thank you.".into(),
    accepted: "Thank you. You have accepted. Goodbye.".into(),
    rejected: "Understood. We will call someone else. Goodbye.".into(),
    confirm_accepted: "You accepted {name}.".into(),
    confirm_rejected: "You declined {name}.".into(),
    options_again: "Here are your options again.".into(),
    keys_hint: "Press star to hear this again, or {help} for help.".into(),
    voicemail: "An urgent request is waiting for you: {name}. We will call you again. Goodbye."
        .into(),
});

/// Parses one phrase file (every key required, no unknown key).
pub fn parse(text: &str) -> Result<Phrases, toml::de::Error> {
    toml::from_str(text)
}

impl Phrases {
    /// The phrases of `language` (the shipped file; English should it be broken).
    pub fn of(language: Language) -> &'static Phrases {
        ALL.get(&language)
            .or_else(|| ALL.get(&Language::EnUs))
            .unwrap_or(&LAST_RESORT)
    }

    /// Every phrase by its key, in file order (for tests and `dialplan check`).
    pub fn entries(&self) -> [(&'static str, &str); 21] {
        [
            ("menu_item", &self.menu_item),
            ("menu_item_unnamed", &self.menu_item_unnamed),
            ("holding", &self.holding),
            ("holding_continue", &self.holding_continue),
            ("fallback_apology", &self.fallback_apology),
            ("fallback_accept", &self.fallback_accept),
            ("fallback_reject", &self.fallback_reject),
            ("invalid", &self.invalid),
            ("too_many_invalid", &self.too_many_invalid),
            ("press_again", &self.press_again),
            ("retry", &self.retry),
            ("cancelled", &self.cancelled),
            ("closed", &self.closed),
            ("filled", &self.filled),
            ("accepted", &self.accepted),
            ("rejected", &self.rejected),
            ("confirm_accepted", &self.confirm_accepted),
            ("confirm_rejected", &self.confirm_rejected),
            ("options_again", &self.options_again),
            ("keys_hint", &self.keys_hint),
            ("voicemail", &self.voicemail),
        ]
    }

    /// A menu line for a button.
    pub fn menu_line(&self, digit: &str, label: &str) -> String {
        // The digit first: a label saying "{digit}" must stay text, not be expanded.
        if label.is_empty() {
            self.menu_item_unnamed.replace("{digit}", digit)
        } else {
            self.menu_item
                .replace("{digit}", digit)
                .replace("{label}", label)
        }
    }

    /// The fallback keypad's line for `digit`.
    pub fn fallback_line(&self, digit: &str, accept: bool) -> String {
        let line = if accept {
            &self.fallback_accept
        } else {
            &self.fallback_reject
        };
        line.replace("{digit}", digit)
    }

    /// The confirmation of a decision on the callout named `name`.
    pub fn confirmation(&self, accepted: bool, name: &str) -> String {
        let line = if accepted {
            &self.confirm_accepted
        } else {
            &self.confirm_rejected
        };
        line.replace("{name}", name)
    }

    /// The repeat and help keys announced, `help` being the help key.
    pub fn keys_hint(&self, help: &str) -> String {
        self.keys_hint.replace("{help}", help)
    }

    /// The message left on an answering machine for the callout named `name`.
    pub fn voicemail(&self, name: &str) -> String {
        self.voicemail.replace("{name}", name)
    }
}

impl Default for Phrases {
    /// American English.
    fn default() -> Self {
        Phrases::of(Language::EnUs).clone()
    }
}

/// The placeholders a phrase may use, by key: anything else in braces is a
/// typo that would be read aloud.
pub fn allowed_placeholders(key: &str) -> &'static [&'static str] {
    match key {
        "menu_item" => &["digit", "label"],
        "menu_item_unnamed" | "fallback_accept" | "fallback_reject" => &["digit"],
        "confirm_accepted" | "confirm_rejected" | "voicemail" => &["name"],
        "keys_hint" => &["help"],
        _ => &[],
    }
}

/// The `{placeholders}` a phrase uses.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                found.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_files_cover_every_language_in_order() {
        assert_eq!(FILES.map(|(l, _)| l), Language::ALL);
    }

    #[test]
    fn a_missing_or_unknown_key_is_refused() {
        let english = FILES[0].1;
        let without_voicemail: String = english
            .lines()
            .filter(|l| !l.starts_with("voicemail"))
            .collect::<Vec<_>>()
            .join("\n");
        let e = parse(&without_voicemail).unwrap_err();
        assert!(e.to_string().contains("voicemail"), "{e}");
        let e = parse(&format!("{english}\nvoicemial = \"x\"\n")).unwrap_err();
        assert!(e.to_string().contains("voicemial"), "{e}");
    }

    #[test]
    fn placeholders_are_found_and_filled() {
        assert_eq!(
            placeholders("Press {digit} for {label}."),
            ["digit", "label"]
        );
        assert!(placeholders("no braces").is_empty());
        let en = Phrases::of(Language::EnUs);
        assert_eq!(en.menu_line("1", "Accept"), "Press 1 for Accept.");
        // A label that looks like a placeholder stays text.
        assert_eq!(en.menu_line("1", "{digit}"), "Press 1 for {digit}.");
        assert_eq!(en.fallback_line("2", false), "Press 2 to reject.");
        assert_eq!(
            en.confirmation(true, "Ticket 4711"),
            "You accepted Ticket 4711."
        );
    }

    #[test]
    fn the_default_is_american_english() {
        assert_eq!(Phrases::default(), *Phrases::of(Language::EnUs));
        assert_eq!(Phrases::default(), *LAST_RESORT);
    }
}
