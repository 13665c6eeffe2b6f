//! The Anthropic Messages API client: `POST {base_url}/v1/messages` with `stream: true`.
//!
//! This module owns the translation between the neutral types and Anthropic's wire format, in
//! both directions: the request body (content blocks, consecutive same-role messages merged
//! because the API requires alternation) and the decoding of the streamed server-sent events
//! into [`StreamEvent`]s. Retries, timeouts and SSE framing belong to `transport`.
//!
//! It must never log the API key (it is put only in the `x-api-key` header, marked sensitive)
//! and never keep a response alive once its stream is dropped (no spawned tasks).

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};

use crate::transport::{self, SseEvent};
use crate::{ClientConfig, EventStream, LlmError, Message, ModelClient, ModelRequest, Part, Role, StopReason, StreamEvent, Usage};

/// The API version this module speaks; Anthropic keeps each version's wire format stable.
const API_VERSION: &str = "2023-06-01";

/// Anthropic Messages API client.
#[derive(Debug, Clone)]
pub struct Anthropic {
    config: ClientConfig,
    http: reqwest::Client,
}

impl Anthropic {
    pub fn new(config: ClientConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Without a key no header is sent, for gateways that add their own credentials.
        if let Some(key) = &self.config.api_key {
            let mut value = HeaderValue::from_str(key.expose().trim()).map_err(|_| {
                LlmError::InvalidRequest(
                    "the Anthropic API key contains characters that cannot be sent in an HTTP header; check it for stray quotes or line breaks".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        Ok(headers)
    }
}

#[async_trait::async_trait]
impl ModelClient for Anthropic {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, LlmError> {
        let body = request_body(request)?;
        let headers = self.headers()?;
        let url = format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'));
        let response = transport::post(&self.http, &self.config, &url, headers, &body).await?;
        Ok(Box::pin(decode(transport::sse(response, self.config.timeouts.idle))))
    }
}

// ---------------------------------------------------------------------------------------------
// The request

/// The JSON body of a streamed Messages call.
fn request_body(request: &ModelRequest) -> Result<Value, LlmError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(request.max_output_tokens));
    // The API rejects an empty system text block; an empty prompt means no prompt.
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(messages(&request.messages)?));
    if !request.tools.is_empty() {
        let tools =
            request.tools.iter().map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema})).collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(temperature) = request.temperature {
        if !temperature.is_finite() {
            return Err(LlmError::InvalidRequest(format!("temperature must be a finite number, not {temperature}")));
        }
        body.insert("temperature".into(), json!(temperature));
    }
    body.insert("stream".into(), json!(true));
    Ok(Value::Object(body))
}

/// The `messages` array: content blocks per message, with consecutive messages of one role
/// merged (the API requires user and assistant to alternate).
fn messages(messages: &[Message]) -> Result<Vec<Value>, LlmError> {
    let mut merged: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in messages {
        let mut blocks = Vec::with_capacity(message.parts.len());
        for part in &message.parts {
            if let Some(block) = content_block(message.role, part)? {
                blocks.push(block);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((role, content)) if *role == message.role => content.extend(blocks),
            _ => merged.push((message.role, blocks)),
        }
    }
    Ok(merged
        .into_iter()
        .map(|(role, mut content)| {
            // The API wants a user message's tool results before any text; merging can break that.
            content.sort_by_key(|block| block["type"] != "tool_result");
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": content})
        })
        .collect())
}

/// One content block, or `None` for a part the API would reject and that carries nothing
/// (an empty text).
fn content_block(role: Role, part: &Part) -> Result<Option<Value>, LlmError> {
    Ok(Some(match (role, part) {
        (_, Part::Text(text)) if text.is_empty() => return Ok(None),
        (_, Part::Text(text)) => json!({"type": "text", "text": text}),
        (Role::Assistant, Part::ToolCall { id, name, arguments }) => {
            // `input` must be an object. Arguments that were not (invalid JSON the runtime
            // refused) are sent as `{}`; the refusal is in the matching tool result.
            let input = if arguments.is_object() { arguments.clone() } else { json!({}) };
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        (Role::User, Part::ToolResult { call_id, content, is_error, .. }) => {
            json!({"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error})
        }
        (Role::User, Part::ToolCall { name, .. }) => {
            return Err(LlmError::InvalidRequest(format!("a tool call (`{name}`) can only be part of an assistant message")));
        }
        (Role::Assistant, Part::ToolResult { name, .. }) => {
            return Err(LlmError::InvalidRequest(format!("a tool result (`{name}`) can only be part of a user message")));
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// The response stream

/// Turns the server-sent events of a Messages stream into neutral events, ending after the
/// first error or after `message_stop`.
fn decode(
    events: impl Stream<Item = Result<SseEvent, LlmError>> + Send + 'static,
) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send {
    transport::async_stream(move |tx| async move {
        let mut events = std::pin::pin!(events);
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        loop {
            let step = match events.next().await {
                Some(Ok(event)) => decoder.on_event(&event, &mut out),
                Some(Err(e)) => Err(e),
                None => Err(decoder.ended_early()),
            };
            for event in out.drain(..) {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Done) => return,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    })
}

enum Step {
    Continue,
    /// `message_stop` was seen and `Finish` emitted.
    Done,
}

/// A content block that has started and not yet stopped.
enum Block {
    Text,
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// Kinds this client does not surface (thinking, server tools, …).
    Other,
}

/// The state of one Messages stream.
#[derive(Default)]
struct Decoder {
    events_seen: u64,
    usage: UsageParts,
    stop_reason: Option<String>,
    open: BTreeMap<u64, Block>,
}

/// Anthropic reports cached prompt tokens apart from `input_tokens`; the neutral count is their sum.
/// Every field is a running total, so a report replaces the previous value.
#[derive(Default)]
struct UsageParts {
    input: u64,
    cache_creation: u64,
    cache_read: u64,
    output: u64,
}

impl UsageParts {
    fn update(&mut self, usage: &Value) -> Usage {
        let read = |field: &str, into: &mut u64| {
            if let Some(n) = usage.get(field).and_then(Value::as_u64) {
                *into = n;
            }
        };
        read("input_tokens", &mut self.input);
        read("cache_creation_input_tokens", &mut self.cache_creation);
        read("cache_read_input_tokens", &mut self.cache_read);
        read("output_tokens", &mut self.output);
        Usage { input_tokens: self.input.saturating_add(self.cache_creation).saturating_add(self.cache_read), output_tokens: self.output }
    }
}

impl Decoder {
    /// Handles one event, pushing what it yields onto `out`.
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Step, LlmError> {
        self.events_seen += 1;
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| LlmError::Protocol(format!("the `{}` event is not valid JSON ({e}): {}", event.event, excerpt(&event.data))))?;
        // The payload's `type` is authoritative; it always repeats the SSE event name.
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(&event.event);
        match kind {
            "message_start" => {
                if let Some(usage) = data.pointer("/message/usage") {
                    out.push(StreamEvent::Usage(self.usage.update(usage)));
                }
            }
            "content_block_start" => self.block_start(&data, out)?,
            "content_block_delta" => self.block_delta(&data, out)?,
            "content_block_stop" => {
                let index = index(&data)?;
                match self.open.remove(&index) {
                    None => return Err(protocol(format!("content_block_stop for block {index}, which was not open"))),
                    Some(Block::ToolUse { id, name, json }) => {
                        out.push(StreamEvent::ToolCall { id, name, arguments: parse_arguments(json) })
                    }
                    Some(Block::Text | Block::Other) => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = data.get("usage") {
                    out.push(StreamEvent::Usage(self.usage.update(usage)));
                }
            }
            "message_stop" => {
                if let Some((index, Block::ToolUse { name, .. })) = self.open.iter().find(|(_, b)| matches!(b, Block::ToolUse { .. })) {
                    return Err(protocol(format!("the message stopped while the `{name}` tool call (block {index}) was still open")));
                }
                let reason = self.stop_reason.take().ok_or_else(|| protocol("message_stop without a stop_reason".into()))?;
                out.push(StreamEvent::Finish(stop_reason(reason)));
                return Ok(Step::Done);
            }
            "error" => return Err(stream_error(&data)),
            // `ping`, and event types added after this client was written, which the API
            // documentation asks clients to ignore.
            _ => {}
        }
        Ok(Step::Continue)
    }

    fn block_start(&mut self, data: &Value, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let index = index(data)?;
        let block = data.get("content_block").ok_or_else(|| protocol("content_block_start without a content_block".into()))?;
        let block = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta(text.to_owned()));
                }
                Block::Text
            }
            Some("tool_use") => {
                let field = |name: &str| {
                    block
                        .get(name)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| protocol(format!("a tool_use block without `{name}`")))
                };
                // Arguments come as `input_json_delta`s; `input` at the start is always `{}`.
                Block::ToolUse { id: field("id")?, name: field("name")?, json: String::new() }
            }
            _ => Block::Other,
        };
        if self.open.insert(index, block).is_some() {
            return Err(protocol(format!("content block {index} started twice")));
        }
        Ok(())
    }

    fn block_delta(&mut self, data: &Value, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let index = index(data)?;
        let delta = data.get("delta").ok_or_else(|| protocol("content_block_delta without a delta".into()))?;
        let block = self.open.get_mut(&index).ok_or_else(|| protocol(format!("a delta for content block {index}, which is not open")))?;
        let string = |name: &str| delta.get(name).and_then(Value::as_str).ok_or_else(|| protocol(format!("a delta without `{name}`")));
        match (delta.get("type").and_then(Value::as_str), block) {
            (Some("text_delta"), Block::Text) => {
                let text = string("text")?;
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta(text.to_owned()));
                }
            }
            (Some("input_json_delta"), Block::ToolUse { json, .. }) => json.push_str(string("partial_json")?),
            (Some(kind @ ("text_delta" | "input_json_delta")), _) => {
                return Err(protocol(format!("a {kind} for content block {index}, which is of another kind")));
            }
            // Deltas of blocks this client does not surface (thinking, signatures, citations).
            _ => {}
        }
        Ok(())
    }

    /// The error for a body that ended without `message_stop`.
    fn ended_early(&self) -> LlmError {
        if self.events_seen == 0 {
            LlmError::Protocol("the response body is not an event stream (it ended without a single event)".into())
        } else {
            LlmError::Interrupted("the stream ended before message_stop".into())
        }
    }
}

fn protocol(message: String) -> LlmError {
    LlmError::Protocol(message)
}

fn index(data: &Value) -> Result<u64, LlmError> {
    data.get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| protocol(format!("a content block event without an index: {}", excerpt(&data.to_string()))))
}

/// A tool call's arguments; an empty string means no arguments, invalid JSON is kept raw for
/// the caller to refuse.
fn parse_arguments(json: String) -> Value {
    if json.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(&json).unwrap_or(Value::String(json))
}

fn stop_reason(reason: String) -> StopReason {
    match reason.as_str() {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        _ => StopReason::Other(reason),
    }
}

/// An `error` event (e.g. `overloaded_error` mid-stream), as the HTTP error the same failure
/// gets before streaming starts, so callers classify both alike.
fn stream_error(data: &Value) -> LlmError {
    let Some(error) = data.get("error") else {
        return protocol(format!("an error event without an error object: {}", excerpt(&data.to_string())));
    };
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("unknown_error");
    let message = error.get("message").and_then(Value::as_str).unwrap_or(kind).to_owned();
    let status = match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    LlmError::Http { status, message }
}

/// The start of a payload, for error messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
