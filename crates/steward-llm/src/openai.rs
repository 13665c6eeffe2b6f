//! The OpenAI Chat Completions client, which also serves any `openai_compatible` server (vLLM,
//! llama.cpp, Ollama, …): it maps a neutral [`ModelRequest`] to a streamed
//! `POST {base_url}/chat/completions` and decodes the answer's chunks into [`StreamEvent`]s.
//!
//! It owns only the wire format; retries, timeouts and SSE framing are `transport`'s. It must
//! never log the API key, and never spawn: the returned stream owns the HTTP response, so
//! dropping it closes the connection.

use std::collections::BTreeMap;
use std::pin::pin;

use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::Sender;

use crate::transport::{self, SseEvent};
use crate::{
    ClientConfig, EventStream, LlmError, Message, ModelClient, ModelRequest, Part, ProviderKind, Role, StopReason, StreamEvent, Usage,
};

/// OpenAI Chat Completions (and compatible servers) client.
#[derive(Debug, Clone)]
pub struct OpenAi {
    config: ClientConfig,
    http: reqwest::Client,
}

impl OpenAi {
    pub fn new(config: ClientConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        // Local compatible servers often run without a key; sending `Bearer ` would be wrong.
        if let Some(key) = &self.config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                LlmError::InvalidRequest(
                    "the API key contains characters that cannot be sent in an HTTP header; check the provider's key".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }
}

#[async_trait::async_trait]
impl ModelClient for OpenAi {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, LlmError> {
        let body = request_body(self.config.kind, request)?;
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let res = transport::post(&self.http, &self.config, &url, self.headers()?, &body).await?;
        let idle = self.config.timeouts.idle;
        if let Some(content_type) = not_an_event_stream(&res) {
            // E.g. a server that ignored `stream: true`, or a web page at a wrong base URL.
            let message = tokio::time::timeout(idle, transport::error_message(res)).await.unwrap_or_default();
            return Err(LlmError::Protocol(format!("expected an event stream but got `{content_type}`: {message}")));
        }
        let events = transport::sse(res, idle);
        Ok(Box::pin(transport::async_stream(move |tx| pump(events, tx))))
    }
}

/// The response's content type when it is clearly not server-sent events. A missing or odd
/// type is let through: some compatible servers label their event streams loosely.
fn not_an_event_stream(res: &reqwest::Response) -> Option<String> {
    let content_type = res.headers().get(CONTENT_TYPE)?.to_str().ok()?.to_ascii_lowercase();
    (content_type.contains("json") || content_type.contains("html")).then_some(content_type)
}

/// The JSON body of a streamed Chat Completions request.
fn request_body(kind: ProviderKind, request: &ModelRequest) -> Result<Value, LlmError> {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        match message.role {
            Role::User => user_messages(message, &mut messages)?,
            Role::Assistant => messages.push(assistant_message(message)?),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(messages));
    // OpenAI rejects an empty `tools` array, so it is left out when there are none.
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    // OpenAI deprecated `max_tokens` (reasoning models refuse it); older compatible servers
    // only know `max_tokens`.
    let max_key = if kind == ProviderKind::OpenAi { "max_completion_tokens" } else { "max_tokens" };
    body.insert(max_key.into(), json!(request.max_output_tokens));
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    Ok(Value::Object(body))
}

/// A neutral user message becomes one `tool` message per tool result, then one `user` message
/// with its text. Results go first because OpenAI requires `tool` messages to follow the
/// assistant's `tool_calls` directly.
fn user_messages(message: &Message, out: &mut Vec<Value>) -> Result<(), LlmError> {
    let mut texts = Vec::new();
    for part in &message.parts {
        match part {
            Part::Text(text) => texts.push(text.as_str()),
            Part::ToolResult { call_id, content, is_error, .. } => {
                // The format has no error flag, so the model is told in the content.
                let content = if *is_error { format!("ERROR: {content}") } else { content.clone() };
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            }
            Part::ToolCall { .. } => return Err(LlmError::InvalidRequest("a user message cannot contain a tool call".into())),
        }
    }
    // One message, not one per part: some compatible chat templates insist that roles alternate.
    if !texts.is_empty() {
        out.push(json!({"role": "user", "content": texts.join("\n\n")}));
    }
    Ok(())
}

fn assistant_message(message: &Message) -> Result<Value, LlmError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for part in &message.parts {
        match part {
            Part::Text(text) => texts.push(text.as_str()),
            Part::ToolCall { id, name, arguments } => {
                // Invalid JSON the model produced earlier is kept as its raw text.
                let arguments = match arguments {
                    Value::String(raw) => raw.clone(),
                    other => other.to_string(),
                };
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            Part::ToolResult { .. } => return Err(LlmError::InvalidRequest("an assistant message cannot contain a tool result".into())),
        }
    }
    let mut out = Map::new();
    out.insert("role".into(), json!("assistant"));
    let content = match (texts.is_empty(), calls.is_empty()) {
        (false, _) => json!(texts.join("\n\n")),
        (true, false) => Value::Null,
        // Content may only be absent when there are tool calls.
        (true, true) => json!(""),
    };
    out.insert("content".into(), content);
    if !calls.is_empty() {
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(out))
}

/// Decodes the SSE events into the consumer's channel; ends after the first error.
async fn pump(events: impl Stream<Item = Result<SseEvent, LlmError>>, tx: Sender<Result<StreamEvent, LlmError>>) {
    let mut events = pin!(events);
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    let result = loop {
        match events.next().await {
            Some(Ok(event)) => match decoder.data(&event.data, &mut out) {
                Ok(Next::More) => {}
                Ok(Next::Done) => break decoder.finish(&mut out),
                Err(e) => break Err(e),
            },
            // After a finish reason the answer is complete; only usage or `[DONE]` are missing,
            // which some compatible servers never send.
            Some(Err(e)) if decoder.finish_reason.is_some() => {
                tracing::debug!(error = %e, "the stream broke after its finish reason; treating the call as finished");
                break decoder.finish(&mut out);
            }
            Some(Err(e)) => break Err(e),
            None if decoder.finish_reason.is_some() => break decoder.finish(&mut out),
            None => break Err(LlmError::Interrupted("the stream ended before a finish reason or `data: [DONE]`".into())),
        }
        if !send_all(&tx, &mut out).await {
            return;
        }
    };
    if !send_all(&tx, &mut out).await {
        return;
    }
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

/// Sends and clears `out`; false once the consumer is gone.
async fn send_all(tx: &Sender<Result<StreamEvent, LlmError>>, out: &mut Vec<StreamEvent>) -> bool {
    for event in out.drain(..) {
        if tx.send(Ok(event)).await.is_err() {
            return false;
        }
    }
    true
}

enum Next {
    More,
    Done,
}

/// The state of one streamed completion: tool calls being assembled and the finish reason.
#[derive(Default)]
struct Decoder {
    /// Tool calls by their `index`. Fragments of several calls may interleave, so a call is
    /// complete only at the finish reason (or the end of the stream, if that never comes).
    calls: BTreeMap<u32, PendingCall>,
    emitted_calls: bool,
    finish_reason: Option<String>,
}

#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

impl Decoder {
    /// Handles one `data:` payload, pushing any events it completes to `out`.
    fn data(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<Next, LlmError> {
        if data.trim() == "[DONE]" {
            return Ok(Next::Done);
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| LlmError::Protocol(format!("a chunk is not JSON ({e}): {}", snippet(data))))?;
        if let Some(error) = in_stream_error(&value) {
            return Err(error);
        }
        let chunk: Chunk =
            serde_json::from_value(value).map_err(|e| LlmError::Protocol(format!("unexpected chunk ({e}): {}", snippet(data))))?;
        // We never ask for more than one choice.
        for choice in chunk.choices.unwrap_or_default().into_iter().filter(|c| c.index.unwrap_or(0) == 0) {
            if let Some(delta) = choice.delta {
                // A refusal is the model's answer to show, so it is text too.
                for text in [delta.content, delta.refusal].into_iter().flatten().filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta(text));
                }
                for fragment in delta.tool_calls.unwrap_or_default() {
                    self.tool_call_fragment(fragment);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
                self.emit_calls(out)?;
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage(Usage {
                input_tokens: usage.prompt_tokens.unwrap_or(0),
                output_tokens: usage.completion_tokens.unwrap_or(0),
            }));
        }
        Ok(Next::More)
    }

    fn tool_call_fragment(&mut self, fragment: ToolCallDelta) {
        // `index` keys the fragments; a few servers omit it and send each call whole, so a new
        // id then starts a new call and anything else continues the last one.
        let index = fragment.index.unwrap_or_else(|| {
            let last = self.calls.last_key_value();
            match (&fragment.id, last) {
                (Some(id), Some((i, call))) if *id == call.id => *i,
                (Some(_), Some((i, _))) => i + 1,
                (None, Some((i, _))) => *i,
                (_, None) => 0,
            }
        });
        let call = self.calls.entry(index).or_default();
        if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                call.name = name;
            }
            call.arguments.push_str(function.arguments.as_deref().unwrap_or(""));
        }
    }

    /// The tool calls assembled so far, each complete, in index order.
    fn emit_calls(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        for (index, call) in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                return Err(LlmError::Protocol(format!("tool call {index} has no function name")));
            }
            let id = if call.id.is_empty() { format!("call_{index}") } else { call.id };
            out.push(StreamEvent::ToolCall { id, name: call.name, arguments: parse_arguments(call.arguments) });
            self.emitted_calls = true;
        }
        Ok(())
    }

    /// Any tool calls still pending, then `Finish`.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        self.emit_calls(out)?;
        let reason = match self.finish_reason.as_deref() {
            // OpenAI itself (with a forced tool choice) and several compatible servers say
            // `stop` after tool calls; the caller must still run them.
            Some("stop") | None if self.emitted_calls => StopReason::ToolUse,
            Some("stop") | None => StopReason::EndTurn,
            Some("tool_calls" | "function_call") => StopReason::ToolUse,
            Some("length") => StopReason::MaxTokens,
            Some(other) => StopReason::Other(other.to_owned()),
        };
        out.push(StreamEvent::Finish(reason));
        Ok(())
    }
}

/// Tool arguments as JSON; no arguments at all mean `{}`, invalid JSON stays raw text.
fn parse_arguments(raw: String) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(&raw).unwrap_or(Value::String(raw))
}

/// `{"error": {"message", "code"?}}` (OpenAI, llama.cpp) or a top-level `{"object": "error",
/// "message", "code"}` (older vLLM). A numeric `code` is taken as the HTTP status it stands for.
fn in_stream_error(value: &Value) -> Option<LlmError> {
    let error = match value.get("error") {
        Some(e) if !e.is_null() => e,
        _ if value.get("object").and_then(Value::as_str) == Some("error") => value,
        _ => return None,
    };
    let message = error.get("message").and_then(Value::as_str).or(error.as_str()).unwrap_or("the provider reported an error in the stream");
    let status = error.get("code").and_then(Value::as_u64).filter(|c| (400..600).contains(c)).map_or(500, |c| c as u16);
    Some(LlmError::Http { status, message: message.to_owned() })
}

fn snippet(data: &str) -> String {
    let mut s: String = data.chars().take(200).collect();
    if s.len() < data.len() {
        s.push('…');
    }
    s
}

#[derive(Deserialize)]
struct Chunk {
    choices: Option<Vec<Choice>>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    index: Option<u32>,
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    index: Option<u32>,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}
