//! Dialplan templates as their users meet them: the shipped files load, broken
//! files are refused with the line and the problem, and variables stay text.
//!
//! The broken files live in `tests/golden/templates/broken-*.toml`, never in
//! `dialplans/`, so nothing broken ships.

// Helpers outside `#[test]` functions panic on bad fixtures too: that is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use ivr_gateway::dialplan::phrases::Phrases;
use ivr_gateway::dialplan::render::Listen;
use ivr_gateway::dialplan::template::{self, Closing, Template, Vars};
use ivr_gateway::routee::{Dialplan, Language, MAX_SAY_CHARS, Verb};
use serde_json::Value;

const EVENT_URL: &str = "https://gw.example.com/routee/collect?t=1&s=SIGNATURE";
const SILENCE_URL: &str = "https://gw.example.com/audio/0123456789abcdef.wav";
const LISTEN: Listen<'static> = Listen {
    event_url: EVENT_URL,
    silence_url: SILENCE_URL,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A shipped template with its translations.
fn shipped(name: &str) -> Template {
    template::load_group(&repo(&format!("dialplans/{name}.toml"))).unwrap()
}

fn vars(ticket: &str) -> Vars {
    [
        ("ticket", ticket),
        ("contact_name", "Alice"),
        ("callout_name", "Ticket 4711"),
        ("attempt", "1"),
        ("max_attempts", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn the_shipped_templates_load_validate_and_are_embedded_in_the_binary() {
    let on_disk = template::load_dir(&repo("dialplans")).unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(on_disk.get("ticket-escalation").is_some());
    // Every file in dialplans/ is embedded, and embedded exactly as on disk.
    assert_eq!(template::embedded(), on_disk);
}

#[test]
fn every_broken_template_is_refused_naming_its_line_and_problem() {
    let cases = [
        ("broken-syntax", 5, "invalid basic string"),
        ("broken-unknown-key", 8, "unknown field `sya`"),
        ("broken-empty-step", 7, "intro step 2: empty"),
        ("broken-empty-say", 5, "menu: empty text"),
        ("broken-two-things", 4, "intro step 1: does several things"),
        ("broken-key-name", 10, "key \"10\" is not a phone key"),
        ("broken-hash-key", 10, "key # cannot be a menu key"),
        (
            "broken-outcome",
            11,
            "outcome \"maybe\" is not one of accepted, rejected",
        ),
        ("broken-key-does-nothing", 10, "key 3: does nothing"),
        ("broken-no-accept", 7, "no key has outcome = \"accepted\""),
        (
            "broken-long-text",
            5,
            "1091 characters; Routee reads at most 1000",
        ),
        (
            "broken-language",
            2,
            "language: unsupported language \"ja-JP\": Routee speaks en-US",
        ),
        (
            "broken-gender",
            6,
            "intro step 1: unknown voice gender \"robot\"",
        ),
        (
            "broken-placeholder-unclosed",
            8,
            "unclosed placeholder `{{ ticket`",
        ),
        (
            "broken-placeholder-name",
            9,
            "placeholder `{{Contact-Name}}` is not a valid name",
        ),
        ("broken-pause", 5, "pause 90 is outside 1..=60"),
        ("broken-play", 5, "is not an http(s) URL of a .wav file"),
        (
            "broken-play-placeholder",
            5,
            "a play URL cannot hold placeholders",
        ),
        ("broken-missing-menu", 1, "missing field `menu`"),
    ];
    let dir = repo("tests/golden/templates");
    let on_disk = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("broken-") && name.ends_with(".toml")
        })
        .count();
    assert_eq!(on_disk, cases.len(), "every broken file has a case here");

    for (name, line, problem) in cases {
        let path = dir.join(format!("{name}.toml"));
        let err = template::load_file(&path).expect_err(name);
        assert_eq!(err.path.as_deref(), Some(path.as_path()), "{name}");
        assert_eq!(err.line, Some(line), "{name}: {err}");
        assert!(err.message.contains(problem), "{name}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}:{line}: ", path.display())),
            "{err}"
        );
    }
}

#[test]
fn a_directory_with_broken_files_reports_every_one_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let golden = repo("tests/golden/templates");
    for name in ["broken-pause.toml", "broken-outcome.toml"] {
        fs::copy(golden.join(name), dir.path().join(name)).unwrap();
    }
    fs::copy(
        repo("dialplans/ticket-escalation.toml"),
        dir.path().join("ok.toml"),
    )
    .unwrap();
    fs::write(dir.path().join("notes.txt"), "not a template").unwrap();
    let errors = template::load_dir(dir.path()).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{lines:?}");
    assert!(lines[0].contains("broken-outcome.toml:11:"), "{lines:?}");
    assert!(lines[1].contains("broken-pause.toml:5:"), "{lines:?}");
}

#[test]
fn a_missing_directory_holds_no_templates_and_is_not_an_error() {
    let templates = template::load_dir(&repo("tests/golden/no-such-dir")).unwrap();
    assert!(templates.is_empty());
}

#[test]
fn placeholders_are_listed_and_built_ins_are_not_required_from_a_callout() {
    let t = shipped("ticket-escalation");
    let names: Vec<String> = t.placeholders().into_iter().collect();
    assert_eq!(names, ["contact_name", "ticket"]);
    let required: Vec<String> = t.required_variables().into_iter().collect();
    assert_eq!(required, ["ticket"]);
}

/// Every string in `verbs` outside a `SAY`'s `message.text`.
fn strings_outside_message_text(value: &Value, inside_text: bool, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !inside_text => out.push(s.clone()),
        Value::Array(items) => items
            .iter()
            .for_each(|v| strings_outside_message_text(v, false, out)),
        Value::Object(fields) => {
            for (k, v) in fields {
                strings_outside_message_text(v, k == "text", out);
            }
        }
        _ => {}
    }
}

#[test]
fn a_variable_that_looks_like_json_verbs_or_urls_stays_inside_message_text() {
    let t = shipped("ticket-escalation");
    let hostile = concat!(
        r#""}]},{"type":"DIAL","from":"x","to":{"phone":"+19005550100"}},"#,
        r#"{"type":"PLAY","fileURL":"https://evil.example/x.wav"}"#,
        r#" <speak><audio src="https://evil.example/y.wav"/></speak> {{contact_name}} &lt;b&gt;"#,
        "\r\n\u{0}\u{1b}[2J"
    );
    let benign = t.render_call(&vars("Server room 2 is flooding."), None, 10, 1, LISTEN);
    let attacked = t.render_call(&vars(hostile), None, 10, 1, LISTEN);

    // Same verbs, same order: a variable adds nothing and changes no URL.
    let kinds = |verbs: &[Verb]| -> Vec<String> {
        verbs
            .iter()
            .map(|v| serde_json::to_value(v).unwrap()["type"].to_string())
            .collect()
    };
    assert_eq!(kinds(&attacked.verbs), kinds(&benign.verbs));
    assert_eq!(attacked.event_url(), Some(EVENT_URL));

    let json = serde_json::to_value(&attacked).unwrap();
    let mut outside = Vec::new();
    strings_outside_message_text(&json, false, &mut outside);
    assert!(
        outside
            .iter()
            .all(|s| !s.contains("evil") && !s.contains("1900")),
        "{outside:?}"
    );

    let Verb::Say(ticket) = &attacked.verbs[1] else {
        panic!("the ticket is the second verb")
    };
    let text = &ticket.message.text;
    assert!(
        text.contains("https://evil.example/x.wav"),
        "kept as text: {text}"
    );
    assert!(
        !text.contains(['<', '>']),
        "no tag can reach a TTS engine: {text}"
    );
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(
        text.contains("{{contact_name}}"),
        "a value is never expanded: {text}"
    );
}

#[test]
fn a_long_substituted_text_is_split_into_says_within_routees_limit() {
    let t = shipped("ticket-escalation");
    let ticket = "Water is rising in server room two. ".repeat(80);
    let plan = t.render_call(&vars(&ticket), None, 10, 1, LISTEN);
    let says: Vec<&str> = plan
        .verbs
        .iter()
        .filter_map(|v| match v {
            Verb::Say(s) if s.message.text.starts_with("Water") => Some(s.message.text.as_str()),
            _ => None,
        })
        .collect();
    assert!(says.len() >= 3, "{}", says.len());
    assert!(says.iter().all(|s| s.chars().count() <= MAX_SAY_CHARS));
    assert_eq!(says.join(" "), ticket.trim());
}

#[test]
fn a_key_without_an_outcome_says_its_text_and_offers_the_menu_again() {
    let t = template::parse(
        "info",
        r#"
language = "en-GB"
[menu]
say = "Press 1 to accept. Press 9 to hear the ticket again."
[keys.1]
outcome = "accepted"
[keys.9]
say = "{{ticket}}"
"#,
    )
    .unwrap();
    let turn = t.on_input("9", &vars("Printer on fire."), None, 10, 0, LISTEN, 0);
    assert!(!turn.ends_call && !turn.invalid && turn.decision.is_none());
    let json = serde_json::to_value(&turn.dialplan).unwrap();
    let texts: Vec<&str> = json["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["message"]["text"]
                .as_str()
                .or(v["type"].as_str())
                .unwrap()
        })
        .collect();
    // The wait is interruptible silence, so a key pressed in it is answered at once.
    assert_eq!(json["verbs"][2]["fileURL"], SILENCE_URL);
    assert_eq!(json["verbs"][2]["bargeIn"], true);
    assert_eq!(json["verbs"][2]["repeat"], 9);
    assert_eq!(
        texts,
        [
            "Printer on fire.",
            "Press 1 to accept. Press 9 to hear the ticket again.",
            "PLAY",
            "COLLECT"
        ]
    );
}

#[test]
fn intro_steps_can_play_wav_files_with_barge_in() {
    let t = template::parse(
        "chime",
        r#"
language = "de"
gender = "male"
[[intro]]
play = "https://cdn.example.com/chime.wav"
barge_in = true
[menu]
say = "Drücken Sie 1, um anzunehmen."
[keys.1]
outcome = "accepted"
"#,
    )
    .unwrap();
    let plan = serde_json::to_value(t.render_call(&Vars::new(), None, 10, 0, LISTEN)).unwrap();
    assert_eq!(
        plan["verbs"][0],
        serde_json::json!({"type": "PLAY", "fileURL": "https://cdn.example.com/chime.wav", "bargeIn": true})
    );
    assert_eq!(plan["verbs"][1]["message"]["language"], "de-DE");
}

#[test]
fn template_errors_read_like_compiler_errors() {
    let err = template::parse("x", "language = \"en-US\"\nmenu = 3\n").unwrap_err();
    assert_eq!(err.path, None);
    assert_eq!(err.line, Some(2));
    assert!(err.to_string().starts_with("line 2: "), "{err}");
    let err = template::parse("bad name!", "").unwrap_err();
    assert!(
        err.to_string().contains("not a usable template name"),
        "{err}"
    );
}

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

/// Everything a callee can hear from a template in `language`: the call, an
/// accept, a reject, an invalid key, the third invalid key, both goodbyes.
fn whole_call(t: &Template, language: Option<Language>) -> Vec<(String, Language)> {
    let v = vars("Server room 2 is flooding.");
    let mut plans = vec![t.render_call(&v, language, 10, 1, LISTEN)];
    for (keys, invalid_so_far) in [("1", 0), ("2", 0), ("7", 0), ("7", 2)] {
        plans.push(
            t.on_input(keys, &v, language, 10, 1, LISTEN, invalid_so_far)
                .dialplan,
        );
    }
    plans.push(t.closing(Closing::Cancelled, &v, language));
    plans.push(t.closing(Closing::Closed, &v, language));
    plans.iter().flat_map(says).collect()
}

#[test]
fn the_seed_template_ships_in_five_languages_and_no_english_leaks_into_the_others() {
    let t = shipped("ticket-escalation");
    let codes: Vec<&str> = t.languages().into_iter().map(Language::code).collect();
    assert_eq!(codes, ["en-US", "de-DE", "fr-FR", "es-ES", "el-GR"]);
    let english: Vec<String> = whole_call(&t, None)
        .into_iter()
        .map(|(text, _)| text)
        .filter(|text| !text.starts_with("Server room"))
        .collect();
    assert_eq!(english.len(), 10, "{english:?}");
    for language in [
        Language::DeDe,
        Language::FrFr,
        Language::EsEs,
        Language::ElGr,
    ] {
        let said = whole_call(&t, Some(language));
        assert_eq!(said.len(), 11, "{said:?}");
        for (text, spoken_in) in &said {
            assert_eq!(*spoken_in, language, "{text:?}");
            assert!(
                !english.contains(text),
                "{}: English {text:?} leaks",
                language.code()
            );
        }
        // The template's own messages are the language's phrases.
        let p = Phrases::of(language);
        let texts: Vec<&str> = said.iter().map(|(t, _)| t.as_str()).collect();
        for phrase in [&p.invalid, &p.too_many_invalid, &p.cancelled, &p.closed] {
            assert!(texts.contains(&phrase.as_str()), "{phrase:?} in {texts:?}");
        }
    }
}

#[test]
fn a_callee_whose_language_has_no_translation_hears_the_template_in_its_own_voice() {
    let t = shipped("ticket-escalation");
    // Italian: no translation; English text is never read by an Italian voice.
    for (_, spoken_in) in whole_call(&t, Some(Language::ItIt)) {
        assert_eq!(spoken_in, Language::EnUs);
    }
    // British English: the English words, in the British voice.
    let british = whole_call(&t, Some(Language::EnGb));
    assert_eq!(
        british.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(),
        whole_call(&t, None)
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>()
    );
    assert!(british.iter().all(|(_, l)| *l == Language::EnGb));
    // Latin-American Spanish: the Spanish words, in the es-LA voice.
    let latin = whole_call(&t, Some(Language::EsLa));
    assert!(latin.iter().all(|(_, l)| *l == Language::EsLa));
    assert!(latin.iter().any(|(t, _)| t.contains("Pulse 1")));
}

#[test]
fn a_translation_must_agree_with_its_template_and_be_named_for_its_language() {
    let dir = tempfile::tempdir().unwrap();
    let flow = "[menu]\nsay = \"{{ticket}}\"\n[keys.1]\noutcome = \"accepted\"\n";
    fs::write(
        dir.path().join("flow.toml"),
        format!("language = \"en-US\"\n{flow}"),
    )
    .unwrap();
    fs::write(
        dir.path().join("flow.fr-FR.toml"),
        "language = \"fr-FR\"\n[menu]\nsay = \"{{ticket}}\"\n[keys.1]\noutcome = \"rejected\"\n[keys.2]\noutcome = \"accepted\"\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("flow.de-DE.toml"),
        format!("language = \"el-GR\"\n{flow}"),
    )
    .unwrap();
    fs::write(
        dir.path().join("orphan.sv-SE.toml"),
        format!("language = \"sv-SE\"\n{flow}"),
    )
    .unwrap();
    fs::write(
        dir.path().join("flow.xx-YY.toml"),
        format!("language = \"en-US\"\n{flow}"),
    )
    .unwrap();
    let errors: Vec<String> = template::load_dir(dir.path())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let all = errors.join("\n");
    for expected in [
        "flow.fr-FR.toml: keys differ between languages: 1 in en-US, 1, 2 in fr-FR",
        "flow.de-DE.toml: the file name says de-DE but language is el-GR",
        "orphan.sv-SE.toml: a translation of \"orphan\", which has no orphan.toml",
        "flow.xx-YY.toml: a translation is named <template>.<language>.toml",
    ] {
        assert!(all.contains(expected), "{expected:?} not in:\n{all}");
    }
    // The same keys deciding otherwise.
    fs::remove_file(dir.path().join("flow.de-DE.toml")).unwrap();
    fs::remove_file(dir.path().join("orphan.sv-SE.toml")).unwrap();
    fs::remove_file(dir.path().join("flow.xx-YY.toml")).unwrap();
    fs::write(
        dir.path().join("flow.toml"),
        format!("language = \"en-US\"\n{flow}[keys.2]\noutcome = \"rejected\"\n"),
    )
    .unwrap();
    fs::write(
        dir.path().join("flow.fr-FR.toml"),
        "language = \"fr-FR\"\n[menu]\nsay = \"{{ticket}}\"\n[keys.1]\noutcome = \"rejected\"\n[keys.2]\noutcome = \"accepted\"\n",
    )
    .unwrap();
    let all: Vec<String> = template::load_dir(dir.path())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        all[0].contains("key 1 decides Some(Accepted) in en-US but Some(Rejected) in fr-FR"),
        "{all:?}"
    );
}

/// A one-key template with `extra` top-level settings.
fn with_helpers(extra: &str) -> Result<Template, template::TemplateError> {
    template::parse(
        "helpers",
        &format!(
            "language = \"en-US\"\n{extra}\n[[intro]]\nsay = \"{{{{ticket}}}}\"\n[menu]\nsay = \"Press 1 to accept. Press 2 to reject.\"\n[keys.1]\noutcome = \"accepted\"\nsay = \"Goodbye.\"\n[keys.2]\noutcome = \"rejected\"\n"
        ),
    )
}

fn texts(plan: &Dialplan) -> Vec<String> {
    says(plan).into_iter().map(|(t, _)| t).collect()
}

#[test]
fn star_repeats_and_zero_helps_by_default_and_neither_is_an_invalid_key() {
    let t = with_helpers("").unwrap();
    let v = vars("Fire in hall 3.");
    let star = t.on_input("*", &v, None, 10, 1, LISTEN, 2);
    assert!(!star.invalid && !star.ends_call && star.decision.is_none());
    assert_eq!(
        texts(&star.dialplan)[..2],
        ["Fire in hall 3.", "Press 1 to accept. Press 2 to reject."]
    );
    let zero = t.on_input("0", &v, None, 10, 1, LISTEN, 2);
    assert!(!zero.invalid && !zero.ends_call);
    assert_eq!(
        texts(&zero.dialplan),
        [
            "Here are your options again.",
            "Press 1 to accept.",
            "Press 2 to reject."
        ]
    );
    // Cumulative keys read as the last one pressed: "1*" is the repeat.
    assert_eq!(t.on_input("1*", &v, None, 10, 1, LISTEN, 0).decision, None);
    // Any other key is still invalid.
    assert!(t.on_input("7", &v, None, 10, 1, LISTEN, 0).invalid);
    // The confirmation comes before the key's own words.
    let accept = t.on_input("1", &v, None, 10, 1, LISTEN, 0);
    assert_eq!(
        texts(&accept.dialplan),
        ["You accepted Ticket 4711. Goodbye."]
    );
    let reject = t.on_input("2", &v, None, 10, 1, LISTEN, 0);
    assert_eq!(texts(&reject.dialplan), ["You declined Ticket 4711."]);
}

#[test]
fn the_helpers_are_configurable_per_template() {
    let v = vars("Fire.");
    let off = with_helpers("confirm = false\nrepeat_key = \"\"\nhelp_key = \"9\"").unwrap();
    assert_eq!(
        texts(&off.on_input("1", &v, None, 10, 1, LISTEN, 0).dialplan),
        ["Goodbye."]
    );
    assert!(off.on_input("*", &v, None, 10, 1, LISTEN, 0).invalid);
    assert!(off.on_input("0", &v, None, 10, 1, LISTEN, 0).invalid);
    assert!(!off.on_input("9", &v, None, 10, 1, LISTEN, 0).invalid);
    // Announced once, after the first options, only when asked.
    let hint = "Press star to hear this again, or 0 for help.";
    let quiet = with_helpers("").unwrap();
    assert!(!texts(&quiet.render_call(&v, None, 10, 1, LISTEN)).contains(&hint.to_owned()));
    let told = with_helpers("announce_keys = true").unwrap();
    let said = texts(&told.render_call(&v, None, 10, 1, LISTEN));
    assert_eq!(said.iter().filter(|t| *t == hint).count(), 1, "{said:?}");
    assert_eq!(said[2], hint, "{said:?}");
    // A template's own `*` key keeps its meaning.
    let own = template::parse(
        "own",
        "language = \"en-US\"\n[menu]\nsay = \"Press 1.\"\n[keys.1]\noutcome = \"accepted\"\n[keys.\"*\"]\nsay = \"Star.\"\n",
    )
    .unwrap();
    assert_eq!(
        texts(&own.on_input("*", &v, None, 10, 1, LISTEN, 0).dialplan)[0],
        "Star."
    );
    for (bad, message) in [
        ("repeat_key = \"#\"", "repeat_key: \"#\" is not a phone key"),
        ("help_key = \"10\"", "help_key: \"10\" is not a phone key"),
        ("help_key = \"*\"", "help_key: * is also the repeat_key"),
        ("confirm = \"yes\"", "invalid type"),
    ] {
        let e = with_helpers(bad).unwrap_err().to_string();
        assert!(e.contains(message), "{bad}: {e}");
    }
}
