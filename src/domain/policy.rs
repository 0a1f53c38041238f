//! The escalation policy: how often and how patiently each contact is called.
//! Defaults reproduce the seed flow (`shared/seeds/004`): three attempts per
//! employee, a 10-second input timeout, the options said once more.

use serde::{Deserialize, Serialize};

use super::{FieldError, Timestamp};

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
    /// Whether an answering machine hears the voicemail message (else the call
    /// ends without a word after the machine is detected).
    #[serde(default = "yes")]
    pub voicemail_message: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
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
            voicemail_message: true,
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
    pub voicemail_message: Option<bool>,
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
            voicemail_message: self.voicemail_message.unwrap_or(defaults.voicemail_message),
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

/// How often one phone number may be called, across every callout and replica
/// (`PERSON_CALLS_PER_15_MIN`, `PERSON_CALLS_PER_HOUR`; GoAlert's defaults: too
/// many calls get a caller ID flagged as spam). 0 lifts a limit. The store keeps
/// the recent calls of each number (`person_call.lua` mirrors [`Self::next_allowed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonLimits {
    pub per_15_min: u32,
    pub per_hour: u32,
}

impl Default for PersonLimits {
    fn default() -> Self {
        Self {
            per_15_min: 3,
            per_hour: 7,
        }
    }
}

impl PersonLimits {
    pub const SHORT_WINDOW_MS: i64 = 15 * 60 * 1000;
    pub const LONG_WINDOW_MS: i64 = 60 * 60 * 1000;

    /// No limit at all.
    pub fn is_off(&self) -> bool {
        self.per_15_min == 0 && self.per_hour == 0
    }

    /// The limits with the window each one counts over.
    fn windows(&self) -> [(u32, i64); 2] {
        [
            (self.per_15_min, Self::SHORT_WINDOW_MS),
            (self.per_hour, Self::LONG_WINDOW_MS),
        ]
    }

    /// When one more call to a number called at `recent` may be placed: `None`
    /// at `now`, else the first time every window has room. A call at `t` counts
    /// in a window of `w` until `t + w`.
    pub fn next_allowed(&self, recent: &[Timestamp], now: Timestamp) -> Option<Timestamp> {
        let mut until: Option<Timestamp> = None;
        for (limit, window) in self.windows() {
            if limit == 0 {
                continue;
            }
            let mut inside: Vec<i64> = recent
                .iter()
                .map(|t| t.0)
                .filter(|&t| t > now.0 - window)
                .collect();
            if inside.len() < limit as usize {
                continue;
            }
            inside.sort_unstable();
            // The oldest calls that must leave the window so that it has room.
            let leaves = inside[inside.len() - limit as usize];
            let free = Timestamp(leaves + window);
            until = Some(until.map_or(free, |u| u.max(free)));
        }
        until
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

    const NOW: Timestamp = Timestamp(10_000_000);

    fn ago(min: i64) -> Timestamp {
        Timestamp(NOW.0 - min * 60_000)
    }

    #[test]
    fn a_number_under_both_limits_may_be_called_now() {
        let l = PersonLimits::default();
        assert_eq!(l.next_allowed(&[], NOW), None);
        assert_eq!(l.next_allowed(&[ago(1), ago(2)], NOW), None);
    }

    #[test]
    fn the_fourth_call_in_15_minutes_waits_for_the_oldest_to_leave_the_window() {
        let l = PersonLimits::default();
        let recent = [ago(10), ago(5), ago(1)];
        assert_eq!(
            l.next_allowed(&recent, NOW),
            Some(ago(10).plus_secs(15 * 60))
        );
        // A call exactly 15 minutes ago no longer counts.
        assert_eq!(l.next_allowed(&[ago(15), ago(5), ago(1)], NOW), None);
    }

    #[test]
    fn the_eighth_call_in_an_hour_waits_for_the_hour_window() {
        let l = PersonLimits::default();
        let recent = [
            ago(59),
            ago(50),
            ago(45),
            ago(40),
            ago(35),
            ago(30),
            ago(20),
        ];
        assert_eq!(l.next_allowed(&recent, NOW), Some(ago(59).plus_secs(3600)));
    }

    #[test]
    fn both_windows_full_wait_for_the_later_of_the_two() {
        let l = PersonLimits::default();
        let recent = [
            ago(58),
            ago(57),
            ago(56),
            ago(55),
            ago(14),
            ago(13),
            ago(12),
        ];
        let short = ago(14).plus_secs(900);
        let long = ago(58).plus_secs(3600);
        assert_eq!(l.next_allowed(&recent, NOW), Some(short.max(long)));
    }

    #[test]
    fn a_limit_of_zero_is_no_limit() {
        let l = PersonLimits {
            per_15_min: 0,
            per_hour: 2,
        };
        assert!(!l.is_off());
        assert_eq!(l.next_allowed(&[ago(1)], NOW), None);
        assert_eq!(
            l.next_allowed(&[ago(3), ago(1)], NOW),
            Some(ago(3).plus_secs(3600))
        );
        let off = PersonLimits {
            per_15_min: 0,
            per_hour: 0,
        };
        assert!(off.is_off());
        assert_eq!(off.next_allowed(&[ago(1); 20], NOW), None);
    }

    proptest::proptest! {
        /// Callers wanting to call one number at random times, each placing its
        /// call at `next_allowed` (or at once): no window ever holds more calls
        /// than its limit.
        #[test]
        fn calls_placed_by_the_rule_never_exceed_either_window(
            per_15_min in 0..5u32,
            per_hour in 0..9u32,
            wants in proptest::collection::vec(0..7_200_000i64, 1..40),
        ) {
            let l = PersonLimits { per_15_min, per_hour };
            let mut wants = wants;
            wants.sort_unstable();
            let mut placed: Vec<Timestamp> = Vec::new();
            for w in wants {
                let now = Timestamp(w);
                let at = l.next_allowed(&placed, now).unwrap_or(now);
                proptest::prop_assert_eq!(l.next_allowed(&placed, at), None);
                placed.push(at);
            }
            placed.sort_unstable();
            for (limit, window) in l.windows() {
                if limit == 0 {
                    continue;
                }
                for (i, t) in placed.iter().enumerate() {
                    let inside = placed[i..].iter().take_while(|u| u.0 < t.0 + window).count();
                    proptest::prop_assert!(inside <= limit as usize, "{inside} calls in a window of {limit}");
                }
            }
        }
    }
}
