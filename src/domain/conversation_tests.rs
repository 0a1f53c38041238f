//! One test per edge of the conversation state machine, on plain values.

use std::time::Duration;

use super::*;
use crate::domain::CallId;

const T0: Timestamp = Timestamp(1_000_000);
const HOLD: &str = r#"{"plan":"hold"}"#;
const MENU: &str = r#"{"plan":"fallback menu"}"#;
const ACCEPTED: &str = r#"{"plan":"accepted"}"#;
const REJECTED: &str = r#"{"plan":"rejected"}"#;

/// Renders plain JSON markers, and requests as the text of what would be sent.
struct Plans;

impl Answers for Plans {
    type Request = String;
    fn holding(&self) -> String {
        HOLD.into()
    }
    fn fallback(&self, decision: Option<Decision>) -> String {
        match decision {
            Some(Decision::Accepted) => ACCEPTED.into(),
            Some(Decision::Rejected) => REJECTED.into(),
            None => MENU.into(),
        }
    }
    fn late(&self, dialplan: &str) -> String {
        format!(r#"{{"late":{dialplan}}}"#)
    }
    fn request(&self, keys: &str, menu: &[MenuItem], expects_no_reply: bool) -> Option<String> {
        if keys.is_empty() {
            return expects_no_reply.then(|| "no-reply".to_owned());
        }
        Some(match menu.iter().find(|m| m.digit == keys) {
            Some(item) => format!("button {}", item.label),
            None => format!("text {keys}"),
        })
    }
}

fn keys() -> Vec<(String, Decision)> {
    vec![
        ("1".into(), Decision::Accepted),
        ("2".into(), Decision::Rejected),
    ]
}

fn rules(keys: &[(String, Decision)]) -> Rules<'_> {
    Rules {
        fallback_keys: keys,
        no_assistant: false,
        in_flight_for: Duration::from_secs(18),
    }
}

fn attempt() -> Attempt {
    Attempt::new(CallId::new(), 0, 1, T0, T0.plus_secs(3600))
}

fn answered(plan: &str, ended: bool) -> AnsweredTurn {
    AnsweredTurn {
        dialplan: plan.into(),
        menu: vec![MenuItem::new(
            "1",
            "Accept",
            &serde_json::json!({"type": "path-a"}),
        )],
        expects_no_reply: true,
        ended,
        ahead: None,
    }
}

fn press(a: &mut Attempt, turn: u32, k: &str) -> Next<String> {
    let fk = keys();
    a.on_keys(CalloutStatus::Calling, turn, k, T0, &rules(&fk), &Plans)
}

/// An attempt whose input `turn` is claimed (a Voiceflow turn in flight).
fn in_flight(turn: u32) -> Attempt {
    let mut a = attempt();
    a.turn = turn;
    assert_eq!(press(&mut a, turn, "3"), Next::Ask("text 3".into()));
    a
}

// ----- moved from attempt.rs -------------------------------------------------

#[test]
fn answers_are_cached_per_turn_and_bounded() {
    let mut a = attempt();
    for t in 0..5 {
        a.cache_answer(t, format!("{{\"plan\":{t}}}"));
    }
    assert_eq!(a.answers.len(), CACHED_ANSWERS);
    assert_eq!(a.cached_answer(4), Some("{\"plan\":4}"));
    assert_eq!(a.cached_answer(0), None);
    a.cache_answer(4, "{\"again\":true}".into());
    assert_eq!(a.cached_answer(4), Some("{\"again\":true}"));
    // Not JSON: never cached (answers are serialized dialplans).
    a.cache_answer(5, "not json".into());
    assert_eq!(a.cached_answer(5), None);
}

#[test]
fn cumulative_tones_yield_only_new_keys() {
    let new = |a: &Attempt, raw: &str| a.new_keys(&Tones::parse(raw)).to_string();
    let mut a = attempt();
    assert_eq!(new(&a, "1"), "1");
    assert_eq!(new(&a, "1#"), "1");
    a.conversation.consumed = "9".into();
    assert_eq!(new(&a, "91"), "1");
    assert_eq!(new(&a, "9#1#"), "1");
    // The end-of-call report repeats the call's keys: nothing new.
    assert_eq!(new(&a, "9"), "");
    // A different prefix: read as a fresh, per-submit POST.
    assert_eq!(new(&a, "12"), "12");
}

#[test]
fn tones_that_only_repeat_the_consumed_keys_are_an_echo_read_as_a_key_the_second_time() {
    let status = CalloutStatus::Calling;
    let tones = |raw: &str| Tones::parse(raw);
    let mut a = attempt();
    a.turn = 1;
    a.conversation.consumed = "1".into();
    // Cumulative: the end-of-call report; per submit: the same key again.
    assert_eq!(a.keys_of(status, 1, &tones("1"), T0), None);
    assert!(a.conversation.echoed);
    // Pressed again after "press your choice again": per-submit tones.
    assert_eq!(
        a.keys_of(status, 1, &tones("1"), T0).map(|k| k.to_string()),
        Some("1".into())
    );
    assert!(!a.conversation.echoed);
    // New keys are never an echo, and clear one.
    a.conversation.echoed = true;
    assert_eq!(
        a.keys_of(status, 1, &tones("12"), T0)
            .map(|k| k.to_string()),
        Some("2".into())
    );
    assert!(!a.conversation.echoed);
    // A delivery the closing rules answer (the callout is over) is no echo.
    assert_eq!(
        a.keys_of(CalloutStatus::Accepted, 1, &tones("1"), T0)
            .map(|k| k.to_string()),
        Some(String::new())
    );
}

#[test]
fn another_delivery_of_the_turn_in_flight_is_no_echo_and_waits_for_its_answer() {
    // Routee delivers turn 0's "3" twice, at once: the first claimed the turn
    // and consumed "3"; the second repeats exactly the consumed keys.
    let mut a = in_flight(0);
    assert_eq!(a.conversation.consumed, "3");
    let keys = a
        .keys_of(CalloutStatus::Calling, 0, &Tones::parse("3"), T0)
        .expect("a duplicate delivery is not an echo");
    assert!(!a.conversation.echoed);
    assert_eq!(press(&mut a, 0, &keys.to_string()), Next::Wait);
    // A later turn repeating the consumed keys still is one.
    assert_eq!(
        a.keys_of(CalloutStatus::Calling, 1, &Tones::parse("3"), T0),
        None
    );
}

#[test]
fn on_the_fallback_keypad_the_last_key_pressed_decides() {
    let keys = keys();
    let rules = rules(&keys);
    assert_eq!(rules.fallback_decision("1"), Some(Decision::Accepted));
    assert_eq!(rules.fallback_decision("11"), Some(Decision::Accepted));
    assert_eq!(rules.fallback_decision("21#"), Some(Decision::Accepted));
    assert_eq!(rules.fallback_decision("12"), Some(Decision::Rejected));
    assert_eq!(rules.fallback_decision("9"), None);
    assert_eq!(rules.fallback_decision(""), None);
}

// ----- states ----------------------------------------------------------------

#[test]
fn a_new_call_has_no_turn_yet_and_waits_for_keys_after_one() {
    let mut a = attempt();
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::NoTurnYet
    );
    a.turn = 1;
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::WaitingForKeys
    );
}

#[test]
fn a_callout_over_without_a_decision_here_is_closing() {
    let mut a = attempt();
    let state = |a: &Attempt, s| a.conversation_state(s, T0);
    assert_eq!(
        state(&a, CalloutStatus::Cancelled),
        State::Closing(Closing::Cancelled)
    );
    assert_eq!(
        state(&a, CalloutStatus::Accepted),
        State::Closing(Closing::Closed)
    );
    // This call decided: its goodbye is still a turn of its own.
    a.decision = Some(Decision::Accepted);
    assert_eq!(state(&a, CalloutStatus::Accepted), State::NoTurnYet);
}

#[test]
fn an_attempt_over_or_a_conversation_ended_is_ended() {
    let mut a = attempt();
    a.conversation.phase = Phase::Ended;
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::Ended
    );
    let mut a = attempt();
    a.outcome = Some(crate::domain::Outcome::NoInput);
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::Ended
    );
}

#[test]
fn an_expired_claim_no_longer_holds_the_turn() {
    let a = in_flight(2);
    let f = a.conversation.in_flight().unwrap();
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::TurnInFlight(f)
    );
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, f.until),
        State::WaitingForKeys
    );
}

// ----- the closing rules -------------------------------------------------------

#[test]
fn a_repeated_delivery_replays_its_answer() {
    let mut a = attempt();
    a.cache_answer(0, HOLD.into());
    a.turn = 1;
    assert_eq!(press(&mut a, 0, "1"), Next::Replay(HOLD.into()));
    assert!(a.conversation.consumed.is_empty(), "nothing consumed");
}

#[test]
fn a_turn_older_than_the_cache_replays_the_last_answer_or_closes() {
    let mut a = attempt();
    a.turn = 5;
    assert_eq!(press(&mut a, 1, "1"), Next::Close(Closing::Closed));
    a.cache_answer(4, MENU.into());
    assert_eq!(press(&mut a, 1, "1"), Next::Replay(MENU.into()));
}

#[test]
fn keys_after_the_callout_was_cancelled_close_with_its_goodbye() {
    let mut a = attempt();
    let before = a.clone();
    let fk = keys();
    let next = a.on_keys(CalloutStatus::Cancelled, 0, "1", T0, &rules(&fk), &Plans);
    assert_eq!(next, Next::Close(Closing::Cancelled));
    assert_eq!(a, before, "nothing recorded");
}

#[test]
fn keys_after_the_conversation_ended_close() {
    let mut a = attempt();
    a.conversation.phase = Phase::Ended;
    assert_eq!(press(&mut a, 0, "1"), Next::Close(Closing::Closed));
}

// ----- keys --------------------------------------------------------------------

#[test]
fn keys_claim_the_turn_and_ask_voiceflow() {
    let mut a = attempt();
    a.conversation.menu = answered(HOLD, false).menu;
    assert_eq!(press(&mut a, 0, "1"), Next::Ask("button Accept".into()));
    assert_eq!(
        a.conversation.in_flight(),
        Some(InFlightTurn {
            turn: 0,
            until: T0.plus_secs(18)
        })
    );
    assert_eq!(a.conversation.consumed, "1");
    // Read on the fallback keypad in case the answer never comes.
    assert_eq!(a.conversation.unanswered_decision, Some(Decision::Accepted));
    assert_eq!(a.turn, 0, "the turn is answered when Voiceflow answers");
}

#[test]
fn silence_is_sent_only_when_the_last_turn_asked_for_it() {
    let mut a = attempt();
    assert_eq!(press(&mut a, 0, ""), Next::Close(Closing::Closed));
    assert_eq!(a.conversation.in_flight(), None);
    a.conversation.expects_no_reply = true;
    a.conversation.unanswered_decision = Some(Decision::Accepted);
    assert_eq!(press(&mut a, 0, ""), Next::Ask("no-reply".into()));
    // Silence is no new choice: a press never answered still counts.
    assert_eq!(a.conversation.unanswered_decision, Some(Decision::Accepted));
}

#[test]
fn another_delivery_of_the_turn_in_flight_waits() {
    let mut a = in_flight(0);
    assert_eq!(press(&mut a, 0, "3"), Next::Wait);
    assert_eq!(a.turn, 0);
    assert!(a.answers.is_empty());
}

#[test]
fn keys_of_a_later_turn_while_one_is_in_flight_are_held() {
    let mut a = in_flight(0);
    assert_eq!(press(&mut a, 1, "4"), Next::Hold(HOLD.into()));
    assert_eq!(a.cached_answer(1), Some(HOLD));
    assert_eq!(a.turn, 2);
    assert!(
        a.conversation.in_flight().is_some(),
        "the first turn still runs"
    );
}

#[test]
fn keys_after_an_expired_claim_ask_again() {
    let mut a = in_flight(0);
    let until = a.conversation.in_flight().unwrap().until;
    let fk = keys();
    let next = a.on_keys(CalloutStatus::Calling, 0, "2", until, &rules(&fk), &Plans);
    assert_eq!(next, Next::Ask("text 2".into()));
    assert_eq!(
        a.conversation.in_flight().unwrap().until,
        until.plus_secs(18)
    );
}

#[test]
fn keys_on_a_late_answer_play_it_and_read_its_menu_next() {
    let mut a = in_flight(0);
    assert!(a.on_voiceflow_slow(0, HOLD.into(), T0).is_some());
    a.on_late_answer(Some(answered(MENU, false)));
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::LateAnswerPending
    );
    let next = press(&mut a, 1, "9");
    assert_eq!(next, Next::Play(format!(r#"{{"late":{MENU}}}"#)));
    assert_eq!(a.turn, 2);
    assert_eq!(a.conversation.menu, answered(MENU, false).menu);
    assert!(a.conversation.expects_no_reply);
    assert_eq!(a.conversation.phase, Phase::Listening);
}

#[test]
fn a_late_answer_that_ends_the_call_ends_the_conversation_when_played() {
    let mut a = in_flight(0);
    a.on_late_answer(Some(answered(MENU, true)));
    assert!(matches!(press(&mut a, 0, "9"), Next::Play(_)));
    assert!(a.conversation.ended());
}

#[test]
fn the_fallback_keypad_decides_on_its_keys() {
    for (k, decision, plan) in [
        ("1", Decision::Accepted, ACCEPTED),
        ("2", Decision::Rejected, REJECTED),
    ] {
        let mut a = attempt();
        a.conversation.phase = Phase::Fallback;
        let next = press(&mut a, 0, k);
        assert_eq!(
            next,
            Next::Decide {
                answer: plan.into(),
                decision: Some(decision)
            }
        );
        assert!(a.conversation.ended());
        assert_eq!(a.cached_answer(0), Some(plan));
    }
}

#[test]
fn another_key_on_the_fallback_keypad_offers_it_again_and_forgets_an_unanswered_choice() {
    let mut a = attempt();
    a.conversation.phase = Phase::Fallback;
    a.conversation.unanswered_decision = Some(Decision::Accepted);
    let next = press(&mut a, 0, "7");
    assert_eq!(
        next,
        Next::Decide {
            answer: MENU.into(),
            decision: None
        }
    );
    assert_eq!(a.conversation.phase, Phase::Fallback);
    assert_eq!(a.conversation.unanswered_decision, None);
    assert_eq!(a.turn, 1);
}

#[test]
fn nothing_pressed_on_the_fallback_keypad_closes() {
    let mut a = attempt();
    a.conversation.phase = Phase::Fallback;
    assert_eq!(press(&mut a, 0, ""), Next::Close(Closing::Closed));
}

#[test]
fn without_the_assistant_keys_are_read_on_the_fallback_keypad() {
    let mut a = attempt();
    let fk = keys();
    let no_assistant = Rules {
        no_assistant: true,
        ..rules(&fk)
    };
    let next = a.on_keys(CalloutStatus::Calling, 0, "1", T0, &no_assistant, &Plans);
    assert_eq!(
        next,
        Next::Decide {
            answer: ACCEPTED.into(),
            decision: Some(Decision::Accepted)
        }
    );
}

// ----- Voiceflow's answers -------------------------------------------------------

#[test]
fn an_answer_in_time_is_recorded_and_its_menu_read_next() {
    let mut a = in_flight(0);
    assert_eq!(a.on_answer(0, answered(MENU, false)), MENU);
    assert_eq!(a.cached_answer(0), Some(MENU));
    assert_eq!(a.turn, 1);
    assert_eq!(a.conversation.phase, Phase::Listening);
    assert_eq!(a.conversation.unanswered_decision, None);
    assert!(a.conversation.expects_no_reply);
}

#[test]
fn an_answer_that_ends_the_call_ends_the_conversation() {
    let mut a = in_flight(0);
    a.on_answer(0, answered(MENU, true));
    assert!(a.conversation.ended());
}

#[test]
fn an_answer_to_a_turn_already_answered_gives_that_answer_and_changes_nothing() {
    let mut a = in_flight(0);
    a.cache_answer(0, HOLD.into());
    let before = a.clone();
    assert_eq!(a.on_answer(0, answered(MENU, false)), HOLD);
    assert_eq!(a, before);
}

#[test]
fn an_answer_after_the_caller_moved_on_waits_for_the_next_key() {
    let mut a = in_flight(0);
    a.turn = 3; // later keys were answered with holding dialplans
    assert_eq!(a.on_answer(0, answered(MENU, false)), MENU);
    assert_eq!(
        a.conversation.phase,
        Phase::LatePending(answered(MENU, false))
    );
    assert_eq!(a.cached_answer(0), None);
}

#[test]
fn a_slow_turn_is_held_and_stays_in_flight() {
    let mut a = in_flight(0);
    let event = a.on_voiceflow_slow(0, HOLD.into(), T0).unwrap();
    assert!(matches!(event.kind, EventKind::ConversationFallback { .. }));
    assert_eq!(a.cached_answer(0), Some(HOLD));
    assert_eq!(a.turn, 1);
    assert!(a.conversation.in_flight().is_some());
    // Answered meanwhile by another delivery: nothing more.
    assert!(a.on_voiceflow_slow(0, MENU.into(), T0).is_none());
    assert_eq!(a.cached_answer(0), Some(HOLD));
}

#[test]
fn a_late_answer_waits_and_a_late_failure_leaves_the_fallback_keypad() {
    let mut a = in_flight(0);
    a.on_late_answer(Some(answered(MENU, false)));
    assert_eq!(a.conversation.unanswered_decision, None);
    assert!(matches!(a.conversation.phase, Phase::LatePending(_)));
    let mut a = attempt();
    assert!(matches!(press(&mut a, 0, "1"), Next::Ask(_)));
    a.on_late_answer(None);
    assert_eq!(a.conversation.phase, Phase::Fallback);
    // Still read on the fallback keypad should the call end now.
    assert_eq!(a.conversation.unanswered_decision, Some(Decision::Accepted));
}

#[test]
fn a_late_answer_to_an_ended_conversation_is_dropped() {
    let mut a = in_flight(0);
    a.conversation.phase = Phase::Ended;
    a.on_late_answer(Some(answered(MENU, false)));
    assert_eq!(a.conversation.phase, Phase::Ended);
}

#[test]
fn a_voiceflow_failure_answers_the_fallback_keypad_and_keeps_it() {
    let mut a = in_flight(0);
    let event = a
        .on_voiceflow_failed(0, MENU.into(), &"x".repeat(300), T0)
        .unwrap();
    let EventKind::ConversationFallback { reason } = event.kind else {
        panic!("{event:?}");
    };
    assert_eq!(reason.len(), 200, "the reason is shortened");
    assert_eq!(a.cached_answer(0), Some(MENU));
    assert_eq!(a.conversation.phase, Phase::Fallback);
    // Answered meanwhile: nothing more.
    assert!(a.on_voiceflow_failed(0, HOLD.into(), "again", T0).is_none());
}

// ----- templates -------------------------------------------------------------------

#[test]
fn a_template_answers_keys_and_counts_invalid_ones() {
    let mut a = attempt();
    a.conversation.invalid = 1;
    let next = a.on_template_keys(CalloutStatus::Calling, 0, "5", T0, |invalid| {
        assert_eq!(invalid, 1);
        KeypadAnswer {
            dialplan: MENU.into(),
            invalid: true,
            ends_call: false,
            decision: None,
        }
    });
    assert_eq!(
        next,
        Next::Decide {
            answer: MENU.into(),
            decision: None
        }
    );
    assert_eq!(a.conversation.invalid, 2);
    assert_eq!(a.conversation.consumed, "5");
    assert_eq!(a.turn, 1);
    let next = a.on_template_keys(CalloutStatus::Calling, 1, "1", T0, |_| KeypadAnswer {
        dialplan: ACCEPTED.into(),
        invalid: false,
        ends_call: true,
        decision: Some(Decision::Accepted),
    });
    assert!(matches!(
        next,
        Next::Decide {
            decision: Some(Decision::Accepted),
            ..
        }
    ));
    assert!(a.conversation.ended());
}

#[test]
fn a_template_call_ending_with_nothing_pressed_closes() {
    let mut a = attempt();
    let next = a.on_template_keys(CalloutStatus::Calling, 0, "", T0, |_| unreachable!());
    assert_eq!(next, Next::Close(Closing::Closed));
}

// ----- the stored shape --------------------------------------------------------------

#[test]
fn conversations_stored_before_the_state_machine_read_as_their_phase() {
    let read = |json: serde_json::Value| -> Conversation { serde_json::from_value(json).unwrap() };
    assert_eq!(read(serde_json::json!({})), Conversation::default());
    assert_eq!(
        read(serde_json::json!({"in_flight": {"turn": 2, "until": 5}})).phase,
        Phase::InFlight(InFlightTurn {
            turn: 2,
            until: Timestamp(5)
        })
    );
    assert_eq!(
        read(serde_json::json!({"fallback": true})).phase,
        Phase::Fallback
    );
    assert!(matches!(
        read(serde_json::json!({"pending": {"dialplan": "{}"}})).phase,
        Phase::LatePending(_)
    ));
    // The fallback keypad's decision wrote both flags: ended wins.
    assert_eq!(
        read(serde_json::json!({"fallback": true, "ended": true})).phase,
        Phase::Ended
    );
}

#[test]
fn conversations_are_written_in_the_stored_shape() {
    let mut c = Conversation {
        consumed: "12".into(),
        invalid: 1,
        unanswered_decision: Some(Decision::Accepted),
        ..Conversation::default()
    };
    let write = |c: &Conversation| serde_json::to_value(c).unwrap();
    assert_eq!(
        write(&c),
        serde_json::json!({"expects_no_reply": false, "fallback": false, "invalid": 1,
            "consumed": "12", "unanswered_decision": "accepted", "ended": false})
    );
    c.phase = Phase::InFlight(InFlightTurn {
        turn: 1,
        until: Timestamp(9),
    });
    assert_eq!(
        write(&c)["in_flight"],
        serde_json::json!({"turn": 1, "until": 9})
    );
    for phase in [
        Phase::Fallback,
        Phase::Ended,
        Phase::LatePending(answered("{}", true)),
    ] {
        c.phase = phase;
        let back: Conversation = serde_json::from_value(write(&c)).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn a_voiceflow_failure_after_the_conversation_ended_keeps_it_ended() {
    let mut a = in_flight(0);
    a.conversation.phase = Phase::Ended;
    assert!(a.on_voiceflow_failed(0, MENU.into(), "down", T0).is_some());
    assert_eq!(a.conversation.phase, Phase::Ended);
}

// ----- the no-reply turn run ahead (issue 13 item 8) --------------------------

const SAVED: &str = r#"{"stack":[{"diagramID":"d","nodeID":"menu"}],"storage":{},"variables":{}}"#;

fn saved() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(SAVED.into()).unwrap()
}

/// The no-reply turn's response: a menu on key 2 only, another no-reply.
fn heard_menu_on_2() -> HeardAfterSilence {
    HeardAfterSilence {
        menu: vec![MenuItem::new(
            "2",
            "Call me later",
            &serde_json::json!({"type": "path-later"}),
        )],
        expects_no_reply: true,
        ended: false,
        decision: None,
    }
}

/// An attempt listening after turn 0 was answered with the first menu (key 1)
/// and a no-reply turn run ahead.
fn listening_with_ahead(heard: Option<HeardAfterSilence>) -> Attempt {
    let mut a = attempt();
    a.turn = 1;
    let mut first = answered(r#"{"plan":"first"}"#, false);
    first.ahead = Some(NoReplyAhead {
        saved_state: saved(),
        heard,
    });
    a.listen_to(first);
    a
}

fn settle(a: &mut Attempt, turn: u32, k: &str) -> Option<Settled> {
    a.settle_no_reply_ahead(CalloutStatus::Calling, turn, k, T0)
}

#[test]
fn an_answered_turn_brings_its_no_reply_turn_run_ahead_to_the_conversation() {
    let a = listening_with_ahead(Some(heard_menu_on_2()));
    let ahead = a.conversation.ahead.as_ref().expect("kept with the answer");
    assert_eq!(ahead.saved_state.get(), SAVED);
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::WaitingForKeys
    );
}

#[test]
fn silence_settles_as_heard_and_the_no_reply_turns_menu_reads_what_follows() {
    let mut a = listening_with_ahead(Some(heard_menu_on_2()));
    assert_eq!(settle(&mut a, 1, ""), Some(Settled::Heard(None)));
    assert!(a.conversation.ahead.is_none());
    assert_eq!(a.conversation.menu, heard_menu_on_2().menu);
    // The end-of-call silence goes on to Voiceflow as the no-reply turn's no-reply.
    assert_eq!(press(&mut a, 1, ""), Next::Ask("no-reply".into()));
}

#[test]
fn a_key_on_the_first_menu_wins_and_puts_the_saved_state_back() {
    let mut a = listening_with_ahead(Some(heard_menu_on_2()));
    assert_eq!(settle(&mut a, 1, "1"), Some(Settled::Restore(saved())));
    assert!(a.conversation.ahead.is_none());
    // Read on the first menu, as if the no-reply turn had never run.
    assert_eq!(press(&mut a, 1, "1"), Next::Ask("button Accept".into()));
}

#[test]
fn a_key_on_no_menu_at_all_wins_too() {
    let mut a = listening_with_ahead(Some(heard_menu_on_2()));
    assert_eq!(settle(&mut a, 1, "7"), Some(Settled::Restore(saved())));
    assert_eq!(press(&mut a, 1, "7"), Next::Ask("text 7".into()));
}

#[test]
fn a_key_only_the_no_reply_turns_menu_takes_was_pressed_after_hearing_it() {
    let mut a = listening_with_ahead(Some(heard_menu_on_2()));
    assert_eq!(settle(&mut a, 1, "2"), Some(Settled::Heard(None)));
    assert_eq!(
        press(&mut a, 1, "2"),
        Next::Ask("button Call me later".into())
    );
}

#[test]
fn a_key_both_menus_take_answers_the_first_question() {
    let mut heard = heard_menu_on_2();
    heard.menu.push(MenuItem::new(
        "1",
        "Accept",
        &serde_json::json!({"type": "path-a"}),
    ));
    let mut a = listening_with_ahead(Some(heard));
    assert_eq!(settle(&mut a, 1, "1"), Some(Settled::Restore(saved())));
}

#[test]
fn a_no_reply_turn_that_never_came_back_is_undone_whatever_the_input() {
    for keys in ["", "1", "2"] {
        let mut a = listening_with_ahead(None);
        assert_eq!(
            settle(&mut a, 1, keys),
            Some(Settled::Restore(saved())),
            "{keys:?}"
        );
        assert!(a.conversation.ahead.is_none());
    }
}

#[test]
fn silence_through_a_no_reply_turn_that_ended_ends_the_conversation_with_its_decision() {
    let heard = HeardAfterSilence {
        menu: Vec::new(),
        expects_no_reply: false,
        ended: true,
        decision: Some(Decision::Rejected),
    };
    let mut a = listening_with_ahead(Some(heard));
    assert_eq!(
        settle(&mut a, 1, ""),
        Some(Settled::Heard(Some(Decision::Rejected)))
    );
    assert_eq!(
        a.conversation_state(CalloutStatus::Calling, T0),
        State::Ended
    );
}

#[test]
fn a_key_during_the_wait_before_a_goodbye_still_wins() {
    let heard = HeardAfterSilence {
        ended: true,
        ..HeardAfterSilence::default()
    };
    let mut a = listening_with_ahead(Some(heard));
    assert_eq!(settle(&mut a, 1, "1"), Some(Settled::Restore(saved())));
    assert_eq!(press(&mut a, 1, "1"), Next::Ask("button Accept".into()));
}

#[test]
fn nothing_is_settled_without_a_turn_run_ahead() {
    let mut a = attempt();
    a.turn = 1;
    a.listen_to(answered(r#"{"plan":"first"}"#, false));
    assert_eq!(settle(&mut a, 1, "1"), None);
}

#[test]
fn a_repeated_delivery_or_a_call_that_is_over_settles_nothing() {
    let mut a = listening_with_ahead(Some(heard_menu_on_2()));
    a.cache_answer(1, r#"{"plan":"answered"}"#.into());
    // Input 1 was answered already: a repeat of it keeps the ahead for input 2's keys.
    assert_eq!(settle(&mut a, 1, "1"), None);
    assert!(a.conversation.ahead.is_some());
    let mut a = listening_with_ahead(Some(heard_menu_on_2()));
    let over = a.settle_no_reply_ahead(CalloutStatus::Cancelled, 1, "1", T0);
    assert_eq!(over, None);
}

#[test]
fn a_turn_in_flight_settles_nothing() {
    let mut a = listening_with_ahead(Some(heard_menu_on_2()));
    a.conversation.phase = Phase::InFlight(InFlightTurn {
        turn: 1,
        until: T0.plus_secs(10),
    });
    assert_eq!(settle(&mut a, 1, "1"), None);
}

#[test]
fn a_no_reply_turn_run_ahead_is_stored_and_read_back() {
    let a = listening_with_ahead(Some(heard_menu_on_2()));
    let json = serde_json::to_value(&a.conversation).unwrap();
    assert_eq!(
        json["no_reply_ahead"]["saved_state"]["stack"][0]["nodeID"],
        "menu"
    );
    let back: Conversation = serde_json::from_value(json).unwrap();
    assert_eq!(back, a.conversation);
    // Written before this field existed: no ahead.
    let old: Conversation = serde_json::from_value(serde_json::json!({"menu": []})).unwrap();
    assert!(old.ahead.is_none());
}
