//! The invariants, checked over the whole run: the gateway's view (every
//! callout with its attempts and timeline, through the API) against the
//! carrier's (every call the simulator placed, with its status callbacks and
//! eventUrl posts). Each violation names its callout and carries its evidence.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use ivr_gateway::domain::Timestamp;
use ivr_gateway::routee::CallStatus;
use ivr_gateway::sim::{RefusedCreation, SimCallRecord};
use serde_json::Value;

use crate::workload::ACCEPT_KEY;

/// How far after a callout's `ended_at` the carrier may still see a call being
/// created. Every timestamp comes from this host's clock (no skew), so the slack
/// is only the one unavoidable race: the gateway reads the callout one last time
/// right before it sends the creation, and a cancel committed between that read
/// and the carrier receiving the request cannot stop it (the call is then hung up
/// at once). That window is one Redis round trip plus one loopback HTTP request;
/// 250 ms covers it on a loaded two-core machine while still catching any
/// placement decided from a stale state (which lags by the rate limiter's sleep
/// or a Voiceflow launch turn: seconds).
pub const PLACEMENT_RACE: i64 = 250;

/// Text of the gateway's "we could not record your answer, press again" dialplan:
/// the gateway explicitly did not take the key press (the store was away).
const NOT_RECORDED: &str = "could not record your answer";
/// The start of the holding dialplan: Voiceflow has the keys and has not answered.
const HOLDING: &str = "One moment, please.";
/// How long a Voiceflow turn answered by the holding dialplan may still decide:
/// the gateway's webhook deadline (under Routee's 3 s) plus its late window.
const PENDING_DECISION: std::time::Duration =
    ivr_gateway::engine::LATE_WINDOW.saturating_add(std::time::Duration::from_secs(3));

#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: &'static str,
    pub callout: String,
    pub evidence: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] callout {}: {}",
            self.invariant, self.callout, self.evidence
        )
    }
}

/// Everything the checks look at.
pub struct Evidence<'a> {
    /// Every callout in the store, each with its timeline.
    pub callouts: &'a [Value],
    pub calls: &'a [SimCallRecord],
    pub refused: &'a [RefusedCreation],
    /// When replicas were killed, and when Redis was away.
    pub kills: &'a [Timestamp],
    pub redis_away: &'a [(Timestamp, Timestamp)],
}

/// What the checks counted besides violations (for the summary).
#[derive(Debug, Default)]
pub struct Observed {
    pub accept_presses_taken: u32,
    pub accept_presses_not_recorded: u32,
    pub accept_presses_pending_when_cancelled: u32,
    pub event_posts_answered: u32,
    pub event_posts_lb_refused: u32,
    pub reconciled: u32,
    pub orphan_calls: u32,
    pub max_placement_lag_ms: i64,
    pub refusals_matched: u32,
    pub refusals_excused: u32,
}

fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(Timestamp::parse_lenient)
}

fn call_ts(s: &str) -> Timestamp {
    Timestamp::parse_lenient(s).unwrap_or_default()
}

/// (callout id, call id) from a webhook URL `/routee/status/{callout}/{call}?sig=`.
fn ids_of(url: &str) -> Option<(String, String)> {
    let url = url::Url::parse(url).ok()?;
    let seg: Vec<&str> = url.path_segments()?.collect();
    match seg.as_slice() {
        ["routee", "status", callout, call] => Some(((*callout).into(), (*call).into())),
        _ => None,
    }
}

fn attempt_name(status: &CallStatus) -> Option<&'static str> {
    match status {
        CallStatus::Completed => Some("completed"),
        CallStatus::Busy => Some("busy"),
        CallStatus::NoAnswer => Some("no_answer"),
        CallStatus::Failed => Some("failed"),
        _ => None,
    }
}

struct Checker<'a> {
    ev: &'a Evidence<'a>,
    by_id: HashMap<&'a str, &'a Value>,
    violations: Vec<Violation>,
    observed: Observed,
}

impl<'a> Checker<'a> {
    fn flag(&mut self, invariant: &'static str, callout: &str, evidence: String) {
        self.violations.push(Violation {
            invariant,
            callout: callout.to_owned(),
            evidence,
        });
    }

    /// A replica died or Redis was away around `at`: a report the gateway was
    /// about to write may be lost, and is then recovered by a lease (by design).
    fn excused(&self, at: Timestamp) -> bool {
        let near = |t: Timestamp| (t.0 - at.0).abs() <= 3000;
        self.ev.kills.iter().any(|k| near(*k))
            || self
                .ev
                .redis_away
                .iter()
                .any(|(from, to)| at.0 >= from.0 - 3000 && at.0 <= to.0 + 3000)
    }

    fn finals(&mut self) {
        for c in self.ev.callouts {
            let id = c["id"].as_str().unwrap_or("?");
            if c["status"] == "calling" {
                self.flag(
                    "every callout reaches a final state within the bound",
                    id,
                    format!(
                        "still calling; next call at {}; attempts {}",
                        c["next_call_at"],
                        summary(c)
                    ),
                );
            } else if let Some(open) = c["attempts"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["outcome"].is_null()))
            {
                self.flag(
                    "every attempt is over within the bound",
                    id,
                    format!(
                        "{} but attempt {}/{} is still {}",
                        c["status"], open["contact"], open["attempt"], open["status"]
                    ),
                );
            }
        }
    }

    fn calls_per_contact(&mut self) {
        let mut allowed: HashMap<&str, (u64, Vec<&str>)> = HashMap::new();
        for c in self.ev.callouts {
            let limit = c["policy"]["attempts_per_contact"].as_u64().unwrap_or(0);
            for contact in c["contacts"].as_array().into_iter().flatten() {
                let e = allowed
                    .entry(contact["phone"].as_str().unwrap_or(""))
                    .or_default();
                e.0 += limit;
                e.1.push(c["id"].as_str().unwrap_or("?"));
            }
        }
        let mut calls: BTreeMap<&str, Vec<&SimCallRecord>> = BTreeMap::new();
        for call in self.ev.calls {
            calls.entry(call.to.as_str()).or_default().push(call);
        }
        for (number, made) in calls {
            let Some((limit, owners)) = allowed.get(number) else {
                self.flag(
                    "no contact is called more often than the policy allows",
                    "-",
                    format!("{} call(s) to {number}, which no callout lists", made.len()),
                );
                continue;
            };
            if made.len() as u64 > *limit {
                let list: Vec<String> = made
                    .iter()
                    .map(|c| format!("{} {} ({:?})", c.created_at, c.status, c.end_reason))
                    .collect();
                self.flag(
                    "no contact is called more often than the policy allows",
                    &owners.join(","),
                    format!(
                        "{number} was called {} times, the policy allows {limit}: {}",
                        made.len(),
                        list.join("; ")
                    ),
                );
            }
        }
    }

    /// The callout (and the call's attempt) a simulated call belongs to.
    fn owner(&self, call: &SimCallRecord) -> Option<(&'a Value, Option<&'a Value>)> {
        let (callout, call_id) = call.callback_url.as_deref().and_then(ids_of)?;
        let c = *self.by_id.get(callout.as_str())?;
        let attempt = c["attempts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["call_id"] == call_id.as_str()));
        Some((c, attempt))
    }

    fn calls_after_end(&mut self) {
        for call in self.ev.calls {
            let Some((c, _)) = self.owner(call) else {
                self.flag(
                    "no call is placed after the callout ended",
                    "-",
                    format!(
                        "call {} to {} belongs to no callout",
                        call.message_id, call.to
                    ),
                );
                continue;
            };
            let Some(ended) = ts(&c["ended_at"]) else {
                continue;
            };
            let created = call_ts(&call.created_at);
            let lag = created.0 - ended.0;
            self.observed.max_placement_lag_ms = self.observed.max_placement_lag_ms.max(lag);
            if lag > PLACEMENT_RACE {
                self.flag(
                    "no call is placed after the callout ended",
                    c["id"].as_str().unwrap_or("?"),
                    format!(
                        "callout {} at {}, yet the carrier created a call to {} at {} ({lag} ms later; ended {:?})",
                        c["status"], ended, call.to, call.created_at, call.end_reason
                    ),
                );
            }
        }
    }

    fn accepts(&mut self) {
        for call in self.ev.calls {
            let Some((c, attempt)) = self.owner(call) else {
                continue;
            };
            let id = c["id"].as_str().unwrap_or("?");
            let contact = attempt.map(|a| a["contact"].clone()).unwrap_or(Value::Null);
            for post in &call.event_posts {
                let tones = post.collected_tones.trim_end_matches('#');
                if tones != ACCEPT_KEY {
                    continue;
                }
                let answered = post.http_status.is_some_and(|s| (200..300).contains(&s));
                if !answered {
                    continue;
                }
                let body = post
                    .answer
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default();
                if body.contains(NOT_RECORDED) {
                    self.observed.accept_presses_not_recorded += 1;
                    continue;
                }
                self.observed.accept_presses_taken += 1;
                let at = call_ts(&post.at);
                let ended = ts(&c["ended_at"]);
                // Held while Voiceflow decides what the key means, then cancelled by
                // the dispatcher before that turn answered: nothing was decided, and
                // a cancel is final. Bounded by how long the late turn may take.
                let pending_when_cancelled = c["status"] == "cancelled"
                    && body.contains(HOLDING)
                    && attempt.is_some_and(|a| a["outcome"] == "cancelled")
                    && ended.is_some_and(|e| e <= at.plus(PENDING_DECISION));
                if pending_when_cancelled {
                    self.observed.accept_presses_pending_when_cancelled += 1;
                }
                // With `needed` > 1 an acceptor is listed whatever the end (an
                // exhausted callout keeps the people it found).
                let listed = c["acceptors"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["contact"] == contact));
                let ok = listed
                    || match c["status"].as_str() {
                        Some("accepted") => ended.is_some_and(|e| e <= at),
                        Some("cancelled") => {
                            ended.is_some_and(|e| e <= at) || pending_when_cancelled
                        }
                        _ => false,
                    };
                if !ok {
                    self.flag(
                        "an accept is never lost",
                        id,
                        format!(
                            "contact {contact} pressed {ACCEPT_KEY} on call {} (attempt {}), the gateway answered HTTP {:?} at {} ({}), yet the callout is {} (accepted_by {}, ended {})",
                            call.message_id,
                            attempt.map(|a| a["attempt"].clone()).unwrap_or_default(),
                            post.http_status,
                            post.at,
                            said(post.answer.as_ref()),
                            c["status"],
                            c["accepted_by"]["contact"],
                            c["ended_at"]
                        ),
                    );
                }
            }
        }
    }

    /// Never more than `policy.parallel` calls of one callout at once (its
    /// attempts, from their start to their end; one not over counts until the end
    /// of the run), and never more acceptors than `policy.needed`.
    fn lanes(&mut self) {
        for c in self.ev.callouts {
            let id = c["id"].as_str().unwrap_or("?");
            let k = c["policy"]["parallel"].as_u64().unwrap_or(1) as usize;
            let spans: Vec<(Timestamp, Option<Timestamp>)> = c["attempts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| (ts(&a["started_at"]).unwrap_or_default(), ts(&a["ended_at"])))
                .collect();
            for (start, _) in &spans {
                let open = spans
                    .iter()
                    .filter(|(s, e)| s <= start && e.is_none_or(|e| e > *start))
                    .count();
                if open > k {
                    self.flag(
                        "never more than `parallel` calls of a callout at once",
                        id,
                        format!(
                            "{open} calls under way at {start} with parallel {k}: {}",
                            summary(c)
                        ),
                    );
                    break;
                }
            }
            let needed = c["policy"]["needed"].as_u64().unwrap_or(1) as usize;
            let acceptors = c["acceptors"].as_array().map_or(0, Vec::len);
            if acceptors > needed || (c["status"] == "accepted") != (acceptors == needed) {
                self.flag(
                    "a callout is accepted exactly when `needed` people accepted",
                    id,
                    format!(
                        "{} with {acceptors} acceptors, {needed} needed",
                        c["status"]
                    ),
                );
            }
        }
    }

    fn event_urls(&mut self) {
        for call in self.ev.calls {
            let id = self
                .owner(call)
                .and_then(|(c, _)| c["id"].as_str())
                .unwrap_or("-");
            for post in &call.event_posts {
                if post
                    .answer
                    .as_ref()
                    .is_some_and(|a| a.get("load_balancer").is_some())
                {
                    self.observed.event_posts_lb_refused += 1;
                    continue;
                }
                let reason = match &post.outcome {
                    ivr_gateway::sim::EventOutcome::Continued { reason } => reason.as_str(),
                    _ => "",
                };
                if post.http_status.is_none() && reason.contains("call ended") {
                    continue; // the callee hung up while the gateway was answering
                }
                let is_plan = post
                    .answer
                    .as_ref()
                    .and_then(|a| a.get("verbs"))
                    .is_some_and(Value::is_array);
                if post.http_status == Some(200) && is_plan && !reason.contains("no answer") {
                    self.observed.event_posts_answered += 1;
                } else {
                    self.flag(
                        "every eventUrl POST gets a dialplan within 3 s",
                        id,
                        format!(
                            "call {} to {}: tones {:?} at {} answered HTTP {:?}: {reason} {}",
                            call.message_id,
                            call.to,
                            post.collected_tones,
                            post.at,
                            post.http_status,
                            post.answer
                                .as_ref()
                                .map(Value::to_string)
                                .unwrap_or_default()
                        ),
                    );
                }
            }
        }
    }

    fn carrier_agrees(&mut self) {
        for call in self.ev.calls {
            let Some((c, attempt)) = self.owner(call) else {
                continue;
            };
            let id = c["id"].as_str().unwrap_or("?");
            let Some(a) = attempt else {
                self.flag(
                    "the gateway's attempts match the carrier's calls",
                    id,
                    format!("call {} to {} has no attempt", call.message_id, call.to),
                );
                continue;
            };
            let state = a["status"].as_str().unwrap_or("");
            if state == "not_placed" {
                // The gateway never learnt of the call (creation answer lost, every
                // callback lost): counted, and bounded by the per-contact invariant.
                self.observed.orphan_calls += 1;
                continue;
            }
            // A final status the gateway acknowledged (2xx) was stored: the call
            // never needs the tracking API. (A 5xx makes the carrier retry; only a
            // status never acknowledged may be learnt by reconciliation.)
            let final_acknowledged = call
                .callbacks
                .iter()
                .any(|cb| cb.delivered && attempt_name(&cb.status).is_some());
            let reconciled = c["events"].as_array().into_iter().flatten().any(|e| {
                e["kind"] == "reconciled"
                    && e["contact"] == a["contact"]
                    && e["attempt"] == a["attempt"]
            });
            if final_acknowledged && reconciled {
                self.flag(
                    "a status callback answered 2xx is stored",
                    id,
                    format!(
                        "the gateway acknowledged the final status of call {} ({}) yet attempt {}/{} was reconciled through tracking",
                        call.message_id, call.status, a["contact"], a["attempt"]
                    ),
                );
            }
            let reconciled_off = a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no final status"));
            match attempt_name(&call.status) {
                Some(name) if state != name && !reconciled_off && !a["outcome"].is_null() => {
                    self.flag(
                        "the gateway's attempts match the carrier's calls",
                        id,
                        format!(
                            "attempt {}/{} is {state} (outcome {}) but the carrier ended call {} {}",
                            a["contact"], a["attempt"], a["outcome"], call.message_id, call.status
                        ),
                    );
                }
                _ => {}
            }
        }
    }

    fn timelines(&mut self) {
        for c in self.ev.callouts {
            let id = c["id"].as_str().unwrap_or("?");
            let events = c["events"].as_array().cloned().unwrap_or_default();
            let mut problems = Vec::new();
            let times: Vec<Timestamp> = events
                .iter()
                .map(|e| ts(&e["at"]).unwrap_or_default())
                .collect();
            if let Some(w) = times.windows(2).position(|w| w[1] < w[0]) {
                problems.push(format!(
                    "event {} ({}) at {} is before event {} ({}) at {}",
                    w + 1,
                    events[w + 1]["kind"],
                    times[w + 1],
                    w,
                    events[w]["kind"],
                    times[w]
                ));
            }
            if events.first().map(|e| &e["kind"]) != Some(&Value::from("callout_created")) {
                problems.push("the timeline does not start with callout_created".into());
            }
            let count = |kind: &str, contact: &Value, attempt: &Value| {
                events
                    .iter()
                    .filter(|e| {
                        e["kind"] == kind && &e["contact"] == contact && &e["attempt"] == attempt
                    })
                    .count()
            };
            let terminal: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    matches!(
                        e["kind"].as_str(),
                        Some(
                            "callout_accepted"
                                | "callout_exhausted"
                                | "callout_cancelled"
                                | "callout_failed"
                        )
                    )
                })
                .collect();
            match (c["status"].as_str(), terminal.as_slice()) {
                (Some("calling"), []) => {}
                (Some(status), [one]) if one["kind"] == format!("callout_{status}") => {
                    if ts(&one["at"]) != ts(&c["ended_at"]) {
                        problems.push(format!(
                            "{} at {} but ended_at is {}",
                            one["kind"], one["at"], c["ended_at"]
                        ));
                    }
                }
                (status, got) => problems.push(format!(
                    "status {status:?} with final events {:?}",
                    got.iter().map(|e| e["kind"].clone()).collect::<Vec<_>>()
                )),
            }
            for a in c["attempts"].as_array().into_iter().flatten() {
                let (contact, number) = (&a["contact"], &a["attempt"]);
                let placed = !matches!(a["status"].as_str(), Some("dialing" | "not_placed"));
                let want_placed = usize::from(placed);
                let got_placed = count("call_placed", contact, number);
                if got_placed != want_placed {
                    problems.push(format!(
                        "attempt {contact}/{number} is {} but has {got_placed} call_placed event(s)",
                        a["status"]
                    ));
                }
                let ended: Vec<&Value> = events
                    .iter()
                    .filter(|e| {
                        e["kind"] == "attempt_ended"
                            && &e["contact"] == contact
                            && &e["attempt"] == number
                    })
                    .collect();
                match (a["outcome"].is_null(), ended.as_slice()) {
                    (true, []) => {}
                    (false, [e]) if e["outcome"] == a["outcome"] => {}
                    (_, got) => problems.push(format!(
                        "attempt {contact}/{number} has outcome {} and attempt_ended events {:?}",
                        a["outcome"],
                        got.iter().map(|e| e["outcome"].clone()).collect::<Vec<_>>()
                    )),
                }
                if count("decided", contact, number) > 1 {
                    problems.push(format!("attempt {contact}/{number} was decided twice"));
                }
                let placed_at = events.iter().position(|e| {
                    e["kind"] == "call_placed"
                        && &e["contact"] == contact
                        && &e["attempt"] == number
                });
                let ended_at = events.iter().position(|e| {
                    e["kind"] == "attempt_ended"
                        && &e["contact"] == contact
                        && &e["attempt"] == number
                });
                if let (Some(p), Some(e)) = (placed_at, ended_at)
                    && p > e
                {
                    problems.push(format!(
                        "attempt {contact}/{number} ended before it was placed"
                    ));
                }
            }
            let mut seen = HashSet::new();
            for e in events.iter().filter(|e| e["kind"] == "call_status") {
                let key = (
                    e["contact"].to_string(),
                    e["attempt"].to_string(),
                    e["status"].to_string(),
                );
                if !seen.insert(key.clone()) {
                    problems.push(format!(
                        "status {} of attempt {}/{} recorded twice",
                        key.2, key.0, key.1
                    ));
                }
            }
            for e in events.iter().filter(|e| e["kind"] == "placement_retry") {
                let (Some(at), Some(retry)) = (ts(&e["at"]), ts(&e["retry_at"])) else {
                    continue;
                };
                let reason = e["reason"].as_str().unwrap_or_default();
                let floor = if reason.contains("429") {
                    1000 // Retry-After: 1
                } else if reason.contains("stopped before sending")
                    || reason.contains("no callback confirmed the call")
                {
                    // A dead replica's lease, or the unconfirmed window, already
                    // ran out: placed again at once.
                    0
                } else {
                    1 // an upstream refusal: backoff
                };
                if retry.0 - at.0 < floor {
                    problems.push(format!(
                        "placement retried {} ms after {} (reason {})",
                        retry.0 - at.0,
                        e["at"],
                        e["reason"]
                    ));
                }
            }
            if events.iter().any(|e| e["kind"] == "reconciled") {
                self.observed.reconciled += 1;
            }
            for p in problems {
                self.flag("the event timeline is complete and ordered", id, p);
            }
        }
    }

    /// An attempt fails only for a designed reason: the carrier refused the number
    /// for good (a 4xx other than 408/429), reported the call failed, stayed
    /// unavailable past the outage limit, or a bounded retry gave up. A single
    /// transient fault (a 5xx, garbage, a dead replica) must be retried instead:
    /// a failed attempt is a contact not called.
    fn failures(&mut self) {
        let designed = |reason: &str| {
            let refused_for_good = reason.contains("Routee answered HTTP 4")
                && !reason.contains("HTTP 408")
                && !reason.contains("HTTP 429");
            refused_for_good
                || reason.starts_with("the carrier reported")
                || reason.starts_with("carrier_unavailable")
                || reason.contains("gave up after")
                || reason.contains("no final status from the carrier")
        };
        for c in self.ev.callouts {
            let id = c["id"].as_str().unwrap_or("?");
            for a in c["attempts"].as_array().into_iter().flatten() {
                if a["outcome"] != "failed" {
                    continue;
                }
                let reason = a["reason"].as_str().unwrap_or("(no reason recorded)");
                if !designed(reason) {
                    self.flag(
                        "a transient fault never fails an attempt outright",
                        id,
                        format!("attempt {}/{} failed: {reason}", a["contact"], a["attempt"]),
                    );
                }
            }
        }
    }

    /// Every refused creation shows in the gateway's timeline as designed: a 4xx
    /// fails the attempt with its reason (and skips the contact), a 429 is retried
    /// with backoff, a 5xx makes the placement "unconfirmed".
    fn refusals(&mut self) {
        let mut by_phone: HashMap<&str, (&Value, usize)> = HashMap::new();
        for c in self.ev.callouts {
            for (k, contact) in c["contacts"].as_array().into_iter().flatten().enumerate() {
                by_phone.insert(contact["phone"].as_str().unwrap_or(""), (c, k));
            }
        }
        let mut expected: BTreeMap<(String, u16), Vec<Timestamp>> = BTreeMap::new();
        for r in self.ev.refused {
            if let Some(to) = &r.to {
                expected
                    .entry((to.clone(), r.status))
                    .or_default()
                    .push(call_ts(&r.at));
            }
        }
        for ((phone, status), times) in expected {
            let Some((c, k)) = by_phone.get(phone.as_str()).copied() else {
                continue;
            };
            let id = c["id"].as_str().unwrap_or("?");
            let needle = format!("HTTP {status}");
            let kind = match status {
                429 => "placement_retry",
                s if s >= 500 => "placement_unconfirmed",
                _ => "attempt_ended",
            };
            let seen = c["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    e["kind"] == kind
                        && e["contact"] == k
                        && e["reason"].as_str().is_some_and(|r| r.contains(&needle))
                })
                .count();
            self.observed.refusals_matched += seen.min(times.len()) as u32;
            let cancelled_before = |t: Timestamp| {
                c["status"] == "cancelled" && ts(&c["ended_at"]).is_some_and(|e| e <= t)
            };
            let missing = times.len().saturating_sub(seen);
            let unexcused: Vec<&Timestamp> = times
                .iter()
                .filter(|t| !self.excused(**t) && !cancelled_before(**t))
                .collect();
            self.observed.refusals_excused += (missing.min(times.len() - unexcused.len())) as u32;
            if missing > times.len() - unexcused.len() {
                self.flag(
                    "a carrier refusal is handled as designed",
                    id,
                    format!(
                        "the carrier answered {status} to {phone} {} time(s) (at {}), but the timeline has {seen} {kind} event(s) mentioning it",
                        times.len(),
                        times.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            if kind == "attempt_ended" && seen > 0 {
                // Skipped for good: no attempt of this contact after the refusal.
                let attempts = c["attempts"].as_array().cloned().unwrap_or_default();
                if let Some(pos) = attempts.iter().position(|a| {
                    a["contact"] == k && a["reason"].as_str().is_some_and(|r| r.contains(&needle))
                }) && attempts[pos + 1..].iter().any(|a| a["contact"] == k)
                {
                    self.flag(
                        "a carrier refusal is handled as designed",
                        id,
                        format!("contact {k} was called again after the carrier refused its number for good"),
                    );
                }
            }
        }
    }
}

/// The text a dialplan answer says, for evidence.
fn said(answer: Option<&Value>) -> String {
    answer
        .and_then(|a| a["verbs"].as_array())
        .map(|v| {
            v.iter()
                .filter_map(|v| v["message"]["text"].as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

/// `contact/attempt:outcome` of each attempt.
pub fn summary(c: &Value) -> String {
    c["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|a| {
                    format!(
                        "{}/{}:{}",
                        a["contact"],
                        a["attempt"],
                        a["outcome"]
                            .as_str()
                            .unwrap_or(a["status"].as_str().unwrap_or("?"))
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Runs every check.
pub fn check(ev: &Evidence<'_>) -> (Vec<Violation>, Observed) {
    let by_id = ev
        .callouts
        .iter()
        .filter_map(|c| c["id"].as_str().map(|id| (id, c)))
        .collect();
    let mut ch = Checker {
        ev,
        by_id,
        violations: Vec::new(),
        observed: Observed::default(),
    };
    ch.finals();
    ch.calls_per_contact();
    ch.calls_after_end();
    ch.accepts();
    ch.lanes();
    ch.event_urls();
    ch.carrier_agrees();
    ch.timelines();
    ch.refusals();
    ch.failures();
    (ch.violations, ch.observed)
}
