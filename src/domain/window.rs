//! Call windows in the callee's local time (issue 17 item 4): when a person
//! may be called, like `08:00-21:00` or `mon-fri 08:00-18:00`, read in their
//! IANA time zone. Pure: the caller passes the instant and the zone.
//!
//! Daylight saving: a window is wall-clock time, so `08:00` is 08:00 local on
//! both sides of a change. A start that falls in a spring-forward gap opens at
//! the first minute after it; one repeated by a fall-back change opens at its
//! first occurrence.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;

use super::Timestamp;

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

/// The hours and days a person may be called, in their local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `n` is set when weekday `n` (Monday 0) is a calling day.
    days: u8,
    /// Minutes after local midnight; `end` may be 1440 (`24:00`). A window
    /// whose end is before its start runs overnight into the next day (and
    /// belongs to the day it starts on).
    start: u16,
    end: u16,
}

/// What a call outside its callee's window does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutsideWindow {
    /// Waits for the window to open.
    #[default]
    Wait,
    /// Moves on to the next person.
    Skip,
}

impl OutsideWindow {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "wait" => Ok(Self::Wait),
            "skip" => Ok(Self::Skip),
            other => Err(format!("{other:?}: expected wait or skip")),
        }
    }
}

fn minutes(s: &str, end: bool) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time of day (HH:MM, 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) if end => Ok(1440),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn day(s: &str) -> Result<usize, String> {
    DAY_NAMES
        .iter()
        .position(|(name, _)| name.eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

fn days(spec: &str) -> Result<u8, String> {
    let mut set = 0u8;
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                let mut d = from;
                loop {
                    set |= 1 << d;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set |= 1 << day(part)?,
        }
    }
    Ok(set)
}

impl Window {
    /// `HH:MM-HH:MM`, optionally after days: `mon-fri 08:00-18:00`,
    /// `sat,sun 10:00-16:00`, `fri-mon 22:00-06:00` (overnight).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (day_spec, hours) = match s.rsplit_once(' ') {
            Some((d, h)) => (Some(d.trim()), h),
            None => (None, s),
        };
        let (from, to) = hours
            .split_once('-')
            .ok_or_else(|| format!("{hours:?}: expected HH:MM-HH:MM, e.g. 08:00-21:00"))?;
        let (start, end) = (minutes(from, false)?, minutes(to, true)?);
        if start == end {
            return Err("the window is empty (it starts when it ends)".into());
        }
        let days = match day_spec {
            Some(d) => days(d)?,
            None => 0b111_1111,
        };
        Ok(Self { days, start, end })
    }

    fn has(&self, d: Weekday) -> bool {
        self.days & (1 << d.num_days_from_monday()) != 0
    }

    fn local(at: Timestamp, zone: Tz) -> Option<NaiveDateTime> {
        DateTime::<Utc>::from_timestamp_millis(at.millis())
            .map(|t| t.with_timezone(&zone).naive_local())
    }

    /// Whether `at` is inside the window in `zone`.
    pub fn contains(&self, at: Timestamp, zone: Tz) -> bool {
        let Some(local) = Self::local(at, zone) else {
            return false;
        };
        let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
        let today = local.weekday();
        if self.start < self.end {
            self.has(today) && (self.start..self.end).contains(&minute)
        } else {
            (self.has(today) && minute >= self.start)
                || (self.has(today.pred()) && minute < self.end)
        }
    }

    /// `at` if it is inside the window, else when the window next opens (none
    /// for a window without days, which parsing never makes).
    pub fn next_open(&self, at: Timestamp, zone: Tz) -> Option<Timestamp> {
        if self.contains(at, zone) {
            return Some(at);
        }
        let today = Self::local(at, zone)?.date();
        (0..=7)
            .filter_map(|d| today.checked_add_signed(Duration::days(d)))
            .filter(|date| self.has(date.weekday()))
            .filter_map(|date| self.opening(date, zone))
            .find(|open| *open > at)
    }

    /// The instant the window opens on local `date`.
    fn opening(&self, date: NaiveDate, zone: Tz) -> Option<Timestamp> {
        let start = date.and_hms_opt(u32::from(self.start / 60), u32::from(self.start % 60), 0)?;
        // A spring-forward gap lasts at most a few hours: the first minute after it.
        (0..=240).find_map(
            |m| match zone.from_local_datetime(&(start + Duration::minutes(m))) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    Some(Timestamp(t.timestamp_millis()))
                }
                LocalResult::None => None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp(DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis())
    }

    fn zone(name: &str) -> Tz {
        name.parse().unwrap()
    }

    #[test]
    fn windows_parse_and_bad_ones_say_why() {
        let w = Window::parse("08:00-21:00").unwrap();
        assert_eq!((w.start, w.end, w.days), (480, 1260, 0b111_1111));
        let w = Window::parse("mon-fri 08:00-18:00").unwrap();
        assert_eq!(w.days, 0b001_1111);
        assert_eq!(
            Window::parse("sat,sun 10:00-24:00").unwrap().days,
            0b110_0000
        );
        assert_eq!(
            Window::parse("fri-mon 22:00-06:00").unwrap().days,
            0b111_0001
        );
        for bad in [
            "8-21",
            "08:00",
            "25:00-26:00",
            "08:00-08:00",
            "moon 08:00-09:00",
            "08:60-09:00",
            "24:00-01:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(OutsideWindow::parse("skip"), Ok(OutsideWindow::Skip));
        assert!(OutsideWindow::parse("later").is_err());
    }

    #[test]
    fn inside_a_window_a_call_goes_now_and_outside_it_waits_for_the_local_opening() {
        let w = Window::parse("08:00-21:00").unwrap();
        let athens = zone("Europe/Athens");
        // 06:00Z is 09:00 in Athens (summer, UTC+3): inside.
        let at = t("2026-07-01T06:00:00Z");
        assert!(w.contains(at, athens));
        assert_eq!(w.next_open(at, athens), Some(at));
        // 19:00Z is 22:00: outside; opens 08:00 the next day (05:00Z).
        let late = t("2026-07-01T19:00:00Z");
        assert!(!w.contains(late, athens));
        assert_eq!(w.next_open(late, athens), Some(t("2026-07-02T05:00:00Z")));
        // The end is exclusive.
        assert!(!w.contains(t("2026-07-01T18:00:00Z"), athens));
    }

    #[test]
    fn weekdays_and_overnight_windows() {
        let athens = zone("Europe/Athens");
        let w = Window::parse("mon-fri 08:00-18:00").unwrap();
        // Saturday 4 July 2026, 10:00 local: opens Monday 08:00 local.
        assert_eq!(
            w.next_open(t("2026-07-04T07:00:00Z"), athens),
            Some(t("2026-07-06T05:00:00Z"))
        );
        let night = Window::parse("fri 22:00-06:00").unwrap();
        // Saturday 03:00 local belongs to Friday's night.
        assert!(night.contains(t("2026-07-04T00:00:00Z"), athens));
        // Saturday 07:00 local does not; the next opening is next Friday 22:00.
        let sat = t("2026-07-04T04:00:00Z");
        assert!(!night.contains(sat, athens));
        assert_eq!(
            night.next_open(sat, athens),
            Some(t("2026-07-10T19:00:00Z"))
        );
    }

    #[test]
    fn a_window_is_wall_clock_time_across_a_dst_change_in_athens_and_new_york() {
        let w = Window::parse("08:00-21:00").unwrap();
        // Athens: UTC+2 until Sunday 29 March 2026 03:00, then UTC+3.
        let athens = zone("Europe/Athens");
        let sat_night = t("2026-03-28T20:00:00Z"); // 22:00 EET
        assert_eq!(
            w.next_open(sat_night, athens),
            Some(t("2026-03-29T05:00:00Z")),
            "08:00 EEST"
        );
        let fri_night = t("2026-03-27T20:00:00Z");
        assert_eq!(
            w.next_open(fri_night, athens),
            Some(t("2026-03-28T06:00:00Z")),
            "08:00 EET"
        );
        // New York: UTC-4 until Sunday 1 November 2026 02:00, then UTC-5.
        let ny = zone("America/New_York");
        let sat = t("2026-11-01T02:00:00Z"); // Saturday 22:00 EDT
        assert_eq!(
            w.next_open(sat, ny),
            Some(t("2026-11-01T13:00:00Z")),
            "08:00 EST"
        );
        assert!(
            w.contains(t("2026-11-02T01:30:00Z"), ny),
            "Sunday 20:30 EST"
        );
        assert!(
            !w.contains(t("2026-11-02T02:30:00Z"), ny),
            "Sunday 21:30 EST"
        );
    }

    #[test]
    fn an_opening_in_a_spring_forward_gap_is_the_first_minute_after_it() {
        // New York, 8 March 2026: 02:00 EST jumps to 03:00 EDT.
        let ny = zone("America/New_York");
        let w = Window::parse("02:30-04:00").unwrap();
        let before = t("2026-03-08T05:00:00Z"); // 00:00 EST
        assert_eq!(
            w.next_open(before, ny),
            Some(t("2026-03-08T07:00:00Z")),
            "03:00 EDT"
        );
        // Fall back, 1 November 2026: 01:30 happens twice; the window opens at the first.
        let w = Window::parse("01:30-03:00").unwrap();
        assert_eq!(
            w.next_open(t("2026-11-01T04:00:00Z"), ny),
            Some(t("2026-11-01T05:30:00Z")),
            "01:30 EDT"
        );
    }
}
