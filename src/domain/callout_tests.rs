//! One test per edge of the callout and attempt state machines.

use super::*;
use crate::domain::attempt::CallState;

const T0: Timestamp = Timestamp(1_000_000);

fn timing() -> Timing {
    Timing::default()
}

fn policy() -> Policy {
    Policy {
        retry_delay_s: 60,
        ..Policy::default()
    }
}

fn callout(contacts: usize) -> Callout {
    callout_with(contacts, policy())
}

fn callout_with(contacts: usize, policy: Policy) -> Callout {
    let contacts = (0..contacts)
        .map(|i| Contact {
            name: format!("Person {i}"),
            phone: format!("+3069000000{:02}", i + 1).parse().unwrap(),
            language: None,
        })
        .collect();
    let input = NewCallout {
        name: "Ticket 4711".into(),
        script: Script::Template {
            name: "ticket-escalation".into(),
        },
        variables: Map::new(),
        contacts,
        policy,
        notify_url: Some("https://dispatch.example.com/hook".into()),
    };
    Callout::create(CalloutId::new(), input, T0).0
}

fn at(secs: u64) -> Timestamp {
    T0.plus_secs(secs)
}

/// Fires the timer at `now` and expects a dial to start; returns its call id.
fn start_dial(c: &mut Callout, now: Timestamp) -> CallId {
    let id = CallId::new();
    let ch = c.on_timer(now, &timing(), id);
    assert_eq!(
        ch.effects,
        vec![Effect::PlaceCall {
            call_id: id,
            slot_reserved: false
        }],
        "no dial at {now:?}: {c:#?}"
    );
    id
}

fn place(c: &mut Callout, now: Timestamp) -> CallId {
    let id = start_dial(c, now);
    c.on_placed(id, format!("trk-{id}"), now, &timing());
    id
}

fn status(c: &mut Callout, id: CallId, s: &str, now: Timestamp) -> Consequences {
    c.on_status(
        id,
        &CallStatus::parse(s),
        Some("msg-1"),
        None,
        now,
        &timing(),
    )
}

fn kinds(ch: &Consequences) -> Vec<&'static str> {
    ch.events.iter().map(Event::kind_name).collect()
}

fn outcome(c: &Callout, id: CallId) -> Option<Outcome> {
    c.attempt(id).unwrap().outcome
}

#[test]
fn a_new_callout_dials_its_first_contact_at_once() {
    let mut c = callout(2);
    assert_eq!(c.next_due(), Some(T0));
    let id = start_dial(&mut c, T0);
    let a = c.attempt(id).unwrap();
    assert_eq!((a.contact, a.number), (0, 1));
    assert!(matches!(
        a.state,
        CallState::Dialing(Dialing::InFlight { .. })
    ));
    assert_eq!(c.step, Step::InCall);
}

#[test]
fn nothing_is_dialled_before_it_is_due() {
    let mut c = callout(1);
    c.step = Step::Dial {
        contact: 0,
        at: at(10),
    };
    assert!(c.on_timer(at(9), &timing(), CallId::new()).is_empty());
    assert!(c.attempts.is_empty());
}

#[test]
fn a_created_call_is_queued_with_its_tracking_id() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    let ch = c.on_placed(id, "trk".into(), at(1), &timing());
    assert_eq!(kinds(&ch), ["call_placed"]);
    let a = c.attempt(id).unwrap();
    assert_eq!(a.state, CallState::Queued);
    assert_eq!(a.tracking_id.as_deref(), Some("trk"));
    assert_eq!(c.live_call_deadline(), Some(a.deadline));
}

#[test]
fn statuses_only_move_forward_and_a_late_ringing_never_overwrites_completed() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    assert_eq!(
        kinds(&status(&mut c, id, "Ringing", at(1))),
        ["call_status"]
    );
    assert!(
        status(&mut c, id, "Initiated", at(2)).is_empty(),
        "older status applied"
    );
    status(&mut c, id, "InProgress", at(3));
    status(&mut c, id, "Completed", at(30));
    assert!(status(&mut c, id, "Ringing", at(31)).is_empty());
    assert_eq!(c.attempt(id).unwrap().state, CallState::Completed);
}

#[test]
fn a_transfer_legs_statuses_go_on_the_timeline_and_never_change_the_callees_attempt() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(3));
    let leg = |c: &mut Callout, s: &str, t| {
        c.on_status(
            id,
            &CallStatus::parse(s),
            Some("msg-transfer"),
            None,
            at(t),
            &timing(),
        )
    };
    let transfer = |ch: &Consequences| -> Vec<String> {
        ch.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Transfer { status } => Some(status.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(transfer(&leg(&mut c, "Ringing", 10)), ["ringing"]);
    assert_eq!(transfer(&leg(&mut c, "InProgress", 12)), ["answered"]);
    // A duplicate is on the timeline once.
    assert!(leg(&mut c, "InProgress", 13).is_empty());
    // The transfer's own busy or completion never ends the callee's attempt.
    assert_eq!(transfer(&leg(&mut c, "Busy", 14)), ["busy"]);
    let a = c.attempt(id).unwrap();
    assert_eq!(a.state, CallState::InProgress);
    assert_eq!(a.outcome, None);
    assert_eq!(a.message_id.as_deref(), Some("msg-1"));
    assert_eq!(a.transfer.as_ref().map(|t| t.status.as_str()), Some("busy"));
    // The callee's own leg still ends the attempt.
    status(&mut c, id, "Completed", at(40));
    assert_eq!(c.attempt(id).unwrap().state, CallState::Completed);
}

#[test]
fn a_repeated_final_status_changes_nothing() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    status(&mut c, id, "Busy", at(2));
    let before = c.clone();
    assert!(status(&mut c, id, "Busy", at(3)).is_empty());
    assert!(status(&mut c, id, "NoAnswer", at(3)).is_empty());
    assert_eq!(c, before);
}

#[test]
fn busy_schedules_a_retry_after_the_policy_delay() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    let ch = status(&mut c, id, "Busy", at(5));
    assert_eq!(outcome(&c, id), Some(Outcome::Busy));
    assert_eq!(
        kinds(&ch),
        ["call_status", "attempt_ended", "call_scheduled"]
    );
    assert_eq!(
        c.step,
        Step::Dial {
            contact: 0,
            at: at(65)
        }
    );
    assert_eq!(c.next_due(), Some(at(65)));
    assert!(
        c.on_timer(at(64), &timing(), CallId::new())
            .effects
            .is_empty()
    );
    let id2 = start_dial(&mut c, at(65));
    assert_eq!(c.attempt(id2).unwrap().number, 2);
}

#[test]
fn a_contact_who_never_answers_is_called_three_times_then_the_next_one() {
    let mut c = callout(2);
    let mut now = T0;
    for n in 1..=3 {
        let id = place(&mut c, now);
        assert_eq!(c.attempt(id).unwrap().number, n);
        now = now.plus_secs(30);
        status(&mut c, id, "NoAnswer", now);
        assert_eq!(outcome(&c, id), Some(Outcome::NoAnswer));
        if n < 3 {
            now = now.plus_secs(60);
        }
    }
    assert_eq!(
        c.step,
        Step::Dial {
            contact: 1,
            at: now
        }
    );
    let id = place(&mut c, now);
    assert_eq!(
        (
            c.attempt(id).unwrap().contact,
            c.attempt(id).unwrap().number
        ),
        (1, 1)
    );
}

#[test]
fn an_answered_call_without_a_decision_is_no_input_after_the_grace_period() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    status(&mut c, id, "Completed", at(40));
    let a = c.attempt(id).unwrap();
    assert_eq!(
        a.outcome, None,
        "decided before the trailing key press could arrive"
    );
    let grace = a.grace_until.unwrap();
    assert_eq!(c.next_due(), Some(grace));
    let ch = c.on_timer(grace, &timing(), CallId::new());
    assert_eq!(outcome(&c, id), Some(Outcome::NoInput));
    assert!(kinds(&ch).contains(&"attempt_ended"));
}

#[test]
fn an_accept_voiceflow_never_answered_decides_when_the_call_ends_without_another_choice() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    // The caller pressed the accept key; the Voiceflow turn failed or was lost.
    c.attempt_mut(id).unwrap().conversation.unanswered_decision = Some(Decision::Accepted);
    status(&mut c, id, "Completed", at(40));
    let grace = c.attempt(id).unwrap().grace_until.unwrap();
    let ch = c.on_timer(grace, &timing(), CallId::new());
    assert_eq!(outcome(&c, id), Some(Outcome::Accepted));
    assert_eq!(c.status, CalloutStatus::Accepted);
    assert_eq!(c.accepted_by, Some(0));
    assert!(
        kinds(&ch).contains(&"conversation_fallback"),
        "{:?}",
        kinds(&ch)
    );
    assert!(kinds(&ch).contains(&"decided"));
}

#[test]
fn an_unanswered_key_press_decides_nothing_once_the_callout_is_cancelled() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    c.attempt_mut(id).unwrap().conversation.unanswered_decision = Some(Decision::Accepted);
    c.cancel(at(3), &timing()).unwrap();
    status(&mut c, id, "Completed", at(4));
    let grace = c.attempt(id).unwrap().grace_until.unwrap();
    c.on_timer(grace, &timing(), CallId::new());
    assert_eq!(outcome(&c, id), Some(Outcome::Cancelled));
    assert_eq!(c.status, CalloutStatus::Cancelled);
}

#[test]
fn a_key_press_delivered_just_after_the_call_ended_still_decides() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    status(&mut c, id, "Completed", at(40));
    let ch = c.on_decision(id, Decision::Accepted, at(41), &timing());
    assert_eq!(c.status, CalloutStatus::Accepted);
    assert_eq!(outcome(&c, id), Some(Outcome::Accepted));
    assert!(kinds(&ch).contains(&"callout_accepted"));
}

#[test]
fn accepting_finishes_the_callout_at_once_and_nothing_more_is_dialled() {
    let mut c = callout(3);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    let ch = c.on_decision(id, Decision::Accepted, at(10), &timing());
    assert_eq!(kinds(&ch), ["decided", "callout_accepted"]);
    assert_eq!(ch.effects, vec![Effect::Notify]);
    assert_eq!(
        (c.status, c.accepted_by, c.step),
        (CalloutStatus::Accepted, Some(0), Step::Done)
    );
    assert_eq!(outcome(&c, id), None, "the goodbye is still playing");
    status(&mut c, id, "Completed", at(15));
    assert_eq!(outcome(&c, id), Some(Outcome::Accepted));
    assert_eq!(c.step, Step::Done);
    assert!(
        c.on_timer(at(1000), &timing(), CallId::new())
            .effects
            .iter()
            .all(|e| !matches!(e, Effect::PlaceCall { .. }))
    );
}

#[test]
fn rejecting_moves_to_the_next_contact_as_soon_as_the_call_ends() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    c.on_decision(id, Decision::Rejected, at(10), &timing());
    assert_eq!(c.status, CalloutStatus::Calling);
    assert_eq!(c.step, Step::InCall);
    assert!(c.attempt(id).unwrap().deadline <= at(10).plus(timing().decided_call_deadline));
    let ch = status(&mut c, id, "Completed", at(14));
    assert_eq!(outcome(&c, id), Some(Outcome::Rejected));
    assert!(kinds(&ch).contains(&"contact_done"));
    assert_eq!(
        c.step,
        Step::Dial {
            contact: 1,
            at: at(14)
        }
    );
}

#[test]
fn the_first_decision_wins_and_late_decisions_are_ignored() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    c.on_decision(id, Decision::Rejected, at(3), &timing());
    assert!(
        c.on_decision(id, Decision::Accepted, at(4), &timing())
            .is_empty()
    );
    status(&mut c, id, "Completed", at(5));
    assert!(
        c.on_decision(id, Decision::Accepted, at(6), &timing())
            .is_empty()
    );
    assert_eq!(c.status, CalloutStatus::Calling);
}

#[test]
fn the_list_is_exhausted_when_every_contact_used_every_attempt() {
    let mut c = callout(1);
    c.policy.attempts_per_contact = 2;
    let id = place(&mut c, T0);
    status(&mut c, id, "NoAnswer", at(1));
    let id = place(&mut c, at(61));
    let ch = status(&mut c, id, "Busy", at(62));
    assert!(kinds(&ch).contains(&"callout_exhausted"));
    assert_eq!((c.status, c.step), (CalloutStatus::Exhausted, Step::Done));
    assert_eq!(ch.effects.last(), Some(&Effect::Notify));
}

#[test]
fn the_callout_fails_with_a_reason_when_every_call_failed() {
    let mut c = callout(2);
    let id = start_dial(&mut c, T0);
    c.on_place_failed(
        id,
        PlaceFailure::Permanent {
            reason: "invalid number".into(),
        },
        at(1),
        &timing(),
    );
    let id = start_dial(&mut c, at(1));
    let ch = c.on_place_failed(
        id,
        PlaceFailure::Permanent {
            reason: "account suspended".into(),
        },
        at(2),
        &timing(),
    );
    assert!(kinds(&ch).contains(&"callout_failed"));
    assert_eq!(c.status, CalloutStatus::Failed);
    assert!(c.failure.as_deref().unwrap().contains("account suspended"));
}

#[test]
fn a_number_refused_for_good_skips_the_rest_of_that_contacts_attempts() {
    let mut c = callout(2);
    let id = start_dial(&mut c, T0);
    c.on_place_failed(
        id,
        PlaceFailure::Permanent {
            reason: "400: invalid to".into(),
        },
        at(1),
        &timing(),
    );
    assert_eq!(outcome(&c, id), Some(Outcome::Failed));
    assert_eq!(
        c.step,
        Step::Dial {
            contact: 1,
            at: at(1)
        }
    );
}

fn refused(c: &mut Callout, id: CallId, now: Timestamp) -> Consequences {
    c.on_place_failed(
        id,
        PlaceFailure::Retryable {
            reason: "503".into(),
            retry_after: None,
        },
        now,
        &timing(),
    )
}

#[test]
fn a_carrier_failure_never_consumes_an_attempt_the_same_attempt_is_placed_again() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    let mut now = T0;
    // Far more failures than max_placement_tries: the carrier is down, not the callee.
    for try_no in 1..=10 {
        let ch = refused(&mut c, id, now);
        let expected: &[&str] = if try_no == 1 {
            &["carrier_unavailable", "placement_retry"]
        } else {
            &["placement_retry"]
        };
        assert_eq!(kinds(&ch), expected, "try {try_no}");
        let due = c.next_due().expect("a retry is scheduled");
        assert!(due > now && due <= now.plus_secs(40), "try {try_no}");
        let ch = c.on_timer(due, &timing(), CallId::new());
        assert_eq!(
            ch.effects,
            vec![Effect::PlaceCall {
                call_id: id,
                slot_reserved: false
            }],
            "the same attempt, try {try_no}"
        );
        now = due;
    }
    // The carrier is back.
    c.on_placed(id, "trk".into(), now, &timing());
    assert_eq!(c.attempts.len(), 1);
    let a = c.attempt(id).unwrap();
    assert_eq!(
        (a.number, a.outcome, &a.state),
        (1, None, &CallState::Queued)
    );
    assert_eq!(c.status, CalloutStatus::Calling);
}

#[test]
fn after_the_outage_limit_the_callout_fails_as_carrier_unavailable() {
    let mut c = callout(2);
    let id = start_dial(&mut c, T0);
    let limit = timing().carrier_outage_limit;
    let retry = |c: &mut Callout, now: Timestamp| {
        let ch = refused(c, id, now);
        let due = c.next_due().unwrap();
        c.on_timer(due, &timing(), CallId::new());
        ch
    };
    retry(&mut c, T0);
    retry(&mut c, T0.plus(limit - Duration::from_secs(1)));
    assert_eq!(c.status, CalloutStatus::Calling, "not yet");
    let ch = refused(&mut c, id, T0.plus(limit));
    assert_eq!(
        kinds(&ch),
        ["attempt_ended", "callout_failed"],
        "nothing more is dialled"
    );
    assert_eq!((c.status, c.step), (CalloutStatus::Failed, Step::Done));
    assert!(
        c.failure
            .as_deref()
            .unwrap()
            .starts_with("carrier_unavailable"),
        "{:?}",
        c.failure
    );
    assert_eq!(c.attempts.len(), 1);
    assert_eq!(ch.effects.last(), Some(&Effect::Notify));
}

#[test]
fn a_failure_that_is_not_the_carriers_backs_off_and_gives_up_after_the_last_try() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    let launch_failed = || PlaceFailure::Script {
        reason: "Voiceflow launch failed".into(),
        retryable: true,
    };
    let mut now = T0;
    for try_no in 1..timing().max_placement_tries {
        let ch = c.on_place_failed(id, launch_failed(), now, &timing());
        assert_eq!(kinds(&ch), ["placement_retry"], "try {try_no}");
        let due = c.next_due().expect("a retry is scheduled");
        c.on_timer(due, &timing(), CallId::new());
        now = due;
    }
    c.on_place_failed(id, launch_failed(), now, &timing());
    let a = c.attempt(id).unwrap();
    assert_eq!(
        (a.outcome, &a.state),
        (Some(Outcome::Failed), &CallState::NotPlaced)
    );
    assert!(a.reason.as_deref().unwrap().contains("gave up"));
}

#[test]
fn a_carriers_retry_after_is_honoured() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    let retry_after = Some(Duration::from_secs(45));
    c.on_place_failed(
        id,
        PlaceFailure::Retryable {
            reason: "429".into(),
            retry_after,
        },
        T0,
        &timing(),
    );
    assert!(c.next_due().unwrap() >= at(45));
}

#[test]
fn an_unconfirmed_call_is_adopted_when_a_callback_arrives() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    let ch = c.on_place_failed(
        id,
        PlaceFailure::Unconfirmed {
            reason: "timeout".into(),
        },
        at(10),
        &timing(),
    );
    assert_eq!(kinds(&ch), ["placement_unconfirmed"]);
    let ch = c.on_status(
        id,
        &CallStatus::Ringing,
        Some("m"),
        Some("trk"),
        at(12),
        &timing(),
    );
    assert_eq!(kinds(&ch), ["call_placed", "call_status"]);
    let a = c.attempt(id).unwrap();
    assert_eq!(
        (a.state.clone(), a.tracking_id.as_deref()),
        (CallState::Ringing, Some("trk"))
    );
}

#[test]
fn an_unconfirmed_call_without_callbacks_is_placed_again_once_on_the_same_attempt() {
    let mut c = callout(2);
    let id = start_dial(&mut c, T0);
    c.on_place_failed(
        id,
        PlaceFailure::Unconfirmed {
            reason: "HTTP 500".into(),
        },
        at(1),
        &timing(),
    );
    let due = c.next_due().unwrap();
    assert_eq!(due, at(1).plus(timing().unconfirmed_window));
    let ch = c.on_timer(due, &timing(), CallId::new());
    assert_eq!(kinds(&ch), ["carrier_unavailable", "placement_retry"]);
    assert!(ch.effects.is_empty(), "placed on the next tick, once");
    let ch = c.on_timer(due, &timing(), CallId::new());
    assert_eq!(
        ch.effects,
        vec![Effect::PlaceCall {
            call_id: id,
            slot_reserved: false
        }]
    );
    assert!(c.on_timer(due, &timing(), CallId::new()).effects.is_empty());
    assert_eq!(c.attempts.len(), 1);
    assert_eq!(c.attempt(id).unwrap().outcome, None);
}

#[test]
fn a_lost_placement_lease_means_the_call_may_exist() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    let lease = T0.plus(timing().placement_lease);
    assert_eq!(c.next_due(), Some(lease));
    let ch = c.on_timer(lease, &timing(), CallId::new());
    assert_eq!(kinds(&ch), ["placement_unconfirmed"]);
    assert!(
        ch.effects.is_empty(),
        "never re-placed: that could call twice"
    );
    assert!(matches!(
        c.attempt(id).unwrap().state,
        CallState::Dialing(Dialing::Unconfirmed { .. })
    ));
}

/// Starts a dial and lets its replica claim it; returns the call id.
fn prepare(c: &mut Callout, now: Timestamp, token: u64) -> CallId {
    let id = start_dial(c, now);
    let (ch, owned) = c.begin_preparing(id, token, now, &timing());
    assert!(owned && ch.is_empty());
    id
}

#[test]
fn a_replica_that_dies_while_preparing_sent_nothing_so_the_call_is_tried_again() {
    let mut c = callout(1);
    let id = prepare(&mut c, T0, 7);
    let lease = T0.plus(timing().placement_lease);
    assert_eq!(c.next_due(), Some(lease));
    let ch = c.on_timer(lease, &timing(), CallId::new());
    assert_eq!(kinds(&ch), ["placement_retry"]);
    assert_eq!(
        ch.effects,
        vec![Effect::PlaceCall {
            call_id: id,
            slot_reserved: false
        }],
        "the same attempt is placed again"
    );
    assert_eq!(c.attempts.len(), 1, "no attempt was used up");
    assert!(outcome(&c, id).is_none());
}

#[test]
fn a_placement_that_keeps_dying_while_preparing_gives_up() {
    let mut c = callout(1);
    let id = prepare(&mut c, T0, 1);
    let mut now = T0;
    for token in 2..=u64::from(timing().max_placement_tries) {
        now = now.plus(timing().placement_lease);
        c.on_timer(now, &timing(), CallId::new());
        assert!(c.begin_preparing(id, token, now, &timing()).1);
    }
    now = now.plus(timing().placement_lease);
    c.on_timer(now, &timing(), CallId::new());
    assert_eq!(outcome(&c, id), Some(Outcome::Failed));
    let reason = c.attempt(id).unwrap().reason.clone().unwrap();
    assert!(reason.contains("gave up"), "{reason}");
}

#[test]
fn a_replica_that_dies_while_sending_leaves_a_call_that_may_exist() {
    let mut c = callout(1);
    let id = prepare(&mut c, T0, 7);
    assert!(c.begin_sending(id, 7, at(3), &timing()).1);
    let lease = at(3).plus(timing().placement_lease);
    assert_eq!(c.next_due(), Some(lease));
    let ch = c.on_timer(lease, &timing(), CallId::new());
    assert_eq!(kinds(&ch), ["placement_unconfirmed"]);
    assert!(
        ch.effects.is_empty(),
        "never re-placed: that could call twice"
    );
}

#[test]
fn a_cancel_while_the_call_is_prepared_stops_it_before_it_is_sent() {
    let mut c = callout(2);
    let id = prepare(&mut c, T0, 7);
    let ch = c.cancel(at(1), &timing()).unwrap();
    assert_eq!(outcome(&c, id), Some(Outcome::Cancelled));
    assert!(
        !ch.effects
            .iter()
            .any(|e| matches!(e, Effect::HangUp { .. })),
        "nothing to hang up: nothing was sent"
    );
    assert!(
        !c.begin_sending(id, 7, at(2), &timing()).1,
        "the last check sees the cancel"
    );
}

#[test]
fn only_the_replica_that_prepares_the_call_may_send_it() {
    let mut c = callout(1);
    let id = prepare(&mut c, T0, 7);
    // Its lease runs out; another replica takes the retry.
    let later = T0.plus(timing().placement_lease);
    c.on_timer(later, &timing(), CallId::new());
    assert!(c.begin_preparing(id, 8, later, &timing()).1);
    assert!(
        !c.begin_sending(id, 7, later, &timing()).1,
        "the stale replica"
    );
    assert!(c.begin_sending(id, 8, later, &timing()).1);
    assert!(
        !c.begin_preparing(id, 9, later, &timing()).1,
        "a late duplicate"
    );
}

#[test]
fn a_placement_started_after_a_cancel_ends_the_attempt_unsent() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    c.cancel(at(1), &timing()).unwrap();
    let (ch, owned) = c.begin_preparing(id, 7, at(2), &timing());
    assert!(!owned);
    assert_eq!(outcome(&c, id), Some(Outcome::Cancelled));
    assert_eq!(c.attempt(id).unwrap().state, CallState::NotPlaced);
    assert!(
        !ch.effects
            .iter()
            .any(|e| matches!(e, Effect::PlaceCall { .. }))
    );
}

#[test]
fn a_reserved_rate_limit_slot_is_waited_for_durably() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    c.defer_placement(id, at(20));
    assert_eq!(c.next_due(), Some(at(20)));
    assert!(c.on_timer(at(19), &timing(), CallId::new()).is_empty());
    let ch = c.on_timer(at(20), &timing(), CallId::new());
    assert_eq!(
        ch.effects,
        vec![Effect::PlaceCall {
            call_id: id,
            slot_reserved: true
        }]
    );
}

#[test]
fn cancelling_before_the_call_is_created_calls_nobody() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    c.defer_placement(id, at(20));
    let ch = c.cancel(at(5), &timing()).unwrap();
    assert_eq!(outcome(&c, id), Some(Outcome::Cancelled));
    assert!(
        !ch.effects
            .iter()
            .any(|e| matches!(e, Effect::PlaceCall { .. } | Effect::HangUp { .. }))
    );
    assert!(
        c.on_timer(at(20), &timing(), CallId::new())
            .effects
            .iter()
            .all(|e| *e == Effect::Notify)
    );
}

#[test]
fn cancelling_a_live_call_hangs_it_up() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    let ch = c.cancel(at(5), &timing()).unwrap();
    assert_eq!(c.status, CalloutStatus::Cancelled);
    assert!(ch.effects.contains(&Effect::HangUp { call_id: id }));
    assert!(kinds(&ch).contains(&"hangup_requested"));
    status(&mut c, id, "Completed", at(6));
    c.on_timer(at(20), &timing(), CallId::new());
    assert_eq!(outcome(&c, id), Some(Outcome::Cancelled));
    assert_eq!(c.step, Step::Done);
}

#[test]
fn a_call_created_after_cancellation_is_hung_up_as_soon_as_it_exists() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    let ch = c.cancel(at(1), &timing()).unwrap();
    assert!(
        !ch.effects
            .iter()
            .any(|e| matches!(e, Effect::HangUp { .. })),
        "no id to hang up yet"
    );
    let ch = c.on_placed(id, "trk".into(), at(2), &timing());
    assert!(ch.effects.contains(&Effect::HangUp { call_id: id }));
}

#[test]
fn a_hangup_waiting_for_the_call_leg_id_fires_when_a_callback_brings_it() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    c.cancel(at(1), &timing()).unwrap();
    let ch = c.on_status(
        id,
        &CallStatus::Ringing,
        Some("msg"),
        None,
        at(2),
        &timing(),
    );
    assert!(ch.effects.contains(&Effect::HangUp { call_id: id }));
}

#[test]
fn a_failed_hangup_is_retried_then_given_up() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(1));
    c.cancel(at(2), &timing()).unwrap();
    let mut now = at(2);
    for _ in 0..timing().max_hangup_tries {
        c.on_hangup_result(id, false, now, &timing());
        match c.attempt(id).unwrap().hangup.as_ref().unwrap().next_at {
            Some(t) => now = t,
            None => break,
        }
    }
    assert_eq!(
        c.attempt(id).unwrap().hangup.as_ref().unwrap().next_at,
        None
    );
    assert_eq!(
        c.attempt(id).unwrap().hangup.as_ref().unwrap().tries,
        timing().max_hangup_tries
    );
}

#[test]
fn a_finished_callout_cannot_be_cancelled() {
    let mut c = callout(1);
    c.cancel(T0, &timing()).unwrap();
    assert_eq!(
        c.cancel(T0, &timing()),
        Err(CalloutError::AlreadyFinished("cancelled"))
    );
}

#[test]
fn notifications_are_retried_with_backoff_and_then_given_up() {
    let mut c = callout(1);
    c.cancel(T0, &timing()).unwrap();
    let mut now = T0;
    let mut delays = Vec::new();
    loop {
        let ch = c.on_notify_result(Err("503".into()), now, &timing());
        assert_eq!(kinds(&ch), ["notify_failed"]);
        match c.notify.as_ref().unwrap().next_at {
            Some(t) => {
                delays.push(t.since(now));
                now = t;
            }
            None => break,
        }
    }
    assert_eq!(c.notify.as_ref().unwrap().tries, timing().max_notify_tries);
    assert!(
        delays.windows(2).all(|w| w[1] >= w[0].mul_f64(0.6)),
        "backoff grows: {delays:?}"
    );
}

#[test]
fn a_delivered_notification_is_not_sent_again() {
    let mut c = callout(1);
    let ch = c.cancel(T0, &timing()).unwrap();
    assert!(ch.effects.contains(&Effect::Notify));
    assert_eq!(
        kinds(&c.on_notify_result(Ok(()), at(1), &timing())),
        ["notify_delivered"]
    );
    assert_eq!(c.next_due(), None);
    assert!(c.on_notify_result(Ok(()), at(2), &timing()).is_empty());
}

#[test]
fn an_unknown_status_is_recorded_and_brings_reconciliation_forward() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    let ch = status(&mut c, id, "Teleported", at(1));
    assert_eq!(kinds(&ch), ["call_status"]);
    assert!(c.live_call_deadline().unwrap() <= at(31));
    assert_eq!(c.attempt(id).unwrap().state, CallState::Queued);
}

#[test]
fn reconciliation_applies_a_final_status_from_tracking() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    let ch = c.on_reconciled(
        id,
        Reconciliation::Final(CallStatus::NoAnswer),
        at(400),
        &timing(),
    );
    assert_eq!(kinds(&ch)[..2], ["reconciled", "call_status"]);
    assert_eq!(outcome(&c, id), Some(Outcome::NoAnswer));
}

#[test]
fn reconciliation_extends_a_live_call_then_writes_it_off() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(1));
    c.on_reconciled(id, Reconciliation::StillLive, at(400), &timing());
    assert_eq!(c.live_call_deadline(), Some(at(520)));
    for _ in 1..timing().max_reconcile_tries {
        c.on_reconciled(id, Reconciliation::Unknown, at(600), &timing());
    }
    assert_eq!(
        outcome(&c, id),
        Some(Outcome::NoInput),
        "answered but never decided"
    );
    assert_eq!(c.live_call_deadline(), None);
}

#[test]
fn callbacks_for_unknown_calls_change_nothing() {
    let mut c = callout(1);
    place(&mut c, T0);
    let before = c.clone();
    assert!(status(&mut c, CallId::new(), "Completed", at(1)).is_empty());
    assert!(
        c.on_decision(CallId::new(), Decision::Accepted, at(1), &timing())
            .is_empty()
    );
    assert_eq!(c, before);
}

#[test]
fn the_seed_flow_calls_seven_times_in_the_right_order() {
    // First contact never answers (3 attempts), second rejects, third accepts.
    let mut c = callout(3);
    let mut now = T0;
    let mut placed = Vec::new();
    while let Some(due) = c.next_due() {
        if c.status != CalloutStatus::Calling {
            break;
        }
        now = now.max(due);
        let id = CallId::new();
        let ch = c.on_timer(now, &timing(), id);
        if !ch.effects.contains(&Effect::PlaceCall {
            call_id: id,
            slot_reserved: false,
        }) {
            continue;
        }
        c.on_placed(id, "trk".into(), now, &timing());
        let contact = c.attempt(id).unwrap().contact;
        placed.push((contact, c.attempt(id).unwrap().number));
        match contact {
            0 => {
                status(&mut c, id, "Ringing", now.plus_secs(1));
                status(&mut c, id, "NoAnswer", now.plus_secs(30));
            }
            1 => {
                status(&mut c, id, "InProgress", now.plus_secs(3));
                c.on_decision(id, Decision::Rejected, now.plus_secs(10), &timing());
                status(&mut c, id, "Completed", now.plus_secs(13));
            }
            _ => {
                status(&mut c, id, "InProgress", now.plus_secs(3));
                c.on_decision(id, Decision::Accepted, now.plus_secs(10), &timing());
                status(&mut c, id, "Completed", now.plus_secs(13));
            }
        }
        now = now.plus_secs(30);
    }
    assert_eq!(placed, [(0, 1), (0, 2), (0, 3), (1, 1), (2, 1)]);
    assert_eq!(
        (c.status, c.accepted_by),
        (CalloutStatus::Accepted, Some(2))
    );
}

#[test]
fn a_callout_round_trips_through_json() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(1));
    c.attempt_mut(id)
        .unwrap()
        .cache_answer(0, "{\"verbs\":[]}".into());
    let json = serde_json::to_string(&c).unwrap();
    let back: Callout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn backoff_is_deterministic_bounded_and_growing() {
    let d = |n| backoff(Duration::from_secs(2), n, Duration::from_secs(30), 42);
    assert_eq!(d(1), d(1));
    assert!(d(1) >= Duration::from_millis(1500) && d(1) <= Duration::from_millis(2500));
    assert!(d(3) > d(1));
    assert!(d(20) <= Duration::from_millis(37_500));
}

// --- people needed, parallel lanes, rounds (issue 17) ---

fn waves(needed: u32, parallel: u32, rounds: u32) -> Policy {
    Policy {
        needed,
        parallel,
        rounds,
        round_delay_s: 600,
        ..policy()
    }
}

/// Fires the timer with fresh ids; returns the calls it started, placed.
fn start_all(c: &mut Callout, now: Timestamp) -> Vec<CallId> {
    let mut ids = Vec::new();
    let ch = c.on_timer_with(now, &timing(), &mut || {
        let id = CallId::new();
        ids.push(id);
        id
    });
    let started: Vec<CallId> = ch
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::PlaceCall { call_id, .. } => Some(*call_id),
            _ => None,
        })
        .collect();
    for id in &started {
        c.on_placed(*id, format!("trk-{id}"), now, &timing());
    }
    started
}

fn contact_of(c: &Callout, id: CallId) -> usize {
    c.attempt(id).unwrap().contact
}

fn accept(c: &mut Callout, id: CallId, now: Timestamp) -> Consequences {
    status(c, id, "InProgress", now);
    c.on_decision(id, Decision::Accepted, now, &timing())
}

#[test]
fn parallel_lanes_start_the_first_contacts_at_once_in_list_order() {
    let mut c = callout_with(5, waves(1, 3, 1));
    assert_eq!(c.lanes.len(), 2);
    let ids = start_all(&mut c, T0);
    let contacts: Vec<usize> = ids.iter().map(|&id| contact_of(&c, id)).collect();
    assert_eq!(contacts, [0, 1, 2]);
    assert_eq!(c.open_attempts().count(), 3);
    assert!(start_all(&mut c, at(1)).is_empty(), "no fourth call");
}

#[test]
fn a_parallel_list_shorter_than_its_lanes_leaves_the_extra_lanes_idle() {
    let mut c = callout_with(2, waves(1, 4, 1));
    assert_eq!(start_all(&mut c, T0).len(), 2);
    assert_eq!(c.lane_step(2), Step::Done);
}

#[test]
fn on_timer_with_one_id_starts_one_lane_and_leaves_the_next_due() {
    let mut c = callout_with(3, waves(1, 2, 1));
    let id = start_dial(&mut c, T0);
    assert_eq!(contact_of(&c, id), 0);
    assert_eq!(c.next_due(), Some(T0), "lane 1 still due");
    assert!(
        c.on_timer(T0, &timing(), id).effects.is_empty(),
        "id reused"
    );
    let second = start_dial(&mut c, T0);
    assert_eq!(contact_of(&c, second), 1);
}

#[test]
fn a_lane_that_finishes_its_contact_takes_the_next_one_in_the_list() {
    let mut c = callout_with(4, waves(1, 2, 1));
    let ids = start_all(&mut c, T0);
    status(&mut c, ids[1], "InProgress", at(2));
    c.on_decision(ids[1], Decision::Rejected, at(5), &timing());
    let ch = status(&mut c, ids[1], "Completed", at(6));
    assert!(kinds(&ch).contains(&"contact_done"));
    assert_eq!(
        c.lane_step(1),
        Step::Dial {
            contact: 2,
            at: at(6)
        }
    );
    let next = start_all(&mut c, at(6));
    assert_eq!(contact_of(&c, next[0]), 2);
    assert_eq!(c.attempt(next[0]).unwrap().lane, 1);
}

#[test]
fn a_lane_retrying_its_contact_keeps_it_and_the_other_lane_goes_on() {
    let mut c = callout_with(3, waves(1, 2, 1));
    let ids = start_all(&mut c, T0);
    status(&mut c, ids[0], "Busy", at(5));
    assert_eq!(
        c.lane_step(0),
        Step::Dial {
            contact: 0,
            at: at(65)
        }
    );
    assert_eq!(c.lane_step(1), Step::InCall);
    assert!(start_all(&mut c, at(10)).is_empty());
    let retry = start_all(&mut c, at(65));
    assert_eq!(c.attempt(retry[0]).unwrap().number, 2);
}

#[test]
fn one_acceptance_of_two_needed_keeps_calling_and_lists_the_acceptor() {
    let mut c = callout_with(3, waves(2, 1, 1));
    let first = place(&mut c, T0);
    let ch = accept(&mut c, first, at(5));
    assert_eq!(kinds(&ch), ["decided"]);
    assert_eq!(c.status, CalloutStatus::Calling);
    assert_eq!(c.acceptors, [0]);
    assert_eq!(c.accepted_by, None);
    status(&mut c, first, "Completed", at(20));
    assert_eq!(outcome(&c, first), Some(Outcome::Accepted));
    let second = place(&mut c, at(20));
    assert_eq!(contact_of(&c, second), 1);
    let ch = accept(&mut c, second, at(25));
    assert!(kinds(&ch).contains(&"callout_accepted"));
    assert_eq!(c.status, CalloutStatus::Accepted);
    assert_eq!((c.acceptors.clone(), c.accepted_by), (vec![0, 1], Some(0)));
}

#[test]
fn a_repeated_acceptance_on_the_same_call_counts_once() {
    let mut c = callout_with(2, waves(2, 1, 1));
    let id = place(&mut c, T0);
    accept(&mut c, id, at(5));
    assert!(
        c.on_decision(id, Decision::Accepted, at(6), &timing())
            .is_empty()
    );
    assert_eq!(c.status, CalloutStatus::Calling);
}

#[test]
fn filling_the_callout_ends_the_other_calls_answered_ones_politely() {
    let mut c = callout_with(5, waves(2, 4, 1));
    let ids = start_all(&mut c, T0);
    assert_eq!(ids.len(), 4);
    status(&mut c, ids[2], "InProgress", at(3)); // answered, listening
    status(&mut c, ids[3], "Ringing", at(3));
    accept(&mut c, ids[0], at(5));
    let ch = accept(&mut c, ids[1], at(6));
    assert_eq!(c.status, CalloutStatus::Accepted);
    assert!(c.lanes.iter().all(|s| *s == Step::Done) && c.step == Step::Done);
    // The ringing call is hung up at once; the answered one hears its next turn
    // first, and is hung up only if it has not ended after the input timeout.
    assert!(ch.effects.contains(&Effect::HangUp { call_id: ids[3] }));
    assert!(!ch.effects.contains(&Effect::HangUp { call_id: ids[2] }));
    let polite = at(6).plus_secs(u64::from(c.policy.input_timeout_s) + FILLED_HANGUP_S);
    assert_eq!(
        c.attempt(ids[2]).unwrap().hangup.as_ref().unwrap().next_at,
        Some(polite)
    );
    assert!(
        c.attempt(ids[0]).unwrap().hangup.is_none(),
        "the first acceptor hears their own goodbye"
    );
    // The late third acceptance changes nothing.
    assert!(
        c.on_decision(ids[2], Decision::Accepted, at(8), &timing())
            .is_empty()
    );
    assert_eq!(c.acceptors, [0, 1]);
    let ch = c.on_timer_with(polite, &timing(), &mut CallId::new);
    assert_eq!(ch.effects, [Effect::HangUp { call_id: ids[2] }]);
}

#[test]
fn a_call_not_sent_yet_when_the_callout_fills_is_dropped() {
    let mut c = callout_with(3, waves(1, 2, 1));
    let mut ids = Vec::new();
    c.on_timer_with(T0, &timing(), &mut || {
        let id = CallId::new();
        ids.push(id);
        id
    });
    c.on_placed(ids[0], "trk".into(), T0, &timing());
    accept(&mut c, ids[0], at(5));
    let a = c.attempt(ids[1]).unwrap();
    assert!(a.hangup.is_some(), "being created: hung up once it exists");
    let (ch, mine) = c.begin_preparing(ids[1], 1, at(6), &timing());
    assert!(!mine);
    assert_eq!(kinds(&ch), ["attempt_ended"]);
    assert_eq!(outcome(&c, ids[1]), Some(Outcome::Cancelled));
}

#[test]
fn a_call_created_after_the_callout_filled_is_hung_up() {
    let mut c = callout_with(3, waves(1, 2, 1));
    let mut ids = Vec::new();
    c.on_timer_with(T0, &timing(), &mut || {
        let id = CallId::new();
        ids.push(id);
        id
    });
    c.on_placed(ids[0], "trk".into(), T0, &timing());
    accept(&mut c, ids[0], at(5));
    let ch = c.on_placed(ids[1], "trk-2".into(), at(6), &timing());
    assert!(ch.effects.contains(&Effect::HangUp { call_id: ids[1] }));
}

#[test]
fn a_cancel_hangs_up_every_lane() {
    let mut c = callout_with(3, waves(1, 3, 1));
    let ids = start_all(&mut c, T0);
    let ch = c.cancel(at(2), &timing()).unwrap();
    for id in ids {
        assert!(ch.effects.contains(&Effect::HangUp { call_id: id }));
    }
}

#[test]
fn a_callee_who_hangs_up_mid_prompt_is_hung_up_not_no_input() {
    for (ended_s, want) in [(10, Outcome::HungUp), (40, Outcome::NoInput)] {
        let mut c = callout(1);
        let id = place(&mut c, T0);
        // The seed's first dialplan runs at least 3 + 4 + 10 + 10 seconds.
        c.attempt_mut(id).unwrap().heard_plan(27_000, None);
        status(&mut c, id, "InProgress", at(2));
        status(&mut c, id, "Completed", at(ended_s));
        let grace = c.attempt(id).unwrap().grace_until.unwrap();
        let ch = c.on_timer(grace, &timing(), CallId::new());
        assert_eq!(outcome(&c, id), Some(want), "ended at {ended_s} s");
        assert!(kinds(&ch).contains(&"attempt_ended"));
    }
}

#[test]
fn after_the_last_contact_the_next_round_starts_from_the_top_after_the_delay() {
    let p = Policy {
        attempts_per_contact: 1,
        ..waves(1, 1, 2)
    };
    let mut c = callout_with(2, p);
    let a = place(&mut c, T0);
    status(&mut c, a, "NoAnswer", at(30));
    let b = place(&mut c, at(30));
    let ch = status(&mut c, b, "NoAnswer", at(60));
    assert_eq!(
        kinds(&ch),
        [
            "call_status",
            "attempt_ended",
            "contact_done",
            "round_started",
            "call_scheduled"
        ]
    );
    assert_eq!(c.round, 1);
    assert_eq!(
        c.step,
        Step::Dial {
            contact: 0,
            at: at(660)
        }
    );
    assert!(start_all(&mut c, at(659)).is_empty());
    let again = place(&mut c, at(660));
    let attempt = c.attempt(again).unwrap();
    assert_eq!((attempt.contact, attempt.number, attempt.round), (0, 1, 1));
    status(&mut c, again, "NoAnswer", at(690));
    let last = place(&mut c, at(690));
    let ch = status(&mut c, last, "NoAnswer", at(720));
    assert!(kinds(&ch).contains(&"callout_exhausted"));
    assert_eq!(c.attempts.len(), 4);
}

#[test]
fn someone_who_accepted_is_not_called_in_the_next_round() {
    let p = Policy {
        attempts_per_contact: 1,
        ..waves(2, 1, 2)
    };
    let mut c = callout_with(3, p);
    let a = place(&mut c, T0);
    accept(&mut c, a, at(5));
    status(&mut c, a, "Completed", at(10));
    for t in [10, 40] {
        let id = place(&mut c, at(t));
        status(&mut c, id, "NoAnswer", at(t + 30));
    }
    assert_eq!(c.round, 1);
    assert_eq!(
        c.step,
        Step::Dial {
            contact: 1,
            at: at(670)
        }
    );
}

#[test]
fn a_round_waits_for_every_lane_before_starting_again() {
    let p = Policy {
        attempts_per_contact: 1,
        ..waves(1, 2, 2)
    };
    let mut c = callout_with(2, p);
    let ids = start_all(&mut c, T0);
    status(&mut c, ids[0], "NoAnswer", at(30));
    assert_eq!((c.round, c.step), (0, Step::Done), "lane 1 still calling");
    let ch = status(&mut c, ids[1], "NoAnswer", at(40));
    assert!(kinds(&ch).contains(&"round_started"));
    assert_eq!(start_all(&mut c, at(640)).len(), 2);
}

#[test]
fn an_exhausted_callout_keeps_the_acceptors_it_found() {
    let p = Policy {
        attempts_per_contact: 1,
        ..waves(2, 1, 1)
    };
    let mut c = callout_with(2, p);
    let a = place(&mut c, T0);
    accept(&mut c, a, at(5));
    status(&mut c, a, "Completed", at(10));
    let b = place(&mut c, at(10));
    status(&mut c, b, "NoAnswer", at(40));
    assert_eq!(c.status, CalloutStatus::Exhausted);
    assert_eq!((c.acceptors.clone(), c.accepted_by), (vec![0], None));
}

#[test]
fn a_callout_stored_by_the_previous_release_reads_and_goes_on() {
    let mut c = callout(2);
    let id = place(&mut c, T0);
    let mut json = serde_json::to_value(&c).unwrap();
    for key in ["lanes", "round", "acceptors"] {
        assert!(
            json.get(key).is_none(),
            "{key} written for a one-lane callout"
        );
    }
    let policy = json["policy"].as_object_mut().unwrap();
    for key in ["needed", "parallel", "rounds", "round_delay_s"] {
        policy.remove(key);
    }
    let mut back: Callout = serde_json::from_value(json).unwrap();
    assert_eq!(back.policy.parallel, 1);
    let ch = status(&mut back, id, "NoAnswer", at(30));
    assert!(kinds(&ch).contains(&"call_scheduled"));
    assert_eq!(
        back.step,
        Step::Dial {
            contact: 0,
            at: at(90)
        }
    );
}

mod invariants {
    //! Random histories of callbacks, decisions and timers on callouts with
    //! random `needed`, `parallel` and `rounds`: the invariants hold after every step.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Timer,
        Status(usize, &'static str),
        Decide(usize, bool),
        Cancel,
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            30 => Just(Op::Timer),
            40 => (0..8usize, prop::sample::select(vec![
                "Ringing", "InProgress", "Completed", "Busy", "NoAnswer", "Failed"
            ])).prop_map(|(i, s)| Op::Status(i, s)),
            20 => (0..8usize, any::<bool>()).prop_map(|(i, a)| Op::Decide(i, a)),
            10 => (1..900u64).prop_map(Op::Wait),
            1 => Just(Op::Cancel),
        ]
    }

    fn check(c: &Callout, started: &[(CallId, usize, CalloutStatus)]) -> Result<(), TestCaseError> {
        let k = c.policy.parallel as usize;
        prop_assert!(
            c.open_attempts().count() <= k,
            "more than {k} calls at once"
        );
        for lane in 0..k {
            prop_assert!(
                c.open_attempts()
                    .filter(|a| a.lane as usize == lane)
                    .count()
                    <= 1
            );
        }
        let mut seen = c.acceptors.clone();
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), c.acceptors.len(), "an acceptor counted twice");
        prop_assert!(c.acceptors.len() as u32 <= c.policy.needed);
        prop_assert_eq!(
            c.status == CalloutStatus::Accepted,
            c.acceptors.len() as u32 == c.policy.needed
        );
        for &(id, contact, status_then) in started {
            prop_assert_eq!(
                status_then,
                CalloutStatus::Calling,
                "a call placed after the end"
            );
            let a = c.attempt(id).unwrap();
            let accepted_before = c.attempts.iter().any(|b| {
                b.contact == contact
                    && b.decision == Some(Decision::Accepted)
                    && b.created_at < a.created_at
            });
            prop_assert!(!accepted_before, "an acceptor called again");
        }
        let most = c.policy.rounds * c.policy.attempts_per_contact * c.contacts.len() as u32;
        prop_assert!(c.attempts.len() as u32 <= most);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn waves_never_exceed_their_lanes_their_people_or_their_rounds(
            contacts in 1..6usize,
            needed in 1..4u32,
            parallel in 1..4u32,
            rounds in 1..3u32,
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let needed = needed.min(contacts as u32);
            let p = Policy { attempts_per_contact: 2, retry_delay_s: 30, ..waves(needed, parallel, rounds) };
            let mut c = callout_with(contacts, p);
            let mut now = T0;
            let mut started = Vec::new();
            for op in ops {
                now = now.plus_secs(1);
                let open: Vec<CallId> = c.open_attempts().map(|a| a.call_id).collect();
                match op {
                    Op::Timer => {
                        let before = c.status;
                        let mut fresh = Vec::new();
                        let ch = c.on_timer_with(now, &timing(), &mut || { let id = CallId::new(); fresh.push(id); id });
                        for e in &ch.effects {
                            if let Effect::PlaceCall { call_id, .. } = e
                                && fresh.contains(call_id) {
                                started.push((*call_id, contact_of(&c, *call_id), before));
                                c.on_placed(*call_id, "trk".into(), now, &timing());
                            }
                        }
                    }
                    Op::Status(i, s) if !open.is_empty() => {
                        status(&mut c, open[i % open.len()], s, now);
                    }
                    Op::Decide(i, yes) if !open.is_empty() => {
                        let d = if yes { Decision::Accepted } else { Decision::Rejected };
                        let id = open[i % open.len()];
                        if c.attempt(id).unwrap().state == CallState::InProgress {
                            c.on_decision(id, d, now, &timing());
                        }
                    }
                    Op::Cancel => { let _ = c.cancel(now, &timing()); }
                    Op::Wait(s) => now = now.plus_secs(s),
                    _ => {}
                }
                check(&c, &started)?;
            }
        }
    }
}

#[test]
fn a_call_held_by_the_per_person_limit_waits_and_is_placed_then() {
    let mut c = callout(1);
    let id = start_dial(&mut c, T0);
    c.begin_preparing(id, 1, T0, &timing());
    let ch = c.hold_placement(id, at(300), at(1));
    assert_eq!(kinds(&ch), ["call_held"]);
    assert_eq!(c.next_due(), Some(at(300)));
    assert!(c.on_timer(at(299), &timing(), CallId::new()).is_empty());
    let ch = c.on_timer(at(300), &timing(), CallId::new());
    assert_eq!(
        ch.effects,
        [Effect::PlaceCall {
            call_id: id,
            slot_reserved: false
        }]
    );
    // A stale hold for a call already sent changes nothing.
    c.begin_preparing(id, 2, at(300), &timing());
    c.begin_sending(id, 2, at(300), &timing());
    assert!(c.hold_placement(id, at(900), at(301)).is_empty());
}

#[test]
fn a_policy_that_leaves_no_message_plays_nothing_to_a_machine_and_still_counts_voicemail() {
    let mut c = callout_with(
        1,
        Policy {
            voicemail_message: false,
            ..policy()
        },
    );
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    let (ch, to) = c.on_machine(id, at(4));
    assert_eq!(to, crate::domain::voicemail::ToMachine::Nothing);
    assert_eq!(kinds(&ch), ["voicemail_detected"]);
    status(&mut c, id, "Completed", at(6));
    let grace = c.attempt(id).unwrap().grace_until.unwrap();
    c.on_timer(grace, &timing(), CallId::new());
    assert_eq!(outcome(&c, id), Some(Outcome::Voicemail));
}

#[test]
fn a_machine_is_never_a_decision_and_ends_as_voicemail() {
    let mut c = callout(1);
    let id = place(&mut c, T0);
    status(&mut c, id, "InProgress", at(2));
    let (ch, to) = c.on_machine(id, at(4));
    assert_eq!(to, crate::domain::voicemail::ToMachine::Message);
    assert_eq!(kinds(&ch), ["voicemail_detected"]);
    // Reported twice: one event, still the message.
    let (ch, to) = c.on_machine(id, at(5));
    assert!(ch.events.is_empty());
    assert_eq!(to, crate::domain::voicemail::ToMachine::Message);
    assert_eq!(c.attempt(id).unwrap().decision, None);
    status(&mut c, id, "Completed", at(20));
    let grace = c.attempt(id).unwrap().grace_until.unwrap();
    c.on_timer(grace, &timing(), CallId::new());
    assert_eq!(outcome(&c, id), Some(Outcome::Voicemail));
    // Late, on a finished attempt: nothing to play, nothing recorded.
    let (ch, to) = c.on_machine(id, at(30));
    assert!(ch.is_empty());
    assert_eq!(to, crate::domain::voicemail::ToMachine::Nothing);
}

#[test]
fn a_carrier_outage_that_fails_the_callout_closes_every_lane() {
    let mut c = callout_with(4, waves(1, 2, 1));
    let mut ids = Vec::new();
    c.on_timer_with(T0, &timing(), &mut || {
        let id = CallId::new();
        ids.push(id);
        id
    });
    let limit = timing().carrier_outage_limit;
    refused(&mut c, ids[1], T0);
    c.on_timer_with(c.next_due().unwrap(), &timing(), &mut CallId::new);
    refused(&mut c, ids[1], T0.plus(limit));
    assert_eq!(c.status, CalloutStatus::Failed);
    assert_eq!((c.step, c.lanes.clone()), (Step::Done, vec![Step::Done]));
    assert_eq!(c.next_dial(), None);
    // Lane 0's creation is still in flight: it is not sent.
    let (_, mine) = c.begin_preparing(ids[0], 1, T0.plus(limit), &timing());
    assert!(!mine);
}
