//! Counts the Redis round trips one request costs, exactly: `MONITOR` (through
//! `redis-cli`) while the request runs, keeping the client commands that name
//! the callout (commands run inside a Lua script are shown as `[... lua]` and are
//! not round trips).

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The client commands naming `needle` while `action` ran, as `COMMAND` names.
pub async fn round_trips<Fut: Future<Output = anyhow::Result<()>>>(
    port: u16,
    needle: &str,
    action: Fut,
) -> anyhow::Result<Vec<String>> {
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "monitor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("redis-cli is needed to count round trips")?;
    let stdout = child.stdout.take().context("redis-cli stdout")?;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        })
    };
    // MONITOR answers OK once it is on.
    let started = Instant::now();
    while !lines
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|l| l == "OK")
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(5),
            "MONITOR did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let result = action.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    result?;
    let lines = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(lines
        .iter()
        .filter(|l| l.contains(needle) && !l.contains(" lua]"))
        .filter_map(|l| {
            let cmd = l.split("] ").nth(1)?.split_whitespace().next()?;
            Some(cmd.trim_matches('"').to_ascii_uppercase())
        })
        .collect())
}
