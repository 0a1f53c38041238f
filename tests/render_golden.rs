//! Golden snapshots of what the gateway sends Routee, so a reader sees exactly
//! which verbs each Voiceflow trace, key press and template step produces.
//!
//! Each `tests/golden/<kind>/<case>.json` is an input; next to it,
//! `<case>.expected.json` is the output it must produce (`tests/golden/README.md`
//! describes both). A missing or stale expected file fails the test;
//! `UPDATE_GOLDEN=1 cargo test --test render_golden` rewrites them all, to be
//! reviewed in the diff before committing.

// Helpers outside `#[test]` functions panic on bad fixtures too: that is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ivr_gateway::dialplan::render::Listen;
use ivr_gateway::dialplan::template::{self, Closing, Vars};
use ivr_gateway::dialplan::{
    ActionNames, CallerInput, Phrases, TurnContext, Voice, closing_dialplan, fallback_dialplan,
    holding_dialplan, render_turn, request_for_input,
};
use ivr_gateway::routee::{Dialplan, Gender, Language};
use ivr_gateway::voiceflow::{Request, Trace};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The silence clip's URL in every case (content-addressed in real use).
const SILENCE_URL: &str = "https://gw.example.com/audio/0123456789abcdef.wav";
const EXPECTED_SUFFIX: &str = ".expected.json";

fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

#[derive(Serialize)]
struct DialplanOnly {
    dialplan: Dialplan,
}

/// Runs every case of `tests/golden/<kind>/` through `produce` and compares.
/// `produce` answers JSON text so expected files keep the verbs' field order
/// (`type` first), which a `Value` would sort away; the comparison is on values.
fn check_golden(kind: &str, produce: impl Fn(&Value) -> String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(kind);
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    cases.sort();
    let (expected_files, inputs): (Vec<PathBuf>, Vec<PathBuf>) = cases
        .into_iter()
        .partition(|p| p.to_string_lossy().ends_with(EXPECTED_SUFFIX));
    assert!(!inputs.is_empty(), "no golden cases in {}", dir.display());

    let mut failures = Vec::new();
    for input_path in &inputs {
        let name = input_path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let input: Value = serde_json::from_str(&fs::read_to_string(input_path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", input_path.display()));
        let actual_text = produce(&input);
        let actual: Value = serde_json::from_str(&actual_text).unwrap();
        let expected_path = dir.join(format!("{name}{EXPECTED_SUFFIX}"));
        if update {
            fs::write(&expected_path, actual_text + "\n").unwrap();
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Err(_) => failures.push(format!(
                "{kind}/{name}: no {name}{EXPECTED_SUFFIX} (run with UPDATE_GOLDEN=1 and review it)"
            )),
            Ok(text) => {
                let expected: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
                if expected != actual {
                    failures.push(format!(
                        "{kind}/{name} differs.\n--- expected\n{}\n--- actual\n{}",
                        serde_json::to_string_pretty(&expected).unwrap(),
                        serde_json::to_string_pretty(&actual).unwrap()
                    ));
                }
            }
        }
    }
    // An expected file whose input is gone would silently stop being checked.
    for expected in &expected_files {
        let name = expected.file_name().unwrap().to_string_lossy();
        let case = name.trim_end_matches(EXPECTED_SUFFIX);
        if !inputs.iter().any(|i| i.file_stem().unwrap() == case) {
            failures.push(format!("{kind}/{name}: no {case}.json input for it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The turn context of a render case; every field has the policy default.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Context {
    language: Language,
    gender: Option<Gender>,
    event_url: String,
    input_timeout_s: u32,
    reprompts: u32,
    caller_id: String,
    transfer_max_s: u32,
    actions: ActionNames,
    phrases: Phrases,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            language: Language::EnUs,
            gender: Some(Gender::Female),
            event_url: "https://gw.example.com/routee/collect?t=1&s=SIGNATURE".into(),
            input_timeout_s: 10,
            reprompts: 1,
            caller_id: "+306900000000".into(),
            transfer_max_s: 300,
            actions: ActionNames::default(),
            phrases: Phrases::default(),
        }
    }
}

impl Context {
    fn of(case: &Value) -> Context {
        case.get("context")
            .map(|c| serde_json::from_value(c.clone()).expect("bad context"))
            .unwrap_or_default()
    }

    fn turn(&self) -> TurnContext<'_> {
        TurnContext {
            voice: Voice {
                language: self.language,
                gender: self.gender,
            },
            event_url: &self.event_url,
            silence_url: SILENCE_URL,
            input_timeout_s: self.input_timeout_s,
            reprompts: self.reprompts,
            actions: &self.actions,
            caller_id: &self.caller_id,
            transfer_max_s: self.transfer_max_s,
            phrases: &self.phrases,
        }
    }
}

/// `traces` as Voiceflow answers them: a bare array or the `verbose` object.
fn traces(case: &Value) -> Vec<Trace> {
    Trace::parse_response(case.get("traces").expect("a case needs traces"))
}

/// A render case without traces: one of the dialplans for when there is no turn.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum NoTurn {
    Holding,
    Fallback { menu_prompt: String },
    Closing { text: String },
}

#[test]
fn every_voiceflow_trace_renders_as_its_golden_dialplan() {
    check_golden("render", |case| {
        let ctx = Context::of(case);
        let Some(no_turn) = case.get("no_turn") else {
            return pretty(&render_turn(&traces(case), &ctx.turn()));
        };
        let turn = ctx.turn();
        let dialplan = match serde_json::from_value(no_turn.clone()).expect("bad no_turn") {
            NoTurn::Holding => holding_dialplan(&turn),
            NoTurn::Fallback { menu_prompt } => fallback_dialplan(&turn, &menu_prompt),
            NoTurn::Closing { text } => closing_dialplan(&text, turn.voice),
        };
        pretty(&DialplanOnly { dialplan })
    });
}

#[test]
fn every_key_press_and_silence_maps_to_its_golden_request() {
    check_golden("input", |case| {
        // The menu and the no-reply expectation come from rendering the turn the
        // callee is answering, as the engine does.
        let ctx = Context::of(case);
        let rendered = render_turn(&traces(case), &ctx.turn());
        let keypad: BTreeMap<String, String> = case
            .get("keypad")
            .map(|k| serde_json::from_value(k.clone()).unwrap())
            .unwrap_or_default();
        let input = match &case["input"] {
            Value::String(s) if s == "silence" => CallerInput::Silence,
            other => CallerInput::Digits(other["digits"].as_str().unwrap().to_owned()),
        };
        let request = request_for_input(
            &input,
            &rendered.menu,
            &keypad,
            rendered.no_reply_timeout.is_some(),
        );
        pretty(&json!({ "request": request.as_ref().map(Request::to_json) }))
    });
}

/// A template case: which shipped template, with what, doing what.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateCase {
    #[serde(rename = "about")]
    _about: String,
    template: String,
    vars: Vars,
    language: Option<Language>,
    #[serde(default = "ten")]
    input_timeout_s: u32,
    #[serde(default = "one")]
    reprompts: u32,
    #[serde(default = "event_url")]
    event_url: String,
    call: TemplateCall,
}

fn ten() -> u32 {
    10
}
fn one() -> u32 {
    1
}
fn event_url() -> String {
    "https://gw.example.com/routee/collect?t=1&s=SIGNATURE".into()
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum TemplateCall {
    RenderCall,
    OnInput { digits: String, invalid_so_far: u32 },
    Closing(Closing),
}

#[test]
fn the_shipped_templates_render_their_golden_dialplans() {
    let templates = template::embedded();
    check_golden("templates", |case| {
        let case: TemplateCase = serde_json::from_value(case.clone()).expect("bad template case");
        let t = templates
            .get(&case.template)
            .unwrap_or_else(|| panic!("no template {}", case.template));
        match case.call {
            TemplateCall::RenderCall => pretty(&DialplanOnly {
                dialplan: t.render_call(
                    &case.vars,
                    case.language,
                    case.input_timeout_s,
                    case.reprompts,
                    Listen::new(&case.event_url, SILENCE_URL),
                ),
            }),
            TemplateCall::OnInput {
                digits,
                invalid_so_far,
            } => pretty(&t.on_input(
                &digits,
                &case.vars,
                case.language,
                case.input_timeout_s,
                case.reprompts,
                Listen::new(&case.event_url, SILENCE_URL),
                invalid_so_far,
            )),
            TemplateCall::Closing(which) => pretty(&DialplanOnly {
                dialplan: t.closing(which, &case.vars, case.language),
            }),
        }
    });
}
