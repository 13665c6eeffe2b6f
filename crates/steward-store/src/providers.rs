//! Model providers of a sandbox, keyed by `(sandbox_id, id)` where `id` is the user's slug.
//!
//! Updates are compare-and-set on `updated_at`, which every write moves strictly forward, so two
//! concurrent partial updates cannot silently undo each other: the loser gets `Stale` and
//! re-applies its change to what the winner wrote. A provider's API-key vault must live in the
//! same sandbox; its row is locked while the reference is written (see `vaults.rs`).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{SandboxId, VaultId};
use steward_core::provider::{Provider, ProviderConfig, ProviderId};

use crate::cache::Stale;
use crate::{Listing, PageRequest, Store, StoreError};

const COLS: &str = "sandbox_id, id, provider, base_url, api_key_vault_id, models, created_at, updated_at";

fn provider_from(row: &AnyRow) -> Result<Provider, StoreError> {
    let kind: String = row.try_get("provider")?;
    let models: String = row.try_get("models")?;
    Ok(Provider {
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        id: ProviderId::from_trusted(row.try_get("id")?),
        config: ProviderConfig {
            kind: kind.parse().map_err(|_| StoreError::Corrupt(format!("unknown provider kind `{kind}`")))?,
            base_url: row.try_get("base_url")?,
            api_key_vault_id: row.try_get::<Option<String>, _>("api_key_vault_id")?.map(VaultId::from_trusted),
            models: serde_json::from_str(&models).map_err(|e| StoreError::Corrupt(format!("provider models: {e}")))?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn models_to(models: &[String]) -> String {
    serde_json::to_string(models).expect("a list of strings always serialises")
}

impl Store {
    /// Creates provider `id` in `sandbox`. `Duplicate` if the id is taken there; `NotFound("vault")`
    /// if the API-key vault is not a vault of this sandbox.
    pub async fn create_provider(&self, sandbox: &SandboxId, id: &ProviderId, config: ProviderConfig) -> Result<Provider, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        if let Some(vault) = &config.api_key_vault_id {
            Self::lock_vault(&mut tx, sandbox, vault).await?;
        }
        let res = sqlx::query(
            "INSERT INTO providers (sandbox_id, id, provider, base_url, api_key_vault_id, models, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(sandbox.as_str())
        .bind(id.as_str())
        .bind(config.kind.as_str())
        .bind(&config.base_url)
        .bind(config.api_key_vault_id.as_ref().map(|v| v.as_str().to_owned()))
        .bind(models_to(&config.models))
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Err(e) if StoreError::is_unique_violation(&e) => {
                return Err(StoreError::Duplicate(format!(
                    "a provider with id `{id}` already exists in this sandbox; pick another id or update that provider"
                )));
            }
            other => other?,
        };
        tx.commit().await?;
        Ok(Provider { sandbox_id: sandbox.clone(), id: id.clone(), config, created_at: now, updated_at: now })
    }

    /// The provider as the database has it now (the management routes read this one before a
    /// compare-and-set).
    pub async fn provider(&self, sandbox: &SandboxId, id: &ProviderId) -> Result<Option<Provider>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM providers WHERE sandbox_id = $1 AND id = $2")))
            .bind(sandbox.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(provider_from).transpose()
    }

    /// [`Self::provider`] through the cache, for admission and runs. Updating, deleting and
    /// destroying the sandbox invalidate it.
    pub async fn cached_provider(&self, sandbox: &SandboxId, id: &ProviderId) -> Result<Option<Provider>, StoreError> {
        self.read_through(&self.caches.providers, (sandbox.clone(), id.clone()), self.provider(sandbox, id)).await
    }

    /// Providers of a sandbox in id order (ids are user-chosen, so alphabetical is what a reader
    /// expects). Here `page.before` is the last id of the previous page and the listing
    /// continues after it.
    pub async fn providers(&self, sandbox: &SandboxId, page: &PageRequest) -> Result<Listing<Provider>, StoreError> {
        let after = if page.before.is_some() { "AND id > $3" } else { "" };
        let sql = format!("SELECT {COLS} FROM providers WHERE sandbox_id = $1 {after} ORDER BY id ASC LIMIT $2");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(provider_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |p| p.id.to_string()))
    }

    /// Replaces the configuration of `current` with `config` if nobody changed it since
    /// `current` was read (`Stale` otherwise; re-read and retry).
    /// `NotFound("vault")` if the API-key vault is not a vault of this sandbox.
    pub async fn update_provider(&self, current: &Provider, config: ProviderConfig) -> Result<Provider, StoreError> {
        // Strictly later than the version read, even within one millisecond, so the
        // compare-and-set below can never match twice.
        let now = self.now().max(current.updated_at + 1);
        let mut tx = self.write_tx().await?;
        if let Some(vault) = &config.api_key_vault_id {
            Self::lock_vault(&mut tx, &current.sandbox_id, vault).await?;
        }
        let n = sqlx::query(
            "UPDATE providers SET provider = $1, base_url = $2, api_key_vault_id = $3, models = $4, updated_at = $5
             WHERE sandbox_id = $6 AND id = $7 AND updated_at = $8",
        )
        .bind(config.kind.as_str())
        .bind(&config.base_url)
        .bind(config.api_key_vault_id.as_ref().map(|v| v.as_str().to_owned()))
        .bind(models_to(&config.models))
        .bind(now)
        .bind(current.sandbox_id.as_str())
        .bind(current.id.as_str())
        .bind(current.updated_at)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::Stale(format!("provider `{}` changed meanwhile or was deleted; read it again and retry", current.id)));
        }
        self.commit_invalidating(tx, &[Stale::Provider(current.sandbox_id.clone(), current.id.clone())]).await?;
        Ok(Provider { config, updated_at: now, ..current.clone() })
    }

    /// Deletes a provider. Agents naming it fail their next run until pointed elsewhere.
    pub async fn delete_provider(&self, sandbox: &SandboxId, id: &ProviderId) -> Result<(), StoreError> {
        let n = self
            .write_invalidating(
                sqlx::query("DELETE FROM providers WHERE sandbox_id = $1 AND id = $2").bind(sandbox.as_str()).bind(id.as_str()),
                &[Stale::Provider(sandbox.clone(), id.clone())],
            )
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("provider"));
        }
        Ok(())
    }
}
