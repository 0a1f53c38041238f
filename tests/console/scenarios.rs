//! The scenarios, each on its own: it signs in (or not) and sets the simulated
//! phones it needs, so any one of them can run alone.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::browser::{Browser, DESKTOP, Tools};
use crate::gateway::{ADMIN_KEY, DISPATCHER_KEY, Gateway, fake_voiceflow};

type Run = fn(Arc<Env>) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        pub const SCENARIOS: &[(&str, Run)] = &[$((stringify!($name), |env| Box::pin($name(env)))),*];
    };
}

scenarios!(
    a_dispatcher_signs_in_with_an_api_key_and_a_wrong_key_is_refused,
    a_csv_with_a_bad_row_shows_its_error_then_fixed_starts_and_goes_live_to_accepted,
    cancelling_a_callout_asks_first_then_shows_it_cancelled,
    an_admin_registers_an_assistant_against_voiceflow_rotates_its_key_and_tries_it,
    a_dispatcher_sees_no_admin_controls_and_the_gateway_refuses_it_with_403,
    the_open_sandbox_needs_no_key_and_its_button_runs_the_seed_scenario_to_carol,
    the_simulated_phones_are_edited_on_the_sandbox_page,
    the_new_callout_form_works_with_the_keyboard_alone,
    every_page_at_desktop_and_phone_width_passes_axe,
);

const LONG: Duration = Duration::from_secs(45);
const SHORT: Duration = Duration::from_secs(10);

/// Two gateways (with keys and a faked Voiceflow; the open sandbox), one browser.
pub struct Env {
    keyed: Gateway,
    open: Gateway,
    browser: Browser,
    _voiceflow: MockServer,
    files: tempfile::TempDir,
}

impl Env {
    pub async fn start(tools: &Tools) -> Result<Env> {
        let voiceflow = fake_voiceflow().await;
        let keyed = Gateway::start(
            &[
                (
                    "API_KEYS",
                    format!("admin:{ADMIN_KEY},dispatcher:{DISPATCHER_KEY}"),
                ),
                ("VOICEFLOW_API_URL", voiceflow.uri()),
                ("VOICEFLOW_RUNTIME_URL", voiceflow.uri()),
                (
                    "GATEWAY_SECRET",
                    "baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096".into(),
                ),
            ],
            Some(ADMIN_KEY),
        )?;
        let open = Gateway::start(&[("SIM_TIME_SCALE", "0.05".into())], None)?;
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .context("target dir")?
            .join("console-screenshots");
        let browser = Browser::start(tools, &shots).await?;
        println!("console screenshots: {}", shots.display());
        Ok(Env {
            keyed,
            open,
            browser,
            _voiceflow: voiceflow,
            files: tempfile::tempdir()?,
        })
    }

    pub async fn stop(self) {
        self.browser.stop().await;
    }
}

async fn set_phones(g: &Gateway, phones: Value) -> Result<()> {
    let (status, body) = g
        .api(Method::PUT, "/v1/sandbox/callees", Some(&phones))
        .await?;
    ensure!(status == 204, "setting the phones: {status} {body}");
    Ok(())
}

async fn callout_named(g: &Gateway, name: &str) -> Result<Option<Value>> {
    let (_, list) = g.api(Method::GET, "/v1/callouts?limit=200", None).await?;
    Ok(list["callouts"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned()))
}

// ----- sign-in and roles ----------------------------------------------------

async fn a_dispatcher_signs_in_with_an_api_key_and_a_wrong_key_is_refused(
    env: Arc<Env>,
) -> Result<()> {
    let (g, b) = (&env.keyed, &env.browser);
    b.use_key(&g.base, None).await?;
    b.goto(&g.url("/console")).await?;
    b.wait_until("location.pathname === '/console/sign-in'", SHORT)
        .await?;
    b.screenshot("sign-in-form", DESKTOP).await?;
    b.type_into("#api-key", "not-a-key-of-this-gateway").await?;
    b.click("#sign-in button[type=submit]").await?;
    b.wait_text("#api-key-error", "not valid", SHORT).await?;
    let invalid = b.find("#api-key").await?.attr("aria-invalid").await?;
    ensure!(
        invalid.as_deref() == Some("true"),
        "the field is not marked invalid"
    );
    b.screenshot("sign-in-refused", DESKTOP).await?;

    b.type_into("#api-key", DISPATCHER_KEY).await?;
    b.click("#sign-in button[type=submit]").await?;
    b.wait_until("location.pathname === '/console'", SHORT)
        .await?;
    b.wait_text("#who-role", "Signed in: dispatcher", SHORT)
        .await?;
    ensure!(
        !b.visible("li[data-role=admin]").await?,
        "a dispatcher sees Assistants"
    );
    let cookies = b.js("return document.cookie;", vec![]).await?;
    ensure!(cookies == json!(""), "the console set a cookie: {cookies}");
    // Signing out forgets the key.
    b.click("#sign-out").await?;
    b.wait_until("location.pathname === '/console/sign-in'", SHORT)
        .await?;
    let kept = b.js("return sessionStorage.length;", vec![]).await?;
    ensure!(kept == json!(0), "the key was kept after signing out");
    Ok(())
}

async fn a_dispatcher_sees_no_admin_controls_and_the_gateway_refuses_it_with_403(
    env: Arc<Env>,
) -> Result<()> {
    let (g, b) = (&env.keyed, &env.browser);
    b.use_key(&g.base, Some(DISPATCHER_KEY)).await?;
    b.goto(&g.url("/console")).await?;
    b.wait_text("#who-role", "dispatcher", SHORT).await?;
    ensure!(
        !b.visible("li[data-role=admin]").await?,
        "the Assistants link shows"
    );
    b.goto(&g.url("/console/assistants")).await?;
    b.wait_text("#admin-only", "403", SHORT).await?;
    for control in ["#admin-area", "#register", "#try", "#assistants"] {
        ensure!(
            !b.visible(control).await?,
            "{control} shows to a dispatcher"
        );
    }
    b.screenshot("assistants-as-dispatcher", DESKTOP).await?;
    // Trying anyway, with the key the console holds: the gateway says no.
    let answer = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/v1/assistants', {method: 'POST', headers: {
               'authorization': 'Bearer ' + sessionStorage.getItem('ivr-gateway.api-key'),
               'content-type': 'application/json'},
               body: JSON.stringify({api_key: 'VF.DM.0123456789abcdef01234567.x', version: 'production'})})
             .then(async r => done({status: r.status, body: await r.json()}));",
            vec![],
        )
        .await?;
    ensure!(answer["status"] == 403, "{answer}");
    ensure!(answer["body"]["error"]["code"] == "forbidden", "{answer}");
    Ok(())
}

// ----- a new callout from a CSV, live to accepted ------------------------------------

fn write_csv(env: &Env, name: &str, text: &str) -> Result<String> {
    let path = env.files.path().join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

async fn a_csv_with_a_bad_row_shows_its_error_then_fixed_starts_and_goes_live_to_accepted(
    env: Arc<Env>,
) -> Result<()> {
    let (g, b) = (&env.keyed, &env.browser);
    // Alice never answers; Bob lets it ring 2.5 s, then presses 1.
    set_phones(
        g,
        json!({
            "default": "accepts",
            "+306900000101": "never_answers",
            "+306900000102": {"press": {"keys": ["1"], "ring_s": 25}},
        }),
    )
    .await?;
    b.use_key(&g.base, Some(DISPATCHER_KEY)).await?;
    b.goto(&g.url("/console/callouts/new")).await?;
    b.find("#var-ticket").await?;
    b.type_into("#name", "Ticket 4712").await?;
    b.type_into("#var-ticket", "Server room 2 is flooding")
        .await?;
    b.type_into("#policy-attempts_per_contact", "1").await?;
    let csv = write_csv(
        &env,
        "call-list.csv",
        "name,phone\nAlice,+306900000101\nBob,12345\nCarol,+306900000103\n",
    )?;
    b.find("#csv").await?.send_keys(&csv).await?;

    let bad_row = "#contacts tbody tr:nth-child(2)";
    b.wait_text(
        &format!("{bad_row} .field-error:not([hidden])"),
        "line 3",
        SHORT,
    )
    .await?;
    let class = b
        .find(bad_row)
        .await?
        .attr("class")
        .await?
        .unwrap_or_default();
    ensure!(class.contains("invalid"), "row 2 is not marked: {class:?}");
    for ok_row in [
        "#contacts tbody tr:nth-child(1)",
        "#contacts tbody tr:nth-child(3)",
    ] {
        ensure!(
            !b.visible(&format!("{ok_row} .field-error:not([hidden])"))
                .await?,
            "{ok_row} shows an error"
        );
    }
    ensure!(
        !b.find("#start").await?.is_enabled().await?,
        "Start is enabled with a bad row"
    );
    ensure!(
        callout_named(g, "Ticket 4712").await?.is_none(),
        "a callout was created"
    );
    b.screenshot("new-callout-csv-bad-row", DESKTOP).await?;

    b.type_into(&format!("{bad_row} input[data-key=phone]"), "+306900000102")
        .await?;
    b.click("#check").await?;
    b.wait_text("#preview-script", "Server room 2 is flooding", SHORT)
        .await?;
    b.wait_text("#preview-who", "Alice", SHORT).await?;
    ensure!(
        b.find("#start").await?.is_enabled().await?,
        "Start stays disabled"
    );
    ensure!(
        callout_named(g, "Ticket 4712").await?.is_none(),
        "checking created a callout"
    );
    b.screenshot("new-callout-preview", DESKTOP).await?;
    b.click("#start").await?;
    b.wait_until(
        "location.pathname.startsWith('/console/callouts/') && !location.pathname.endsWith('/new')",
        SHORT,
    )
    .await?;
    watch_until_accepted(b).await
}

/// The live page goes from calling to accepted by itself: same page, no reload.
async fn watch_until_accepted(b: &Browser) -> Result<()> {
    b.wait_text("#live", "Live", SHORT).await?;
    b.js("window.consoleProbe = 'the same page';", vec![])
        .await?;
    let first = b.find("#status").await?.text().await?;
    ensure!(
        first.contains("calling"),
        "the callout was over before the page showed it: {first}"
    );
    b.screenshot("callout-live-calling", DESKTOP).await?;
    b.wait_text("#status", "accepted", LONG).await?;
    let probe = b.js("return window.consoleProbe;", vec![]).await?;
    ensure!(probe == json!("the same page"), "the page was reloaded");
    let loads = b
        .js(
            "return performance.getEntriesByType('navigation').length;",
            vec![],
        )
        .await?;
    ensure!(loads == json!(1), "{loads} navigations");
    b.wait_text("#accepted-by", "Bob", SHORT).await?;
    let took = b.find("#time-to-accept").await?.text().await?;
    ensure!(took.ends_with(" s"), "time to accept: {took:?}");
    b.find("#timeline li[data-kind=callout_accepted]").await?;
    b.wait_text("#people li[data-contact='0']", "no answer", SHORT)
        .await?;
    b.wait_text("#live", "Finished", LONG).await?;
    b.screenshot("callout-live-accepted", DESKTOP).await?;
    Ok(())
}

// ----- cancel -------------------------------------------------------------------------

async fn cancelling_a_callout_asks_first_then_shows_it_cancelled(env: Arc<Env>) -> Result<()> {
    let (g, b) = (&env.keyed, &env.browser);
    set_phones(g, json!({"default": "accepts", "+306900000201": "silent"})).await?;
    let body = json!({
        "name": "Ticket to cancel", "dialplan": "ticket-escalation",
        "variables": {"ticket": "The backup generator is on fire"},
        "contacts": [{"name": "Dana", "phone": "+306900000201"}],
        "policy": {"attempts_per_contact": 1, "input_timeout_s": 60, "reprompts": 5},
    });
    let (status, created) = g.api(Method::POST, "/v1/callouts", Some(&body)).await?;
    ensure!(status == 201, "{created}");
    let id = created["id"].as_str().context("id")?;
    b.use_key(&g.base, Some(DISPATCHER_KEY)).await?;
    b.goto(&g.url(&format!("/console/callouts/{id}"))).await?;
    b.wait_text("#people", "in progress", LONG).await?;
    b.click("#cancel").await?;
    b.wait_until("document.querySelector('#confirm-cancel').open", SHORT)
        .await?;
    b.screenshot("callout-cancel-confirm", DESKTOP).await?;
    b.click("#confirm-cancel button[value=keep]").await?;
    b.wait_until("!document.querySelector('#confirm-cancel').open", SHORT)
        .await?;
    let (_, still) = g
        .api(Method::GET, &format!("/v1/callouts/{id}"), None)
        .await?;
    ensure!(
        still["status"] == "calling",
        "keeping it cancelled it: {still}"
    );

    b.click("#cancel").await?;
    b.click("#confirm-yes").await?;
    b.wait_text("#status", "cancelled", SHORT).await?;
    b.wait_text("#flash", "Cancelled", SHORT).await?;
    b.find("#timeline li[data-kind=callout_cancelled]").await?;
    b.find("#timeline li[data-kind=hangup_requested]").await?;
    ensure!(!b.visible("#cancel").await?, "Cancel still offered");
    // The live call is hung up: the attempt ends as cancelled.
    b.wait_text("#people li[data-contact='0']", "cancelled", LONG)
        .await?;
    b.screenshot("callout-cancelled", DESKTOP).await?;
    Ok(())
}

// ----- assistants -----------------------------------------------------------------------

const VF_KEY: &str = "VF.DM.66aa00000000000000000001.ConsoleTestKeyNeverShownAgain7Q";
const VF_KEY_2: &str = "VF.DM.66aa00000000000000000001.RotatedConsoleTestKey4Zx";

async fn an_admin_registers_an_assistant_against_voiceflow_rotates_its_key_and_tries_it(
    env: Arc<Env>,
) -> Result<()> {
    let (g, b) = (&env.keyed, &env.browser);
    b.use_key(&g.base, Some(ADMIN_KEY)).await?;
    b.goto(&g.url("/console")).await?;
    b.wait_text("#who-role", "admin", SHORT).await?;
    b.click("li[data-role=admin] a").await?;
    b.wait_until("location.pathname === '/console/assistants'", SHORT)
        .await?;
    b.find("#registry-state").await?;
    b.type_into("#reg-name", "Escalation bot").await?;
    b.type_into("#reg-key", VF_KEY).await?;
    b.click("#register button[type=submit]").await?;
    b.wait_text("#register-state", "Registered Escalation bot", SHORT)
        .await?;
    let row = "#assistants tr[data-name='Escalation bot']";
    b.wait_text(row, &format!("…{}", &VF_KEY[VF_KEY.len() - 4..]), SHORT)
        .await?;
    let field = b
        .find("#reg-key")
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    ensure!(field.is_empty(), "the key stays in the form");
    let secret = &VF_KEY[VF_KEY.len() - 20..];
    ensure!(
        !b.client.source().await?.contains(secret),
        "the key is on the page"
    );
    let (_, list) = g.api(Method::GET, "/v1/assistants", None).await?;
    ensure!(list.to_string().contains("Escalation bot"), "{list}");

    // Rotate: the new key is checked, and only its end is shown.
    b.click(&format!("{row} button[aria-label^='Rotate']"))
        .await?;
    b.type_into("#rotate-key", VF_KEY_2).await?;
    b.click("#rotate-yes").await?;
    b.wait_text("#flash", "was replaced", SHORT).await?;
    b.wait_text(row, &format!("…{}", &VF_KEY_2[VF_KEY_2.len() - 4..]), SHORT)
        .await?;

    // Try it: launch, then press 1.
    b.click(&format!("{row} button[aria-label^='Try']")).await?;
    b.click("#try button[type=submit]").await?;
    b.wait_text("#turns", "Hello Alice", SHORT).await?;
    b.click("#try-input [data-digit='1']").await?;
    b.wait_until(
        "document.querySelectorAll('#turns > li').length === 2",
        SHORT,
    )
    .await?;
    b.wait_text("#turns > li:first-child h3", "pressed 1", SHORT)
        .await?;
    let verbs = b
        .find("#turns > li:first-child pre")
        .await?
        .prop("textContent")
        .await?
        .unwrap_or_default();
    ensure!(
        verbs.contains("\"SAY\"") && verbs.contains("COLLECT"),
        "no verbs: {verbs}"
    );
    b.screenshot("assistants-registered-and-tried", DESKTOP)
        .await?;
    delete_one(b, g).await
}

/// Registers a spare assistant through the API and deletes it in the page.
async fn delete_one(b: &Browser, g: &Gateway) -> Result<()> {
    let body = json!({"name": "Spare bot", "api_key": VF_KEY, "version": "production"});
    let (status, v) = g.api(Method::POST, "/v1/assistants", Some(&body)).await?;
    ensure!(status == 201, "{v}");
    b.goto(&g.url("/console/assistants")).await?;
    let row = "#assistants tr[data-name='Spare bot']";
    b.click(&format!("{row} button[aria-label^='Delete']"))
        .await?;
    b.click("#delete-yes").await?;
    b.wait_text("#flash", "Deleted Spare bot", SHORT).await?;
    b.wait_until(
        "!document.querySelector(\"#assistants tr[data-name='Spare bot']\")",
        SHORT,
    )
    .await?;
    Ok(())
}

// ----- the open sandbox -------------------------------------------------------------------

async fn the_open_sandbox_needs_no_key_and_its_button_runs_the_seed_scenario_to_carol(
    env: Arc<Env>,
) -> Result<()> {
    let (o, b) = (&env.open, &env.browser);
    b.use_key(&o.base, None).await?;
    b.goto(&o.url("/console")).await?;
    b.wait_text("#who-role", "Open sandbox", SHORT).await?;
    ensure!(b.url().await.ends_with("/console"), "sent to sign in");
    b.click("a[data-nav=sandbox]").await?;
    b.click("#seed").await?;
    b.wait_until(
        "/^\\/console\\/callouts\\/[0-9a-f]{32}$/.test(location.pathname)",
        SHORT,
    )
    .await?;
    b.wait_text("#status", "accepted", Duration::from_secs(60))
        .await?;
    b.wait_text("#accepted-by", "Carol", SHORT).await?;
    b.wait_text(
        "#people li[data-contact='0']",
        "no answer after 3 calls",
        SHORT,
    )
    .await?;
    b.wait_text("#people li[data-contact='1']", "rejected", SHORT)
        .await?;
    b.wait_text("#people li[data-contact='1']", "pressed 2", SHORT)
        .await?;
    b.screenshot("seed-scenario-accepted", DESKTOP).await?;
    Ok(())
}

async fn the_simulated_phones_are_edited_on_the_sandbox_page(env: Arc<Env>) -> Result<()> {
    let (o, b) = (&env.open, &env.browser);
    b.use_key(&o.base, None).await?;
    b.goto(&o.url("/console/sandbox")).await?;
    b.find("#callee-rows tbody tr").await?;
    b.click("#add-callee").await?;
    let last = "#callee-rows tbody tr:last-child";
    b.type_into(&format!("{last} [data-role=phone]"), "+306900000999")
        .await?;
    b.find(&format!("{last} [data-role=kind]"))
        .await?
        .select_by_value("busy")
        .await?;
    b.click("#callees button[type=submit]").await?;
    b.wait_text("#callees-state", "Saved", SHORT).await?;
    let (_, phones) = o.api(Method::GET, "/v1/sandbox/callees", None).await?;
    ensure!(phones["+306900000999"] == "busy", "{phones}");

    b.click("#add-callee").await?;
    b.type_into(&format!("{last} [data-role=phone]"), "+306900000998")
        .await?;
    b.find(&format!("{last} [data-role=kind]"))
        .await?
        .select_by_value("custom")
        .await?;
    b.type_into(&format!("{last} [data-role=detail]"), "{\"sings\": {}}")
        .await?;
    b.click("#callees button[type=submit]").await?;
    b.wait_text(&format!("{last} .field-error"), "sings", SHORT)
        .await?;
    b.wait_text("#callees-state", "Not saved", SHORT).await?;
    let (_, after) = o.api(Method::GET, "/v1/sandbox/callees", None).await?;
    ensure!(
        after.get("+306900000998").is_none(),
        "a refused file was applied: {after}"
    );
    b.screenshot("sandbox-phones-refused", DESKTOP).await?;
    Ok(())
}

// ----- keyboard only ----------------------------------------------------------------------

/// Types `text` on the keyboard (WebDriver key actions: no element is targeted,
/// the keys go wherever the focus is, as a person's would).
async fn keys(b: &Browser, text: &str) -> Result<()> {
    let mut typing = KeyActions::new("keyboard".into());
    for c in text.chars() {
        typing = typing
            .then(KeyAction::Down { value: c })
            .then(KeyAction::Up { value: c });
    }
    b.client.perform_actions(typing).await?;
    Ok(())
}

/// Presses Tab until the focused element has `id` (at most 60 times).
async fn tab_to(b: &Browser, id: &str) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    for _ in 0..60 {
        keys(b, &Key::Tab.to_string()).await?;
        let focused = b
            .js("const e = document.activeElement; return e.id || e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30);", vec![])
            .await?;
        let focused = focused.as_str().unwrap_or_default().to_owned();
        seen.push(focused.clone());
        if focused == id {
            return Ok(seen);
        }
    }
    bail!("Tab never reached #{id}; it went through {seen:?}")
}

async fn the_new_callout_form_works_with_the_keyboard_alone(env: Arc<Env>) -> Result<()> {
    let (g, b) = (&env.keyed, &env.browser);
    set_phones(g, json!({"default": "accepts"})).await?;
    b.use_key(&g.base, Some(DISPATCHER_KEY)).await?;
    b.goto(&g.url("/console/callouts/new")).await?;
    b.find("#var-ticket").await?;
    b.wait_until(
        "document.activeElement && document.activeElement.id === 'name'",
        SHORT,
    )
    .await?;
    keys(b, "Ticket by keyboard").await?;
    let path = tab_to(b, "var-ticket").await?;
    ensure!(
        path.contains(&"use-dialplan".to_owned()) && path.contains(&"dialplan".to_owned()),
        "{path:?}"
    );
    keys(b, "The lift is stuck").await?;
    let path = tab_to(b, "c1-name").await?;
    ensure!(
        path.contains(&"policy-attempts_per_contact".to_owned())
            && path.contains(&"csv".to_owned()),
        "{path:?}"
    );
    keys(b, "Erin").await?;
    tab_to(b, "c1-phone").await?;
    keys(b, "+306900000301").await?;
    tab_to(b, "check").await?;
    keys(b, &Key::Enter.to_string()).await?;
    b.wait_text("#preview-script", "The lift is stuck", SHORT)
        .await?;
    tab_to(b, "start").await?;
    keys(b, &Key::Enter.to_string()).await?;
    b.wait_until(
        "/^\\/console\\/callouts\\/[0-9a-f]{32}$/.test(location.pathname)",
        SHORT,
    )
    .await?;
    b.wait_text("#title", "Ticket by keyboard", SHORT).await?;
    // Every control reached on the way has a label.
    let unlabelled = b
        .js(
            "return [...document.querySelectorAll('input, select, textarea, button')]
               .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
               .map(e => e.outerHTML.slice(0, 80));",
            vec![],
        )
        .await?;
    ensure!(unlabelled == json!([]), "unlabelled controls: {unlabelled}");
    Ok(())
}

// ----- every page, both widths, axe ------------------------------------------------------

async fn every_page_at_desktop_and_phone_width_passes_axe(env: Arc<Env>) -> Result<()> {
    let (g, b) = (&env.keyed, &env.browser);
    set_phones(g, json!({"default": "accepts"})).await?;
    let body = json!({
        "name": "Ticket 4713", "dialplan": "ticket-escalation",
        "variables": {"ticket": "Water on the floor of server room 2"},
        "contacts": [{"name": "Frank", "phone": "+306900000401"}, {"name": "Grace", "phone": "+306900000402", "language": "el-GR"}],
    });
    let (_, created) = g.api(Method::POST, "/v1/callouts", Some(&body)).await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    let (_, list) = g.api(Method::GET, "/v1/assistants", None).await?;
    if list["assistants"].as_array().is_none_or(Vec::is_empty) {
        let body = json!({"name": "Page bot", "api_key": VF_KEY, "version": "production"});
        let (status, v) = g.api(Method::POST, "/v1/assistants", Some(&body)).await?;
        ensure!(status == 201, "registering: {status} {v}");
    }
    b.use_key(&g.base, Some(ADMIN_KEY)).await?;
    let mut problems = Vec::new();
    let pages: [(&str, String, &str); 6] = [
        ("sign-in", g.url("/console/sign-in"), "#api-key"),
        ("callouts", g.url("/console"), "#callouts tbody tr"),
        ("new-callout", g.url("/console/callouts/new"), "#var-ticket"),
        (
            "callout",
            g.url(&format!("/console/callouts/{id}")),
            "#timeline li[data-kind=callout_accepted]",
        ),
        (
            "assistants",
            g.url("/console/assistants"),
            "#assistants tbody tr",
        ),
        (
            "sandbox",
            g.url("/console/sandbox"),
            "#callee-rows tbody tr",
        ),
    ];
    for (name, url, ready) in &pages {
        b.goto(url).await?;
        b.wait_for(ready, LONG).await?;
        problems.extend(b.look(name).await?);
    }
    // The conversation tools after a turn (the keypad shows).
    b.goto(&g.url("/console/assistants")).await?;
    b.find("#assistants tbody tr").await?;
    b.click("#try button[type=submit]").await?;
    b.wait_text("#turns", "Hello Alice", SHORT).await?;
    problems.extend(b.look("assistants-try").await?);
    // The new-callout form with its errors shown, and with its preview.
    b.goto(&g.url("/console/callouts/new")).await?;
    b.find("#var-ticket").await?;
    b.click("#check").await?;
    b.wait_text("#form-state", "problem", SHORT).await?;
    problems.extend(b.look("new-callout-errors").await?);
    b.type_into("#name", "Ticket 4714").await?;
    b.type_into("#var-ticket", "Smoke in the lab").await?;
    b.type_into("#contacts tbody tr input[data-key=name]", "Heidi")
        .await?;
    b.type_into("#contacts tbody tr input[data-key=phone]", "+306900000501")
        .await?;
    b.click("#check").await?;
    b.wait_text("#preview-script", "Smoke in the lab", SHORT)
        .await?;
    problems.extend(b.look("new-callout-preview").await?);
    ensure!(problems.is_empty(), "axe found:\n{}", problems.join("\n"));
    Ok(())
}
