//! The text-to-speech languages and voices a call can speak: the carrier's
//! (Routee's) list, kept here because a contact's and an assistant's language
//! are part of a callout; `routee` re-exports them for its verbs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Voice gender for `SAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
}

impl FromStr for Gender {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "male" | "m" | "man" => Ok(Gender::Male),
            "female" | "f" | "woman" => Ok(Gender::Female),
            other => Err(format!(
                "unknown voice gender {other:?} (expected male or female)"
            )),
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gender::Male => "male",
            Gender::Female => "female",
        })
    }
}

/// The 14 text-to-speech languages Routee supports (reference §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    EnUs,
    DeDe,
    FrFr,
    ItIt,
    PtBr,
    EsEs,
    EsLa,
    EnGb,
    ElGr,
    BgBg,
    PlPl,
    HuHu,
    SvSe,
    RuRu,
}

impl Language {
    pub const ALL: [Language; 14] = [
        Language::EnUs,
        Language::DeDe,
        Language::FrFr,
        Language::ItIt,
        Language::PtBr,
        Language::EsEs,
        Language::EsLa,
        Language::EnGb,
        Language::ElGr,
        Language::BgBg,
        Language::PlPl,
        Language::HuHu,
        Language::SvSe,
        Language::RuRu,
    ];

    /// Routee's code for the language, e.g. `en-US`.
    pub fn code(self) -> &'static str {
        match self {
            Language::EnUs => "en-US",
            Language::DeDe => "de-DE",
            Language::FrFr => "fr-FR",
            Language::ItIt => "it-IT",
            Language::PtBr => "pt-BR",
            Language::EsEs => "es-ES",
            Language::EsLa => "es-LA",
            Language::EnGb => "en-GB",
            Language::ElGr => "el-GR",
            Language::BgBg => "bg-BG",
            Language::PlPl => "pl-PL",
            Language::HuHu => "hu-HU",
            Language::SvSe => "sv-SE",
            Language::RuRu => "ru-RU",
        }
    }
}

impl Language {
    /// The language without its region (`en` for `en-US` and `en-GB`): two
    /// voices of one primary language read the same text.
    pub fn primary(self) -> &'static str {
        self.code().split('-').next().unwrap_or_default()
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Parses one of Routee's exact codes (case-insensitive, `_` accepted for `-`).
/// Mapping other locales (e.g. `en-AU`, `es-MX`) is the renderer's job:
/// see `dialplan::language`.
impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('_', "-");
        Language::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| {
                format!(
                    "unsupported language {s:?}: Routee speaks {}",
                    Language::ALL.map(Language::code).join(", ")
                )
            })
    }
}

impl Serialize for Language {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
