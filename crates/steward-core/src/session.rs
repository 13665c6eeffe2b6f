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

    /// Whether an event of this type ends its run.
    pub fn is_terminal(t: &str) -> bool {
        t == FINISH || t == ERROR || t == CANCELLED
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
