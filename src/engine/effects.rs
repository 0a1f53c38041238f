//! Effects other than placing calls: hanging up, notifying `notify_url`, saving
//! Voiceflow transcripts. Each reports back through a transition so a failure is
//! retried from the document (hangups, notifications) or merely logged
//! (transcripts: a failure to save never disturbs a call).

use std::time::Duration;

use super::Engine;
use super::view::CalloutView;
use crate::domain::{CallId, CallState, CalloutId, Outcome, Script, Timestamp};
use crate::routee::CallAction;
use crate::routee::client::RouteeError;
use crate::telemetry::metrics as m;
use crate::voiceflow::client::{TranscriptRequest, TranscriptUser};

impl Engine {
    /// Ends a live call (cancellation).
    #[tracing::instrument(name = "hang_up", skip_all, fields(callout_id = %id, call_id = %call))]
    pub(super) async fn hang_up(&self, id: CalloutId, call: CallId) {
        let ok = match self.try_hang_up(id, call).await {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(callout_id = %id, call_id = %call, error = %e, "hangup failed; will retry");
                false
            }
        };
        let timing = self.settings.timing;
        if let Err(e) = self
            .update(id, |c, now| {
                (c.on_hangup_result(call, ok, now, &timing), ())
            })
            .await
        {
            tracing::warn!(callout_id = %id, call_id = %call, error = %e, "could not record the hangup result");
        }
    }

    async fn try_hang_up(&self, id: CalloutId, call: CallId) -> Result<bool, RouteeError> {
        let Ok(Some(v)) = self.store.load(id).await else {
            return Ok(false);
        };
        let Some(a) = v.value.attempt(call) else {
            return Ok(true);
        };
        if a.state.is_final() {
            return Ok(true);
        }
        // The call-leg id comes with callbacks; without one, look it up.
        let message_id = match (&a.message_id, &a.tracking_id) {
            (Some(m), _) => m.clone(),
            (None, Some(t)) => match self
                .routee
                .dial_tracking(t)
                .await?
                .content
                .into_iter()
                .find_map(|p| p.message_id)
            {
                Some(m) => m,
                None => return Ok(false),
            },
            (None, None) => return Ok(false),
        };
        let first = if a.state == CallState::InProgress {
            CallAction::Hangup
        } else {
            CallAction::Reject
        };
        match self.routee.control_call(&message_id, first).await {
            Ok(()) => Ok(true),
            // Our view of the state may be behind (answered meanwhile): try the other.
            Err(RouteeError::Api { status, .. }) if (400..500).contains(&status) => {
                let other = if first == CallAction::Hangup {
                    CallAction::Reject
                } else {
                    CallAction::Hangup
                };
                self.routee
                    .control_call(&message_id, other)
                    .await
                    .map(|()| true)
            }
            Err(e) => Err(e),
        }
    }

    /// POSTs the final state to `notify_url`, signed.
    #[tracing::instrument(name = "notify", skip_all, fields(callout_id = %id))]
    pub(super) async fn notify(&self, id: CalloutId) {
        let result = self.try_notify(id).await;
        let label = match &result {
            Ok(()) => "delivered",
            Err(r) if r.starts_with("refused") => "refused",
            Err(_) => "retry",
        };
        metrics::counter!(m::NOTIFY_DELIVERIES, "result" => label).increment(1);
        let timing = self.settings.timing;
        let r = self
            .update(id, |c, now| {
                (c.on_notify_result(result.clone(), now, &timing), ())
            })
            .await;
        if let Ok(super::Applied::Committed { callout, .. }) = &r
            && callout
                .notify
                .as_ref()
                .is_some_and(|n| !n.delivered && n.next_at.is_none())
        {
            metrics::counter!(m::NOTIFY_DELIVERIES, "result" => "gave_up").increment(1);
        }
        if let Err(e) = r {
            tracing::warn!(callout_id = %id, error = %e, "could not record a notification result");
        }
    }

    async fn try_notify(&self, id: CalloutId) -> Result<(), String> {
        let Ok(Some((callout, events))) = self.callout(id).await else {
            return Err("callout unavailable".into());
        };
        let Some(raw) = &callout.notify_url else {
            return Ok(());
        };
        let url = crate::net::check_outbound_url(raw, self.settings.allow_private_urls)
            .map_err(|e| format!("refused: {e}"))?;
        let body = serde_json::to_vec(&CalloutView::build(&callout, Some(&events)))
            .map_err(|e| e.to_string())?;
        let signature = self
            .signer
            .sign_notification(Timestamp::now().millis() / 1000, &body);
        let tries = callout.notify.as_ref().map_or(0, |n| n.tries) + 1;
        let started = std::time::Instant::now();
        let response = self
            .notify_http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Ivr-Signature", signature)
            .header("X-Ivr-Callout", id.to_string())
            .header("X-Ivr-Delivery", tries.to_string())
            .body(body)
            .send()
            .await;
        crate::net::record_upstream(
            "notify",
            "notify",
            started,
            crate::net::UpstreamResult::of(&response),
        );
        match response {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Err("timeout".into()),
            Err(e) if e.is_connect() => Err("could not connect".into()),
            Err(_) => Err("request failed".into()),
        }
    }

    /// Saves a finished call's conversation to Voiceflow transcripts, when the
    /// assistant asks for it. Failures are logged, never retried into the call.
    #[tracing::instrument(name = "transcript", skip_all, fields(callout_id = %id, call_id = %call))]
    pub(super) async fn save_transcript(&self, id: CalloutId, call: CallId) {
        let Ok(Some(v)) = self.store.load(id).await else {
            return;
        };
        let callout = v.value;
        let Script::Assistant { id: assistant } = callout.script else {
            return;
        };
        let Some(a) = callout.attempt(call) else {
            return;
        };
        let Ok(Some(resolved)) = self.assistants.resolve(assistant).await else {
            return;
        };
        let settings = &resolved.assistant.settings;
        let (Some(project_id), Some(version_id)) = (
            &resolved.assistant.project_id,
            &resolved.assistant.version_id,
        ) else {
            if settings.save_transcripts {
                tracing::warn!(assistant_id = %assistant, "transcripts enabled but the project/version ids are unknown");
            }
            return;
        };
        if !settings.save_transcripts {
            return;
        }
        let contact = &callout.contacts[a.contact];
        let outcome = a.outcome.map_or("unknown", Outcome::as_str);
        let request = TranscriptRequest {
            project_id: project_id.clone(),
            version_id: version_id.clone(),
            session_id: call.to_string(),
            device: "phone".into(),
            os: "routee".into(),
            browser: "ivr-gateway".into(),
            // Shown in Voiceflow's UI: the name, a masked number and the outcome.
            user: TranscriptUser {
                name: format!("{} ({}) · {outcome}", contact.name, contact.phone.masked()),
                image: None,
            },
            report_tags: None,
        };
        match tokio::time::timeout(
            Duration::from_secs(15),
            self.voiceflow
                .save_transcript(&resolved.credentials, &request),
        )
        .await
        {
            Ok(Ok(_)) => tracing::debug!(callout_id = %id, call_id = %call, "transcript saved"),
            Ok(Err(e)) => {
                tracing::warn!(callout_id = %id, call_id = %call, error = %e, "saving the transcript failed")
            }
            Err(_) => {
                tracing::warn!(callout_id = %id, call_id = %call, "saving the transcript timed out")
            }
        }
    }
}
