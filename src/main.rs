//! Thin entry point: parse the command line, read the configuration, start logging,
//! and hand over to the library.

#![allow(clippy::print_stderr)] // the one place errors reach the terminal before logging exists

use std::process::ExitCode;

/// mimalloc: the request paths allocate many short-lived strings and JSON values;
/// under load glibc's malloc/free took about a quarter of the CPU (see the
/// benchmark section of the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use ivr_gateway::cli::{Cli, Command, DialplanCommand};
use ivr_gateway::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dialplan {
            command: DialplanCommand::Check { files },
        } => Ok(ivr_gateway::commands::check_dialplans(&files)),
        Command::Healthcheck { url } => Ok(ivr_gateway::commands::healthcheck(url).await),
        Command::Config => Ok(ivr_gateway::commands::print_config()),
        Command::Demo {
            voiceflow,
            time_scale,
        } => ivr_gateway::demo::run(voiceflow, time_scale).await,
        Command::Serve => {
            let config = match Config::from_env() {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(2));
                }
            };
            ivr_gateway::telemetry::init_logging(config.log_format, &config.log_filter);
            ivr_gateway::commands::serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
