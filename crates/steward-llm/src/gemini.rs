//! The Google Gemini client: `POST {base_url}/models/{model}:streamGenerateContent?alt=sse`.
//!
//! This module owns the translation between the neutral types and Gemini's wire format, in both
//! directions: the request body (`contents`, `systemInstruction`, `functionDeclarations` with
//! schemas cleaned by `schema`) and the decoding of the streamed `GenerateContentResponse`
//! chunks into [`StreamEvent`]s. Retries, timeouts and SSE framing belong to `transport`.
//!
//! Gemini's function calls usually carry no id; this client names them `call_<n>`, numbering on
//! from the calls already in the conversation so ids stay unique within it, and matches results
//! back by the tool's name, as Gemini does.
//!
//! It must never log the API key (it is put only in the `x-goog-api-key` header, marked
//! sensitive) and never keep a response alive once its stream is dropped (no spawned tasks).

mod schema;

use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::transport::{self, SseEvent};
use crate::{ClientConfig, EventStream, LlmError, Message, ModelClient, ModelRequest, Part, Role, StopReason, StreamEvent, Usage};

/// Put on replayed function calls, whose thought signature the neutral types do not keep.
/// Gemini 3 rejects a function call in the history without one; Google documents this value
/// as the way to replay calls that have no real signature.
const NO_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Google Gemini client.
#[derive(Debug, Clone)]
pub struct Gemini {
    config: ClientConfig,
    http: reqwest::Client,
}

impl Gemini {
    pub fn new(config: ClientConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        // Without a key no header is sent, for gateways that add their own credentials.
        if let Some(key) = &self.config.api_key {
            let mut value = HeaderValue::from_str(key.expose().trim()).map_err(|_| {
                LlmError::InvalidRequest(
                    "the Gemini API key contains characters that cannot be sent in an HTTP header; check it for stray quotes or line breaks".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert("x-goog-api-key", value);
        }
        Ok(headers)
    }

    /// The streaming endpoint of `model`: a plain name (`gemini-2.5-flash`) or a resource name
    /// (`models/…`, `tunedModels/…`).
    fn url(&self, model: &str) -> Result<String, LlmError> {
        let valid = !model.is_empty() && model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@'));
        if !valid {
            return Err(LlmError::InvalidRequest(format!("`{model}` is not a Gemini model name (e.g. `gemini-2.5-flash`)")));
        }
        let resource = if model.contains('/') { model.to_owned() } else { format!("models/{model}") };
        Ok(format!("{}/{resource}:streamGenerateContent?alt=sse", self.config.base_url.trim_end_matches('/')))
    }
}

#[async_trait::async_trait]
impl ModelClient for Gemini {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, LlmError> {
        let body = request_body(request)?;
        let url = self.url(&request.model)?;
        let response = transport::post(&self.http, &self.config, &url, self.headers()?, &body).await?;
        let first_call = request.messages.iter().flat_map(|m| &m.parts).filter(|p| matches!(p, Part::ToolCall { .. })).count();
        Ok(Box::pin(decode(transport::sse(response, self.config.timeouts.idle), first_call)))
    }
}

// ---------------------------------------------------------------------------------------------
// The request

/// The JSON body of a `streamGenerateContent` call.
fn request_body(request: &ModelRequest) -> Result<Value, LlmError> {
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents(&request.messages)?));
    // Gemini rejects an empty text part; an empty prompt means no prompt.
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert("systemInstruction".into(), json!({"parts": [{"text": system}]}));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut declaration = json!({"name": tool.name, "description": tool.description});
                if let Some(parameters) = schema::parameters(&tool.input_schema) {
                    declaration["parameters"] = parameters;
                }
                declaration
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
    }
    let mut generation = json!({"maxOutputTokens": request.max_output_tokens});
    if let Some(temperature) = request.temperature {
        if !temperature.is_finite() {
            return Err(LlmError::InvalidRequest(format!("temperature must be a finite number, not {temperature}")));
        }
        generation["temperature"] = json!(temperature);
    }
    body.insert("generationConfig".into(), generation);
    Ok(Value::Object(body))
}

/// The `contents` array, one entry per message that carries something (Gemini rejects a
/// content without parts).
fn contents(messages: &[Message]) -> Result<Vec<Value>, LlmError> {
    let mut contents = Vec::with_capacity(messages.len());
    for message in messages {
        let mut parts = Vec::with_capacity(message.parts.len());
        for part in &message.parts {
            if let Some(part) = wire_part(message.role, part)? {
                parts.push(part);
            }
        }
        // Only the first call of a step carries the signature, as Gemini itself sends them.
        if let Some(first_call) = parts.iter_mut().find(|p| p.get("functionCall").is_some()) {
            first_call["thoughtSignature"] = json!(NO_THOUGHT_SIGNATURE);
        }
        if parts.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    Ok(contents)
}

/// One part, or `None` for a part Gemini would reject and that carries nothing (an empty text).
/// Call ids are not sent: Gemini pairs calls and responses by name and order, and some of its
/// endpoints reject an `id` they did not issue.
fn wire_part(role: Role, part: &Part) -> Result<Option<Value>, LlmError> {
    Ok(Some(match (role, part) {
        (_, Part::Text(text)) if text.is_empty() => return Ok(None),
        (_, Part::Text(text)) => json!({"text": text}),
        (Role::Assistant, Part::ToolCall { name, arguments, .. }) => {
            // `args` must be an object. Arguments that were not (invalid JSON the runtime
            // refused) are sent as `{}`; the refusal is in the matching tool result.
            let args = if arguments.is_object() { arguments.clone() } else { json!({}) };
            json!({"functionCall": {"name": name, "args": args}})
        }
        (Role::User, Part::ToolResult { name, content, is_error, .. }) => {
            let response = if *is_error { json!({"error": content}) } else { json!({"content": content}) };
            json!({"functionResponse": {"name": name, "response": response}})
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

/// One `data:` payload of the stream: a `GenerateContentResponse`, or an error object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<UsageMetadata>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    index: u32,
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    parts: Option<Vec<WirePart>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    text: Option<String>,
    /// A thought summary, not part of the answer.
    #[serde(default)]
    thought: bool,
    function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    id: Option<String>,
    name: String,
    args: Option<Value>,
}

/// Running totals. Thinking tokens are billed as output; tool-use prompt tokens (of Gemini's
/// built-in tools) as input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

/// Turns the server-sent events of a Gemini stream into neutral events, ending after the first
/// error or when the body ends.
fn decode(
    events: impl Stream<Item = Result<SseEvent, LlmError>> + Send + 'static,
    first_call: usize,
) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send {
    transport::async_stream(move |tx| async move {
        let mut events = std::pin::pin!(events);
        let mut decoder = Decoder { next_call: first_call, ..Decoder::default() };
        let mut out = Vec::new();
        let outcome = loop {
            let step = match events.next().await {
                Some(Ok(event)) => decoder.on_event(&event, &mut out),
                // Gemini has no end-of-stream marker beyond the finish reason: once that has
                // come, a connection that then breaks or idles has lost nothing.
                Some(Err(LlmError::Interrupted(_) | LlmError::Timeout(_))) if decoder.finish.is_some() => break decoder.finish(),
                Some(Err(e)) => Err(e),
                None => break decoder.finish(),
            };
            for event in out.drain(..) {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            if let Err(e) = step {
                break Err(e);
            }
        };
        let _ = tx.send(outcome).await;
    })
}

/// The state of one Gemini stream.
#[derive(Default)]
struct Decoder {
    events_seen: u64,
    /// The number the next id-less function call gets.
    next_call: usize,
    saw_tool_call: bool,
    /// The raw finish reason (or prompt block reason), once reported.
    finish: Option<String>,
    /// The last usage emitted, so repeated identical reports are not re-emitted.
    usage: Option<Usage>,
}

impl Decoder {
    /// Handles one event, pushing what it yields onto `out`.
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        self.events_seen += 1;
        let chunk: Chunk = serde_json::from_str(&event.data)
            .map_err(|e| LlmError::Protocol(format!("a stream chunk is not a GenerateContentResponse ({e}): {}", excerpt(&event.data))))?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&error));
        }
        // Only one candidate is asked for; any other is ignored.
        if let Some(candidate) = chunk.candidates.unwrap_or_default().into_iter().find(|c| c.index == 0) {
            for part in candidate.content.and_then(|c| c.parts).unwrap_or_default() {
                self.on_part(part, out);
            }
            if let Some(reason) = candidate.finish_reason {
                self.finish = Some(reason);
            }
        }
        if let Some(reason) = chunk.prompt_feedback.and_then(|f| f.block_reason) {
            self.finish = Some(reason);
        }
        if let Some(meta) = chunk.usage_metadata {
            // Running totals never go down; a chunk that leaves a count out has not reset it.
            let before = self.usage.unwrap_or_default();
            let usage = Usage {
                input_tokens: meta.prompt_token_count.saturating_add(meta.tool_use_prompt_token_count).max(before.input_tokens),
                output_tokens: meta.candidates_token_count.saturating_add(meta.thoughts_token_count).max(before.output_tokens),
            };
            if self.usage != Some(usage) {
                self.usage = Some(usage);
                out.push(StreamEvent::Usage(usage));
            }
        }
        Ok(())
    }

    fn on_part(&mut self, part: WirePart, out: &mut Vec<StreamEvent>) {
        if let Some(call) = part.function_call {
            let number = self.next_call;
            self.next_call += 1;
            self.saw_tool_call = true;
            let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{number}"));
            // Gemini sends `args` as an object and leaves it out when there are none.
            let arguments = match call.args {
                None | Some(Value::Null) => json!({}),
                Some(Value::String(raw)) => serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
                Some(args) => args,
            };
            out.push(StreamEvent::ToolCall { id, name: call.name, arguments });
        } else if let Some(text) = part.text.filter(|t| !t.is_empty() && !part.thought) {
            out.push(StreamEvent::TextDelta(text));
        }
    }

    /// The last item once the body has ended: `Finish`, or the error for a stream cut short.
    fn finish(&mut self) -> Result<StreamEvent, LlmError> {
        match self.finish.take() {
            Some(reason) => Ok(StreamEvent::Finish(stop_reason(reason, self.saw_tool_call))),
            None if self.events_seen == 0 => {
                Err(LlmError::Protocol("the response body is not an event stream (it ended without a single event)".into()))
            }
            None => Err(LlmError::Interrupted("the stream ended before Gemini reported a finish reason".into())),
        }
    }
}

/// Gemini says `STOP` for a turn that ends in function calls too; the calls tell them apart.
fn stop_reason(reason: String, saw_tool_call: bool) -> StopReason {
    match reason.as_str() {
        "STOP" if saw_tool_call => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        _ => StopReason::Other(reason),
    }
}

/// An error object inside the stream (`{"error": {"code", "message", "status"}}`), as the HTTP
/// error the same failure gets before streaming starts, so callers classify both alike.
fn stream_error(error: &Value) -> LlmError {
    let status_name = error.get("status").and_then(Value::as_str).unwrap_or("UNKNOWN");
    let status =
        error.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).filter(|c| (400..600).contains(c)).unwrap_or(
            match status_name {
                "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
                "UNAUTHENTICATED" => 401,
                "PERMISSION_DENIED" => 403,
                "NOT_FOUND" => 404,
                "RESOURCE_EXHAUSTED" => 429,
                "UNAVAILABLE" => 503,
                "DEADLINE_EXCEEDED" => 504,
                _ => 500,
            },
        );
    let message = match error.get("message").and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None if error.is_object() => status_name.to_owned(),
        None => excerpt(&error.to_string()),
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
