//! The keys a callee pressed, typed once.
//!
//! Routee POSTs `collectedTones` to a COLLECT's eventUrl when a key interrupts a
//! barge-in verb, on `#` with `submitOnHash`, and once when the call ends. Its
//! documentation says a POST carries "all the collected tones of the call":
//! most likely **cumulative** (`1`, then `12`; with `#`, `1#2#`), and the gateway
//! reads them that way, while tolerating tones that start afresh with each POST
//! (reference §4.2; which one Routee does is for a live call to tell).
//!
//! - [`Tones`] is `collectedTones` parsed once at the edge: DTMF keys only, the
//!   `#`s taken out and kept as group boundaries.
//! - [`Tones::after`] is the new input: what follows the part of the call's
//!   keys already consumed (stored with the call's attempt), or, when the tones
//!   do not continue that part, all of them (a per-submit POST).
//! - [`Keys::choice`]: on a menu whose keys are single keys, the **last** key
//!   pressed decides, so a callee who pressed 1 in a pause (nothing happened)
//!   and 1 again is read as `1`, never as "11, not a valid choice".

use serde::{Deserialize, Serialize};

/// At most this many keys are read from one POST. Tones are cumulative over
/// the whole call, so this bounds the keys of a call, not of one input: a long
/// assistant conversation must never reach it (a cap of 64 broke every input
/// after the 64th key, found by the turn benchmark), while a hostile payload
/// stays small.
pub const MAX_TONES: usize = 1024;

/// How Routee's `collectedTones` read (reference §4.2 GAP). The gateway reads
/// tones as cumulative and tolerates per-submit ones; the simulator plays either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToneReading {
    /// Every POST carries every tone gathered on the call so far, `#` included
    /// as pressed (`1`, then `12`; `1#2#`). The documented wording; the default.
    #[default]
    Cumulative,
    /// Every POST carries the tones since the previous POST, without the `#`
    /// that submitted them.
    PerSubmit,
}

impl std::str::FromStr for ToneReading {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "cumulative" => Ok(ToneReading::Cumulative),
            "per_submit" => Ok(ToneReading::PerSubmit),
            other => Err(format!(
                "{other:?} is not a tone reading (cumulative or per_submit)"
            )),
        }
    }
}

/// A key a phone keypad sends: `0-9`, `*`, `#`, `A-D`.
pub fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

/// `collectedTones` as posted, parsed once: the keys without `#`, and where
/// each `#` split them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tones {
    /// Every key but `#`, in order (`"1#2#"` → `"12"`).
    keys: String,
    /// Where each group of `keys` ends (a `#`, or the end of the tones).
    group_ends: Vec<usize>,
}

impl Tones {
    /// Keeps DTMF keys only (anything else is noise in a payload we do not
    /// control), at most [`MAX_TONES`] of them.
    pub fn parse(raw: &str) -> Tones {
        let mut keys = String::new();
        let mut group_ends = Vec::new();
        for c in raw.chars().filter(|c| is_dtmf(*c)).take(MAX_TONES) {
            if c == '#' {
                if group_ends.last() != Some(&keys.len()) && !keys.is_empty() {
                    group_ends.push(keys.len());
                }
            } else {
                keys.push(c);
            }
        }
        if group_ends.last() != Some(&keys.len()) && !keys.is_empty() {
            group_ends.push(keys.len());
        }
        Tones { keys, group_ends }
    }

    /// Every key pressed, without `#`.
    pub fn keys(&self) -> &str {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The groups the `#`s made (`"1#2#"` → `["1", "2"]`; `"12"` → `["12"]`).
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.group_ends.iter().map(move |&end| {
            let group = &self.keys[start..end];
            start = end;
            group
        })
    }

    /// The new input, given the keys of this call already `consumed`: what
    /// follows them when the tones continue them (cumulative tones), else all
    /// the tones (a POST that starts afresh). Tones that only repeat what was
    /// consumed are nothing new (the end-of-call report of cumulative tones).
    pub fn after(&self, consumed: &str) -> Keys {
        match self.keys.strip_prefix(consumed) {
            Some(rest) if !consumed.is_empty() => Keys(rest.to_owned()),
            _ => Keys(self.keys.clone()),
        }
    }
}

/// New keys of one input, without `#`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keys(String);

impl Keys {
    /// Keys typed as text (a dialog tool's `{"digits": "1#"}`): the same parse
    /// as tones, all of it new.
    pub fn parse(raw: &str) -> Keys {
        Keys(Tones::parse(raw).keys)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What decides on a menu: when every key the menu offers is a single key,
    /// the last key pressed (`"11"` → `"1"`, `"91"` → `"1"`); otherwise all
    /// the keys (a PIN, a multi-key menu entry).
    pub fn choice<'a, I>(&self, menu_keys: I) -> &str
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut menu_keys = menu_keys.into_iter().peekable();
        let single = menu_keys.peek().is_some() && menu_keys.all(|k| k.chars().count() == 1);
        match self.0.char_indices().last() {
            Some((i, _)) if single => &self.0[i..],
            _ => &self.0,
        }
    }
}

impl std::fmt::Display for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(raw: &str) -> Vec<String> {
        Tones::parse(raw).groups().map(str::to_owned).collect()
    }

    #[test]
    fn tones_parse_into_keys_and_groups() {
        for (raw, keys, want) in [
            ("1", "1", vec!["1"]),
            ("11", "11", vec!["11"]),
            ("1#", "1", vec!["1"]),
            ("1#2#", "12", vec!["1", "2"]),
            ("12#3", "123", vec!["12", "3"]),
            ("#", "", vec![]),
            ("", "", vec![]),
            ("1##2", "12", vec!["1", "2"]),
            (" 1,x*\n", "1*", vec!["1*"]),
        ] {
            let t = Tones::parse(raw);
            assert_eq!(t.keys(), keys, "{raw:?}");
            assert_eq!(groups(raw), want, "{raw:?}");
            assert_eq!(t.is_empty(), keys.is_empty(), "{raw:?}");
        }
    }

    #[test]
    fn tones_are_capped() {
        // A long call's cumulative tones still give the one new key.
        let consumed = "1".repeat(100);
        let tones = Tones::parse(&"1".repeat(101));
        assert_eq!(tones.after(&consumed).as_str(), "1");
        let long = "1".repeat(MAX_TONES * 2);
        assert_eq!(Tones::parse(&long).keys().len(), MAX_TONES);
    }

    #[test]
    fn the_new_input_follows_what_was_consumed() {
        let after = |raw: &str, consumed: &str| Tones::parse(raw).after(consumed).0;
        // Nothing consumed yet: everything is new.
        assert_eq!(after("1", ""), "1");
        assert_eq!(after("11", ""), "11");
        assert_eq!(after("1#", ""), "1");
        assert_eq!(after("", ""), "");
        // Cumulative: only what follows.
        assert_eq!(after("12", "1"), "2");
        assert_eq!(after("1#2#", "1"), "2");
        assert_eq!(after("91", "9"), "1");
        // The end-of-call report repeats the call's keys: nothing new.
        assert_eq!(after("9", "9"), "");
        assert_eq!(after("1#2#", "12"), "");
        assert_eq!(after("", "9"), "");
        // Per submit: the tones do not continue the consumed part, all are new.
        assert_eq!(after("1", "9"), "1");
        assert_eq!(after("2#", "1"), "2");
    }

    #[test]
    fn on_a_menu_of_single_keys_the_last_key_decides() {
        let menu = ["1", "2"];
        let choice = |keys: &str| Keys::parse(keys).choice(menu).to_owned();
        assert_eq!(choice("1"), "1");
        assert_eq!(choice("11"), "1");
        assert_eq!(choice("91"), "1");
        assert_eq!(choice("1#"), "1");
        assert_eq!(choice("12"), "2");
        assert_eq!(choice(""), "");
        // A menu with a longer entry, or no menu: all the keys count.
        assert_eq!(Keys::parse("12").choice(["1", "12"]), "12");
        assert_eq!(Keys::parse("1234").choice([]), "1234");
    }

    #[test]
    fn tone_readings_parse_by_name() {
        assert_eq!("cumulative".parse(), Ok(ToneReading::Cumulative));
        assert_eq!("per-submit".parse(), Ok(ToneReading::PerSubmit));
        assert!("sometimes".parse::<ToneReading>().is_err());
    }
}
