//! The dispatcher console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver from Rust against the real binary
//! in the sandbox: sign-in, a CSV with a bad row, the live page reaching
//! `accepted` without a reload, cancelling, an admin registering an assistant
//! against a faked Voiceflow, a dispatcher refused admin actions, the sandbox's
//! seed scenario and phones, keyboard-only use, and every page at desktop and
//! phone width with axe-core.
//!
//! One browser session serves every scenario (starting Chromium is the slow
//! part), so this binary has its own harness (libtest-mimic: the usual test
//! names, filters and summary line) and runs the scenarios one at a time.
//! Nothing starts when every scenario is filtered out.
//!
//! Screenshots go to `target/console-screenshots/` (not committed). Without
//! `chromium` and `chromedriver` the scenarios are skipped with a loud message;
//! with `REQUIRE_BROWSER` set (CI: `.ci/run`) that is a failure.
//!
//! ```text
//! cargo test --test console                 # all scenarios
//! cargo test --test console -- cancelling   # one
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::print_stdout
)]

mod browser;
mod gateway;
mod scenarios;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};

use crate::browser::Tools;
use crate::scenarios::{Env, SCENARIOS};

fn main() -> ExitCode {
    ivr_gateway::net::install_crypto_provider();
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let Some(tools) = Tools::find() else {
        return without_browser(&args);
    };
    let listed: Vec<Trial> = SCENARIOS
        .iter()
        .map(|(name, _)| Trial::test(*name, || Ok(())))
        .collect();
    if args.list || listed.iter().all(|t| args.is_filtered_out(t)) {
        return libtest_mimic::run(&args, listed).exit_code();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Started by the first scenario that runs; stopped after the last.
    let env: Arc<Mutex<Option<Arc<Env>>>> = Arc::new(Mutex::new(None));
    let trials = SCENARIOS
        .iter()
        .map(|(name, run)| {
            let (runtime, env, tools, run) = (runtime.clone(), env.clone(), tools.clone(), *run);
            Trial::test(*name, move || {
                runtime.block_on(async move {
                    let shared = {
                        let existing = env.lock().unwrap().clone();
                        match existing {
                            Some(e) => e,
                            None => {
                                let e = Arc::new(
                                    Env::start(&tools)
                                        .await
                                        .map_err(|e| Failed::from(format!("{e:#}")))?,
                                );
                                *env.lock().unwrap() = Some(e.clone());
                                e
                            }
                        }
                    };
                    run(shared)
                        .await
                        .map_err(|e| Failed::from(format!("{e:#}")))
                })
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let started = env.lock().unwrap().take();
    if let Some(env) = started {
        runtime.block_on(async move {
            if let Ok(env) = Arc::try_unwrap(env) {
                env.stop().await;
            }
        });
    }
    conclusion.exit_code()
}

/// No browser: a failure when one is required (CI), else every scenario is
/// reported as ignored after a message nobody can miss.
fn without_browser(args: &Arguments) -> ExitCode {
    let why = "the console's browser tests need `chromium` and `chromedriver` on PATH \
               (Debian: apt-get install chromium chromium-driver; bash .ci/test installs them)";
    if std::env::var_os("REQUIRE_BROWSER").is_some() {
        eprintln!("REQUIRE_BROWSER is set but {why}");
        return ExitCode::FAILURE;
    }
    eprintln!("\n{0}\nSKIPPED: {why}.\n{0}\n", "=".repeat(78));
    let trials = SCENARIOS
        .iter()
        .map(|(name, _)| Trial::test(*name, || Ok(())).with_ignored_flag(true))
        .collect();
    libtest_mimic::run(args, trials).exit_code()
}
