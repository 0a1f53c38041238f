//! The hostile-client run of issue 14 against the real binary, behind nothing:
//! a live-mode gateway (its Routee is the carrier simulator, served over HTTP)
//! takes slowloris heads, oversized heads, a flood of idle connections and
//! forged and expired signed webhook URLs while a legitimate client keeps
//! listing callouts on fresh connections; a sandbox gateway without keys takes
//! cross-site POSTs. It prints the legitimate requests' latency (median and
//! worst) and checks that nothing was created or changed that should not be.
//!
//! Ignored (it takes about 20 s): `.ci/run` runs it with
//!
//! ```text
//! cargo test --test attack -- --ignored --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ivr_gateway::domain::{CallId, CalloutId};
use ivr_gateway::security::{Purpose, SIGNED_URL_LIFETIME_S, Signer};
use ivr_gateway::sim::{Behaviour, CalleeScript, Callees};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use helpers::{ADMIN_TOKEN, DISPATCHER_TOKEN, SECRET, spawn_sim, ticket_callout};

/// The connection cap and header timeout the run uses: a small cap, so the
/// attack fills it, and a short timeout, so the run is short.
const MAX_CONNECTIONS: usize = 128;
const HEADER_TIMEOUT_MS: u64 = 2000;
/// What one client address may hold: the attackers come from 127.0.0.1, the
/// legitimate client from 127.0.0.2.
const PER_IP: usize = 64;
const SLOWLORIS: usize = 300;
const FLOOD: usize = 400;
const ATTACK: Duration = Duration::from_secs(8);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The gateway binary, killed when dropped.
struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    async fn start(env: &[(&str, String)]) -> Gateway {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivr-gateway"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LISTEN_ADDR", &addr)
            .env("RUST_LOG", "error")
            .env("TIMER_POLL_MS", "20")
            .env("SHUTDOWN_GRACE_MS", "500")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if env.iter().any(|(k, _)| *k == "ROUTEE_APP_ID") {
            // Live: the simulated carrier calls back the listener itself.
            cmd.env("PUBLIC_URL", format!("http://{addr}"));
        }
        let gateway = Gateway {
            child: cmd.spawn().expect("the gateway binary starts"),
            addr,
        };
        let started = Instant::now();
        while reqwest::get(gateway.url("/readyz")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gateway
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A client that opens a new connection per request, as a new visitor does.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The address of the hostile requests that are not floods (oversized heads,
/// forged URLs): another client than the flooding one, so that they reach the
/// service and their answers can be checked.
const OTHER: [u8; 4] = [127, 0, 0, 3];

/// [`fresh_client`] from another address than the attackers'.
fn legitimate_client() -> reqwest::Client {
    client_from([127, 0, 0, 2])
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .local_address(std::net::IpAddr::from(ip))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn callouts(gw: &Gateway, token: Option<&str>) -> Vec<Value> {
    let mut req = fresh_client().get(gw.url("/v1/callouts?limit=200"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let v: Value = req.send().await.unwrap().json().await.unwrap();
    v["callouts"].as_array().expect("callouts").clone()
}

/// Writes `bytes` on a new connection and reads what comes back until the
/// server closes it (or `within` passes): the answer's status line.
async fn raw(from: [u8; 4], addr: &str, bytes: &[u8], within: Duration) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    let Ok(mut s) = socket.connect(addr.parse().unwrap()).await else {
        return "connect refused".into();
    };
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("closed without an answer")
        .to_owned()
}

/// Half a head, then a byte a second: never a whole head.
async fn slowloris(addr: String, until: Instant) -> bool {
    let Ok(mut s) = TcpStream::connect(&addr).await else {
        return false;
    };
    if s.write_all(b"POST /v1/callouts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
        .await
        .is_err()
    {
        return true;
    }
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if s.write_all(b"a").await.is_err() {
            return true; // cut off
        }
    }
    false
}

/// Connects and sends nothing.
async fn idle(addr: String, until: Instant) {
    if let Ok(s) = TcpStream::connect(&addr).await {
        tokio::time::sleep_until(until.into()).await;
        drop(s);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the hostile-client run (about 20 s): cargo test --test attack -- --ignored --nocapture"]
async fn hostile_clients_against_the_live_binary_leave_legitimate_requests_answered() {
    ivr_gateway::net::install_crypto_provider();
    let sim = spawn_sim(Callees::new(CalleeScript::always(Behaviour::Busy))).await;
    let (id, secret) = sim.credentials();
    let live = Gateway::start(&[
        ("GATEWAY_SECRET", SECRET.into()),
        (
            "API_KEYS",
            format!("admin:{ADMIN_TOKEN},dispatcher:{DISPATCHER_TOKEN}"),
        ),
        ("ROUTEE_APP_ID", id),
        ("ROUTEE_APP_SECRET", secret),
        ("ROUTEE_API_URL", sim.base_url().to_string()),
        ("ROUTEE_AUTH_URL", sim.auth_url().to_string()),
        ("ROUTEE_FROM", "+306900000000".into()),
        ("ALLOWED_DESTINATIONS", "+3069".into()),
        ("ALLOW_INSECURE_PUBLIC_URL", "true".into()),
        ("ALLOW_PRIVATE_URLS", "true".into()),
        ("HTTP_MAX_CONNECTIONS", MAX_CONNECTIONS.to_string()),
        ("HTTP_HEADER_TIMEOUT_MS", HEADER_TIMEOUT_MS.to_string()),
        ("HTTP_MAX_CONNECTIONS_PER_IP", PER_IP.to_string()),
    ])
    .await;
    // One legitimate callout, settled before the attack.
    let mut body = ticket_callout(1);
    body["policy"]["attempts_per_contact"] = json!(1);
    let created: Value = fresh_client()
        .post(live.url("/v1/callouts"))
        .bearer_auth(DISPATCHER_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let callout_id = created["id"].as_str().expect("created").to_owned();
    let settled = {
        let started = Instant::now();
        loop {
            let v: Value = fresh_client()
                .get(live.url(&format!("/v1/callouts/{callout_id}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["status"] != "calling" {
                break v;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let calls_before = sim.calls().len();

    // The attack.
    let until = Instant::now() + ATTACK;
    let mut slow = Vec::new();
    for _ in 0..SLOWLORIS {
        slow.push(tokio::spawn(slowloris(live.addr.clone(), until)));
    }
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(tokio::spawn(idle(live.addr.clone(), until)));
    }
    // The legitimate client, during the attack.
    let legit = {
        let url = live.url("/v1/callouts?limit=1");
        tokio::spawn(async move {
            let (mut latencies, mut failures) = (Vec::new(), 0);
            while Instant::now() < until {
                let t = Instant::now();
                let ok = legitimate_client()
                    .get(&url)
                    .bearer_auth(DISPATCHER_TOKEN)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                latencies.push(t.elapsed());
                failures += usize::from(!ok);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (latencies, failures)
        })
    };
    let big_head = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let mut oversized = Vec::new();
    for _ in 0..20 {
        let (addr, head) = (live.addr.clone(), big_head.clone());
        oversized.push(tokio::spawn(async move {
            raw(OTHER, &addr, head.as_bytes(), Duration::from_secs(10)).await
        }));
    }
    // Forged and expired signed URLs, with a body that would accept the call.
    let signer = Signer::new(
        &ivr_gateway::config::Secret::new(SECRET.as_bytes().to_vec()),
        None,
    );
    let wrong = Signer::new(
        &ivr_gateway::config::Secret::new(
            "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
                .as_bytes()
                .to_vec(),
        ),
        None,
    );
    let callout: CalloutId = callout_id.parse().unwrap();
    let call: CallId = settled["attempts"][0]["call_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sigs = [
        (
            "expired",
            signer.sign_at(
                Purpose::Status,
                callout,
                call,
                now - SIGNED_URL_LIFETIME_S - 5,
            ),
        ),
        (
            "another secret",
            wrong.sign_at(Purpose::Status, callout, call, now + 3600),
        ),
        ("garbage", "v1.00000000.9999999999.AAAA".to_owned()),
    ];
    let mut webhook_answers = Vec::new();
    for (what, sig) in &sigs {
        let a = client_from(OTHER)
            .post(live.url(&format!("/routee/status/{callout}/{call}?sig={sig}")))
            .json(&json!({"conversationTrackingId": "x", "status": "Answered"}))
            .send()
            .await
            .map(|r| r.status().as_u16());
        webhook_answers.push((*what, a));
    }

    let (mut latencies, failures) = legit.await.unwrap();
    let mut cut_off = 0;
    for s in slow {
        cut_off += usize::from(s.await.unwrap());
    }
    for f in flood {
        f.await.unwrap();
    }
    let mut oversized_answers = Vec::new();
    for o in oversized {
        oversized_answers.push(o.await.unwrap());
    }
    latencies.sort();
    assert!(!latencies.is_empty(), "the legitimate client ran");
    let median = percentile(&latencies, 0.5);
    let p95 = percentile(&latencies, 0.95);
    let worst = *latencies.last().unwrap();
    println!(
        "live binary, HTTP_MAX_CONNECTIONS={MAX_CONNECTIONS}, HTTP_MAX_CONNECTIONS_PER_IP={PER_IP}, HTTP_HEADER_TIMEOUT_MS={HEADER_TIMEOUT_MS}: \
         {SLOWLORIS} slowloris connections ({cut_off} cut off), {FLOOD} idle connections, 20 oversized heads, \
         {} forged/expired webhooks for {} s",
        sigs.len(),
        ATTACK.as_secs()
    );
    println!(
        "legitimate GET /v1/callouts on fresh connections: {} requests, {failures} failed, \
         median {} ms, p95 {} ms, worst {} ms",
        latencies.len(),
        median.as_millis(),
        p95.as_millis(),
        worst.as_millis()
    );
    println!("oversized heads answered: {:?}", dedup(&oversized_answers));
    println!("forged/expired webhooks answered: {webhook_answers:?}");

    assert_eq!(failures, 0, "every legitimate request is answered");
    assert!(
        worst < Duration::from_millis(HEADER_TIMEOUT_MS + 2000),
        "a legitimate request waits at most about one header timeout: {worst:?}"
    );
    assert!(
        cut_off >= SLOWLORIS * 9 / 10,
        "slowloris connections are cut off: {cut_off}"
    );
    assert!(
        oversized_answers
            .iter()
            .all(|a| a.starts_with("HTTP/1.1 431")),
        "{oversized_answers:?}"
    );
    for (what, a) in &webhook_answers {
        assert_eq!(a.as_ref().ok(), Some(&403), "{what}");
    }
    // Nothing created, nothing changed, no call placed.
    let after = callouts(&live, Some(ADMIN_TOKEN)).await;
    assert_eq!(after.len(), 1, "{after:?}");
    let shown: Value = fresh_client()
        .get(live.url(&format!("/v1/callouts/{callout_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["events"], settled["events"],
        "the forged webhooks changed nothing"
    );
    assert_eq!(
        sim.calls().len(),
        calls_before,
        "no call placed by the attack"
    );
    drop(live);

    // The open sandbox: cross-site POSTs from a page in the operator's browser.
    let sandbox = Gateway::start(&[]).await;
    let payload = ticket_callout(1).to_string();
    let attempts = [
        (
            "text/plain from a foreign page",
            format!(
                "POST /v1/callouts HTTP/1.1\r\nHost: {}\r\nOrigin: https://evil.example\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                sandbox.addr,
                payload.len()
            ),
        ),
        (
            "text/plain without Origin",
            format!(
                "POST /v1/callouts HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                sandbox.addr,
                payload.len()
            ),
        ),
        (
            "JSON from a foreign Origin",
            format!(
                "POST /v1/callouts HTTP/1.1\r\nHost: {}\r\nOrigin: https://evil.example\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                sandbox.addr,
                payload.len()
            ),
        ),
        (
            "DNS rebinding (foreign Host)",
            format!(
                "POST /v1/callouts HTTP/1.1\r\nHost: evil.example:8080\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                payload.len()
            ),
        ),
        (
            "through a proxy (X-Forwarded-For)",
            format!(
                "POST /v1/callouts HTTP/1.1\r\nHost: {}\r\nX-Forwarded-For: 203.0.113.9\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                sandbox.addr,
                payload.len()
            ),
        ),
    ];
    let mut cross_site = Vec::new();
    for (what, request) in &attempts {
        let status = raw(
            [127, 0, 0, 1],
            &sandbox.addr,
            request.as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        cross_site.push((*what, status));
    }
    println!("open sandbox, cross-site POSTs answered: {cross_site:#?}");
    for (what, status) in &cross_site {
        assert!(
            status.starts_with("HTTP/1.1 403") || status.starts_with("HTTP/1.1 415"),
            "{what}: {status}"
        );
    }
    let created = callouts(&sandbox, None).await;
    assert!(created.is_empty(), "a cross-site POST created {created:?}");
}

fn dedup(answers: &[String]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for a in answers {
        match out.iter_mut().find(|(x, _)| x == a) {
            Some((_, n)) => *n += 1,
            None => out.push((a.clone(), 1)),
        }
    }
    out
}
