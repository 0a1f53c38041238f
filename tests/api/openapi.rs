//! `GET /openapi.json` is true to the code: every public route of the router is
//! documented (and every documented operation is routed), and real responses of
//! every documented kind validate against the document's schemas.
//!
//! The document is generated from the same registrations that route the public
//! API (`utoipa_axum::routes!` takes each handler's method and path from its
//! OpenAPI annotation), so it is checked against the running router: every
//! documented operation answers (no 405, no "no such route"), and on every
//! documented path every other method is a 405, so no method is routed
//! undocumented. A public path routed outside those registrations would be a
//! `.route(` call: the only ones in `src/http/` are the Routee webhooks'.
//! Schemas are checked with a small validator for the subset of JSON Schema the
//! document uses (`$ref`, `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, `oneOf`, `allOf`, bounds, `pattern`,
//! `format: date-time`).

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use reqwest::Method;
use serde_json::{Value, json};

use ivr_gateway::sim::Behaviour;

use crate::helpers::{DISPATCHER_TOKEN, Options, TestApp, phone, spawn_app, ticket_callout};
use crate::probe::{Answer, probe, upload};

const LONG: std::time::Duration = std::time::Duration::from_secs(40);

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(method, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                found.insert((method.clone(), path.clone()));
            }
        }
    }
    found
}

/// The literal paths of every `.route(` call in `src/http/`: routes that bypass
/// the documented registrations.
fn plain_routes_in_source() -> Vec<String> {
    let route = Regex::new(r#"\.route\(\s*"([^"]+)"\s*,"#).unwrap();
    let mut found = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        // A path built at run time (`&format!(..)`) would be invisible here.
        assert_eq!(
            route.captures_iter(&source).count(),
            source.matches(".route(").count(),
            "{}: every .route( needs a literal path",
            path.display()
        );
        found.extend(route.captures_iter(&source).map(|c| c[1].to_owned()));
    }
    found
}

pub(crate) async fn document(app: &TestApp) -> Value {
    let a = probe(app, Method::GET, "/openapi.json")
        .token(None)
        .send()
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.content_type.starts_with("application/json"));
    a.json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_public_route_of_the_router_is_documented_and_every_documented_one_routed() {
    let app = spawn_app(Options::default()).await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));

    let routes = documented(&doc);
    assert!(
        routes.contains(&("post".into(), "/v1/callouts".into())),
        "the document has {routes:?}"
    );
    // Outside the documented registrations, only the webhooks are routed.
    let plain = plain_routes_in_source();
    assert!(!plain.is_empty(), "the source scan found no webhook route");
    for path in &plain {
        assert!(
            path.starts_with("/routee/"),
            "{path} is routed outside the documented registrations, so not in /openapi.json"
        );
    }

    let id = app.create_callout(&ticket_callout(1)).await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        let concrete = path.replace("{id}", &id).replace("{session}", "s");
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let a = probe(&app, m, &concrete)
                .json(&ticket_callout(1))
                .send()
                .await;
            if item[method].is_object() {
                assert!(
                    a.status != 405 && a.json["error"]["message"] != "no such route",
                    "{} {path} is documented but not routed: {a:?}",
                    method.to_uppercase()
                );
            } else {
                assert_eq!(
                    a.status,
                    405,
                    "{} {path} is routed but not in /openapi.json: {a:?}",
                    method.to_uppercase()
                );
            }
        }
    }

    // Every reference points somewhere.
    let text = doc.to_string();
    let reference = Regex::new(r##""\$ref":"#/([^"]+)""##).unwrap();
    for r in reference.captures_iter(&text) {
        assert!(
            !resolve(&doc, &format!("#/{}", &r[1])).is_null(),
            "dangling $ref #/{}",
            &r[1]
        );
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    reference
        .trim_start_matches("#/")
        .split('/')
        .fold(doc, |v, key| &v[key])
}

/// The JSON schema documented for this answer, its `$ref`s resolved.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let mut response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    if let Some(r) = response["$ref"].as_str() {
        response = resolve(doc, r);
    }
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    schema
}

/// Every way `value` breaks `schema`, with its location.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        return violations(doc, resolve(doc, r), value, at, out);
    }
    if value.is_null() {
        if schema["nullable"] != true && !schema.get("type").is_none_or(Value::is_null) {
            out.push(format!("{at}: null where {} is expected", schema["type"]));
        }
        if schema["nullable"] == true || schema.get("type").is_some() {
            return;
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            violations(doc, s, value, at, out);
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let matching = one
            .iter()
            .filter(|s| {
                let mut v = Vec::new();
                violations(doc, s, value, at, &mut v);
                v.is_empty()
            })
            .count();
        if matching != 1 {
            out.push(format!("{at}: matches {matching} of oneOf, not 1"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let Some(ty) = schema["type"].as_str() else {
        return;
    };
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => panic!("the validator does not know type {other}"),
    };
    if !type_ok {
        out.push(format!("{at}: {value} is not {ty}"));
        return;
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            out.push(format!("{at}: {n} < minimum {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            out.push(format!("{at}: {n} > maximum {}", schema["maximum"]));
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| chars < m)
            || schema["maxLength"].as_u64().is_some_and(|m| chars > m)
        {
            out.push(format!("{at}: length {chars} out of bounds"));
        }
        if let Some(p) = schema["pattern"].as_str()
            && !Regex::new(p).unwrap().is_match(s)
        {
            out.push(format!("{at}: {s:?} does not match {p}"));
        }
        if schema["format"] == "date-time"
            && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            out.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if schema["minItems"].as_u64().is_some_and(|m| n < m)
            || schema["maxItems"].as_u64().is_some_and(|m| n > m)
        {
            out.push(format!("{at}: {n} items out of bounds"));
        }
        for (i, item) in items.iter().enumerate() {
            violations(doc, &schema["items"], item, &format!("{at}[{i}]"), out);
        }
    }
    if let Some(obj) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap();
            if !obj.contains_key(key) {
                out.push(format!("{at}: required {key} is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, v) in obj {
            let at = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(s) => violations(doc, s, v, &at, out),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => out.push(format!("{at}: not in the schema")),
                    s @ Value::Object(_) => violations(doc, s, v, &at, out),
                    _ => {}
                },
            }
        }
    }
}

#[track_caller]
pub(crate) fn assert_conforms(doc: &Value, method: &str, path: &str, answer: &Answer) {
    let schema = response_schema(doc, method, path, answer.status);
    let mut problems = Vec::new();
    violations(doc, schema, &answer.json, "$", &mut problems);
    assert!(
        problems.is_empty(),
        "{method} {path} {}: {problems:#?}\n{}",
        answer.status,
        answer.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_validate_against_the_documented_schemas() {
    let app = spawn_app(
        Options {
            api_keys: true,
            ..Options::default()
        }
        .env("MAX_BODY_BYTES", "65536"),
    )
    .await;
    let doc = document(&app).await;

    // A settled callout has every part filled: attempts, events, accepted_by.
    let mut body = ticket_callout(2);
    body["contacts"][0]["language"] = json!("el-GR");
    body["notify_url"] = json!("http://127.0.0.1:9/hook");
    let created = probe(&app, Method::POST, "/v1/callouts")
        .json(&body)
        .send()
        .await;
    assert_conforms(&doc, "post", "/v1/callouts", &created);
    let id = created.json["id"].as_str().unwrap().to_owned();
    app.wait_settled(&id, LONG).await;
    let part = {
        let mut b = ticket_callout(1);
        b.as_object_mut().unwrap().remove("contacts");
        b
    };
    let uploaded = upload(
        &app,
        b"name,phone,language\nAlice,+306900000007,en-GB\n",
        Some(&part),
    )
    .await;
    assert_eq!(uploaded.status, 201, "{uploaded:?}");
    assert_conforms(&doc, "post", "/v1/callouts", &uploaded);
    let live = uploaded.json["id"].as_str().unwrap().to_owned();

    let get = |path: String| probe(&app, Method::GET, &path);
    let cases: Vec<(&str, &str, Answer)> = vec![
        (
            "get",
            "/v1/callouts/{id}",
            get(format!("/v1/callouts/{id}")).send().await,
        ),
        (
            "get",
            "/v1/callouts/{id}",
            get(format!("/v1/callouts/{live}")).send().await,
        ),
        (
            "get",
            "/v1/callouts/{id}",
            get("/v1/callouts/nope".into()).send().await,
        ),
        (
            "get",
            "/v1/callouts/{id}",
            get(format!("/v1/callouts/{id}")).token(None).send().await,
        ),
        (
            "get",
            "/v1/callouts",
            get("/v1/callouts".into()).send().await,
        ),
        (
            "get",
            "/v1/callouts",
            get("/v1/callouts?status=accepted&limit=1".into())
                .send()
                .await,
        ),
        (
            "get",
            "/v1/callouts",
            get(format!("/v1/callouts?before={live}")).send().await,
        ),
        (
            "get",
            "/v1/callouts",
            get("/v1/callouts?limit=0".into()).send().await,
        ),
        (
            "get",
            "/v1/callouts",
            get("/v1/callouts?limit=x".into()).send().await,
        ),
        (
            "post",
            "/v1/callouts/{id}/cancel",
            probe(&app, Method::POST, &format!("/v1/callouts/{live}/cancel"))
                .send()
                .await,
        ),
        (
            "post",
            "/v1/callouts/{id}/cancel",
            probe(&app, Method::POST, &format!("/v1/callouts/{id}/cancel"))
                .send()
                .await,
        ),
        (
            "post",
            "/v1/callouts/{id}/cancel",
            probe(&app, Method::POST, "/v1/callouts/0/cancel")
                .send()
                .await,
        ),
        (
            "post",
            "/v1/callouts",
            probe(&app, Method::POST, "/v1/callouts")
                .json(&json!({"name": 1}))
                .send()
                .await,
        ),
        (
            "post",
            "/v1/callouts",
            probe(&app, Method::POST, "/v1/callouts")
                .body("application/json", "{")
                .send()
                .await,
        ),
        (
            "post",
            "/v1/callouts",
            probe(&app, Method::POST, "/v1/callouts")
                .body("text/csv", "a,b")
                .send()
                .await,
        ),
        (
            "post",
            "/v1/callouts",
            probe(&app, Method::POST, "/v1/callouts")
                .body("application/json", vec![b' '; 70_000])
                .send()
                .await,
        ),
        (
            "post",
            "/v1/callouts",
            probe(&app, Method::POST, "/v1/callouts")
                .token(Some("wrong"))
                .json(&body)
                .send()
                .await,
        ),
        (
            "get",
            "/healthz",
            get("/healthz".into()).token(None).send().await,
        ),
        (
            "get",
            "/readyz",
            get("/readyz".into()).token(None).send().await,
        ),
    ];
    let mut statuses = BTreeSet::new();
    for (method, path, answer) in &cases {
        statuses.insert(answer.status);
        assert_conforms(&doc, method, path, answer);
    }
    // The sample covers every kind of answer the dispatcher API gives.
    for s in [200, 400, 401, 404, 409, 413, 415, 422] {
        assert!(statuses.contains(&s), "no {s} in the sample: {statuses:?}");
    }
    let settled = &cases[0].2.json;
    assert!(!settled["attempts"].as_array().unwrap().is_empty());
    assert!(settled["accepted_by"].is_object(), "{settled}");
}

/// Answers of one kind of operation, checked against the document as they come.
struct Sample<'a> {
    doc: &'a Value,
    statuses: BTreeSet<u16>,
}

impl Sample<'_> {
    /// A JSON answer validates against its schema; an answer without a body
    /// (204) is documented without one.
    #[track_caller]
    fn check(&mut self, method: &str, path: &str, answer: &Answer) {
        self.statuses.insert(answer.status);
        if answer.status == 204 {
            let response = &self.doc["paths"][path][method]["responses"]["204"];
            assert!(response.is_object(), "{method} {path}: 204 undocumented");
            assert!(
                response["content"].is_null(),
                "{method} {path}: 204 has content"
            );
            assert_eq!(answer.len, 0, "{method} {path}: a 204 with a body");
        } else {
            assert_conforms(self.doc, method, path, answer);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_assistants_answers_validate_against_the_documented_schemas() {
    let app = spawn_app(
        Options {
            api_keys: true,
            ..Options::default()
        }
        .env("MAX_BODY_BYTES", "65536")
        .env("UPSTREAM_TIMEOUT_MS", "600"),
    )
    .await;
    let vf = app.voiceflow.clone().unwrap();
    let doc = document(&app).await;
    let mut sample = Sample {
        doc: &doc,
        statuses: BTreeSet::new(),
    };
    let send = |method: Method, path: &str, body: Option<Value>| {
        let p = probe(&app, method, path);
        match body {
            Some(b) => p.json(&b),
            None => p,
        }
    };
    let key = "VF.DM.0123456789abcdef01234567.OpenApiSampleKey1234";

    // The registry.
    let registry = "/v1/assistants";
    let one = "/v1/assistants/{id}";
    let new = json!({"name": "ticket-bot", "api_key": key, "version": "production",
                     "keypad": {"1": "accept"}, "language": "el-GR", "voice": "female"});
    let created = send(Method::POST, registry, Some(new.clone())).send().await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json["key_hint"], "1234");
    sample.check("post", registry, &created);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let unnamed = json!({"api_key": key, "version": "development"});
    for (body, status) in [
        (unnamed.clone(), 201),
        (unnamed, 409),
        (
            json!({"api_key": "sk-1", "version": "latest", "colour": 1}),
            422,
        ),
        (
            json!({"api_key": key, "version": "0123456789abcdef01234567"}),
            422,
        ),
    ] {
        let a = send(Method::POST, registry, Some(body)).send().await;
        assert_eq!(a.status, status, "{a:?}");
        sample.check("post", registry, &a);
    }
    for a in [
        send(Method::POST, registry, None)
            .body("application/json", "{")
            .send()
            .await,
        send(Method::POST, registry, None)
            .body("application/json", vec![b' '; 70_000])
            .send()
            .await,
        send(Method::POST, registry, Some(new.clone()))
            .token(None)
            .send()
            .await,
        send(Method::POST, registry, Some(new.clone()))
            .token(Some(DISPATCHER_TOKEN))
            .send()
            .await,
    ] {
        sample.check("post", registry, &a);
    }
    // Voiceflow failing while it checks a key stores nothing and is its fault.
    vf.fail_next(vec![503, 503]);
    let mut renamed = new.clone();
    renamed["name"] = json!("another-bot");
    let failed = send(Method::POST, registry, Some(renamed)).send().await;
    assert_eq!(failed.status, 502, "{failed:?}");
    sample.check("post", registry, &failed);

    let listed = send(Method::GET, registry, None)
        .token(Some(DISPATCHER_TOKEN))
        .send()
        .await;
    assert_eq!(listed.json["assistants"].as_array().unwrap().len(), 3);
    sample.check("get", registry, &listed);
    for path in [format!("/v1/assistants/{id}"), "/v1/assistants/nope".into()] {
        let a = send(Method::GET, &path, None).send().await;
        sample.check("get", one, &a);
    }
    for (body, status) in [
        (
            json!({"voice": null, "reject_actions": ["reject", "decline"]}),
            200,
        ),
        (json!({"api_key": key}), 200),
        (json!({"name": "sandbox"}), 409),
        (json!({}), 422),
    ] {
        let a = send(Method::PATCH, "/v1/assistants/ticket-bot", Some(body))
            .send()
            .await;
        assert_eq!(a.status, status, "{a:?}");
        sample.check("patch", one, &a);
    }

    // An assistant a running callout uses cannot be deleted.
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let callout = app
        .create_callout(&json!({
            "name": "Ticket 4711", "assistant": "ticket-bot",
            "contacts": [{"name": "Alice", "phone": phone(1)}],
            "policy": {"attempts_per_contact": 1, "input_timeout_s": 60}
        }))
        .await;
    let in_use = send(Method::DELETE, "/v1/assistants/ticket-bot", None)
        .send()
        .await;
    assert_eq!(in_use.status, 409, "{in_use:?}");
    sample.check("delete", one, &in_use);
    probe(
        &app,
        Method::POST,
        &format!("/v1/callouts/{callout}/cancel"),
    )
    .send()
    .await;
    for status in [204, 404] {
        let a = send(Method::DELETE, &format!("/v1/assistants/{id}"), None)
            .send()
            .await;
        assert_eq!(a.status, status, "{a:?}");
        sample.check("delete", one, &a);
    }
    let forbidden = send(Method::DELETE, "/v1/assistants/sandbox", None)
        .token(Some(DISPATCHER_TOKEN))
        .send()
        .await;
    sample.check("delete", one, &forbidden);

    // The conversation tools, on the sandbox's simulated assistant.
    let tool = |t: &str| format!("/v1/assistants/{{id}}/sessions/{{session}}/{t}");
    let at = |session: &str, t: &str| format!("/v1/assistants/sandbox/sessions/{session}/{t}");
    let turns = [
        (
            "launch",
            json!({"variables": {"contact_name": "Alice", "ticket": "Flood."}}),
            200,
        ),
        ("interact", json!({"digits": "1"}), 200),
        ("interact", json!({"no_reply": true}), 409),
        ("interact", json!({"text": "hello"}), 200),
        ("interact", json!({"action": {"type": "no-reply"}}), 200),
        ("interact", json!({"digits": "1", "text": "yes"}), 422),
    ];
    for (t, body, status) in turns {
        let a = send(Method::POST, &at("demo", t), Some(body)).send().await;
        assert_eq!(a.status, status, "{t}: {a:?}");
        sample.check("post", &tool(t), &a);
    }
    let launched = send(Method::POST, &at("demo", "launch"), None)
        .token(Some(DISPATCHER_TOKEN))
        .send()
        .await;
    assert_eq!(launched.json["input"]["sent_as"], "launch", "{launched:?}");
    sample.check("post", &tool("launch"), &launched);
    for session in ["demo", "never-launched"] {
        let a = send(Method::GET, &at(session, "state"), None).send().await;
        assert_eq!(a.status, 200, "{a:?}");
        sample.check("get", &tool("state"), &a);
    }
    let patched = send(
        Method::PATCH,
        &at("demo", "variables"),
        Some(json!({"ticket": "4711", "priority": 2})),
    )
    .send()
    .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    sample.check("patch", &tool("variables"), &patched);
    let saved = send(
        Method::PUT,
        &at("demo", "transcript"),
        Some(json!({"user_name": "QA"})),
    )
    .send()
    .await;
    assert_eq!(saved.status, 200, "{saved:?}");
    sample.check("put", &tool("transcript"), &saved);
    let forgotten = send(Method::DELETE, &at("demo", "state"), None)
        .send()
        .await;
    assert_eq!(forgotten.status, 204, "{forgotten:?}");
    sample.check("delete", &tool("state"), &forgotten);
    for (method, t, path) in [
        ("get", "state", at("bad session", "state")),
        (
            "get",
            "state",
            "/v1/assistants/nope/sessions/s/state".into(),
        ),
        ("patch", "variables", at("demo", "variables")),
    ] {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let a = send(m, &path, Some(json!({"nested": {"a": 1}})))
            .send()
            .await;
        sample.check(method, &tool(t), &a);
    }
    let unread = send(Method::PUT, &at("demo", "transcript"), None)
        .body("application/json", "{")
        .send()
        .await;
    sample.check("put", &tool("transcript"), &unread);
    let anonymous = send(Method::GET, &at("demo", "state"), None)
        .token(None)
        .send()
        .await;
    sample.check("get", &tool("state"), &anonymous);

    // Voiceflow's failures, as the tools report them.
    for (fault, status) in [(401, 502), (503, 502), (429, 503)] {
        vf.fail_next(vec![fault]);
        let a = send(Method::POST, &at("demo", "launch"), None).send().await;
        assert_eq!(a.status, status, "{a:?}");
        assert!(
            a.json["error"]["code"]
                .as_str()
                .unwrap()
                .starts_with("voiceflow_")
        );
        sample.check("post", &tool("launch"), &a);
    }
    vf.set_latency(std::time::Duration::from_millis(1500));
    let slow = send(Method::GET, &at("demo", "state"), None).send().await;
    vf.set_latency(std::time::Duration::ZERO);
    assert_eq!(slow.status, 504, "{slow:?}");
    sample.check("get", &tool("state"), &slow);

    // The sample covers every kind of answer the assistants API gives.
    for s in [
        200, 201, 204, 400, 401, 403, 404, 409, 413, 422, 502, 503, 504,
    ] {
        assert!(
            sample.statuses.contains(&s),
            "no {s} in the sample: {:?}",
            sample.statuses
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_teams_and_schedules_answers_validate_against_the_documented_schemas() {
    let app = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    let doc = document(&app).await;
    let mut sample = Sample {
        doc: &doc,
        statuses: BTreeSet::new(),
    };
    let send = |method: Method, path: &str, body: Option<Value>| {
        let p = probe(&app, method, path);
        match body {
            Some(b) => p.json(&b),
            None => p,
        }
    };
    let (teams, team) = ("/v1/teams", "/v1/teams/{id}");
    let body = json!({"name": "linemen", "contacts": [
        {"name": "A", "phone": phone(1), "language": "el-GR"}, {"name": "B", "phone": phone(2)}
    ]});
    let created = send(Method::POST, teams, Some(body.clone())).send().await;
    assert_eq!(created.status, 201, "{created:?}");
    sample.check("post", teams, &created);
    sample.check(
        "post",
        teams,
        &send(Method::POST, teams, Some(body.clone())).send().await,
    );
    sample.check(
        "post",
        teams,
        &send(Method::POST, teams, Some(json!({"name": 1})))
            .send()
            .await,
    );
    sample.check("get", teams, &send(Method::GET, teams, None).send().await);
    for path in ["/v1/teams/linemen", "/v1/teams/nobody"] {
        sample.check("get", team, &send(Method::GET, path, None).send().await);
    }
    sample.check(
        "put",
        team,
        &send(Method::PUT, "/v1/teams/linemen", Some(body))
            .send()
            .await,
    );
    let unauthorized = probe(&app, Method::GET, teams).token(None).send().await;
    sample.check("get", teams, &unauthorized);
    let csv = probe(&app, Method::GET, "/v1/teams/linemen/contacts.csv")
        .send()
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"), "{csv:?}");
    assert!(
        doc["paths"]["/v1/teams/{id}/contacts.csv"]["get"]["responses"]["200"]["content"]
            ["text/csv"]
            .is_object()
    );

    let (schedules, schedule) = ("/v1/schedules", "/v1/schedules/{id}");
    let mut callout = ticket_callout(1);
    callout.as_object_mut().unwrap().remove("contacts");
    callout["team"] = json!("linemen");
    let new = json!({"name": "roster", "cron": "0 7 * * MON-FRI", "timezone": "Europe/Athens", "callout": callout});
    let created = send(Method::POST, schedules, Some(new)).send().await;
    assert_eq!(created.status, 201, "{created:?}");
    sample.check("post", schedules, &created);
    let bad = json!({"name": "x", "cron": "nope", "callout": {}});
    sample.check(
        "post",
        schedules,
        &send(Method::POST, schedules, Some(bad)).send().await,
    );
    sample.check(
        "get",
        schedules,
        &send(Method::GET, schedules, None).send().await,
    );
    let id = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/schedules/{id}");
    sample.check(
        "get",
        schedule,
        &send(Method::GET, &path, None).send().await,
    );
    let pause = "/v1/schedules/{id}/pause";
    sample.check(
        "post",
        pause,
        &send(Method::POST, &format!("{path}/pause"), None)
            .send()
            .await,
    );
    let resume = "/v1/schedules/{id}/resume";
    sample.check(
        "post",
        resume,
        &send(Method::POST, &format!("{path}/resume"), None)
            .send()
            .await,
    );
    sample.check(
        "delete",
        schedule,
        &send(Method::DELETE, &path, None).send().await,
    );
    sample.check(
        "get",
        schedule,
        &send(Method::GET, &path, None).send().await,
    );
    sample.check(
        "delete",
        team,
        &send(Method::DELETE, "/v1/teams/linemen", None).send().await,
    );
    for s in [200, 201, 204, 401, 404, 409, 422] {
        assert!(
            sample.statuses.contains(&s),
            "no {s} in the sample: {:?}",
            sample.statuses
        );
    }
}
