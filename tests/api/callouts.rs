//! The dispatcher API: creating (JSON and CSV), reading, listing, validation,
//! roles, and the signed notification of the final state.

use std::time::Duration;

use ivr_gateway::sim::Behaviour;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ADMIN_TOKEN, DISPATCHER_TOKEN, Options, phone, spawn_app, ticket_callout};

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_csv_call_list_creates_the_same_callout_as_json() {
    let app = spawn_app(Options::default()).await;
    let csv = format!(
        "name,phone,language\nAlice,{},\n\"Bob, Jr.\",{},el-GR\n",
        phone(1),
        phone(2)
    );
    let form = reqwest::multipart::Form::new()
        .part("contacts", reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("list.csv").mime_str("text/csv").unwrap())
        .text(
            "callout",
            json!({"name": "Ticket 9", "dialplan": "ticket-escalation", "variables": {"ticket": "Fire"}}).to_string(),
        );
    let r = app
        .http
        .post(app.url("/v1/callouts"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["contacts"][1]["name"], "Bob, Jr.");
    assert_eq!(c["contacts"][1]["language"], "el-GR");
    assert_eq!(c["contacts"][0]["phone"], phone(1));
    assert_eq!(c["status"], "calling");
}

#[tokio::test]
async fn a_csv_with_bad_rows_names_each_row_and_creates_nothing() {
    let app = spawn_app(Options::default()).await;
    let csv = "name,phone\nAlice,+306900000001\n,12345\nCarol,+30690000000x\n";
    let form = reqwest::multipart::Form::new()
        .part(
            "contacts",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("l.csv"),
        )
        .text(
            "callout",
            json!({"name": "T", "dialplan": "ticket-escalation", "variables": {"ticket": "x"}})
                .to_string(),
        );
    let r = app
        .http
        .post(app.url("/v1/callouts"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"contacts[1].name")
            && fields.contains(&"contacts[1].phone")
            && fields.contains(&"contacts[2].phone"),
        "{e}"
    );
    assert!(
        e.to_string().contains("line 3"),
        "rows are located by line: {e}"
    );
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn every_bad_field_is_named_at_once_and_nothing_is_created() {
    let app = spawn_app(Options::default()).await;
    let body = json!({
        "name": "",
        "dialplan": "no-such-template",
        "variables": {"ticket": {"nested": true}},
        "contacts": [{"name": "A", "phone": "306900000001"}, {"name": "B", "phone": "+306900000002", "lang": "en"}],
        "policy": {"attempts_per_contact": 0, "retries": 3},
        "notify_url": "ftp://example.com/x",
        "colour": "blue"
    });
    let (status, e) = app.post_callout(&body).await;
    assert_eq!(status, 422);
    assert_eq!(e["error"]["code"], "invalid_request");
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for f in [
        "name",
        "dialplan",
        "variables.ticket",
        "contacts[0].phone",
        "contacts[1].lang",
        "policy.attempts_per_contact",
        "policy.retries",
        "notify_url",
        "colour",
    ] {
        assert!(fields.contains(&f), "{f} not named in {fields:?}");
    }
    let phone_error = e["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"] == "contacts[0].phone")
        .unwrap();
    assert!(
        phone_error["message"].as_str().unwrap().contains("E.164"),
        "{phone_error}"
    );
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn more_people_needed_than_listed_and_out_of_range_waves_are_named() {
    let app = spawn_app(Options::default()).await;
    let mut body = ticket_callout(2);
    body["policy"] = json!({"needed": 3, "parallel": 0, "rounds": 21, "round_delay_s": -1});
    let (status, e) = app.post_callout(&body).await;
    assert_eq!(status, 422, "{e}");
    let fields: Vec<&str> = e["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["policy.round_delay_s", "policy.parallel", "policy.rounds"],
        "{e}"
    );
    body["policy"] = json!({"needed": 3});
    let (status, e) = app.post_callout(&body).await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["details"][0]["field"], "policy.needed", "{e}");
    assert!(
        e["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("2 contacts"),
        "{e}"
    );
    assert_nothing_created(&app).await;
    body["policy"] = json!({"needed": 2, "parallel": 2, "rounds": 3, "round_delay_s": 60});
    let id = app.create_callout(&body).await;
    let c = app.get_callout(&id).await;
    assert_eq!(c["policy"]["parallel"], 2);
    assert_eq!(c["round"], 1);
    assert_eq!(c["acceptors"], json!([]));
}

#[tokio::test]
async fn a_template_variable_that_is_missing_is_named() {
    let app = spawn_app(Options::default()).await;
    let mut body = ticket_callout(1);
    body["variables"] = json!({});
    let (status, e) = app.post_callout(&body).await;
    assert_eq!(status, 422);
    assert_eq!(e["error"]["details"][0]["field"], "variables.ticket", "{e}");
}

#[tokio::test]
async fn callouts_are_listed_newest_first_by_status_with_a_cursor() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee("default", Behaviour::silent());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.create_callout(&ticket_callout(1)).await);
    }
    let r = app
        .http
        .post(app.url(&format!("/v1/callouts/{}/cancel", ids[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let all = list(&app, "").await;
    let got: Vec<&str> = all["callouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    let cancelled = list(&app, "?status=cancelled").await;
    assert_eq!(cancelled["callouts"].as_array().unwrap().len(), 1);
    assert_eq!(cancelled["callouts"][0]["id"], ids[1].as_str());
    let page = list(&app, "?limit=2").await;
    assert_eq!(page["callouts"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    let page2 = list(&app, &format!("?limit=2&before={next}")).await;
    assert_eq!(page2["callouts"][0]["id"], ids[0].as_str());
    let r = app
        .http
        .get(app.url("/v1/callouts?status=lost"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = app
        .http
        .get(app.url("/v1/callouts?colour=blue"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_not_found() {
    let app = spawn_app(Options::default()).await;
    for id in [
        "0190c0de00007000800000000000000a",
        "nope",
        "..%2F..%2Fetc",
        &"f".repeat(500),
    ] {
        let r = app
            .http
            .get(app.url(&format!("/v1/callouts/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{id}");
        let r = app
            .http
            .post(app.url(&format!("/v1/callouts/{id}/cancel")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{id}");
    }
}

#[tokio::test]
async fn api_keys_are_checked_by_role() {
    let app = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    let r = app.http.get(app.url("/v1/callouts")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = app
        .http
        .get(app.url("/v1/callouts"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for token in [DISPATCHER_TOKEN, ADMIN_TOKEN] {
        let r = app
            .http
            .get(app.url("/v1/callouts"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Health and metrics need no key (probes and scrapers).
    for p in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            app.http.get(app.url(p)).send().await.unwrap().status(),
            200,
            "{p}"
        );
    }
}

#[tokio::test]
async fn the_final_state_is_posted_to_notify_url_signed_and_retried() {
    let receiver = MockServer::start().await;
    // The first delivery fails; the retry succeeds.
    Mock::given(method("POST"))
        .and(path("/hooks/callout"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/callout"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::accepts());
    let mut body = ticket_callout(1);
    body["notify_url"] = json!(format!("{}/hooks/callout", receiver.uri()));
    let id = app.create_callout(&body).await;
    let c = app
        .wait_until(&id, Duration::from_secs(60), |c| {
            c["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "notify_delivered"))
        })
        .await;
    assert_eq!(c["status"], "accepted");
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "one failure, one success");
    let last = requests.last().unwrap();
    let sent: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(sent["id"], id.as_str());
    assert_eq!(sent["status"], "accepted");
    let sig = last
        .headers
        .get("x-ivr-signature")
        .unwrap()
        .to_str()
        .unwrap();
    let signer = ivr_gateway::security::Signer::new(
        &ivr_gateway::config::Secret::new(crate::helpers::SECRET.as_bytes().to_vec()),
        None,
    );
    assert!(
        signer.verify_notification(sig, &last.body),
        "signature does not verify"
    );
    assert_eq!(last.headers.get("x-ivr-delivery").unwrap(), "2");
    assert!(
        c["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "notify_failed")
    );
    let _ = LONG;
}

async fn list(app: &crate::helpers::TestApp, query: &str) -> Value {
    let r = app
        .http
        .get(app.url(&format!("/v1/callouts{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Asserts that no callout exists (a refused request created nothing).
async fn assert_nothing_created(app: &crate::helpers::TestApp) {
    assert_eq!(list(app, "").await["callouts"].as_array().unwrap().len(), 0);
}
