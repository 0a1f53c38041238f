//! The benchmark as a test: what `cargo test --all-targets` and
//! `cargo nextest run --all-targets` run instead of the full benchmark.
//!
//! Cargo runs a `harness = false` bench target under `cargo test` too, without
//! the `--bench` argument that `cargo bench` passes; nextest first asks it for
//! its tests (`--list --format terse`). Without `--bench` this binary therefore
//! behaves as a libtest binary (filters, `--list`, `--exact`, `--nocapture`,
//! through `libtest-mimic`) with one test per case. Each test runs this same
//! binary again with `--smoke <case>`: the real benchmark, end to end (private
//! Redis, fakes, the gateway, the load generator, the report), at the smoke sizes
//! of [`crate::args`], failing when any answer was wrong. Its output is shown
//! when it fails, or live with `--nocapture`. Speed is not judged here: the test
//! profile is unoptimised and shares the CPU with the rest of the suite.

use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Failed, Trial};

/// The tests, by case.
const TESTS: [(&str, &str); 5] = [
    (
        "turn",
        "smoke::the_turn_benchmark_runs_end_to_end_and_every_turn_is_answered_with_the_next_turn",
    ),
    (
        "status",
        "smoke::the_status_benchmark_runs_end_to_end_and_every_callback_is_accepted",
    ),
    (
        "escalation",
        "smoke::the_escalation_benchmark_runs_end_to_end_and_every_callout_ends_as_scripted",
    ),
    (
        "audio",
        "smoke::the_audio_benchmark_converts_wav_and_mp3_prompts_and_serves_them_again_from_the_cache",
    ),
    (
        "footprint",
        "smoke::the_footprint_benchmark_starts_the_gateway_binary_and_sizes_it",
    ),
];

/// Runs as a libtest binary; never returns.
pub fn harness() -> ! {
    let args = Arguments::from_args();
    let nocapture = args.nocapture;
    let trials = TESTS
        .into_iter()
        .map(|(case, name)| Trial::test(name, move || run_case(case, nocapture)))
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

fn run_case(case: &str, nocapture: bool) -> Result<(), Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
    let mut cmd = Command::new(exe);
    // The error, not where anyhow captured it: a failure's output stays readable.
    cmd.args(["--smoke", case])
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null());
    if nocapture {
        let status = cmd.status().map_err(|e| format!("cannot start: {e}"))?;
        return if status.success() {
            Ok(())
        } else {
            Err(format!("`bench --smoke {case}` ended with {status}").into())
        };
    }
    let out = cmd.output().map_err(|e| format!("cannot start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`bench --smoke {case}` ended with {}\n--- its stderr:\n{}\n--- its stdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    )
    .into())
}
