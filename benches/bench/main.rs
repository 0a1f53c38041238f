//! # ivr-gateway benchmarks
//!
//! ```sh
//! cargo bench --bench bench                      # everything (the same as `-- all`)
//! cargo bench --bench bench -- turn status       # some of it
//! cargo bench --bench bench -- all --callouts 1000 --seconds 3   # a quick run
//! ```
//!
//! One process starts a private `redis-server` on a loopback port, HTTP fakes of
//! Voiceflow (fixed latency) and Routee, the gateway, the baseline handlers and
//! the load generator, and prints Markdown tables: every figure beside the
//! baseline measured in the same run and the target it is held to. Progress goes
//! to stderr, the tables to stdout.
//!
//! - [`turn`]: the eventUrl/COLLECT hot path at 1, 50 and 500 concurrent calls;
//! - [`status`]: status callback intake at 50 and 500 concurrent senders;
//! - [`escalation`]: 10,000 callouts of 5 contacts through the carrier simulator
//!   (the real release binary, time compressed);
//! - [`footprint`]: cold start to `/readyz`, binary and image size.
//!
//! `--redis single,cluster1,cluster3` runs `status` and `escalation` again on a
//! Redis Cluster of 1 and of 3 primaries (each with a replica, slots cut so the
//! 16 shards spread evenly; the gateway's default `WAIT` for one replica on the
//! writes that matter) and prints them beside the single server of the same run.
//!
//! The gateway of benchmarks 1 and 2 runs in this process (the real
//! `Application`, live mode), so that the load generator can sign webhook URLs
//! with its engine; it shares the runtime and the CPU with the load generator
//! and the fakes, exactly as the baseline does. Logging is on at `info` (JSON,
//! written to a sink) as in production.

// A benchmark reports on stdout/stderr, and its setup has no caller to hand an
// error to: printing and the few `expect`s on impossible states are its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod escalation;
mod fakes;
mod footprint;
mod gateway;
mod load;
mod monitor;
mod redis;
#[path = "../../tests/support/redis_ha.rs"]
mod redis_ha;
mod report;
mod stats;
mod status;
mod turn;

/// The same allocator as the `ivr-gateway` binary, so in-process figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

/// What every benchmark shares.
pub struct Ctx {
    pub redis_url: String,
    pub redis_port: u16,
    pub redis: ::redis::aio::MultiplexedConnection,
    pub voiceflow_latency: Duration,
}

/// Command line (kept dependency-free: `cargo bench` passes `--bench` too).
#[derive(Debug)]
pub struct Args {
    pub which: Vec<String>,
    pub callouts: usize,
    pub voiceflow_ms: u64,
    pub seconds: f64,
    pub rounds: usize,
    pub callbacks: usize,
    pub time_scale: f64,
    /// Concurrent calls of the turn benchmark.
    pub levels: Vec<usize>,
    /// Voiceflow latency of the turn benchmark's saturation run.
    pub saturation_ms: u64,
    /// Redis deployments `status` and `escalation` also run on: cluster1, cluster3.
    pub redis: Vec<String>,
}

const USAGE: &str = "usage: cargo bench --bench bench -- [all|turn|status|escalation|footprint]... \
[--callouts N (10000)] [--voiceflow-ms MS (500)] [--saturation-ms MS (20)] [--seconds S per round (5)] [--rounds N (2)] \
[--callbacks N per status run (7500)] [--time-scale X (0.01)] [--levels 1,50,500 (turn)] \
[--redis single,cluster1,cluster3 (single)]";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        which: Vec::new(),
        callouts: 10_000,
        voiceflow_ms: 500,
        seconds: 5.0,
        rounds: 2,
        callbacks: 7_500,
        time_scale: 0.01,
        levels: vec![1, 50, 500],
        saturation_ms: 20,
        redis: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--bench" => {}
            "--callouts" => args.callouts = value(&a)?.parse()?,
            "--voiceflow-ms" => args.voiceflow_ms = value(&a)?.parse()?,
            "--saturation-ms" => args.saturation_ms = value(&a)?.parse()?,
            "--seconds" => args.seconds = value(&a)?.parse()?,
            "--rounds" => args.rounds = value(&a)?.parse()?,
            "--callbacks" => args.callbacks = value(&a)?.parse()?,
            "--time-scale" => args.time_scale = value(&a)?.parse()?,
            "--levels" => {
                args.levels = value(&a)?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--redis" => {
                for d in value(&a)?.split(',') {
                    match d {
                        "single" => {}
                        "cluster1" | "cluster3" => args.redis.push(d.to_owned()),
                        other => anyhow::bail!("--redis: unknown deployment {other}\n{USAGE}"),
                    }
                }
            }
            "-h" | "--help" => anyhow::bail!("{USAGE}"),
            "all" | "turn" | "status" | "escalation" | "footprint" => args.which.push(a),
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.which.is_empty() || args.which.iter().any(|w| w == "all") {
        args.which = ["turn", "status", "escalation", "footprint"]
            .map(str::to_owned)
            .to_vec();
    }
    anyhow::ensure!(
        args.rounds >= 1 && args.seconds > 0.0 && args.callouts >= 10,
        "{USAGE}"
    );
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // Two workers, like the gateway on this machine; the load generator and the
    // fakes share them (and so does the baseline).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    init_logging();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = redis::RedisServer::start()?;
    let ctx = Ctx {
        redis_url: server.url(),
        redis_port: server.port(),
        redis: server.connect().await?,
        voiceflow_latency: Duration::from_millis(args.voiceflow_ms),
    };
    let mut report = report::Report::new(&args, &ctx).await?;
    let wants = |w: &str| args.which.iter().any(|x| x == w);

    if wants("turn") || wants("status") {
        let vf = fakes::FakeVoiceflow::start(ctx.voiceflow_latency).await?;
        let routee = fakes::FakeRoutee::start().await?;
        let baseline = fakes::Baseline::start(&vf, &ctx.redis_url).await?;
        let gw = Arc::new(gateway::Gateway::start(&ctx.redis_url, &vf, &routee).await?);
        if wants("turn") {
            let settings = turn::Settings {
                levels: args.levels.clone(),
                saturation_latency: Duration::from_millis(args.saturation_ms),
                rounds: args.rounds,
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs_f64(args.seconds),
            };
            report.turn = Some(turn::run(&ctx, &gw, &vf, &baseline.url, &settings).await?);
        }
        if wants("status") {
            let settings = status::Settings {
                levels: vec![50, 500],
                rounds: args.rounds,
                callbacks: args.callbacks,
            };
            report.status = Some(status::run(&ctx, &gw, &baseline.url, &settings).await?);
        }
        if let Ok(gw) = Arc::try_unwrap(gw) {
            gw.stop().await;
        }
    }
    if wants("escalation") {
        let settings = escalation::Settings {
            callouts: args.callouts,
            time_scale: args.time_scale,
            calls_per_second: 1000,
        };
        report.escalation = Some(escalation::run(&ctx, &settings).await?);
    }
    if wants("footprint") {
        report.footprint = Some(footprint::run(&ctx, 5).await?);
    }
    for name in &args.redis {
        report
            .deployments
            .push(on_cluster(&args, &ctx, name).await?);
    }
    report.print();
    Ok(())
}

/// `status` and `escalation` (those asked for) on a Redis Cluster; the baseline
/// handler stays on the single server (it is the same work either way).
async fn on_cluster(args: &Args, single: &Ctx, name: &str) -> anyhow::Result<report::Deployment> {
    let primaries = if name == "cluster1" { 1 } else { 3 };
    eprintln!("[{name}] starting a Redis Cluster of {primaries} primaries, a replica each");
    let cluster = tokio::task::spawn_blocking(move || {
        redis_ha::RedisCluster::start_with(primaries, 1, redis_ha::Slots::ByShard)
    })
    .await?;
    let port = cluster.primary_ports()[0];
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let ctx = Ctx {
        redis_url: cluster.url(),
        redis_port: port,
        redis: client.get_multiplexed_async_connection().await?,
        voiceflow_latency: single.voiceflow_latency,
    };
    let wants = |w: &str| args.which.iter().any(|x| x == w);
    let mut d = report::Deployment {
        name: name.to_owned(),
        primaries,
        status: None,
        escalation: None,
    };
    if wants("status") {
        let vf = fakes::FakeVoiceflow::start(ctx.voiceflow_latency).await?;
        let routee = fakes::FakeRoutee::start().await?;
        let baseline = fakes::Baseline::start(&vf, &single.redis_url).await?;
        let gw = Arc::new(gateway::Gateway::start(&ctx.redis_url, &vf, &routee).await?);
        let settings = status::Settings {
            levels: vec![50, 500],
            rounds: args.rounds,
            callbacks: args.callbacks,
        };
        d.status = Some(status::run(&ctx, &gw, &baseline.url, &settings).await?);
        if let Ok(gw) = Arc::try_unwrap(gw) {
            gw.stop().await;
        }
    }
    if wants("escalation") {
        let settings = escalation::Settings {
            callouts: args.callouts,
            time_scale: args.time_scale,
            calls_per_second: 1000,
        };
        d.escalation = Some(escalation::run(&ctx, &settings).await?);
    }
    drop(cluster);
    Ok(d)
}

/// Production logs at `info`; here the lines are formatted and thrown away, so
/// the gateway pays for logging as it would, without a terminal in the way.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .try_init();
}

/// The release build of the gateway that Cargo built for this benchmark.
pub fn gateway_binary() -> &'static str {
    env!("CARGO_BIN_EXE_ivr-gateway")
}

/// A loopback port free right now (the OS picks it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `f` over `items`, at most `limit` at a time, results in input order.
pub async fn run_bounded<I, T, F, Fut, R>(items: I, limit: usize, f: F) -> anyhow::Result<Vec<R>>
where
    I: IntoIterator<Item = T>,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = anyhow::Result<R>>,
{
    futures::stream::iter(items)
        .map(f)
        .buffered(limit)
        .try_collect()
        .await
}

/// Polls `/readyz` until it answers 200.
pub async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < within, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
