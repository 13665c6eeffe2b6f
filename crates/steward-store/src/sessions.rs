//! Sessions and runs: creating, queueing, claiming, finishing, listing, and recovering runs
//! whose server died.
//!
//! Invariant: a session has at most one `running` run; further runs wait as `queued`. A run is
//! claimed by one process (`owner`) which heartbeats it; a run whose owner stopped heartbeating
//! is recovered by any process.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AccountId, AgentId, RunId, SandboxId, SessionId};
use steward_core::session::{Event, Run, RunStatus, Session};

use crate::{Listing, PageRequest, Store, StoreError};

/// What a new session needs.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub sandbox_id: SandboxId,
    pub agent_id: AgentId,
    pub agent_version: i64,
    pub end_user: Option<String>,
    pub counterparty: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Filters for listing sessions.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub agent_id: Option<AgentId>,
    pub status: Option<String>,
    /// Only sessions of this end user (delegate keys).
    pub end_user: Option<String>,
    /// Leave out the sessions of other accounts' Concierges (§5: a Concierge conversation is
    /// its account's alone).
    pub viewer: Option<AccountId>,
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub agent_id: Option<AgentId>,
    pub session_id: Option<SessionId>,
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time (ms).
    pub since: Option<i64>,
    /// Leave out the runs of other accounts' Concierges.
    pub viewer: Option<AccountId>,
}

/// `agent_id NOT IN (…)` for a sandbox-wide list: other accounts' Concierges than `$?`.
fn others_concierges_q() -> String {
    "agent_id NOT IN (SELECT id FROM agents WHERE sandbox_id = $1 AND concierge_of IS NOT NULL AND concierge_of <> $?)".to_owned()
}

const SESSION_COLS: &str = "id, sandbox_id, agent_id, agent_version, status, end_user, counterparty, metadata, input_tokens, output_tokens, created_at, updated_at, deleted_at";
const RUN_COLS: &str = "id, session_id, sandbox_id, agent_id, status, stop_reason, error_type, error_message, input, input_tokens, output_tokens, trace, created_at, started_at, finished_at";

fn json(raw: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn session_from(row: &AnyRow) -> Result<Session, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    Ok(Session {
        id: SessionId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        agent_version: row.try_get("agent_version")?,
        status: row.try_get("status")?,
        end_user: row.try_get("end_user")?,
        counterparty: row.try_get("counterparty")?,
        metadata: serde_json::from_str(&metadata).map_err(|e| StoreError::Corrupt(format!("session metadata: {e}")))?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

pub(crate) fn run_from(row: &AnyRow) -> Result<Run, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Run {
        id: RunId::from_trusted(row.try_get("id")?),
        session_id: SessionId::from_trusted(row.try_get("session_id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        status: status.parse().map_err(|_| StoreError::Corrupt(format!("unknown run status `{status}`")))?,
        stop_reason: row.try_get("stop_reason")?,
        error_type: row.try_get("error_type")?,
        error_message: row.try_get("error_message")?,
        input: json(&row.try_get::<String, _>("input")?, "run input")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        trace: json(&row.try_get::<String, _>("trace")?, "run trace")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Inserts a run row: `queued`, or with `start_for` born `running`, owned by that owner (the
/// session's status is the caller's business).
pub(crate) async fn insert_run_row(
    tx: &mut crate::WriteTx,
    session: &Session,
    id: RunId,
    input: &Value,
    start_for: Option<&str>,
    now: i64,
) -> Result<Run, StoreError> {
    let started = start_for.is_some();
    let run = Run {
        id,
        session_id: session.id.clone(),
        sandbox_id: session.sandbox_id.clone(),
        agent_id: session.agent_id.clone(),
        status: if started { RunStatus::Running } else { RunStatus::Queued },
        stop_reason: None,
        error_type: None,
        error_message: None,
        input: input.clone(),
        input_tokens: 0,
        output_tokens: 0,
        trace: serde_json::json!({}),
        created_at: now,
        started_at: started.then_some(now),
        finished_at: None,
    };
    sqlx::query(
        "INSERT INTO runs (id, session_id, sandbox_id, agent_id, status, input, trace, created_at, owner, heartbeat_at, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, '{}', $7, $8, $9, $9)",
    )
    .bind(run.id.as_str())
    .bind(session.id.as_str())
    .bind(session.sandbox_id.as_str())
    .bind(session.agent_id.as_str())
    .bind(run.status.as_str())
    .bind(input.to_string())
    .bind(now)
    .bind(start_for)
    .bind(run.started_at)
    .execute(&mut **tx)
    .await?;
    Ok(run)
}

impl Store {
    /// Creates a session and, with `input`, its first (queued) run.
    pub async fn create_session(&self, new: NewSession, input: Option<&Value>) -> Result<(Session, Option<Run>), StoreError> {
        self.create_session_claimed(new, input, None).await
    }

    /// [`Self::create_session`] for a request holding an idempotency `claim`: the record names
    /// the session and its run (`ses_…/run_…`) in the same transaction, so a retry that takes
    /// the record over after this process died answers with them instead of creating another.
    /// With `input` it is an admission of the run writer ([`Store::admit_run`]).
    pub async fn create_session_claimed(
        &self,
        new: NewSession,
        input: Option<&Value>,
        claim: Option<&crate::IdempotencyClaim>,
    ) -> Result<(Session, Option<Run>), StoreError> {
        if let Some(input) = input {
            let target = crate::RunTarget::New { session: new, start: None };
            let (session, run) = self.admit_run(crate::NewRun { target, input: input.clone(), claim: claim.cloned() }).await?;
            return Ok((session, Some(run)));
        }
        let mut tx = self.write_tx().await?;
        let (session, run) = Self::create_session_in(&mut tx, new, None, self.now()).await?;
        if let Some(claim) = claim {
            Self::idempotency_created_in(&mut tx, claim, &format!("{}/", session.id)).await?;
        }
        tx.commit().await?;
        Ok((session, run))
    }

    /// Inserts a session (and, with `input`, its first run) inside `tx`.
    pub(crate) async fn create_session_in(
        tx: &mut crate::WriteTx,
        new: NewSession,
        input: Option<&Value>,
        now: i64,
    ) -> Result<(Session, Option<Run>), StoreError> {
        Self::create_session_with_ids(tx, new, SessionId::generate(), RunId::generate(), input, None, now).await
    }

    /// [`Self::create_session_in`] with ids chosen by the caller (who recorded them first, as a
    /// webhook delivery does). Two statements: the session is born `running` when it has a run;
    /// with `start_for`, that run is born `running` too, owned by that owner.
    pub(crate) async fn create_session_with_ids(
        tx: &mut crate::WriteTx,
        new: NewSession,
        session_id: SessionId,
        run_id: RunId,
        input: Option<&Value>,
        start_for: Option<&str>,
        now: i64,
    ) -> Result<(Session, Option<Run>), StoreError> {
        let status = if input.is_some() { "running" } else { "idle" };
        let session = Session {
            id: session_id,
            sandbox_id: new.sandbox_id,
            agent_id: new.agent_id,
            agent_version: new.agent_version,
            status: status.into(),
            end_user: new.end_user,
            counterparty: new.counterparty,
            metadata: new.metadata,
            input_tokens: 0,
            output_tokens: 0,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        sqlx::query(
            "INSERT INTO sessions (id, sandbox_id, agent_id, agent_version, status, end_user, counterparty, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(session.id.as_str())
        .bind(session.sandbox_id.as_str())
        .bind(session.agent_id.as_str())
        .bind(session.agent_version)
        .bind(status)
        .bind(session.end_user.clone())
        .bind(session.counterparty.clone())
        .bind(serde_json::to_string(&session.metadata).expect("a string map serialises"))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let run = match input {
            Some(input) => Some(insert_run_row(tx, &session, run_id, input, start_for, now).await?),
            None => None,
        };
        Ok((session, run))
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from).transpose()
    }

    /// Live (not deleted) sessions of a sandbox, newest first.
    pub async fn sessions(&self, sandbox: &SandboxId, filter: &SessionFilter, page: &PageRequest) -> Result<Listing<Session>, StoreError> {
        let mut sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE sandbox_id = $1 AND deleted_at IS NULL");
        let mut binds: Vec<String> = vec![sandbox.to_string()];
        let mut add = |clause: &str, value: String, sql: &mut String| {
            binds.push(value);
            if clause.contains("$?") {
                sql.push_str(&format!(" AND {}", clause.replace("$?", &format!("${}", binds.len()))));
            } else {
                sql.push_str(&format!(" AND {clause} ${}", binds.len()));
            }
        };
        if let Some(a) = &filter.agent_id {
            add("agent_id =", a.to_string(), &mut sql);
        }
        if let Some(s) = &filter.status {
            add("status =", s.clone(), &mut sql);
        }
        if let Some(u) = &filter.end_user {
            add("end_user =", u.clone(), &mut sql);
        }
        if let Some(v) = &filter.viewer {
            add(&others_concierges_q(), v.to_string(), &mut sql);
        }
        if let Some(b) = &page.before {
            add("id <", b.clone(), &mut sql);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", i64::from(page.limit) + 1));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(session_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |s| s.id.to_string()))
    }

    /// The newest live session of `agent` with `counterparty`.
    pub async fn latest_session_with(&self, agent: &AgentId, counterparty: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE agent_id = $1 AND counterparty = $2 AND deleted_at IS NULL ORDER BY id DESC LIMIT 1"
        )))
        .bind(agent.as_str())
        .bind(counterparty)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from).transpose()
    }

    /// An agent's live sessions grouped by counterparty, most recently active first.
    pub async fn conversations(&self, agent: &AgentId, end_user: Option<&str>, limit: i64) -> Result<Vec<ConversationSummary>, StoreError> {
        let (clause, bind_user) = match end_user {
            Some(_) => ("AND end_user = $3", true),
            None => ("", false),
        };
        let sql = format!(
            "SELECT COALESCE(counterparty, '') AS counterparty, COUNT(*) AS sessions, MAX(id) AS last_session_id, MAX(updated_at) AS last_activity_at
             FROM sessions WHERE agent_id = $1 AND deleted_at IS NULL {clause}
             GROUP BY COALESCE(counterparty, '') ORDER BY MAX(updated_at) DESC LIMIT $2"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(agent.as_str()).bind(limit);
        if bind_user {
            q = q.bind(end_user.unwrap_or_default());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let cp: String = r.try_get("counterparty")?;
                Ok(ConversationSummary {
                    counterparty: (!cp.is_empty()).then_some(cp),
                    sessions: r.try_get("sessions")?,
                    last_session_id: SessionId::from_trusted(r.try_get("last_session_id")?),
                    last_activity_at: r.try_get("last_activity_at")?,
                })
            })
            .collect()
    }

    /// Soft-deletes a session (its runs and events stay for the record).
    pub async fn delete_session(&self, id: &SessionId) -> Result<Session, StoreError> {
        let now = self.now();
        self.write(
            sqlx::query("UPDATE sessions SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(now)
                .bind(id.as_str()),
        )
        .await?;
        self.session(id).await?.ok_or(StoreError::NotFound("session"))
    }

    /// The queued or running runs of a session, oldest first.
    pub async fn active_runs(&self, session: &SessionId) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLS} FROM runs WHERE session_id = $1 AND status IN ('queued', 'running') ORDER BY id ASC"
        )))
        .bind(session.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    /// The queued or running runs of an agent.
    pub async fn active_runs_of_agent(&self, agent: &AgentId) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLS} FROM runs WHERE agent_id = $1 AND status IN ('queued', 'running') ORDER BY id ASC"
        )))
        .bind(agent.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    /// Adds a queued run to a session. Unless `when_busy_too`, refuses (`Busy`) when the
    /// session already has a queued or running run; the check and the insert are one
    /// transaction (an admission of the run writer, [`Store::admit_run`]), so two concurrent
    /// turns cannot both pass.
    pub async fn create_run(&self, session: &Session, input: &Value, when_busy_too: bool) -> Result<Run, StoreError> {
        let target = crate::RunTarget::Turn { session: session.clone(), when_busy_too };
        Ok(self.admit_run(crate::NewRun { target, input: input.clone(), claim: None }).await?.1)
    }

    /// Claims the oldest queued run of a session for `owner`, if no run of the session is
    /// running. Returns it (now `running`).
    pub async fn claim_next_run(&self, session: &SessionId, owner: &str) -> Result<Option<Run>, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        if self.backend == crate::Backend::Postgres {
            // Serialises with the run writer's admissions to this session and other replicas' claims.
            sqlx::query("SELECT id FROM sessions WHERE id = $1 FOR UPDATE").bind(session.as_str()).fetch_optional(&mut *tx).await?;
        }
        let running = sqlx::query("SELECT id FROM runs WHERE session_id = $1 AND status = 'running' LIMIT 1")
            .bind(session.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if running.is_some() {
            return Ok(None);
        }
        let next = sqlx::query("SELECT id FROM runs WHERE session_id = $1 AND status = 'queued' ORDER BY id ASC LIMIT 1")
            .bind(session.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(next) = next else { return Ok(None) };
        let id: String = next.try_get("id")?;
        let n = sqlx::query(
            "UPDATE runs SET status = 'running', owner = $1, heartbeat_at = $2, started_at = $2 WHERE id = $3 AND status = 'queued'",
        )
        .bind(owner)
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        self.run(&RunId::from_trusted(id)).await
    }

    /// The newest run of a session (session-level notices are appended on it).
    pub async fn latest_run_of(&self, session: &SessionId) -> Result<Option<RunId>, StoreError> {
        let row = sqlx::query("SELECT id FROM runs WHERE session_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(session.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?.map(RunId::from_trusted))
    }

    pub async fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {RUN_COLS} FROM runs WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from).transpose()
    }

    /// Runs of a sandbox, newest first.
    pub async fn runs(&self, sandbox: &SandboxId, filter: &RunFilter, page: &PageRequest) -> Result<Listing<Run>, StoreError> {
        let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE sandbox_id = $1");
        let mut n = 1;
        // `c` ends where its placeholder goes, or names it `$?`.
        let mut clause = |c: &str, sql: &mut String| {
            n += 1;
            if c.contains("$?") {
                sql.push_str(&format!(" AND {}", c.replace("$?", &format!("${n}"))));
            } else {
                sql.push_str(&format!(" AND {c} ${n}"));
            }
        };
        if filter.agent_id.is_some() {
            clause("agent_id =", &mut sql);
        }
        if filter.session_id.is_some() {
            clause("session_id =", &mut sql);
        }
        if filter.status.is_some() {
            clause("status =", &mut sql);
        }
        if filter.since.is_some() {
            clause("created_at >=", &mut sql);
        }
        if filter.viewer.is_some() {
            clause(&others_concierges_q(), &mut sql);
        }
        if page.before.is_some() {
            clause("id <", &mut sql);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", i64::from(page.limit) + 1));
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str());
        if let Some(a) = &filter.agent_id {
            q = q.bind(a.as_str());
        }
        if let Some(s) = &filter.session_id {
            q = q.bind(s.as_str());
        }
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(t) = filter.since {
            q = q.bind(t);
        }
        if let Some(v) = &filter.viewer {
            q = q.bind(v.as_str());
        }
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(run_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |r| r.id.to_string()))
    }

    /// Ends a run, appends its terminal event and enqueues its notification, in one
    /// transaction (a transactional outbox: a crash can lose neither the event nor the
    /// notification of a run that ended), group-committed with other runs' writes. `None` when
    /// the run had already ended (someone else ended it first and emits its terminal event);
    /// else the stored event, to announce.
    pub async fn end_run(
        &self,
        run: &Run,
        outcome: &RunOutcome,
        terminal: (&str, Value),
        notification: Option<&crate::Notification>,
    ) -> Result<Option<Event>, StoreError> {
        let mut write = crate::RunWrite::new(run.session_id.clone(), run.id.clone());
        write.end = Some(crate::RunEnd {
            outcome: outcome.clone(),
            terminal: (terminal.0.to_owned(), terminal.1),
            notification: notification.cloned(),
        });
        let written = self.write_run(write).await?;
        Ok(if written.ended { written.events.into_iter().last() } else { None })
    }

    /// Sets a run's outcome if it is still active, adding `usage` (input, output tokens) to it
    /// (the session's status is the caller's).
    pub(crate) async fn finish_row_in(
        tx: &mut crate::WriteTx,
        id: &RunId,
        outcome: &RunOutcome,
        usage: (i64, i64),
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE runs SET status = $1, stop_reason = $2, error_type = $3, error_message = $4, trace = $5, finished_at = $6,
                    started_at = COALESCE(started_at, $6), owner = NULL, input_tokens = input_tokens + $7, output_tokens = output_tokens + $8
             WHERE id = $9 AND status IN ('queued', 'running')",
        )
        .bind(outcome.status.as_str())
        .bind(outcome.stop_reason.clone())
        .bind(outcome.error_type.clone())
        .bind(outcome.error_message.clone())
        .bind(outcome.trace.to_string())
        .bind(now)
        .bind(usage.0)
        .bind(usage.1)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Refreshes the heartbeat of every run `owner` is running.
    ///
    /// On PostgreSQL the rows are locked in id order, skipping those a run write holds right now
    /// (they beat at the next tick): the run writer locks runs in id order too, and two writers
    /// locking the same rows in different orders deadlock (which PostgreSQL resolves only after
    /// `deadlock_timeout`, a second, by failing one of them — the bench showed it in the p99).
    pub async fn heartbeat_runs(&self, owner: &str) -> Result<(), StoreError> {
        let sql = match self.backend {
            crate::Backend::Sqlite => "UPDATE runs SET heartbeat_at = $1 WHERE owner = $2 AND status = 'running'",
            crate::Backend::Postgres => {
                "UPDATE runs SET heartbeat_at = $1 WHERE id IN
                     (SELECT id FROM runs WHERE owner = $2 AND status = 'running' ORDER BY id FOR UPDATE SKIP LOCKED)"
            }
        };
        self.write(sqlx::query(sql).bind(self.now()).bind(owner)).await?;
        Ok(())
    }

    /// Running runs whose process is gone: owned by `dead_owner` (this node's previous life), or
    /// whose heartbeat is older than `stale_before` ms.
    pub async fn orphaned_runs(&self, dead_owner: &str, stale_before: i64) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLS} FROM runs WHERE status = 'running' AND (owner = $1 OR owner IS NULL OR heartbeat_at < $2) ORDER BY id ASC"
        )))
        .bind(dead_owner)
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    /// Sessions that have queued runs but none running (work to pick up).
    pub async fn sessions_with_queued_runs(&self, limit: i64) -> Result<Vec<SessionId>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT session_id FROM runs q WHERE q.status = 'queued'
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.session_id = q.session_id AND r.status = 'running') LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(SessionId::from_trusted(r.try_get("session_id")?))).collect()
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub stop_reason: Option<String>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub trace: Value,
}

/// One counterparty's conversations with an agent.
#[derive(Debug, Clone)]
pub struct ConversationSummary {
    /// `None` for sessions without a counterparty.
    pub counterparty: Option<String>,
    pub sessions: i64,
    pub last_session_id: SessionId,
    pub last_activity_at: i64,
}
