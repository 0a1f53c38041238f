//! Hostile input against the running gateway: oversized, nested, mis-encoded and
//! ill-typed bodies, call lists too long or full of wrong numbers, template
//! injection through variables and names, path ids of every wrong shape, and
//! garbage webhook bodies. Every bad input must be a 4xx with our JSON error body
//! naming what is wrong, and must change nothing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    ADMIN_TOKEN, Options, TestApp, fast_policy, phone, spawn_app, ticket_callout,
};
use crate::probe::{Answer, assert_nothing_created, create, probe, upload};

const LONG: Duration = Duration::from_secs(40);

async fn app_with(env: &[(&str, &str)]) -> TestApp {
    let mut opts = Options {
        api_keys: true,
        ..Options::default()
    };
    for (k, v) in env {
        opts = opts.env(k, v);
    }
    spawn_app(opts).await
}

/// A valid ticket callout with these contacts.
fn callout_with(contacts: Value) -> Value {
    let mut body = ticket_callout(1);
    body["contacts"] = contacts;
    body
}

/// A valid callout without contacts, for the `callout` part of a CSV upload.
fn callout_part() -> Value {
    let mut body = ticket_callout(1);
    body.as_object_mut().expect("object").remove("contacts");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_bytes_are_a_413_with_our_error_body_and_create_nothing() {
    let app = app_with(&[("MAX_BODY_BYTES", "4096")]).await;

    let mut big = ticket_callout(1);
    big["variables"]["ticket"] = json!("x".repeat(5000));
    create(&app, &big)
        .await
        .assert_error(413, "payload_too_large");

    let csv = format!("name,phone\n{}", "Alice,+306900000001\n".repeat(300));
    upload(&app, csv.as_bytes(), Some(&callout_part()))
        .await
        .assert_error(413, "payload_too_large");

    // Without a Content-Length the limit still holds: a chunked body is cut off
    // once it passes the limit.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/callouts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let chunk = format!("400\r\n{}\r\n", " ".repeat(0x400));
    for _ in 0..8 {
        // The server may answer and close before the body is all sent.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(LONG, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");

    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_refused_without_hurting_the_gateway() {
    let app = app_with(&[]).await;

    // Far deeper than any parser should recurse: a 400, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let a = probe(&app, Method::POST, "/v1/callouts")
        .body("application/json", deep.clone())
        .send()
        .await;
    a.assert_error(400, "bad_request");
    assert!(
        a.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );

    // Nesting that parses still cannot hide in a variable or a contact.
    let mut nested = json!("leaf");
    for _ in 0..100 {
        nested = json!({ "a": nested });
    }
    let mut body = ticket_callout(1);
    body["variables"]["ticket"] = nested.clone();
    body["contacts"] = json!([nested]);
    let a = create(&app, &body).await;
    a.assert_names("variables.ticket");
    a.assert_names("contacts[0].a");

    let a = upload(
        &app,
        b"name,phone\nA,+306900000001\n",
        Some(&callout_part()),
    )
    .await;
    assert_eq!(a.status, 201, "a plain upload still works: {a:?}");
    let (ct, multipart) = crate::probe::multipart(b"name,phone\nB,+306900000002\n", None);
    let with_deep_part = String::from_utf8(multipart).unwrap().replacen(
        "--hostile-boundary-7MA4YWxkTrZu0gW\r\n",
        &format!(
            "--hostile-boundary-7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"callout\"\r\n\r\n{deep}\r\n--hostile-boundary-7MA4YWxkTrZu0gW\r\n"
        ),
        1,
    );
    probe(&app, Method::POST, "/v1/callouts")
        .body(&ct, with_deep_part)
        .send()
        .await
        .assert_names("callout");

    let h = probe(&app, Method::GET, "/healthz").send().await;
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(crate::probe::callout_ids(&app).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_refused_in_json_bodies_csv_files_and_callout_parts() {
    let app = app_with(&[]).await;

    let mut body = ticket_callout(1).to_string().into_bytes();
    let at = body.windows(6).position(|w| w == b"Ticket").unwrap();
    body[at] = 0xff;
    probe(&app, Method::POST, "/v1/callouts")
        .body("application/json", body)
        .send()
        .await
        .assert_error(400, "bad_request");

    // A lone surrogate is valid JSON syntax but not text.
    let lone = r#"{"name": "\ud800", "dialplan": "ticket-escalation", "variables": {"ticket": "x"}, "contacts": [{"name": "A", "phone": "+306900000001"}]}"#;
    probe(&app, Method::POST, "/v1/callouts")
        .body("application/json", lone)
        .send()
        .await
        .assert_error(400, "bad_request");

    let a = upload(
        &app,
        b"name,phone\nAl\xffce,+306900000001\n",
        Some(&callout_part()),
    )
    .await;
    a.assert_names("contacts");
    assert!(a.detail("contacts").unwrap().contains("UTF-8"), "{a:?}");

    let (ct, multipart) = crate::probe::multipart(b"name,phone\nA,+306900000001\n", None);
    let mut with_bad_part = b"--hostile-boundary-7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"callout\"\r\n\r\n{\"name\": \"\xff\"}\r\n".to_vec();
    with_bad_part.extend_from_slice(&multipart);
    probe(&app, Method::POST, "/v1/callouts")
        .body(&ct, with_bad_part)
        .send()
        .await
        .assert_names("callout");

    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_lists_over_max_contacts_are_one_problem_and_floods_get_a_short_answer() {
    let app = app_with(&[("MAX_CONTACTS", "100")]).await;

    let a = create(&app, &ticket_callout(101)).await;
    a.assert_names("contacts");
    assert_eq!(a.fields(), ["contacts"], "one problem, not 101");
    assert!(a.detail("contacts").unwrap().contains("MAX_CONTACTS"));

    let rows: String = (0..101)
        .map(|i| format!("Person {i},+3069{i:08}\n"))
        .collect();
    let a = upload(
        &app,
        format!("name,phone\n{rows}").as_bytes(),
        Some(&callout_part()),
    )
    .await;
    a.assert_names("contacts");
    assert!(a.detail("contacts").unwrap().contains("MAX_CONTACTS"));

    // Half a million one-byte contacts in just under 1 MiB.
    let flood = format!(
        r#"{{"name": "x", "dialplan": "ticket-escalation", "variables": {{"ticket": "x"}}, "contacts": [{}1]}}"#,
        "1,".repeat(500_000)
    );
    let a = probe(&app, Method::POST, "/v1/callouts")
        .body("application/json", flood)
        .send()
        .await;
    a.assert_names("contacts");
    assert!(a.len < 16 * 1024, "a flood got a {} byte answer", a.len);

    // Half a million broken CSV rows.
    let rows = format!("name,phone\n{}", "x\n".repeat(500_000));
    let a = upload(&app, rows.as_bytes(), Some(&callout_part())).await;
    a.assert_error(422, "invalid_request");
    assert!(a.fields().len() <= 101, "{}", a.fields().len());
    assert!(a.len < 64 * 1024, "a flood got a {} byte answer", a.len);

    // Fifty thousand unknown fields.
    let mut wide = ticket_callout(1);
    for i in 0..50_000 {
        wide[format!("f{i}")] = json!(0);
    }
    let a = create(&app, &wide).await;
    a.assert_names("f0");
    assert_eq!(a.fields().len(), 101);
    assert_eq!(a.fields().last().unwrap(), "request");
    assert!(
        a.json["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("50000 problems")
    );

    assert_nothing_created(&app).await;
}

/// Phone numbers of every wrong shape, with why each is wrong.
fn wrong_phones() -> Vec<(&'static str, Value)> {
    vec![
        ("no plus", json!("306900000001")),
        ("letters", json!("+30690000ABCD")),
        ("vanity letters", json!("+1-800-FLOWERS")),
        ("too short", json!("+30123")),
        ("too long", json!("+3069000000012345678")),
        ("far too long", json!(format!("+{}", "1".repeat(100)))),
        ("fullwidth digits", json!("+３０６９００００００１")),
        ("arabic-indic digits", json!("+٣٠٦٩٠٠٠٠٠٠٠١")),
        ("spaces only", json!("    ")),
        ("empty", json!("")),
        ("a plus alone", json!("+")),
        ("premium rate", json!("+1 900 555 0123")),
        ("no such country code", json!("+999 123456789")),
        ("satellite", json!("+881 6 1234 5678")),
        ("international freephone", json!("+800 1234 5678")),
        ("an extension", json!("+306900000001 ext. 12")),
        ("two pluses", json!("++306900000001")),
        ("a zero-width space", json!("+30690000000\u{200b}1")),
        ("a hash", json!("+306900000001#")),
        ("a tel: URI", json!("tel:+306900000001")),
        ("a NUL", json!("+30690000\u{0}0001")),
        ("a number, not a string", json!(306_900_000_001_u64)),
        ("null", Value::Null),
        ("an object", json!({"phone": "+306900000001"})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_shape_of_phone_number_is_named_by_its_index() {
    let app = app_with(&[]).await;
    let phones = wrong_phones();
    let contacts: Vec<Value> = phones
        .iter()
        .enumerate()
        .map(|(i, (_, p))| json!({"name": format!("Person {i}"), "phone": p}))
        .collect();
    let a = create(&app, &callout_with(json!(contacts))).await;
    a.assert_error(422, "invalid_request");
    for (i, (why, _)) in phones.iter().enumerate() {
        let field = format!("contacts[{i}].phone");
        assert!(
            a.detail(&field).is_some(),
            "{why}: no problem named {field} in {:?}",
            a.json["error"]["details"]
        );
    }
    assert!(a.detail("contacts[0].phone").unwrap().contains("E.164"));
    assert!(a.detail("contacts[11].phone").unwrap().contains("premium"));

    // The same numbers in a CSV file, each named by its index and its line.
    let csv_phones: Vec<(&str, String)> = phones
        .iter()
        .filter_map(|(why, p)| p.as_str().map(|s| (*why, s.to_owned())))
        .collect();
    let rows: String = csv_phones
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("Person {i},\"{p}\"\n"))
        .collect();
    let a = upload(
        &app,
        format!("name,phone\n{rows}").as_bytes(),
        Some(&callout_part()),
    )
    .await;
    a.assert_error(422, "invalid_request");
    for (i, (why, _)) in csv_phones.iter().enumerate() {
        let message = a
            .detail(&format!("contacts[{i}].phone"))
            .unwrap_or_else(|| panic!("{why}: row {i} not named in {:?}", a.json));
        assert!(
            message.starts_with(&format!("line {}: ", i + 2)),
            "{why}: {message}"
        );
    }

    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_listed_twice_is_a_duplicate_however_it_is_written() {
    let app = app_with(&[]).await;
    let a = create(
        &app,
        &callout_with(json!([
            {"name": "A", "phone": "+306900000001"},
            {"name": "B", "phone": "+30 690 000 0001"},
            {"name": "C", "phone": "+30 (690) 000-0001"},
            {"name": "D", "phone": "+306900000002"},
        ])),
    )
    .await;
    assert_eq!(a.fields(), ["contacts[1].phone", "contacts[2].phone"]);
    assert!(
        a.detail("contacts[2].phone")
            .unwrap()
            .contains("duplicate of contacts[0]")
    );
    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_and_wrong_types_are_each_named() {
    let app = app_with(&[]).await;
    let a = create(
        &app,
        &json!({
            "name": 5,
            "dialplan": "ticket-escalation",
            "variables": {"ticket": "x", "bad-name": "y", "nested": {"a": 1}},
            "contacts": [
                {"name": "A", "phone": "+306900000001", "email": "a@example.com"},
                "just a string",
                {"name": "", "phone": "+306900000003", "language": "xx-YY"},
            ],
            "policy": {"reprompts": -1, "retry_delay_s": 1.5, "input_timeout_s": "10", "bogus": 1},
            "notify_url": 5,
            "extra": true,
        }),
    )
    .await;
    for field in [
        "name",
        "variables.bad-name",
        "variables.nested",
        "contacts[0].email",
        "contacts[1]",
        "contacts[2].name",
        "contacts[2].language",
        "policy.reprompts",
        "policy.retry_delay_s",
        "policy.input_timeout_s",
        "policy.bogus",
        "notify_url",
        "extra",
    ] {
        a.assert_names(field);
    }

    // A field with no name is still named.
    let mut nameless = ticket_callout(1);
    nameless[""] = json!(1);
    create(&app, &nameless).await.assert_names("\"\"");

    for body in [json!([]), json!("x"), json!(1), Value::Null, json!(true)] {
        create(&app, &body).await.assert_names("body");
    }
    let cases: Vec<(&str, Value)> = vec![
        ("assistant", {
            let mut b = ticket_callout(1);
            b["assistant"] = json!("sandbox");
            b
        }),
        ("dialplan", {
            let mut b = ticket_callout(1);
            b.as_object_mut().unwrap().remove("dialplan");
            b
        }),
        ("dialplan", {
            let mut b = ticket_callout(1);
            b["dialplan"] = json!("../../etc/passwd");
            b
        }),
        ("variables.ticket", {
            let mut b = ticket_callout(1);
            b["variables"] = json!({});
            b
        }),
        ("variables.ticket", {
            let mut b = ticket_callout(1);
            b["variables"]["ticket"] = json!("x".repeat(5000));
            b
        }),
        ("contacts", {
            let mut b = ticket_callout(1);
            b["contacts"] = json!({});
            b
        }),
        ("contacts", {
            let mut b = ticket_callout(1);
            b["contacts"] = json!([]);
            b
        }),
        ("policy", {
            let mut b = ticket_callout(1);
            b["policy"] = json!("fast");
            b
        }),
        ("policy.attempts_per_contact", {
            let mut b = ticket_callout(1);
            b["policy"] = json!({"attempts_per_contact": 0});
            b
        }),
        ("name", {
            let mut b = ticket_callout(1);
            b["name"] = json!("x".repeat(201));
            b
        }),
        ("name", {
            let mut b = ticket_callout(1);
            b["name"] = json!("Ticket\u{7}4711");
            b
        }),
        ("notify_url", {
            let mut b = ticket_callout(1);
            b["notify_url"] = json!("javascript:alert(1)");
            b
        }),
        ("assistant", {
            let mut b = ticket_callout(1);
            b.as_object_mut().unwrap().remove("dialplan");
            b["assistant"] = json!("no-such-assistant");
            b
        }),
    ];
    for (field, body) in cases {
        create(&app, &body).await.assert_names(field);
    }

    probe(&app, Method::POST, "/v1/callouts")
        .body("text/plain", ticket_callout(1).to_string())
        .send()
        .await
        .assert_error(415, "unsupported_media_type");
    probe(&app, Method::POST, "/v1/callouts")
        .body("application/json", "")
        .send()
        .await
        .assert_error(400, "bad_request");

    // CSV uploads: unknown columns and parts, a missing phone column, contacts twice.
    let part = callout_part();
    upload(
        &app,
        b"name,phone,email\nA,+306900000001,a@x\n",
        Some(&part),
    )
    .await
    .assert_names("contacts");
    upload(&app, b"name,telephone\nA,+306900000001\n", Some(&part))
        .await
        .assert_names("contacts");
    upload(
        &app,
        b"name,phone\nA,+306900000001\n",
        Some(&ticket_callout(1)),
    )
    .await
    .assert_names("contacts");
    upload(&app, b"name,phone\nA,+306900000001,extra\n", Some(&part))
        .await
        .assert_names("contacts[0]");
    let (ct, body) = crate::probe::multipart(b"name,phone\nA,+306900000001\n", Some(&part));
    let body = String::from_utf8(body)
        .unwrap()
        .replace("name=\"callout\"", "name=\"surprise\"");
    probe(&app, Method::POST, "/v1/callouts")
        .body(&ct, body)
        .send()
        .await
        .assert_names("surprise");
    let (ct, body) = crate::probe::multipart(b"name,phone\nA,+306900000001\n", Some(&part));
    let body = String::from_utf8(body)
        .unwrap()
        .replace("name=\"callout\"", "name=\"\"");
    probe(&app, Method::POST, "/v1/callouts")
        .body(&ct, body)
        .send()
        .await
        .assert_names("\"\"");
    let (ct, body) = crate::probe::multipart(b"", Some(&part));
    let body = String::from_utf8(body)
        .unwrap()
        .replace("name=\"contacts\"", "name=\"callout2\"");
    probe(&app, Method::POST, "/v1/callouts")
        .body(&ct, body)
        .send()
        .await
        .assert_names("contacts");

    let q = probe(
        &app,
        Method::GET,
        "/v1/callouts?limit=0&status=sleeping&before=zz",
    )
    .send()
    .await;
    for field in ["limit", "status", "before"] {
        q.assert_names(field);
    }
    for query in [
        "limit=many",
        "limit=-1",
        "limit=99999999999999999999999",
        "colour=red",
    ] {
        probe(&app, Method::GET, &format!("/v1/callouts?{query}"))
            .send()
            .await
            .assert_error(400, "bad_request");
    }

    assert_nothing_created(&app).await;
}

/// Variable values (and contact names) that try to become something other than
/// text.
fn injections() -> Vec<(&'static str, String)> {
    vec![
        (
            "JSON that looks like verbs",
            r#""}]},{"type":"PLAY","fileURL":"https://evil.example/x.wav"},{"type":"DIAL","from":"x","to":{"phone":"+19005550100"}},{"x":""#.to_owned(),
        ),
        ("another placeholder", "{{contact_name}} and {{ ticket }} and {{callout_name}}".to_owned()),
        ("a URL", "https://evil.example/prompt.wav?eventUrl=https://evil.example/collect".to_owned()),
        (
            "SSML",
            r#"<speak><audio src="https://evil.example/a.wav"/><break time="60s"/>Hi</speak>"#.to_owned(),
        ),
        ("an entity", "&lt;audio src=&quot;https://evil.example/b.wav&quot;/&gt;".to_owned()),
        ("control characters", "line one\r\nline two\u{0}\u{1b}[31m red".to_owned()),
        ("a 1000-character value", "€".repeat(1000)),
    ]
}

/// Every verb of a dialplan the carrier received, checked for what text must never do.
fn assert_inert(plan: &Value, base: &str, what: &str) {
    let verbs = plan["verbs"].as_array().expect("verbs");
    assert!(!verbs.is_empty(), "{what}: empty dialplan");
    for (i, verb) in verbs.iter().enumerate() {
        match verb["type"].as_str().unwrap_or("") {
            "SAY" => {
                let text = verb["message"]["text"].as_str().unwrap_or("");
                assert!(
                    text.chars().count() <= 1000,
                    "{what}: a SAY of {} characters",
                    text.chars().count()
                );
                assert!(
                    !text.contains(['<', '>']) && !text.chars().any(char::is_control),
                    "{what}: markup or control characters reached a SAY: {text:?}"
                );
                let keys: Vec<&String> = verb["message"].as_object().unwrap().keys().collect();
                assert!(
                    keys.iter()
                        .all(|k| ["text", "language", "gender"].contains(&k.as_str())),
                    "{what}: {keys:?}"
                );
            }
            "PAUSE" => {
                let d = verb["duration"].as_u64().unwrap();
                assert!((1..=60).contains(&d), "{what}: pause {d}");
            }
            "PLAY" => {
                // Only the gateway's own silence (a wait for a key).
                let url = verb["fileURL"].as_str().unwrap_or("");
                assert!(
                    url.starts_with(&format!("{base}/audio/")) && url.ends_with(".wav"),
                    "{what}: a PLAY of {url}"
                );
            }
            "COLLECT" => {
                assert_eq!(i, verbs.len() - 1, "{what}: COLLECT must come last");
                let url = verb["eventUrl"].as_str().unwrap();
                assert!(
                    url.starts_with(&format!("{base}/routee/collect/")) && url.contains("?sig="),
                    "{what}: eventUrl changed to {url}"
                );
            }
            other => panic!("{what}: a {other} verb appeared: {verb}"),
        }
    }
}

fn verb_types(plan: &Value) -> Vec<String> {
    plan["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["type"].as_str().unwrap().to_owned())
        .collect()
}

fn said(plan: &Value) -> String {
    plan["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["message"]["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_and_names_can_never_add_verbs_change_urls_or_overflow_a_say() {
    let app = app_with(&[]).await;
    let values = injections();
    // Callout k of each kind calls its own number: template calls 10.., assistant calls 40..
    let mut ids = Vec::new();
    for (k, (_, value)) in values.iter().enumerate() {
        let name: String = value
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        for (offset, script) in [
            (10, json!({"dialplan": "ticket-escalation"})),
            (40, json!({"assistant": "sandbox"})),
        ] {
            let mut body = json!({
                "name": "Ticket 4711",
                "variables": {"ticket": value},
                "contacts": [{"name": name, "phone": phone(offset + k as u32)}],
                "policy": fast_policy(),
            });
            for (key, v) in script.as_object().unwrap() {
                body[key] = v.clone();
            }
            let a = create(&app, &body).await;
            assert_eq!(a.status, 201, "{a:?}");
            ids.push(a.json["id"].as_str().unwrap().to_owned());
        }
    }
    let baseline = {
        let id = app.create_callout(&ticket_callout(1)).await;
        app.wait_settled(&id, LONG).await;
        let call = app
            .sim
            .calls()
            .into_iter()
            .find(|c| c.to == phone(1))
            .unwrap();
        serde_json::to_value(&call.dialplan).unwrap()
    };
    for id in &ids {
        let c = app.wait_settled(id, LONG).await;
        assert_eq!(c["status"], "accepted", "{c}");
    }

    let calls = app.sim.calls();
    for (k, (what, value)) in values.iter().enumerate() {
        for offset in [10, 40] {
            let what = format!(
                "{what} ({})",
                if offset == 10 {
                    "template"
                } else {
                    "assistant"
                }
            );
            let call = calls
                .iter()
                .find(|c| c.to == phone(offset + k as u32))
                .unwrap_or_else(|| panic!("{what}: never called"));
            let placed = serde_json::to_value(&call.dialplan).unwrap();
            assert_inert(&placed, &app.base, &what);
            for post in &call.event_posts {
                if let Some(answer) = &post.answer {
                    assert_inert(answer, &app.base, &what);
                }
            }
            if offset == 10 {
                // The template's verbs are the same whatever the variable holds.
                assert_eq!(verb_types(&placed), verb_types(&baseline), "{what}");
            }
            let heard = said(&placed);
            if value.contains("{{contact_name}}") {
                assert!(
                    heard.contains("{{contact_name}}"),
                    "{what}: expanded: {heard}"
                );
            }
            if value.contains("evil.example") && !value.starts_with('<') {
                assert!(
                    heard.contains("evil.example"),
                    "{what}: the text itself is said: {heard}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_ids_of_every_wrong_shape_are_a_404_never_a_500() {
    let app = app_with(&[]).await;
    let id = app.create_callout(&ticket_callout(1)).await;
    let long = "a".repeat(10_000);
    let ids = [
        "x",
        "0",
        &"0".repeat(31),
        &"0".repeat(33),
        &id.to_uppercase(),
        "0190a0b0-c0d0-7e0f-8a0b-0c0d0e0f0a0b",
        "%00",
        "%FF",
        "%C0%AF",
        "%2e%2e",
        "..",
        "%2F",
        "%20",
        "ü",
        "null",
        "'%20OR%201=1--",
        "%7B%7Bid%7D%7D",
        &long,
        "0190a0b0c0d07e0f8a0b0c0d0e0f0a0b",
    ];
    for bad in ids {
        for (method, path) in [
            (Method::GET, format!("/v1/callouts/{bad}")),
            (Method::POST, format!("/v1/callouts/{bad}/cancel")),
        ] {
            let a = probe(&app, method.clone(), &path).send().await;
            a.assert_error(404, "not_found");
        }
    }
    for path in [
        "/v1/callouts/",
        "/v1/callouts//cancel",
        &format!("/v1/callouts/{id}/cancel/now"),
        &format!("/v1/callouts/{id}/%2e%2e/%2e%2e/healthz"),
        "/routee/status/x/y",
        "/routee/collect/x/y/z",
        &format!("/routee/collect/{id}/{id}/-1"),
        &format!("/routee/collect/{id}/{id}/99999999999999999999"),
    ] {
        for method in [Method::GET, Method::POST] {
            let a = probe(&app, method.clone(), path).send().await;
            assert!(a.status == 404 || a.status == 405, "{method} {path}: {a:?}");
            a.assert_error(
                a.status,
                if a.status == 404 {
                    "not_found"
                } else {
                    "method_not_allowed"
                },
            );
        }
    }
    for (method, path) in [
        (Method::DELETE, "/v1/callouts".to_owned()),
        (Method::PUT, format!("/v1/callouts/{id}")),
        (Method::GET, format!("/v1/callouts/{id}/cancel")),
    ] {
        probe(&app, method, &path)
            .send()
            .await
            .assert_error(405, "method_not_allowed");
    }
    assert_eq!(crate::probe::callout_ids(&app).await, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assistant_and_session_segments_that_are_not_utf8_get_our_error_body() {
    let app = app_with(&[]).await;
    let assistant = |tail: &str| format!("/v1/assistants/%FF{tail}");
    let session = |s: &str, tool: &str| format!("/v1/assistants/sandbox/sessions/{s}/{tool}");
    let mut not_found = vec![
        (Method::GET, assistant("")),
        (Method::PATCH, assistant("")),
        (Method::DELETE, assistant("")),
    ];
    for (method, tool) in [
        (Method::POST, "launch"),
        (Method::POST, "interact"),
        (Method::GET, "state"),
        (Method::DELETE, "state"),
        (Method::PATCH, "variables"),
        (Method::PUT, "transcript"),
    ] {
        not_found.push((method.clone(), assistant(&format!("/sessions/s/{tool}"))));
        let a = probe(&app, method.clone(), &session("%C0%AF", tool))
            .json(&json!({"digits": "1"}))
            .send()
            .await;
        a.assert_names("session");
        let a = probe(&app, method, &session("%FF", tool)).send().await;
        a.assert_names("session");
    }
    for (method, path) in not_found {
        let a = probe(&app, method, &path)
            .json(&json!({"name": "renamed"}))
            .send()
            .await;
        a.assert_error(404, "not_found");
    }
}

/// Sends `body` to a webhook URL; returns the answer.
async fn post_webhook(app: &TestApp, url: &str, content_type: &str, body: &[u8]) -> Answer {
    probe(app, Method::POST, url)
        .token(None)
        .body(content_type, body.to_vec())
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_webhook_bodies_change_nothing_and_collect_still_answers_a_dialplan() {
    let app = app_with(&[]).await;
    let id = app.create_callout(&ticket_callout(1)).await;
    let before = app.wait_settled(&id, LONG).await;
    let call = before["attempts"][0]["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (callout_id, call_id) = (id.parse().unwrap(), call.parse().unwrap());
    let status_url = app.engine.status_url(callout_id, call_id);
    let collect_url = app.engine.collect_url(callout_id, call_id, 1);

    let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let json_garbage: [&[u8]; 10] = [
        b"",
        b"not json",
        b"{}",
        b"[]",
        b"null",
        b"{\"status\": {}}",
        b"{\"status\": null}",
        b"{\"messageId\": \"m\"}",
        b"\xff\xfe{\"status\": \"Completed\"}",
        deep.as_bytes(),
    ];
    let form_garbage: [&[u8]; 4] = [b"%%%=%%%", b"a=b", b"\xff=\xff", b"messageId=m&to=x"];
    let cases = json_garbage.iter().map(|b| ("application/json", *b)).chain(
        form_garbage
            .iter()
            .map(|b| ("application/x-www-form-urlencoded", *b)),
    );
    for (ct, body) in cases {
        let what = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let a = post_webhook(&app, &status_url, ct, body).await;
        a.assert_error(400, "bad_request");

        let a = post_webhook(&app, &collect_url, ct, body).await;
        assert_eq!(a.status, 200, "{what}: {a:?}");
        let verbs = a.json["verbs"].as_array();
        assert!(
            verbs.is_some_and(|v| !v.is_empty()),
            "{what}: not a dialplan: {a:?}"
        );
    }
    assert_eq!(
        app.get_callout(&id).await,
        before,
        "a garbage webhook changed the callout"
    );
}
