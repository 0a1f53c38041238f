//! What the callee did (keys or silence) to the next Dialog Manager request.
//!
//! A phone has no speech recognition here (Routee has no such verb), so keys are
//! the only input. In order of precedence, pressed digits go back as:
//!
//! 1. the request of the keypad menu item on that key, **verbatim** (a button's
//!    own `path-…` request, a legacy choice's intent, a `DTMF n` path);
//! 2. an `intent` request, when the assistant maps those digits to an intent
//!    (its `keypad`, e.g. `{"1": "accept"}`), with the digits as the query;
//! 3. a `text` request holding the digits, which is Voiceflow's own model for
//!    DTMF: its NLU (or a capture step) sees "1234" like typed text.
//!
//! Silence goes back as `no-reply` only when the turn asked for it with a
//! `no-reply` trace. Without one, a `no-reply` request dead-ends the
//! conversation (reference §6), so there is nothing to send.

use std::collections::BTreeMap;

use crate::domain::{Keys, MenuItem};
use crate::voiceflow::Request;

/// What the callee did in answer to a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerInput {
    /// Keys pressed, e.g. `"1"` or `"1234"` (a trailing `#` is ignored).
    Digits(String),
    /// Nothing pressed before the input ended.
    Silence,
}

/// The request that answers a turn with `menu` (from
/// [`RenderedTurn::menu`](super::RenderedTurn::menu)), given the assistant's
/// `keypad` map (digits to intent name) and whether the turn sent a `no-reply`
/// trace. `None`: there is nothing to tell Voiceflow.
///
/// Empty digits (a `#` alone, or the end-of-call report with no tones) count as
/// silence. Digits are read as [`Keys`]: on a menu whose keys are single keys,
/// the last key pressed picks the item (`11` is `1`, a callee who pressed in a
/// silence and again); other digits go on whole to the keypad map, then (when
/// the turn's menu came from a `DTMF` custom action, Voiceflow's telephony
/// convention) as the event `{"type": "DTMF <keys>", "data": "<keys>"}` that
/// takes the action's default path with the keys in `last_event.data` (a PIN),
/// else as text.
pub fn request_for_input(
    input: &CallerInput,
    menu: &[MenuItem],
    keypad: &BTreeMap<String, String>,
    expects_no_reply: bool,
) -> Option<Request> {
    let keys = match input {
        CallerInput::Digits(d) => Keys::parse(d),
        CallerInput::Silence => Keys::default(),
    };
    if keys.is_empty() {
        return expects_no_reply.then_some(Request::NoReply);
    }
    let choice = keys.choice(menu.iter().map(|m| m.digit.as_str()));
    if let Some(item) = menu.iter().find(|m| m.digit == choice) {
        return Some(Request::Raw(item.request()));
    }
    let digits = keys.as_str();
    if let Some(intent) = keypad.get(digits) {
        return Some(Request::Intent {
            name: intent.clone(),
            query: Some(digits.to_owned()),
            entities: Vec::new(),
            confidence: None,
        });
    }
    if menu.iter().any(MenuItem::is_dtmf_event) {
        return Some(Request::Raw(dtmf_event(digits)));
    }
    Some(Request::Text(digits.to_owned()))
}

/// Keys as Voiceflow's telephony reports them to a `DTMF` custom action.
pub fn dtmf_event(keys: &str) -> serde_json::Value {
    serde_json::json!({ "type": format!("DTMF {keys}"), "data": keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn menu() -> Vec<MenuItem> {
        vec![MenuItem::new(
            "1",
            "Accept",
            &json!({"type": "path-abc", "payload": {"label": "Accept"}}),
        )]
    }

    fn keypad() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("1".to_owned(), "accept".to_owned()),
            ("2".to_owned(), "reject".to_owned()),
        ])
    }

    fn digits(d: &str) -> CallerInput {
        CallerInput::Digits(d.into())
    }

    #[test]
    fn a_menu_key_wins_over_the_keypad_map() {
        assert_eq!(
            request_for_input(&digits("1"), &menu(), &keypad(), false),
            Some(Request::Raw(
                json!({"type": "path-abc", "payload": {"label": "Accept"}})
            ))
        );
    }

    #[test]
    fn keypad_digits_become_intents_with_the_digits_as_query() {
        assert_eq!(
            request_for_input(&digits("2#"), &menu(), &keypad(), false),
            Some(Request::Intent {
                name: "reject".into(),
                query: Some("2".into()),
                entities: vec![],
                confidence: None
            })
        );
    }

    #[test]
    fn keys_off_a_dtmf_actions_paths_go_as_voiceflows_telephony_event() {
        let dtmf_menu = vec![MenuItem::new(
            "1",
            "DTMF 1",
            &json!({"type": "DTMF 1", "data": "1"}),
        )];
        let no_keypad = BTreeMap::new();
        assert_eq!(
            request_for_input(&digits("1"), &dtmf_menu, &no_keypad, false),
            Some(Request::Raw(json!({"type": "DTMF 1", "data": "1"})))
        );
        // A PIN: the default path, with the keys in last_event.data.
        assert_eq!(
            request_for_input(&digits("4712#"), &dtmf_menu, &no_keypad, false),
            Some(Request::Raw(json!({"type": "DTMF 4712", "data": "4712"})))
        );
        // Without a DTMF action, other keys stay text.
        assert_eq!(
            request_for_input(&digits("4712"), &menu(), &no_keypad, false),
            Some(Request::Text("4712".into()))
        );
    }

    #[test]
    fn on_a_single_key_menu_the_last_key_picks_the_item() {
        let expected = Some(Request::Raw(
            json!({"type": "path-abc", "payload": {"label": "Accept"}}),
        ));
        assert_eq!(
            request_for_input(&digits("11"), &menu(), &keypad(), false),
            expected
        );
        assert_eq!(
            request_for_input(&digits("91#"), &menu(), &keypad(), false),
            expected
        );
    }

    #[test]
    fn other_digits_go_back_as_text() {
        assert_eq!(
            request_for_input(&digits("1234"), &menu(), &keypad(), true),
            Some(Request::Text("1234".into()))
        );
    }

    #[test]
    fn silence_is_a_no_reply_only_when_one_was_asked_for() {
        assert_eq!(
            request_for_input(&CallerInput::Silence, &menu(), &keypad(), true),
            Some(Request::NoReply)
        );
        assert_eq!(
            request_for_input(&CallerInput::Silence, &menu(), &keypad(), false),
            None
        );
        assert_eq!(
            request_for_input(&digits("#"), &menu(), &keypad(), false),
            None
        );
    }
}
