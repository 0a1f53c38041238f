//! The suite's knobs, read from the environment once (defaults are the CI size).

use std::time::Duration;

/// How big and how long a run is.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Callouts created during the run (`FAULTS_CALLOUTS`).
    pub callouts: usize,
    /// How long faults are injected (`FAULTS_SECONDS`); callouts are created in
    /// the first 70% of it, so every one of them lives through faults.
    pub fault_window: Duration,
    /// Gateway processes (`FAULTS_REPLICAS`).
    pub replicas: usize,
    /// The bound, counted from the moment faults stop, within which every callout
    /// must be final and every attempt over (`FAULTS_BOUND_SECONDS`).
    pub bound: Duration,
    /// Seeds the plan, the fault schedule and the simulator (`FAULTS_SEED`).
    pub seed: u64,
    /// Simulated seconds per real second for callees (`FAULTS_TIME_SCALE`).
    pub time_scale: f64,
    /// `single` (one `redis-server`, restarted, frozen and taken down) or
    /// `cluster` (a Redis Cluster of 3 primaries and 3 replicas whose primaries are
    /// killed under running calls) (`FAULTS_REDIS`).
    pub redis: RedisMode,
}

/// Which Redis deployment the run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    Single,
    Cluster,
}

impl std::str::FromStr for RedisMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" => Ok(RedisMode::Single),
            "cluster" => Ok(RedisMode::Cluster),
            other => Err(format!("{other:?} is not single or cluster")),
        }
    }
}

/// The bound after the faults stop. The slowest legitimate path is a call whose
/// final status was lost while faults ran: the gateway waits for its deadline
/// (ring 10 s + max call 30 s + 60 s, in real seconds: the gateway's clock is not
/// scaled) and the 15 s reconciliation round; an attempt written off by a lost
/// lease waits 60 s + ring 10 s + 30 s. With retries of the remaining contacts
/// after that, 200 s leaves a margin without hiding a stuck callout.
const DEFAULT_BOUND_S: u64 = 200;

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={raw:?} is not a valid value")),
        _ => default,
    }
}

impl Settings {
    pub fn from_env() -> Self {
        let seed = var("FAULTS_SEED", rand::random::<u32>() as u64);
        let settings = Self {
            callouts: var("FAULTS_CALLOUTS", 40),
            fault_window: Duration::from_secs(var("FAULTS_SECONDS", 60)),
            replicas: var("FAULTS_REPLICAS", 3),
            bound: Duration::from_secs(var("FAULTS_BOUND_SECONDS", DEFAULT_BOUND_S)),
            seed,
            time_scale: var("FAULTS_TIME_SCALE", 0.1),
            redis: var("FAULTS_REDIS", RedisMode::Single),
        };
        assert!(settings.callouts > 0, "FAULTS_CALLOUTS must be at least 1");
        assert!(
            (2..=8).contains(&settings.replicas),
            "FAULTS_REPLICAS must be between 2 and 8"
        );
        assert!(
            settings.fault_window >= Duration::from_secs(20),
            "FAULTS_SECONDS must be at least 20"
        );
        settings
    }
}
