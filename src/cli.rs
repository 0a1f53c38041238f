//! The command line (clap). `main` parses it and dispatches; the work is in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ivr-gateway",
    version,
    about = "Calls a list of people in order until one of them accepts, over Routee, with Voiceflow conversations.",
    long_about = "Calls a list of people in order until one of them accepts.\n\n\
        The gateway bridges Voiceflow (conversation design) to Routee (phone calls) and runs a \
        retry-and-escalation state machine. Without Routee credentials it runs in the sandbox: a \
        built-in carrier simulator and an in-memory store, so everything works with nothing installed.\n\n\
        Configuration comes from environment variables (see the README)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: the HTTP API, Routee webhooks, the escalation timers.
    ///
    /// Live when ROUTEE_APP_ID/ROUTEE_APP_SECRET are set, otherwise the sandbox
    /// (simulated carrier; in-memory store unless REDIS_URL is set).
    Serve,
    /// Run a sample callout in the sandbox and print its timeline as it happens.
    ///
    /// The first person never answers (called 3 times), the second rejects, the
    /// third accepts. Exits 0 when the callout ends as expected.
    Demo {
        /// Drive the calls with a (simulated) Voiceflow assistant instead of the
        /// ticket-escalation dialplan template.
        #[arg(long)]
        voiceflow: bool,
        /// Speed of simulated time: 0.05 runs 20 times faster than real calls.
        #[arg(long, default_value_t = 0.05)]
        time_scale: f64,
    },
    /// Work with dialplan templates.
    Dialplan {
        #[command(subcommand)]
        command: DialplanCommand,
    },
    /// Check the configuration from the environment and print it (secrets hidden).
    Config,
    /// Exit 0 when the local gateway answers /healthz (for container health checks).
    Healthcheck {
        /// Base URL to check; defaults to http://LISTEN_ADDR.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DialplanCommand {
    /// Validate template files; report each problem with its line.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}
