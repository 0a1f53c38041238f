//! A small load balancer in front of the replicas: it is the gateway's
//! `PUBLIC_URL`, so every webhook (and every API call of the suite) lands on a
//! random live replica. Like a real one, it tries another replica when a
//! connection is refused (nothing was sent), and answers 502 when the chosen
//! replica died mid-request or none is up. Its own 502s carry a JSON body
//! `{"load_balancer": ...}` so the checks can tell them from the gateway's answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::seq::SliceRandom;
use tokio::net::TcpListener;

#[derive(Debug, Default)]
pub struct LbStats {
    pub forwarded: AtomicU64,
    /// Refused connections retried on another replica.
    pub refused: AtomicU64,
    /// 502: no replica was up.
    pub no_replica: AtomicU64,
    /// 502: the replica failed after the request was sent (killed mid-request).
    pub broken: AtomicU64,
}

pub struct LbShared {
    /// The port of each replica while it is up.
    up: Mutex<Vec<Option<u16>>>,
    http: reqwest::Client,
    pub stats: LbStats,
}

#[derive(Clone)]
pub struct LoadBalancer {
    pub url: String,
    pub shared: Arc<LbShared>,
}

/// Hop-by-hop headers a proxy must not forward.
const HOP: [HeaderName; 3] = [header::HOST, header::CONNECTION, header::CONTENT_LENGTH];

impl LoadBalancer {
    pub async fn start(replicas: usize) -> Self {
        let shared = Arc::new(LbShared {
            up: Mutex::new(vec![None; replicas]),
            // No pooled connections: a connection to a killed replica must fail as
            // "refused" on the next request, not as a broken reused socket.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            stats: LbStats::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("lb bind");
        let url = format!("http://{}", listener.local_addr().expect("lb addr"));
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared }
    }

    pub fn set_up(&self, replica: usize, port: Option<u16>) {
        self.shared.up.lock().expect("lb lock")[replica] = port;
    }
}

fn lb_error(reason: &str) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "load_balancer": reason }).to_string(),
    )
        .into_response()
}

async fn forward(State(lb): State<Arc<LbShared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 8 << 20).await else {
        return lb_error("request body unreadable");
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut ports: Vec<u16> = lb
        .up
        .lock()
        .expect("lb lock")
        .iter()
        .flatten()
        .copied()
        .collect();
    ports.shuffle(&mut rand::rng());
    for port in ports {
        let mut req = lb
            .http
            .request(
                parts.method.clone(),
                format!("http://127.0.0.1:{port}{path}"),
            )
            .body(body.clone());
        for (name, value) in &parts.headers {
            if !HOP.contains(name) {
                req = req.header(name, value);
            }
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let Ok(bytes) = resp.bytes().await else {
                    lb.stats.broken.fetch_add(1, Ordering::Relaxed);
                    return lb_error("replica failed while answering");
                };
                lb.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                let mut out = Response::new(Body::from(bytes));
                *out.status_mut() = status;
                for (name, value) in &headers {
                    if !HOP.contains(name) && name != header::TRANSFER_ENCODING {
                        out.headers_mut().insert(name, value.clone());
                    }
                }
                return out;
            }
            Err(e) if e.is_connect() => {
                lb.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                lb.stats.broken.fetch_add(1, Ordering::Relaxed);
                return lb_error("replica failed mid-request");
            }
        }
    }
    lb.stats.no_replica.fetch_add(1, Ordering::Relaxed);
    lb_error("no replica is up")
}
