//! Fake model providers on a loopback port, speaking the providers' real SSE wire formats.
//!
//! - [`FakeModel`]: the Anthropic Messages format (and OpenAI Chat Completions for text),
//!   scripted per test: each request is answered by a closure that sees the request body. It
//!   records requests and whether the client dropped a streaming response.
//! - [`InstantModel`]: what the benchmarks load the server with: an Anthropic endpoint that
//!   answers at once (a `current_time` tool call, then ~20 tokens of text), counting its calls
//!   and keeping nothing else, so a long benchmark does not grow its memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::atomic::AtomicU64;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Stream this text in word-sized deltas, then end the turn.
    Text(String),
    /// Ask for a tool.
    Tool { id: String, name: String, input: Value },
    /// Stream `n` deltas with `delay` between them (a long run).
    Slow { n: usize, delay: Duration },
    /// Answer with an HTTP error.
    Error { status: u16, message: String },
    /// Send half a stream, then cut the connection.
    Drop,
    /// Answer 200 with something that is not an event stream.
    Garbage,
}

type Script = dyn Fn(&Value, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct Fake {
    script: Arc<Script>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    dropped: Arc<AtomicUsize>,
    usage_per_reply: (u64, u64),
}

/// A running scripted fake; stops when dropped.
pub struct FakeModel {
    /// Its base URL (`http://127.0.0.1:<port>`), for a provider's `base_url`.
    pub url: String,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    dropped: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a response body dropped before it was complete.
struct DropGuard(Arc<AtomicUsize>, std::sync::atomic::AtomicBool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1.load(Ordering::SeqCst) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl FakeModel {
    /// Starts a fake answering each request with `script(request_body, request_index)`.
    pub async fn start(script: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with_usage(script, (12, 8)).await
    }

    /// Like `start`, reporting `(input, output)` tokens per reply.
    pub async fn start_with_usage(script: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static, usage: (u64, u64)) -> Self {
        let fake = Fake { script: Arc::new(script), requests: Default::default(), dropped: Default::default(), usage_per_reply: usage };
        let (requests, dropped) = (fake.requests.clone(), fake.dropped.clone());
        let app =
            Router::new().route("/v1/messages", post(messages)).route("/v1/chat/completions", post(chat_completions)).with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, requests, dropped, task }
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().iter().map(|(_, b)| b.clone()).collect()
    }

    /// The request headers received so far, in the order of [`FakeModel::requests`].
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.requests.lock().unwrap().iter().map(|(h, _)| h.clone()).collect()
    }

    /// How many streaming responses the client abandoned before their end.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

fn frame(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

async fn messages(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let index = {
        let mut r = fake.requests.lock().unwrap();
        r.push((headers, body.clone()));
        r.len() - 1
    };
    let reply = (fake.script)(&body, index);
    let (input_tokens, output_tokens) = fake.usage_per_reply;
    let start = frame(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
    );
    let end = |stop: &str| {
        vec![
            frame(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": output_tokens}}),
            ),
            frame("message_stop", json!({"type": "message_stop"})),
        ]
    };
    let text_block = |words: Vec<String>| {
        let mut v = vec![frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )];
        for w in words {
            v.push(frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
            ));
        }
        v.push(frame("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        v
    };
    let (chunks, delay, cut): (Vec<String>, Duration, bool) = match reply {
        Reply::Error { status, message } => {
            let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
            return (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        }
        Reply::Text(text) => {
            let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
            let mut v = vec![start];
            v.extend(text_block(words));
            v.extend(end("end_turn"));
            (v, Duration::ZERO, false)
        }
        Reply::Tool { id, name, input } => {
            let args = input.to_string();
            let (a, b) = args.split_at(args.len() / 2);
            let mut v = vec![start];
            v.extend(text_block(vec!["Let me check. ".into()]));
            v.push(frame("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            for part in [a, b] {
                v.push(frame(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
            v.push(frame("content_block_stop", json!({"type": "content_block_stop", "index": 1})));
            v.extend(end("tool_use"));
            (v, Duration::ZERO, false)
        }
        Reply::Slow { n, delay } => {
            let mut v = vec![start];
            v.extend(text_block((0..n).map(|i| format!("w{i} ")).collect()));
            v.extend(end("end_turn"));
            (v, delay, false)
        }
        Reply::Garbage => {
            return Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from("data: {not json\n\n<html>oops</html>\n\n"))
                .unwrap();
        }
        Reply::Drop => {
            let mut v = vec![start];
            v.extend(text_block(vec!["partial ".into()]));
            (v, Duration::from_millis(20), true)
        }
    };
    let guard = DropGuard(fake.dropped.clone(), std::sync::atomic::AtomicBool::new(false));
    let stream = futures::stream::unfold((chunks.into_iter(), guard, delay, cut), |(mut it, guard, delay, cut)| async move {
        match it.next() {
            Some(chunk) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok::<_, std::io::Error>(chunk), (it, guard, delay, cut)))
            }
            None if cut => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                guard.1.store(true, Ordering::SeqCst);
                Some((Err(std::io::Error::other("cut")), (it, guard, delay, false)))
            }
            None => {
                guard.1.store(true, Ordering::SeqCst);
                None
            }
        }
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

/// The same script, spoken as OpenAI Chat Completions (text replies only).
async fn chat_completions(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let index = {
        let mut r = fake.requests.lock().unwrap();
        r.push((headers, body.clone()));
        r.len() - 1
    };
    let Reply::Text(text) = (fake.script)(&body, index) else {
        return (StatusCode::NOT_IMPLEMENTED, "the OpenAI fake only answers text").into_response();
    };
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for w in text.split_inclusive(' ') {
        out.push(chunk(json!({"content": w}), Value::Null));
    }
    out.push(chunk(json!({}), json!("stop")));
    let (i, o) = fake.usage_per_reply;
    out.push(format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": i, "completion_tokens": o}})
    ));
    out.push("data: [DONE]\n\n".into());
    Response::builder().header("content-type", "text/event-stream").body(Body::from(out.concat())).unwrap()
}

/// An instant fake Anthropic endpoint (first a tool call, then ~20 tokens of text) that counts
/// the calls it answers: every run makes two. Stops when dropped.
pub struct InstantModel {
    /// Its base URL, for a provider's `base_url`.
    pub url: String,
    /// How many requests it has answered.
    pub calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InstantModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InstantModel {
    /// Binds 127.0.0.1:0 (with `TCP_NODELAY` on every connection) and serves until dropped.
    pub async fn start() -> Self {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/v1/messages",
            post(move |body: String| {
                counter.fetch_add(1, Ordering::Relaxed);
                async move { instant_reply(&body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, calls, task }
    }
}

fn instant_reply(body: &str) -> Response<String> {
    let tool_turn = !body.contains("tool_result");
    let mut f = vec![frame(
        "message_start",
        json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "usage": {"input_tokens": 20, "output_tokens": 1}}}),
    )];
    if tool_turn {
        f.push(frame("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "current_time", "input": {}}})));
        f.push(frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ));
        f.push(frame("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        f.push(frame(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
        ));
    } else {
        f.push(frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        for chunk in ["It is ", "now a fine ", "moment to say ", "that the time ", "is known and all ", "is well."] {
            f.push(frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": chunk}}),
            ));
        }
        f.push(frame("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        f.push(frame(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 20}}),
        ));
    }
    f.push(frame("message_stop", json!({"type": "message_stop"})));
    Response::builder().header("content-type", "text/event-stream").body(f.concat()).unwrap()
}
