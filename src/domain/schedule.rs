//! Scheduled and recurring callouts: a stored callout request (the body of a
//! `POST /v1/callouts`) made into a callout at `start_at`, or at each time a
//! cron expression names in an IANA time zone ("every weekday at 07:00 in
//! Europe/Athens").
//!
//! The rules here are pure: when the first occurrence is, what comes after one
//! has fired, and what pausing and resuming do. Croner computes occurrences in
//! the zone's local time, with chrono-tz's database, so daylight-saving changes
//! are handled as cron always has: a time skipped by a spring-forward change
//! fires just after the gap, a time repeated by a fall-back change fires once.
//!
//! Exactly once per occurrence: the callout of an occurrence has an id derived
//! from the schedule and the occurrence ([`super::CalloutId::for_occurrence`]),
//! so a second replica, or a replica retrying after a crash, creating it again
//! is refused by the store's create-if-absent; no lock is needed for safety.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CalloutId, ScheduleId, Timestamp};

/// Firings kept on a schedule (newest last).
pub const MAX_FIRINGS: usize = 20;

/// A cron expression (5 fields, or 6 with seconds first) in a time zone.
#[derive(Debug, Clone)]
pub struct Recurrence {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

impl Recurrence {
    /// Parses both parts; each error names its part (`cron`, `timezone`).
    pub fn parse(cron: &str, timezone: &str) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build();
        let cron = parser
            .parse(cron)
            .map_err(|e| errors.push(("cron", format!("not a cron expression: {e}"))))
            .ok();
        let zone = chrono_tz::Tz::from_str(timezone)
            .map_err(|_| {
                errors.push((
                    "timezone",
                    format!("{timezone:?} is not an IANA time zone (e.g. Europe/Athens)"),
                ));
            })
            .ok();
        match (cron, zone) {
            (Some(cron), Some(zone)) if errors.is_empty() => Ok(Self { cron, zone }),
            _ => Err(errors),
        }
    }

    /// The first occurrence strictly after `t` (none for an expression that
    /// never matches again).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.occurrence(t, false)
    }

    /// The first occurrence at or after `t`.
    pub fn next_from(&self, t: Timestamp) -> Option<Timestamp> {
        self.occurrence(t, true)
    }

    /// Occurrences are whole seconds: the search starts from one (croner keeps
    /// the start's fraction of a second in what it finds).
    fn occurrence(&self, t: Timestamp, inclusive: bool) -> Option<Timestamp> {
        let fraction = t.millis().rem_euclid(1000);
        let whole = t.millis() - fraction;
        let (from, inclusive) = match (fraction, inclusive) {
            (0, inclusive) => (whole, inclusive),
            (_, false) => (whole, false),
            (_, true) => (whole + 1000, true),
        };
        let start = DateTime::<Utc>::from_timestamp_millis(from)?.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&start, inclusive)
            .ok()
            .map(|next| Timestamp(next.timestamp() * 1000))
    }
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct When {
    /// Once at this time; with `cron`, the recurrence starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA name; UTC when not given.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl When {
    /// The recurrence, when there is one (checked when the schedule was saved).
    pub fn recurrence(&self) -> Option<Recurrence> {
        self.cron
            .as_deref()
            .and_then(|c| Recurrence::parse(c, &self.timezone).ok())
    }

    /// The first occurrence of a schedule made (or resumed) at `now`: a one-off
    /// at its time (at once if that passed), a recurrence at its first
    /// occurrence from `start_at` (or after `now`), and never before `now`.
    pub fn first(&self, now: Timestamp) -> Option<Timestamp> {
        match (self.recurrence(), self.start_at) {
            (Some(r), Some(start)) if start > now => r.next_from(start),
            (Some(r), _) => r.next_after(now),
            (None, start) => start,
        }
    }
}

/// One occurrence that fired: the callout made, or why none was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    /// The occurrence (not when it ran, which may be later).
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callout: Option<CalloutId>,
    /// Why no callout was made (the request was no longer valid: a team or
    /// assistant deleted, a template removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: ScheduleId,
    pub name: String,
    /// The `POST /v1/callouts` JSON body each occurrence creates: checked when
    /// the schedule is saved, and read again at each occurrence (so a named
    /// team's contacts are its contacts at that time).
    pub callout: serde_json::Value,
    pub when: When,
    #[serde(default)]
    pub paused: bool,
    /// The next occurrence to fire; none once a one-off fired or a recurrence
    /// ends. Kept while paused (shown), but not fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Timestamp>,
    /// The latest firings, oldest first (at most [`MAX_FIRINGS`]).
    #[serde(default)]
    pub fired: Vec<Firing>,
    pub created_at: Timestamp,
    /// Moves forward on every change (compare-and-set).
    pub updated_at: Timestamp,
    /// The API key (fingerprint) that made it: its callouts count against that
    /// key's limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl Schedule {
    pub fn new(
        id: ScheduleId,
        name: String,
        callout: serde_json::Value,
        when: When,
        now: Timestamp,
    ) -> Self {
        let next_at = when.first(now);
        Self {
            id,
            name,
            callout,
            when,
            paused: false,
            next_at,
            fired: Vec::new(),
            created_at: now,
            updated_at: now,
            created_by: None,
        }
    }

    /// When the store's due index should wake this schedule: never while
    /// paused or finished.
    pub fn due(&self) -> Option<Timestamp> {
        if self.paused { None } else { self.next_at }
    }

    /// The callout id of occurrence `at`: the same on every replica and every
    /// retry.
    pub fn callout_id(&self, at: Timestamp) -> CalloutId {
        CalloutId::for_occurrence(self.id.as_uuid().as_bytes(), at)
    }

    fn touch(&mut self, now: Timestamp) {
        self.updated_at = if now > self.updated_at {
            now
        } else {
            self.updated_at.plus(std::time::Duration::from_millis(1))
        };
    }

    /// Records that occurrence `at` fired (or failed, `firing.error`) at `now`
    /// and moves to the next: the first occurrence after both `at` and `now`,
    /// so occurrences missed while no replica ran are not fired late one by
    /// one (the one late firing stands for them). A one-off is then done.
    /// Returns false when `at` is not the pending occurrence (another replica
    /// recorded it already): nothing changes.
    pub fn record(&mut self, firing: Firing, now: Timestamp) -> bool {
        if self.next_at != Some(firing.at) {
            return false;
        }
        let after = firing.at.max(now);
        self.next_at = self.when.recurrence().and_then(|r| r.next_after(after));
        self.fired.push(firing);
        if self.fired.len() > MAX_FIRINGS {
            self.fired.remove(0);
        }
        self.touch(now);
        true
    }

    /// Pauses (true) or resumes (false). Resuming starts again from `now`:
    /// occurrences that passed while paused are skipped, not fired late; a
    /// one-off that has not fired fires at its time (at once if passed).
    /// Returns false when nothing changed.
    pub fn set_paused(&mut self, paused: bool, now: Timestamp) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        if !paused {
            self.next_at = match self.when.recurrence() {
                Some(_) => self.when.first(now),
                None if self.fired.is_empty() => self.when.start_at,
                None => None,
            };
        }
        self.touch(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Milliseconds of an RFC 3339 time.
    fn t(s: &str) -> Timestamp {
        Timestamp(DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis())
    }

    fn when(cron: Option<&str>, tz: &str, start_at: Option<&str>) -> When {
        When {
            start_at: start_at.map(t),
            cron: cron.map(str::to_owned),
            timezone: tz.to_owned(),
        }
    }

    fn schedule(w: When, now: Timestamp) -> Schedule {
        Schedule::new(ScheduleId::new(), "s".into(), serde_json::json!({}), w, now)
    }

    #[test]
    fn occurrences_are_whole_seconds_whatever_the_start() {
        let r = Recurrence::parse("*/2 * * * * *", "UTC").unwrap();
        let t0 = t("2026-06-01T10:00:00Z");
        assert_eq!(
            r.next_after(t0.plus(Duration::from_millis(1))),
            Some(t0.plus_secs(2))
        );
        assert_eq!(
            r.next_after(t0.plus(Duration::from_millis(1999))),
            Some(t0.plus_secs(2))
        );
        assert_eq!(r.next_after(t0), Some(t0.plus_secs(2)));
        assert_eq!(r.next_from(t0), Some(t0));
        assert_eq!(
            r.next_from(t0.plus(Duration::from_millis(1))),
            Some(t0.plus_secs(2))
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        let e = Recurrence::parse("61 * * * *", "Mars/Olympus").unwrap_err();
        let parts: Vec<&str> = e.iter().map(|p| p.0).collect();
        assert_eq!(parts, ["cron", "timezone"]);
        assert!(Recurrence::parse("0 7 * * MON-FRI", "Europe/Athens").is_ok());
        assert!(Recurrence::parse("*/2 * * * * *", "UTC").is_ok(), "seconds");
    }

    #[test]
    fn a_weekday_roster_check_fires_at_local_seven_across_a_dst_change_in_athens() {
        // Europe/Athens goes from UTC+2 to UTC+3 on Sunday 29 March 2026.
        let r = Recurrence::parse("0 7 * * MON-FRI", "Europe/Athens").unwrap();
        let fri = r.next_after(t("2026-03-26T12:00:00Z")).unwrap();
        assert_eq!(fri, t("2026-03-27T05:00:00Z"), "Friday 07:00 EET");
        let mon = r.next_after(fri).unwrap();
        assert_eq!(mon, t("2026-03-30T04:00:00Z"), "Monday 07:00 EEST");
    }

    #[test]
    fn new_york_skips_the_missing_hour_and_fires_the_repeated_one_once() {
        let r = Recurrence::parse("30 2 * * *", "America/New_York").unwrap();
        // 8 March 2026: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist, so
        // the daily 02:30 runs just after the gap (03:00 EDT = 07:00Z).
        let spring = r.next_after(t("2026-03-08T05:00:00Z")).unwrap();
        assert_eq!(spring, t("2026-03-08T07:00:00Z"));
        assert_eq!(r.next_after(spring).unwrap(), t("2026-03-09T06:30:00Z"));
        // 1 November 2026: 01:30 happens twice; an hourly-at-:30 job fires once
        // for it, then at 02:30 EST.
        let hourly = Recurrence::parse("30 * * * *", "America/New_York").unwrap();
        let first = hourly.next_after(t("2026-11-01T05:00:00Z")).unwrap();
        assert_eq!(first, t("2026-11-01T05:30:00Z"), "01:30 EDT");
        let after = hourly.next_after(first).unwrap();
        assert!(
            after == t("2026-11-01T06:30:00Z") || after == t("2026-11-01T07:30:00Z"),
            "{after:?}"
        );
        let mut at = first;
        let mut fired = Vec::new();
        while at < t("2026-11-01T08:00:00Z") {
            fired.push(at);
            at = hourly.next_after(at).unwrap();
        }
        // 01:30 EDT, (01:30 EST at most once more), 02:30 EST: strictly increasing.
        assert!(fired.windows(2).all(|w| w[0] < w[1]), "{fired:?}");
        assert!(fired.contains(&t("2026-11-01T07:30:00Z")), "02:30 EST");
    }

    #[test]
    fn the_first_occurrence_is_never_before_now() {
        let now = t("2026-06-01T10:00:00Z");
        // A one-off: at its time, even if that passed (fires at once).
        assert_eq!(
            when(None, "UTC", Some("2026-06-01T12:00:00Z")).first(now),
            Some(t("2026-06-01T12:00:00Z"))
        );
        assert_eq!(
            when(None, "UTC", Some("2026-05-01T12:00:00Z")).first(now),
            Some(t("2026-05-01T12:00:00Z"))
        );
        // A recurrence from a later start_at: its first occurrence from there.
        assert_eq!(
            when(Some("0 7 * * *"), "UTC", Some("2026-06-03T07:00:00Z")).first(now),
            Some(t("2026-06-03T07:00:00Z"))
        );
        // From a past start_at, or none: after now.
        for start in [None, Some("2026-01-01T00:00:00Z")] {
            assert_eq!(
                when(Some("0 7 * * *"), "UTC", start).first(now),
                Some(t("2026-06-02T07:00:00Z"))
            );
        }
    }

    #[test]
    fn a_recurrence_moves_on_after_each_firing_and_coalesces_missed_ones() {
        let now = t("2026-06-01T10:00:00Z");
        let mut s = schedule(when(Some("0 * * * *"), "UTC", None), now);
        let first = s.next_at.unwrap();
        assert_eq!(first, t("2026-06-01T11:00:00Z"));
        // Recording anything but the pending occurrence changes nothing.
        let stale = Firing {
            at: now,
            callout: None,
            error: None,
        };
        assert!(!s.record(stale, first));
        let id = s.id;
        let fired = |at| Firing {
            at,
            callout: Some(CalloutId::for_occurrence(id.as_uuid().as_bytes(), at)),
            error: None,
        };
        let f = fired(first);
        assert!(s.record(f.clone(), first));
        assert_eq!(s.next_at, Some(t("2026-06-01T12:00:00Z")));
        // Fired twice (a second replica): the second is refused.
        assert!(!s.record(f, first));
        // No replica ran from 12:00 to 15:10: one late firing, then 16:00.
        let late = t("2026-06-01T15:10:00Z");
        let f = fired(t("2026-06-01T12:00:00Z"));
        assert!(s.record(f, late));
        assert_eq!(s.next_at, Some(t("2026-06-01T16:00:00Z")));
        assert_eq!(s.fired.len(), 2);
        assert!(s.updated_at > s.created_at);
    }

    #[test]
    fn a_one_off_fires_once_and_the_firings_kept_are_bounded() {
        let now = t("2026-06-01T10:00:00Z");
        let mut s = schedule(when(None, "UTC", Some("2026-06-01T10:05:00Z")), now);
        let at = s.next_at.unwrap();
        assert!(s.record(
            Firing {
                at,
                callout: None,
                error: Some("team gone".into())
            },
            at
        ));
        assert_eq!((s.next_at, s.due()), (None, None));

        let mut r = schedule(when(Some("* * * * *"), "UTC", None), now);
        for _ in 0..(MAX_FIRINGS + 5) {
            let at = r.next_at.unwrap();
            let callout = Some(r.callout_id(at));
            assert!(r.record(
                Firing {
                    at,
                    callout,
                    error: None
                },
                at
            ));
        }
        assert_eq!(r.fired.len(), MAX_FIRINGS);
        assert!(r.fired.windows(2).all(|w| w[0].at < w[1].at));
    }

    #[test]
    fn pausing_stops_the_due_index_and_resuming_skips_what_passed() {
        let now = t("2026-06-01T10:00:00Z");
        let mut s = schedule(when(Some("0 * * * *"), "UTC", None), now);
        assert!(s.set_paused(true, now));
        assert!(!s.set_paused(true, now), "already paused");
        assert_eq!(s.due(), None);
        assert_eq!(s.next_at, Some(t("2026-06-01T11:00:00Z")), "still shown");
        let later = t("2026-06-01T13:20:00Z");
        assert!(s.set_paused(false, later));
        assert_eq!(s.due(), Some(t("2026-06-01T14:00:00Z")));
        // A one-off resumed after its time, not yet fired: fires at once.
        let mut o = schedule(when(None, "UTC", Some("2026-06-01T10:30:00Z")), now);
        o.set_paused(true, now);
        o.set_paused(false, later);
        assert_eq!(o.due(), Some(t("2026-06-01T10:30:00Z")));
    }

    #[test]
    fn an_occurrences_callout_id_is_the_same_everywhere_and_differs_per_occurrence() {
        let now = t("2026-06-01T10:00:00Z");
        let s = schedule(when(Some("0 * * * *"), "UTC", None), now);
        let other = schedule(when(Some("0 * * * *"), "UTC", None), now);
        let at = s.next_at.unwrap();
        // As another replica reads it from the store.
        let stored: Schedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(s.callout_id(at), stored.callout_id(at));
        assert_ne!(s.callout_id(at), s.callout_id(at.plus_secs(3600)));
        assert_ne!(s.callout_id(at), other.callout_id(at));
        // Time-ordered like every callout id: created at the occurrence.
        assert_eq!(s.callout_id(at).created_ms(), at.millis());
    }
}
