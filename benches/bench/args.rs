//! The benchmark's command line (kept dependency-free: `cargo bench` appends
//! `--bench`), with two sets of defaults: the full benchmark, and the smoke size
//! that `cargo test` runs (`--smoke`, see [`crate::smoke`]).

/// Command line.
#[derive(Debug)]
pub struct Args {
    pub which: Vec<String>,
    pub callouts: usize,
    pub voiceflow_ms: u64,
    pub seconds: f64,
    /// Seconds every closed-loop run warms up before it is measured.
    pub warmup: f64,
    pub rounds: usize,
    pub callbacks: usize,
    pub time_scale: f64,
    /// Concurrent calls of the turn benchmark.
    pub levels: Vec<usize>,
    /// Voiceflow latency of the turn benchmark's saturation run.
    pub saturation_ms: u64,
    /// Concurrent senders of the status benchmark.
    pub senders: Vec<usize>,
    /// Cold starts of the footprint benchmark.
    pub tries: usize,
    /// A smoke run: small sizes, and the process fails when any answer was
    /// wrong (speed is not judged: `cargo test` builds without optimisations).
    pub smoke: bool,
    /// Redis deployments `status` and `escalation` also run on: cluster1, cluster3.
    pub redis: Vec<String>,
}

pub const CASES: [&str; 5] = ["turn", "status", "escalation", "footprint", "audio"];

const USAGE: &str = "usage: cargo bench --bench bench -- [all|turn|status|escalation|footprint|audio]... \
[--smoke (the sizes below in brackets; fails on any wrong answer)] \
[--callouts N (10000) [20]] [--voiceflow-ms MS (500) [50]] [--saturation-ms MS (20) [5]] \
[--seconds S per round (5) [0.5]] [--warmup S per round (1) [0.2]] [--rounds N (2) [1]] \
[--callbacks N per status run (7500) [100]] [--time-scale X (0.01)] [--levels 1,50,500 (turn) [1,8]] \
[--senders 50,500 (status) [4,16]] [--tries N cold starts (5) [2]] \
[--redis single,cluster1,cluster3 (single)]";

impl Args {
    /// What `cargo bench` measures.
    fn full() -> Args {
        Args {
            which: Vec::new(),
            callouts: 10_000,
            voiceflow_ms: 500,
            seconds: 5.0,
            warmup: 1.0,
            rounds: 2,
            callbacks: 7_500,
            time_scale: 0.01,
            levels: vec![1, 50, 500],
            saturation_ms: 20,
            senders: vec![50, 500],
            tries: 5,
            smoke: false,
            redis: Vec::new(),
        }
    }

    /// Every case end to end in a few seconds of a debug build.
    fn smoke() -> Args {
        Args {
            which: Vec::new(),
            callouts: 20,
            voiceflow_ms: 50,
            seconds: 0.5,
            warmup: 0.2,
            rounds: 1,
            callbacks: 100,
            time_scale: 0.01,
            levels: vec![1, 8],
            saturation_ms: 5,
            senders: vec![4, 16],
            tries: 2,
            smoke: true,
            redis: Vec::new(),
        }
    }
}

fn list(v: &str) -> anyhow::Result<Vec<usize>> {
    Ok(v.split(',').map(str::parse).collect::<Result<_, _>>()?)
}

/// Parses the arguments after the program name.
pub fn parse(raw: Vec<String>) -> anyhow::Result<Args> {
    let mut args = if raw.iter().any(|a| a == "--smoke") {
        Args::smoke()
    } else {
        Args::full()
    };
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--bench" | "--smoke" => {}
            "--callouts" => args.callouts = value(&a)?.parse()?,
            "--voiceflow-ms" => args.voiceflow_ms = value(&a)?.parse()?,
            "--saturation-ms" => args.saturation_ms = value(&a)?.parse()?,
            "--seconds" => args.seconds = value(&a)?.parse()?,
            "--warmup" => args.warmup = value(&a)?.parse()?,
            "--rounds" => args.rounds = value(&a)?.parse()?,
            "--callbacks" => args.callbacks = value(&a)?.parse()?,
            "--time-scale" => args.time_scale = value(&a)?.parse()?,
            "--levels" => args.levels = list(&value(&a)?)?,
            "--senders" => args.senders = list(&value(&a)?)?,
            "--tries" => args.tries = value(&a)?.parse()?,
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
            w if w == "all" || CASES.contains(&w) => args.which.push(a),
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.which.is_empty() || args.which.iter().any(|w| w == "all") {
        args.which = CASES.map(str::to_owned).to_vec();
    }
    anyhow::ensure!(
        args.rounds >= 1
            && args.seconds > 0.0
            && args.warmup >= 0.0
            && args.callouts >= 10
            && args.tries >= 1
            && !args.levels.is_empty()
            && !args.senders.is_empty()
            && !args.levels.contains(&0)
            && !args.senders.contains(&0),
        "{USAGE}"
    );
    Ok(args)
}
