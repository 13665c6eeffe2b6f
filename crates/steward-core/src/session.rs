//! Sessions, runs and events (§4): statuses, stop reasons, event types, event ids.

use std::fmt;
use std::str::FromStr;

use crate::ValidationError;
use crate::ids::{self, SessionId};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            other => {
                return Err(ValidationError::new(
                    "status",
                    format!("`{}` is not a run status; use queued, running, completed, failed or cancelled", ids::shorten(other)),
                ));
            }
        })
    }
}

/// Why a run ended.
pub mod stop_reason {
    /// The model finished its answer.
    pub const END_TURN: &str = "end_turn";
    /// `max_turns` model↔tool round trips were used up.
    pub const MAX_TURNS: &str = "max_turns";
    /// The model hit `max_output_tokens`.
    pub const MAX_TOKENS: &str = "max_tokens";
    /// The agent's token balance reached zero.
    pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
    /// Someone cancelled it (or the agent was stopped, or a newer turn interrupted it).
    pub const CANCELLED: &str = "cancelled";
    /// The server died while it ran.
    pub const INTERRUPTED: &str = "interrupted";
    /// It failed (provider error, configuration error); see the run's error.
    pub const ERROR: &str = "error";
}

/// Event types (§4, §5).
pub mod event_type {
    pub const RUN_STARTED: &str = "run_started";
    pub const TEXT_DELTA: &str = "agent_text_delta";
    pub const TOOL_CALL: &str = "agent_tool_call";
    pub const TOOL_RESULT: &str = "agent_tool_result";
    pub const FINISH: &str = "agent_finish";
    pub const ERROR: &str = "agent_error";
    pub const CANCELLED: &str = "run_cancelled";
    pub const USAGE: &str = "usage";
    /// An integration connect this session started has finished (not a run's own step).
    pub const INTEGRATION_CONNECT: &str = "integration_connect";

    /// Whether an event of this type ends its run.
    pub fn is_terminal(t: &str) -> bool {
        t == FINISH || t == ERROR || t == CANCELLED
    }
}

/// Token usage of a run so far (as every terminal event and `usage` event reports it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl RunUsage {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({"input_tokens": self.input_tokens, "output_tokens": self.output_tokens})
    }
}

/// What a run appends to its session's log (§4), typed. The stored and streamed form is
/// [`RunEvent::kind`] + [`RunEvent::data`]; the payload keys are the contract's.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run was claimed and began.
    Started { run_id: ids::RunId },
    /// Assistant text as it streams.
    TextDelta { text: String },
    /// The model called a tool (arguments already redacted).
    ToolCall { call_id: String, name: String, arguments: serde_json::Value },
    /// A tool's answer: its output, or the error the model is told.
    ToolResult { call_id: String, name: String, result: Result<String, String> },
    /// Usage so far (running totals of the run).
    Usage(RunUsage),
    /// Terminal: the run finished (`end_turn`, `max_turns`, `max_tokens`, `budget_exhausted`).
    Finish { stop_reason: String, session_id: SessionId, run_id: ids::RunId, usage: RunUsage },
    /// Terminal: the run failed; `kind` is the error's `type`.
    Error { message: String, kind: String, run_id: ids::RunId, usage: RunUsage },
    /// Terminal: the run was cancelled.
    Cancelled { reason: String, run_id: ids::RunId, usage: RunUsage },
    /// A connect this session started finished; the payload is its outcome (`app_id`,
    /// `status`, and the account or the error).
    IntegrationConnect(serde_json::Value),
}

impl RunEvent {
    /// The event's type on the wire (one of [`event_type`]).
    pub fn kind(&self) -> &'static str {
        match self {
            RunEvent::Started { .. } => event_type::RUN_STARTED,
            RunEvent::TextDelta { .. } => event_type::TEXT_DELTA,
            RunEvent::ToolCall { .. } => event_type::TOOL_CALL,
            RunEvent::ToolResult { .. } => event_type::TOOL_RESULT,
            RunEvent::Usage(_) => event_type::USAGE,
            RunEvent::Finish { .. } => event_type::FINISH,
            RunEvent::Error { .. } => event_type::ERROR,
            RunEvent::Cancelled { .. } => event_type::CANCELLED,
            RunEvent::IntegrationConnect(_) => event_type::INTEGRATION_CONNECT,
        }
    }

    /// The event's payload on the wire.
    pub fn data(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            RunEvent::Started { run_id } => json!({"run_id": run_id}),
            RunEvent::TextDelta { text } => json!({"text": text}),
            RunEvent::ToolCall { call_id, name, arguments } => json!({"call_id": call_id, "name": name, "arguments": arguments}),
            RunEvent::ToolResult { call_id, name, result } => {
                let (result, error) = match result {
                    Ok(out) => (json!(out), serde_json::Value::Null),
                    Err(e) => (serde_json::Value::Null, json!(e)),
                };
                json!({"call_id": call_id, "name": name, "result": result, "error": error})
            }
            RunEvent::Usage(u) => u.to_json(),
            RunEvent::Finish { stop_reason, session_id, run_id, usage } => {
                json!({"stop_reason": stop_reason, "session_id": session_id, "usage": usage.to_json(), "run_id": run_id})
            }
            RunEvent::Error { message, kind, run_id, usage } => {
                json!({"message": message, "type": kind, "run_id": run_id, "usage": usage.to_json()})
            }
            RunEvent::Cancelled { reason, run_id, usage } => json!({"run_id": run_id, "reason": reason, "usage": usage.to_json()}),
            RunEvent::IntegrationConnect(data) => data.clone(),
        }
    }

    /// Whether this event ends its run.
    pub fn is_terminal(&self) -> bool {
        event_type::is_terminal(self.kind())
    }

    /// `(type, payload)`, as the store keeps it.
    pub fn to_stored(&self) -> (String, serde_json::Value) {
        (self.kind().to_owned(), self.data())
    }
}

/// An event's id: `evt_` + the session id's body + `_` + a zero-padded sequence number, so ids
/// are globally unique and sort in emission order within a session.
pub fn event_id(session: &SessionId, seq: i64) -> String {
    format!("evt_{}_{seq:012}", &session.as_str()[SessionId::PREFIX.len()..])
}

/// The sequence number of an event id, checking it belongs to `session`.
pub fn parse_event_id(raw: &str, session: &SessionId, param: &str) -> Result<i64, ValidationError> {
    let bad = || {
        ValidationError::new(param, format!("`{}` is not an event id of this session; pass an `id` from its event log", ids::shorten(raw)))
    };
    let rest = raw.strip_prefix("evt_").ok_or_else(bad)?;
    let (body, seq) = rest.split_once('_').ok_or_else(bad)?;
    if body != &session.as_str()[SessionId::PREFIX.len()..] {
        return Err(bad());
    }
    if seq.len() != 12 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    seq.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_sort_and_belong_to_their_session() {
        let s = SessionId::generate();
        let a = event_id(&s, 9);
        let b = event_id(&s, 10);
        assert!(a < b);
        assert_eq!(parse_event_id(&b, &s, "after").unwrap(), 10);
        let other = SessionId::generate();
        assert!(parse_event_id(&event_id(&other, 3), &s, "after").is_err());
        assert!(parse_event_id("evt_x", &s, "after").is_err());
    }
}

/// A session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub sandbox_id: crate::ids::SandboxId,
    pub agent_id: crate::ids::AgentId,
    /// The agent version this session is pinned to.
    pub agent_version: i64,
    /// `idle` or `running` (a run is queued or running).
    pub status: String,
    /// For delegate keys: the end user this session belongs to.
    pub end_user: Option<String>,
    /// Who the agent talks to (a channel user, an end user, a trigger), for conversations.
    pub counterparty: Option<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

/// A run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: crate::ids::RunId,
    pub session_id: SessionId,
    pub sandbox_id: crate::ids::SandboxId,
    pub agent_id: crate::ids::AgentId,
    pub status: RunStatus,
    pub stop_reason: Option<String>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// The user turn that started it: a JSON array of `{role, content}`.
    pub input: serde_json::Value,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Model calls and tool calls (JSON).
    pub trace: serde_json::Value,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl Run {
    /// From start to end, once it has ended.
    pub fn duration_ms(&self) -> Option<i64> {
        match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => Some(f - s),
            _ => None,
        }
    }
}

/// A persisted event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub session_id: SessionId,
    pub seq: i64,
    pub run_id: crate::ids::RunId,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at: i64,
}

impl Event {
    pub fn id(&self) -> String {
        event_id(&self.session_id, self.seq)
    }
}

/// A message of the conversation as the model sees it (provider-neutral JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationMessage {
    pub seq: i64,
    pub run_id: crate::ids::RunId,
    pub role: String,
    pub content: serde_json::Value,
    pub created_at: i64,
}
