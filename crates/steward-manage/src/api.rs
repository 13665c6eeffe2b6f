//! How a management tool reaches the platform: the REST API, with the caller's credential and
//! the sandbox the tools act in (`Steward-Sandbox`).

use std::sync::Arc;

use serde_json::Value;

/// A refusal or failure of an API call, as the §2 error body says it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiFailure {
    /// HTTP status (0 when the API could not be reached).
    pub status: u16,
    /// `error.type`.
    pub kind: String,
    pub message: String,
    pub param: Option<String>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}", self.message, self.kind)?;
        if let Some(p) = &self.param {
            write!(f, ", param `{p}`")?;
        }
        if self.status != 0 {
            write!(f, ", HTTP {}", self.status)?;
        }
        write!(f, ")")
    }
}

/// The REST API, as the tools see it. `path` starts with `/v1/` and may carry a query string.
#[async_trait::async_trait]
pub trait Api: Send + Sync + std::fmt::Debug {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, ApiFailure>;
}

/// Produces the bearer credential for each call (a fixed key, or a fresh short-lived token).
pub type Bearer = Arc<dyn Fn() -> String + Send + Sync>;

/// `Api` over HTTP: `Authorization: Bearer …` and `Steward-Sandbox: <sandbox>` on every call.
#[derive(Clone)]
pub struct HttpApi {
    http: reqwest::Client,
    base_url: String,
    sandbox: String,
    bearer: Bearer,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential is a secret: never printed.
        f.debug_struct("HttpApi").field("base_url", &self.base_url).field("sandbox", &self.sandbox).finish()
    }
}

impl HttpApi {
    /// `base_url` without a trailing `/` (e.g. `http://127.0.0.1:8080`).
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, sandbox: impl Into<String>, bearer: Bearer) -> Self {
        Self { http, base_url: base_url.into().trim_end_matches('/').to_owned(), sandbox: sandbox.into(), bearer }
    }

    pub fn sandbox(&self) -> &str {
        &self.sandbox
    }
}

#[async_trait::async_trait]
impl Api for HttpApi {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, ApiFailure> {
        let unreachable = |e: reqwest::Error| ApiFailure {
            status: 0,
            kind: "unreachable".into(),
            message: format!("the Steward API could not be reached: {e}"),
            param: None,
        };
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base_url, path))
            .bearer_auth((self.bearer)())
            .header("steward-sandbox", &self.sandbox);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(unreachable)?;
        let status = res.status();
        let text = res.text().await.map_err(unreachable)?;
        let value: Value = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(value);
        }
        let err = value.get("error");
        let field = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::to_owned);
        Err(ApiFailure {
            status: status.as_u16(),
            kind: field("type").unwrap_or_else(|| "http_error".into()),
            message: field("message").unwrap_or_else(|| format!("HTTP {status}")),
            param: field("param"),
        })
    }
}
