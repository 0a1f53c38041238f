//! Teams (`/v1/teams`): saved call lists, their CSV import and export, and
//! callouts made from them, end to end on the real application and stores.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use ivr_gateway::sim::Behaviour;

use crate::helpers::{
    ADMIN_TOKEN, Options, StoreKind, TestApp, attempts, fast_policy, numbers_called, phone,
    spawn_app,
};
use crate::probe::{Answer, assert_nothing_created, multipart_with, probe};
use crate::redis_server::RedisServer;

const LONG: Duration = Duration::from_secs(40);

fn team(name: &str, phones: &[u32]) -> Value {
    let contacts: Vec<Value> = phones
        .iter()
        .map(|n| json!({"name": format!("Person {n}"), "phone": phone(*n)}))
        .collect();
    json!({"name": name, "contacts": contacts})
}

fn team_callout(team: &str) -> Value {
    json!({
        "name": "Roster check",
        "dialplan": "ticket-escalation",
        "variables": {"ticket": "Substation 4 is down"},
        "team": team,
        "policy": fast_policy(),
    })
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Answer {
    let p = probe(app, method, path);
    match body {
        Some(b) => p.json(b).send().await,
        None => p.send().await,
    }
}

fn phones_of(team: &Value) -> Vec<String> {
    team["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["phone"].as_str().expect("phone").to_owned())
        .collect()
}

/// Runs a test body on the in-memory store and on a Redis server.
macro_rules! on_both_stores {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_memory() {
                let $app = spawn_app(Options::with_store(StoreKind::Memory)).await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_redis() {
                let server = RedisServer::start();
                let $app = spawn_app(Options::with_store(StoreKind::Redis {
                    url: server.url(),
                    prefix: "t".into(),
                }))
                .await;
                $body
            }
        }
    };
}

on_both_stores!(teams_are_saved_listed_replaced_and_deleted, |app| {
    let created = send(
        &app,
        Method::POST,
        "/v1/teams",
        Some(&team("linemen", &[1, 2])),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(phones_of(&created.json), [phone(1), phone(2)]);

    // By id or by name.
    for key in [id.as_str(), "linemen"] {
        let got = send(&app, Method::GET, &format!("/v1/teams/{key}"), None).await;
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.json, created.json);
    }
    // Names are unique.
    send(
        &app,
        Method::POST,
        "/v1/teams",
        Some(&team("linemen", &[3])),
    )
    .await
    .assert_error(409, "team_name_taken");
    let other = send(
        &app,
        Method::POST,
        "/v1/teams",
        Some(&team("fitters", &[3])),
    )
    .await;
    assert_eq!(other.status, 201);
    let listed = send(&app, Method::GET, "/v1/teams", None).await;
    let names: Vec<&str> = listed.json["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fitters", "linemen"]);

    // A replacement keeps the id, renames, reorders; renaming onto another
    // team's name is refused and changes nothing.
    let path = format!("/v1/teams/{id}");
    let replaced = send(
        &app,
        Method::PUT,
        &path,
        Some(&team("line crew", &[2, 1, 4])),
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.json["id"], id.as_str());
    assert_eq!(replaced.json["created_at"], created.json["created_at"]);
    assert_eq!(phones_of(&replaced.json), [phone(2), phone(1), phone(4)]);
    send(&app, Method::PUT, &path, Some(&team("fitters", &[1])))
        .await
        .assert_error(409, "team_name_taken");
    send(&app, Method::GET, "/v1/teams/linemen", None)
        .await
        .assert_error(404, "not_found");
    let now = send(&app, Method::GET, "/v1/teams/line%20crew", None).await;
    assert_eq!(now.json, replaced.json);

    // Every bad field at once, and nothing changes.
    let bad = json!({"name": "", "contacts": [{"name": "X", "phone": "123"}], "colour": 1});
    let refused = send(&app, Method::PUT, &path, Some(&bad)).await;
    for field in ["name", "contacts[0].phone", "colour"] {
        refused.assert_names(field);
    }
    send(&app, Method::POST, "/v1/teams", Some(&bad))
        .await
        .assert_names("contacts[0].phone");
    assert_eq!(
        send(&app, Method::GET, &path, None).await.json,
        replaced.json
    );
    assert_eq!(
        send(&app, Method::GET, "/v1/teams", None).await.json["teams"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let deleted = send(&app, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    send(&app, Method::GET, &path, None)
        .await
        .assert_error(404, "not_found");
    send(&app, Method::DELETE, &path, None)
        .await
        .assert_error(404, "not_found");
    // Its name is free again.
    let again = send(
        &app,
        Method::POST,
        "/v1/teams",
        Some(&team("line crew", &[5])),
    )
    .await;
    assert_eq!(again.status, 201, "{again:?}");
});

on_both_stores!(
    a_team_edited_while_its_callout_runs_leaves_the_callout_on_its_copy,
    |app| {
        app.sim.set_callee(&phone(1), Behaviour::NeverAnswers);
        app.sim.set_callee(&phone(2), Behaviour::accepts());
        app.sim.set_callee(&phone(7), Behaviour::accepts());
        let created = send(
            &app,
            Method::POST,
            "/v1/teams",
            Some(&team("linemen", &[1, 2])),
        )
        .await;
        assert_eq!(created.status, 201, "{created:?}");
        let id = app.create_callout(&team_callout("linemen")).await;
        // The first call is under way: now the team changes entirely.
        app.wait_until(&id, LONG, |c| !attempts(c).is_empty()).await;
        let edited = send(
            &app,
            Method::PUT,
            "/v1/teams/linemen",
            Some(&team("linemen", &[7])),
        )
        .await;
        assert_eq!(edited.status, 200, "{edited:?}");

        let c = app.wait_settled(&id, LONG).await;
        assert_eq!(c["status"], "accepted", "{c}");
        assert_eq!(c["accepted_by"]["phone"], phone(2));
        assert_eq!(phones_of(&c), [phone(1), phone(2)]);
        assert_eq!(
            numbers_called(&app.sim),
            [phone(1), phone(1), phone(1), phone(2)]
        );

        // A callout made from the team now calls its new list; deleting the
        // team changes neither callout.
        let second = app.create_callout(&team_callout("linemen")).await;
        let deleted = send(&app, Method::DELETE, "/v1/teams/linemen", None).await;
        assert_eq!(deleted.status, 204);
        let c2 = app.wait_settled(&second, LONG).await;
        assert_eq!(c2["status"], "accepted", "{c2}");
        assert_eq!(phones_of(&c2), [phone(7)]);
        assert_eq!(phones_of(&app.get_callout(&id).await), [phone(1), phone(2)]);
        app.assert_no_protocol_errors();
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callout_names_a_team_or_lists_contacts_never_both_and_only_a_team_that_exists_with_enough_people()
 {
    let app = spawn_app(Options::default()).await;
    send(
        &app,
        Method::POST,
        "/v1/teams",
        Some(&team("linemen", &[1])),
    )
    .await;
    let mut both = team_callout("linemen");
    both["contacts"] = json!([{"name": "A", "phone": phone(2)}]);
    crate::probe::create(&app, &both).await.assert_names("team");
    crate::probe::create(&app, &team_callout("nobody"))
        .await
        .assert_names("team");
    let mut neither = team_callout("linemen");
    neither.as_object_mut().unwrap().remove("team");
    crate::probe::create(&app, &neither)
        .await
        .assert_names("contacts");
    // `needed` is checked against the team's contacts once it is looked up.
    let mut two_of_one = team_callout("linemen");
    two_of_one["policy"]["needed"] = json!(2);
    crate::probe::create(&app, &two_of_one)
        .await
        .assert_names("policy.needed");
    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callout_from_a_team_is_checked_against_the_destinations_allowed_now() {
    // The team was saved when +3069 was allowed; the gateway now allows only +44.
    let server = RedisServer::start();
    let sim = crate::helpers::spawn_sim(ivr_gateway::sim::Callees::default()).await;
    let opts = |allowed: &str| {
        let mut o = Options::with_store(StoreKind::Redis {
            url: server.url(),
            prefix: "t".into(),
        })
        .env("ALLOWED_DESTINATIONS", allowed);
        o.external_sim = Some(sim.clone());
        o.public_url = Some("http://127.0.0.1:9".into());
        o
    };
    let app = spawn_app(opts("*")).await;
    let saved = send(
        &app,
        Method::POST,
        "/v1/teams",
        Some(&team("linemen", &[1])),
    )
    .await;
    assert_eq!(saved.status, 201, "{saved:?}");
    app.stop().await;
    let app = spawn_app(opts("+44")).await;
    let a = crate::probe::create(&app, &team_callout("linemen")).await;
    a.assert_names("team");
    assert!(
        a.detail("team").unwrap().contains("ALLOWED_DESTINATIONS"),
        "{a:?}"
    );
    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_imported_from_csv_exports_spreadsheet_safe_and_reads_back_the_same() {
    let app = spawn_app(Options::default()).await;
    let csv = format!(
        "name,phone,language\n\"=HYPERLINK(\"\"http://x\"\")\",{},el-GR\n@Bob,{},\n-Carol,{},en-US\n",
        phone(1),
        phone(2),
        phone(3)
    );
    let (ct, body) = multipart_with(csv.as_bytes(), "team", Some(&json!({"name": "imported"})));
    let created = probe(&app, Method::POST, "/v1/teams")
        .body(&ct, body)
        .send()
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.json["contacts"][0]["name"],
        "=HYPERLINK(\"http://x\")"
    );

    let r = app
        .http
        .get(app.url(&format!("/v1/teams/{id}/contacts.csv")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        headers[reqwest::header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let exported = r.text().await.unwrap();
    // No cell starts with a character a spreadsheet would run.
    let mut reader = csv::Reader::from_reader(exported.as_bytes());
    for record in reader.records() {
        for cell in record.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {exported}"
            );
        }
    }
    assert!(exported.contains(&format!("'{}", phone(1))), "{exported}");

    // The export reads back as the same team, and as a callout's call list.
    let (ct, body) = multipart_with(exported.as_bytes(), "team", Some(&json!({"name": "again"})));
    let again = probe(&app, Method::POST, "/v1/teams")
        .body(&ct, body)
        .send()
        .await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.json["contacts"], created.json["contacts"]);
    let mut callout = team_callout("x");
    callout.as_object_mut().unwrap().remove("team");
    let upload = crate::probe::upload(&app, exported.as_bytes(), Some(&callout)).await;
    assert_eq!(upload.status, 201, "{upload:?}");
    assert_eq!(phones_of(&upload.json), [phone(1), phone(2), phone(3)]);

    // A CSV with a bad row is refused naming it; a missing name too.
    let (ct, body) = multipart_with(b"name,phone\nA,12\n", "team", None);
    let refused = probe(&app, Method::POST, "/v1/teams")
        .body(&ct, body)
        .send()
        .await;
    refused.assert_names("name");
    refused.assert_names("contacts[0].phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_creation_with_an_idempotency_key_creates_one_team_and_one_schedule() {
    let app = spawn_app(Options::default()).await;
    let post = |path: &'static str, key: &'static str, body: Value| {
        let r = app
            .http
            .post(app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let r = r.send().await.unwrap();
            let replayed = r.headers().get("idempotent-replayed").is_some();
            (
                r.status().as_u16(),
                replayed,
                r.json::<Value>().await.unwrap(),
            )
        }
    };
    let first = post("/v1/teams", "k-1", team("linemen", &[1])).await;
    let retry = post("/v1/teams", "k-1", team("linemen", &[1])).await;
    assert_eq!((first.0, first.1), (201, false), "{first:?}");
    assert_eq!((retry.0, retry.1), (201, true), "{retry:?}");
    assert_eq!(first.2, retry.2);
    // The same key with another body is refused, not replayed.
    let other = post("/v1/teams", "k-1", team("fitters", &[2])).await;
    assert_eq!(other.0, 422, "{other:?}");
    let listed = send(&app, Method::GET, "/v1/teams", None).await;
    assert_eq!(listed.json["teams"].as_array().unwrap().len(), 1);

    let body = json!({"name": "roster", "cron": "0 7 * * *", "callout": team_callout("linemen")});
    let first = post("/v1/schedules", "k-2", body.clone()).await;
    let retry = post("/v1/schedules", "k-2", body).await;
    assert_eq!((first.0, retry.0, retry.1), (201, 201, true), "{retry:?}");
    assert_eq!(first.2["id"], retry.2["id"]);
    let listed = send(&app, Method::GET, "/v1/schedules", None).await;
    assert_eq!(listed.json["schedules"].as_array().unwrap().len(), 1);
}
