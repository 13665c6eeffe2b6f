//! How a run ends, built in one place: the outcome stored on the run, its one terminal event
//! (`agent_finish`, `run_cancelled` or `agent_error`, each with the run's usage) and the
//! outbound notification it causes (`run.completed` / `run.failed`). The agent loop, a cancel
//! and the recovery of an orphaned run all end runs through [`Runtime::end_run`] with one of
//! these, so the three can never disagree on a payload.

use serde_json::{Value, json};
pub use steward_core::session::RunUsage;
use steward_core::session::{Run, RunEvent, RunStatus, stop_reason};
use steward_store::{Notification, RunEnd, RunOutcome, RunWrite, StoreError};

use crate::engine::Runtime;

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The run finished: `end_turn`, `max_turns`, `max_tokens` or `budget_exhausted`.
    Completed { stop_reason: String },
    /// Cancelled (by a caller, a dropped chat stream, or a stopped agent).
    Cancelled { reason: String },
    /// It could not go on; `kind` is the `agent_error.type`.
    Failed { kind: String, message: String },
    /// Its server died while it ran (found by the recovery of orphaned runs).
    Interrupted,
}

/// What a recovered run's error says.
const INTERRUPTED: &str = "the server running this run stopped before it finished; send the message again";

impl Ending {
    /// The row written on the run.
    pub fn outcome(&self, trace: Value) -> RunOutcome {
        let (status, stop, error_type, error_message) = match self {
            Ending::Completed { stop_reason } => (RunStatus::Completed, stop_reason.clone(), None, None),
            Ending::Cancelled { reason } => (RunStatus::Cancelled, stop_reason::CANCELLED.into(), None, Some(reason.clone())),
            Ending::Failed { kind, message } => (RunStatus::Failed, stop_reason::ERROR.into(), Some(kind.clone()), Some(message.clone())),
            Ending::Interrupted => {
                (RunStatus::Failed, stop_reason::INTERRUPTED.into(), Some("interrupted".into()), Some(INTERRUPTED.into()))
            }
        };
        RunOutcome { status, stop_reason: Some(stop), error_type, error_message, trace }
    }

    /// The terminal event.
    pub fn event(&self, run: &Run, usage: RunUsage) -> RunEvent {
        let run_id = run.id.clone();
        match self {
            Ending::Completed { stop_reason } => {
                RunEvent::Finish { stop_reason: stop_reason.clone(), session_id: run.session_id.clone(), run_id, usage }
            }
            Ending::Cancelled { reason } => RunEvent::Cancelled { reason: reason.clone(), run_id, usage },
            Ending::Failed { kind, message } => RunEvent::Error { message: message.clone(), kind: kind.clone(), run_id, usage },
            Ending::Interrupted => RunEvent::Error { message: INTERRUPTED.into(), kind: "interrupted".into(), run_id, usage },
        }
    }

    /// The outbound notification of a run that ended with `outcome`, if any.
    pub fn notification(run: &Run, outcome: &RunOutcome, usage: RunUsage) -> Option<Notification> {
        let event = match outcome.status {
            RunStatus::Completed => "run.completed",
            RunStatus::Failed => "run.failed",
            _ => return None,
        };
        Some(Notification {
            sandbox_id: run.sandbox_id.clone(),
            agent_id: run.agent_id.clone(),
            event: event.to_owned(),
            payload: json!({
                "run_id": run.id, "session_id": run.session_id, "agent_id": run.agent_id,
                "status": outcome.status.as_str(), "stop_reason": outcome.stop_reason, "usage": usage.to_json(),
                "error": outcome.error_type.as_ref().map(|t| json!({"type": t, "message": outcome.error_message})),
            }),
        })
    }

    /// The end of `run` as part of a write: its row, its terminal event, its notification.
    pub fn end(&self, run: &Run, trace: Value, usage: RunUsage) -> RunEnd {
        let outcome = self.outcome(trace);
        let notification = Self::notification(run, &outcome, usage);
        RunEnd { outcome, terminal: self.event(run, usage).to_stored(), notification }
    }
}

impl Runtime {
    /// Ends `run` as `ending`: the run's row, its terminal event and its notification commit
    /// in one transaction (a transactional outbox), and the session's tails are woken. Returns
    /// whether this call ended it; `false` means someone else did first and wrote its event.
    pub async fn end_run(&self, run: &Run, ending: &Ending, trace: Value, usage: RunUsage) -> Result<bool, StoreError> {
        let mut write = RunWrite::new(run.session_id.clone(), run.id.clone());
        write.end = Some(ending.end(run, trace, usage));
        Ok(self.events().append(write).await?.ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::ids::{AgentId, RunId, SandboxId, SessionId};
    use steward_core::session::event_type;

    fn run() -> Run {
        Run {
            id: RunId::generate(),
            session_id: SessionId::generate(),
            sandbox_id: SandboxId::generate(),
            agent_id: AgentId::generate(),
            status: RunStatus::Running,
            stop_reason: None,
            error_type: None,
            error_message: None,
            input: json!([]),
            input_tokens: 0,
            output_tokens: 0,
            trace: json!({}),
            created_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn every_terminal_event_carries_usage_and_notifies_as_its_status() {
        let r = run();
        let usage = RunUsage { input_tokens: 12, output_tokens: 8 };
        let endings = [
            (Ending::Completed { stop_reason: "end_turn".into() }, event_type::FINISH, Some("run.completed")),
            (Ending::Cancelled { reason: "cancelled".into() }, event_type::CANCELLED, None),
            (Ending::Failed { kind: "provider_auth".into(), message: "no".into() }, event_type::ERROR, Some("run.failed")),
            (Ending::Interrupted, event_type::ERROR, Some("run.failed")),
        ];
        for (ending, kind, notified) in endings {
            let event = ending.event(&r, usage);
            let (k, data) = (event.kind(), event.data());
            assert_eq!(k, kind, "{ending:?}");
            assert_eq!((data["usage"]["input_tokens"].as_i64(), data["run_id"].as_str()), (Some(12), Some(r.id.as_str())), "{data}");
            let n = ending.end(&r, json!({}), usage).notification;
            assert_eq!(n.as_ref().map(|n| n.event.as_str()), notified, "{ending:?}");
            if let Some(n) = n {
                assert_eq!(n.payload["usage"]["output_tokens"], 8, "{}", n.payload);
            }
        }
        let interrupted = Ending::Interrupted.outcome(json!({}));
        assert_eq!((interrupted.stop_reason.as_deref(), interrupted.error_type.as_deref()), (Some("interrupted"), Some("interrupted")));
        assert_eq!(Ending::Interrupted.event(&r, usage).data()["type"], "interrupted");
    }
}
