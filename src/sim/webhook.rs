//! Outgoing webhooks: status callbacks and COLLECT `eventUrl` POSTs.
//!
//! Status callbacks of one call go through one queue drained by one task, so they
//! reach the gateway in the order the call went through its statuses, unless
//! faults say otherwise: an extra random delay, an intermediate status held back
//! until after the next one (`reorder_callbacks`), a duplicate, a dropped final.
//! A delivery that fails (transport error or non-2xx) is retried twice, briefly;
//! the retry delays are wall-clock, not scaled, because they model the carrier's
//! HTTP client rather than the callee.
//!
//! eventUrl POSTs are made by the call itself (the call waits for the answer), so
//! they are not queued with the callbacks: an eventUrl POST may reach the gateway
//! before the `InProgress` callback does.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dialplan_rules::check_dialplan;
use super::faults::probability;
use super::state::{CallbackRecord, Shared, SimEvent};
use crate::routee::{CollectEvent, Dialplan, StatusCallback};

/// Waits before the 2nd and 3rd try of a failed status callback.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// Per-request limit for a status callback (the gateway should answer at once).
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the task that delivers one call's status callbacks to `url`; the call
/// sends them into the returned queue and drops it after the final one.
pub(crate) fn spawn_status_delivery(
    sim: &Arc<Shared>,
    message_id: String,
    url: String,
    rng: StdRng,
    cancel: CancellationToken,
) -> mpsc::UnboundedSender<StatusCallback> {
    let (tx, rx) = mpsc::unbounded_channel();
    let delivery = StatusDelivery {
        sim: Arc::clone(sim),
        message_id,
        url,
        rng,
        cancel,
    };
    sim.tasks.spawn(delivery.run(rx));
    tx
}

struct StatusDelivery {
    sim: Arc<Shared>,
    message_id: String,
    url: String,
    rng: StdRng,
    cancel: CancellationToken,
}

impl StatusDelivery {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<StatusCallback>) {
        // An intermediate callback held back by `reorder_callbacks`: it goes out
        // right after the next delivered one (possibly the final).
        let mut held: Option<StatusCallback> = None;
        loop {
            let next = tokio::select! {
                () = self.cancel.cancelled() => return,
                next = rx.recv() => next,
            };
            let Some(callback) = next else { break };
            // Faults are read per callback so that `set_faults` acts on live calls.
            let faults = self.sim.lock().faults.faults.clone();
            let is_final = callback.status.name.is_final();
            if is_final && self.rng.random_bool(probability(faults.drop_final_status)) {
                self.record(&callback, false, true, false, 0);
                continue;
            }
            let (min, max) = faults.callback_delay_ms;
            if max > 0 {
                let ms = self.rng.random_range(min.min(max)..=max);
                if !self.sleep(Duration::from_millis(ms)).await {
                    return;
                }
            }
            if faults.reorder_callbacks && !is_final && held.is_none() && self.rng.random_bool(0.5)
            {
                held = Some(callback);
                continue;
            }
            self.deliver(&callback, faults.duplicate_callbacks).await;
            if let Some(late) = held.take() {
                self.deliver(&late, faults.duplicate_callbacks).await;
            }
        }
        if let Some(late) = held.take() {
            let duplicate = self.sim.lock().faults.faults.duplicate_callbacks;
            self.deliver(&late, duplicate).await;
        }
    }

    /// Sleeps unless cancelled; false when cancelled.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }

    async fn deliver(&mut self, callback: &StatusCallback, duplicate_p: f64) {
        let duplicate = self.rng.random_bool(probability(duplicate_p));
        let mut tries = 0;
        let mut delivered = false;
        for delay in std::iter::once(Duration::ZERO).chain(RETRY_DELAYS) {
            if !self.sleep(delay).await {
                return;
            }
            tries += 1;
            if post_ok(&self.sim.http, &self.url, callback, CALLBACK_TIMEOUT).await {
                delivered = true;
                break;
            }
        }
        if duplicate {
            post_ok(&self.sim.http, &self.url, callback, CALLBACK_TIMEOUT).await;
        }
        self.record(callback, delivered, false, duplicate, tries);
    }

    fn record(
        &self,
        callback: &StatusCallback,
        delivered: bool,
        dropped: bool,
        duplicated: bool,
        tries: u32,
    ) {
        let status = callback.status.name.clone();
        self.sim.with_record(&self.message_id, |r| {
            r.callbacks.push(CallbackRecord {
                status: status.clone(),
                delivered,
                dropped,
                duplicated,
                tries,
            });
        });
        self.sim.emit(SimEvent::CallbackSent {
            message_id: self.message_id.clone(),
            status,
            delivered,
        });
    }
}

/// POSTs `body` as JSON; true on a 2xx answer.
async fn post_ok(
    http: &reqwest::Client,
    url: &str,
    body: &impl serde::Serialize,
    timeout: Duration,
) -> bool {
    match http.post(url).timeout(timeout).json(body).send().await {
        Ok(resp) => resp.status().is_success(),
        Err(e) => {
            tracing::debug!(error = %e, "simulated carrier: webhook delivery failed");
            false
        }
    }
}

/// The gateway's answer to an eventUrl POST.
#[derive(Debug)]
pub(crate) struct EventAnswer {
    pub http_status: Option<u16>,
    /// The body when it was JSON.
    pub body: Option<Value>,
    /// A dialplan to play instead of the rest of the current one, or why not.
    pub dialplan: Result<Dialplan, String>,
}

/// POSTs one COLLECT event and reads the answer within `timeout` (Routee: 3 s).
pub(crate) async fn post_event(
    http: &reqwest::Client,
    url: &str,
    event: &CollectEvent,
    timeout: Duration,
) -> EventAnswer {
    let seconds = timeout.as_secs_f64();
    let failed = |http_status, body, reason: String| EventAnswer {
        http_status,
        body,
        dialplan: Err(reason),
    };
    let resp = match http.post(url).timeout(timeout).json(event).send().await {
        Ok(resp) => resp,
        Err(e) if e.is_timeout() => {
            return failed(None, None, format!("no answer within {seconds} s"));
        }
        Err(e) => return failed(None, None, format!("POST failed: {e}")),
    };
    let status = resp.status().as_u16();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() => {
            return failed(Some(status), None, format!("no answer within {seconds} s"));
        }
        Err(e) => return failed(Some(status), None, format!("answer unreadable: {e}")),
    };
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    if !(200..300).contains(&status) {
        return failed(Some(status), body, format!("answered HTTP {status}"));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return failed(Some(status), None, "empty answer".into());
    }
    let Some(json) = body else {
        return failed(Some(status), None, "answer is not JSON".into());
    };
    let dialplan = serde_json::from_value::<Dialplan>(json.clone())
        .map_err(|e| format!("answer is not a dialplan: {e}"))
        .and_then(|plan| check_dialplan(&plan).map(|()| plan));
    EventAnswer {
        http_status: Some(status),
        body: Some(json),
        dialplan,
    }
}

/// Sends a duplicate eventUrl POST whose answer nobody reads.
pub(crate) fn post_event_duplicate(sim: &Arc<Shared>, url: String, event: CollectEvent) {
    let http = sim.http.clone();
    let timeout = sim.event_url_timeout;
    sim.tasks.spawn(async move {
        post_ok(&http, &url, &event, timeout).await;
    });
}
