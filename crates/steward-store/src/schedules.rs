//! Cron schedules (§11) and their executions.
//!
//! **Exactly once.** A due time is fired by the replica whose transaction moves `next_fire_at`
//! from that due time to the next one (compare-and-set on the old value); the same transaction
//! records the execution (primary key `(schedule_id, scheduled_at)`) and creates the session and
//! its queued run. A loser's compare-and-set matches no row and it does nothing.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AgentId, SandboxId, ScheduleId, SessionId};
use steward_core::schedule::ScheduleConfig;

use crate::{NewSession, Store, StoreError};

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub id: ScheduleId,
    pub sandbox_id: SandboxId,
    pub agent_id: AgentId,
    pub config: ScheduleConfig,
    /// `active` or `paused`.
    pub state: String,
    pub resume_at: Option<i64>,
    /// The next due time (UTC ms); `None` when the expression never fires again.
    pub next_fire_at: Option<i64>,
    pub last_fired_at: Option<i64>,
    pub fire_count: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Schedule {
    /// Paused at `now_ms` (a pause with `resume_at` ends by itself).
    pub fn paused_at(&self, now_ms: i64) -> bool {
        self.state == "paused" && self.resume_at.is_none_or(|t| now_ms < t)
    }
}

/// One due time of a schedule and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub schedule_id: ScheduleId,
    pub scheduled_at: i64,
    pub fired_at: i64,
    /// `started`, `skipped` (missed while down, policy `skip`), `refused` (the agent did not
    /// admit the work: paused, out of tokens, no provider…; `error` says why) or `error` (the
    /// agent is gone, the template failed).
    pub outcome: String,
    pub session_id: Option<String>,
    pub run_id: Option<String>,
    pub error: Option<String>,
}

/// What to do with one due time, decided by the caller (the scheduler).
#[derive(Debug)]
pub enum Fire {
    /// Start a run with this session and input.
    Start { new: NewSession, input: serde_json::Value },
    /// Record the due time as skipped (missed while the server was down, policy `skip`).
    Skip,
    /// Record that the agent refused the work (its admission refusal's message), also as the
    /// schedule's `last_error`.
    Refused(String),
    /// Record an error (the agent no longer exists, the template failed…).
    Error(String),
}

const COLS: &str = "id, sandbox_id, agent_id, config, state, resume_at, next_fire_at, last_fired_at, fire_count, last_error, last_error_at, created_at, updated_at";

fn schedule_from(row: &AnyRow) -> Result<Schedule, StoreError> {
    let config: String = row.try_get("config")?;
    Ok(Schedule {
        id: ScheduleId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("schedule config: {e}")))?,
        state: row.try_get("state")?,
        resume_at: row.try_get("resume_at")?,
        next_fire_at: row.try_get("next_fire_at")?,
        last_fired_at: row.try_get("last_fired_at")?,
        fire_count: row.try_get("fire_count")?,
        last_error: row.try_get("last_error")?,
        last_error_at: row.try_get("last_error_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn execution_from(row: &AnyRow) -> Result<Execution, StoreError> {
    Ok(Execution {
        schedule_id: ScheduleId::from_trusted(row.try_get("schedule_id")?),
        scheduled_at: row.try_get("scheduled_at")?,
        fired_at: row.try_get("fired_at")?,
        outcome: row.try_get("outcome")?,
        session_id: row.try_get("session_id")?,
        run_id: row.try_get("run_id")?,
        error: row.try_get("error")?,
    })
}

impl Store {
    /// Creates a schedule whose first due time is `next_fire_at`.
    pub async fn create_schedule(
        &self,
        sandbox: &SandboxId,
        agent: &AgentId,
        config: ScheduleConfig,
        next_fire_at: Option<i64>,
    ) -> Result<Schedule, StoreError> {
        let now = self.now();
        let id = ScheduleId::generate();
        self.write(
            sqlx::query(
                "INSERT INTO schedules (id, sandbox_id, agent_id, name, config, state, next_fire_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7)",
            )
            .bind(id.as_str())
            .bind(sandbox.as_str())
            .bind(agent.as_str())
            .bind(&config.name)
            .bind(serde_json::to_string(&config).expect("a schedule config serializes"))
            .bind(next_fire_at)
            .bind(now),
        )
        .await
        .map_err(|e| {
            if e.is_unique() { StoreError::Duplicate(format!("this agent already has a schedule named `{}`", config.name)) } else { e }
        })?;
        self.schedule(&id).await?.ok_or(StoreError::NotFound("schedule"))
    }

    pub async fn schedule(&self, id: &ScheduleId) -> Result<Option<Schedule>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM schedules WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(schedule_from).transpose()
    }

    /// An agent's schedules, by name.
    pub async fn schedules_of(&self, agent: &AgentId) -> Result<Vec<Schedule>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM schedules WHERE agent_id = $1 ORDER BY name")))
            .bind(agent.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from).collect()
    }

    /// Replaces the configuration (and the next due time computed from it), compare-and-set.
    pub async fn update_schedule(
        &self,
        current: &Schedule,
        config: ScheduleConfig,
        next_fire_at: Option<i64>,
    ) -> Result<Schedule, StoreError> {
        let now = self.now().max(current.updated_at + 1);
        let n = self
            .write(
                sqlx::query(
                    "UPDATE schedules SET name = $1, config = $2, next_fire_at = $3, updated_at = $4 WHERE id = $5 AND updated_at = $6",
                )
                .bind(&config.name)
                .bind(serde_json::to_string(&config).expect("a schedule config serializes"))
                .bind(next_fire_at)
                .bind(now)
                .bind(current.id.as_str())
                .bind(current.updated_at),
            )
            .await
            .map_err(|e| {
                if e.is_unique() { StoreError::Duplicate(format!("this agent already has a schedule named `{}`", config.name)) } else { e }
            })?;
        if n.rows_affected() == 0 {
            return Err(StoreError::Stale(format!("schedule `{}` changed meanwhile or was deleted; read it again and retry", current.id)));
        }
        self.schedule(&current.id).await?.ok_or(StoreError::NotFound("schedule"))
    }

    /// Pauses (optionally until `resume_at`) or resumes. Resuming sets the next due time.
    pub async fn set_schedule_state(
        &self,
        id: &ScheduleId,
        state: &str,
        resume_at: Option<i64>,
        next_fire_at: Option<i64>,
    ) -> Result<Schedule, StoreError> {
        let now = self.now();
        let n = self
            .write(
                sqlx::query("UPDATE schedules SET state = $1, resume_at = $2, next_fire_at = $3, updated_at = $4 WHERE id = $5")
                    .bind(state)
                    .bind(resume_at)
                    .bind(next_fire_at)
                    .bind(now)
                    .bind(id.as_str()),
            )
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("schedule"));
        }
        self.schedule(id).await?.ok_or(StoreError::NotFound("schedule"))
    }

    pub async fn delete_schedule(&self, id: &ScheduleId) -> Result<(), StoreError> {
        let n = self.write(sqlx::query("DELETE FROM schedules WHERE id = $1").bind(id.as_str())).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("schedule"));
        }
        Ok(())
    }

    /// Schedules with a due time at or before `now` (paused ones included: the scheduler
    /// decides), earliest first.
    pub async fn due_schedules(&self, now: i64, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLS} FROM schedules WHERE next_fire_at IS NOT NULL AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2"
        )))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schedule_from).collect()
    }

    /// The earliest due time of any schedule, to know how long to sleep.
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_fire_at) AS due FROM schedules").fetch_one(&self.pool).await?;
        Ok(row.try_get::<Option<i64>, _>("due")?)
    }

    /// Fires due time `scheduled_at` of `schedule` (what to do is `fire`) and moves the
    /// schedule on to `next`. Returns `None` when another replica fired it first.
    pub async fn fire_schedule(
        &self,
        schedule: &Schedule,
        scheduled_at: i64,
        next: Option<i64>,
        fire: Fire,
    ) -> Result<Option<Execution>, StoreError> {
        let mut out = self.fire_schedules(vec![(schedule, scheduled_at, next, fire)]).await?;
        Ok(out.pop().flatten())
    }

    /// [`Self::fire_schedule`] for many due times in one transaction (the scheduler fires
    /// everything due at one tick together). Each entry is compare-and-set on its own: the
    /// answer has one element per entry, in schedule id order, `None` where another replica
    /// fired it first.
    pub async fn fire_schedules(&self, mut fires: Vec<(&Schedule, i64, Option<i64>, Fire)>) -> Result<Vec<Option<Execution>>, StoreError> {
        // Rows are locked in one total order (by id) by every replica: due rows come ordered by
        // time, and rows due at the same time in whatever order each replica read them, so two
        // replicas firing the same second locked them crosswise and PostgreSQL aborted one after
        // its 1 s `deadlock_timeout`. In id order the loser just waits for the winner's commit,
        // then its compare-and-set matches nothing.
        fires.sort_by(|a, b| a.0.id.as_str().cmp(b.0.id.as_str()));
        let mut tx = self.write_tx().await?;
        // Read after the writer slot is ours, so `fired_at` is when it really fired.
        let now = self.now();
        let mut out = Vec::with_capacity(fires.len());
        for (schedule, scheduled_at, next, fire) in fires {
            out.push(Self::fire_in(&mut tx, schedule, scheduled_at, next, fire, now).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn fire_in(
        tx: &mut crate::WriteTx,
        schedule: &Schedule,
        scheduled_at: i64,
        next: Option<i64>,
        fire: Fire,
        now: i64,
    ) -> Result<Option<Execution>, StoreError> {
        let moved = sqlx::query("UPDATE schedules SET next_fire_at = $1 WHERE id = $2 AND next_fire_at = $3")
            .bind(next)
            .bind(schedule.id.as_str())
            .bind(scheduled_at)
            .execute(&mut **tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        let failed = if matches!(fire, Fire::Refused(_)) { "refused" } else { "error" };
        let (outcome, session_id, run_id, error): (&str, Option<SessionId>, Option<String>, Option<String>) = match fire {
            Fire::Start { new, input } => {
                let (session, run) = Self::create_session_in(tx, new, Some(&input), now).await?;
                sqlx::query("UPDATE schedules SET last_fired_at = $1, fire_count = fire_count + 1 WHERE id = $2")
                    .bind(now)
                    .bind(schedule.id.as_str())
                    .execute(&mut **tx)
                    .await?;
                ("started", Some(session.id), run.map(|r| r.id.to_string()), None)
            }
            Fire::Skip => ("skipped", None, None, None),
            Fire::Refused(e) | Fire::Error(e) => {
                sqlx::query("UPDATE schedules SET last_error = $1, last_error_at = $2 WHERE id = $3")
                    .bind(&e)
                    .bind(now)
                    .bind(schedule.id.as_str())
                    .execute(&mut **tx)
                    .await?;
                (failed, None, None, Some(e))
            }
        };
        sqlx::query(
            "INSERT INTO schedule_executions (schedule_id, scheduled_at, fired_at, outcome, session_id, run_id, error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(schedule.id.as_str())
        .bind(scheduled_at)
        .bind(now)
        .bind(outcome)
        .bind(session_id.as_ref().map(|s| s.as_str().to_owned()))
        .bind(run_id.clone())
        .bind(error.clone())
        .execute(&mut **tx)
        .await?;
        Ok(Some(Execution {
            schedule_id: schedule.id.clone(),
            scheduled_at,
            fired_at: now,
            outcome: outcome.into(),
            session_id: session_id.map(|s| s.to_string()),
            run_id,
            error,
        }))
    }

    /// A schedule's executions, newest first.
    pub async fn executions(&self, schedule: &ScheduleId, limit: u32) -> Result<Vec<Execution>, StoreError> {
        let rows = sqlx::query("SELECT * FROM schedule_executions WHERE schedule_id = $1 ORDER BY scheduled_at DESC LIMIT $2")
            .bind(schedule.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(execution_from).collect()
    }
}
