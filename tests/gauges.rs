//! The gauges the periodic job re-reads from the store: the daily call counts
//! (`ivr_calls_today`, `ivr_calls_today_by_key`) for the current UTC day, so
//! they fall at midnight without a call placed, and `ivr_secret_old_key_items`,
//! so a key stored under an old secret after startup (a replica not yet
//! switched, mid-roll) shows. Its own test binary: the metrics recorder is
//! process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "api/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::time::Duration;

use ivr_gateway::config::Secret;
use ivr_gateway::domain::{Assistant, AssistantId, AssistantSettings, Timestamp};
use ivr_gateway::security::Signer;
use ivr_gateway::sim::Behaviour;

use helpers::{Options, StoreKind, TestApp, phone, spawn_app, ticket_callout};

const OLD_SECRET: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/// `name{labels}` → value of every sample after one gauge round.
async fn gauges(app: &TestApp) -> Vec<(String, f64)> {
    app.engine.refresh_gauges().await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn one(samples: &[(String, f64)], prefix: &str) -> f64 {
    let found: Vec<_> = samples
        .iter()
        .filter(|(k, _)| k == prefix || k.starts_with(&format!("{prefix}{{")))
        .collect();
    assert_eq!(found.len(), 1, "one {prefix}: {samples:?}");
    found[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_counts_and_old_key_items_are_re_read_from_the_store() {
    let server = redis_server::RedisServer::start();
    let app = spawn_app(
        Options::with_store(StoreKind::Redis {
            url: server.url(),
            prefix: "g".into(),
        })
        .env("MAX_CALLS_PER_DAY", "10")
        .env("MAX_CALLS_PER_DAY_PER_KEY", "10")
        .env("GATEWAY_SECRET_PREVIOUS", OLD_SECRET),
    )
    .await;
    app.sim.set_callee(&phone(1), Behaviour::Busy);
    let mut body = ticket_callout(1);
    body["policy"]["attempts_per_contact"] = serde_json::json!(1);
    let id = app.create_callout(&body).await;
    app.wait_settled(&id, Duration::from_secs(30)).await;

    let s = gauges(&app).await;
    assert_eq!(one(&s, "ivr_calls_today"), 1.0);
    assert_eq!(one(&s, "ivr_calls_today_by_key"), 1.0);
    assert_eq!(one(&s, "ivr_secret_old_key_items"), 0.0);

    // A replica still on the old secret stores a key after this one started.
    let now = Timestamp::now();
    let mut a = Assistant {
        id: AssistantId::new(),
        name: "late".into(),
        version: "production".into(),
        project_id: None,
        project_name: None,
        version_id: None,
        created_at: now,
        updated_at: now,
        settings: AssistantSettings::default(),
        encrypted_key: String::new(),
        key_hint: "abcd".into(),
    };
    let old = Signer::new(&Secret::new(OLD_SECRET.as_bytes().to_vec()), None);
    a.encrypted_key = old.encrypt_key(a.id, "VF.DM.0123456789abcdef01234567.key");
    app.engine.store.save_assistant(&a).await.unwrap();
    // Midnight UTC: today's counters do not exist yet.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let counters: Vec<String> = redis::cmd("KEYS")
        .arg("*calls:day:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counters.len(), 2, "the day's and the key's: {counters:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&counters)
        .query_async(&mut conn)
        .await
        .unwrap();

    let s = gauges(&app).await;
    assert_eq!(
        one(&s, "ivr_secret_old_key_items"),
        1.0,
        "counted after startup"
    );
    assert_eq!(one(&s, "ivr_calls_today"), 0.0, "a new day");
    assert_eq!(
        one(&s, "ivr_calls_today_by_key"),
        0.0,
        "a new day for the key too"
    );
}
