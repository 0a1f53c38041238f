//! Benchmark 3: escalation at scale. The real release binary in live mode
//! against the carrier simulator (in this process, time compressed) and the
//! private Redis; thousands of callouts of five contacts, each scripted so its
//! final state is known in advance:
//!
//! | share | contacts (behaviour by position) | expected |
//! |---|---|---|
//! | 70% | busy, rejects (presses 2), accepts (presses 1), accepts, accepts | `accepted` by contact 2 after 4 calls (busy twice) |
//! | 20% | accepts ×5 | `accepted` by contact 0 after 1 call |
//! | 10% | never answers, rejects ×4 | `exhausted` after 6 calls |
//!
//! Policy: 2 attempts per contact, 1 s between them, 5 s ring timeout (scaled by
//! the simulator), 1 s input timeout, no reprompt.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use ivr_gateway::domain::{CalloutId, CalloutStatus};
use ivr_gateway::sim::{Behaviour, CalleeScript, Callees, SimSettings, Simulator};
use ivr_gateway::store::{RedisStore, Store};
use serde_json::{Value, json};

use crate::gateway::{SECRET, TOKEN};
use crate::stats::proc_status_kib;

pub struct Settings {
    pub callouts: usize,
    pub time_scale: f64,
    pub calls_per_second: u32,
}

pub struct EscalationReport {
    pub callouts: usize,
    pub correct: usize,
    pub wrong: Vec<String>,
    pub calls: usize,
    pub wall: Duration,
    /// Time to create every callout through the API.
    pub create: Duration,
    pub ideal_rate: Duration,
    pub ideal_chain: Duration,
    pub peak_rss_kib: Option<u64>,
    pub redis_bytes_per_callout: f64,
    pub timer_lag: Option<Lag>,
    pub time_scale: f64,
    pub calls_per_second: u32,
}

pub struct Lag {
    pub count: u64,
    pub p50: String,
    pub p99: String,
    /// Share of the timers claimed within 250 ms of their due time (the target's bound).
    pub within_250ms: Option<f64>,
}

impl EscalationReport {
    pub fn ideal(&self) -> Duration {
        self.ideal_rate.max(self.ideal_chain)
    }
}

const BUSY: u8 = 0;
const REJECTS: u8 = 1;
const ACCEPTS: u8 = 2;
const NEVER: u8 = 3;

fn phone(behaviour: u8, position: usize) -> String {
    format!("+30691{behaviour}{position}00000")
}

/// Callout `i`'s contacts' behaviours, and its expected (status, accepted_by).
fn script(i: usize) -> ([u8; 5], CalloutStatus, Option<usize>) {
    match i % 10 {
        0..=6 => (
            [BUSY, REJECTS, ACCEPTS, ACCEPTS, ACCEPTS],
            CalloutStatus::Accepted,
            Some(2),
        ),
        7 | 8 => ([ACCEPTS; 5], CalloutStatus::Accepted, Some(0)),
        _ => (
            [NEVER, REJECTS, REJECTS, REJECTS, REJECTS],
            CalloutStatus::Exhausted,
            None,
        ),
    }
}

fn callees() -> Callees {
    let mut c = Callees::new(CalleeScript::always(Behaviour::silent()));
    for p in 0..5 {
        c.insert(&phone(BUSY, p), Behaviour::Busy);
        c.insert(&phone(REJECTS, p), Behaviour::press_on_prompt(["2"]));
        c.insert(&phone(ACCEPTS, p), Behaviour::accepts());
        c.insert(&phone(NEVER, p), Behaviour::NeverAnswers);
    }
    c
}

fn body(i: usize) -> Value {
    let (behaviours, _, _) = script(i);
    let contacts: Vec<Value> = behaviours
        .iter()
        .enumerate()
        .map(|(p, b)| json!({"name": format!("Person {p}"), "phone": phone(*b, p)}))
        .collect();
    json!({
        "name": format!("escalation {i}"),
        "dialplan": "ticket-escalation",
        "variables": {"ticket": "Server room 2 is flooding"},
        "contacts": contacts,
        "policy": {"attempts_per_contact": 2, "retry_delay_s": 1, "input_timeout_s": 1,
                   "reprompts": 0, "ring_timeout_s": 5},
    })
}

struct Child_ {
    child: Child,
    base: String,
}

impl Drop for Child_ {
    fn drop(&mut self) {
        // SIGTERM first (a graceful stop), then make sure.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create(http: &reqwest::Client, base: &str, i: usize) -> anyhow::Result<CalloutId> {
    let r = http
        .post(format!("{base}/v1/callouts"))
        .bearer_auth(TOKEN)
        .json(&body(i))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "create callout {i}: {}", r.status());
    let v: Value = r.json().await?;
    v["id"]
        .as_str()
        .context("no id")?
        .parse()
        .map_err(|e| anyhow::anyhow!("callout id: {e:?}"))
}

/// Final and with every call over (the accepting call's goodbye included).
fn settled(v: &Value) -> bool {
    v["status"] != "calling"
        && v["attempts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| !x["outcome"].is_null()))
}

/// One callout of each kind on an idle system: the scripts' own duration.
async fn chain_time(http: &reqwest::Client, base: &str) -> anyhow::Result<Duration> {
    let mut longest = Duration::ZERO;
    for i in [0, 7, 9] {
        let t0 = Instant::now();
        let id = create(http, base, i).await?;
        loop {
            let v: Value = http
                .get(format!("{base}/v1/callouts/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .json()
                .await?;
            if settled(&v) {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "probe callout {i} never settled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        longest = longest.max(t0.elapsed());
    }
    Ok(longest)
}

/// Percentile of a Prometheus histogram from its cumulative buckets, as the
/// bucket bound it falls under.
fn histogram_quantiles(metrics: &str, name: &str) -> Option<Lag> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(String, u64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"}")?;
            Some((le.to_owned(), count.trim().parse::<f64>().ok()? as u64))
        })
        .collect();
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let at = |q: f64| {
        let want = (total as f64 * q).ceil() as u64;
        buckets
            .iter()
            .find(|(_, c)| *c >= want)
            .map(|(le, _)| match le.parse::<f64>() {
                Ok(s) => format!("≤ {} ms", s * 1000.0),
                Err(_) => format!(
                    "> {} ms",
                    buckets
                        .iter()
                        .rev()
                        .nth(1)
                        .map_or(String::new(), |(l, _)| l.clone())
                ),
            })
            .unwrap_or_default()
    };
    let within_250ms = buckets
        .iter()
        .find(|(le, _)| le.parse::<f64>().is_ok_and(|s| (s - 0.25).abs() < 1e-9))
        .map(|(_, c)| *c as f64 / total as f64);
    Some(Lag {
        count: total,
        p50: at(0.5),
        p99: at(0.99),
        within_250ms,
    })
}

pub async fn run(ctx: &crate::Ctx, settings: &Settings) -> anyhow::Result<EscalationReport> {
    let mut sim_settings = SimSettings::new(settings.time_scale);
    sim_settings.callees = callees();
    let sim = Simulator::start(sim_settings, "127.0.0.1:0".parse()?).await?;
    let (app_id, app_secret) = sim.credentials();
    let port = crate::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log = tempfile::NamedTempFile::new()?;
    let prefix = "esc";
    let child = Command::new(crate::gateway_binary())
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .envs([
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("PUBLIC_URL", base.clone()),
            ("REDIS_URL", ctx.redis_url.clone()),
            ("REDIS_PREFIX", prefix.to_owned()),
            ("ROUTEE_APP_ID", app_id),
            ("ROUTEE_APP_SECRET", app_secret),
            ("ROUTEE_API_URL", sim.base_url().to_string()),
            ("ROUTEE_AUTH_URL", sim.auth_url().to_string()),
            ("ROUTEE_FROM", "+306900000000".to_owned()),
            ("ALLOWED_DESTINATIONS", "*".to_owned()),
            ("ALLOW_INSECURE_PUBLIC_URL", "true".to_owned()),
            (
                "ROUTEE_CALLS_PER_SECOND",
                settings.calls_per_second.to_string(),
            ),
            ("GATEWAY_SECRET", SECRET.to_owned()),
            ("API_KEYS", format!("admin:{TOKEN}")),
            ("ALLOW_PRIVATE_URLS", "true".to_owned()),
            // 10,000 callouts call the same few simulated numbers: no per-person limits.
            ("PERSON_CALLS_PER_15_MIN", "0".to_owned()),
            ("PERSON_CALLS_PER_HOUR", "0".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ])
        .stdout(Stdio::null())
        .stderr(log.reopen()?)
        .spawn()
        .context("cannot start the gateway binary")?;
    let gw = Child_ { child, base };
    let pid = gw.child.id().to_string();
    let http = crate::load::client()?;
    if let Err(e) = crate::wait_ready(&http, &gw.base, Duration::from_secs(20)).await {
        let out = std::fs::read_to_string(log.path()).unwrap_or_default();
        anyhow::bail!("{e}; the gateway said:\n{out}");
    }

    eprintln!("[escalation] one callout of each kind alone (the scripts' own duration)");
    let ideal_chain = chain_time(&http, &gw.base).await?;
    let calls_before = sim.calls().len();
    let mut redis = ctx.redis.clone();
    let mem_before = crate::redis::used_memory(&mut redis).await?;
    let store =
        Store::Redis(RedisStore::connect(&ctx.redis_url, prefix, Duration::from_secs(3600)).await?);

    eprintln!("[escalation] {} callouts of 5 contacts", settings.callouts);
    let t0 = Instant::now();
    let ids: Vec<CalloutId> = crate::run_bounded(0..settings.callouts, 32, |i| {
        let (http, base) = (&http, &gw.base);
        async move { create(http, base, i).await }
    })
    .await?;
    let create_time = t0.elapsed();
    let deadline = Duration::from_secs(600 + settings.callouts as u64 / 10);
    loop {
        let counts = store.counts().await?;
        if counts.active_callouts == 0 && counts.live_calls == 0 {
            break;
        }
        if t0.elapsed() > deadline {
            anyhow::bail!(
                "not settled after {deadline:?}: {} callouts still calling, {} live calls",
                counts.active_callouts,
                counts.live_calls
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = t0.elapsed();
    let peak_rss_kib = proc_status_kib(&pid, "VmHWM");
    let mem_after = crate::redis::used_memory(&mut redis).await?;
    let metrics = http
        .get(format!("{}/metrics", gw.base))
        .send()
        .await?
        .text()
        .await?;
    if let Ok(path) = std::env::var("BENCH_METRICS_DUMP") {
        std::fs::write(path, &metrics)?;
    }
    let timer_lag = histogram_quantiles(&metrics, "ivr_timer_lag_seconds");

    let mut correct = 0;
    let mut wrong = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (_, status, by) = script(i);
        let got = store
            .load(*id)
            .await?
            .map(|v| (v.value.status, v.value.accepted_by));
        if got == Some((status, by)) {
            correct += 1;
        } else if wrong.len() < 5 {
            wrong.push(format!(
                "callout {i} ({id}): expected {status:?} by {by:?}, got {got:?}"
            ));
        }
    }
    let calls = sim.calls().len() - calls_before;
    drop(gw);
    sim.shutdown().await;
    Ok(EscalationReport {
        callouts: settings.callouts,
        correct,
        wrong,
        calls,
        wall,
        create: create_time,
        ideal_rate: Duration::from_secs_f64(calls as f64 / f64::from(settings.calls_per_second)),
        ideal_chain,
        peak_rss_kib,
        redis_bytes_per_callout: mem_after.saturating_sub(mem_before) as f64
            / settings.callouts as f64,
        timer_lag,
        time_scale: settings.time_scale,
        calls_per_second: settings.calls_per_second,
    })
}
