//! The real binary: `dialplan check`, live-mode startup refusal, and `serve` in
//! the sandbox with the README's one `curl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ivr-gateway");

/// A command with no inherited configuration (the developer's shell may have some).
fn gateway() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("ROUTEE_")
            || k.starts_with("VOICEFLOW_")
            || k.starts_with("REDIS_")
            || k == "API_KEYS"
            || k == "GATEWAY_SECRET"
            || k == "PUBLIC_URL"
            || k == "LISTEN_ADDR"
        {
            c.env_remove(k);
        }
    }
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn dialplan_check_accepts_the_shipped_template() {
    let out = gateway()
        .args(["dialplan", "check", "dialplans/ticket-escalation.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok") && stdout.contains("ticket"),
        "{stdout}"
    );
}

#[test]
fn dialplan_check_refuses_a_broken_template_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "language = \"en-US\"\n[menu]\nsay = \"Press 1\"\n[keys.1]\noutcome = \"maybe\"\nsay = \"x\"\n").unwrap();
    let out = gateway()
        .args(["dialplan", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.toml:5") && stderr.contains("maybe"),
        "{stderr}"
    );
}

#[test]
fn dialplan_check_lists_the_languages_and_reports_a_translation_that_differs() {
    let out = gateway()
        .args(["dialplan", "check", "dialplans/ticket-escalation.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("languages: en-US, de-DE, fr-FR, es-ES, el-GR"),
        "{stdout}"
    );
    let dir = tempfile::tempdir().unwrap();
    let flow = "[menu]\nsay = \"{{ticket}}: 1\"\n[keys.1]\noutcome = \"accepted\"\n";
    std::fs::write(
        dir.path().join("flow.toml"),
        format!("language = \"en-US\"\n{flow}"),
    )
    .unwrap();
    // German: another placeholder, and a key English does not have.
    std::fs::write(
        dir.path().join("flow.de-DE.toml"),
        "language = \"de-DE\"\n[menu]\nsay = \"{{tiket}}: 1\"\n[keys.1]\noutcome = \"accepted\"\n[keys.3]\nsay = \"x\"\n",
    )
    .unwrap();
    // Greek: fine.
    std::fs::write(
        dir.path().join("flow.el-GR.toml"),
        format!("language = \"el-GR\"\n{flow}"),
    )
    .unwrap();
    for checked in ["flow.toml", "flow.de-DE.toml"] {
        let out = gateway()
            .args(["dialplan", "check"])
            .arg(dir.path().join(checked))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{checked}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("flow.de-DE.toml")
                && stderr.contains("keys differ between languages: 1 in en-US, 1, 3 in de-DE")
                && stderr.contains(
                    "placeholders differ between languages: {ticket} in en-US, {tiket} in de-DE"
                )
                && !stderr.contains("el-GR"),
            "{stderr}"
        );
    }
}

#[test]
fn live_mode_with_missing_settings_refuses_to_start_listing_every_problem() {
    let out = gateway()
        .arg("serve")
        .env("ROUTEE_APP_ID", "app")
        .env("ROUTEE_APP_SECRET", "secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for var in [
        "PUBLIC_URL",
        "ROUTEE_FROM",
        "GATEWAY_SECRET",
        "API_KEYS",
        "ALLOWED_DESTINATIONS",
    ] {
        assert!(stderr.contains(var), "{var} not named in: {stderr}");
    }
    assert!(
        !stderr.contains("secret\""),
        "a secret value was echoed: {stderr}"
    );
}

#[test]
fn help_explains_each_command() {
    let out = gateway().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "demo", "dialplan", "healthcheck"] {
        assert!(text.contains(cmd), "{cmd} missing from --help: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_the_sandbox_and_the_readmes_curl_ends_accepted() {
    let mut child = gateway()
        .arg("serve")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("SIM_TIME_SCALE", "0.02")
        .env("RUST_LOG", "warn")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The startup line tells where it listens; the log lines after it (and any
    // fatal error on stderr) are kept for a failure's message.
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    keep_lines(child.stdout.take().unwrap(), "", &log, tx.clone());
    keep_lines(child.stderr.take().unwrap(), "stderr: ", &log, tx);
    let (base, console) = tokio::task::spawn_blocking(move || {
        let mut lines = rx.iter();
        let base = lines
            .find_map(|line| Some(line.split("listening on ").nth(1)?.trim().to_owned()))
            .expect("no startup line");
        let console = lines
            .find_map(|line| {
                Some(
                    line.strip_prefix("console: ")?
                        .split(' ')
                        .next()?
                        .to_owned(),
                )
            })
            .expect("no console line");
        (base, console)
    })
    .await
    .unwrap();
    assert_eq!(console, format!("{base}/console"));
    let logs = move || log.lock().unwrap().clone();
    ivr_gateway::net::install_crypto_provider();
    let http = reqwest::Client::new();
    // The README's curl, as written there.
    let body: serde_json::Value = serde_json::from_str(
        r#"{
  "name": "Ticket 4711", "dialplan": "ticket-escalation",
  "variables": {"ticket": "Server room 2 is flooding"},
  "contacts": [{"name": "Alice", "phone": "+306900000001"}, {"name": "Bob", "phone": "+306900000002"}]
}"#,
    )
    .unwrap();
    let r = match http
        .post(format!("{base}/v1/callouts"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!(
            "POST /v1/callouts: {e:?}; exit: {:?}; the gateway said:\n{}",
            child.try_wait(),
            logs()
        ),
    };
    assert_eq!(r.status(), 201);
    let page = http.get(&console).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let c = loop {
        let c: serde_json::Value = http
            .get(format!("{base}/v1/callouts/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if c["status"] != "calling" {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still calling: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(c["status"], "accepted");
    assert_eq!(c["accepted_by"]["name"], "Alice");
    // SIGTERM: a clean exit.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// Reads `from` line by line on a thread of its own: each line is appended to
/// `log` (after `prefix`) and sent to `lines` while anyone listens.
fn keep_lines(
    from: impl std::io::Read + Send + 'static,
    prefix: &'static str,
    log: &Arc<Mutex<String>>,
    lines: mpsc::Sender<String>,
) {
    let log = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            log.lock().unwrap().push_str(&format!("{prefix}{line}\n"));
            let _ = lines.send(line);
        }
    });
}
