//! What the console needs from the API besides callouts: the templates with
//! their variables, the policy defaults, a preview that checks like creating
//! and creates nothing, who a key is, the sandbox's phones and seed scenario;
//! and the console's pages (strict CSP, files with validators). Every answer is
//! checked against the OpenAPI document too.

use std::time::Duration;

use ivr_gateway::sim::Behaviour;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    DISPATCHER_TOKEN, Options, TestApp, phone, spawn_app, spawn_sim, ticket_callout,
};
use crate::openapi::{assert_conforms, document};
use crate::probe::{Answer, assert_nothing_created, multipart, probe};

fn keyed() -> Options {
    Options {
        api_keys: true,
        ..Options::default()
    }
}

async fn checked(
    app: &TestApp,
    doc: &Value,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut p = probe(app, method.clone(), path);
    if let Some(b) = body {
        p = p.json(b);
    }
    let a = p.send().await;
    let (method, path) = (method.as_str().to_lowercase(), path_template(path));
    if a.status == 204 {
        let documented = &doc["paths"][path][&method]["responses"]["204"];
        assert!(
            documented.is_object(),
            "{method} {path}: 204 is not documented"
        );
    } else {
        assert_conforms(doc, &method, path, &a);
    }
    a
}

/// The documented path of a concrete one.
fn path_template(path: &str) -> &str {
    match path {
        p if p.starts_with("/v1/callouts/") && p.ends_with("/events") => "/v1/callouts/{id}/events",
        p => p.split('?').next().unwrap_or(p),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templates_are_listed_with_the_variables_a_callout_must_give() {
    let app = spawn_app(keyed()).await;
    let doc = document(&app).await;
    let a = checked(&app, &doc, Method::GET, "/v1/dialplans", None).await;
    assert_eq!(a.status, 200, "{a:?}");
    let t = a.json["dialplans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ticket-escalation")
        .expect("the shipped template");
    assert_eq!(t["variables"], json!(["ticket"]));
    assert_eq!(t["builtins"], json!(["contact_name"]));
    assert_eq!(t["keys"], json!({"1": "accepted", "2": "rejected"}));
    assert_eq!(t["language"], "en-US");

    let a = checked(&app, &doc, Method::GET, "/v1/policy", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["defaults"]["attempts_per_contact"], 3);
    assert_eq!(a.json["defaults"]["input_timeout_s"], 10);
    assert_eq!(
        a.json["bounds"]["attempts_per_contact"],
        json!({"min": 1, "max": 10})
    );
    assert_eq!(a.json["max_contacts"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_names_each_bad_row_like_creating_would_and_creates_nothing() {
    let app = spawn_app(keyed()).await;
    let doc = document(&app).await;
    let mut body = ticket_callout(3);
    body["contacts"][1]["phone"] = json!("12345");
    let a = checked(
        &app,
        &doc,
        Method::POST,
        "/v1/callouts/preview",
        Some(&body),
    )
    .await;
    a.assert_names("contacts[1].phone");
    let created = probe(&app, Method::POST, "/v1/callouts")
        .json(&body)
        .send()
        .await;
    assert_eq!(
        created.json["error"], a.json["error"],
        "the same answer as creating"
    );
    assert_nothing_created(&app).await;

    // The same list as a CSV upload: the row is named with its line.
    let csv = b"name,phone\nAlice,+306900000001\nBob,12345\nCarol,+306900000003\n";
    let meta = json!({"name": "T", "dialplan": "ticket-escalation", "variables": {"ticket": "x"}});
    let (ct, bytes) = multipart(csv, Some(&meta));
    let a = probe(&app, Method::POST, "/v1/callouts/preview")
        .body(&ct, bytes)
        .send()
        .await;
    a.assert_names("contacts[1].phone");
    assert!(
        a.detail("contacts[1].phone")
            .unwrap()
            .starts_with("line 3:"),
        "{a:?}"
    );
    assert_nothing_created(&app).await;

    // Fixed: valid, and still nothing created.
    let csv = b"name,phone\nAlice,+306900000001\nBob,+306900000002\nCarol,+306900000003\n";
    let (ct, bytes) = multipart(csv, Some(&meta));
    let a = probe(&app, Method::POST, "/v1/callouts/preview")
        .body(&ct, bytes)
        .send()
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["callout"]["contacts"][1]["phone"], "+306900000002");
    assert_eq!(
        a.json["callout"]["policy"]["attempts_per_contact"], 3,
        "defaults filled in"
    );
    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_is_what_the_first_call_is_placed_with() {
    let app = spawn_app(keyed()).await;
    let doc = document(&app).await;
    app.sim.set_callee(&phone(1), Behaviour::NeverAnswers);
    let mut body = ticket_callout(1);
    body["contacts"][0]["name"] = json!("Alice");
    body["contacts"][0]["language"] = json!("el-GR");
    body["policy"]["attempts_per_contact"] = json!(1);
    let preview = checked(
        &app,
        &doc,
        Method::POST,
        "/v1/callouts/preview",
        Some(&body),
    )
    .await;
    assert_eq!(preview.status, 200, "{preview:?}");
    let first = &preview.json["first_call"];
    assert_eq!(first["name"], "Alice");
    assert_eq!(first["language"], "el-GR");
    let said: Vec<&str> = first["script"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["text"].as_str())
        .collect();
    assert_eq!(said[0], "Server room 2 is flooding");

    let id = app.create_callout(&body).await;
    app.wait_settled(&id, Duration::from_secs(30)).await;
    let placed = app.sim.calls().into_iter().next().expect("a call");
    let mut verbs = serde_json::to_value(&placed.dialplan).unwrap()["verbs"].clone();
    let mut previewed = first["verbs"].clone();
    // Only the COLLECT's eventUrl differs: a real one is signed for its call.
    for v in [&mut verbs, &mut previewed] {
        for verb in v.as_array_mut().unwrap() {
            if verb["type"] == "COLLECT" {
                verb["eventUrl"] = json!("(signed)");
            }
        }
    }
    assert_eq!(previewed, verbs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_tells_the_keys_role_and_the_gateways_mode() {
    let app = spawn_app(keyed()).await;
    let doc = document(&app).await;
    let a = checked(&app, &doc, Method::GET, "/v1/me", None).await;
    assert_eq!(
        a.json,
        json!({"role": "admin", "mode": "sandbox", "keys_required": true})
    );
    let a = probe(&app, Method::GET, "/v1/me")
        .token(Some(DISPATCHER_TOKEN))
        .send()
        .await;
    assert_eq!(a.json["role"], "dispatcher");
    probe(&app, Method::GET, "/v1/me")
        .token(None)
        .send()
        .await
        .assert_error(401, "unauthorized");
    let open = spawn_app(Options::default()).await;
    let a = probe(&open, Method::GET, "/v1/me").token(None).send().await;
    assert_eq!(
        a.json,
        json!({"role": "admin", "mode": "sandbox", "keys_required": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_phones_are_read_and_replaced_and_a_bad_entry_changes_nothing() {
    let app = spawn_app(keyed()).await;
    let doc = document(&app).await;
    let file = json!({"default": "silent", "+306900000001": "busy", "+306900000002": {"press": {"keys": "2"}}});
    let a = checked(&app, &doc, Method::PUT, "/v1/sandbox/callees", Some(&file)).await;
    assert_eq!(a.status, 204, "{a:?}");
    let a = checked(&app, &doc, Method::GET, "/v1/sandbox/callees", None).await;
    assert_eq!(a.json["+306900000001"], "busy");
    assert_eq!(a.json["default"], json!({"silent": {"ring_s": 2.0}}));

    let bad = json!({"default": "accepts", "+306900000001": "sings"});
    let a = checked(&app, &doc, Method::PUT, "/v1/sandbox/callees", Some(&bad)).await;
    a.assert_names("callees.+306900000001");
    let a = probe(&app, Method::GET, "/v1/sandbox/callees").send().await;
    assert_eq!(a.json["+306900000001"], "busy", "unchanged");
    let a = probe(&app, Method::PUT, "/v1/sandbox/callees")
        .json(&json!([1]))
        .send()
        .await;
    a.assert_names("callees");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_calls_alice_three_times_then_bob_rejects_and_carol_accepts() {
    let app = spawn_app(keyed()).await;
    let doc = document(&app).await;
    let a = checked(&app, &doc, Method::POST, "/v1/sandbox/seed", None).await;
    assert_eq!(a.status, 201, "{a:?}");
    let id = a.json["id"].as_str().unwrap();
    let c = app.wait_settled(id, Duration::from_secs(60)).await;
    assert_eq!(c["status"], "accepted");
    assert_eq!(c["accepted_by"]["name"], "Carol");
    let outcomes: Vec<(u64, String)> = crate::helpers::attempts(&c)
        .into_iter()
        .map(|(contact, _, outcome)| (contact, outcome))
        .collect();
    let expected: Vec<(u64, String)> = [
        (0, "no_answer"),
        (0, "no_answer"),
        (0, "no_answer"),
        (1, "rejected"),
        (2, "accepted"),
    ]
    .into_iter()
    .map(|(c, o)| (c, o.to_owned()))
    .collect();
    assert_eq!(outcomes, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_endpoints_and_page_do_not_exist_in_live_mode() {
    let sim = spawn_sim(ivr_gateway::sim::Callees::default()).await;
    let mut o = keyed();
    o.external_sim = Some(sim);
    o.public_url = Some("http://127.0.0.1:9".into());
    let app = spawn_app(o).await;
    for (method, path) in [
        (Method::GET, "/v1/sandbox/callees"),
        (Method::PUT, "/v1/sandbox/callees"),
        (Method::POST, "/v1/sandbox/seed"),
    ] {
        probe(&app, method, path)
            .json(&json!({}))
            .send()
            .await
            .assert_error(404, "not_found");
    }
    let page = app
        .http
        .get(app.url("/console/sandbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let me = probe(&app, Method::GET, "/v1/me").send().await;
    assert_eq!(me.json["mode"], "live");
    let home = app
        .http
        .get(app.url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !home.contains("/console/sandbox"),
        "no Sandbox link in live mode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_are_html_under_a_strict_content_security_policy() {
    let app = spawn_app(keyed()).await;
    let id = app.create_callout(&ticket_callout(1)).await;
    for path in [
        "/console".to_owned(),
        "/console/sign-in".to_owned(),
        "/console/callouts/new".to_owned(),
        format!("/console/callouts/{id}"),
        "/console/assistants".to_owned(),
        "/console/sandbox".to_owned(),
    ] {
        // No key: the pages hold no data.
        let r = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("<script type=\"module\" src=\"/console/assets/app.js\">"),
            "{path}"
        );
    }
    let page = app
        .http
        .get(app.url(&format!("/console/callouts/{id}")))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("data-callout=\"{id}\"")));
    let r = app
        .http
        .get(app.url("/console/callouts/not-an-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_served_from_the_binary_and_revalidated_with_their_etag() {
    let app = spawn_app(keyed()).await;
    let r = app
        .http
        .get(app.url("/console/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let etag = r.headers()["etag"].clone();
    let again = app
        .http
        .get(app.url("/console/assets/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let css = app
        .http
        .get(app.url("/console/assets/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let a = probe(&app, Method::GET, "/console/assets/..%2FCargo.toml")
        .token(None)
        .send()
        .await;
    a.assert_error(404, "not_found");
    let a = probe(&app, Method::GET, "/console/assets/nope.js")
        .token(None)
        .send()
        .await;
    a.assert_error(404, "not_found");
}
