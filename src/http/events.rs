//! `GET /v1/callouts/{id}/events`: a callout's timeline as Server-Sent Events,
//! for the console's live page and for integrations.
//!
//! # Protocol
//!
//! - Every timeline event is one message: `id:` its index in the timeline (0 is
//!   `callout_created`), `data:` the event exactly as `GET /v1/callouts/{id}`
//!   shows it in `events` (JSON on one line). The first message also carries
//!   `retry: 2000`.
//! - `Last-Event-ID: n` resumes after event `n`, which is what a browser's
//!   `EventSource` sends when it reconnects; without it the stream starts at the
//!   first event. Anything but a decimal number is a 400 naming the header.
//! - The stream ends when the callout is *settled*: its status is final, no call
//!   of it is still live, and nothing is left to do (a hangup or the `notify_url`
//!   delivery). Its last event is then the timeline's last. An `end` message
//!   follows (`event: end`, `data: {"status": "accepted"}`, no id) and the
//!   response ends. A client that reconnects after that with the last id gets
//!   `204 No Content`, which tells `EventSource` to stop reconnecting.
//! - A comment line every 15 s keeps proxies from closing an idle stream.
//! - On shutdown (SIGTERM) the stream ends without `end`: the client reconnects,
//!   through the load balancer to another replica, with its `Last-Event-ID`.
//!
//! Same authentication as `GET /v1/callouts/{id}` (the dispatcher role).
//!
//! # Where the events come from, and why the store is polled
//!
//! The timeline list in the store (`ev:<id>`, see [`crate::store::keys`]) is the
//! only source: a stream reads it from its resume index with
//! [`Store::events_since`](crate::store::Store::events_since), so any replica
//! serves any stream, whichever replica committed the events, and a resume is a
//! range read from the client's index. A stream reads again when this replica
//! commits an event of its callout (the engine's in-process broadcast: instant
//! for the webhooks and timers that land here) and otherwise every
//! [`POLL`] (events committed by other replicas).
//!
//! Redis pub/sub was the alternative. It would save the periodic read, but it
//! needs a subscriber connection per replica and a `PUBLISH` in the commit
//! script, loses what is published while a subscriber reconnects (so the list
//! must be read anyway to resume, and the list stays the truth), and behaves
//! differently on Redis Cluster (classic pub/sub broadcasts to every node;
//! sharded pub/sub needs Redis 7). A range read of a short list costs one
//! round trip: a hundred open consoles add a few hundred cheap reads per second,
//! which Redis does not notice, for a latency of at most [`POLL`] across
//! replicas. The in-memory store has one replica, so its streams are always
//! woken by the broadcast.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Dispatcher;
use super::callout_input::CalloutPath;
use super::callouts::parse_id;
use super::error::{ApiError, ErrorBody};
use super::openapi::{NotFound, Unavailable};
use super::state::AppState;
use crate::domain::{Callout, CalloutId, CalloutStatus, Event};
use crate::engine::TimelineEvent;
use crate::engine::view::event_view;

/// Longest wait before a stream reads the store again (events committed by
/// another replica appear within this).
pub const POLL: Duration = Duration::from_millis(500);
/// How often a stream with nothing new reads the callout itself, to notice that
/// it settled without a new event (or expired).
const RECHECK: Duration = Duration::from_secs(5);
/// Comment lines on an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What a browser waits before reconnecting.
const RETRY: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// Settled: nothing will happen to this callout any more. Final, no attempt
/// still open (a live call, an answered call in its grace period), nothing due
/// (a hangup or notification retry).
pub fn settled(c: &Callout) -> bool {
    c.status.is_final() && c.open_attempts().next().is_none() && c.next_due().is_none()
}

/// The index after `Last-Event-ID`, or 0 without one.
fn resume_index(headers: &HeaderMap) -> Result<usize, ApiError> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(0);
    };
    let text = raw.to_str().unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Last-Event-ID must be the id of an event of this stream (a decimal number), not {text:?}"
            ))
        })
}

/// The callout's timeline as Server-Sent Events, live until it is settled
///
/// Each message: `id` the event's index in the timeline, `data` the Event as
/// JSON (as `GET /v1/callouts/{id}` shows it). Works on any replica: the events
/// are read from the store. Resumes after `Last-Event-ID` (what a reconnecting
/// EventSource sends). Once the callout is final with no call live and nothing
/// left to do, an `end` message (`data: {"status": ...}`, no id) closes the
/// stream. A comment every 15 s keeps it open.
#[utoipa::path(
    get,
    path = "/v1/callouts/{id}/events",
    tag = "callouts",
    operation_id = "calloutEvents",
    params(
        CalloutPath,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (its id, a decimal number); absent: from the first event."),
    ),
    extensions(("x-required-role" = json!("dispatcher"))),
    responses(
        (status = 200, description = "The stream (text/event-stream); the schema is that of one message.", body = StreamMessage, content_type = "text/event-stream"),
        (status = 204, description = "Settled, and Last-Event-ID is its last event: nothing more will come (EventSource stops reconnecting)."),
        (status = 400, description = "Last-Event-ID is not a number (code bad_request).", body = ErrorBody),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
async fn stream(
    _caller: Dispatcher,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let from = resume_index(&headers)?;
    // Subscribe before the first read, so no local commit falls in between.
    let wake = state.engine.subscribe();
    let callout = state
        .engine
        .store
        .load(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no callout has id {id}")))?
        .value;
    let pending = state.engine.store.events_since(id, from).await?;
    if settled(&callout) && pending.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut follow = Follow {
        state,
        id,
        next: from,
        queue: VecDeque::new(),
        wake,
        phase: Phase::Following,
        checked: Instant::now(),
        first: true,
    };
    follow.take(pending);
    if settled(&callout) {
        follow.phase = Phase::Ending(callout.status);
    }
    let mut response = Sse::new(follow.into_stream())
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // nginx and similar proxies buffer responses unless told not to.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One message of the stream, as an SSE parser reads it (documentation only:
/// the handler writes these fields with axum's `Sse`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct StreamMessage {
    /// The event's index in the timeline (a decimal number); absent on `end`.
    id: Option<String>,
    /// `message` (a timeline event) or `end` (the callout is settled).
    #[schema(example = "message")]
    event: Option<StreamKind>,
    /// A timeline event as JSON, as `GET /v1/callouts/{id}` shows it in
    /// `events`; on `end`, `{"status": ...}` with the callout's final status.
    #[schema(example = r#"{"at":"2026-12-03T12:51:23.760Z","kind":"callout_created"}"#)]
    data: String,
    /// Milliseconds before a client reconnects (on the first message only).
    retry: Option<u64>,
}

/// What an SSE message of the timeline stream is.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum StreamKind {
    Message,
    End,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Following,
    /// Settled: send what is queued, then `end` with this status.
    Ending(CalloutStatus),
    Done,
}

/// One open stream: where it is in the timeline and what it has yet to send.
struct Follow {
    state: AppState,
    id: CalloutId,
    /// Index of the next event to read from the store.
    next: usize,
    queue: VecDeque<(usize, Event)>,
    wake: broadcast::Receiver<TimelineEvent>,
    phase: Phase,
    /// When the callout document was last read.
    checked: Instant,
    /// No message sent yet (the first one carries `retry`).
    first: bool,
}

impl Follow {
    fn into_stream(self) -> impl Stream<Item = Result<SseEvent, Infallible>> {
        futures::stream::unfold(self, |mut f| async move {
            let message = f.next_message().await?;
            Some((Ok(message), f))
        })
    }

    fn take(&mut self, events: Vec<Event>) {
        for e in events {
            self.queue.push_back((self.next, e));
            self.next += 1;
        }
    }

    /// The next message, waiting for one; `None` ends the stream.
    async fn next_message(&mut self) -> Option<SseEvent> {
        loop {
            if let Some((index, event)) = self.queue.pop_front() {
                let mut message = SseEvent::default()
                    .id(index.to_string())
                    .data(event_view(&event).to_string());
                if std::mem::take(&mut self.first) {
                    message = message.retry(RETRY);
                }
                return Some(message);
            }
            match self.phase {
                Phase::Done => return None,
                Phase::Ending(status) => {
                    self.phase = Phase::Done;
                    let data = json!({"status": status.as_str()}).to_string();
                    return Some(SseEvent::default().event("end").data(data));
                }
                Phase::Following => {}
            }
            if self.state.is_draining() {
                return None;
            }
            self.wait().await;
            if let Err(e) = self.read().await {
                // The client resumes from its last id once the store is back.
                tracing::warn!(callout_id = %self.id, error = %e, "event stream ended: the store failed");
                return None;
            }
        }
    }

    /// Until this replica commits an event of the callout, or [`POLL`].
    async fn wait(&mut self) {
        let id = self.id;
        let wake = &mut self.wake;
        let local = async {
            loop {
                match wake.recv().await {
                    Ok(t) if t.callout == id => return,
                    Ok(_) => {}
                    // Missed some: one of them may be ours.
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        let _ = tokio::time::timeout(POLL, local).await;
    }

    /// Reads what is new; reads the callout too when something arrived (or now
    /// and then), and moves to `Ending` once it is settled.
    async fn read(&mut self) -> Result<(), crate::store::StoreError> {
        let store = self.state.engine.store.clone();
        let fresh = store.events_since(self.id, self.next).await?;
        if fresh.is_empty() && self.checked.elapsed() < RECHECK {
            return Ok(());
        }
        self.take(fresh);
        self.checked = Instant::now();
        match store.load(self.id).await? {
            // Expired (the retention period): nothing more will come.
            None => self.phase = Phase::Done,
            Some(doc) if settled(&doc.value) => {
                // Events are committed with the state: read after a settled
                // document, the timeline is complete.
                let last = store.events_since(self.id, self.next).await?;
                self.take(last);
                self.phase = Phase::Ending(doc.value.status);
            }
            Some(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("last-event-id", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn last_event_id_resumes_after_that_event() {
        assert_eq!(resume_index(&HeaderMap::new()).unwrap(), 0);
        assert_eq!(resume_index(&with("")).unwrap(), 0);
        assert_eq!(resume_index(&with("0")).unwrap(), 1);
        assert_eq!(resume_index(&with(" 41 ")).unwrap(), 42);
        for bad in ["-1", "x", "1.5", "18446744073709551615"] {
            let e = resume_index(&with(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.message.contains("Last-Event-ID"), "{}", e.message);
        }
    }
}
