//! The provider-neutral model API and one streaming client per provider wire protocol:
//! Anthropic Messages (`anthropic.rs`), OpenAI Chat Completions, which also serves any
//! `openai_compatible` server such as vLLM, llama.cpp or Ollama (`openai.rs`), and Google
//! Gemini (`gemini.rs`). Retries, timeouts and SSE framing shared by all are in `transport.rs`.
//!
//! Everything above this crate speaks only the types here; switching an agent's provider is a
//! configuration change. This crate knows nothing of agents, the store or HTTP servers.
//!
//! Cancellation: drop the future or the stream. That drops the HTTP request (the connection is
//! closed at once), so nothing keeps generating or billing.

pub mod anthropic;
pub mod gemini;
pub mod openai;
mod transport;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde_json::Value;

pub use transport::RetryPolicy;

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Anthropic,
    OpenAi,
    Google,
    /// Any server speaking OpenAI Chat Completions (vLLM, llama.cpp, Ollama, …).
    OpenAiCompatible,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Google => "google",
            ProviderKind::OpenAiCompatible => "openai_compatible",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "anthropic" => ProviderKind::Anthropic,
            "openai" => ProviderKind::OpenAi,
            "google" => ProviderKind::Google,
            "openai_compatible" => ProviderKind::OpenAiCompatible,
            _ => return None,
        })
    }

    /// The public API base URL used when a provider is configured without one.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Google => Some("https://generativelanguage.googleapis.com/v1beta"),
            ProviderKind::OpenAiCompatible => None,
        }
    }
}

/// An API key. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the one place it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Time limits of one model call.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Establishing the TCP/TLS connection.
    pub connect: Duration,
    /// From sending the request to receiving the response headers.
    pub response: Duration,
    /// Longest silence allowed between two chunks of a streamed body.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), response: Duration::from_secs(120), idle: Duration::from_secs(90) }
    }
}

/// How to reach one provider.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub kind: ProviderKind,
    /// Base URL without a trailing slash, e.g. `https://api.anthropic.com` or `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// The model asked for a tool (assistant messages).
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
    /// A tool's answer (user messages). `name` is the tool's name (Gemini needs it).
    ToolResult {
        call_id: String,
        name: String,
        content: String,
        is_error: bool,
    },
}

/// A conversation message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Self { role: Role::User, parts: vec![Part::Text(text.into())] }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
}

/// One model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_output_tokens: u32,
    pub temperature: Option<f64>,
}

/// Token counts of one model call so far (running totals, not increments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tool results before going on.
    ToolUse,
    /// It hit `max_output_tokens`.
    MaxTokens,
    /// Anything else the provider reported (stop sequence, content filter, …), verbatim.
    Other(String),
}

/// What a streamed model call yields, in order: any number of `TextDelta`, `ToolCall` and
/// `Usage`, then exactly one `Finish` as the last item (unless an error ends the stream).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Incremental output text.
    TextDelta(String),
    /// A complete tool call. `arguments` is the parsed JSON; if the model produced invalid
    /// JSON it is a `Value::String` holding the raw text, for the caller to refuse.
    ToolCall { id: String, name: String, arguments: Value },
    /// Running token totals for this call.
    Usage(Usage),
    /// The call ended normally.
    Finish(StopReason),
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status (after any retries).
    #[error("the provider answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// No answer within a time limit.
    #[error("the provider did not answer in time: {0}")]
    Timeout(String),
    /// The provider could not be reached.
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    /// The provider sent something that does not follow its own protocol.
    #[error("the provider sent an invalid response: {0}")]
    Protocol(String),
    /// The connection broke or the stream ended before the call finished.
    #[error("the provider's stream ended early: {0}")]
    Interrupted(String),
    /// The request cannot be expressed for this provider (a bug or a bad configuration).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl LlmError {
    /// The same error with its text passed through `f` (callers redact secrets with it).
    pub fn map_text(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            LlmError::Http { status, message } => LlmError::Http { status, message: f(message) },
            LlmError::Timeout(m) => LlmError::Timeout(f(m)),
            LlmError::Connect(m) => LlmError::Connect(f(m)),
            LlmError::Protocol(m) => LlmError::Protocol(f(m)),
            LlmError::Interrupted(m) => LlmError::Interrupted(f(m)),
            LlmError::InvalidRequest(m) => LlmError::InvalidRequest(f(m)),
        }
    }

    /// A short machine-readable category, used as `agent_error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Http { status: 401 | 403, .. } => "provider_auth",
            LlmError::Http { status: 429, .. } => "provider_rate_limited",
            LlmError::Http { .. } => "provider_error",
            LlmError::Timeout(_) => "provider_timeout",
            LlmError::Connect(_) => "provider_unreachable",
            LlmError::Protocol(_) => "provider_protocol",
            LlmError::Interrupted(_) => "provider_interrupted",
            LlmError::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// The stream of one model call.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// A model provider's client.
#[async_trait::async_trait]
pub trait ModelClient: Send + Sync + fmt::Debug {
    /// Sends `request` and returns its event stream once the provider has accepted it.
    /// Failures before that (after retries) are returned here; later ones end the stream.
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, LlmError>;
}

/// The client for `config.kind`, sharing `http` (its connection pool).
pub fn client(config: ClientConfig, http: reqwest::Client) -> Arc<dyn ModelClient> {
    match config.kind {
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(config, http)),
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => Arc::new(openai::OpenAi::new(config, http)),
        ProviderKind::Google => Arc::new(gemini::Gemini::new(config, http)),
    }
}

/// An HTTP client suitable for model calls (connect timeout from `timeouts`; no overall
/// timeout, since streams are long; idle limits are enforced per chunk).
pub fn http_client(timeouts: &Timeouts) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .expect("a reqwest client with rustls builds")
}
