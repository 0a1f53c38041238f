//! Raw requests for the hostile-input, security and OpenAPI tests: any method,
//! any bytes, any content type, any token, and the checks every refusal must
//! pass (our JSON error body, a 4xx, nothing created).

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, TestApp};

/// What came back: status, content type, the body parsed as JSON (`Null` when it
/// is not JSON) and its raw length.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub json: Value,
    pub len: usize,
}

impl Answer {
    /// The `field` of every `details` entry.
    pub fn fields(&self) -> Vec<String> {
        self.json["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The message of the `details` entry for `field`, if any.
    pub fn detail(&self, field: &str) -> Option<String> {
        self.json["error"]["details"]
            .as_array()?
            .iter()
            .find_map(|e| {
                (e["field"] == field).then(|| e["message"].as_str().unwrap_or("").to_owned())
            })
    }

    /// Asserts our error body with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.content_type.starts_with("application/json"),
            "an error must carry our JSON body: {self:?}"
        );
        assert_eq!(self.json["error"]["code"], code, "{self:?}");
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
        assert!(self.json["error"]["details"].is_array(), "{self:?}");
    }

    /// Asserts a 422 whose details name `field`.
    #[track_caller]
    pub fn assert_names(&self, field: &str) {
        self.assert_error(422, "invalid_request");
        assert!(
            self.fields().iter().any(|f| f == field),
            "expected a problem with {field}, got {:?}",
            self.json["error"]["details"]
        );
    }
}

/// A request builder over the app's client; `token` defaults to the admin's.
pub struct Probe<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    token: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

pub fn probe<'a>(app: &'a TestApp, method: Method, path: &str) -> Probe<'a> {
    Probe {
        app,
        method,
        path: path.to_owned(),
        token: Some(ADMIN_TOKEN.to_owned()),
        content_type: None,
        body: Vec::new(),
    }
}

impl Probe<'_> {
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(content_type.to_owned());
        self.body = body.into();
        self
    }

    pub fn json(self, body: &Value) -> Self {
        self.body("application/json", body.to_string())
    }

    pub async fn send(self) -> Answer {
        let url = if self.path.starts_with("http") {
            self.path.clone()
        } else {
            self.app.url(&self.path)
        };
        let mut req = self.app.http.request(self.method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = &self.content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        let r = req.body(self.body).send().await.expect("request");
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = r.bytes().await.expect("body");
        Answer {
            status,
            content_type,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            len: bytes.len(),
        }
    }
}

/// `POST /v1/callouts` with a JSON value.
pub async fn create(app: &TestApp, body: &Value) -> Answer {
    probe(app, Method::POST, "/v1/callouts")
        .json(body)
        .send()
        .await
}

/// A `multipart/form-data` body with a `contacts` CSV file part and, when given,
/// a `callout` JSON part: (content type, bytes).
pub fn multipart(csv: &[u8], callout: Option<&Value>) -> (String, Vec<u8>) {
    multipart_with(csv, "callout", callout)
}

/// [`multipart`] with the JSON part named `part` (a team's is `team`).
pub fn multipart_with(csv: &[u8], part: &str, meta: Option<&Value>) -> (String, Vec<u8>) {
    let boundary = "hostile-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    if let Some(c) = meta {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"\r\nContent-Type: application/json\r\n\r\n{c}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"contacts\"; filename=\"list.csv\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(csv);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `POST /v1/callouts` as a CSV upload.
pub async fn upload(app: &TestApp, csv: &[u8], callout: Option<&Value>) -> Answer {
    let (ct, body) = multipart(csv, callout);
    probe(app, Method::POST, "/v1/callouts")
        .body(&ct, body)
        .send()
        .await
}

/// Ids of every callout, as `GET /v1/callouts` lists them.
pub async fn callout_ids(app: &TestApp) -> Vec<String> {
    let a = probe(app, Method::GET, "/v1/callouts?limit=200")
        .send()
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.json["callouts"]
        .as_array()
        .expect("callouts")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Asserts that no callout exists.
pub async fn assert_nothing_created(app: &TestApp) {
    let ids = callout_ids(app).await;
    assert!(ids.is_empty(), "a refused request created {ids:?}");
}
