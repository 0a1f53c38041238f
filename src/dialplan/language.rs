//! Which of Routee's voices reads a text: locales to Routee's 14 languages, and
//! voice names to a gender.
//!
//! Routee's `SAY` accepts exactly 14 language codes (reference §3.2) and no voice
//! names, only `male`/`female`. Voiceflow projects, contact lists and assistants
//! speak BCP-47 (`en-AU`, `es-419`, `pt`), POSIX (`en_US.UTF-8`) or ISO 639 codes
//! and name voices after their TTS vendor (`Polly.Joanna`, `en-US-JennyNeural`).
//!
//! - [`routee_language`] tries Routee's own codes first, then maps a locale to the
//!   closest Routee voice by its language and region (all English but British and
//!   Irish to `en-US`; Latin-American Spanish to `es-LA`; every Portuguese to
//!   `pt-BR`, the only Portuguese voice). A language Routee cannot speak is an
//!   error naming what it can: reading Japanese text with an English voice helps
//!   nobody.
//! - [`gender_for_voice`] knows `male`/`female` and a small table of well-known
//!   vendor voice names. An unknown voice is not an error: the caller falls back
//!   to the assistant's default gender.

use crate::routee::{Gender, Language};

/// A locale that none of Routee's 14 text-to-speech languages can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported language {locale:?}: Routee speaks {}", supported_codes())]
pub struct UnsupportedLanguage {
    pub locale: String,
}

fn supported_codes() -> String {
    Language::ALL.map(Language::code).join(", ")
}

/// Spanish regions whose Spanish is closer to Routee's `es-LA` than to `es-ES`:
/// the Americas (`419` is "Latin America and the Caribbean"; `XL` is a common
/// vendor code for the same).
const LATIN_AMERICAN_SPANISH: [&str; 22] = [
    "419", "xl", "mx", "us", "ar", "bo", "cl", "co", "cr", "cu", "do", "ec", "gt", "hn", "ni",
    "pa", "pe", "pr", "py", "sv", "uy", "ve",
];

/// Maps a Voiceflow/BCP-47/POSIX locale (or one of Routee's codes) to the Routee
/// language that should read it.
pub fn routee_language(locale: &str) -> Result<Language, UnsupportedLanguage> {
    let unsupported = || UnsupportedLanguage {
        locale: locale.to_owned(),
    };
    if let Ok(exact) = locale.parse::<Language>() {
        return Ok(exact);
    }
    // `en_US.UTF-8`, `de_DE@euro`: the codeset and modifier say nothing about the voice.
    let tag = locale
        .trim()
        .split(['.', '@'])
        .next()
        .unwrap_or_default()
        .replace('_', "-")
        .to_ascii_lowercase();
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    // The region is the first 2-letter or 3-digit subtag (skipping a script like `Latn`).
    let region = subtags
        .find(|s| {
            (s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic()))
                || (s.len() == 3 && s.chars().all(|c| c.is_ascii_digit()))
        })
        .unwrap_or("");
    let language = match primary {
        "en" | "eng" => match region {
            "gb" | "uk" | "ie" => Language::EnGb,
            _ => Language::EnUs,
        },
        "es" | "spa" => {
            if LATIN_AMERICAN_SPANISH.contains(&region) || region == "la" {
                Language::EsLa
            } else {
                Language::EsEs
            }
        }
        "de" | "deu" | "ger" => Language::DeDe,
        "fr" | "fra" | "fre" => Language::FrFr,
        "it" | "ita" => Language::ItIt,
        "pt" | "por" => Language::PtBr,
        "el" | "ell" | "gre" => Language::ElGr,
        "bg" | "bul" => Language::BgBg,
        "pl" | "pol" => Language::PlPl,
        "hu" | "hun" => Language::HuHu,
        "sv" | "swe" => Language::SvSe,
        "ru" | "rus" => Language::RuRu,
        _ => return Err(unsupported()),
    };
    Ok(language)
}

/// Well-known vendor voices (Amazon Polly, Azure, Alexa, Twilio's `alice`) by
/// gender. Names are compared after [`voice_key`] normalisation.
const FEMALE_VOICES: &[&str] = &[
    "alexa", "alice", "joanna", "ivy", "kendra", "kimberly", "salli", "ruth", "danielle", "amy",
    "emma", "olivia", "nicole", "aditi", "raveena", "vicki", "marlene", "celine", "lea", "chantal",
    "lucia", "conchita", "mia", "lupe", "penelope", "camila", "vitoria", "ines", "carla", "bianca",
    "ewa", "maja", "tatyana", "astrid", "jenny", "aria", "sonia", "libby",
];
const MALE_VOICES: &[&str] = &[
    "matthew",
    "joey",
    "justin",
    "kevin",
    "stephen",
    "gregory",
    "brian",
    "arthur",
    "russell",
    "geraint",
    "hans",
    "daniel",
    "mathieu",
    "enrique",
    "sergio",
    "andres",
    "miguel",
    "pedro",
    "giorgio",
    "adriano",
    "ricardo",
    "thiago",
    "cristiano",
    "jacek",
    "jan",
    "maxim",
    "guy",
    "davis",
    "ryan",
];

/// The gender of a voice: `male`/`female` (and `man`/`woman`), or a well-known
/// vendor voice name such as `Polly.Joanna`, `Matthew`, `en-US-JennyNeural` or
/// `Alexa`. `None` when unknown: not an error, the caller uses its default.
pub fn gender_for_voice(voice: &str) -> Option<Gender> {
    if let Ok(g) = voice.parse::<Gender>() {
        return Some(g);
    }
    let key = voice_key(voice);
    if FEMALE_VOICES.contains(&key.as_str()) {
        Some(Gender::Female)
    } else if MALE_VOICES.contains(&key.as_str()) {
        Some(Gender::Male)
    } else {
        None
    }
}

/// `Polly.Joanna-Neural` → `joanna`, `en-US-JennyNeural` → `jenny`, `Léa` → `lea`:
/// the vendor prefix, locale prefix, engine suffix and accents say nothing about
/// the gender.
fn voice_key(voice: &str) -> String {
    let lower = voice.trim().to_lowercase();
    let mut name = lower.rsplit('.').next().unwrap_or_default();
    // A locale prefix such as `en-us-` (Azure, Google).
    let parts: Vec<&str> = name.splitn(3, '-').collect();
    if parts.len() == 3 && parts[0].len() == 2 && parts[1].len() == 2 {
        name = parts[2];
    }
    for suffix in ["-neural", "neural", "-generative", "-standard", "-longform"] {
        if let Some(stripped) = name.strip_suffix(suffix) {
            name = stripped;
            break;
        }
    }
    name.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(locale: &str) -> Language {
        routee_language(locale).unwrap_or_else(|e| panic!("{locale}: {e}"))
    }

    #[test]
    fn routee_codes_are_accepted_in_any_case_and_separator() {
        for l in Language::ALL {
            assert_eq!(lang(l.code()), l);
            assert_eq!(lang(&l.code().to_lowercase().replace('-', "_")), l);
        }
    }

    #[test]
    fn english_locales_map_to_american_except_british_and_irish() {
        for l in ["en", "en-AU", "en-CA", "en-IN", "en-NZ", "en-ZA", "EN_us"] {
            assert_eq!(lang(l), Language::EnUs, "{l}");
        }
        for l in ["en-GB", "en-IE", "en_UK", "en-gb"] {
            assert_eq!(lang(l), Language::EnGb, "{l}");
        }
    }

    #[test]
    fn spanish_of_the_americas_maps_to_es_la_and_the_rest_to_es_es() {
        for l in ["es-MX", "es-419", "es-AR", "es-US", "es_CO", "es-LA"] {
            assert_eq!(lang(l), Language::EsLa, "{l}");
        }
        for l in ["es", "es-ES", "es-GQ"] {
            assert_eq!(lang(l), Language::EsEs, "{l}");
        }
    }

    #[test]
    fn other_languages_map_to_their_only_routee_voice() {
        let cases = [
            ("pt", Language::PtBr),
            ("pt-PT", Language::PtBr),
            ("fr-CA", Language::FrFr),
            ("fr-BE", Language::FrFr),
            ("de-AT", Language::DeDe),
            ("de-CH", Language::DeDe),
            ("it-CH", Language::ItIt),
            ("el", Language::ElGr),
            ("el-CY", Language::ElGr),
            ("bg", Language::BgBg),
            ("pl", Language::PlPl),
            ("hu", Language::HuHu),
            ("sv-FI", Language::SvSe),
            ("ru-UA", Language::RuRu),
        ];
        for (locale, expected) in cases {
            assert_eq!(lang(locale), expected, "{locale}");
        }
    }

    #[test]
    fn posix_locales_scripts_and_three_letter_codes_are_understood() {
        assert_eq!(lang("en_US.UTF-8"), Language::EnUs);
        assert_eq!(lang("de_DE@euro"), Language::DeDe);
        assert_eq!(lang("en-Latn-GB"), Language::EnGb);
        assert_eq!(lang("eng"), Language::EnUs);
        assert_eq!(lang("spa-MX"), Language::EsLa);
    }

    #[test]
    fn unsupported_languages_are_refused_with_the_supported_list() {
        for l in ["ja-JP", "zh", "", "klingon", "tr-TR"] {
            let err = routee_language(l).unwrap_err();
            assert_eq!(err.locale, l);
            let msg = err.to_string();
            assert!(msg.contains("en-US") && msg.contains("ru-RU"), "{msg}");
        }
    }

    #[test]
    fn voice_genders_come_from_words_and_well_known_names() {
        let cases = [
            ("male", Some(Gender::Male)),
            ("FEMALE", Some(Gender::Female)),
            ("Polly.Joanna", Some(Gender::Female)),
            ("Polly.Matthew-Neural", Some(Gender::Male)),
            ("Alexa", Some(Gender::Female)),
            ("en-US-JennyNeural", Some(Gender::Female)),
            ("en-US-GuyNeural", Some(Gender::Male)),
            ("Polly.Léa", Some(Gender::Female)),
            ("alice", Some(Gender::Female)),
            ("Polly.Zhiyu", None),
            ("", None),
        ];
        for (voice, expected) in cases {
            assert_eq!(gender_for_voice(voice), expected, "{voice}");
        }
    }
}
