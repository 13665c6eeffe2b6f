//! A fake Gemini API on 127.0.0.1: it serves `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`,
//! checks the `x-goog-api-key` header and the request shape the way the real API does (unknown
//! fields are a 400), records every request, and answers each with the next scripted reply —
//! Google error bodies, or an SSE body sent in chosen byte chunks that can end cleanly, break the
//! connection, or go silent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The key the fake accepts.
pub const KEY: &str = "AIza-fake-gemini-key-0123456789";

/// How a streamed body ends after its last chunk.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// Finish the body normally.
    Close,
    /// Break the connection (the chunked body never terminates).
    Abort,
    /// Send nothing more but keep the connection open.
    Hang,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A whole body with this status, content type and extra headers.
    Plain { status: u16, content_type: &'static str, headers: Vec<(&'static str, String)>, body: String },
    /// `text/event-stream` sent as these byte chunks, `gap` apart.
    Sse { chunks: Vec<Bytes>, gap: Duration, end: End },
}

impl Reply {
    /// An error status with Google's error body (`{"error": {"code", "message", "status"}}`).
    pub fn error(status: u16, google_status: &str, message: &str) -> Self {
        Reply::Plain {
            status,
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
            body: google_error_body(status, google_status, message),
        }
    }

    /// An SSE body cut into `chunks`, ending cleanly.
    pub fn sse(chunks: Vec<Bytes>) -> Self {
        Reply::Sse { chunks, gap: Duration::from_millis(2), end: End::Close }
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The path and query, e.g. `/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Value,
}

struct FakeState {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Signalled when a streamed body is dropped before it was sent in full.
    cut_off: Notify,
}

/// The running fake; dropping it stops the server.
pub struct Fake {
    /// What a client is configured with, `/v1beta` included.
    pub base_url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    pub async fn start(replies: Vec<Reply>) -> Fake {
        let state = Arc::new(FakeState { replies: Mutex::new(replies.into()), requests: Mutex::new(Vec::new()), cut_off: Notify::new() });
        let app = Router::new().route("/v1beta/models/{call}", post(generate)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1beta", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base_url, state, server }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until a streamed body is dropped before its end (the client went away).
    pub async fn cut_off(&self) {
        self.state.cut_off.notified().await;
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn generate(
    State(state): State<Arc<FakeState>>,
    Path(call): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let uri = format!("/v1beta/models/{call}?{}", query.clone().unwrap_or_default());
    let parsed = serde_json::from_slice::<Value>(&body);
    state.requests.lock().unwrap().push(Recorded { uri, headers: headers.clone(), body: parsed.as_ref().cloned().unwrap_or(Value::Null) });

    let Some((_model, method)) = call.split_once(':') else {
        return google_error(404, "NOT_FOUND", &format!("models/{call} is not found for API version v1beta"));
    };
    if method != "streamGenerateContent" {
        return google_error(404, "NOT_FOUND", &format!("Method {method} is not found"));
    }
    if query.as_deref() != Some("alt=sse") {
        return google_error(400, "INVALID_ARGUMENT", "the fake only streams as server-sent events: add ?alt=sse");
    }
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.");
    }
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_none_or(|ct| !ct.starts_with("application/json")) {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received: the content type is not application/json");
    }
    let body = match parsed {
        Ok(body) => body,
        Err(e) => return google_error(400, "INVALID_ARGUMENT", &format!("Invalid JSON payload received. {e}")),
    };
    if let Err(problem) = check_request(&body) {
        return google_error(400, "INVALID_ARGUMENT", &format!("Invalid JSON payload received. {problem}"));
    }

    let Some(reply) = state.replies.lock().unwrap().pop_front() else {
        return google_error(500, "INTERNAL", "the fake has no reply scripted for this request");
    };
    match reply {
        Reply::Plain { status, content_type, headers, body } => {
            let mut res = (StatusCode::from_u16(status).unwrap(), [(header::CONTENT_TYPE, content_type)], body).into_response();
            for (name, value) in headers {
                res.headers_mut().insert(name, value.parse().unwrap());
            }
            res
        }
        Reply::Sse { chunks, gap, end } => {
            let guard = CutOffGuard { state: state.clone(), finished: false };
            let body = Body::from_stream(chunked_body(chunks, gap, end, guard));
            ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
        }
    }
}

/// Signals `cut_off` when dropped before the body was sent in full.
struct CutOffGuard {
    state: Arc<FakeState>,
    finished: bool,
}

impl CutOffGuard {
    /// The body was sent in full (or broken on purpose).
    fn disarm(&mut self) {
        self.finished = true;
    }
}

impl Drop for CutOffGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state.cut_off.notify_one();
        }
    }
}

fn chunked_body(
    chunks: Vec<Bytes>,
    gap: Duration,
    end: End,
    guard: CutOffGuard,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold((chunks.into_iter(), Some(end), guard), move |(mut chunks, end, mut guard)| async move {
        if let Some(chunk) = chunks.next() {
            tokio::time::sleep(gap).await;
            return Some((Ok(chunk), (chunks, end, guard)));
        }
        match end? {
            End::Close => {
                guard.disarm();
                None
            }
            End::Abort => {
                // Let the server flush what was sent before breaking the connection.
                tokio::time::sleep(gap.max(Duration::from_millis(20))).await;
                guard.disarm();
                Some((Err(std::io::Error::other("the fake breaks the connection")), (chunks, None, guard)))
            }
            End::Hang => {
                std::future::pending::<()>().await;
                None
            }
        }
    })
}

fn google_error_body(code: u16, status: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message, "status": status}}).to_string()
}

fn google_error(code: u16, status: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        google_error_body(code, status, message),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// The request shape, as strictly as the real API checks it

/// Keywords of Gemini's OpenAPI-subset Schema object.
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "items",
    "properties",
    "required",
    "anyOf",
    "propertyOrdering",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "default",
    "example",
];

fn check_request(body: &Value) -> Result<(), String> {
    let body = body.as_object().ok_or("the body is not an object")?;
    only_fields(body, &["contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings"], "")?;
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("* GenerateContentRequest.contents: contents is not specified")?;
    for (i, content) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let content = content.as_object().ok_or(format!("{at} is not an object"))?;
        only_fields(content, &["role", "parts"], &at)?;
        if !matches!(content.get("role").and_then(Value::as_str), Some("user" | "model")) {
            return Err(format!("{at}.role must be `user` or `model`"));
        }
        check_parts(content.get("parts"), &at)?;
    }
    if let Some(system) = body.get("systemInstruction") {
        let system = system.as_object().ok_or("systemInstruction is not an object")?;
        only_fields(system, &["role", "parts"], "systemInstruction")?;
        check_parts(system.get("parts"), "systemInstruction")?;
    }
    if let Some(tools) = body.get("tools") {
        for (i, tool) in tools.as_array().ok_or("tools is not an array")?.iter().enumerate() {
            let at = format!("tools[{i}]");
            let tool = tool.as_object().ok_or(format!("{at} is not an object"))?;
            only_fields(tool, &["functionDeclarations"], &at)?;
            for (j, declaration) in tool
                .get("functionDeclarations")
                .and_then(Value::as_array)
                .ok_or(format!("{at}.functionDeclarations is missing"))?
                .iter()
                .enumerate()
            {
                let at = format!("{at}.function_declarations[{j}]");
                let declaration = declaration.as_object().ok_or(format!("{at} is not an object"))?;
                only_fields(declaration, &["name", "description", "parameters"], &at)?;
                declaration.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or(format!("{at}.name is missing"))?;
                if let Some(parameters) = declaration.get("parameters") {
                    check_schema(parameters, &format!("{at}.parameters"))?;
                    let empty = parameters.get("properties").and_then(Value::as_object).is_none_or(|p| p.is_empty());
                    if parameters.get("type").and_then(Value::as_str) == Some("object") && empty {
                        return Err(format!("* {at}.parameters.properties: should be non-empty for OBJECT type"));
                    }
                }
            }
        }
    }
    let generation = body.get("generationConfig").and_then(Value::as_object).ok_or("generationConfig is missing")?;
    only_fields(generation, &["maxOutputTokens", "temperature", "topP", "topK", "stopSequences", "candidateCount"], "generationConfig")?;
    Ok(())
}

fn check_parts(parts: Option<&Value>, at: &str) -> Result<(), String> {
    let parts =
        parts.and_then(Value::as_array).filter(|p| !p.is_empty()).ok_or(format!("* {at}.parts: contents.parts must not be empty"))?;
    for (i, part) in parts.iter().enumerate() {
        let at = format!("{at}.parts[{i}]");
        let part = part.as_object().ok_or(format!("{at} is not an object"))?;
        only_fields(part, &["text", "functionCall", "functionResponse", "thoughtSignature"], &at)?;
        let data: Vec<&String> = part.keys().filter(|k| *k != "thoughtSignature").collect();
        if data.len() != 1 {
            return Err(format!("{at} must hold exactly one kind of data, not {data:?}"));
        }
        if let Some(text) = part.get("text") {
            text.as_str()
                .filter(|t| !t.is_empty())
                .ok_or(format!("{at}: Unable to submit request because it has an empty text parameter"))?;
        }
        if let Some(call) = part.get("functionCall") {
            let call = call.as_object().ok_or(format!("{at}.functionCall is not an object"))?;
            only_fields(call, &["name", "args", "id"], &format!("{at}.functionCall"))?;
            call.get("name").and_then(Value::as_str).ok_or(format!("{at}.functionCall.name is missing"))?;
            if call.get("args").is_some_and(|a| !a.is_object()) {
                return Err(format!("{at}.functionCall.args must be an object"));
            }
        }
        if let Some(response) = part.get("functionResponse") {
            let response = response.as_object().ok_or(format!("{at}.functionResponse is not an object"))?;
            only_fields(response, &["name", "response", "id"], &format!("{at}.functionResponse"))?;
            response.get("name").and_then(Value::as_str).ok_or(format!("{at}.functionResponse.name is missing"))?;
            response.get("response").and_then(Value::as_object).ok_or(format!("{at}.functionResponse.response must be an object"))?;
        }
    }
    Ok(())
}

fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let schema = schema.as_object().ok_or(format!("{at} is not an object"))?;
    only_fields(schema, SCHEMA_FIELDS, at)?;
    if let Some(properties) = schema.get("properties") {
        for (name, property) in properties.as_object().ok_or(format!("{at}.properties is not an object"))? {
            check_schema(property, &format!("{at}.properties[{name}]"))?;
        }
    }
    if let Some(items) = schema.get("items") {
        check_schema(items, &format!("{at}.items"))?;
    }
    if let Some(variants) = schema.get("anyOf") {
        for (i, variant) in variants.as_array().ok_or(format!("{at}.anyOf is not an array"))?.iter().enumerate() {
            check_schema(variant, &format!("{at}.anyOf[{i}]"))?;
        }
    }
    if let Some(t) = schema.get("type") {
        t.as_str().ok_or(format!("Invalid value at '{at}.type': {t}"))?;
    }
    Ok(())
}

fn only_fields(object: &serde_json::Map<String, Value>, known: &[&str], at: &str) -> Result<(), String> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(format!("Unknown name \"{unknown}\" at '{at}': Cannot find field.")),
        None => Ok(()),
    }
}
