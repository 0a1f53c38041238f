//! Latency samples and their percentiles, and the process's CPU time.
//!
//! Samples are kept whole (microseconds in a `Vec`) rather than in a bucketed
//! histogram: a run records at most a few hundred thousand of them, and exact
//! p99.9 values are what the targets are about.

use std::time::Duration;

/// Latencies of one measured run, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u64>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.micros
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn extend(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// The `q` quantile (0..=1) in milliseconds, after subtracting `minus`
    /// (e.g. the fake upstream's fixed latency), never below zero.
    pub fn quantile_ms(&mut self, q: f64, minus: Duration) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        self.micros.sort_unstable();
        let rank = ((self.micros.len() as f64 - 1.0) * q).round() as usize;
        let v = self.micros[rank.min(self.micros.len() - 1)];
        let minus = u64::try_from(minus.as_micros()).unwrap_or(0);
        v.saturating_sub(minus) as f64 / 1000.0
    }
}

/// User + system CPU time this process has used so far.
pub fn process_cpu() -> Duration {
    // /proc/self/stat fields 14 and 15 (utime, stime), in clock ticks; the
    // command name (field 2) may contain spaces, so count from its closing ')'.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After ')' the fields start at field 3 (state): utime is field 14 → index 11.
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 1000 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    // USER_HZ is 100 on every Linux architecture the gateway targets.
    100
}

/// A `Status:` field of `/proc/<pid>/status` in KiB (e.g. `VmHWM`, `VmRSS`).
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
