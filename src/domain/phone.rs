//! Phone numbers: parsed with libphonenumber's rules (the `phonenumber` crate),
//! never with a hand-written regex, and masked whenever they reach a log line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A valid phone number in E.164 form (`+` and up to 15 digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// Why a string is not a callable E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("not an E.164 number (it must start with + and the country code)")]
    MissingPlus,
    #[error("not an E.164 number: {0}")]
    Unparsable(String),
    #[error("not a valid phone number for its country")]
    Invalid,
    #[error(
        "not an E.164 number: {0:?} is not a digit (only digits, spaces and - . ( ) may follow the +)"
    )]
    BadCharacter(char),
    #[error("a premium-rate number; the gateway never calls one")]
    PremiumRate,
    #[error("a shared-cost number; the gateway never calls one")]
    SharedCost,
    #[error("a personal number (forwarded at the caller's cost); the gateway never calls one")]
    PersonalNumber,
    #[error("a universal access number (UAN); the gateway never calls one")]
    Uan,
    #[error("an international network or satellite number (+{0}); the gateway never calls one")]
    GlobalNetwork(u16),
}

/// Country codes that are not countries: international freephone and shared-cost
/// (800, 808), satellite and international networks (870, 878, 881, 882, 883),
/// and international premium rate (979). No employee is reached on one, and they
/// are the favourite targets of toll fraud (a leaked dispatcher key dialling
/// revenue-share numbers), so they are refused outright.
const GLOBAL_NETWORK_CODES: [u16; 9] = [800, 808, 870, 878, 881, 882, 883, 888, 979];

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with its middle digits hidden, e.g. `+30690****0001`; what logs show.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks any phone-like string: keeps a prefix of up to 5 characters and the last 4.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep_head = (chars.len() - 4).min(5).min(chars.len() / 2);
    let head: String = chars[..keep_head].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - keep_head - 4))
}

impl FromStr for E164 {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.starts_with('+') {
            return Err(PhoneError::MissingPlus);
        }
        // libphonenumber is lenient on purpose: it turns letters into keypad digits
        // (`+1-800-FLOWERS`), drops extensions (`x123`, `ext. 4`), reads fullwidth
        // and Arabic-Indic digits and skips invisible characters. A dispatcher's
        // typo must be refused, not dialled as some other number, so only ASCII
        // digits and the usual visual separators may follow the one `+`.
        if let Some(bad) = s[1..]
            .chars()
            .find(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')')))
        {
            return Err(PhoneError::BadCharacter(bad));
        }
        // E.164 allows at most 15 digits; refuse long input before the parser sees it.
        if s.len() > 32 {
            return Err(PhoneError::Unparsable("too long".into()));
        }
        let parsed =
            phonenumber::parse(None, s).map_err(|e| PhoneError::Unparsable(e.to_string()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid);
        }
        let code = parsed.code().value();
        if GLOBAL_NETWORK_CODES.contains(&code) {
            return Err(PhoneError::GlobalNetwork(code));
        }
        // The number types whose cost falls on (or is shared by) the caller, and
        // that revenue-share fraud uses: none of them reaches an employee.
        match parsed.number_type(&phonenumber::metadata::DATABASE) {
            phonenumber::Type::PremiumRate => return Err(PhoneError::PremiumRate),
            phonenumber::Type::SharedCost => return Err(PhoneError::SharedCost),
            phonenumber::Type::PersonalNumber => return Err(PhoneError::PersonalNumber),
            phonenumber::Type::Uan => return Err(PhoneError::Uan),
            _ => {}
        }
        Ok(E164(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }
}

/// Where calls may go (`ALLOWED_DESTINATIONS`): E.164 prefixes (`+3069`) and
/// ISO 3166 country codes (`GR`), or anywhere (`*`). A number is allowed when it
/// starts with one of the prefixes or libphonenumber places it in one of the
/// countries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Destinations {
    anywhere: bool,
    prefixes: Vec<String>,
    countries: Vec<phonenumber::country::Id>,
}

impl Destinations {
    /// No restriction (the sandbox without `ALLOWED_DESTINATIONS`).
    pub const fn anywhere() -> Self {
        Self {
            anywhere: true,
            prefixes: Vec::new(),
            countries: Vec::new(),
        }
    }

    /// Parses a comma-separated list; every entry that is neither a prefix nor a
    /// known country code is reported.
    pub fn parse(raw: &str) -> Result<Self, Vec<String>> {
        let mut out = Self::default();
        let mut bad = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.anywhere = true;
            } else if let Some(digits) = entry.strip_prefix('+') {
                if (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                    out.prefixes.push(entry.to_owned());
                } else {
                    bad.push(format!("{entry:?} is not a + followed by 1 to 15 digits"));
                }
            } else {
                match entry
                    .to_ascii_uppercase()
                    .parse::<phonenumber::country::Id>()
                {
                    Ok(id) if entry.len() == 2 => out.countries.push(id),
                    _ => bad.push(format!(
                        "{entry:?} is neither an E.164 prefix (+30) nor an ISO country code (GR)"
                    )),
                }
            }
        }
        if bad.is_empty() && !out.anywhere && out.prefixes.is_empty() && out.countries.is_empty() {
            bad.push("no destination given (use * to allow any)".into());
        }
        if bad.is_empty() { Ok(out) } else { Err(bad) }
    }

    /// Adds a prefix (the simulator's test range in the sandbox).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefixes.push(prefix.to_owned());
        self
    }

    pub fn allows(&self, number: &E164) -> bool {
        if self.anywhere
            || self
                .prefixes
                .iter()
                .any(|p| number.0.starts_with(p.as_str()))
        {
            return true;
        }
        if self.countries.is_empty() {
            return false;
        }
        phonenumber::parse(None, &number.0)
            .ok()
            .and_then(|n| n.country().id())
            .is_some_and(|id| self.countries.contains(&id))
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs; never the full number.
        write!(f, "E164({})", self.masked())
    }
}

impl fmt::Display for E164 {
    /// The full number. Use [`E164::masked`] for anything that is logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for E164 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Deserialization reads numbers the gateway itself stored (callout documents),
/// which were fully validated by [`FromStr`] when they entered: it only checks the
/// E.164 shape (`+` and 8 to 15 digits) instead of running libphonenumber again on
/// every load of a document (that was most of the cost of reading one). Input from
/// outside is parsed with `FromStr`, never with this.
impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix('+').unwrap_or("");
        if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(E164(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "stored phone number {} is not in E.164 form",
                mask(&s)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers_are_normalised_to_e164() {
        let n: E164 = "+30 690 000 0001".parse().unwrap();
        assert_eq!(n.as_str(), "+306900000001");
        let n: E164 = "+1 415 555 2671".parse().unwrap();
        assert_eq!(n.as_str(), "+14155552671");
    }

    #[test]
    fn wrong_shapes_are_refused_with_a_reason() {
        assert_eq!("306900000001".parse::<E164>(), Err(PhoneError::MissingPlus));
        assert!(matches!(
            "+".parse::<E164>(),
            Err(PhoneError::Unparsable(_))
        ));
        assert!("+30123".parse::<E164>().is_err());
        assert!("+999999999999".parse::<E164>().is_err());
        assert!("+30abcdefghij".parse::<E164>().is_err());
        assert!(format!("+{}", "1".repeat(40)).parse::<E164>().is_err());
    }

    #[test]
    fn lenient_spellings_that_would_dial_another_number_are_refused() {
        for (raw, bad) in [
            ("+1-800-FLOWERS", 'F'),
            ("+306900000001 ext. 123", 'e'),
            ("+306900000001x", 'x'),
            ("++306900000001", '+'),
            ("+306900000001#", '#'),
            ("+30690000000\u{200b}1", '\u{200b}'),
            ("+３０６９００００００１", '３'),
            ("+٣٠٦٩٠٠٠٠٠٠٠١", '٣'),
        ] {
            assert_eq!(
                raw.parse::<E164>(),
                Err(PhoneError::BadCharacter(bad)),
                "{raw}"
            );
        }
        // The separators people write stay fine.
        let n: E164 = "+30 (690) 000-0001".parse().unwrap();
        assert_eq!(n.as_str(), "+306900000001");
        assert_eq!(
            "+30.690.000.0001".parse::<E164>().unwrap().as_str(),
            "+306900000001"
        );
    }

    #[test]
    fn shared_cost_personal_and_uan_numbers_are_refused() {
        // libphonenumber's own example numbers of each type.
        for (n, e) in [
            ("+34901123456", PhoneError::SharedCost),
            ("+33884012345", PhoneError::SharedCost),
            ("+447012345678", PhoneError::PersonalNumber),
            ("+445512345678", PhoneError::Uan),
            ("+9221111825888", PhoneError::Uan),
        ] {
            assert_eq!(n.parse::<E164>(), Err(e), "{n}");
        }
    }

    #[test]
    fn destinations_allow_their_prefixes_and_countries_only() {
        let d = Destinations::parse("+3069, de").unwrap();
        let n = |s: &str| s.parse::<E164>().unwrap();
        assert!(d.allows(&n("+306900000001")));
        assert!(d.allows(&n("+4915112345678")));
        assert!(
            !d.allows(&n("+302101234567")),
            "Greek landline outside +3069"
        );
        assert!(!d.allows(&n("+447911123456")));
        assert!(Destinations::anywhere().allows(&n("+447911123456")));
        assert!(Destinations::parse("").is_err());
        assert!(Destinations::parse("+30x").is_err());
        assert!(Destinations::parse("XX").is_err());
        assert!(Destinations::parse("GRC").is_err());
    }

    #[test]
    fn premium_rate_satellite_and_international_network_numbers_are_refused() {
        assert_eq!(
            "+1 900 555 0123".parse::<E164>(),
            Err(PhoneError::PremiumRate)
        );
        assert_eq!(
            "+881 6 1234 5678".parse::<E164>(),
            Err(PhoneError::GlobalNetwork(881))
        );
        assert_eq!(
            "+870 773 111 632".parse::<E164>(),
            Err(PhoneError::GlobalNetwork(870))
        );
        assert_eq!(
            "+800 1234 5678".parse::<E164>(),
            Err(PhoneError::GlobalNetwork(800))
        );
        // Ordinary numbers of the same countries still pass.
        assert!("+1 415 555 2671".parse::<E164>().is_ok());
    }

    #[test]
    fn stored_numbers_are_read_back_by_shape_only() {
        let n: E164 = serde_json::from_str("\"+306900000001\"").unwrap();
        assert_eq!(n.as_str(), "+306900000001");
        for bad in [
            "\"306900000001\"",
            "\"+30 690\"",
            "\"+1\"",
            "\"+12345678901234567\"",
        ] {
            assert!(serde_json::from_str::<E164>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masking_hides_the_middle() {
        let n: E164 = "+306900000001".parse().unwrap();
        assert_eq!(n.masked(), "+3069****0001");
        assert!(!format!("{n:?}").contains("6900000001"));
        assert_eq!(mask("123"), "***");
    }
}
