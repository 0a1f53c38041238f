//! Creating a call: wait for a slot of the shared outbound rate limit, render the
//! first dialplan (template, or the assistant's launch turn), `POST
//! /voice/conversation`, and record what happened.
//!
//! The carrier's answer is classified so that a call is never created twice by
//! accident: an error that may have created the call (timeout, 5xx) is not retried
//! but waited on ("unconfirmed"); only errors that provably created nothing are
//! retried, with backoff.
//!
//! Progress is committed twice around the slow part (see the `attempt` module
//! doc): `Preparing` when this replica takes the placement, `Sending` right before
//! the request leaves. A crash in between (a rate-limit wait, a slow launch turn)
//! costs a retry, not the attempt; and the `Sending` compare-and-set is the last
//! look at the callout, so a cancel that lands while the call is being prepared
//! stops it rather than racing it.

use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument;

use super::dialog::{LAUNCH_AHEAD_BUDGET, Rendering};
use super::{Applied, Engine, EngineError};
use crate::dialplan::render::{self, Listen};
use crate::dialplan::template::Vars;
use crate::domain::{
    Attempt, CallId, Callout, CalloutId, Conversation, Decision, PlaceFailure, Script, Timestamp,
};
use crate::routee::client::RouteeError;
use crate::routee::{
    Callback, CallbackStrategy, CreateConversation, Destination, Dialplan, MachineDetection,
    MachineStrategy,
};
use crate::telemetry::metrics as m;
use crate::voiceflow::Request;
use crate::voiceflow::client::VoiceflowError;

/// A rate-limit wait longer than this is not slept in-process: the attempt is
/// rescheduled durably for its slot instead.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);
/// Budget of the Voiceflow launch turn (no caller is waiting on it yet).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The first turn of a call, ready to send.
pub(super) struct FirstTurn {
    pub dialplan: Dialplan,
    pub conversation: Conversation,
    pub decision: Option<Decision>,
}

impl Engine {
    pub(super) async fn place_call(&self, id: CalloutId, call_id: CallId, slot_reserved: bool) {
        let span = tracing::info_span!("place_call", callout_id = %id, call_id = %call_id);
        async {
            if let Err(e) = self.try_place(id, call_id, slot_reserved).await {
                // The attempt keeps its lease: when it runs out the placement is
                // tried again (nothing sent yet) or waited on as "unconfirmed" (it
                // may have been sent). Nothing is lost, only delayed.
                tracing::warn!(error = %e, "placing the call failed before reaching a decision");
            }
        }
        .instrument(span)
        .await;
    }

    async fn try_place(
        &self,
        id: CalloutId,
        call_id: CallId,
        slot_reserved: bool,
    ) -> Result<(), EngineError> {
        let timing = self.settings.timing;
        let token: u64 = rand::random();
        let callout = match self
            .update(id, |c, now| c.begin_preparing(call_id, token, now, &timing))
            .await?
        {
            Applied::Committed {
                callout,
                result: true,
                ..
            } => callout,
            // Handled elsewhere, or cancelled meanwhile (the attempt ended then).
            _ => return Ok(()),
        };
        let Some(attempt) = callout.attempt(call_id) else {
            return Ok(());
        };
        let phone = &callout.contacts[attempt.contact].phone;
        if let Some(until) = self
            .store
            .reserve_person_call(phone, call_id, self.settings.person_limits)
            .await?
        {
            metrics::counter!(m::CALLS_HELD, "reason" => "person_limit").increment(1);
            tracing::info!(until = %until.rfc3339(), "per-person limit: the call waits");
            self.update(id, |c, now| (c.hold_placement(call_id, until, now), ()))
                .await?;
            return Ok(());
        }
        if !slot_reserved {
            let wait = self
                .store
                .reserve_call_slot(self.settings.call_interval)
                .await?;
            metrics::histogram!(m::RATE_LIMIT_WAIT).record(wait.as_secs_f64());
            if wait > MAX_INLINE_WAIT {
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    "rate limit: waiting for a reserved slot"
                );
                self.update(id, |c, now| {
                    (c.defer_placement(call_id, now.plus(wait)), ())
                })
                .await?;
                return Ok(());
            }
            tokio::time::sleep(wait).await;
        }
        if let Some(failure) = self.over_daily_cap(callout.created_by.as_deref()).await? {
            metrics::counter!(m::CALLS_PLACED, "result" => "daily_cap").increment(1);
            return self.report_failure(id, call_id, failure).await;
        }
        let contact = &callout.contacts[attempt.contact];
        tracing::info!(
            to = %contact.phone.masked(),
            contact = attempt.contact,
            attempt = attempt.number,
            "placing call"
        );
        let first = match self.first_turn(&callout, attempt).await {
            Ok(first) => first,
            Err(failure) => return self.report_failure(id, call_id, failure).await,
        };
        // The last look at the callout before the call may exist; what the
        // first dialplan plays is known before any callback can end the call.
        let plan_ms = self.plan_ms(&first.dialplan);
        let sending = self
            .update(id, |c, now| {
                let sending = c.begin_sending(call_id, token, now, &timing);
                if sending.1
                    && let Some(a) = c.attempt_mut(call_id)
                {
                    a.heard_plan(plan_ms, None);
                }
                sending
            })
            .await?;
        if !matches!(sending, Applied::Committed { result: true, .. }) {
            tracing::info!("the callout changed while the call was being prepared; not sent");
            return Ok(());
        }
        let request = CreateConversation {
            from: self.settings.caller_id.clone(),
            to: Destination::Phone(contact.phone.to_string()),
            dial_plan: first.dialplan,
            callback: Some(Callback {
                url: self.status_url(id, call_id),
                strategy: CallbackStrategy::OnChange,
            }),
            hangup_delay: Some(callout.policy.ring_timeout_s),
            max_duration: Some(callout.policy.max_call_s),
            // A machine hears the voicemail message, never the menu.
            machine_detection: Some(MachineDetection {
                strategy: MachineStrategy::Continue,
                event_url: Some(self.machine_url(id, call_id)),
            }),
        };
        match self.routee.create_conversation(&request).await {
            Ok(created) => {
                metrics::counter!(m::CALLS_PLACED, "result" => "ok").increment(1);
                let conversation = first.conversation;
                let decision = first.decision;
                self.update(id, move |c, now| {
                    let mut ch = c.on_placed(call_id, created.tracking_id.clone(), now, &timing);
                    if let Some(a) = c.attempt_mut(call_id)
                        && a.turn == 0
                        && a.conversation == Conversation::default()
                    {
                        a.conversation = conversation.clone();
                    }
                    if let Some(d) = decision {
                        ch.extend(c.on_decision(call_id, d, now, &timing));
                    }
                    (ch, ())
                })
                .await?;
                Ok(())
            }
            Err(e) => {
                let failure = classify_routee_error(&e);
                let label = match failure {
                    PlaceFailure::Retryable { .. } | PlaceFailure::Unconfirmed { .. } => {
                        "transient_error"
                    }
                    _ => "permanent_error",
                };
                metrics::counter!(m::CALLS_PLACED, "result" => label).increment(1);
                tracing::warn!(error = %e, "Routee refused or did not confirm the call");
                self.report_failure(id, call_id, failure).await
            }
        }
    }

    /// Counts this call against `MAX_CALLS_PER_DAY_PER_KEY` (for the API key
    /// `by` that created the callout) and `MAX_CALLS_PER_DAY` (all replicas,
    /// per UTC day); past either cap it is not placed. Toll fraud runs up a bill
    /// in calls: a leaked key or an edited flow stops here, and the operator is
    /// alerted as the counts near the caps (`ivr_calls_today`,
    /// `ivr_calls_today_by_key`).
    async fn over_daily_cap(&self, by: Option<&str>) -> Result<Option<PlaceFailure>, EngineError> {
        let day = Timestamp::now().millis().div_euclid(86_400_000);
        if let (Some(cap), Some(by)) = (self.settings.max_calls_per_day_per_key, by) {
            let n = self.store.count_call_today(day, Some(by)).await?;
            self.keys_counted_today
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(by.to_owned());
            metrics::gauge!(m::CALLS_TODAY_BY_KEY, "key" => by.to_owned()).set(n as f64);
            metrics::gauge!(m::CALLS_PER_DAY_PER_KEY_CAP).set(cap as f64);
            if n > cap {
                tracing::error!(
                    cap,
                    api_key = by,
                    "MAX_CALLS_PER_DAY_PER_KEY reached: the call is not placed"
                );
                return Ok(Some(PlaceFailure::Permanent {
                    reason: format!(
                        "the daily call cap of API key {by} (MAX_CALLS_PER_DAY_PER_KEY={cap}) is reached"
                    ),
                }));
            }
        }
        let Some(cap) = self.settings.max_calls_per_day else {
            return Ok(None);
        };
        let n = self.store.count_call_today(day, None).await?;
        metrics::gauge!(m::CALLS_TODAY).set(n as f64);
        metrics::gauge!(m::CALLS_PER_DAY_CAP).set(cap as f64);
        if n <= cap {
            return Ok(None);
        }
        tracing::error!(cap, "MAX_CALLS_PER_DAY reached: the call is not placed");
        Ok(Some(PlaceFailure::Permanent {
            reason: format!("the daily call cap (MAX_CALLS_PER_DAY={cap}) is reached"),
        }))
    }

    async fn report_failure(
        &self,
        id: CalloutId,
        call_id: CallId,
        failure: PlaceFailure,
    ) -> Result<(), EngineError> {
        let timing = self.settings.timing;
        self.update(id, |c, now| {
            (
                c.on_place_failed(call_id, failure.clone(), now, &timing),
                (),
            )
        })
        .await?;
        Ok(())
    }

    /// The dialplan the call starts with.
    async fn first_turn(
        &self,
        callout: &Callout,
        attempt: &Attempt,
    ) -> Result<FirstTurn, PlaceFailure> {
        let contact = &callout.contacts[attempt.contact];
        let event_url = self.collect_url(callout.id, attempt.call_id, 0);
        match &callout.script {
            Script::Template { name } => {
                let template = self
                    .templates
                    .get(name)
                    .ok_or_else(|| PlaceFailure::Script {
                        reason: format!("dialplan template {name:?} is not loaded on this replica"),
                        retryable: false,
                    })?;
                let vars = template_vars(callout, attempt);
                let silence_url = self.silence_url();
                let dialplan = template.render_call(
                    &vars,
                    contact.language,
                    callout.policy.input_timeout_s,
                    callout.policy.reprompts,
                    Listen::new(&event_url, &silence_url),
                );
                Ok(FirstTurn {
                    dialplan,
                    conversation: Conversation::default(),
                    decision: None,
                })
            }
            Script::Assistant { id } => {
                let resolved = match self.assistants.resolve(*id).await {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        return Err(PlaceFailure::Script {
                            reason: format!("assistant {id} was deleted"),
                            retryable: false,
                        });
                    }
                    Err(e) => {
                        return Err(PlaceFailure::Script {
                            reason: e.to_string(),
                            retryable: matches!(e, crate::assistants::ResolveError::Store(_)),
                        });
                    }
                };
                let vars = launch_variables(callout, attempt);
                let rendering = Rendering::for_call(Some(&resolved), callout, Some(attempt));
                let started = std::time::Instant::now();
                let mut launch = self
                    .interact(
                        &resolved.credentials,
                        &attempt.call_id.to_string(),
                        &Request::Launch,
                        Some(&vars),
                        LAUNCH_TIMEOUT,
                        &rendering.actions,
                    )
                    .await
                    .map_err(|e| PlaceFailure::Script {
                        reason: format!("Voiceflow launch failed: {e}"),
                        retryable: launch_retryable(&e),
                    })?;
                let took = started.elapsed();
                self.hear_audio(&mut launch.traces, Self::UNHURRIED_AUDIO_BUDGET)
                    .await;
                let silence_url = self.silence_url();
                let ctx = rendering.context(
                    Listen::new(&event_url, &silence_url),
                    &self.settings.caller_id,
                );
                let turn = render::render_turn(&launch.traces, &ctx);
                for note in &turn.notes {
                    tracing::debug!(note = %note, "rendering note");
                }
                // The assistant's own no-reply response, ready for a silent callee.
                let ahead = self
                    .run_no_reply_ahead(
                        &resolved.credentials,
                        &attempt.call_id.to_string(),
                        &turn,
                        &ctx,
                        LAUNCH_AHEAD_BUDGET,
                        took,
                    )
                    .await;
                let (dialplan, ahead) = match ahead {
                    Some(run) => (run.dialplan, Some(run.ahead)),
                    None => (turn.dialplan, None),
                };
                Ok(FirstTurn {
                    conversation: Conversation::after_turn(
                        turn.menu,
                        turn.no_reply_timeout.is_some(),
                        turn.ends_call,
                    )
                    .with_ahead(ahead),
                    decision: turn.decision,
                    dialplan,
                })
            }
        }
    }
}

/// Template placeholders: the callout's variables as text, plus the built-ins.
pub(super) fn template_vars(callout: &Callout, attempt: &Attempt) -> Vars {
    let mut vars: Vars = callout
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), value_text(v)))
        .collect();
    vars.insert(
        "contact_name".into(),
        callout.contacts[attempt.contact].name.clone(),
    );
    vars.insert("callout_name".into(), callout.name.clone());
    vars.insert("attempt".into(), attempt.number.to_string());
    vars.insert(
        "max_attempts".into(),
        callout.policy.attempts_per_contact.to_string(),
    );
    vars
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `state.variables` of the launch turn: the callout's variables plus
/// `contact_name`, `callout_name` and `attempt` (the contract's names).
pub(super) fn launch_variables(callout: &Callout, attempt: &Attempt) -> Map<String, Value> {
    let mut vars = callout.variables.clone();
    vars.insert(
        "contact_name".into(),
        Value::String(callout.contacts[attempt.contact].name.clone()),
    );
    vars.insert("callout_name".into(), Value::String(callout.name.clone()));
    vars.insert("attempt".into(), Value::from(attempt.number));
    vars
}

/// Whether a failed launch turn is worth another try. Unlike other turns a
/// launch may be sent twice (it starts the conversation over, and nobody has
/// heard anything yet), so only errors that say the assistant itself cannot be
/// used are final; an unreadable answer (a proxy's error page, a truncated
/// body) is as transient as a 5xx. Final errors fail the attempt and skip the
/// contact, so a glitch must never be taken for one.
fn launch_retryable(e: &VoiceflowError) -> bool {
    !matches!(
        e,
        VoiceflowError::Unauthorized
            | VoiceflowError::VersionNotFound { .. }
            | VoiceflowError::Invalid { .. }
    ) && !matches!(e, VoiceflowError::Upstream { status, .. } if (400..500).contains(status) && *status != 408)
}

/// Sorts a carrier error into what the escalation does next.
pub(super) fn classify_routee_error(e: &RouteeError) -> PlaceFailure {
    let reason = e.to_string();
    if e.may_have_been_applied() {
        PlaceFailure::Unconfirmed { reason }
    } else if e.retryable() {
        PlaceFailure::Retryable {
            reason,
            retry_after: e.retry_after(),
        }
    } else {
        PlaceFailure::Permanent { reason }
    }
}
