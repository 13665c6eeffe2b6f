//! A fake Anthropic Messages API on 127.0.0.1 for the client's tests.
//!
//! It speaks the real wire format: `POST /v1/messages`, the same headers (it refuses a wrong
//! `x-api-key` with 401 and a missing `anthropic-version` with 400, as the API does), the same
//! request validation a test can trip over (alternating roles, tool results answering the
//! previous turn's tool calls, no unknown fields), error bodies of the form
//! `{"type":"error","error":{…}}`, and SSE bodies sent in chunks with chosen boundaries.
//! Replies are queued per test; every request is recorded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

pub const API_KEY: &str = "sk-ant-test-0123456789";

/// What the fake answers to one request.
pub enum Reply {
    /// A non-streamed answer, e.g. an API error.
    Status { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// `200 text/event-stream`: the chunks, `gap` apart, then `end`.
    Stream { chunks: Vec<Bytes>, gap: Duration, end: End },
}

/// How a streamed body ends once its chunks are sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Normally (the final empty chunk).
    Complete,
    /// The connection is cut without finishing the body.
    Abort,
    /// Nothing more is sent, and the connection stays open.
    Hang,
    /// A `ping` event every 50 ms, forever.
    PingForever,
}

impl Reply {
    /// An API error as Anthropic sends it.
    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"});
        Reply::Status { status, headers: Vec::new(), body: body.to_string() }
    }

    /// A complete SSE body sent in one chunk.
    pub fn sse(transcript: &str) -> Reply {
        Reply::Stream { chunks: vec![Bytes::from(transcript.to_owned())], gap: Duration::ZERO, end: End::Complete }
    }

    /// An SSE body cut at `cuts` (byte offsets, even inside a UTF-8 character) and every
    /// `every` bytes, the pieces a millisecond apart so the client reads them separately.
    pub fn chunked(transcript: &str, every: usize, cuts: &[usize], end: End) -> Reply {
        let bytes = transcript.as_bytes();
        let mut bounds: Vec<usize> =
            (every..bytes.len()).step_by(every.max(1)).chain(cuts.iter().copied()).filter(|&c| c > 0 && c < bytes.len()).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in bounds.into_iter().chain([bytes.len()]) {
            chunks.push(Bytes::copy_from_slice(&bytes[start..cut]));
            start = cut;
        }
        Reply::Stream { chunks, gap: Duration::from_millis(1), end }
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    bodies_dropped: AtomicUsize,
    dropped: tokio::sync::Notify,
}

/// The running fake; dropping it stops the server.
pub struct Fake {
    pub base_url: String,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Fake {
    pub async fn start(replies: Vec<Reply>) -> Fake {
        let inner = Arc::new(Inner { replies: Mutex::new(replies.into()), ..Inner::default() });
        let app = Router::new().route("/v1/messages", post(messages)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the fake server runs");
        });
        Fake { base_url: format!("http://{addr}"), inner, server }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// How many streamed bodies have been dropped by the server (finished or cut off).
    pub fn bodies_dropped(&self) -> usize {
        self.inner.bodies_dropped.load(Ordering::SeqCst)
    }

    /// Waits until a streamed body has been dropped, i.e. its connection is gone.
    pub async fn body_dropped(&self) {
        loop {
            let notified = self.inner.dropped.notified();
            if self.bodies_dropped() > 0 {
                return;
            }
            notified.await;
        }
    }
}

async fn messages(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body);
    inner.seen.lock().unwrap().push(Seen { headers: headers.clone(), body: parsed.as_ref().cloned().unwrap_or(Value::Null) });
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return error_response(401, "authentication_error", "fake: invalid x-api-key");
    }
    let checked = match parsed {
        Ok(body) => check_request(&headers, &body),
        Err(e) => Err(format!("fake: the body is not JSON: {e}")),
    };
    if let Err(message) = checked {
        return error_response(400, "invalid_request_error", &message);
    }
    let reply = inner.replies.lock().unwrap().pop_front();
    match reply {
        None => error_response(500, "api_error", "fake: no reply queued for this request"),
        Some(Reply::Status { status, headers, body }) => {
            let mut res = Response::builder().status(status).header("content-type", "application/json").header("request-id", "req_fake");
            for (name, value) in headers {
                res = res.header(name, value);
            }
            res.body(Body::from(body)).unwrap()
        }
        Some(Reply::Stream { chunks, gap, end }) => {
            let guard = DropGuard(inner.clone());
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream; charset=utf-8")
                .header("cache-control", "no-cache")
                .header("request-id", "req_fake")
                .body(Body::from_stream(body_stream(chunks.into(), gap, end, guard)))
                .unwrap()
        }
    }
}

fn error_response(status: u16, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"});
    Response::builder().status(status).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

/// Counts the drop of a streamed body: hyper drops it when the body is done or the
/// connection is gone.
struct DropGuard(Arc<Inner>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.bodies_dropped.fetch_add(1, Ordering::SeqCst);
        self.0.dropped.notify_waiters();
    }
}

struct BodyState {
    chunks: VecDeque<Bytes>,
    gap: Duration,
    end: End,
    first: bool,
    _guard: DropGuard,
}

fn body_stream(
    chunks: VecDeque<Bytes>,
    gap: Duration,
    end: End,
    guard: DropGuard,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let state = BodyState { chunks, gap, end, first: true, _guard: guard };
    futures::stream::unfold(state, |mut st| async move {
        if let Some(chunk) = st.chunks.pop_front() {
            if !st.first && !st.gap.is_zero() {
                tokio::time::sleep(st.gap).await;
            }
            st.first = false;
            return Some((Ok(chunk), st));
        }
        match st.end {
            End::Complete => None,
            End::Abort => {
                // Let hyper flush what was sent; it discards buffered bytes when a body fails.
                tokio::time::sleep(Duration::from_millis(100)).await;
                st.end = End::Complete;
                Some((Err(std::io::Error::other("fake: connection cut")), st))
            }
            End::Hang => {
                std::future::pending::<()>().await;
                None
            }
            End::PingForever => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Ok(Bytes::from(ping())), st))
            }
        }
    })
}

/// The checks the real API makes that a client bug could trip.
fn check_request(headers: &HeaderMap, body: &Value) -> Result<(), String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("anthropic-version") != "2023-06-01" {
        return Err(format!("fake: anthropic-version must be 2023-06-01, not {:?}", header("anthropic-version")));
    }
    if !header("content-type").starts_with("application/json") {
        return Err(format!("fake: content-type must be application/json, not {:?}", header("content-type")));
    }
    let obj = body.as_object().ok_or("fake: the body must be an object")?;
    for key in obj.keys() {
        if !["model", "max_tokens", "system", "messages", "tools", "temperature", "stream"].contains(&key.as_str()) {
            return Err(format!("fake: {key}: Extra inputs are not permitted"));
        }
    }
    if !body["model"].is_string() {
        return Err("fake: model: Field required".into());
    }
    if body["max_tokens"].as_u64().is_none_or(|n| n == 0) {
        return Err("fake: max_tokens must be a positive integer".into());
    }
    if body["stream"] != json!(true) {
        return Err("fake: this fake only serves stream: true".into());
    }
    if obj.contains_key("system") && body["system"].as_str().is_none_or(str::is_empty) {
        return Err("fake: system must be a non-empty string".into());
    }
    if let Some(t) = obj.get("temperature")
        && !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))
    {
        return Err("fake: temperature must be between 0 and 1".into());
    }
    if let Some(tools) = obj.get("tools") {
        for tool in tools.as_array().ok_or("fake: tools must be an array")? {
            let ok = tool["name"].is_string() && tool["description"].is_string() && tool["input_schema"].is_object();
            if !ok || tool.as_object().map_or(0, |o| o.len()) != 3 {
                return Err(format!("fake: bad tool {tool}"));
            }
        }
    }
    check_messages(body["messages"].as_array().ok_or("fake: messages: Field required")?)
}

fn check_messages(messages: &[Value]) -> Result<(), String> {
    if messages.first().map(|m| &m["role"]) != Some(&json!("user")) {
        return Err("fake: the first message must use the user role".into());
    }
    let mut pending_tool_uses: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().ok_or(format!("fake: messages.{i}.role missing"))?;
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(format!("fake: messages: roles must alternate between user and assistant (messages.{i} is {role})"));
        }
        let content = message["content"]
            .as_array()
            .filter(|c| !c.is_empty())
            .ok_or(format!("fake: messages.{i}.content must be a non-empty array"))?;
        let mut seen_text = false;
        let mut answered = Vec::new();
        for block in content {
            match (role, block["type"].as_str()) {
                (_, Some("text")) => {
                    if block["text"].as_str().is_none_or(str::is_empty) {
                        return Err(format!("fake: messages.{i}: text content blocks must be non-empty"));
                    }
                    seen_text = true;
                }
                ("assistant", Some("tool_use")) => {
                    if !(block["id"].is_string() && block["name"].is_string() && block["input"].is_object()) {
                        return Err(format!("fake: messages.{i}: bad tool_use {block}"));
                    }
                    answered.push(block["id"].as_str().unwrap().to_owned());
                }
                ("user", Some("tool_result")) => {
                    if seen_text {
                        return Err(format!("fake: messages.{i}: tool_result blocks must come before any text"));
                    }
                    if !(block["tool_use_id"].is_string() && block["content"].is_string() && block["is_error"].is_boolean()) {
                        return Err(format!("fake: messages.{i}: bad tool_result {block}"));
                    }
                    let id = block["tool_use_id"].as_str().unwrap();
                    if !pending_tool_uses.iter().any(|p| p == id) {
                        return Err(format!("fake: messages.{i}: unexpected tool_use_id {id}"));
                    }
                    pending_tool_uses.retain(|p| p != id);
                }
                _ => return Err(format!("fake: messages.{i}: a {role} message cannot hold {block}")),
            }
        }
        if role == "user"
            && let Some(id) = pending_tool_uses.first()
        {
            return Err(format!("fake: messages.{i}: tool_use {id} has no tool_result right after it"));
        }
        pending_tool_uses = answered;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// SSE events exactly as the API sends them

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

pub fn message_start(input_tokens: u64, cache_read: u64) -> String {
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": "msg_01Fake", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cache_read, "output_tokens": 1}
        }}),
    )
}

pub fn text_start(index: u64) -> String {
    event("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}))
}

pub fn text_delta(index: u64, text: &str) -> String {
    event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}))
}

pub fn tool_start(index: u64, id: &str, name: &str) -> String {
    event(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
    )
}

pub fn json_delta(index: u64, partial: &str) -> String {
    event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": partial}}),
    )
}

pub fn block_stop(index: u64) -> String {
    event("content_block_stop", json!({"type": "content_block_stop", "index": index}))
}

pub fn message_delta(stop_reason: &str, output_tokens: u64) -> String {
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}}),
    )
}

pub fn message_stop() -> String {
    event("message_stop", json!({"type": "message_stop"}))
}

pub fn ping() -> String {
    event("ping", json!({"type": "ping"}))
}

pub fn error_event(kind: &str, message: &str) -> String {
    event("error", json!({"type": "error", "error": {"type": kind, "message": message}}))
}

/// A whole text answer: start, one delta per piece, stop, usage and the stop reason.
pub fn text_answer(pieces: &[&str], stop_reason: &str) -> String {
    let mut s = message_start(25, 0) + &text_start(0);
    for piece in pieces {
        s += &text_delta(0, piece);
    }
    s + &block_stop(0) + &message_delta(stop_reason, 15) + &message_stop()
}
