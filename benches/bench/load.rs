//! The load generator: closed-loop workers on loopback, each owning its own
//! state (a call and its next turn), timed per request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::redis::{self as r};
use crate::stats::{Samples, process_cpu};

/// What one measured run produced.
#[derive(Debug, Default, Clone)]
pub struct Run {
    pub samples: Samples,
    /// Requests whose answer was wrong (not the next turn, not a 2xx).
    pub errors: u64,
    pub elapsed: Duration,
    /// CPU of this whole process (gateway or baseline, fakes, load generator).
    pub cpu: Duration,
    /// CPU of redis-server.
    pub redis_cpu: Duration,
    /// Redis commands executed (all clients).
    pub redis_commands: u64,
}

impl Run {
    pub fn requests(&self) -> u64 {
        self.samples.len() as u64
    }

    pub fn per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Adds another round of the same run.
    pub fn absorb(&mut self, other: Run) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
        self.redis_cpu += other.redis_cpu;
        self.redis_commands += other.redis_commands;
    }

    /// Process CPU per request, in microseconds.
    pub fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests().max(1) as f64
    }

    pub fn redis_commands_per_request(&self) -> f64 {
        self.redis_commands as f64 / self.requests().max(1) as f64
    }
}

/// Snapshot of the counters a run reports as deltas.
struct Counters {
    at: Instant,
    cpu: Duration,
    redis_cpu: Duration,
    redis_commands: u64,
}

async fn counters(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Counters> {
    let calls = r::command_calls(redis).await?;
    Ok(Counters {
        at: Instant::now(),
        cpu: process_cpu(),
        redis_cpu: r::cpu(redis).await?,
        redis_commands: calls
            .iter()
            .filter(|(k, _)| k.as_str() != "info")
            .map(|(_, v)| v)
            .sum(),
    })
}

/// Runs one worker per state until `warmup + measure` has passed; requests that
/// start inside the measured window are timed. `step` makes one request and
/// returns the state for the next one and whether the answer was right.
pub async fn closed_loop<S, F, Fut>(
    redis: &mut redis::aio::MultiplexedConnection,
    states: Vec<S>,
    warmup: Duration,
    measure: Duration,
    stagger: Duration,
    step: F,
) -> anyhow::Result<(Vec<S>, Run)>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, bool)> + Send,
{
    let step = Arc::new(step);
    let start = Instant::now();
    // Measuring starts once every worker is running (and has run a while).
    let window_start = start + warmup.max(stagger * 2);
    let window_end = window_start + measure;
    let n = states.len().max(1) as u32;
    let mut workers = Vec::with_capacity(states.len());
    for (i, state) in states.into_iter().enumerate() {
        let step = Arc::clone(&step);
        // Worker i starts i/n of `stagger` late: callers press keys at their own
        // moments, not all in the same millisecond every Voiceflow round.
        let offset = stagger * i as u32 / n;
        workers.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut state = state;
            let mut samples = Samples::default();
            let mut errors = 0;
            loop {
                let t0 = Instant::now();
                if t0 >= window_end {
                    break;
                }
                let (next, ok) = step(state).await;
                state = next;
                if t0 >= window_start {
                    samples.push(t0.elapsed());
                    errors += u64::from(!ok);
                }
            }
            (state, samples, errors)
        }));
    }
    tokio::time::sleep_until(window_start.into()).await;
    let before = counters(redis).await?;
    tokio::time::sleep_until(window_end.into()).await;
    let after = counters(redis).await?;
    let mut run = Run {
        elapsed: after.at - before.at,
        cpu: after.cpu.saturating_sub(before.cpu),
        redis_cpu: after.redis_cpu.saturating_sub(before.redis_cpu),
        redis_commands: after.redis_commands.saturating_sub(before.redis_commands),
        ..Run::default()
    };
    let mut states = Vec::with_capacity(workers.len());
    for w in workers {
        let (state, samples, errors) = w.await?;
        states.push(state);
        run.samples.extend(samples);
        run.errors += errors;
    }
    Ok((states, run))
}

/// Runs a fixed list of request sequences, one worker per sequence, all
/// starting together; the run lasts until the last one finishes.
pub async fn fixed_work<S, F, Fut>(
    redis: &mut redis::aio::MultiplexedConnection,
    sequences: Vec<Vec<S>>,
    step: F,
) -> anyhow::Result<Run>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let step = Arc::new(step);
    let before = counters(redis).await?;
    let mut workers = Vec::with_capacity(sequences.len());
    for seq in sequences {
        let step = Arc::clone(&step);
        workers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut errors = 0;
            for item in seq {
                let t0 = Instant::now();
                let ok = step(item).await;
                samples.push(t0.elapsed());
                errors += u64::from(!ok);
            }
            (samples, errors)
        }));
    }
    let mut run = Run::default();
    for w in workers {
        let (samples, errors) = w.await?;
        run.samples.extend(samples);
        run.errors += errors;
    }
    let after = counters(redis).await?;
    run.elapsed = after.at - before.at;
    run.cpu = after.cpu.saturating_sub(before.cpu);
    run.redis_cpu = after.redis_cpu.saturating_sub(before.redis_cpu);
    run.redis_commands = after.redis_commands.saturating_sub(before.redis_commands);
    Ok(run)
}

/// The load generator's HTTP client: pooled, enough idle connections for every
/// worker, so no request pays for a new connection.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(10))
        .build()?)
}
