//! The one place errors become HTTP responses (§2): `{"error": {"type", "message", "param"?}}`
//! with a fitting status. Messages say what was wrong and how to fix it; internal details go to
//! the log, never to the client.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use steward_core::ValidationError;
use steward_core::admission::Refusal;
use steward_runtime::admission::AdmitError;
use steward_store::StoreError;
use utoipa::ToSchema;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after_secs: Option<u64>,
}

/// The error envelope (§2).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable category, e.g. `invalid_request`, `not_found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What was wrong and how to fix it.
    pub message: String,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), param: None, retry_after_secs: None }
    }

    /// Replaces the error's `type` with a more specific one.
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_param(param)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_failed", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }

    /// The same answer whether the thing does not exist or the caller may not see it (§1).
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} {} not found", steward_core::ids::shorten(id)))
    }

    /// A 404 with a specific message (e.g. a file of a workspace).
    pub fn not_found_message(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn no_route(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// A failure that is ours, not the caller's. The detail is logged, not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server failed to handle this request; see its log")
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// An error with any status; the `type` is the status's usual category.
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            400 => "invalid_request",
            401 => "authentication_failed",
            403 => "permission_denied",
            404 => "not_found",
            405 => "method_not_allowed",
            406 => "not_acceptable",
            409 => "conflict",
            413 => "payload_too_large",
            414 => "uri_too_long",
            415 => "unsupported_media_type",
            422 => "unprocessable",
            429 => "rate_limited",
            431 => "headers_too_large",
            503 => "unavailable",
            s if s >= 500 => "internal_error",
            _ => "invalid_request",
        };
        Self::new(status, kind, message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { kind: self.kind.to_owned(), message: self.message.clone(), param: self.param.clone() } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::invalid(e.param, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::no_route(format!("{what} not found")),
            StoreError::Stale(msg)
            | StoreError::Duplicate(msg)
            | StoreError::InUse(msg)
            | StoreError::Busy(msg)
            | StoreError::Conflict(msg) => ApiError::conflict(msg),
            StoreError::MissingReference(msg) => ApiError::bad_request(msg),
            StoreError::ShuttingDown => ApiError::unavailable(
                "the server is shutting down; retry in a moment (another replica, or this one once restarted, answers)",
            ),
            StoreError::Connect(_) => ApiError::unavailable("the database is unreachable; try again shortly"),
            other @ (StoreError::Config(_)
            | StoreError::Migration(_)
            | StoreError::Corrupt(_)
            | StoreError::Batch(_)
            | StoreError::Database(_)) => ApiError::internal(other),
        }
    }
}

/// Middleware: an error response that is not JSON — axum's own extractor rejections (a path
/// segment that is not UTF-8, the body limit of a raw `Bytes` body), rmcp's answers on the MCP
/// route, anything a library answers by itself — is rewritten into the §2 shape, keeping its
/// status and headers. The library's text becomes the message; a server error's text is logged
/// instead. Responses already JSON (every `ApiError`) pass untouched.
/// The one HTTP mapping of admission refusals (`steward_core::admission`): the agent's or the
/// session's state is a 409 conflict; a model configuration that cannot work is a 422 on
/// `model`. The message is the refusal's, for every route that starts runs.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let message = r.to_string();
        match r {
            Refusal::Archived { .. }
            | Refusal::Paused { .. }
            | Refusal::Stopped { .. }
            | Refusal::Error { .. }
            | Refusal::BalanceExhausted { .. }
            | Refusal::ConciergeManaged { .. }
            | Refusal::Busy { .. }
            | Refusal::ConciergeBusy { .. } => ApiError::conflict(message),
            Refusal::ProviderNotConfigured { .. } | Refusal::ModelNotOffered { .. } => ApiError::unprocessable(message).with_param("model"),
        }
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::Refused(r) => r.into(),
            AdmitError::Store(e) => e.into(),
        }
    }
}

pub async fn json_errors(req: Request, next: Next) -> Response {
    // Known before the request is handed on: a library's refusal of such a path is explained
    // by the path itself, not by its wording.
    let path_not_utf8 = !decodes_to_utf8(req.uri().path());
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(res.headers()) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let err = if status.is_server_error() {
        tracing::error!(status = status.as_u16(), body = %text.trim(), "a library answered with a server error");
        ApiError::from_status(status, "the server failed to handle this request; see its log")
    } else {
        ApiError::from_status(status, rejection_message(status, text.trim(), path_not_utf8))
    };
    let mut out = err.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().entry(name).or_insert_with(|| value.clone());
        }
    }
    out
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Whether `path` percent-decodes to UTF-8 (axum's `Path` extractor refuses a segment that
/// does not, with a plain-text 400).
fn decodes_to_utf8(path: &str) -> bool {
    let raw = path.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (raw[i], hex) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// What to tell the caller for a library's plain-text refusal, with the fix where we know it.
fn rejection_message(status: StatusCode, text: &str, path_not_utf8: bool) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than the {} KiB limit; send less", crate::extract::MAX_BODY_BYTES / 1024)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE if text.is_empty() => "send the body as JSON with `Content-Type: application/json`".to_owned(),
        StatusCode::BAD_REQUEST if path_not_utf8 => {
            format!("the request path is not valid: {text}; percent-encode each path segment as UTF-8 (ids are ASCII)")
        }
        _ if text.is_empty() => format!("{} ({})", status.canonical_reason().unwrap_or("error"), status.as_u16()),
        _ => text,
    }
}

/// Handler result type.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    #[test]
    fn paths_that_do_not_decode_to_utf8_are_recognised() {
        for ok in ["/v1/agents/agt_1", "/v1/files/%C3%A9t%C3%A9", "/a/%zz", "/a/%", "/a/%+F", ""] {
            assert!(super::decodes_to_utf8(ok), "{ok}");
        }
        for bad in ["/v1/agents/%FF", "/v1/agents/%ff", "/a/%C3", "/a/%C3%28"] {
            assert!(!super::decodes_to_utf8(bad), "{bad}");
        }
    }
}
