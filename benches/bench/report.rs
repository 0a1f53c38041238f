//! The results as Markdown: the machine, one table per benchmark, and a table
//! of every target with the figure it is held to and its baseline.

use std::fmt::Write as _;
use std::time::Duration;

use crate::args::CASES;
use crate::escalation::EscalationReport;
use crate::footprint::{DISTROLESS_CC_BYTES, FootprintReport};
use crate::load::Run;
use crate::status::StatusReport;
use crate::turn::TurnReport;
use crate::{Args, Ctx};

pub struct Report {
    header: String,
    pub turn: Option<TurnReport>,
    pub status: Option<StatusReport>,
    pub escalation: Option<EscalationReport>,
    pub footprint: Option<FootprintReport>,
    pub audio: Option<crate::audio::AudioReport>,
    /// `status` and `escalation` again on Redis Cluster deployments (`--redis`).
    pub deployments: Vec<Deployment>,
}

/// The figures of one Redis Cluster deployment.
pub struct Deployment {
    pub name: String,
    pub primaries: usize,
    pub status: Option<StatusReport>,
    pub escalation: Option<EscalationReport>,
}

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn command_line(args: &Args) -> String {
    let mut cmd = String::from("cargo bench --bench bench --");
    if args.smoke {
        cmd.push_str(" --smoke");
    }
    if args.which.len() == CASES.len() {
        cmd.push_str(" all");
    } else {
        for w in &args.which {
            let _ = write!(cmd, " {w}");
        }
    }
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let _ = write!(
        cmd,
        " --callouts {} --voiceflow-ms {} --seconds {} --warmup {} --rounds {} --callbacks {} --time-scale {} \
         --levels {} --saturation-ms {} --senders {} --tries {}",
        args.callouts,
        args.voiceflow_ms,
        args.seconds,
        args.warmup,
        args.rounds,
        args.callbacks,
        args.time_scale,
        join(&args.levels),
        args.saturation_ms,
        join(&args.senders),
        args.tries,
    );
    if !args.redis.is_empty() {
        let _ = write!(cmd, " --redis single,{}", args.redis.join(","));
    }
    cmd
}

/// The build the figures come from: `cargo bench` builds with optimisations,
/// `cargo test` (the smoke run) without, and then the figures are not measurements.
fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Appends what is wrong with one measured run, if anything.
fn check_run(wrong: &mut Vec<String>, what: &str, run: &Run) {
    if run.requests() == 0 {
        wrong.push(format!("{what}: no request was measured"));
    } else if run.errors > 0 {
        wrong.push(format!(
            "{what}: {} of {} answers wrong",
            run.errors,
            run.requests()
        ));
    }
}

/// `status` and `escalation` on each Redis deployment of the run, side by side.
fn deployments_section(
    out: &mut String,
    single_status: Option<&mut StatusReport>,
    single_escalation: Option<&EscalationReport>,
    deployments: &mut [Deployment],
) {
    let _ = writeln!(
        out,
        "### Redis deployments (same run)\n\n\
         The gateway's status intake and escalation on one `redis-server` and on Redis Clusters of 1 and 3 \
         primaries (a replica each; slots cut so the 16 shards spread evenly, 16 or 5-6 per primary; the \
         gateway `WAIT`s for one replica on a decision, a call being sent or placed and a callout's end). \
         Every process shares this machine's cores, so more primaries add servers, not CPU.\n"
    );
    let _ = writeln!(
        out,
        "| Redis | status 50 senders: callbacks/s, p99 | status 500 senders: callbacks/s, p99 | escalation: right / callouts | wall time | calls/s | timer lag p99 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut row =
        |name: &str, status: Option<&mut StatusReport>, esc: Option<&EscalationReport>| {
            let mut cells = vec![name.to_owned()];
            for senders in [50, 500] {
                let cell = status
                    .as_deref()
                    .and_then(|s| s.levels.iter().position(|l| l.senders == senders))
                    .map_or_else(
                        || "-".to_owned(),
                        |i| {
                            let s = status.as_deref().map(|s| &s.levels[i]);
                            let g = s.map(|l| l.gateway.clone()).unwrap_or_default();
                            let mut samples = g.samples.clone();
                            format!(
                                "{:.0}/s, {:.1} ms",
                                g.per_second(),
                                samples.quantile_ms(0.99, Duration::ZERO)
                            )
                        },
                    );
                cells.push(cell);
            }
            match esc {
                Some(e) => {
                    cells.push(format!("{} / {}", e.correct, e.callouts));
                    cells.push(secs(e.wall));
                    cells.push(format!(
                        "{:.0}",
                        e.calls as f64 / e.wall.as_secs_f64().max(1e-9)
                    ));
                    cells.push(e.timer_lag.as_ref().map_or("-".into(), |l| l.p99.clone()));
                }
                None => cells.extend(["-", "-", "-", "-"].map(str::to_owned)),
            }
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        };
    row("single server", single_status, single_escalation);
    for d in deployments.iter_mut() {
        let name = format!(
            "cluster, {} primar{} (`{}`)",
            d.primaries,
            if d.primaries == 1 { "y" } else { "ies" },
            d.name
        );
        row(&name, d.status.as_mut(), d.escalation.as_ref());
    }
    let _ = writeln!(out);
}

impl Report {
    pub async fn new(args: &Args, ctx: &Ctx) -> anyhow::Result<Report> {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let cpu =
            first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
        let mem_kib: u64 = first_line_with("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut redis = ctx.redis.clone();
        let redis_version = crate::redis::info(&mut redis, "server")
            .await?
            .get("redis_version")
            .cloned()
            .unwrap_or_default();
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let header = format!(
            "Machine: {cores} cores, {cpu}, {:.1} GiB RAM, Linux {}; redis-server {redis_version}; \
             commit {commit}; {date}; {} build.\n\nCommand: `{}`\n{}",
            mem_kib as f64 / 1024.0 / 1024.0,
            kernel.trim(),
            build(),
            command_line(args),
            if args.smoke {
                "\n**Smoke run**: every case end to end at a few seconds' size; the figures \
                 are not measurements, only wrong answers fail it.\n"
            } else {
                ""
            },
        );
        Ok(Report {
            header,
            turn: None,
            status: None,
            escalation: None,
            footprint: None,
            audio: None,
            deployments: Vec::new(),
        })
    }

    /// Every wrong answer the runs saw: what a smoke run fails on.
    pub fn wrong_answers(&self) -> Vec<String> {
        let mut wrong = Vec::new();
        if let Some(t) = &self.turn {
            for l in t.levels.iter().chain(&t.saturation) {
                for (who, run) in [("gateway", &l.gateway), ("baseline", &l.baseline)] {
                    let what = format!("turn, {} calls, {who}", l.concurrency);
                    check_run(&mut wrong, &what, run);
                }
            }
        }
        if let Some(s) = &self.status {
            for l in &s.levels {
                for (who, run) in [("gateway", &l.gateway), ("baseline", &l.baseline)] {
                    let what = format!("status, {} senders, {who}", l.senders);
                    check_run(&mut wrong, &what, run);
                }
            }
        }
        if let Some(e) = &self.escalation {
            if e.correct != e.callouts {
                wrong.push(format!(
                    "escalation: {} of {} callouts in the right final state; {}",
                    e.correct,
                    e.callouts,
                    e.wrong.join("; ")
                ));
            }
            if e.timer_lag.is_none() {
                wrong.push("escalation: no timer fired (ivr_timer_lag_seconds is empty)".into());
            }
        }
        wrong
    }

    pub fn print(&mut self) {
        let mut out = String::new();
        let _ = writeln!(out, "\n{}", self.header);
        let mut targets = Targets::default();
        if let Some(t) = &mut self.turn {
            turn_section(&mut out, t, &mut targets);
        }
        if let Some(s) = &mut self.status {
            status_section(&mut out, s, &mut targets);
        }
        if let Some(e) = &self.escalation {
            escalation_section(&mut out, e, &mut targets);
        }
        if let Some(f) = &self.footprint {
            footprint_section(&mut out, f, &mut targets);
        }
        if let Some(a) = &self.audio {
            audio_section(&mut out, a, &mut targets);
        }
        if !self.deployments.is_empty() {
            deployments_section(
                &mut out,
                self.status.as_mut(),
                self.escalation.as_ref(),
                &mut self.deployments,
            );
        }
        let _ = writeln!(out, "### Targets\n");
        let _ = writeln!(
            out,
            "| benchmark | figure | gateway | baseline | target | met |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in &targets.0 {
            let _ = writeln!(out, "{row}");
        }
        println!("{out}");
    }
}

#[derive(Default)]
struct Targets(Vec<String>);

impl Targets {
    fn add(
        &mut self,
        bench: &str,
        figure: &str,
        gateway: impl std::fmt::Display,
        baseline: impl std::fmt::Display,
        target: &str,
        met: Option<bool>,
    ) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "(reported)",
        };
        self.0.push(format!(
            "| {bench} | {figure} | {gateway} | {baseline} | {target} | {met} |"
        ));
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

fn run_row(out: &mut String, first: &str, who: &str, r: &mut Run, minus: Duration) {
    let _ = writeln!(
        out,
        "| {first} | {who} | {:.0} | {} | {} | {} | {:.0} µs | {:.0} µs | {:.2} | {} / {} |",
        r.per_second(),
        ms(r.samples.quantile_ms(0.5, minus)),
        ms(r.samples.quantile_ms(0.99, minus)),
        ms(r.samples.quantile_ms(0.999, minus)),
        r.cpu_us(),
        r.redis_cpu.as_secs_f64() * 1e6 / r.requests().max(1) as f64,
        r.redis_commands_per_request(),
        r.errors,
        r.requests(),
    );
}

fn count_commands(cmds: &[String]) -> String {
    let mut names: Vec<(String, usize)> = Vec::new();
    for c in cmds {
        match names.iter_mut().find(|(n, _)| n == c) {
            Some((_, k)) => *k += 1,
            None => names.push((c.clone(), 1)),
        }
    }
    let list: Vec<String> = names
        .iter()
        .map(|(n, k)| {
            if *k > 1 {
                format!("{k}× {n}")
            } else {
                n.clone()
            }
        })
        .collect();
    format!("{} ({})", cmds.len(), list.join(", "))
}

fn turn_section(out: &mut String, t: &mut TurnReport, targets: &mut Targets) {
    let vf = t.voiceflow_latency;
    let _ = writeln!(
        out,
        "### 1. Call turn: eventUrl POST → Voiceflow → dialplan\n\n\
         Closed loop, each worker one live call pressing `1` turn after turn, the workers' first presses spread \
         over one Voiceflow period (callers do not press in the same millisecond); the fake Voiceflow answers \
         every turn after {} ms. Overhead = total − {} ms. The last rows repeat the most calls with a fast \
         Voiceflow so that both handlers saturate the 2 cores: their throughput compares what a turn costs. Baseline: an axum handler making the same Voiceflow \
         call and answering a fixed dialplan (no store, no signature). CPU is this whole process per turn \
         (gateway or baseline + fakes + load generator); Redis commands count those run inside Lua scripts too, and the timer loop's polling; round trips are counted apart below.\n",
        vf.as_millis(),
        vf.as_millis()
    );
    let _ = writeln!(
        out,
        "| calls | handler | turns/s | overhead p50 | p99 | p99.9 | CPU/turn | Redis CPU/turn | Redis commands/turn | wrong answers |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for l in &mut t.levels {
        run_row(
            out,
            &l.concurrency.to_string(),
            "gateway",
            &mut l.gateway,
            vf,
        );
        run_row(
            out,
            &l.concurrency.to_string(),
            "baseline",
            &mut l.baseline,
            vf,
        );
    }
    let sat = t.saturation_latency;
    if let Some(l) = &mut t.saturation {
        let label = format!(
            "{} (Voiceflow {} ms: saturation)",
            l.concurrency,
            sat.as_millis()
        );
        run_row(out, &label, "gateway", &mut l.gateway, sat);
        run_row(out, &label, "baseline", &mut l.baseline, sat);
    }
    let _ = writeln!(
        out,
        "\nRedis round trips of one turn (MONITOR): {}\n",
        count_commands(&t.round_trips)
    );
    if let Some(l) = t.levels.iter_mut().find(|l| l.concurrency == 500) {
        let g99 = l.gateway.samples.quantile_ms(0.99, vf);
        let b99 = l.baseline.samples.quantile_ms(0.99, vf);
        targets.add(
            "turn, 500 calls",
            "overhead p99",
            ms(g99),
            ms(b99),
            "≤ 2 ms",
            Some(g99 <= 2.0),
        );
    }
    if let Some(l) = &mut t.saturation {
        let ratio = l.gateway.per_second() / l.baseline.per_second().max(1e-9);
        targets.add(
            &format!("turn, {} calls, saturated", l.concurrency),
            "throughput",
            format!("{:.0}/s ({:.0}%)", l.gateway.per_second(), ratio * 100.0),
            format!("{:.0}/s", l.baseline.per_second()),
            "≥ 60% of baseline",
            Some(ratio >= 0.6),
        );
    }
}

fn status_section(out: &mut String, s: &mut StatusReport, targets: &mut Targets) {
    let _ = writeln!(
        out,
        "### 2. Status callback intake\n\n\
         Each sender owns its calls (placed, `Queued`) and delivers per call `Queued` (no-op: already queued), \
         `Ringing`, `InProgress`, `Completed` (applied) and `Completed` again (no-op redelivery): 3 of 5 \
         applied. Baseline: an axum handler parsing the same body and doing one Redis `HSET`. Redis commands include those run inside Lua scripts.\n"
    );
    let _ = writeln!(
        out,
        "| senders | handler | callbacks/s | latency p50 | p99 | p99.9 | CPU/callback | Redis CPU/callback | Redis commands/callback | refused |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for l in &mut s.levels {
        run_row(
            out,
            &l.senders.to_string(),
            "gateway",
            &mut l.gateway,
            Duration::ZERO,
        );
        run_row(
            out,
            &l.senders.to_string(),
            "baseline",
            &mut l.baseline,
            Duration::ZERO,
        );
    }
    let _ = writeln!(
        out,
        "\nRedis round trips of one callback (MONITOR): applied {}; no-op {}\n",
        count_commands(&s.applied_round_trips),
        count_commands(&s.noop_round_trips)
    );
    for l in &mut s.levels {
        let ratio = l.gateway.per_second() / l.baseline.per_second().max(1e-9);
        targets.add(
            &format!("status, {} senders", l.senders),
            "callbacks/s",
            format!("{:.0}/s ({:.0}%)", l.gateway.per_second(), ratio * 100.0),
            format!("{:.0}/s", l.baseline.per_second()),
            "≥ 50% of baseline",
            Some(ratio >= 0.5),
        );
        targets.add(
            &format!("status, {} senders", l.senders),
            "latency p99",
            ms(l.gateway.samples.quantile_ms(0.99, Duration::ZERO)),
            ms(l.baseline.samples.quantile_ms(0.99, Duration::ZERO)),
            "-",
            None,
        );
    }
    let worst = s.applied_round_trips.len().max(s.noop_round_trips.len());
    targets.add(
        "status",
        "Redis round trips per callback",
        format!(
            "{} applied, {} no-op",
            s.applied_round_trips.len(),
            s.noop_round_trips.len()
        ),
        "1",
        "1 or 2",
        Some((1..=2).contains(&worst)),
    );
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn escalation_section(out: &mut String, e: &EscalationReport, targets: &mut Targets) {
    let _ = writeln!(
        out,
        "### 3. Escalation at scale\n\n\
         The {} binary (live mode, `RUST_LOG=warn`) against the carrier simulator (`SIM_TIME_SCALE` {}, \
         in the benchmark process) and the private Redis; `ROUTEE_CALLS_PER_SECOND` {}. Callouts of 5 contacts: \
         70% busy ×2 → reject → accept (accepted by contact 2), 20% accepted by contact 0, 10% never answers ×2 → \
         4 rejects (exhausted); 2 attempts per contact, 1 s apart. Ideal: the larger of the calls at the rate limit \
         and the longest script alone on an idle gateway.\n",
        build(),
        e.time_scale,
        e.calls_per_second
    );
    let _ = writeln!(out, "| figure | value |\n|---|---|");
    let _ = writeln!(
        out,
        "| callouts in the right final state | {} / {} |",
        e.correct, e.callouts
    );
    let _ = writeln!(out, "| calls placed | {} |", e.calls);
    let _ = writeln!(
        out,
        "| wall time (first create → all settled) | {} (creating them: {}) |",
        secs(e.wall),
        secs(e.create)
    );
    let _ = writeln!(
        out,
        "| ideal | {} (rate limit {}, longest script alone {}) |",
        secs(e.ideal()),
        secs(e.ideal_rate),
        secs(e.ideal_chain)
    );
    let _ = writeln!(
        out,
        "| gateway peak RSS (VmHWM) | {} |",
        e.peak_rss_kib
            .map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
    );
    let _ = writeln!(
        out,
        "| Redis memory per callout (used_memory delta) | {:.1} KiB |",
        e.redis_bytes_per_callout / 1024.0
    );
    match &e.timer_lag {
        Some(l) => {
            let _ = writeln!(
                out,
                "| timer lag p50 / p99 (`ivr_timer_lag_seconds` bucket bounds, {} timers) | {} / {} |",
                l.count, l.p50, l.p99
            );
            if let Some(share) = l.within_250ms {
                let _ = writeln!(
                    out,
                    "| timers claimed within 250 ms of due | {:.1}% |",
                    share * 100.0
                );
            }
        }
        None => {
            let _ = writeln!(out, "| timer lag | no timers fired |");
        }
    }
    for w in &e.wrong {
        let _ = writeln!(out, "\n- wrong: {w}");
    }
    let _ = writeln!(out);
    targets.add(
        &format!("escalation, {} callouts", e.callouts),
        "right final state",
        format!("{} / {}", e.correct, e.callouts),
        "-",
        "all",
        Some(e.correct == e.callouts),
    );
    if let Some(l) = &e.timer_lag {
        let p99_ms = l
            .p99
            .trim_start_matches("≤ ")
            .trim_end_matches(" ms")
            .parse::<f64>()
            .unwrap_or(f64::INFINITY);
        targets.add(
            &format!("escalation, {} callouts", e.callouts),
            "timer lag p99",
            &l.p99,
            "-",
            "< 250 ms",
            Some(p99_ms <= 250.0),
        );
    }
    targets.add(
        &format!("escalation, {} callouts", e.callouts),
        "wall time",
        secs(e.wall),
        format!("ideal {}", secs(e.ideal())),
        "-",
        None,
    );
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn footprint_section(out: &mut String, f: &FootprintReport, targets: &mut Targets) {
    let tries: Vec<String> = f
        .cold_starts
        .iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
        .collect();
    let _ = writeln!(out, "### 4. Cold start and footprint\n");
    let _ = writeln!(out, "| figure | value |\n|---|---|");
    let _ = writeln!(
        out,
        "| process start → `/readyz` 200 ({} binary, live mode, Redis) | median {:.0} ms (tries: {} ms) |",
        build(),
        f.median_cold_start().as_secs_f64() * 1000.0,
        tries.join(", ")
    );
    let _ = writeln!(
        out,
        "| {} binary | {} ({} stripped) |",
        build(),
        mb(f.binary_bytes),
        f.stripped_bytes.map_or("n/a".into(), mb)
    );
    let _ = writeln!(
        out,
        "| runtime image | not measured here (no Docker engine); **estimate** {}: the binary as the Dockerfile copies it + `dialplans/` + distroless `cc-debian12` ≈ {} (its published size) |\n",
        mb(f.image_estimate()),
        mb(DISTROLESS_CC_BYTES)
    );
    targets.add(
        "footprint",
        "cold start to ready",
        format!("{:.0} ms", f.median_cold_start().as_secs_f64() * 1000.0),
        "-",
        "-",
        None,
    );
}

fn audio_section(out: &mut String, a: &crate::audio::AudioReport, targets: &mut Targets) {
    use crate::audio::median;
    let ms = |d: std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let _ = writeln!(out, "### 5. Voiceflow audio to 8 kHz WAV\n");
    let _ = writeln!(out, "| figure | median | n |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| 5 s 44.1 kHz stereo WAV (`data:` URI), first time: decode, resample, cache | {} | {} |",
        ms(median(&a.wav_cold)),
        a.wav_cold.len()
    );
    let _ = writeln!(
        out,
        "| 0.5 s mp3 (`data:` URI), first time | {} | {} |",
        ms(median(&a.mp3_cold)),
        a.mp3_cold.len()
    );
    let _ = writeln!(
        out,
        "| the same sources again (cache hit) | {} | {} |\n",
        ms(median(&a.cached)),
        a.cached.len()
    );
    let cold = median(&a.wav_cold);
    targets.add(
        "audio",
        "5 s prompt converted, first time",
        ms(cold),
        "-",
        "< 500 ms (fits the 3 s window beside Voiceflow)",
        Some(cold < std::time::Duration::from_millis(500)),
    );
}
