//! Carrier misbehaviour on demand, for the gateway's reliability tests.
//!
//! [`Faults`] is plain data (settable at start, through `SimHandle::set_faults`
//! and `PUT /sim/faults`). `FaultState` is what the simulator consumes: the
//! queues of failures still to inject and the random source. With a `seed`, every
//! call draws from its own generator seeded from the master one at creation, so a
//! run is reproducible as long as calls are created in the same order, however
//! their tasks interleave.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What to break. The default breaks nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability (0..=1) that a status callback or eventUrl POST is delivered twice.
    pub duplicate_callbacks: f64,
    /// Random extra delay before each status callback, `(min, max)` milliseconds.
    pub callback_delay_ms: (u64, u64),
    /// Intermediate status callbacks may be delivered after later ones (even after
    /// the final status); each one is held back with probability 1/2.
    pub reorder_callbacks: bool,
    /// The next `POST /voice/conversation` requests answer these statuses (in order)
    /// with Routee error bodies; a 429 carries `Retry-After: 1`.
    pub fail_create: Vec<u16>,
    /// The next N `POST /voice/conversation` requests create their call (it
    /// rings, its callbacks are sent) and still answer 500: the ambiguous
    /// failure a gateway must adopt, never place twice.
    pub create_then_fail: u32,
    /// A carrier outage: every `POST /voice/conversation` answers 500 (and
    /// creates nothing) for this many wall-clock milliseconds after the faults
    /// are set, then the carrier recovers.
    pub create_outage_ms: u64,
    /// The next N token requests answer 500.
    pub fail_token: u32,
    /// Probability (0..=1) that a call's final status callback is never sent.
    pub drop_final_status: f64,
    /// Makes the random choices reproducible.
    pub seed: Option<u64>,
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Refuses settings that cannot mean anything.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("duplicate_callbacks", self.duplicate_callbacks),
            ("drop_final_status", self.drop_final_status),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability between 0 and 1"));
            }
        }
        if self.callback_delay_ms.0 > self.callback_delay_ms.1 {
            return Err("callback_delay_ms must be (min, max) with min <= max".into());
        }
        if let Some(bad) = self.fail_create.iter().find(|s| !(400..=599).contains(*s)) {
            return Err(format!(
                "fail_create status {bad} is not an HTTP error status (400-599)"
            ));
        }
        Ok(())
    }
}

/// One conversation creation refused by a `fail_create` fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedCreation {
    /// When it was refused (RFC 3339).
    pub at: String,
    /// The number the refused call was for, when the body named one.
    pub to: Option<String>,
    pub status: u16,
}

/// The failures the simulator actually served (not merely queued), so a test can
/// say how many faults it injected and match each one with what the gateway did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct InjectedFaults {
    /// Every creation answered with a `fail_create` status, in order.
    pub refused_creations: Vec<RefusedCreation>,
    /// Token requests answered 500 by `fail_token`.
    pub token_failures: u32,
}

impl InjectedFaults {
    /// Refused creations by HTTP status.
    pub fn refusals_by_status(&self) -> BTreeMap<u16, u32> {
        let mut by = BTreeMap::new();
        for r in &self.refused_creations {
            *by.entry(r.status).or_insert(0) += 1;
        }
        by
    }
}

/// Probability in 0..=1 whatever was configured (set_faults does not validate).
pub(crate) fn probability(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// The faults in force plus what is left to inject.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub faults: Faults,
    fail_create: VecDeque<u16>,
    create_then_fail: u32,
    /// The end of a `create_outage_ms` outage.
    outage_until: Option<std::time::Instant>,
    fail_token: u32,
    rng: StdRng,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        let rng = match faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            fail_create: faults.fail_create.iter().copied().collect(),
            create_then_fail: faults.create_then_fail,
            outage_until: (faults.create_outage_ms > 0).then(|| {
                std::time::Instant::now()
                    + std::time::Duration::from_millis(faults.create_outage_ms)
            }),
            fail_token: faults.fail_token,
            faults,
            rng,
        }
    }

    /// The status the next conversation creation must fail with, if any.
    pub fn take_create_failure(&mut self) -> Option<u16> {
        if self
            .outage_until
            .is_some_and(|until| std::time::Instant::now() < until)
        {
            return Some(500);
        }
        self.fail_create.pop_front()
    }

    /// Whether the next creation must create its call and still answer 500.
    pub fn take_create_then_fail(&mut self) -> bool {
        if self.create_then_fail == 0 {
            return false;
        }
        self.create_then_fail -= 1;
        true
    }

    /// Whether the next token request must fail.
    pub fn take_token_failure(&mut self) -> bool {
        if self.fail_token == 0 {
            return false;
        }
        self.fail_token -= 1;
        true
    }

    /// Queues more creation failures after those still pending, keeping the
    /// random source (so a seeded run stays reproducible).
    pub fn queue_create_failures(&mut self, statuses: &[u16]) {
        self.fail_create.extend(statuses.iter().copied());
    }

    /// Queues `n` more token failures.
    pub fn queue_token_failures(&mut self, n: u32) {
        self.fail_token = self.fail_token.saturating_add(n);
    }

    /// A generator for one call, drawn from the master one.
    pub fn call_rng(&mut self) -> StdRng {
        StdRng::seed_from_u64(self.rng.random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_queues_are_consumed_in_order() {
        let mut state = FaultState::new(Faults {
            fail_create: vec![500, 429],
            fail_token: 1,
            ..Faults::none()
        });
        assert_eq!(state.take_create_failure(), Some(500));
        assert_eq!(state.take_create_failure(), Some(429));
        assert_eq!(state.take_create_failure(), None);
        assert!(state.take_token_failure());
        assert!(!state.take_token_failure());
        state.queue_create_failures(&[400]);
        state.queue_token_failures(2);
        assert_eq!(state.take_create_failure(), Some(400));
        assert!(state.take_token_failure() && state.take_token_failure());
        assert!(!state.take_token_failure());
    }

    #[test]
    fn a_seed_makes_call_generators_reproducible() {
        let seeded = || {
            FaultState::new(Faults {
                seed: Some(7),
                ..Faults::none()
            })
        };
        let (mut a, mut b) = (seeded(), seeded());
        assert_eq!(a.call_rng().random::<u64>(), b.call_rng().random::<u64>());
    }

    #[test]
    fn nonsense_faults_are_refused() {
        let bad = [
            Faults {
                duplicate_callbacks: 1.5,
                ..Faults::none()
            },
            Faults {
                callback_delay_ms: (10, 5),
                ..Faults::none()
            },
            Faults {
                fail_create: vec![200],
                ..Faults::none()
            },
        ];
        for f in bad {
            assert!(f.validate().is_err(), "{f:?}");
        }
        assert!(Faults::none().validate().is_ok());
    }

    #[test]
    fn faults_parse_from_json_with_defaults() {
        let f: Faults =
            serde_json::from_str(r#"{"fail_create": [500, 429], "callback_delay_ms": [5, 20]}"#)
                .unwrap();
        assert_eq!(f.fail_create, vec![500, 429]);
        assert_eq!(f.callback_delay_ms, (5, 20));
        assert!(!f.reorder_callbacks);
        assert!(serde_json::from_str::<Faults>(r#"{"typo": 1}"#).is_err());
    }
}
