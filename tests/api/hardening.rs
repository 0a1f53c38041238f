//! Issue 14 (hardening): the open sandbox, the metrics listener, media types,
//! destinations and call caps, notification signatures, server limits.
//! Each test here failed before its fix (see the issue's notes).

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callees_and_transfer_targets_outside_allowed_destinations_are_refused_by_row() {
    let app = spawn_app(
        Options {
            api_keys: true,
            ..Options::default()
        }
        .env("ALLOWED_DESTINATIONS", "DE,+4420"),
    )
    .await;
    let mut body = ticket_callout(1);
    body["contacts"] = json!([
        {"name": "Sim", "phone": "+306900000001"},
        {"name": "Berlin", "phone": "+4915112345678"},
        {"name": "London", "phone": "+442071234567"},
        {"name": "Paris", "phone": "+33612345678"},
        {"name": "Manchester", "phone": "+441612345678"},
    ]);
    let a = crate::probe::create(&app, &body).await;
    a.assert_names("contacts[3].phone");
    a.assert_names("contacts[4].phone");
    assert_eq!(a.fields().len(), 2, "{a:?}");
    assert_nothing_created(&app).await;
    // Premium rate's cousins are never callable, whatever the allowlist.
    let open = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    body["contacts"] = json!([{"name": "Shared", "phone": "+34901123456"}]);
    crate::probe::create(&open, &body)
        .await
        .assert_names("contacts[0].phone");
    // Transfer targets: E.164, and inside ALLOWED_DESTINATIONS.
    let a = probe(&app, Method::PATCH, "/v1/assistants/sandbox")
        .json(&json!({"transfer_targets": ["+33612345678", "+4915112345678", "nope"]}))
        .send()
        .await;
    a.assert_names("transfer_targets[2]");
    let a = probe(&app, Method::PATCH, "/v1/assistants/sandbox")
        .json(&json!({"transfer_targets": ["+33612345678", "+4915112345678"]}))
        .send()
        .await;
    a.assert_names("transfer_targets[0]");
    let a = probe(&app, Method::PATCH, "/v1/assistants/sandbox")
        .json(&json!({"transfer_targets": ["+4915112345678"]}))
        .send()
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.json["settings"]["transfer_targets"],
        json!(["+4915112345678"])
    );
}

/// Checks an `X-Ivr-Signature` the way docs/api.md tells a receiver to, with
/// Python's own `hmac` (not the gateway's verifier).
fn python_verifies(secret: &str, header: &str, body: &[u8]) -> bool {
    use std::io::Write;
    let script = r#"
import hmac, hashlib, os, sys, time
body = sys.stdin.buffer.read()
header = os.environ["SIG"]
parts = dict(p.split("=", 1) for p in header.split(","))
t, v1 = parts["t"], parts["v1"]
mac = hmac.new(os.environ["NOTIFY_SECRET"].encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
sys.exit(0 if hmac.compare_digest(mac, v1) and abs(time.time() - int(t)) <= 300 else 1)
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("SIG", header)
        .env("NOTIFY_SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait().unwrap().success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_verifies_with_pythons_hmac_and_notify_secret_alone() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const NOTIFY: &str = "receivers-only-notify-secret-0123456789";
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let app = spawn_app(Options::default().env("NOTIFY_SECRET", NOTIFY)).await;
    app.sim.set_callee(
        &crate::helpers::phone(1),
        ivr_gateway::sim::Behaviour::accepts(),
    );
    let mut body = ticket_callout(1);
    body["notify_url"] = json!(format!("{}/hook", receiver.uri()));
    let id = app.create_callout(&body).await;
    app.wait_until(&id, Duration::from_secs(60), |c| {
        c["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "notify_delivered"))
    })
    .await;
    let requests = receiver.received_requests().await.unwrap();
    let last = requests.last().unwrap();
    let sig = last
        .headers
        .get("x-ivr-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(python_verifies(NOTIFY, sig, &last.body), "{sig}");
    assert!(
        !python_verifies(crate::helpers::SECRET, sig, &last.body),
        "GATEWAY_SECRET must not verify"
    );
    let mut tampered = last.body.clone();
    tampered.push(b' ');
    assert!(!python_verifies(NOTIFY, sig, &tampered));
}

/// Reads until the server closes the connection or `within` passes; returns
/// what was read, or `None` if the connection was still open.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

fn addr_of(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_slow_bodies_and_idle_connections_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app(
        Options {
            api_keys: true,
            ..Options::default()
        }
        .env("HTTP_HEADER_TIMEOUT_MS", "1000")
        .env("HTTP_REQUEST_TIMEOUT_MS", "3000"),
    )
    .await;
    // A slowloris: half a head, then nothing.
    let mut slow = tokio::net::TcpStream::connect(addr_of(&app)).await.unwrap();
    slow.write_all(b"POST /v1/callouts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut slow, Duration::from_secs(4))
            .await
            .is_some(),
        "a half-sent head holds the connection open"
    );
    // An idle connection that never sends anything.
    let mut idle = tokio::net::TcpStream::connect(addr_of(&app)).await.unwrap();
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(4))
            .await
            .is_some()
    );
    // A body announced and never finished.
    let mut body = tokio::net::TcpStream::connect(addr_of(&app)).await.unwrap();
    body.write_all(
        format!(
            "POST /v1/callouts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":",
            crate::helpers::ADMIN_TOKEN
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut body, Duration::from_secs(8))
        .await
        .expect("a slow body is cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_nothing_created(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_a_431_and_connections_beyond_the_limit_wait() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app(
        Options {
            api_keys: true,
            ..Options::default()
        }
        .env("HTTP_MAX_HEADER_BYTES", "16384")
        .env("HTTP_MAX_CONNECTIONS", "2")
        .env("HTTP_HEADER_TIMEOUT_MS", "60000"),
    )
    .await;
    let mut big = tokio::net::TcpStream::connect(addr_of(&app)).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let answer = read_until_closed(&mut big, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    drop(big);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Two idle connections take both slots: a third client waits.
    let hold: Vec<_> =
        futures::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(addr_of(&app))))
            .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    assert!(
        fresh.get(app.url("/healthz")).send().await.is_err(),
        "a third connection was served beyond HTTP_MAX_CONNECTIONS=2"
    );
    drop(hold);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = fresh.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Run in a child process with `HTTP_PROXY` set (see the test below): a
/// notification to a public name must not go through the proxy.
#[tokio::test]
#[ignore = "run by outbound_requests_never_go_through_a_proxy_from_the_environment"]
async fn proxy_probe_child() {
    if std::env::var("PROXY_PROBE").is_err() {
        return;
    }
    for allow_internal in [false, true] {
        let client =
            ivr_gateway::net::outbound_client(allow_internal, Duration::from_secs(2)).unwrap();
        let _ = client
            .post("http://notify.receiver.invalid/hook")
            .body("{}")
            .send()
            .await;
    }
    let client =
        ivr_gateway::net::http_client(Duration::from_secs(2), Duration::from_secs(2)).unwrap();
    let _ = client.get("http://api.upstream.invalid/").send().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_never_go_through_a_proxy_from_the_environment() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
    let proxy = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&proxy)
        .await;
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hardening::proxy_probe_child",
            "--ignored",
            "--nocapture",
        ])
        .env("PROXY_PROBE", "1")
        .env("HTTP_PROXY", proxy.uri())
        .env("http_proxy", proxy.uri())
        .env("HTTPS_PROXY", proxy.uri())
        .env("ALL_PROXY", proxy.uri())
        .status()
        .unwrap();
    assert!(status.success());
    let seen = proxy.received_requests().await.unwrap();
    assert!(
        seen.is_empty(),
        "went through the proxy: {:?}",
        seen.iter().map(|r| r.url.to_string()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_webhook_urls_and_moved_expiries_are_refused_and_change_nothing() {
    use ivr_gateway::domain::{CallId, CalloutId};
    use ivr_gateway::security::{Purpose, SIGNED_URL_LIFETIME_S, Signer};
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(
        &crate::helpers::phone(1),
        ivr_gateway::sim::Behaviour::NeverAnswers,
    );
    let mut body = ticket_callout(1);
    body["policy"]["attempts_per_contact"] = json!(1);
    let id = app.create_callout(&body).await;
    let before = app.wait_settled(&id, Duration::from_secs(60)).await;
    let callout: CalloutId = id.parse().unwrap();
    let call: CallId = before["attempts"][0]["call_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ours = Signer::new(
        &ivr_gateway::config::Secret::new(crate::helpers::SECRET.as_bytes().to_vec()),
        None,
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = ours.sign_at(
        Purpose::Status,
        callout,
        call,
        now - SIGNED_URL_LIFETIME_S - 5,
    );
    let tag = expired.rsplit('.').next().unwrap();
    let kid = ours.current_kid();
    let moved = format!("v1.{kid}.{}.{tag}", now + 3600);
    let answered = json!({"conversationTrackingId": "x", "status": "Answered"});
    for (what, sig) in [
        ("expired", expired.as_str()),
        ("moved expiry", moved.as_str()),
        ("no expiry", tag),
    ] {
        let url = format!("/routee/status/{callout}/{call}?sig={sig}");
        let a = probe(&app, Method::POST, &url)
            .token(None)
            .json(&answered)
            .send()
            .await;
        assert_eq!(a.status, 403, "{what}: {a:?}");
    }
    let after = app.get_callout(&id).await;
    assert_eq!(before["events"], after["events"]);
    let url = app.engine.status_url(callout, call);
    assert!(
        regex::Regex::new(r"\?sig=v1\.[0-9a-f]{8}\.\d{10}\.[A-Za-z0-9_-]{43}$")
            .unwrap()
            .is_match(&url),
        "the URL carries its expiry: {url}"
    );
}

/// `POST /v1/callouts` with an `Idempotency-Key` header.
async fn create_with_key(app: &TestApp, key: &str, body: &serde_json::Value) -> Answer {
    let r = app
        .http
        .post(app.url("/v1/callouts"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
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
async fn retries_with_one_idempotency_key_create_one_callout_and_get_the_same_answer() {
    use crate::helpers::StoreKind;
    use crate::redis_server::RedisServer;
    let server = RedisServer::start();
    let app = spawn_app(Options::with_store(StoreKind::Redis {
        url: server.url(),
        prefix: "t".into(),
    }))
    .await;
    let body = ticket_callout(1);
    // Five retries racing each other, then one more after they all answered.
    let racing = futures::future::join_all(
        (0..5).map(|_| create_with_key(&app, "order-4711-attempt", &body)),
    )
    .await;
    let first = racing
        .iter()
        .find(|a| a.status == 201)
        .expect("one of them created the callout");
    for a in &racing {
        assert!(
            a.status == 201 || a.status == 409,
            "a retry is the same answer or 'in progress': {a:?}"
        );
        if a.status == 201 {
            assert_eq!(a.json, first.json, "the same answer");
        } else {
            a.assert_error(409, "idempotency_key_in_use");
        }
    }
    let again = create_with_key(&app, "order-4711-attempt", &body).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.json, first.json, "the stored answer, replayed");
    assert_eq!(
        crate::probe::callout_ids(&app).await.len(),
        1,
        "one callout"
    );

    let mut other = body.clone();
    other["name"] = json!("Another ticket");
    let reused = create_with_key(&app, "order-4711-attempt", &other).await;
    reused.assert_error(422, "idempotency_key_reused");
    let bad = create_with_key(&app, &"x".repeat(300), &body).await;
    bad.assert_error(400, "bad_request");
    // A new key is a new callout.
    let fresh = create_with_key(&app, "order-4712", &body).await;
    assert_eq!(fresh.status, 201, "{fresh:?}");
    assert_ne!(fresh.json["id"], first.json["id"]);
    assert_eq!(crate::probe::callout_ids(&app).await.len(), 2);

    let spec: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let params = spec["paths"]["/v1/callouts"]["post"]["parameters"].to_string();
    assert!(params.contains("Idempotency-Key"), "{params}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_names_the_api_key_that_created_and_cancelled_a_callout_never_its_token() {
    use crate::helpers::{ADMIN_TOKEN, DISPATCHER_TOKEN};
    use sha2::Digest;
    let app = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    // What an operator computes: `printf %s "$TOKEN" | sha256sum | cut -c1-8`.
    let fingerprint = |token: &str| {
        format!(
            "key-{}",
            &hex::encode(sha2::Sha256::digest(token.as_bytes()))[..8]
        )
    };
    let mut body = ticket_callout(1);
    body["policy"]["retry_delay_s"] = json!(3600);
    let created = probe(&app, Method::POST, "/v1/callouts")
        .token(Some(DISPATCHER_TOKEN))
        .json(&body)
        .send()
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json["id"].as_str().unwrap().to_owned();
    let cancelled = probe(&app, Method::POST, &format!("/v1/callouts/{id}/cancel"))
        .token(Some(ADMIN_TOKEN))
        .send()
        .await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let shown = probe(&app, Method::GET, &format!("/v1/callouts/{id}"))
        .token(Some(DISPATCHER_TOKEN))
        .send()
        .await;
    let events = shown.json["events"].as_array().unwrap();
    let by = |kind: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))["by"]
            .clone()
    };
    assert_eq!(by("callout_created"), json!(fingerprint(DISPATCHER_TOKEN)));
    assert_eq!(by("callout_cancelled"), json!(fingerprint(ADMIN_TOKEN)));
    assert!(
        events
            .iter()
            .filter(|e| e["kind"] != "callout_created" && e["kind"] != "callout_cancelled")
            .all(|e| e.get("by").is_none()),
        "only what a caller did names a key: {events:?}"
    );
    let text = shown.json.to_string();
    assert!(!text.contains(DISPATCHER_TOKEN) && !text.contains(ADMIN_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_calls_per_day_stops_calls_past_the_cap_across_replicas() {
    use crate::helpers::{StoreKind, phone, spawn_sim};
    use crate::redis_server::RedisServer;
    use ivr_gateway::sim::{Behaviour, CalleeScript, Callees};
    let server = RedisServer::start();
    let sim = spawn_sim(Callees::new(CalleeScript::always(Behaviour::Busy))).await;
    let (lb, lb_url) = crate::replicas::Balancer::start().await;
    let replica = || {
        let mut o = Options::with_store(StoreKind::Redis {
            url: server.url(),
            prefix: "cap".into(),
        })
        .env("MAX_CALLS_PER_DAY", "3");
        o.external_sim = Some(sim.clone());
        o.public_url = Some(lb_url.clone());
        o
    };
    let (a, b) = (spawn_app(replica()).await, spawn_app(replica()).await);
    lb.set(vec![a.base.clone(), b.base.clone()]).await;
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = json!(1);
    let first = a.create_callout(&body).await;
    let first = a.wait_settled(&first, Duration::from_secs(60)).await;
    body["contacts"] = json!([
        {"name": "C", "phone": phone(3)},
        {"name": "D", "phone": phone(4)},
    ]);
    let second = b.create_callout(&body).await;
    let second = b.wait_settled(&second, Duration::from_secs(60)).await;
    assert_eq!(
        sim.calls().len(),
        3,
        "two calls from one replica, one from the other: {first} {second}"
    );
    let refusal = second["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .find(|r| r.contains("MAX_CALLS_PER_DAY"));
    assert!(refusal.is_some(), "the timeline says why: {second}");
    assert_eq!(second["status"], "exhausted", "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_calls_per_day_per_key_stops_one_keys_calls_across_replicas_not_anothers() {
    use crate::helpers::{DISPATCHER_TOKEN, StoreKind, phone, spawn_sim};
    use crate::redis_server::RedisServer;
    use ivr_gateway::sim::{Behaviour, CalleeScript, Callees};
    let server = RedisServer::start();
    let sim = spawn_sim(Callees::new(CalleeScript::always(Behaviour::Busy))).await;
    let (lb, lb_url) = crate::replicas::Balancer::start().await;
    let replica = || {
        let mut o = Options::with_store(StoreKind::Redis {
            url: server.url(),
            prefix: "keycap".into(),
        })
        .env("MAX_CALLS_PER_DAY_PER_KEY", "2");
        o.external_sim = Some(sim.clone());
        o.public_url = Some(lb_url.clone());
        o
    };
    let (a, b) = (spawn_app(replica()).await, spawn_app(replica()).await);
    lb.set(vec![a.base.clone(), b.base.clone()]).await;
    // The admin key's two calls, on replica a.
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = json!(1);
    let first = a.create_callout(&body).await;
    let first = a.wait_settled(&first, Duration::from_secs(60)).await;
    assert_eq!(sim.calls().len(), 2, "{first}");
    // Its third, on replica b: over its cap.
    body["contacts"] = json!([{"name": "C", "phone": phone(3)}]);
    let second = b.create_callout(&body).await;
    let second = b.wait_settled(&second, Duration::from_secs(60)).await;
    assert_eq!(
        sim.calls().len(),
        2,
        "the admin key is over its cap: {second}"
    );
    let refusal = second["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .find(|r| r.contains("MAX_CALLS_PER_DAY_PER_KEY"));
    assert!(refusal.is_some(), "the timeline says why: {second}");
    // Another key still calls.
    body["contacts"] = json!([{"name": "D", "phone": phone(4)}]);
    let third = probe(&b, Method::POST, "/v1/callouts")
        .token(Some(DISPATCHER_TOKEN))
        .json(&body)
        .send()
        .await;
    assert_eq!(third.status, 201, "{third:?}");
    let id = third.json["id"].as_str().unwrap().to_owned();
    let third = b.wait_settled(&id, Duration::from_secs(60)).await;
    assert_eq!(
        sim.calls().len(),
        3,
        "the dispatcher key has its own count: {third}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_an_addresss_share_are_closed_at_once_and_others_still_connect() {
    let app = spawn_app(
        Options {
            api_keys: true,
            ..Options::default()
        }
        .env("HTTP_MAX_CONNECTIONS_PER_IP", "2")
        .env("HTTP_HEADER_TIMEOUT_MS", "60000"),
    )
    .await;
    let addr: std::net::SocketAddr = addr_of(&app).parse().unwrap();
    let from = |ip: [u8; 4]| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from((ip, 0))).unwrap();
        socket.connect(addr)
    };
    // Two idle connections: this address's share.
    let _held = (
        from([127, 0, 0, 1]).await.unwrap(),
        from([127, 0, 0, 1]).await.unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = from([127, 0, 0, 1]).await.unwrap();
    assert!(
        read_until_closed(&mut third, Duration::from_secs(2))
            .await
            .is_some(),
        "a third connection from the same address is closed at once"
    );
    // Another address still gets an answer.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = other.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
