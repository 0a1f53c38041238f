//! `/metrics` after a callout: every family the contract names, with the values
//! this one callout produced. Its own test binary, so the process-wide metrics
//! recorder sees nothing but this test's callout and the values are exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "api/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ivr_gateway::sim::Behaviour;

use helpers::{Options, StoreKind, phone, spawn_app, ticket_callout};

/// Parses the text exposition into `name{labels}` → value, plus HELP/TYPE lines.
fn parse(text: &str) -> (HashMap<String, f64>, HashMap<String, String>) {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let (key, value) = line.rsplit_once(' ').unwrap();
            samples.insert(key.to_owned(), value.parse().unwrap());
        }
    }
    (samples, types)
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| {
        panic!(
            "{key} missing; have: {:#?}",
            samples.keys().collect::<Vec<_>>()
        )
    })
}

fn promtool() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PROMTOOL") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return Some(PathBuf::from("promtool"));
    }
    let home = std::env::var("HOME").ok()?;
    let cached =
        PathBuf::from(home).join(".cache/ivr-gateway-deploy-tools/deb/prometheus/usr/bin/promtool");
    cached.exists().then_some(cached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_callout_have_every_family_and_the_right_values() {
    let server = redis_server::RedisServer::start();
    let app = spawn_app(Options::with_store(StoreKind::Redis {
        url: server.url(),
        prefix: "m".into(),
    }))
    .await;
    app.sim.set_callee(&phone(1), Behaviour::Busy);
    app.sim.set_callee(&phone(2), Behaviour::accepts());
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = serde_json::json!(1);
    let id = app.create_callout(&body).await;
    app.wait_settled(&id, Duration::from_secs(30)).await;
    // The gauges are refreshed from the store periodically; let one round pass.
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
    let (samples, types) = parse(&text);

    assert_eq!(value(&samples, "ivr_callouts_created_total"), 1.0);
    assert_eq!(
        value(
            &samples,
            r#"ivr_callouts_finished_total{status="accepted"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&samples, r#"ivr_calls_placed_total{result="ok"}"#),
        2.0
    );
    assert_eq!(
        value(&samples, r#"ivr_attempt_outcomes_total{outcome="busy"}"#),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            r#"ivr_attempt_outcomes_total{outcome="accepted"}"#
        ),
        1.0
    );
    assert_eq!(value(&samples, r#"ivr_dtmf_received_total{key="1"}"#), 1.0);
    assert_eq!(value(&samples, "ivr_time_to_accept_seconds_count"), 1.0);
    assert!(value(&samples, "ivr_time_to_accept_seconds_sum") > 0.0);
    assert_eq!(
        value(&samples, "ivr_callouts_active"),
        0.0,
        "derived from the store: nothing is calling"
    );
    assert_eq!(value(&samples, "ivr_calls_active"), 0.0);
    assert_eq!(value(&samples, "ivr_ready"), 1.0);
    assert!(
        value(
            &samples,
            r#"ivr_webhook_duration_seconds_count{route="collect",status_class="2xx"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            r#"ivr_webhook_duration_seconds_count{route="status",status_class="2xx"}"#
        ) >= 4.0
    );
    // Webhook latency resolves from a quarter of a millisecond, by the millisecond
    // up to a few, and around Routee's 3 s window.
    for le in [
        "0.00025", "0.0005", "0.001", "0.002", "0.003", "0.004", "2.75", "3",
    ] {
        assert!(samples.contains_key(&format!(r#"ivr_webhook_duration_seconds_bucket{{route="collect",status_class="2xx",le="{le}"}}"#)), "bucket {le}");
    }
    // So does upstream latency, up to the 10 s request timeout.
    for le in ["0.00025", "0.001", "0.002", "0.003", "10"] {
        assert!(samples.contains_key(&format!(r#"ivr_upstream_request_duration_seconds_bucket{{upstream="routee",operation="create_conversation",status_class="2xx",le="{le}"}}"#)), "bucket {le}");
    }
    assert!(samples.contains_key(r#"ivr_time_to_accept_seconds_bucket{le="3600"}"#));
    assert!(
        value(
            &samples,
            r#"ivr_upstream_request_duration_seconds_count{upstream="routee",operation="create_conversation",status_class="2xx"}"#
        ) >= 2.0
    );
    assert!(value(&samples, "ivr_timer_lag_seconds_count") >= 1.0);
    assert!(
        value(
            &samples,
            r#"ivr_api_requests_total{route="/v1/callouts",method="POST",status_class="2xx"}"#
        ) >= 1.0
    );

    for (family, kind) in [
        ("ivr_callouts_created_total", "counter"),
        ("ivr_callouts_active", "gauge"),
        ("ivr_webhook_duration_seconds", "histogram"),
        ("ivr_time_to_accept_seconds", "histogram"),
        ("ivr_upstream_request_duration_seconds", "histogram"),
        ("ivr_timer_lag_seconds", "histogram"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }
    // Bounded labels only: no id, phone number or error text anywhere.
    assert!(
        !text.contains(&id) && !text.contains("69000000"),
        "unbounded label values leaked"
    );

    match promtool() {
        Some(p) => {
            let mut child = std::process::Command::new(p)
                .args(["check", "metrics"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None if std::env::var_os("REQUIRE_PROMTOOL").is_some() => {
            panic!("promtool is required (REQUIRE_PROMTOOL) but was not found")
        }
        None => eprintln!(
            "promtool not found: skipped `promtool check metrics` (bash deploy/check.sh installs it)"
        ),
    }
}
