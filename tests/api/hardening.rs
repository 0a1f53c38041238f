//! Issue 14 (hardening): the open sandbox, the metrics listener, media types,
//! destinations and call caps, notification signatures, server limits.
//! Each test here failed before its fix (see the notes).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Options, TestApp, spawn_app, ticket_callout};
use crate::probe::{Answer, assert_nothing_created, probe};

/// A free loopback port (bound then released; the gateway binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A raw POST with extra headers (reqwest sets Host from the URL unless told).
async fn post_with(app: &TestApp, path: &str, headers: &[(&str, &str)], ct: &str) -> Answer {
    let mut req = app
        .http
        .post(app.url(path))
        .header(reqwest::header::CONTENT_TYPE, ct)
        .body(ticket_callout(1).to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = r.bytes().await.unwrap();
    Answer {
        status,
        content_type,
        json: serde_json::from_slice(&bytes).unwrap_or_default(),
        len: bytes.len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_serves_metrics_and_nothing_else() {
    let port = free_port();
    let app = spawn_app(Options::default().env("METRICS_ADDR", &format!("127.0.0.1:{port}"))).await;
    let metrics = format!("http://127.0.0.1:{port}");
    let r = app
        .http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("ivr_"));
    for path in ["/v1/callouts", "/v1/me", "/console", "/healthz"] {
        let r = app
            .http
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} on METRICS_ADDR");
    }
    let r = app
        .http
        .post(format!("{metrics}/v1/callouts"))
        .json(&ticket_callout(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_sandbox_refuses_foreign_hosts_proxies_and_cross_site_pages() {
    let app = spawn_app(Options::default()).await;
    let json = "application/json";
    // DNS rebinding: the page's own name in Host.
    post_with(
        &app,
        "/v1/callouts",
        &[("host", "rebind.attacker.example:8080")],
        json,
    )
    .await
    .assert_error(403, "host_not_allowed");
    // A reverse proxy publishing the open sandbox.
    for h in ["x-forwarded-for", "x-forwarded-host", "forwarded"] {
        post_with(&app, "/v1/callouts", &[(h, "203.0.113.9")], json)
            .await
            .assert_error(403, "proxied_request_refused");
    }
    // Cross-site "simple" POSTs from a web page (text/plain, multipart).
    for ct in [json, "text/plain", "multipart/form-data; boundary=x"] {
        post_with(
            &app,
            "/v1/callouts",
            &[("origin", "https://attacker.example")],
            ct,
        )
        .await
        .assert_error(403, "cross_origin_refused");
    }
    post_with(&app, "/v1/callouts", &[("origin", "null")], json)
        .await
        .assert_error(403, "cross_origin_refused");
    let r = app
        .http
        .get(app.url("/v1/me"))
        .header("host", "rebind.attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "answers are not readable by a rebound name"
    );
    assert_nothing_created(&app).await;
    // This machine, by name or address, and the console's own origin, still work.
    for host in ["localhost", "127.0.0.1", "[::1]:1234"] {
        let a = post_with(
            &app,
            "/v1/callouts/preview",
            &[("host", host), ("origin", &app.base)],
            json,
        )
        .await;
        assert_eq!(a.status, 200, "{host}: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_gateway_is_not_bound_by_the_open_sandbox_rules() {
    let app = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    let a = probe(&app, Method::GET, "/v1/me").send().await;
    assert_eq!(a.status, 200);
    let r = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .header("host", "gw.example.com")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "behind a proxy with keys is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_routes_refuse_other_media_types_with_415_and_create_nothing() {
    let app = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    let body = ticket_callout(1).to_string();
    for (path, method) in [
        ("/v1/callouts", Method::POST),
        ("/v1/callouts/preview", Method::POST),
        ("/v1/assistants", Method::POST),
        ("/v1/sandbox/callees", Method::PUT),
        ("/v1/assistants/sandbox/sessions/s1/launch", Method::POST),
    ] {
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            probe(&app, method.clone(), path)
                .body(ct, body.clone())
                .send()
                .await
                .assert_error(415, "unsupported_media_type");
        }
    }
    // No Content-Type at all on a body is refused too (it used to be read as JSON).
    let r = app
        .http
        .post(app.url("/v1/callouts"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_nothing_created(&app).await;
    // A body-less POST needs no type.
    let a = probe(&app, Method::POST, "/v1/sandbox/seed").send().await;
    assert!(a.status < 300, "{a:?}");
    let _ = json!({});
    let _ = Duration::ZERO;
}
