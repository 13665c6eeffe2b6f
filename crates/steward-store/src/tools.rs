//! Tool sources (§6) and environments (§7) of a sandbox. Both are a named JSON configuration
//! validated by the core; vault references must point into the same sandbox (the vault rows are
//! locked while the reference is written, as for providers). Updates are compare-and-set on
//! `updated_at`. An environment cannot be deleted while a live agent's current version names it.
//! Runs read sources and environments through the cache; updates and deletes invalidate them.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::environment::{Environment, EnvironmentConfig};
use steward_core::ids::{AgentId, EnvironmentId, SandboxId, SourceId, VaultId};
use steward_core::source::{Source, SourceConfig};

use crate::cache::Stale;
use crate::{Listing, PageRequest, Store, StoreError, WriteTx};

fn source_from(row: &AnyRow) -> Result<Source, StoreError> {
    let config: String = row.try_get("config")?;
    Ok(Source {
        id: SourceId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("source config: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn environment_from(row: &AnyRow) -> Result<Environment, StoreError> {
    let config: String = row.try_get("config")?;
    Ok(Environment {
        id: EnvironmentId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("environment config: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn name_taken(e: sqlx::Error, noun: &str, name: &str) -> StoreError {
    if StoreError::is_unique_violation(&e) {
        StoreError::Duplicate(format!("a {noun} named `{name}` already exists in this sandbox; pick another name or update that {noun}"))
    } else {
        e.into()
    }
}

async fn lock_vaults<'a>(tx: &mut WriteTx, sandbox: &SandboxId, vaults: impl IntoIterator<Item = &'a VaultId>) -> Result<(), StoreError> {
    for v in vaults {
        Store::lock_vault(tx, sandbox, v).await.map_err(|e| match e {
            StoreError::NotFound(_) => StoreError::MissingReference(format!("vault `{v}` does not exist in this sandbox")),
            other => other,
        })?;
    }
    Ok(())
}

fn env_vaults(config: &EnvironmentConfig) -> Vec<VaultId> {
    config.env.values().filter_map(|v| v.vault().cloned()).collect()
}

impl Store {
    /// Creates a source. `Duplicate` if the name is taken, `MissingReference` if a referenced vault is not in the sandbox.
    pub async fn create_source(&self, sandbox: &SandboxId, config: SourceConfig) -> Result<Source, StoreError> {
        let now = self.now();
        let id = SourceId::generate();
        let mut tx = self.write_tx().await?;
        lock_vaults(&mut tx, sandbox, config.vaults()).await?;
        sqlx::query("INSERT INTO sources (id, sandbox_id, name, kind, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(id.as_str())
            .bind(sandbox.as_str())
            .bind(&config.name)
            .bind(config.kind.as_str())
            .bind(serde_json::to_string(&config).expect("a source config serializes"))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, "source", &config.name))?;
        tx.commit().await?;
        Ok(Source { id, sandbox_id: sandbox.clone(), config, created_at: now, updated_at: now })
    }

    /// A source by id, whatever its sandbox (callers check the sandbox).
    pub async fn source(&self, id: &SourceId) -> Result<Option<Source>, StoreError> {
        let row = sqlx::query("SELECT * FROM sources WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(source_from).transpose()
    }

    /// The sources of `sandbox` among `ids` (missing or foreign ids are simply absent), in no
    /// particular order: the cached ones, and the others in one query.
    pub async fn sources_by_id(&self, sandbox: &SandboxId, ids: &[String]) -> Result<Vec<Source>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<SourceId> = ids.iter().map(|id| SourceId::from_trusted(id.clone())).collect();
        let read = |missing: Vec<SourceId>| async move {
            let placeholders: Vec<String> = (0..missing.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!("SELECT * FROM sources WHERE sandbox_id = $1 AND id IN ({})", placeholders.join(", "));
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str());
            for id in &missing {
                q = q.bind(id.as_str());
            }
            q.fetch_all(&self.pool).await?.iter().map(|r| source_from(r).map(|s| (s.id.clone(), s))).collect()
        };
        let found = self.read_many_through(&self.caches.sources, ids, read).await?;
        // An entry is cached by id alone: one of another sandbox is absent here.
        Ok(found.into_iter().filter(|s| &s.sandbox_id == sandbox).collect())
    }

    /// Sources of a sandbox, newest first.
    pub async fn sources(&self, sandbox: &SandboxId, page: &PageRequest) -> Result<Listing<Source>, StoreError> {
        let before = if page.before.is_some() { "AND id < $3" } else { "" };
        let sql = format!("SELECT * FROM sources WHERE sandbox_id = $1 {before} ORDER BY id DESC LIMIT $2");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(source_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |s| s.id.to_string()))
    }

    /// Replaces the configuration if nobody changed it since `current` was read.
    pub async fn update_source(&self, current: &Source, config: SourceConfig) -> Result<Source, StoreError> {
        let now = self.now().max(current.updated_at + 1);
        let mut tx = self.write_tx().await?;
        lock_vaults(&mut tx, &current.sandbox_id, config.vaults()).await?;
        let n = sqlx::query("UPDATE sources SET name = $1, kind = $2, config = $3, updated_at = $4 WHERE id = $5 AND updated_at = $6")
            .bind(&config.name)
            .bind(config.kind.as_str())
            .bind(serde_json::to_string(&config).expect("a source config serializes"))
            .bind(now)
            .bind(current.id.as_str())
            .bind(current.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, "source", &config.name))?;
        if n.rows_affected() == 0 {
            return Err(StoreError::Stale(format!("source `{}` changed meanwhile or was deleted; read it again and retry", current.id)));
        }
        self.commit_invalidating(tx, &[Stale::Source(current.id.clone())]).await?;
        Ok(Source { config, updated_at: now, ..current.clone() })
    }

    /// Deletes a source. Agents that list it get a resolution-trace entry saying it is gone.
    pub async fn delete_source(&self, id: &SourceId) -> Result<(), StoreError> {
        let n = self
            .write_invalidating(sqlx::query("DELETE FROM sources WHERE id = $1").bind(id.as_str()), &[Stale::Source(id.clone())])
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("source"));
        }
        Ok(())
    }

    /// Creates an environment. `Duplicate` if the name is taken, `MissingReference` if a vault is not in the sandbox.
    pub async fn create_environment(&self, sandbox: &SandboxId, config: EnvironmentConfig) -> Result<Environment, StoreError> {
        let now = self.now();
        let id = EnvironmentId::generate();
        let mut tx = self.write_tx().await?;
        lock_vaults(&mut tx, sandbox, &env_vaults(&config)).await?;
        sqlx::query("INSERT INTO environments (id, sandbox_id, name, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
            .bind(id.as_str())
            .bind(sandbox.as_str())
            .bind(&config.name)
            .bind(serde_json::to_string(&config).expect("an environment config serializes"))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, "environment", &config.name))?;
        tx.commit().await?;
        Ok(Environment { id, sandbox_id: sandbox.clone(), config, created_at: now, updated_at: now })
    }

    /// The environment as the database has it now (the management routes read this one).
    pub async fn environment(&self, id: &EnvironmentId) -> Result<Option<Environment>, StoreError> {
        let row = sqlx::query("SELECT * FROM environments WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(environment_from).transpose()
    }

    /// [`Self::environment`] through the cache, for runs and reference checks.
    pub async fn cached_environment(&self, id: &EnvironmentId) -> Result<Option<Environment>, StoreError> {
        self.read_through(&self.caches.environments, id.clone(), self.environment(id)).await
    }

    pub async fn environments(&self, sandbox: &SandboxId, page: &PageRequest) -> Result<Listing<Environment>, StoreError> {
        let before = if page.before.is_some() { "AND id < $3" } else { "" };
        let sql = format!("SELECT * FROM environments WHERE sandbox_id = $1 {before} ORDER BY id DESC LIMIT $2");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(environment_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |s| s.id.to_string()))
    }

    pub async fn update_environment(&self, current: &Environment, config: EnvironmentConfig) -> Result<Environment, StoreError> {
        let now = self.now().max(current.updated_at + 1);
        let mut tx = self.write_tx().await?;
        lock_vaults(&mut tx, &current.sandbox_id, &env_vaults(&config)).await?;
        let n = sqlx::query("UPDATE environments SET name = $1, config = $2, updated_at = $3 WHERE id = $4 AND updated_at = $5")
            .bind(&config.name)
            .bind(serde_json::to_string(&config).expect("an environment config serializes"))
            .bind(now)
            .bind(current.id.as_str())
            .bind(current.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, "environment", &config.name))?;
        if n.rows_affected() == 0 {
            return Err(StoreError::Stale(format!(
                "environment `{}` changed meanwhile or was deleted; read it again and retry",
                current.id
            )));
        }
        self.commit_invalidating(tx, &[Stale::Environment(current.id.clone())]).await?;
        Ok(Environment { config, updated_at: now, ..current.clone() })
    }

    /// Live agents whose current version names `env`.
    pub async fn agents_using_environment(&self, sandbox: &SandboxId, env: &EnvironmentId) -> Result<Vec<AgentId>, StoreError> {
        // The config is our own compact JSON, so the key/value pair appears verbatim.
        let needle = format!("%\"environment_id\":\"{}\"%", env.as_str());
        let rows = sqlx::query("SELECT id FROM agents WHERE sandbox_id = $1 AND archived_at IS NULL AND config LIKE $2 ORDER BY id")
            .bind(sandbox.as_str())
            .bind(needle)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(AgentId::from_trusted(r.try_get("id")?))).collect()
    }

    /// Deletes an environment unless a live agent uses it (`InUse` naming the agents).
    pub async fn delete_environment(&self, env: &Environment) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let needle = format!("%\"environment_id\":\"{}\"%", env.id.as_str());
        let users =
            sqlx::query("SELECT id FROM agents WHERE sandbox_id = $1 AND archived_at IS NULL AND config LIKE $2 ORDER BY id LIMIT 10")
                .bind(env.sandbox_id.as_str())
                .bind(needle)
                .fetch_all(&mut *tx)
                .await?;
        if !users.is_empty() {
            let ids: Vec<String> = users.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<_, _>>()?;
            return Err(StoreError::InUse(format!(
                "environment `{}` is used by agent(s) {}; point them at another environment (PATCH /v1/agents/{{id}} {{\"environment_id\": null}}) or archive them first",
                env.id,
                ids.join(", ")
            )));
        }
        let n = sqlx::query("DELETE FROM environments WHERE id = $1").bind(env.id.as_str()).execute(&mut *tx).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("environment"));
        }
        self.commit_invalidating(tx, &[Stale::Environment(env.id.clone())]).await?;
        Ok(())
    }
}
