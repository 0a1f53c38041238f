//! A team: a saved, named, ordered call list. A callout may name a team instead
//! of listing contacts; the team's contacts are then copied into the callout
//! when it is created, so editing the team later never changes a callout that
//! is already running.
//!
//! Also here: the rule for writing a call list as CSV that a spreadsheet will
//! open safely (no cell read as a formula), and its inverse for reading such a
//! file back.

use serde::{Deserialize, Serialize};

use super::{Contact, TeamId, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: TeamId,
    /// Unique among teams; a callout may name the team by it.
    pub name: String,
    /// In calling order.
    pub contacts: Vec<Contact>,
    pub created_at: Timestamp,
    /// Moves forward on every change (the stores compare it to refuse a
    /// replacement based on a stale read).
    pub updated_at: Timestamp,
}

impl Team {
    pub fn new(id: TeamId, name: String, contacts: Vec<Contact>, now: Timestamp) -> Self {
        Self {
            id,
            name,
            contacts,
            created_at: now,
            updated_at: now,
        }
    }

    /// The team with a new name and call list, as changed at `now`. Its
    /// `updated_at` moves forward even when `now` is not after the last change
    /// (two changes within a millisecond, or a clock stepped back), so every
    /// change is a new version.
    pub fn replaced(&self, name: String, contacts: Vec<Contact>, now: Timestamp) -> Self {
        let updated_at = if now > self.updated_at {
            now
        } else {
            self.updated_at.plus(std::time::Duration::from_millis(1))
        };
        Self {
            id: self.id,
            name,
            contacts,
            created_at: self.created_at,
            updated_at,
        }
    }
}

/// The characters that make a spreadsheet (Excel, LibreOffice, Google Sheets)
/// read a cell as a formula when it starts with one (OWASP "CSV injection").
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as written to an exported CSV file: one starting with a formula
/// character gets a leading `'`, which spreadsheets show as text and do not
/// evaluate. A phone number (`+30...`) is escaped too: unescaped, a spreadsheet
/// reads it as a number and drops the `+`.
pub fn spreadsheet_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// The inverse of [`spreadsheet_cell`], for reading a call list back: a `'`
/// followed by a formula character is dropped; every other cell is unchanged
/// (a name like `'t Hooft` keeps its apostrophe).
pub fn unescape_spreadsheet_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(n: u32) -> Contact {
        Contact {
            name: format!("P{n}"),
            phone: format!("+3069000000{n:02}").parse().unwrap(),
            language: None,
        }
    }

    #[test]
    fn cells_a_spreadsheet_would_run_are_escaped_and_others_are_not() {
        for (cell, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+306900000001", "'+306900000001"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("Alice", "Alice"),
            ("", ""),
            ("a=b", "a=b"),
            ("'t Hooft", "'t Hooft"),
        ] {
            assert_eq!(spreadsheet_cell(cell), written, "{cell:?}");
        }
    }

    #[test]
    fn an_escaped_cell_reads_back_as_written_and_a_plain_apostrophe_stays() {
        for cell in ["=1+1", "+306900000001", "-x", "@x", "\tx", "\rx", "Bob", ""] {
            assert_eq!(unescape_spreadsheet_cell(&spreadsheet_cell(cell)), cell);
        }
        assert_eq!(unescape_spreadsheet_cell("'t Hooft"), "'t Hooft");
        assert_eq!(unescape_spreadsheet_cell("'"), "'");
        // Only one escape is removed.
        assert_eq!(unescape_spreadsheet_cell("''=1"), "''=1");
    }

    #[test]
    fn a_replacement_keeps_the_id_and_creation_and_always_moves_the_version() {
        let t0 = Timestamp(1_000_000);
        let team = Team::new(TeamId::new(), "Linemen".into(), vec![contact(1)], t0);
        let later = team.replaced("Line crew".into(), vec![contact(2)], t0.plus_secs(5));
        assert_eq!((later.id, later.created_at), (team.id, t0));
        assert_eq!(later.updated_at, t0.plus_secs(5));
        assert_eq!(later.contacts, vec![contact(2)]);
        // The same millisecond, or a clock stepped back: still a new version.
        let same = team.replaced("Linemen".into(), vec![contact(1)], t0);
        assert!(same.updated_at > team.updated_at);
        let back = later.replaced("x".into(), vec![], t0);
        assert!(back.updated_at > later.updated_at);
    }
}
