//! `GET /openapi.json` is true to the code: every public route of the router is
//! documented (and every documented operation is routed), and real responses of
//! every documented kind validate against the document's schemas.
//!
//! Routes are read from the source of `src/http/`, where each is registered as
//! `.route("<path>", get(..).post(..))`: axum cannot list a router's routes, and
//! reading the source is what catches a route added without its documentation.
//! Schemas are checked with a small validator for the subset of JSON Schema the
//! document uses (`$ref`, `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, `oneOf`, `allOf`, bounds, `pattern`,
//! `format: date-time`).

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, spawn_app, ticket_callout};
use crate::probe::{Answer, probe, upload};

const LONG: std::time::Duration = std::time::Duration::from_secs(40);

/// `(method, path)` of every route registered in `src/http/`, webhooks excepted.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let route = Regex::new(r#"\.route\(\s*"([^"]+)"\s*,"#).unwrap();
    let method = Regex::new(r"\b(get|post|put|patch|delete)\(").unwrap();
    let mut found = BTreeSet::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let starts: Vec<(usize, String)> = route
            .captures_iter(&source)
            .map(|c| (c.get(0).unwrap().end(), c[1].to_owned()))
            .collect();
        // A path built at run time (`&format!(..)`) would be invisible here.
        assert_eq!(
            starts.len(),
            source.matches(".route(").count(),
            "{}: every .route( needs a literal path",
            path.display()
        );

        for (i, (start, path)) in starts.iter().enumerate() {
            // The method routers of a route run until the next route (or the file's end).
            let end = starts.get(i + 1).map_or(source.len(), |(s, _)| *s);
            let window = &source[*start..end];
            let window = &window[..window.find(")\n").map_or(window.len(), |e| e + 1)];
            for m in method.captures_iter(window) {
                found.insert((m[1].to_owned(), path.clone()));
            }
        }
    }
    found.retain(|(_, path)| !path.starts_with("/routee/"));
    found
}

async fn document(app: &TestApp) -> Value {
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

    let routes = routes_in_source();
    assert!(
        routes.contains(&("post".into(), "/v1/callouts".into())),
        "the source scan found {routes:?}"
    );
    for (method, path) in &routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{} {path} is routed but not in /openapi.json",
            method.to_uppercase()
        );
    }

    let id = app.create_callout(&ticket_callout(1)).await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            assert!(
                routes.contains(&(method.clone(), path.clone())),
                "{} {path} is documented but not routed",
                method.to_uppercase()
            );
            let concrete = path.replace("{id}", &id);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let a = probe(&app, m, &concrete)
                .json(&ticket_callout(1))
                .send()
                .await;
            assert!(
                a.status != 405 && a.json["error"]["message"] != "no such route",
                "{method} {path}: {a:?}"
            );
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
fn assert_conforms(doc: &Value, method: &str, path: &str, answer: &Answer) {
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
