//! # ivr-gateway benchmarks
//!
//! ```sh
//! cargo bench --bench bench                      # everything (the same as `-- all`)
//! cargo bench --bench bench -- turn status       # some of it
//! cargo bench --bench bench -- all --callouts 1000 --seconds 3   # a quick run
//! cargo bench --bench bench -- --smoke           # every case at smoke size, in seconds
//! ```
//!
//! `cargo test --all-targets` (and `cargo nextest run --all-targets`) runs this
//! target as a test binary instead: one test per case at smoke size, see [`smoke`].
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
//! - [`footprint`]: cold start to `/readyz`, binary and image size;
//! - [`audio`]: converting a Voiceflow audio prompt to 8 kHz WAV, cold and cached.
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

mod args;
mod audio;
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
mod smoke;
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

pub use args::Args;

/// What every benchmark shares.
pub struct Ctx {
    pub redis_url: String,
    pub redis_port: u16,
    pub redis: ::redis::aio::MultiplexedConnection,
    pub voiceflow_latency: Duration,
}

fn main() -> anyhow::Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`, a smoke test's own run `--smoke`; anything
    // else is `cargo test` or nextest running this target as a test binary.
    if !raw.iter().any(|a| a == "--bench" || a == "--smoke") {
        smoke::harness();
    }
    let args = args::parse(raw)?;
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
                warmup: Duration::from_secs_f64(args.warmup),
                measure: Duration::from_secs_f64(args.seconds),
            };
            report.turn = Some(turn::run(&ctx, &gw, &vf, &baseline.url, &settings).await?);
        }
        if wants("status") {
            let settings = status::Settings {
                levels: args.senders.clone(),
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
        report.footprint = Some(footprint::run(&ctx, args.tries).await?);
    }
    if wants("audio") {
        report.audio = Some(audio::run(args.rounds).await?);
    }
    for name in &args.redis {
        report
            .deployments
            .push(on_cluster(&args, &ctx, name).await?);
    }
    report.print();
    if args.smoke {
        let wrong = report.wrong_answers();
        anyhow::ensure!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    }
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

/// The gateway binary Cargo built with this benchmark: the release build under
/// `cargo bench`, the debug build under `cargo test` (the smoke run).
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
