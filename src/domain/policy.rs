//! The escalation policy: how often and how patiently each contact is called.
//! Defaults reproduce the seed flow (`shared/seeds/004`): three attempts per
//! employee, a 10-second input timeout, the options said once more.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// A complete, validated policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Calls per contact before moving to the next one (rejection moves on at once).
    pub attempts_per_contact: u32,
    /// Seconds between a contact's unsuccessful attempt and the next one.
    pub retry_delay_s: u32,
    /// Seconds of silence after the options before they are said again.
    pub input_timeout_s: u32,
    /// How many times the options are repeated after the first time.
    pub reprompts: u32,
    /// Seconds to let the phone ring (Routee `hangupDelay`, 1..=60).
    pub ring_timeout_s: u32,
    /// Longest call allowed, in seconds (Routee `maxDuration`).
    pub max_call_s: u32,
    /// People who must accept before the callout is `accepted`.
    #[serde(default = "one")]
    pub needed: u32,
    /// Calls at once (each works one contact at a time, in list order).
    #[serde(default = "one")]
    pub parallel: u32,
    /// Passes through the list: when every contact used their attempts and fewer
    /// than `needed` accepted, start again from the top after `round_delay_s`.
    #[serde(default = "one")]
    pub rounds: u32,
    /// Seconds between the end of a round and the first call of the next.
    #[serde(default)]
    pub round_delay_s: u32,
}

fn one() -> u32 {
    1
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            attempts_per_contact: 3,
            retry_delay_s: 60,
            input_timeout_s: 10,
            reprompts: 1,
            ring_timeout_s: 30,
            max_call_s: 300,
            needed: 1,
            parallel: 1,
            rounds: 1,
            round_delay_s: 300,
        }
    }
}

/// A policy as a client sends it: every field optional, defaults fill the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub attempts_per_contact: Option<u32>,
    pub retry_delay_s: Option<u32>,
    pub input_timeout_s: Option<u32>,
    pub reprompts: Option<u32>,
    pub ring_timeout_s: Option<u32>,
    pub max_call_s: Option<u32>,
    pub needed: Option<u32>,
    pub parallel: Option<u32>,
    pub rounds: Option<u32>,
    pub round_delay_s: Option<u32>,
}

/// Inclusive bounds of each field, also quoted in error messages and the README.
pub const BOUNDS: [(&str, u32, u32); 10] = [
    ("attempts_per_contact", 1, 10),
    ("retry_delay_s", 0, 86_400),
    ("input_timeout_s", 1, 60),
    ("reprompts", 0, 5),
    ("ring_timeout_s", 5, 60),
    ("max_call_s", 30, 3_600),
    ("needed", 1, 100),
    ("parallel", 1, 10),
    ("rounds", 1, 20),
    ("round_delay_s", 0, 86_400),
];

impl PolicyInput {
    /// Fills missing fields from `defaults` and checks every bound, naming each
    /// field that is out of range (as `policy.<field>`).
    pub fn resolve(self, defaults: Policy) -> Result<Policy, Vec<FieldError>> {
        let p = Policy {
            attempts_per_contact: self
                .attempts_per_contact
                .unwrap_or(defaults.attempts_per_contact),
            retry_delay_s: self.retry_delay_s.unwrap_or(defaults.retry_delay_s),
            input_timeout_s: self.input_timeout_s.unwrap_or(defaults.input_timeout_s),
            reprompts: self.reprompts.unwrap_or(defaults.reprompts),
            ring_timeout_s: self.ring_timeout_s.unwrap_or(defaults.ring_timeout_s),
            max_call_s: self.max_call_s.unwrap_or(defaults.max_call_s),
            needed: self.needed.unwrap_or(defaults.needed),
            parallel: self.parallel.unwrap_or(defaults.parallel),
            rounds: self.rounds.unwrap_or(defaults.rounds),
            round_delay_s: self.round_delay_s.unwrap_or(defaults.round_delay_s),
        };
        let errors = p.violations();
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }
}

impl Policy {
    fn values(&self) -> [u32; 10] {
        [
            self.attempts_per_contact,
            self.retry_delay_s,
            self.input_timeout_s,
            self.reprompts,
            self.ring_timeout_s,
            self.max_call_s,
            self.needed,
            self.parallel,
            self.rounds,
            self.round_delay_s,
        ]
    }

    /// Every field outside its bounds.
    pub fn violations(&self) -> Vec<FieldError> {
        BOUNDS
            .iter()
            .zip(self.values())
            .filter(|((_, lo, hi), v)| v < lo || v > hi)
            .map(|((name, lo, hi), v)| {
                FieldError::new(
                    format!("policy.{name}"),
                    format!("{v} is outside {lo}..={hi}"),
                )
            })
            .collect()
    }

    /// How long a call may take from placement to its final status before the
    /// gateway stops waiting for Routee's callback and asks the tracking API.
    pub fn call_deadline_s(&self) -> u64 {
        u64::from(self.ring_timeout_s) + u64::from(self.max_call_s) + 60
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_flow() {
        let p = Policy::default();
        assert_eq!(
            (p.attempts_per_contact, p.input_timeout_s, p.reprompts),
            (3, 10, 1)
        );
        assert!(p.violations().is_empty());
    }

    #[test]
    fn partial_input_is_filled_from_defaults() {
        let p = PolicyInput {
            retry_delay_s: Some(5),
            ..Default::default()
        }
        .resolve(Policy::default())
        .unwrap();
        assert_eq!(p.retry_delay_s, 5);
        assert_eq!(p.attempts_per_contact, 3);
    }

    #[test]
    fn every_out_of_range_field_is_named() {
        let errs = PolicyInput {
            attempts_per_contact: Some(0),
            ring_timeout_s: Some(61),
            ..Default::default()
        }
        .resolve(Policy::default())
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["policy.attempts_per_contact", "policy.ring_timeout_s"]
        );
    }

    #[test]
    fn the_escalation_fields_default_to_one_person_one_call_one_round() {
        let p = PolicyInput::default().resolve(Policy::default()).unwrap();
        assert_eq!((p.needed, p.parallel, p.rounds), (1, 1, 1));
        let errs = PolicyInput {
            needed: Some(0),
            parallel: Some(11),
            rounds: Some(21),
            round_delay_s: Some(86_401),
            ..Default::default()
        }
        .resolve(Policy::default())
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "policy.needed",
                "policy.parallel",
                "policy.rounds",
                "policy.round_delay_s"
            ]
        );
    }

    #[test]
    fn a_policy_stored_by_the_previous_release_reads_as_one_person_one_call_one_round() {
        let old = r#"{"attempts_per_contact":3,"retry_delay_s":60,"input_timeout_s":10,
            "reprompts":1,"ring_timeout_s":30,"max_call_s":300}"#;
        let p: Policy = serde_json::from_str(old).unwrap();
        assert_eq!(
            (p.needed, p.parallel, p.rounds, p.round_delay_s),
            (1, 1, 1, 0)
        );
    }

    #[test]
    fn unknown_policy_fields_are_refused() {
        assert!(serde_json::from_str::<PolicyInput>(r#"{"attempts": 3}"#).is_err());
    }
}
