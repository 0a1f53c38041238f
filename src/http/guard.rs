//! Checks every request passes before routing: what the open sandbox accepts,
//! and the media type of a request body.
//!
//! **The open sandbox** (no `API_KEYS`, loopback `LISTEN_ADDR`) treats everyone
//! as admin, which is only safe if every request really comes from this
//! machine. Listening on loopback is not enough on its own:
//! - a web page in the operator's browser can send a "simple" cross-site POST
//!   (`text/plain` or `multipart/form-data`) to `127.0.0.1:8080`: refused by its
//!   `Origin` (every browser sends one on a cross-site POST) unless that origin
//!   is itself a loopback one;
//! - DNS rebinding points an attacker's name at 127.0.0.1 so the page may read
//!   the answers: refused by its `Host` (the attacker's name), which must be a
//!   loopback name or address;
//! - a reverse proxy on the same machine would publish the open sandbox to the
//!   network: refused by its `Forwarded` / `X-Forwarded-*` headers.
//!
//! The Routee webhooks (`/routee/...`) are exempt: each carries its own
//! signature, and the simulator reaches them at `PUBLIC_URL`.
//!
//! **Media types**: a `/v1` request with a body must say `application/json` (or
//! a `+json` type); the call-list routes also take `multipart/form-data` (the
//! CSV upload). Anything else is a 415, before any handler reads the body, so a
//! `text/plain` body that happens to be JSON is never acted on.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// The routes that also accept a multipart call-list upload (and a team's,
/// `/v1/teams/{id}`, see [`takes_call_list`]).
const MULTIPART_ROUTES: [&str; 3] = ["/v1/callouts", "/v1/callouts/preview", "/v1/teams"];

/// A route that takes a multipart call-list upload.
fn takes_call_list(path: &str) -> bool {
    MULTIPART_ROUTES.contains(&path)
        || path
            .strip_prefix("/v1/teams/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The middleware: see the module documentation.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if state.keys.is_open()
        && !path.starts_with("/routee/")
        && let Err(e) = open_sandbox_check(&req)
    {
        return e.into_response();
    }
    if path.starts_with("/v1/")
        && let Err(e) = media_type_check(req.method(), path, req.headers())
    {
        return e.into_response();
    }
    next.run(req).await
}

fn open_sandbox_check(req: &Request) -> Result<(), ApiError> {
    let headers = req.headers();
    if let Some(name) = headers.keys().find(|k| {
        let k = k.as_str();
        k == "forwarded" || k.starts_with("x-forwarded-")
    }) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "proxied_request_refused",
            format!(
                "the open sandbox (no API_KEYS) answers only this machine, and this request came through a proxy ({name}); set API_KEYS to serve through one"
            ),
        ));
    }
    // HTTP/1.1 carries Host; HTTP/2 the :authority in the URI.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    if let Some(host) = host
        && !is_loopback_authority(&host)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            "the open sandbox (no API_KEYS) answers only requests addressed to localhost or a loopback address (Host header)",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let loopback = origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| u.host_str().map(is_loopback_host))
            .unwrap_or(false);
        if !loopback {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin_refused",
                "the open sandbox (no API_KEYS) refuses requests from web pages of other origins",
            ));
        }
    }
    Ok(())
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    match authority.parse::<axum::http::uri::Authority>() {
        Ok(a) => is_loopback_host(a.host()),
        Err(_) => false,
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn media_type_check(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) || !has_body(headers) {
        return Ok(());
    }
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let multipart = essence == "multipart/form-data" && takes_call_list(path);
    if json || multipart {
        return Ok(());
    }
    let accepted = if takes_call_list(path) {
        "send Content-Type: application/json, or multipart/form-data with a contacts CSV file"
    } else {
        "send Content-Type: application/json"
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        accepted,
    ))
}

/// A request announces a body by a non-zero `Content-Length` or by
/// `Transfer-Encoding` (HTTP/1.1 chunked); an HTTP/2 request without
/// `Content-Length` is treated as having one.
fn has_body(headers: &HeaderMap) -> bool {
    match headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        Some(len) => len.trim() != "0",
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised_and_others_are_not() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "[::1]:8080",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:8080",
            "localhost.evil.example.com",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "[::2]:8080",
            "",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn a_body_needs_a_json_type_and_multipart_only_where_call_lists_are_uploaded() {
        let h = |ct: &str, len: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_LENGTH, len.parse().unwrap());
            if !ct.is_empty() {
                h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            }
            h
        };
        let post = &Method::POST;
        assert!(media_type_check(post, "/v1/callouts", &h("application/json", "2")).is_ok());
        assert!(
            media_type_check(
                post,
                "/v1/callouts",
                &h("application/json; charset=utf-8", "2")
            )
            .is_ok()
        );
        assert!(
            media_type_check(
                post,
                "/v1/callouts",
                &h("multipart/form-data; boundary=x", "9")
            )
            .is_ok()
        );
        assert!(
            media_type_check(
                post,
                "/v1/assistants",
                &h("multipart/form-data; boundary=x", "9")
            )
            .is_err()
        );
        assert!(media_type_check(post, "/v1/callouts", &h("text/plain", "2")).is_err());
        let put = &Method::PUT;
        let upload = h("multipart/form-data; boundary=x", "9");
        assert!(media_type_check(post, "/v1/teams", &upload).is_ok());
        assert!(media_type_check(put, "/v1/teams/linemen", &upload).is_ok());
        assert!(media_type_check(put, "/v1/teams/a/b", &upload).is_err());
        assert!(media_type_check(put, "/v1/teams/", &upload).is_err());
        assert!(media_type_check(post, "/v1/callouts", &h("", "2")).is_err());
        assert!(media_type_check(post, "/v1/callouts/x/cancel", &h("", "0")).is_ok());
        assert!(media_type_check(&Method::GET, "/v1/callouts", &h("text/plain", "2")).is_ok());
    }
}
