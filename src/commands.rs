//! What the subcommands do (kept out of `main` so they are testable).

#![allow(clippy::print_stdout, clippy::print_stderr)] // command output is the point here

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::app::Application;
use crate::config::{Config, Mode};
use crate::dialplan::template;

/// `ivr-gateway dialplan check <files>`: 0 when every file is a valid template
/// and agrees with its translations (`x.toml` and every `x.<language>.toml`
/// beside it: the same keys, outcomes and placeholders in every language).
pub fn check_dialplans(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        match template::load_group(f) {
            Ok(t) => {
                let vars: Vec<String> = t.required_variables().into_iter().collect();
                let languages: Vec<&str> = t.languages().into_iter().map(|l| l.code()).collect();
                println!(
                    "{}: ok (template {:?}; languages: {}; variables: {})",
                    f.display(),
                    t.name,
                    languages.join(", "),
                    if vars.is_empty() {
                        "none".to_owned()
                    } else {
                        vars.join(", ")
                    }
                );
            }
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `ivr-gateway healthcheck`: GET /healthz on the local gateway.
pub async fn healthcheck(url: Option<String>) -> ExitCode {
    let base = url.unwrap_or_else(|| {
        let addr = Config::from_env()
            .map(|c| c.listen_addr.to_string())
            .unwrap_or_else(|_| "127.0.0.1:8080".into());
        // A wildcard listen address is reached on loopback.
        format!(
            "http://{}",
            addr.replace("0.0.0.0", "127.0.0.1")
                .replace("[::]", "[::1]")
        )
    });
    let client = match crate::net::http_client(Duration::from_secs(2), Duration::from_secs(3)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client
        .get(format!("{}/healthz", base.trim_end_matches('/')))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("healthcheck: {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ivr-gateway config`: validates the environment and prints the result.
pub fn print_config() -> ExitCode {
    match Config::from_env() {
        Ok(c) => {
            println!("{c:#?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `ivr-gateway serve`.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let sandbox = config.mode == Mode::Sandbox;
    let ephemeral_secret = config.secret_is_ephemeral;
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    if sandbox {
        tracing::warn!(
            "SANDBOX MODE: calls go to the built-in carrier simulator, not to real phones{}. \
             To go live set ROUTEE_APP_ID, ROUTEE_APP_SECRET, ROUTEE_FROM, PUBLIC_URL, GATEWAY_SECRET, API_KEYS and REDIS_URL.",
            if app.config().redis_url.is_none() {
                "; state is in memory and lost on exit"
            } else {
                ""
            }
        );
        println!(
            "ivr-gateway sandbox listening on http://{addr}\n\
             console: http://{addr}/console (start the seed scenario from its Sandbox page)\n\
             try: curl -s -X POST http://{addr}/v1/callouts -H 'content-type: application/json' \\\n  \
             -d '{{\"name\":\"Ticket 4711\",\"dialplan\":\"ticket-escalation\",\"variables\":{{\"ticket\":\"Server room 2 is flooding\"}},\"contacts\":[{{\"name\":\"Alice\",\"phone\":\"+306900000001\"}}]}}'"
        );
    } else {
        tracing::info!(%addr, public_url = %app.public_url(), console = %format!("{}/console", app.public_url().as_str().trim_end_matches('/')), "ivr-gateway live");
    }
    if ephemeral_secret {
        tracing::warn!(
            "GATEWAY_SECRET is not set: using a random one; webhook URLs and stored keys will not survive a restart"
        );
    }
    let token = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        token.cancel();
    });
    app.run().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
