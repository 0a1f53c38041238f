//! The parsers of untrusted input under generated input: the always-run half of
//! the fuzzing (the coverage-guided half is `fuzz/`, optional). Each target of
//! [`checks`] gets, in this order:
//!
//! 1. its seed corpus, `fuzz/corpus/<target>/` (realistic and nasty inputs,
//!    shared with cargo fuzz);
//! 2. mutations of those seeds (bytes flipped, inserted, deleted, duplicated,
//!    and tokens spliced in that parsers care about);
//! 3. structured inputs: JSON, CSV, forms and TOML built from each format's
//!    own vocabulary, so generation reaches past the first syntax error.
//!
//! Every input must be handled within [`TIME_LIMIT`]; the checks bound memory
//! by bounding what the parsers produce. `FUZZ_CASES` sets the number of
//! generated cases per strategy (default 256; CI runs the default).

// Test support code may panic on setup failures: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checks;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

/// The most one input may take (debug build, a loaded 2-core machine).
const TIME_LIMIT: Duration = Duration::from_secs(5);
/// The largest generated input: what libFuzzer's `-max_len` is set to as well.
const MAX_LEN: usize = 64 * 1024;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(seeds.len() >= 5, "fuzz/corpus/{target} needs its seeds");
    seeds
}

fn check_of(target: &str) -> checks::Check {
    checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap()
}

/// Runs one input, timed.
fn run(target: &str, check: checks::Check, input: &[u8]) {
    let started = Instant::now();
    check(input);
    let took = started.elapsed();
    assert!(
        took < TIME_LIMIT,
        "{target}: {} bytes took {took:?}: {:?}",
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(200)])
    );
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Seeds, then mutated seeds, then `structured`, all through the target.
fn fuzz(target: &'static str, structured: &BoxedStrategy<Vec<u8>>) {
    let check = check_of(target);
    let seeds = seeds(target);
    for seed in &seeds {
        run(target, check, seed);
    }
    runner()
        .run(&mutated(seeds), |input| {
            run(target, check, &input);
            Ok(())
        })
        .unwrap();
    runner()
        .run(structured, |input| {
            run(target, check, &input);
            Ok(())
        })
        .unwrap();
}

// ----- mutation ---------------------------------------------------------------

/// Byte sequences parsers treat specially.
const TOKENS: [&[u8]; 24] = [
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff",
    b"\xef\xbb\xbf",
    b"{{",
    b"}}",
    b"<speak>",
    b"&amp;",
    b"&#x110000;",
    b"+",
    b"#",
    b"%",
    b"=",
    b"\"\"\"",
    b"null",
];

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Token(usize, usize),
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for edit in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *edit {
            Edit::Flip(i, bit) if !out.is_empty() => {
                let i = i % out.len();
                out[i] ^= 1 << (bit % 8);
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, b) => {
                let i = at(i, out.len());
                out.insert(i, b);
            }
            Edit::Delete(i, n) => {
                let i = at(i, out.len());
                let end = (i + n % 64).min(out.len());
                out.drain(i..end);
            }
            Edit::Duplicate(i, n) => {
                let i = at(i, out.len());
                let end = (i + n % 256).min(out.len());
                let piece = out[i..end].to_vec();
                for _ in 0..(n % 8) {
                    out.splice(end..end, piece.iter().copied());
                }
            }
            Edit::Token(i, t) => {
                let i = at(i, out.len());
                let token = TOKENS[t % TOKENS.len()];
                out.splice(i..i, token.iter().copied());
            }
        }
        out.truncate(MAX_LEN);
    }
    out
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, t)| Edit::Token(i, t)),
    ]
}

fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(edit(), 1..8),
    )
        .prop_map(|(seed, edits)| apply(&seed, &edits))
}

// ----- structured generation ----------------------------------------------------

/// Strings that mean something to some parser, and arbitrary ones.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "+306900000001", "+30 690 000 0002", "306900000001", "+1-800-FLOWERS", "+1 900 555 0123",
            "+881 6 1234 5678", "+", "", "   ", "Alice", "el-GR", "en", "xx-YY", "accepted", "rejected",
            "ticket-escalation", "sandbox", "{{ticket}}", "{{ Ticket", "}}", "{{contact_name}}",
            "<speak>Hi<break time=\"1s\"/></speak>", "&lt;audio&gt;", "Completed", "No Answer",
            "https://cdn.example.com/a.wav", "https://cdn.example.com/a.mp3", "http://127.0.0.1/x",
            "DTMF 1", "DTMF *", "1", "12#", "path-accept", "\u{0}", "\u{feff}", "\u{200b}", "３",
        ])
        .prop_map(str::to_owned),
        2 => "\\PC{0,40}",
        1 => ".{0,20}",
        1 => "[a-z]{1,5}".prop_map(|s| s.repeat(300)),
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ]
    .boxed()
}

/// JSON values whose object keys come mostly from `keys`.
fn json_value(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let key = prop_oneof![
        4 => proptest::sample::select(keys).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,8}",
    ];
    scalar()
        .prop_recursive(5, 96, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn contact() -> BoxedStrategy<Value> {
    (
        text(),
        text(),
        proptest::option::of(text()),
        proptest::option::of(scalar()),
    )
        .prop_map(|(name, phone, language, extra)| {
            let mut c = json!({"name": name, "phone": phone});
            if let Some(l) = language {
                c["language"] = json!(l);
            }
            if let Some(x) = extra {
                c["email"] = x;
            }
            c
        })
        .boxed()
}

/// Mostly-valid callouts: every field either sensible, absent, or anything.
fn callout() -> BoxedStrategy<Vec<u8>> {
    const KEYS: &[&str] = &[
        "name",
        "dialplan",
        "assistant",
        "variables",
        "contacts",
        "policy",
        "notify_url",
        "ticket",
        "phone",
        "attempts_per_contact",
        "retry_delay_s",
        "input_timeout_s",
        "reprompts",
    ];
    let field = |good: BoxedStrategy<Value>| prop_oneof![4 => good.prop_map(Some), 1 => Just(None), 1 => json_value(KEYS).prop_map(Some)];
    (
        field(text().prop_map(Value::String).boxed()),
        field(Just(json!("ticket-escalation")).boxed()),
        field(Just(Value::Null).boxed()),
        field(
            proptest::collection::btree_map("[a-z_]{1,8}", scalar(), 0..4)
                .prop_map(|m| {
                    let mut m: Map<String, Value> = m.into_iter().collect();
                    m.insert("ticket".into(), json!("Server room 2 is flooding"));
                    Value::Object(m)
                })
                .boxed(),
        ),
        field(
            proptest::collection::vec(contact(), 0..120)
                .prop_map(Value::Array)
                .boxed(),
        ),
        field(
            proptest::collection::btree_map(
                proptest::sample::select(vec![
                    "attempts_per_contact",
                    "retry_delay_s",
                    "input_timeout_s",
                    "reprompts",
                    "ring_timeout_s",
                    "max_call_s",
                ]),
                prop_oneof![(0u64..100_000).prop_map(|n| json!(n)), scalar()],
                0..6,
            )
            .prop_map(|m| json!(m))
            .boxed(),
        ),
        field(text().prop_map(Value::String).boxed()),
    )
        .prop_map(
            |(name, dialplan, assistant, variables, contacts, policy, notify)| {
                let mut body = Map::new();
                for (k, v) in [
                    ("name", name),
                    ("dialplan", dialplan),
                    ("assistant", assistant),
                    ("variables", variables),
                    ("contacts", contacts),
                    ("policy", policy),
                    ("notify_url", notify),
                ] {
                    if let Some(v) = v {
                        body.insert(k.into(), v);
                    }
                }
                to_bytes(&Value::Object(body))
            },
        )
        .boxed()
}

fn csv_field() -> BoxedStrategy<String> {
    prop_oneof![
        3 => text(),
        1 => text().prop_map(|t| format!("\"{}\"", t.replace('"', "\"\""))),
        1 => text().prop_map(|t| format!("\"{t}")),
    ]
    .boxed()
}

/// CSV files: a header from the column vocabulary, rows of any width.
fn csv() -> BoxedStrategy<Vec<u8>> {
    let header = proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(vec!["name", "phone", "language", "Name", "PHONE", "email", ""])
                .prop_map(str::to_owned),
            1 => csv_field(),
        ],
        0..5,
    );
    let row = proptest::collection::vec(csv_field(), 0..5);
    (
        any::<bool>(),
        header,
        proptest::collection::vec(row, 0..130),
        proptest::sample::select(vec!["\n", "\r\n", "\r"]),
    )
        .prop_map(|(bom, header, rows, eol)| {
            let mut out = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            out.push_str(&header.join(","));
            for r in rows {
                out.push_str(eol);
                out.push_str(&r.join(","));
            }
            out.into_bytes()
        })
        .boxed()
}

fn with_selector(bodies: BoxedStrategy<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    (any::<u8>(), bodies)
        .prop_map(|(selector, body)| {
            let mut out = vec![selector];
            out.extend(body);
            out
        })
        .boxed()
}

/// Webhook bodies: JSON or forms over the callback vocabulary.
fn webhook_body() -> BoxedStrategy<Vec<u8>> {
    const KEYS: &[&str] = &[
        "messageId",
        "conversationTrackingId",
        "to",
        "from",
        "status",
        "name",
        "updatedDate",
        "duration",
        "price",
        "direction",
        "collectedTones",
        "digits",
    ];
    let form_key = proptest::sample::select(vec![
        "status",
        "status.name",
        "status[name]",
        "statusName",
        "status.updatedDate",
        "updatedDate",
        "collectedTones",
        "digits",
        "messageId",
        "duration",
    ]);
    prop_oneof![
        json_value(KEYS).prop_map(|v| to_bytes(&v)),
        proptest::collection::vec((form_key, text()), 0..6)
            .prop_map(|pairs| { serde_urlencoded::to_string(pairs).unwrap().into_bytes() }),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

/// Dialog Manager traces of every type, with payloads over the trace vocabulary.
fn traces() -> BoxedStrategy<Vec<u8>> {
    const KEYS: &[&str] = &[
        "message",
        "type",
        "src",
        "voice",
        "buttons",
        "choices",
        "name",
        "request",
        "payload",
        "label",
        "intent",
        "timeout",
        "path",
        "image",
        "title",
        "description",
        "text",
        "cards",
        "number",
        "phone",
        "to",
        "data",
    ];
    let kind = proptest::sample::select(vec![
        "speak",
        "text",
        "choice",
        "cardV2",
        "card",
        "carousel",
        "no-reply",
        "end",
        "path",
        "visual",
        "debug",
        "accept",
        "reject",
        "transfer",
        "forward-call",
        "CALL",
        "hangup",
        "end-call",
        "DTMF",
        "channel-action",
        "flow",
        "block",
        "log",
        "knowledgeBase",
        "",
        "Accept",
    ]);
    let path = text().prop_map(|t| json!({"event": {"type": t}}));
    let trace = (
        kind,
        json_value(KEYS),
        proptest::option::of(proptest::collection::vec(path, 0..4)),
        proptest::option::of(scalar()),
    )
        .prop_map(|(kind, payload, paths, default_path)| {
            let mut t = json!({"type": kind, "payload": payload});
            if let Some(p) = paths {
                t["paths"] = json!(p);
            }
            if let Some(d) = default_path {
                t["defaultPath"] = d;
            }
            t
        });
    (any::<bool>(), proptest::collection::vec(trace, 0..12))
        .prop_map(|(verbose, traces)| {
            let body = if verbose {
                json!({"trace": traces})
            } else {
                json!(traces)
            };
            to_bytes(&body)
        })
        .boxed()
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Template files built from the format's keys, valid more often than not.
fn template_file() -> BoxedStrategy<Vec<u8>> {
    let language = prop_oneof![
        3 => proptest::sample::select(vec!["en-US", "el-GR", "de", "es-MX"]).prop_map(str::to_owned),
        1 => text(),
    ];
    let step = prop_oneof![
        text().prop_map(|t| format!("say = {}", toml_string(&t))),
        (
            text(),
            proptest::sample::select(vec!["male", "female", "robot"])
        )
            .prop_map(|(t, g)| format!(
                "say = {}\ngender = \"{g}\"\nbarge_in = true",
                toml_string(&t)
            )),
        proptest::sample::select(vec![
            "https://cdn.example.com/chime.wav",
            "http://x/a.WAV?v=1",
            "ftp://x/a.wav",
            "https://x/{{t}}.wav",
        ])
        .prop_map(|u| format!("play = \"{u}\"")),
        (-5i64..100).prop_map(|p| format!("pause = {p}")),
        Just("pause = 3\nsay = \"both\"".to_owned()),
    ];
    let key = (
        proptest::sample::select(vec!["1", "2", "9", "0", "\"*\"", "\"#\"", "10", "a"]),
        proptest::option::of(proptest::sample::select(vec![
            "accepted", "rejected", "maybe",
        ])),
        proptest::option::of(text()),
    )
        .prop_map(|(k, outcome, say)| {
            let mut t = format!("[keys.{k}]\n");
            if let Some(o) = outcome {
                t.push_str(&format!("outcome = \"{o}\"\n"));
            }
            if let Some(s) = say {
                t.push_str(&format!("say = {}\n", toml_string(&s)));
            }
            t
        });
    (
        language,
        proptest::collection::vec(step, 0..5),
        text(),
        proptest::collection::vec(key, 0..5),
        proptest::option::of(text()),
    )
        .prop_map(|(language, steps, menu, keys, invalid)| {
            let mut t = format!("language = {}\n", toml_string(&language));
            for s in steps {
                t.push_str(&format!("\n[[intro]]\n{s}\n"));
            }
            t.push_str(&format!("\n[menu]\nsay = {}\n\n", toml_string(&menu)));
            t.push_str("[keys.1]\noutcome = \"accepted\"\nsay = \"Thanks {{contact_name}}.\"\n\n");
            for k in keys {
                t.push_str(&k);
                t.push('\n');
            }
            if let Some(i) = invalid {
                t.push_str(&format!("[messages]\ninvalid = {}\n", toml_string(&i)));
            }
            t.into_bytes()
        })
        .boxed()
}

#[test]
fn the_json_callout_parser_survives_hostile_bodies() {
    fuzz("callout_json", &callout());
}

#[test]
fn the_csv_call_list_parser_survives_hostile_files() {
    fuzz("callout_csv", &csv());
}

#[test]
fn the_status_webhook_parser_survives_hostile_bodies() {
    fuzz("webhook_status", &with_selector(webhook_body()));
}

#[test]
fn the_collect_webhook_parser_survives_hostile_bodies() {
    fuzz("webhook_collect", &with_selector(webhook_body()));
}

#[test]
fn the_voiceflow_response_parser_survives_hostile_bodies() {
    fuzz("voiceflow_response", &traces());
}

#[test]
fn the_template_parser_survives_hostile_files_and_renders_only_safe_dialplans() {
    fuzz("dialplan_template", &template_file());
}

#[test]
fn the_renderer_turns_any_traces_into_a_safe_dialplan() {
    fuzz("render_turn", &traces());
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (target, _) in checks::TARGETS {
        assert!(seeds(target).len() >= 5, "{target}");
    }
}
