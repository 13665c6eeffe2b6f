//! The event log (what clients see, persisted before it is sent), the conversation (what the
//! model sees), and usage accounting.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::agent::Agent;
use steward_core::ids::{AgentId, RunId, SessionId};
use steward_core::session::{ConversationMessage, Event};

use crate::{Store, StoreError};

fn event_from(row: &AnyRow) -> Result<Event, StoreError> {
    let data: String = row.try_get("data")?;
    Ok(Event {
        session_id: SessionId::from_trusted(row.try_get("session_id")?),
        seq: row.try_get("seq")?,
        run_id: RunId::from_trusted(row.try_get("run_id")?),
        kind: row.try_get("type")?,
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Result of charging usage to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// The balance after the charge; `None` when the agent has no budget.
    pub balance: Option<i64>,
}

impl Store {
    /// Appends events to a session's log, numbered after the last one; group-committed with
    /// other runs' writes.
    pub async fn append_events(&self, session: &SessionId, run: &RunId, events: &[(&str, Value)]) -> Result<Vec<Event>, StoreError> {
        let mut write = crate::RunWrite::new(session.clone(), run.clone());
        write.events = events.iter().map(|(k, d)| ((*k).to_owned(), d.clone())).collect();
        Ok(self.write_run(write).await?.events)
    }

    /// Events of a session after `after_seq`, in order, at most `limit`.
    pub async fn events_after(&self, session: &SessionId, after_seq: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, seq, run_id, type, data, created_at FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3",
        )
        .bind(session.as_str())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from).collect()
    }

    /// The highest event number of a session (0 when it has none).
    pub async fn last_event_seq(&self, session: &SessionId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT last_seq FROM sessions WHERE id = $1").bind(session.as_str()).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("last_seq")).transpose()?.unwrap_or(0))
    }

    /// Appends a message to the conversation; group-committed with other runs' writes.
    pub async fn append_message(&self, session: &SessionId, run: &RunId, role: &str, content: &Value) -> Result<(), StoreError> {
        let mut write = crate::RunWrite::new(session.clone(), run.clone());
        write.messages.push((role.to_owned(), content.clone()));
        self.write_run(write).await?;
        Ok(())
    }

    /// The whole conversation of a session, in order.
    pub async fn conversation(&self, session: &SessionId) -> Result<Vec<ConversationMessage>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, run_id, role, content, created_at FROM session_messages WHERE session_id = $1 ORDER BY seq ASC")
                .bind(session.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let content: String = r.try_get("content")?;
                Ok(ConversationMessage {
                    seq: r.try_get("seq")?,
                    run_id: RunId::from_trusted(r.try_get("run_id")?),
                    role: r.try_get("role")?,
                    content: serde_json::from_str(&content).map_err(|e| StoreError::Corrupt(format!("message: {e}")))?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Charges token usage to the run, its session and its agent (and the agent's balance, if
    /// it has one), atomically; group-committed with other runs' writes.
    pub async fn charge_usage(
        &self,
        agent: &AgentId,
        session: &SessionId,
        run: &RunId,
        input: i64,
        output: i64,
    ) -> Result<Charge, StoreError> {
        let mut write = crate::RunWrite::new(session.clone(), run.clone());
        write.charge = Some(crate::UsageCharge { agent: agent.clone(), input_tokens: input, output_tokens: output });
        Ok(Charge { balance: self.write_run(write).await?.balance })
    }

    /// Adds to (`add`) or sets the agent's token balance; `None` with `set` removes the budget.
    pub async fn set_token_balance(&self, agent: &AgentId, amount: Option<i64>, add: bool) -> Result<Agent, StoreError> {
        let now = self.now();
        let sql = if add {
            "UPDATE agents SET token_balance = COALESCE(token_balance, 0) + $1, updated_at = $2 WHERE id = $3"
        } else {
            "UPDATE agents SET token_balance = $1, updated_at = $2 WHERE id = $3"
        };
        self.write(sqlx::query(sql).bind(amount).bind(now).bind(agent.as_str())).await?;
        self.agent(agent).await?.ok_or(StoreError::NotFound("agent"))
    }

    /// Usage and activity of an agent, for its summary.
    pub async fn agent_stats(&self, agent: &AgentId) -> Result<AgentStats, StoreError> {
        let totals = sqlx::query("SELECT input_tokens_total, output_tokens_total FROM agents WHERE id = $1")
            .bind(agent.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("agent"))?;
        let counts = sqlx::query("SELECT status, COUNT(*) AS n FROM runs WHERE agent_id = $1 GROUP BY status")
            .bind(agent.as_str())
            .fetch_all(&self.pool)
            .await?;
        let sessions = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE agent_id = $1 AND deleted_at IS NULL")
            .bind(agent.as_str())
            .fetch_one(&self.pool)
            .await?;
        let last = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM runs WHERE agent_id = $1 ORDER BY id DESC LIMIT 1",
            "id, session_id, sandbox_id, agent_id, status, stop_reason, error_type, error_message, input, input_tokens, output_tokens, trace, created_at, started_at, finished_at"
        )))
        .bind(agent.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let mut runs_by_status = std::collections::BTreeMap::new();
        for r in &counts {
            runs_by_status.insert(r.try_get::<String, _>("status")?, r.try_get::<i64, _>("n")?);
        }
        Ok(AgentStats {
            input_tokens: totals.try_get("input_tokens_total")?,
            output_tokens: totals.try_get("output_tokens_total")?,
            sessions: sessions.try_get("n")?,
            runs_by_status,
            last_run: last.as_ref().map(crate::sessions::run_from).transpose()?,
        })
    }
}

/// What `agent_stats` reports.
#[derive(Debug, Clone)]
pub struct AgentStats {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub sessions: i64,
    pub runs_by_status: std::collections::BTreeMap<String, i64>,
    pub last_run: Option<steward_core::session::Run>,
}
