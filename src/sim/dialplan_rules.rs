//! The rules a dialplan must follow (reference §3), which the simulated
//! carrier applies to the dialplan of a new call (`carrier`) and to every
//! eventUrl answer (`webhook`) alike.

use url::Url;

use crate::domain::phone::E164;
use crate::routee::{Destination, Dialplan, MAX_SAY_CHARS, Verb};

/// The rules a dialplan must follow (reference §3), for creations and for
/// eventUrl answers alike.
pub(crate) fn check_dialplan(plan: &Dialplan) -> Result<(), String> {
    if plan.verbs.is_empty() {
        return Err("verbs must not be empty".into());
    }
    let dials = plan
        .verbs
        .iter()
        .filter(|v| matches!(v, Verb::Dial(_)))
        .count();
    if dials > 1 {
        return Err(format!("at most one DIAL verb is allowed, found {dials}"));
    }
    for (i, verb) in plan.verbs.iter().enumerate() {
        let at = |e: String| format!("verbs[{i}]: {e}");
        match verb {
            Verb::Say(say) => {
                let chars = say.message.text.chars().count();
                if say.message.text.trim().is_empty() {
                    return Err(at("SAY message.text must not be empty".into()));
                }
                if chars > MAX_SAY_CHARS {
                    return Err(at(format!(
                        "SAY message.text has {chars} characters, at most {MAX_SAY_CHARS} are allowed"
                    )));
                }
                check_repeat(say.repeat).map_err(at)?;
            }
            Verb::Play(play) => {
                check_url("PLAY fileURL", &play.file_url).map_err(at)?;
                // Reference §3.3: "Routee currently supports only .wav files".
                let wav = Url::parse(&play.file_url)
                    .is_ok_and(|u| u.path().to_ascii_lowercase().ends_with(".wav"));
                if !wav {
                    return Err(at("PLAY fileURL must name a .wav file".into()));
                }
                check_repeat(play.repeat).map_err(at)?;
            }
            Verb::Pause(_) => {}
            Verb::Collect(collect) => {
                check_url("COLLECT eventUrl", &collect.event_url).map_err(at)?;
                if collect.max_digits == Some(0) {
                    return Err(at("COLLECT maxDigits must be at least 1".into()));
                }
            }
            Verb::Dial(dial) => {
                if dial.from.trim().is_empty() {
                    return Err(at("DIAL from must not be empty".into()));
                }
                if let Destination::Phone(p) = &dial.to {
                    p.parse::<E164>()
                        .map_err(|e| at(format!("DIAL to.phone {p:?} is {e}")))?;
                }
            }
        }
    }
    Ok(())
}

fn check_repeat(repeat: Option<i32>) -> Result<(), String> {
    match repeat {
        Some(r) if r < -1 => Err(format!("repeat must be -1 (forever) or more, not {r}")),
        _ => Ok(()),
    }
}

pub(super) fn check_url(what: &str, raw: &str) -> Result<(), String> {
    match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("{what} must be an absolute http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn say_text_is_limited_to_routees_maximum() {
        let plan: Dialplan = serde_json::from_value(json!({"verbs": [
            {"type": "SAY", "message": {"text": "x".repeat(MAX_SAY_CHARS + 1), "language": "en-US"}}
        ]}))
        .unwrap();
        assert!(check_dialplan(&plan).unwrap_err().contains("at most"));
    }
}
