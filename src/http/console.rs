//! `GET /console`: the dispatcher console, served by the gateway itself.
//!
//! # What it is made of
//!
//! Server-rendered HTML pages (one layout, one fragment per page, in
//! `src/http/console/`) and a few plain JavaScript modules, all compiled into
//! the binary with `include_str!`: no build step, no CDN, nothing fetched from
//! anywhere but this gateway. The pages hold the structure (forms with their
//! labels, tables, headings); the modules fill them from the same public `/v1`
//! API any integration uses, with the same keys and roles, so the console can do
//! nothing an API client cannot, and there is no second, HTML-fragment API to
//! secure and keep in step (the reason for not using htmx, which wants HTML back
//! from the server). Live updates come from `GET /v1/callouts/{id}/events`.
//!
//! # Security
//!
//! - Sign-in is an API key kept in the tab's `sessionStorage` and sent by
//!   `fetch` as `Authorization: Bearer`: no cookie, so no CSRF to defend
//!   against. In the open sandbox (no `API_KEYS`, loopback) no key is needed,
//!   as for the API. The pages themselves are public (they hold no data).
//! - A strict `Content-Security-Policy` on every answer: `default-src 'self'`,
//!   no inline script or style (the pages have neither), no framing, no plugins.
//! - Nothing user-supplied is written into the HTML by the server: the only
//!   value is a callout id, which is parsed first. The modules insert text with
//!   `textContent`, never as markup.
//!
//! # Pages
//!
//! | path | page |
//! |---|---|
//! | `/console` | callouts, newest first, by status, paged |
//! | `/console/sign-in` | the API key |
//! | `/console/callouts/new` | a new callout: conversation, variables, policy, contacts (table or CSV), preview |
//! | `/console/callouts/{id}` | a callout live: contacts and attempts, the timeline as it grows, cancel |
//! | `/console/assistants` | (admin) register, rotate, delete; try a conversation |
//! | `/console/sandbox` | (sandbox only) the seed scenario, the simulated callees |
//! | `/console/assets/{file}` | the stylesheet and the modules |

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::callout_input::CalloutPath;
use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use crate::domain::CalloutId;

/// Every answer of the console carries it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const LAYOUT: &str = include_str!("console/layout.html");

/// The files under `/console/assets/`: name, content type, content.
const ASSETS: [(&str, &str, &str); 12] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
    ("app.js", JS, include_str!("console/app.js")),
    ("api.js", JS, include_str!("console/api.js")),
    ("ui.js", JS, include_str!("console/ui.js")),
    ("csv.js", JS, include_str!("console/csv.js")),
    ("sign-in.js", JS, include_str!("console/sign-in.js")),
    ("callouts.js", JS, include_str!("console/callouts.js")),
    ("new-callout.js", JS, include_str!("console/new-callout.js")),
    ("callout.js", JS, include_str!("console/callout.js")),
    ("assistants.js", JS, include_str!("console/assistants.js")),
    ("sandbox.js", JS, include_str!("console/sandbox.js")),
    ("timeline.js", JS, include_str!("console/timeline.js")),
];
const JS: &str = "text/javascript; charset=utf-8";

/// One page: its module (`<id>.js`), title, and main content.
#[derive(Debug, Clone, Copy)]
struct Page {
    id: &'static str,
    title: &'static str,
    body: &'static str,
}

const CALLOUTS: Page = Page {
    id: "callouts",
    title: "Callouts",
    body: include_str!("console/callouts.html"),
};
const SIGN_IN: Page = Page {
    id: "sign-in",
    title: "Sign in",
    body: include_str!("console/sign-in.html"),
};
const NEW_CALLOUT: Page = Page {
    id: "new-callout",
    title: "New callout",
    body: include_str!("console/new-callout.html"),
};
const CALLOUT: Page = Page {
    id: "callout",
    title: "Callout",
    body: include_str!("console/callout.html"),
};
const ASSISTANTS: Page = Page {
    id: "assistants",
    title: "Assistants",
    body: include_str!("console/assistants.html"),
};
const SANDBOX: Page = Page {
    id: "sandbox",
    title: "Sandbox",
    body: include_str!("console/sandbox.html"),
};
const NOT_FOUND: Page = Page {
    id: "not-found",
    title: "Not found",
    body: "<p>There is no such page or callout. <a href=\"/console\">Back to the callouts</a>.</p>",
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(callouts_page))
        .routes(routes!(sign_in_page))
        .routes(routes!(new_callout_page))
        .routes(routes!(callout_page))
        .routes(routes!(assistants_page))
        .routes(routes!(sandbox_page))
        .routes(routes!(asset))
}

fn etag(body: &str) -> HeaderValue {
    let digest = Sha256::digest(body.as_bytes());
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// The console: callouts, newest first
#[utoipa::path(get, path = "/console", tag = "console", operation_id = "consoleCallouts", security(()),
    responses((status = 200, description = "The page (its data comes from the /v1 API).", body = String, content_type = "text/html")))]
async fn callouts_page(state: State<AppState>) -> Response {
    page(state, CALLOUTS)
}

/// The console: sign in with an API key
#[utoipa::path(get, path = "/console/sign-in", tag = "console", operation_id = "consoleSignIn", security(()),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html")))]
async fn sign_in_page(state: State<AppState>) -> Response {
    page(state, SIGN_IN)
}

/// The console: a new callout
#[utoipa::path(get, path = "/console/callouts/new", tag = "console", operation_id = "consoleNewCallout", security(()),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html")))]
async fn new_callout_page(state: State<AppState>) -> Response {
    page(state, NEW_CALLOUT)
}

/// The console: assistants (admin)
#[utoipa::path(get, path = "/console/assistants", tag = "console", operation_id = "consoleAssistants", security(()),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html")))]
async fn assistants_page(state: State<AppState>) -> Response {
    page(state, ASSISTANTS)
}

fn page(State(state): State<AppState>, page: Page) -> Response {
    html(StatusCode::OK, render(&state, page, None))
}

/// The console: one callout, live
#[utoipa::path(get, path = "/console/callouts/{id}", tag = "console", operation_id = "consoleCallout", security(()),
    params(CalloutPath),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 404, description = "Not a callout id.", body = String, content_type = "text/html"),
    ))]
async fn callout_page(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    match id.ok().and_then(|Path(raw)| raw.parse::<CalloutId>().ok()) {
        Some(id) => html(StatusCode::OK, render(&state, CALLOUT, Some(id))),
        None => html(StatusCode::NOT_FOUND, render(&state, NOT_FOUND, None)),
    }
}

/// The console: the seed scenario and the simulated phones
#[utoipa::path(get, path = "/console/sandbox", tag = "console", operation_id = "consoleSandbox", security(()),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 404, description = "Not in the sandbox.", body = String, content_type = "text/html"),
    ))]
async fn sandbox_page(State(state): State<AppState>) -> Response {
    if state.sandbox.is_some() {
        html(StatusCode::OK, render(&state, SANDBOX, None))
    } else {
        html(StatusCode::NOT_FOUND, render(&state, NOT_FOUND, None))
    }
}

/// The layout around a page. Placeholders are `{{name}}`; every value put in is
/// a constant of this file or a parsed callout id.
fn render(state: &AppState, page: Page, callout: Option<CalloutId>) -> String {
    let sandbox = state.sandbox.is_some();
    let nav_sandbox = if sandbox {
        r#"<li><a href="/console/sandbox" data-nav="sandbox">Sandbox</a></li>"#
    } else {
        ""
    };
    let banner = if sandbox {
        r#"<p class="banner" role="note"><strong>Sandbox:</strong> calls go to the built-in simulator; no phone rings for real.</p>"#
    } else {
        ""
    };
    let current = format!("data-nav=\"{}\"", page.id);
    LAYOUT
        .replace("{{nav_sandbox}}", nav_sandbox)
        .replace(&current, &format!("{current} aria-current=\"page\""))
        .replace("{{banner}}", banner)
        .replace("{{title}}", page.title)
        .replace("{{page}}", page.id)
        .replace("{{mode}}", if sandbox { "sandbox" } else { "live" })
        .replace(
            "{{keys}}",
            if state.config.auth_disabled() {
                "open"
            } else {
                "required"
            },
        )
        .replace(
            "{{callout}}",
            &callout.map(|id| id.to_string()).unwrap_or_default(),
        )
        .replace("{{main}}", page.body)
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The pages are the same for everyone, but a signed-out tab should not be
    // shown a cached page after sign-out; they are small.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(headers);
    response
}

/// The console's stylesheet and JavaScript modules
///
/// Revalidated on every use (`no-cache` with an `ETag`), so a new binary's
/// files are picked up at once.
#[utoipa::path(get, path = "/console/assets/{file}", tag = "console", operation_id = "consoleAsset", security(()),
    params(("file" = String, Path, description = "console.css, app.js...", example = "app.js")),
    responses(
        (status = 200, description = "The file.", content((String = "text/css"), (String = "text/javascript"))),
        (status = 304, description = "Not modified (If-None-Match)."),
        (status = 404, description = "No such file (code not_found).", body = ErrorBody),
    ))]
async fn asset(file: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    let found = file
        .ok()
        .and_then(|Path(name)| ASSETS.iter().find(|(n, ..)| *n == name));
    let Some((_, content_type, body)) = found else {
        return ApiError::not_found("no such console file").into_response();
    };
    let etag = etag(body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, *body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, etag);
    security_headers(h);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ` onclick=`, ` onload=`...: an attribute `on<letters>=`.
    fn has_inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn no_page_or_module_has_inline_script_or_style() {
        let pages = [
            LAYOUT,
            CALLOUTS.body,
            SIGN_IN.body,
            NEW_CALLOUT.body,
            CALLOUT.body,
            ASSISTANTS.body,
            SANDBOX.body,
            NOT_FOUND.body,
        ];
        for p in pages {
            assert!(!p.contains("style="), "inline style in {p}");
            assert!(!p.contains("<style"), "a style element in {p}");
            assert!(!has_inline_handler(p), "an inline handler in {p}");
            for script in p.split("<script").skip(1) {
                assert!(script.contains("src=\""), "an inline script in {p}");
            }
        }
        for (name, _, body) in ASSETS {
            assert!(!body.contains("innerHTML"), "{name} writes markup");
            assert!(!body.contains("eval("), "{name} evaluates strings");
        }
    }

    #[test]
    fn every_module_a_page_loads_is_served() {
        for page in [CALLOUTS, SIGN_IN, NEW_CALLOUT, CALLOUT, ASSISTANTS, SANDBOX] {
            let module = format!("{}.js", page.id);
            assert!(ASSETS.iter().any(|(n, ..)| *n == module), "{module}");
        }
        // Every relative import of a module names a served file.
        for (name, _, body) in ASSETS {
            for import in body.split("from './").skip(1) {
                let file = import.split('\'').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|(n, ..)| *n == file),
                    "{name} imports {file}"
                );
            }
        }
    }
}
