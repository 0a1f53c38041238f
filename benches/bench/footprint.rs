//! Benchmark 4: cold start and footprint of the release binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::gateway::{SECRET, TOKEN};

pub struct FootprintReport {
    /// Process start to the first `/readyz` 200, each try.
    pub cold_starts: Vec<Duration>,
    pub binary_bytes: u64,
    pub stripped_bytes: Option<u64>,
    pub dialplans_bytes: u64,
}

/// Published uncompressed size of `gcr.io/distroless/cc-debian12` (the runtime
/// base in `deploy/Dockerfile`), for the image estimate: not measured here.
pub const DISTROLESS_CC_BYTES: u64 = 23_500_000;

impl FootprintReport {
    pub fn median_cold_start(&self) -> Duration {
        let mut v = self.cold_starts.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    pub fn image_estimate(&self) -> u64 {
        DISTROLESS_CC_BYTES + self.binary_bytes + self.dialplans_bytes
    }
}

pub async fn run(ctx: &crate::Ctx, tries: usize) -> anyhow::Result<FootprintReport> {
    let binary = crate::gateway_binary();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let mut cold_starts = Vec::new();
    for _ in 0..tries {
        let port = crate::free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        // Live mode, as in production (Routee and Voiceflow are not contacted
        // before the first call).
        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .envs([
                ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
                ("PUBLIC_URL", base.clone()),
                ("REDIS_URL", ctx.redis_url.clone()),
                ("REDIS_PREFIX", "cold".to_owned()),
                ("ROUTEE_APP_ID", "bench".to_owned()),
                ("ROUTEE_APP_SECRET", "bench-secret".to_owned()),
                ("ALLOWED_DESTINATIONS", "*".to_owned()),
                ("ALLOW_INSECURE_PUBLIC_URL", "true".to_owned()),
                ("ROUTEE_API_URL", "http://127.0.0.1:9".to_owned()),
                (
                    "ROUTEE_AUTH_URL",
                    "http://127.0.0.1:9/oauth/token".to_owned(),
                ),
                ("ROUTEE_FROM", "+306900000000".to_owned()),
                ("GATEWAY_SECRET", SECRET.to_owned()),
                ("API_KEYS", format!("admin:{TOKEN}")),
                ("LOG_FORMAT", "json".to_owned()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let ready = loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break Some(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(20)
                || matches!(child.try_wait(), Ok(Some(_)))
            {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        cold_starts
            .push(ready.ok_or_else(|| anyhow::anyhow!("the gateway binary never became ready"))?);
    }
    let binary_bytes = std::fs::metadata(binary)?.len();
    let stripped = tempfile::NamedTempFile::new()?;
    let stripped_bytes = Command::new("strip")
        .arg("-o")
        .arg(stripped.path())
        .arg(binary)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(stripped.path()).ok())
        .map(|m| m.len());
    let dialplans_bytes = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans"))?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(FootprintReport {
        cold_starts,
        binary_bytes,
        stripped_bytes,
        dialplans_bytes,
    })
}
