//! A fake OpenAI Chat Completions server on 127.0.0.1: it checks the bearer key and the request
//! shape the way the real API does, records every request, and answers each with the next
//! scripted reply — error bodies, or an SSE body sent in chosen byte chunks that can end
//! cleanly, break the connection, or go silent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

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
    /// A whole body with this status and these headers (`content-type` defaults to JSON).
    Plain { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// `text/event-stream` sent as these byte chunks, `gap` apart.
    Sse { chunks: Vec<Bytes>, gap: Duration, end: End },
}

impl Reply {
    /// An error status with OpenAI's error body.
    pub fn error(status: u16, message: &str) -> Self {
        let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
        Reply::Plain { status, headers: vec![], body: body.to_string() }
    }

    /// An SSE body cut into `chunks`, ending cleanly.
    pub fn sse(chunks: Vec<Bytes>) -> Self {
        Reply::Sse { chunks, gap: Duration::from_millis(2), end: End::Close }
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HeaderMap,
    pub body: Value,
}

struct FakeState {
    key: Option<String>,
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Signalled when a streamed body is dropped before it was sent in full.
    cut_off: Notify,
}

/// The running fake; dropping it stops the server.
pub struct Fake {
    /// What a client is configured with, `/v1` included.
    pub base_url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    /// Starts a fake that demands `Authorization: Bearer {key}` (or no such header for `None`).
    pub async fn start(key: Option<&str>, replies: Vec<Reply>) -> Fake {
        let state = Arc::new(FakeState {
            key: key.map(str::to_owned),
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            cut_off: Notify::new(),
        });
        let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
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

async fn chat(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let recorded = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded { headers: headers.clone(), body: recorded });
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let authorized = match &state.key {
        Some(key) => auth == Some(format!("Bearer {key}").as_str()),
        None => auth.is_none(),
    };
    if !authorized {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        );
    }
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/json") {
        return openai_error(StatusCode::BAD_REQUEST, "The request body must be JSON.");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return openai_error(StatusCode::BAD_REQUEST, "We could not parse the JSON body of your request.");
    };
    if !(body["model"].is_string() && body["messages"].is_array() && body["stream"] == json!(true)) {
        return openai_error(StatusCode::BAD_REQUEST, "this fake needs model, messages and stream: true");
    }
    let reply = state.replies.lock().unwrap().pop_front();
    match reply {
        None => openai_error(StatusCode::INTERNAL_SERVER_ERROR, "the fake has no reply scripted for this request"),
        Some(Reply::Plain { status, headers, body }) => {
            let mut res = (StatusCode::from_u16(status).unwrap(), body).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            for (name, value) in headers {
                res.headers_mut().insert(name, value.parse().unwrap());
            }
            res
        }
        Some(Reply::Sse { chunks, gap, end }) => {
            let sending = Sending { chunks: chunks.into(), gap, end, guard: CutOffGuard { state: state.clone(), completed: false } };
            let body = Body::from_stream(futures::stream::unfold(sending, next_chunk));
            let mut res = Response::new(body);
            res.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream; charset=utf-8".parse().unwrap());
            res
        }
    }
}

/// A streamed body in progress.
struct Sending {
    chunks: VecDeque<Bytes>,
    gap: Duration,
    end: End,
    guard: CutOffGuard,
}

async fn next_chunk(mut sending: Sending) -> Option<(Result<Bytes, std::io::Error>, Sending)> {
    if let Some(chunk) = sending.chunks.pop_front() {
        tokio::time::sleep(sending.gap).await;
        return Some((Ok(chunk), sending));
    }
    match sending.end {
        End::Close => {
            sending.guard.complete();
            None
        }
        End::Abort => {
            // Let the last chunk reach the client before the connection breaks.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Err(std::io::Error::other("the fake breaks the connection")), sending))
        }
        End::Hang => futures::future::pending().await,
    }
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Notifies the fake when the body it lives in is dropped unfinished.
struct CutOffGuard {
    state: Arc<FakeState>,
    completed: bool,
}

impl CutOffGuard {
    fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for CutOffGuard {
    fn drop(&mut self) {
        if !self.completed {
            self.state.cut_off.notify_one();
        }
    }
}

/// A `chat.completion.chunk` as OpenAI sends it, for choice 0.
pub fn chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_06737a9306",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null
    })
}

/// The last chunk with `stream_options.include_usage`: no choices, the call's usage.
pub fn usage_chunk(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_06737a9306",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        }
    })
}

/// `data: …` frames for `chunks`, with `data: [DONE]` after them when `done`.
pub fn sse_body(chunks: &[Value], done: bool) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    body
}

/// `body` cut at these byte offsets (anywhere, UTF-8 characters included).
pub fn cut_at(body: &str, mut cuts: Vec<usize>) -> Vec<Bytes> {
    cuts.sort_unstable();
    cuts.dedup();
    let bytes = body.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().filter(|&c| c > 0 && c < bytes.len()) {
        pieces.push(Bytes::copy_from_slice(&bytes[start..cut]));
        start = cut;
    }
    pieces.push(Bytes::copy_from_slice(&bytes[start..]));
    pieces
}

/// `body` cut every `n` bytes.
pub fn cut_every(body: &str, n: usize) -> Vec<Bytes> {
    body.as_bytes().chunks(n).map(Bytes::copy_from_slice).collect()
}
