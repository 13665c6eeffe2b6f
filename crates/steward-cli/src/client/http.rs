//! The HTTP client every command uses: one `Api` that sends the bearer credential and the
//! `Steward-Sandbox` header, turns §2 error bodies into readable errors, and follows
//! `next_cursor` for lists. Responses stay `serde_json::Value`; the wire types live in the
//! server crate only.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::credentials::Secret;

/// The header naming the sandbox a request acts in (§1).
const SANDBOX_HEADER: &str = "Steward-Sandbox";
/// Page size for list requests (the server's maximum).
const PAGE_SIZE: u32 = 100;
/// Lists stop after this many items.
pub const MAX_ITEMS: usize = 1000;

/// A Steward API endpoint with a credential.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// For event streams: a connect timeout but no overall one (a reply may stream for long).
    stream_http: reqwest::Client,
    server: String,
    token: Option<Secret>,
    sandbox: Option<String>,
}

/// An error answer from the server (§2).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: String,
    pub message: String,
    pub param: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            // Body-parsing errors already start with the field name.
            Some(p) if !self.message.starts_with(&format!("{p}:")) => write!(f, "{p}: {}", self.message)?,
            _ => f.write_str(&self.message)?,
        }
        write!(f, " (HTTP {})", self.status.as_u16())
    }
}

impl std::error::Error for ApiError {}

/// Everything a list endpoint returned, up to `MAX_ITEMS`.
#[derive(Debug)]
pub struct Listing {
    pub items: Vec<Value>,
    /// Set when the list was cut at `MAX_ITEMS` and more remain.
    pub next_cursor: Option<String>,
}

impl Listing {
    /// The list in the server's own page shape, for `--json`.
    pub fn to_json(&self) -> Value {
        json!({"data": self.items, "next_cursor": self.next_cursor})
    }
}

impl Api {
    /// A client for `server` (`http://host:port`, no trailing slash).
    pub fn new(server: &str, token: Option<Secret>, sandbox: Option<String>) -> anyhow::Result<Api> {
        let url =
            Url::parse(server).with_context(|| format!("`{server}` is not a server URL; pass e.g. --server http://127.0.0.1:8420"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("the server URL must start with http:// or https:// (got `{server}`)");
        }
        // reqwest is built without a TLS provider; pick ring. A second install is refused,
        // which is fine: one is in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("steward-cli/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
        };
        let http = builder().timeout(Duration::from_secs(120)).build().context("cannot build the HTTP client")?;
        let stream_http = builder().build().context("cannot build the HTTP client")?;
        Ok(Api { http, stream_http, server: server.to_owned(), token, sandbox })
    }

    /// The same client acting in another sandbox.
    pub fn with_sandbox(&self, sandbox: &str) -> Api {
        Api { sandbox: Some(sandbox.to_owned()), ..self.clone() }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, &[], None).await
    }

    pub async fn get_query(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::PUT, path, &[], Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::PATCH, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// Every item of a list endpoint, following `next_cursor`, up to `MAX_ITEMS`.
    pub async fn list_all(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Listing> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", PAGE_SIZE.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = self.get_query(path, &q).await?;
            let data = page["data"]
                .as_array()
                .with_context(|| format!("GET {path} did not answer with a list; is {} a Steward server?", self.server))?;
            items.extend(data.iter().cloned());
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() || items.len() >= MAX_ITEMS {
                break;
            }
        }
        if items.len() > MAX_ITEMS {
            items.truncate(MAX_ITEMS);
        }
        Ok(Listing { items, next_cursor: cursor })
    }

    /// POSTs `body` and returns the response to read as an event stream (no overall timeout).
    /// A refusal is the usual `ApiError`.
    pub async fn post_stream(&self, path: &str, body: &Value) -> anyhow::Result<reqwest::Response> {
        let req =
            self.request(&self.stream_http, Method::POST, path, &[], Some(body))?.header(reqwest::header::ACCEPT, "text/event-stream");
        let res = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let bytes = res.bytes().await.map_err(|e| self.transport_error(e))?;
        Err(self.refusal(&Method::POST, path, status, serde_json::from_slice(&bytes).ok()))
    }

    fn request(
        &self,
        http: &reqwest::Client,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let mut url =
            Url::parse(&format!("{}{path}", self.server)).with_context(|| format!("cannot build a URL from {} and {path}", self.server))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(s) = &self.sandbox {
            req = req.header(SANDBOX_HEADER, s);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Ok(req)
    }

    async fn send(&self, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> anyhow::Result<Value> {
        let req = self.request(&self.http, method.clone(), path, query, body)?;
        let res = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| self.transport_error(e))?;
        let parsed: Option<Value> = if bytes.is_empty() { Some(Value::Null) } else { serde_json::from_slice(&bytes).ok() };
        if status.is_success() {
            return parsed.with_context(|| {
                format!(
                    "{method} {path} answered HTTP {} with a body that is not JSON; is {} a Steward server?",
                    status.as_u16(),
                    self.server
                )
            });
        }
        Err(self.refusal(&method, path, status, parsed))
    }

    /// A §2 error body as `ApiError`, or a message saying there was none.
    fn refusal(&self, method: &Method, path: &str, status: StatusCode, parsed: Option<Value>) -> anyhow::Error {
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        match err.and_then(|e| e["message"].as_str()) {
            Some(message) => ApiError {
                status,
                kind: err.and_then(|e| e["type"].as_str()).unwrap_or("").to_owned(),
                message: message.to_owned(),
                param: err.and_then(|e| e["param"].as_str()).map(str::to_owned),
            }
            .into(),
            None => anyhow::anyhow!(
                "{method} {path} failed with HTTP {} and no Steward error body; is {} a Steward server?",
                status.as_u16(),
                self.server
            ),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow::anyhow!("cannot reach the Steward server at {}; start it with `steward serve` or pass --server", self.server)
        } else if e.is_timeout() {
            anyhow::anyhow!("the Steward server at {} did not answer in time; try again", self.server)
        } else {
            anyhow::Error::new(e).context(format!("request to {} failed", self.server))
        }
    }
}

/// Checks a user-typed id (`sbx_…`, `agt_…`, …) before it goes into a URL path, so a typo
/// gets a clear message and no input can reach another route.
pub fn id<'a>(raw: &'a str, prefix: &str, hint: &str) -> anyhow::Result<&'a str> {
    steward_core::ids::check(raw, prefix, "id").map_err(|e| anyhow::anyhow!("{}; {hint}", e.message))?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_field_message_status() {
        let e = ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request".into(),
            message: "`Bad` is not a valid slug".into(),
            param: Some("name".into()),
        };
        assert_eq!(e.to_string(), "name: `Bad` is not a valid slug (HTTP 400)");
        let e = ApiError { param: Some("max_turns".into()), message: "max_turns: invalid type".into(), ..e };
        assert_eq!(e.to_string(), "max_turns: invalid type (HTTP 400)");
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert!(id("agt_01arz3ndektsv4rrffq69g5fav", "agt_", "").is_ok());
        assert!(id("agt_../x", "agt_", "").is_err());
        let e = id("sbx", "sbx_", "see `steward sandbox list`").unwrap_err();
        assert!(e.to_string().ends_with("; see `steward sandbox list`"), "{e}");
    }
}
