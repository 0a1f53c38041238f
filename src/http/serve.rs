//! The accept loop: the router served over HTTP/1.1 with the limits a
//! production edge needs, which `axum::serve` does not set.
//!
//! - **Header-read timeout** (`HTTP_HEADER_TIMEOUT_MS`): a client that has not
//!   sent a whole request head within it is disconnected. hyper runs this timer
//!   whenever the connection waits for a head, so an idle keep-alive connection
//!   is closed after it too: a slowloris cannot hold a connection open.
//! - **Header size** (`HTTP_MAX_HEADER_BYTES`): a larger head is a 431.
//! - **Connections** (`HTTP_MAX_CONNECTIONS`): beyond it the loop stops
//!   accepting, so new clients wait in the kernel's backlog instead of each
//!   costing a task and buffers; a flood cannot exhaust memory or descriptors.
//! - **Connections per client address** (`HTTP_MAX_CONNECTIONS_PER_IP`, off by
//!   default): a connection beyond it is accepted and closed at once. Without
//!   it a flood of slow or idle connections from one client fills
//!   `HTTP_MAX_CONNECTIONS` and sits in the backlog in front of everyone
//!   else's, who then wait as long as the flood lasts. Behind a load balancer
//!   every connection comes from the balancer's address: leave it unset there.
//! - **Request timeout** (`HTTP_REQUEST_TIMEOUT_MS`, [`request_timeout`]): the
//!   time from the request to its response head, body reading included, so a
//!   slow body is bounded too. The webhooks answer within their own, shorter
//!   `WEBHOOK_DEADLINE_MS`; the event stream is bounded up to its first byte
//!   only, then streams.
//!
//! HTTP/1.1 only: HTTP/2 (which needs TLS in practice) ends at the load
//! balancer or TLS terminator in front of the gateway.
//!
//! Shutdown: when `stop` is cancelled the loop stops accepting, every open
//! connection finishes its in-flight request and closes (hyper's graceful
//! shutdown), and [`serve`] returns once all are closed.

use std::io;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::ApiError;
use super::state::AppState;

/// The limits of the HTTP server (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: Option<usize>,
}

/// Open connections per client address, for `HTTP_MAX_CONNECTIONS_PER_IP`.
#[derive(Debug, Default)]
struct PerIp(std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>);

/// One connection counted against its address; uncounted when dropped.
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Counts a connection from `ip`, or `None` when it already has `limit`.
    fn enter(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = table.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut table = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = table.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    stop: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let per_ip = Arc::new(PerIp::default());
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // wait a moment rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let ip_slot = match limits.max_connections_per_ip {
            None => None,
            Some(limit) => match per_ip.enter(peer.ip().to_canonical(), limit) {
                Some(s) => Some(s),
                None => {
                    // Closed at once (the slot goes back): a client holding
                    // its share cannot queue more in the backlog, in front of
                    // everyone else's connections.
                    tracing::debug!(peer = %peer.ip(), "HTTP_MAX_CONNECTIONS_PER_IP reached: connection closed");
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let _slots = (slot, ip_slot);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes);
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// The request timeout (see the module documentation): a 408 with our error
/// body when the response head is not ready in time.
pub async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config.http_request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request was not complete within {} ms (HTTP_REQUEST_TIMEOUT_MS)",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}
