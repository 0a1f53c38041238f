//! The fuzz targets: one function per parser of untrusted input, taking raw
//! bytes, panicking when the parser panics or breaks a property of its output.
//!
//! Shared by the always-run property tests (`tests/fuzz_parsers/main.rs`, with
//! proptest) and the optional coverage-guided harness (`fuzz/`, with cargo
//! fuzz), which includes this file by path. Both feed the same seed corpus,
//! `fuzz/corpus/<target>/`. Besides "no panic", each target states what the
//! parser's output must satisfy, so a fuzzer finds wrong answers too:
//!
//! - bounded output: answers (errors, traces, verbs) grow at most linearly with
//!   the input, and error lists reach the client capped (`MAX_DETAILS`);
//! - the text rules: every `SAY` is at most 1000 characters of plain text (no
//!   `<`, `>` or control characters), pauses are 1..=60 s, a `PLAY` is an http(s)
//!   `.wav`, the one `COLLECT` is last and posts to the URL the gateway chose,
//!   a `DIAL` calls a valid E.164 number;
//! - what was accepted is what the domain expects (contacts within
//!   `MAX_CONTACTS`, unique valid numbers, names within bounds).
//!
//! Time is bounded by the callers (proptest measures each input; libFuzzer has
//! `-timeout`), memory by `-rss_limit_mb` and by the linear bounds above.

use std::collections::{BTreeMap, HashSet};

use ivr_gateway::dialplan::render::{
    ActionNames, Listen, Phrases, TurnContext, Voice, render_turn,
};
use ivr_gateway::dialplan::template::{self, Closing, Templates, Vars};
use ivr_gateway::domain::{E164, FieldError, Policy};
use ivr_gateway::http::callout_input::{
    self, InputRules, MAX_NAME_CHARS, MAX_VARIABLES, RawContact,
};
use ivr_gateway::http::error::{ApiError, MAX_DETAILS};
use ivr_gateway::http::webhooks::{parse_collect, parse_status};
use ivr_gateway::routee::{Dialplan, Language, MAX_SAY_CHARS, Verb};
use ivr_gateway::voiceflow::Trace;
use serde_json::{Value, json};

/// The call-list limit the targets run with (the default `MAX_CONTACTS`).
pub const MAX_CONTACTS: usize = 100;
/// The eventUrl the renderers are given; a verb must never post anywhere else.
const EVENT_URL: &str = "https://gw.example.com/routee/collect/c/k/1?sig=s";
const NEXT_EVENT_URL: &str = "https://gw.example.com/routee/collect/c/k/2?sig=t";
const SILENCE_URL: &str = "https://gw.example.com/audio/0123456789abcdef.wav";

/// A fuzz target: panics on a bug.
pub type Check = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: [(&str, Check); 7] = [
    ("callout_json", callout_json),
    ("callout_csv", callout_csv),
    ("webhook_status", webhook_status),
    ("webhook_collect", webhook_collect),
    ("voiceflow_response", voiceflow_response),
    ("dialplan_template", dialplan_template),
    ("render_turn", render_turn_target),
];

fn templates() -> Templates {
    template::embedded()
}

/// The content type a webhook body arrives with, chosen by the first byte.
fn content_type(selector: u8) -> Option<&'static str> {
    match selector % 4 {
        0 => Some("application/json"),
        1 => Some("application/x-www-form-urlencoded"),
        2 => None,
        _ => Some("text/plain; charset=utf-8"),
    }
}

fn split_selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}

/// Problems as a client would get them: non-empty, named, and capped.
fn check_problems(errors: Vec<FieldError>, input_len: usize) {
    assert!(!errors.is_empty(), "refused without saying why");
    assert!(
        errors.len() <= input_len + 8,
        "{} problems for {input_len} bytes",
        errors.len()
    );
    for e in &errors {
        assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}");
    }
    let answer = ApiError::invalid(errors);
    assert!(answer.details.len() <= MAX_DETAILS + 1);
}

fn rules(templates: &Templates) -> InputRules<'_> {
    InputRules {
        templates,
        max_contacts: MAX_CONTACTS,
        allow_private_urls: false,
        default_policy: Policy::default(),
        destinations: &ANYWHERE,
    }
}

static ANYWHERE: ivr_gateway::domain::Destinations = ivr_gateway::domain::Destinations::anywhere();

fn check_draft(draft: &callout_input::Draft) {
    assert!(!draft.contacts.is_empty() && draft.contacts.len() <= MAX_CONTACTS);
    let name_ok = |n: &str| {
        !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS && !n.chars().any(char::is_control)
    };
    assert!(name_ok(&draft.name), "{:?}", draft.name);
    let mut seen = HashSet::new();
    for c in &draft.contacts {
        assert!(name_ok(&c.name), "{:?}", c.name);
        let again: E164 = c
            .phone
            .as_str()
            .parse()
            .expect("an accepted number parses again");
        assert_eq!(again, c.phone);
        assert!(seen.insert(c.phone.clone()), "duplicate {:?}", c.phone);
    }
    assert!(draft.variables.len() <= MAX_VARIABLES);
    assert!(draft.policy.violations().is_empty());
    if let Some(url) = &draft.notify_url {
        ivr_gateway::net::check_outbound_url(url, false).expect("an accepted notify_url passes");
    }
}

/// `POST /v1/callouts` with a JSON body.
pub fn callout_json(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let templates = templates();
    match callout_input::parse(&body, None, &rules(&templates)) {
        Ok(draft) => check_draft(&draft),
        Err(errors) => check_problems(errors, data.len()),
    }
}

/// `POST /v1/callouts` as a CSV upload: the file, then the callout it completes.
pub fn callout_csv(data: &[u8]) {
    let rows: Vec<RawContact> = match callout_input::parse_csv(data, MAX_CONTACTS) {
        Ok(rows) => rows,
        Err(errors) => return check_problems(errors, data.len()),
    };
    assert!(rows.len() <= MAX_CONTACTS);
    let templates = templates();
    let meta =
        json!({"name": "Ticket", "dialplan": "ticket-escalation", "variables": {"ticket": "x"}});
    match callout_input::parse(&meta, Some(rows), &rules(&templates)) {
        Ok(draft) => check_draft(&draft),
        Err(errors) => check_problems(errors, data.len()),
    }
}

/// The status webhook's body (first byte: the content type).
pub fn webhook_status(data: &[u8]) {
    let (selector, body) = split_selector(data);
    match parse_status(content_type(selector), body) {
        Ok(cb) => {
            let name = cb.status.name.as_str().to_owned();
            let _ = cb.status.name.is_final();
            // A form is decoded lossily: each invalid byte becomes a 3-byte U+FFFD.
            assert!(
                name.len() <= 3 * body.len(),
                "a status name longer than its body could make"
            );
            serde_json::to_value(&cb).expect("a parsed callback serializes");
        }
        Err(message) => assert!(!message.is_empty()),
    }
}

/// The collect webhook's body (first byte: the content type). Never refused.
pub fn webhook_collect(data: &[u8]) {
    let (selector, body) = split_selector(data);
    let event = parse_collect(content_type(selector), body);
    let tones = event.tones();
    let digits = tones.keys();
    assert!(digits.len() <= body.len());
    assert!(
        digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')),
        "{digits:?}"
    );
    assert!(!digits.contains('#'), "{digits:?}");
    assert_eq!(tones.groups().collect::<String>(), digits);
}

/// A Dialog Manager response body.
pub fn voiceflow_response(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let traces = Trace::parse_response(&body);
    assert!(
        traces.len() <= data.len(),
        "{} traces from {} bytes",
        traces.len(),
        data.len()
    );
    for t in &traces {
        let _ = t.kind();
    }
}

fn is_wav_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let path = lower.split(['?', '#']).next().unwrap_or("");
    (lower.starts_with("http://") || lower.starts_with("https://")) && path.ends_with(".wav")
}

/// What every dialplan the gateway sends must be, whatever it was made from.
/// `collect`: the eventUrl its COLLECT must post to, `None` when the call ends.
fn check_dialplan(plan: &Dialplan, collect: Option<&str>, input_len: usize) {
    assert!(!plan.verbs.is_empty(), "Routee refuses an empty dialplan");
    let size = serde_json::to_vec(plan).expect("serializes").len();
    assert!(
        size <= 8 * input_len + 16 * 1024,
        "a {size}-byte dialplan from {input_len} bytes"
    );
    let last = plan.verbs.len() - 1;
    let mut dials = 0;
    for (i, verb) in plan.verbs.iter().enumerate() {
        match verb {
            Verb::Say(s) => {
                let text = &s.message.text;
                assert!(!text.is_empty(), "an empty SAY");
                assert!(
                    text.chars().count() <= MAX_SAY_CHARS,
                    "a SAY of {} characters",
                    text.chars().count()
                );
                assert!(
                    !text.contains(['<', '>']) && !text.chars().any(char::is_control),
                    "markup or control characters in a SAY: {text:?}"
                );
            }
            Verb::Play(p) => assert!(is_wav_url(&p.file_url), "PLAY {:?}", p.file_url),
            Verb::Pause(p) => assert!((1..=60).contains(&p.duration), "PAUSE {}", p.duration),
            Verb::Collect(c) => {
                assert_eq!(i, last, "COLLECT must be the last verb");
                assert_eq!(
                    Some(c.event_url.as_str()),
                    collect,
                    "COLLECT posts elsewhere"
                );
            }
            Verb::Dial(d) => {
                dials += 1;
                assert_eq!(i, last, "DIAL must be the last verb");
                let ivr_gateway::routee::Destination::Phone(n) = &d.to else {
                    panic!("DIAL to {:?}", d.to);
                };
                n.parse::<E164>().expect("DIAL calls a valid number");
            }
        }
    }
    assert!(dials <= 1, "{dials} DIALs");
    if collect.is_some() {
        assert!(
            matches!(plan.verbs[last], Verb::Collect(_)),
            "asks for input without a COLLECT"
        );
    } else {
        assert!(!plan.verbs.iter().any(|v| matches!(v, Verb::Collect(_))));
    }
}

/// A dialplan template file, then every dialplan it renders.
pub fn dialplan_template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let t = match template::parse("fuzz", &text) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.message.is_empty());
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= text.lines().count() + 1, "line {line}");
            }
            return;
        }
    };
    // Each placeholder holds text that tries to be more than text.
    let hostile = r#"{{ticket}} <audio src="https://evil.example/x.wav"/> "}]},{"type":"PLAY"#;
    let vars: Vars = t
        .placeholders()
        .into_iter()
        .map(|name| (name, hostile.to_owned()))
        .collect::<BTreeMap<_, _>>();
    // A five-byte `{{x}}` says the whole hostile value: bound by that expansion.
    let input_len = (data.len() + 64) * hostile.len() / 4;
    check_dialplan(
        &t.render_call(&vars, None, 10, 1, Listen::new(EVENT_URL, SILENCE_URL)),
        Some(EVENT_URL),
        input_len,
    );
    check_dialplan(
        &t.render_call(
            &vars,
            Some(Language::ElGr),
            60,
            5,
            Listen::new(EVENT_URL, SILENCE_URL),
        ),
        Some(EVENT_URL),
        6 * input_len,
    );
    for keys in ["1", "2", "9", "0", "*", "#", "12#", "", "x"] {
        for invalid_so_far in [0, 2] {
            let turn = t.on_input(
                keys,
                &vars,
                None,
                10,
                1,
                Listen::new(NEXT_EVENT_URL, SILENCE_URL),
                invalid_so_far,
            );
            let collect = (!turn.ends_call).then_some(NEXT_EVENT_URL);
            check_dialplan(&turn.dialplan, collect, input_len);
            if turn.decision.is_some() {
                assert!(turn.ends_call, "a decision ends the call");
            }
        }
    }
    for which in [Closing::Cancelled, Closing::Closed] {
        check_dialplan(&t.closing(which, &vars, None), None, input_len);
    }
}

/// A Dialog Manager response body rendered as one turn of a call.
pub fn render_turn_target(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let traces = Trace::parse_response(&body);
    let actions = ActionNames::default();
    let phrases = Phrases::default();
    let ctx = TurnContext {
        voice: Voice {
            language: Language::EnUs,
            gender: None,
        },
        event_url: EVENT_URL,
        silence_url: SILENCE_URL,
        input_timeout_s: 10,
        reprompts: 1,
        actions: &actions,
        caller_id: "+306900000000",
        transfer_max_s: 300,
        phrases: &phrases,
    };
    let turn = render_turn(&traces, &ctx);
    let collect = (!turn.ends_call).then_some(EVENT_URL);
    check_dialplan(&turn.dialplan, collect, data.len());
    let mut digits = HashSet::new();
    for item in &turn.menu {
        assert!(
            digits.insert(item.digit.clone()),
            "key {} offered twice",
            item.digit
        );
    }
    if turn.ends_call {
        assert!(turn.menu.is_empty() && turn.no_reply_timeout.is_none());
    }
    if let Some(to) = &turn.transfer_to {
        to.parse::<E164>()
            .expect("a transfer goes to a valid number");
    }
}
