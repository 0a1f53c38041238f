//! Time as the domain sees it: milliseconds since the Unix epoch, passed in by the
//! caller (the domain never reads a clock, so transitions are pure and testable).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock. Only the edges (engine, HTTP) call this.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    #[must_use]
    pub fn plus_secs(self, secs: u64) -> Self {
        self.plus(Duration::from_secs(secs))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 with millisecond precision, e.g. `2026-11-21T10:00:00.000Z`.
    pub fn rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                );
                t.format(&fmt).unwrap_or_else(|_| self.0.to_string())
            }
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses RFC 3339 (or a bare epoch in seconds or milliseconds), for timestamps
    /// that arrive from upstreams in unknown formats.
    pub fn parse_lenient(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            // Heuristic: values below 10^11 are seconds (until the year 5138).
            return Some(Timestamp(if n.abs() < 100_000_000_000 {
                n * 1000
            } else {
                n
            }));
        }
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .or_else(|_| {
                // Routee examples sometimes omit the offset: read those as UTC.
                time::PrimitiveDateTime::parse(
                    s,
                    &time::macros::format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
                    ),
                )
                .map(time::PrimitiveDateTime::assume_utc)
            })
            .ok()?;
        Some(Timestamp(
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?,
        ))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        let t = Timestamp(1_763_719_200_123);
        assert_eq!(t.rfc3339(), "2025-11-21T10:00:00.123Z");
        assert_eq!(Timestamp::parse_lenient(&t.rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_lenient("2025-11-21T10:00:00"),
            Some(Timestamp(1_763_719_200_000))
        );
        assert_eq!(
            Timestamp::parse_lenient("1763719200"),
            Some(Timestamp(1_763_719_200_000))
        );
        assert_eq!(Timestamp::parse_lenient("yesterday"), None);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp(1000);
        assert_eq!(t.plus_secs(2), Timestamp(3000));
        assert_eq!(Timestamp(0).since(t), Duration::ZERO);
    }
}
