//! The gateway's own words in all 14 languages (`dialplans/phrases/*.toml`):
//! every phrase of every language exists, is not empty, uses only the
//! placeholders its key allows, and renders into `SAY`s in its language with
//! every placeholder filled; a non-English language never says an English phrase.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ivr_gateway::dialplan::phrases::{self, FILES, Phrases, allowed_placeholders, placeholders};
use ivr_gateway::dialplan::render::{
    ActionNames, TurnContext, Voice, closing_dialplan, fallback_dialplan, holding_dialplan,
};
use ivr_gateway::routee::{Dialplan, Language, Verb};

const EVENT_URL: &str = "https://gw.example.com/routee/collect?t=1&s=SIGNATURE";
const SILENCE_URL: &str = "https://gw.example.com/audio/0123456789abcdef.wav";

/// Every `SAY` of a dialplan: its text and language.
fn says(plan: &Dialplan) -> Vec<(String, Language)> {
    plan.verbs
        .iter()
        .filter_map(|v| match v {
            Verb::Say(s) => Some((s.message.text.clone(), s.message.language)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_language_has_a_file_on_disk_and_it_is_the_embedded_one() {
    for (language, embedded) in FILES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("dialplans/phrases/{}.toml", language.code()));
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, embedded, "{}", path.display());
        phrases::parse(&on_disk).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    assert_eq!(FILES.len(), Language::ALL.len());
}

#[test]
fn every_phrase_of_every_language_is_there_and_uses_only_its_placeholders() {
    let mut problems = Vec::new();
    for language in Language::ALL {
        let p = Phrases::of(language);
        for (key, text) in p.entries() {
            let at = format!("{}.{key}", language.code());
            if text.trim().is_empty() {
                problems.push(format!("{at}: empty"));
            }
            if text.trim() != text || text.contains("  ") {
                problems.push(format!("{at}: stray whitespace in {text:?}"));
            }
            if !text.ends_with(['.', '!', '?']) {
                problems.push(format!("{at}: no final punctuation in {text:?}"));
            }
            let allowed = allowed_placeholders(key);
            for used in placeholders(text) {
                if !allowed.contains(&used) {
                    problems.push(format!("{at}: unknown placeholder {{{used}}}"));
                }
            }
            // Every placeholder the key allows is used: a confirmation that
            // forgets {name} says nothing about what was decided.
            for wanted in allowed {
                if !placeholders(text).contains(wanted) {
                    problems.push(format!("{at}: does not say {{{wanted}}}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_language_but_english_says_an_english_phrase() {
    let english = Phrases::of(Language::EnUs).entries();
    for language in Language::ALL {
        if language.primary() == "en" {
            continue;
        }
        for ((key, text), (_, en)) in Phrases::of(language).entries().iter().zip(english) {
            assert_ne!(*text, en, "{}.{key} is the English phrase", language.code());
        }
    }
}

#[test]
fn every_phrase_renders_in_its_language_with_every_placeholder_filled() {
    let actions = ActionNames::default();
    for language in Language::ALL {
        let p = Phrases::of(language);
        let voice = Voice {
            language,
            gender: None,
        };
        let ctx = TurnContext {
            voice,
            event_url: EVENT_URL,
            silence_url: SILENCE_URL,
            input_timeout_s: 10,
            reprompts: 1,
            actions: &actions,
            caller_id: "+306900000000",
            transfer_max_s: 300,
            phrases: p,
        };
        let filled = [
            p.menu_line("1", "Accept"),
            p.menu_line("2", ""),
            p.fallback_line("1", true),
            p.fallback_line("2", false),
            p.confirmation(true, "Ticket 4711"),
            p.confirmation(false, "Ticket 4711"),
            p.keys_hint("0"),
            p.voicemail("Ticket 4711"),
        ];
        let mut plans = vec![
            holding_dialplan(&ctx),
            fallback_dialplan(&ctx, &filled[2..4].join(" ")),
        ];
        for (_, text) in p.entries() {
            plans.push(closing_dialplan(text, voice));
        }
        for text in &filled {
            plans.push(closing_dialplan(text, voice));
        }
        let said: Vec<(String, Language)> = plans.iter().flat_map(says).collect();
        assert!(said.len() >= 2 + 20 + filled.len(), "{}", language.code());
        for (text, spoken_in) in &said {
            assert_eq!(*spoken_in, language, "{text:?}");
            assert!(!text.trim().is_empty(), "{}: an empty SAY", language.code());
        }
        for text in &filled {
            assert!(
                !text.contains('{') && !text.contains('}'),
                "{}: unfilled placeholder in {text:?}",
                language.code()
            );
            let values = ["1", "2", "Accept", "Ticket 4711", "0"];
            assert!(values.iter().any(|v| text.contains(v)), "{text:?}");
        }
    }
}
