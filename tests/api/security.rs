//! Security checks against the running gateway: webhook signatures (forged,
//! replayed for another call, turn or purpose, missing), API keys and roles,
//! secrets and phone numbers kept out of the logs, and the SSRF guard on
//! `notify_url` (at creation, and at delivery through the `GuardedResolver`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ivr_gateway::config::{Config, Secret};
use ivr_gateway::domain::{CallId, CalloutId};
use ivr_gateway::security::{Purpose, Signer};
use ivr_gateway::sim::Behaviour;
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    ADMIN_TOKEN, DISPATCHER_TOKEN, Options, SECRET, TestApp, phone, spawn_app, ticket_callout,
};
use crate::probe::{assert_nothing_created, create, probe};

const LONG: Duration = Duration::from_secs(40);

fn signer(secret: &str) -> Signer {
    Signer::new(&Secret::new(secret.as_bytes().to_vec()), None)
}

/// `url` (a signed webhook URL) with its `sig` replaced, or removed (`None`).
fn with_sig(url: &str, sig: Option<&str>) -> String {
    let base = url.split("?sig=").next().unwrap_or(url);
    match sig {
        Some(s) => format!("{base}?sig={s}"),
        None => base.to_owned(),
    }
}

async fn post(app: &TestApp, url: &str, body: &Value) -> crate::probe::Answer {
    probe(app, Method::POST, url)
        .token(None)
        .json(body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_missing_webhook_signatures_are_refused_and_change_nothing() {
    let app = spawn_app(Options::default()).await;
    app.sim
        .set_callee(&phone(1), Behaviour::press_on_prompt(["2"]));
    let id = app.create_callout(&ticket_callout(2)).await;
    let other_id = app.create_callout(&ticket_callout(1)).await;
    let before = app.wait_settled(&id, LONG).await;
    app.wait_settled(&other_id, LONG).await;
    assert_eq!(before["status"], "accepted", "{before}");
    let callout: CalloutId = id.parse().unwrap();
    let other: CalloutId = other_id.parse().unwrap();
    let a: CallId = before["attempts"][0]["call_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let b: CallId = before["attempts"][1]["call_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let ours = signer(SECRET);
    let status_a = app.engine.status_url(callout, a);
    let collect_a1 = app.engine.collect_url(callout, a, 1);
    let collect_a2 = app.engine.collect_url(callout, a, 2);
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    let valid_status = ours.sign(Purpose::Status, callout, a);
    let forged: Vec<(&str, String, String)> = vec![
        ("a random signature", status_a.clone(), random.clone()),
        (
            "another call's",
            status_a.clone(),
            ours.sign(Purpose::Status, callout, b),
        ),
        (
            "another callout's",
            status_a.clone(),
            ours.sign(Purpose::Status, other, a),
        ),
        (
            "a collect signature on status",
            status_a.clone(),
            ours.sign(Purpose::Collect { turn: 1 }, callout, a),
        ),
        (
            "another secret's",
            status_a.clone(),
            signer("another-secret-0123456789abcdef-xyz").sign(Purpose::Status, callout, a),
        ),
        (
            "a truncated one",
            status_a.clone(),
            valid_status[..valid_status.len() - 2].to_owned(),
        ),
        (
            "one with a byte more",
            status_a.clone(),
            format!("{valid_status}A"),
        ),
        (
            "not base64",
            status_a.clone(),
            "!!!not*base64!!!".to_owned(),
        ),
        (
            "another turn's",
            collect_a2.clone(),
            ours.sign(Purpose::Collect { turn: 1 }, callout, a),
        ),
        (
            "a status signature on collect",
            collect_a1.clone(),
            valid_status.clone(),
        ),
        (
            "another call's collect",
            collect_a1.clone(),
            ours.sign(Purpose::Collect { turn: 1 }, callout, b),
        ),
        ("a random one on collect", collect_a1.clone(), random),
    ];
    let status_body = json!({"messageId": "m", "status": {"name": "Completed"}});
    let collect_body = json!({"messageId": "m", "collectedTones": "1"});
    for (what, url, sig) in &forged {
        let body = if url.contains("/collect/") {
            &collect_body
        } else {
            &status_body
        };
        post(&app, &with_sig(url, Some(sig)), body)
            .await
            .assert_error(403, "forbidden");
        let _ = what;
    }
    for url in [&status_a, &collect_a1] {
        let body = if url.contains("/collect/") {
            &collect_body
        } else {
            &status_body
        };
        for unsigned in [
            with_sig(url, None),
            with_sig(url, Some("")),
            format!("{}?sig", with_sig(url, None)),
            format!("{}?signature=x", with_sig(url, None)),
        ] {
            post(&app, &unsigned, body)
                .await
                .assert_error(401, "unauthorized");
        }
        // A signature in a header instead of the URL is no signature.
        let a = probe(&app, Method::POST, &with_sig(url, None))
            .token(Some(&valid_status))
            .json(body)
            .send()
            .await;
        a.assert_error(401, "unauthorized");
    }
    assert_eq!(
        app.get_callout(&id).await,
        before,
        "a refused webhook changed the callout"
    );

    // The control: the genuine URL is accepted.
    let ok = post(&app, &status_a, &status_body).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_key_press_on_a_live_call_is_refused_and_does_not_accept() {
    // Real time: the silent callee's call stays live for half a minute. It picks
    // up after a short ring (the default 2 s would be real seconds here).
    let app = spawn_app(Options::default().env("SIM_TIME_SCALE", "1")).await;
    app.sim
        .set_callee(&phone(1), Behaviour::Silent { ring_s: 0.2 });
    let id = app.create_callout(&ticket_callout(1)).await;
    let live = app
        .wait_until(&id, LONG, |c| c["attempts"][0]["status"] == "in_progress")
        .await;
    let callout: CalloutId = id.parse().unwrap();
    let call: CallId = live["attempts"][0]["call_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ours = signer(SECRET);
    let url = app.engine.collect_url(callout, call, 1);
    let keys = json!({"collectedTones": "1"});
    for sig in [
        ours.sign(Purpose::Collect { turn: 2 }, callout, call),
        ours.sign(Purpose::Status, callout, call),
        signer("another-secret-0123456789abcdef-xyz").sign(
            Purpose::Collect { turn: 1 },
            callout,
            call,
        ),
    ] {
        post(&app, &with_sig(&url, Some(&sig)), &keys)
            .await
            .assert_error(403, "forbidden");
    }
    post(&app, &with_sig(&url, None), &keys)
        .await
        .assert_error(401, "unauthorized");

    let c = app.get_callout(&id).await;
    assert_eq!(c["status"], "calling", "{c}");
    assert!(c["accepted_by"].is_null(), "{c}");
    let kinds: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        !kinds.contains(&"keys_pressed") && !kinds.contains(&"decided"),
        "a forged key press was recorded: {kinds:?}"
    );
    let cancel = probe(&app, Method::POST, &format!("/v1/callouts/{id}/cancel"))
        .send()
        .await;
    assert_eq!(cancel.status, 200, "{cancel:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_required_and_each_role_gets_what_it_may() {
    let app = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    let id = app.create_callout(&ticket_callout(1)).await;
    let session = "/v1/assistants/sandbox/sessions/s";
    let routes = [
        (Method::GET, "/v1/callouts".to_owned()),
        (Method::POST, "/v1/callouts".to_owned()),
        (Method::GET, format!("/v1/callouts/{id}")),
        (Method::POST, format!("/v1/callouts/{id}/cancel")),
        (Method::GET, "/v1/assistants".to_owned()),
        (Method::POST, "/v1/assistants".to_owned()),
        (Method::GET, "/v1/assistants/sandbox".to_owned()),
        (Method::PATCH, "/v1/assistants/sandbox".to_owned()),
        (Method::DELETE, "/v1/assistants/sandbox".to_owned()),
        (Method::POST, format!("{session}/launch")),
        (Method::POST, format!("{session}/interact")),
        (Method::GET, format!("{session}/state")),
        (Method::DELETE, format!("{session}/state")),
        (Method::PATCH, format!("{session}/variables")),
        (Method::PUT, format!("{session}/transcript")),
    ];
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_TOKEN}"))
    );
    for (method, path) in &routes {
        let body = ticket_callout(1);
        // No key at all, an unknown one, a near miss, another scheme.
        for token in [
            None,
            Some("not-a-key"),
            Some(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
            Some(&format!("{ADMIN_TOKEN}x")),
            Some(&ADMIN_TOKEN.to_uppercase()),
            Some(""),
        ] {
            let a = probe(&app, method.clone(), path)
                .token(token)
                .json(&body)
                .send()
                .await;
            a.assert_error(401, "unauthorized");
        }
        let r = app
            .http
            .request(method.clone(), app.url(path))
            .header("authorization", &basic)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} with Basic auth");
    }
    // The dispatcher role runs callouts, like the admin.
    for token in [DISPATCHER_TOKEN, ADMIN_TOKEN] {
        let a = probe(&app, Method::POST, "/v1/callouts")
            .token(Some(token))
            .json(&ticket_callout(1))
            .send()
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        let new = a.json["id"].as_str().unwrap();
        for (method, path) in [
            (Method::GET, "/v1/callouts".to_owned()),
            (Method::GET, format!("/v1/callouts/{new}")),
            (Method::POST, format!("/v1/callouts/{new}/cancel")),
        ] {
            let a = probe(&app, method, &path).token(Some(token)).send().await;
            assert_eq!(a.status, 200, "{path}: {a:?}");
        }
    }
    // Changing the assistants registry needs the admin role; reading it and the
    // conversation tools do not.
    let sandbox = probe(&app, Method::GET, "/v1/assistants/sandbox")
        .send()
        .await;
    assert_eq!(sandbox.status, 200, "{sandbox:?}");
    let registration =
        json!({"name": "bot", "api_key": "VF.DM.security-test-key", "version": "production"});
    for (method, path, body) in [
        (Method::POST, "/v1/assistants", registration.clone()),
        (
            Method::PATCH,
            "/v1/assistants/sandbox",
            json!({"language": "de-DE"}),
        ),
        (Method::DELETE, "/v1/assistants/sandbox", Value::Null),
    ] {
        probe(&app, method, path)
            .token(Some(DISPATCHER_TOKEN))
            .json(&body)
            .send()
            .await
            .assert_error(403, "forbidden");
    }
    let listed = probe(&app, Method::GET, "/v1/assistants")
        .token(Some(DISPATCHER_TOKEN))
        .send()
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(
        listed.json["assistants"],
        json!([sandbox.json]),
        "a refused change changed the registry"
    );
    for (method, path) in [
        (Method::GET, "/v1/assistants/sandbox".to_owned()),
        (Method::POST, format!("{session}/launch")),
        (Method::GET, format!("{session}/state")),
    ] {
        let a = probe(&app, method, &path)
            .token(Some(DISPATCHER_TOKEN))
            .send()
            .await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
    }
    // The admin may (the control).
    let a = probe(&app, Method::POST, "/v1/assistants")
        .json(&registration)
        .send()
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let bot = a.json["id"].as_str().unwrap();
    let a = probe(&app, Method::PATCH, &format!("/v1/assistants/{bot}"))
        .json(&json!({"language": "de-DE"}))
        .send()
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = probe(&app, Method::DELETE, &format!("/v1/assistants/{bot}"))
        .send()
        .await;
    assert_eq!(a.status, 204, "{a:?}");

    // Health, metrics and the API description need no key.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let a = probe(&app, Method::GET, path).token(None).send().await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
    }
    // Refused requests created nothing: the callout from the start and the
    // two the roles made.
    assert_eq!(crate::probe::callout_ids(&app).await.len(), 3);

    // Without API_KEYS only a loopback listener may start.
    let env = [("LISTEN_ADDR", "0.0.0.0:0"), ("GATEWAY_SECRET", SECRET)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let e = Config::from_map(&env).unwrap_err();
    assert!(e.to_string().contains("API_KEYS"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_urls_pointing_inward_are_refused_at_creation_unless_allowed() {
    let app = spawn_app(Options::default().env("ALLOW_PRIVATE_URLS", "false")).await;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut urls: Vec<String> = [
        "http://127.0.0.1:8080/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/hook",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://user:password@dispatch.example.com/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://dispatch.example.com/",
        "not a url",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // A name that is not obviously internal but resolves inward (an /etc/hosts
    // entry): the machine's own name usually is one.
    let inward = tokio::net::lookup_host((hostname.as_str(), 80))
        .await
        .map(|mut a| a.any(|a| ivr_gateway::net::is_internal_ip(a.ip())))
        .unwrap_or(false);
    if !hostname.is_empty() && inward {
        urls.push(format!("http://{hostname}:8080/hook"));
    }
    for url in &urls {
        let mut body = ticket_callout(1);
        body["notify_url"] = json!(url);
        let a = create(&app, &body).await;
        a.assert_names("notify_url");
        assert_eq!(a.fields(), ["notify_url"], "{url}: {a:?}");
    }
    assert_nothing_created(&app).await;

    // A public name is accepted (it is judged again at every delivery).
    let mut body = ticket_callout(1);
    body["notify_url"] = json!("https://dispatch.example.com/hooks/callout");
    assert_eq!(create(&app, &body).await.status, 201);

    // The sandbox default, ALLOW_PRIVATE_URLS=true, lets a loopback target through.
    let open = spawn_app(Options::default()).await;
    let mut body = ticket_callout(1);
    body["notify_url"] = json!("http://127.0.0.1:9/hook");
    assert_eq!(create(&open, &body).await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_client_refuses_names_that_resolve_to_internal_addresses() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let port = server.address().port();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut names = vec!["localhost".to_owned()];
    // The machine's own name looks public but resolves to loopback on most hosts.
    if tokio::net::lookup_host((hostname.as_str(), port))
        .await
        .is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()))
    {
        names.push(hostname);
    }
    let guarded = ivr_gateway::net::outbound_client(false, Duration::from_secs(5)).unwrap();
    let open = ivr_gateway::net::outbound_client(true, Duration::from_secs(5)).unwrap();
    for name in &names {
        let url = format!("http://{name}:{port}/hook");
        let refused = guarded.post(&url).body("{}").send().await;
        let err = refused.expect_err("the guard let an internal address through");
        assert!(format!("{err:?}").contains("internal"), "{name}: {err:?}");
        // The control: the same URL is reachable without the guard.
        let reached = open.post(&url).body("{}").send().await.unwrap();
        assert_eq!(reached.status(), 200, "{name}");
    }
    let received = server.received_requests().await.unwrap();
    assert_eq!(
        received.len(),
        names.len(),
        "only the unguarded client got through"
    );
}

/// A free loopback port (bound then released; the gateway binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_debug_hold_no_secret_key_signature_or_full_phone_number() {
    let notify = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&notify)
        .await;
    let numbers = [
        "+306941234501",
        "+306941234502",
        "+306941234503",
        "+306941234504",
    ];
    let dir = tempfile::tempdir().unwrap();
    let callees = dir.path().join("callees.json");
    std::fs::write(
        &callees,
        json!({numbers[0]: "busy", numbers[2]: {"press": ["2"]}}).to_string(),
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivr-gateway"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("GATEWAY_SECRET", SECRET)
        .env(
            "API_KEYS",
            format!("admin:{ADMIN_TOKEN},dispatcher:{DISPATCHER_TOKEN}"),
        )
        .env("SIM_TIME_SCALE", "0.02")
        .env("SIM_CALLEES_FILE", &callees)
        .env("TIMER_POLL_MS", "20")
        .env("COLLECT_GRACE_MS", "300")
        .env("SHUTDOWN_GRACE_MS", "500")
        .env("ROUTEE_CALLS_PER_SECOND", "200")
        .env("PERSON_CALLS_PER_15_MIN", "0")
        .env("PERSON_CALLS_PER_HOUR", "0")
        .env("DIALPLANS_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gateway binary starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // This test's own client: nothing else in a process of its own (nextest) has
    // installed the crypto provider yet.
    ivr_gateway::net::install_crypto_provider();
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(started.elapsed() < LONG, "the gateway never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ids = Vec::new();
    for (script, contacts) in [
        (json!({"dialplan": "ticket-escalation"}), &numbers[..2]),
        (json!({"assistant": "sandbox"}), &numbers[2..]),
    ] {
        let mut body = json!({
            "name": "Ticket 4711",
            "variables": {"ticket": "Server room 2 is flooding"},
            "contacts": contacts.iter().enumerate().map(|(i, p)| json!({"name": format!("Person {i}"), "phone": p})).collect::<Vec<_>>(),
            "policy": {"attempts_per_contact": 1, "retry_delay_s": 1, "ring_timeout_s": 10},
            "notify_url": format!("{}/hook", notify.uri()),
        });
        for (k, v) in script.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = http
            .post(format!("{base}/v1/callouts"))
            .bearer_auth(DISPATCHER_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut finals = Vec::new();
    for id in &ids {
        let started = Instant::now();
        loop {
            let c: Value = http
                .get(format!("{base}/v1/callouts/{id}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let delivered = c["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "notify_delivered"));
            let settled = c["attempts"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| !x["outcome"].is_null()));
            if c["status"] == "accepted" && delivered && settled {
                finals.push(c);
                break;
            }
            assert!(started.elapsed() < LONG, "never settled: {c}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > LONG {
            let _ = child.kill();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = format!("{}{}", out.join().unwrap(), err.join().unwrap());

    // The run logged enough to mean something: JSON lines, debug level, both callouts.
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "no debug lines:\n{logs}"
    );
    for id in &ids {
        assert!(logs.contains(id.as_str()), "callout {id} never logged");
    }

    let ours = signer(SECRET);
    let mut secrets: Vec<(String, String)> = vec![
        ("GATEWAY_SECRET".into(), SECRET.into()),
        ("the admin token".into(), ADMIN_TOKEN.into()),
        ("the dispatcher token".into(), DISPATCHER_TOKEN.into()),
        ("a Voiceflow key".into(), "VF.DM.".into()),
        ("a webhook signature".into(), "sig=".into()),
    ];
    // Webhook signatures carry their expiry (`<unix>.<mac>`), so they cannot be
    // recomputed here: any signature-shaped token is looked for instead.
    let _ = (&ours, &finals);
    let signature = regex::Regex::new(r"\b\d{10}\.[A-Za-z0-9_-]{43}\b").unwrap();
    if let Some(line) = logs.lines().find(|l| signature.is_match(l)) {
        panic!("a webhook signature is in the logs:\n{line}");
    }
    for request in notify.received_requests().await.unwrap() {
        if let Some(sig) = request.headers.get("x-ivr-signature") {
            let sig = sig.to_str().unwrap();
            let v1 = sig.split("v1=").nth(1).unwrap_or(sig);
            secrets.push(("a notification signature".into(), v1.to_owned()));
        }
    }
    for number in numbers {
        secrets.push(("a full phone number".into(), number.to_owned()));
        secrets.push((
            "a full phone number without +".into(),
            number[1..].to_owned(),
        ));
    }
    for (what, secret) in &secrets {
        if let Some(line) = logs.lines().find(|l| l.contains(secret.as_str())) {
            panic!("{what} ({secret}) is in the logs:\n{line}");
        }
    }
}
