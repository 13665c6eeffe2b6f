//! Agents and their immutable versions.
//!
//! `agents` holds the current version's config (denormalised for cheap reads); every version,
//! including the current one, is also a row of `agent_versions` that is never updated.
//! Concurrent updates are compare-and-set on `version`, so two writers cannot both produce
//! version N+1.
//!
//! Versions are cached (immutable; only deleting the agent invalidates them). The agent row is
//! not: it holds the state and the token balance, which the run writer changes with every run,
//! and admission must never decide on an old balance or state.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::agent::{Agent, AgentConfig, AgentState, AgentVersion};
use steward_core::ids::{AccountId, AgentId, SandboxId};

use crate::cache::Stale;
use crate::{Listing, PageRequest, Store, StoreError};

const COLS: &str = "id, sandbox_id, version, config, state, state_reason, token_balance, created_at, updated_at, archived_at, concierge_of";

fn config_from(raw: &str) -> Result<AgentConfig, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("agent config: {e}")))
}

fn config_to(c: &AgentConfig) -> String {
    serde_json::to_string(c).expect("an AgentConfig always serialises")
}

fn agent_from(row: &AnyRow) -> Result<Agent, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(Agent {
        id: AgentId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        version: row.try_get("version")?,
        config: config_from(&row.try_get::<String, _>("config")?)?,
        state: state.parse().map_err(|_| StoreError::Corrupt(format!("unknown agent state `{state}`")))?,
        state_reason: row.try_get("state_reason")?,
        token_balance: row.try_get("token_balance")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        archived_at: row.try_get("archived_at")?,
        concierge_of: row.try_get::<Option<String>, _>("concierge_of")?.map(AccountId::from_trusted),
    })
}

fn name_conflict(name: &str) -> StoreError {
    StoreError::Duplicate(format!("an agent named `{name}` already exists in this sandbox; pick another name or update that agent"))
}

impl Store {
    /// Creates an agent at version 1, state `active`.
    pub async fn create_agent(&self, sandbox: &SandboxId, config: AgentConfig) -> Result<Agent, StoreError> {
        self.insert_agent(sandbox, config, None).await
    }

    /// The Concierge of `account` in `sandbox`, if it was created.
    pub async fn concierge(&self, sandbox: &SandboxId, account: &AccountId) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM agents WHERE sandbox_id = $1 AND concierge_of = $2")))
            .bind(sandbox.as_str())
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from).transpose()
    }

    /// Creates the Concierge of `account` in `sandbox`, or returns the one a concurrent request
    /// created first.
    pub async fn create_concierge(&self, sandbox: &SandboxId, account: &AccountId, config: AgentConfig) -> Result<Agent, StoreError> {
        match self.insert_agent(sandbox, config, Some(account)).await {
            Err(StoreError::Duplicate(m)) => self.concierge(sandbox, account).await?.ok_or(StoreError::Duplicate(m)),
            other => other,
        }
    }

    async fn insert_agent(&self, sandbox: &SandboxId, config: AgentConfig, concierge_of: Option<&AccountId>) -> Result<Agent, StoreError> {
        let now = self.now();
        let agent = Agent {
            id: AgentId::generate(),
            sandbox_id: sandbox.clone(),
            version: 1,
            config,
            state: AgentState::Active,
            state_reason: None,
            token_balance: None,
            created_at: now,
            updated_at: now,
            archived_at: None,
            concierge_of: concierge_of.cloned(),
        };
        let json = config_to(&agent.config);
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "INSERT INTO agents (id, sandbox_id, name, version, config, state, created_at, updated_at, concierge_of)
             VALUES ($1, $2, $3, 1, $4, 'active', $5, $5, $6)",
        )
        .bind(agent.id.as_str())
        .bind(sandbox.as_str())
        .bind(&agent.config.name)
        .bind(&json)
        .bind(now)
        .bind(concierge_of.map(|a| a.as_str()))
        .execute(&mut *tx)
        .await;
        match res {
            Err(e) if StoreError::is_unique_violation(&e) => return Err(name_conflict(&agent.config.name)),
            other => other?,
        };
        sqlx::query("INSERT INTO agent_versions (agent_id, version, config, created_at) VALUES ($1, 1, $2, $3)")
            .bind(agent.id.as_str())
            .bind(&json)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(agent)
    }

    pub async fn agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM agents WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from).transpose()
    }

    /// Agents of a sandbox, newest first; `archived` picks archived ones instead of live ones.
    /// Concierges are not listed (they belong to one account each, and the platform manages them).
    pub async fn agents(&self, sandbox: &SandboxId, archived: bool, page: &PageRequest) -> Result<Listing<Agent>, StoreError> {
        let archived_clause = if archived { "archived_at IS NOT NULL" } else { "archived_at IS NULL" };
        let before = if page.before.is_some() { "AND id < $3" } else { "" };
        let sql = format!(
            "SELECT {COLS} FROM agents WHERE sandbox_id = $1 AND concierge_of IS NULL AND {archived_clause} {before} ORDER BY id DESC LIMIT $2"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(agent_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |a| a.id.to_string()))
    }

    /// Writes `config` as version `expected_version + 1`. `Stale` if the agent moved on
    /// meanwhile (the caller re-reads and retries) or is archived.
    pub async fn update_agent(&self, id: &AgentId, expected_version: i64, config: AgentConfig) -> Result<Agent, StoreError> {
        let now = self.now();
        let json = config_to(&config);
        let next = expected_version + 1;
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE agents SET version = $1, config = $2, name = $3, updated_at = $4
             WHERE id = $5 AND version = $6 AND archived_at IS NULL",
        )
        .bind(next)
        .bind(&json)
        .bind(&config.name)
        .bind(now)
        .bind(id.as_str())
        .bind(expected_version)
        .execute(&mut *tx)
        .await;
        let n = match res {
            Err(e) if StoreError::is_unique_violation(&e) => return Err(name_conflict(&config.name)),
            other => other?,
        };
        if n.rows_affected() == 0 {
            return Err(StoreError::Stale(format!("agent {id} changed meanwhile or is archived; read it again and retry")));
        }
        sqlx::query("INSERT INTO agent_versions (agent_id, version, config, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.as_str())
            .bind(next)
            .bind(&json)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.agent(id).await?.ok_or(StoreError::NotFound("agent"))
    }

    /// Versions of an agent, newest first; `page.before` is a version number.
    pub async fn agent_versions(&self, id: &AgentId, page: &PageRequest) -> Result<Listing<AgentVersion>, StoreError> {
        let before: Option<i64> = match &page.before {
            Some(b) => Some(b.parse().map_err(|_| StoreError::Conflict("the cursor is not a version cursor".into()))?),
            None => None,
        };
        let clause = if before.is_some() { "AND version < $3" } else { "" };
        let sql = format!(
            "SELECT agent_id, version, config, created_at FROM agent_versions WHERE agent_id = $1 {clause} ORDER BY version DESC LIMIT $2"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(id.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = before {
            q = q.bind(b);
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(version_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |v| v.version.to_string()))
    }

    /// One version of an agent. Cached: a version never changes, and goes only with its agent.
    pub async fn agent_version(&self, id: &AgentId, version: i64) -> Result<Option<AgentVersion>, StoreError> {
        let read = async {
            let row = sqlx::query("SELECT agent_id, version, config, created_at FROM agent_versions WHERE agent_id = $1 AND version = $2")
                .bind(id.as_str())
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(version_from).transpose()
        };
        self.read_through(&self.caches.versions, (id.clone(), version), read).await
    }

    /// Archives an agent (soft delete; idempotent). Its name becomes free for a new agent.
    pub async fn archive_agent(&self, id: &AgentId) -> Result<Agent, StoreError> {
        let now = self.now();
        self.write(
            sqlx::query("UPDATE agents SET archived_at = $1, updated_at = $1 WHERE id = $2 AND archived_at IS NULL")
                .bind(now)
                .bind(id.as_str()),
        )
        .await?;
        self.agent(id).await?.ok_or(StoreError::NotFound("agent"))
    }

    /// Deletes an agent, all its versions and its sessions, runs and events. Irreversible.
    pub async fn delete_agent(&self, id: &AgentId) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for sql in [
            "DELETE FROM events WHERE session_id IN (SELECT id FROM sessions WHERE agent_id = $1)",
            "DELETE FROM session_messages WHERE session_id IN (SELECT id FROM sessions WHERE agent_id = $1)",
            "DELETE FROM runs WHERE agent_id = $1",
            "DELETE FROM sessions WHERE agent_id = $1",
            "DELETE FROM agent_versions WHERE agent_id = $1",
        ] {
            sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM agents WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("agent"));
        }
        // Its triggers go by cascade.
        self.commit_invalidating(tx, &[Stale::AgentDeleted(id.clone())]).await?;
        Ok(())
    }

    /// Moves an agent from `from` to `to` (compare-and-set on the state, so a concurrent change
    /// is detected rather than overwritten). Legality is the caller's business.
    pub async fn set_agent_state(&self, id: &AgentId, from: AgentState, to: AgentState, reason: Option<&str>) -> Result<Agent, StoreError> {
        let n = self
            .write(
                sqlx::query(
                    "UPDATE agents SET state = $1, state_reason = $2, updated_at = $3 WHERE id = $4 AND state = $5 AND archived_at IS NULL",
                )
                .bind(to.as_str())
                .bind(reason.map(str::to_owned))
                .bind(self.now())
                .bind(id.as_str())
                .bind(from.as_str()),
            )
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::Stale(format!("agent {id} changed state meanwhile or is archived; read it again and retry")));
        }
        self.agent(id).await?.ok_or(StoreError::NotFound("agent"))
    }

    /// Moves the agent from `from` to `to` (compare-and-set, like [`Self::set_agent_state`]) and
    /// enqueues `notification` in the same transaction, so a crash cannot keep the change and
    /// lose its `agent.error`. Returns whether the state changed.
    pub async fn set_agent_state_notifying(
        &self,
        id: &AgentId,
        from: AgentState,
        to: AgentState,
        reason: Option<&str>,
        notification: &crate::Notification,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE agents SET state = $1, state_reason = $2, updated_at = $3 WHERE id = $4 AND state = $5 AND archived_at IS NULL",
        )
        .bind(to.as_str())
        .bind(reason.map(str::to_owned))
        .bind(now)
        .bind(id.as_str())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Ok(false);
        }
        Self::enqueue_in(&mut tx, notification, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn version_from(row: &AnyRow) -> Result<AgentVersion, StoreError> {
    Ok(AgentVersion {
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        version: row.try_get("version")?,
        config: config_from(&row.try_get::<String, _>("config")?)?,
        created_at: row.try_get("created_at")?,
    })
}
