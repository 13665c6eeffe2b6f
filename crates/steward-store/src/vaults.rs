//! Vaults: a sandbox's named secrets, stored only as ciphertext sealed by the caller (the store
//! never sees a plaintext nor the key). Reads of metadata never load the ciphertext; only
//! [`Store::vault_ciphertext`] does, for the code that injects a secret.
//!
//! Providers reference vaults (`api_key_vault_id`). A vault that is referenced cannot be
//! deleted, and a reference cannot be created to a vault being deleted: both sides take the
//! vault row's write lock first (see [`Store::lock_vault`]).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{SandboxId, VaultId};
use steward_core::vault::Vault;

use crate::cache::Stale;
use crate::{Listing, PageRequest, Store, StoreError};

/// What is needed to store a new vault. The id is chosen by the caller because the ciphertext
/// is bound to it.
#[derive(Debug, Clone)]
pub struct NewVault {
    pub id: VaultId,
    pub sandbox_id: SandboxId,
    pub name: String,
    pub description: String,
    /// The sealed secret (never the plaintext).
    pub ciphertext: String,
}

/// A partial update of a vault; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct VaultUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    /// A newly sealed secret (rotation).
    pub ciphertext: Option<String>,
}

const COLS: &str = "id, sandbox_id, name, description, created_at, updated_at";

fn vault_from(row: &AnyRow) -> Result<Vault, StoreError> {
    Ok(Vault {
        id: VaultId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn name_conflict(name: &str) -> StoreError {
    StoreError::Duplicate(format!(
        "a vault named `{name}` already exists in this sandbox; pick another name, or update that vault to rotate its secret"
    ))
}

impl Store {
    pub async fn create_vault(&self, new: NewVault) -> Result<Vault, StoreError> {
        let now = self.now();
        let res = self
            .write(
                sqlx::query(
                    "INSERT INTO vaults (id, sandbox_id, name, description, ciphertext, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(new.id.as_str())
                .bind(new.sandbox_id.as_str())
                .bind(&new.name)
                .bind(&new.description)
                .bind(&new.ciphertext)
                .bind(now),
            )
            .await;
        match res {
            Err(e) if e.is_unique() => return Err(name_conflict(&new.name)),
            other => other?,
        };
        Ok(Vault { id: new.id, sandbox_id: new.sandbox_id, name: new.name, description: new.description, created_at: now, updated_at: now })
    }

    /// A vault's metadata, in whichever sandbox it is (the caller checks access).
    pub async fn vault(&self, id: &VaultId) -> Result<Option<Vault>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM vaults WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(vault_from).transpose()
    }

    /// The sealed secret of a vault, for the code that decrypts and injects it. Cached (only
    /// ciphertext: decrypting is the caller's, per use); updating and deleting the vault, and
    /// destroying its sandbox, invalidate it.
    pub async fn vault_ciphertext(&self, id: &VaultId) -> Result<Option<String>, StoreError> {
        let read = async {
            let row = sqlx::query("SELECT ciphertext FROM vaults WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
            Ok(row.map(|r| r.try_get("ciphertext")).transpose()?)
        };
        self.read_through(&self.caches.vaults, id.clone(), read).await
    }

    /// Vaults of a sandbox, newest first.
    pub async fn vaults(&self, sandbox: &SandboxId, page: &PageRequest) -> Result<Listing<Vault>, StoreError> {
        let before = if page.before.is_some() { "AND id < $3" } else { "" };
        let sql = format!("SELECT {COLS} FROM vaults WHERE sandbox_id = $1 {before} ORDER BY id DESC LIMIT $2");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(vault_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |v| v.id.to_string()))
    }

    /// Changes the present fields of a vault. Each column is set on its own, so concurrent
    /// updates of different fields never undo each other.
    pub async fn update_vault(&self, id: &VaultId, update: VaultUpdate) -> Result<Vault, StoreError> {
        let res = self
            .write_invalidating(
                sqlx::query(
                    "UPDATE vaults SET name = COALESCE($1, name), description = COALESCE($2, description),
             ciphertext = COALESCE($3, ciphertext), updated_at = $4 WHERE id = $5",
                )
                .bind(update.name.clone())
                .bind(update.description)
                .bind(update.ciphertext)
                .bind(self.now())
                .bind(id.as_str()),
                &[Stale::Vault(id.clone())],
            )
            .await;
        let n = match res {
            Err(e) if e.is_unique() => return Err(name_conflict(update.name.as_deref().unwrap_or_default())),
            other => other?,
        };
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("vault"));
        }
        self.vault(id).await?.ok_or(StoreError::NotFound("vault"))
    }

    /// Deletes a vault and its secret. Irreversible. `InUse` naming the providers that use
    /// it as their API key, if any.
    pub async fn delete_vault(&self, id: &VaultId) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        // Delete first: that takes the row lock, so a provider being pointed at this vault
        // concurrently either committed already (and is seen below) or waits and then finds
        // the vault gone.
        let n = sqlx::query("DELETE FROM vaults WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("vault"));
        }
        let users = sqlx::query("SELECT id FROM providers WHERE api_key_vault_id = $1 ORDER BY id")
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("id").map(|p| format!("`{p}`")))
            .collect::<Result<Vec<_>, _>>()?;
        if !users.is_empty() {
            tx.rollback().await?;
            let (noun, pronoun) = if users.len() == 1 { ("provider", "it") } else { ("providers", "them") };
            return Err(StoreError::InUse(format!(
                "vault {id} is the API key of {noun} {}; point {pronoun} at another vault (or clear `api_key_vault_id`) before deleting it",
                users.join(", ")
            )));
        }
        self.commit_invalidating(tx, &[Stale::Vault(id.clone())]).await?;
        Ok(())
    }

    /// Inside a write transaction: checks that `vault` exists in `sandbox` and holds its row
    /// lock until the transaction ends, so it cannot be deleted under a new reference.
    pub(crate) async fn lock_vault(tx: &mut crate::WriteTx, sandbox: &SandboxId, vault: &VaultId) -> Result<(), StoreError> {
        let n = sqlx::query("UPDATE vaults SET updated_at = updated_at WHERE id = $1 AND sandbox_id = $2")
            .bind(vault.as_str())
            .bind(sandbox.as_str())
            .execute(&mut **tx)
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("vault"));
        }
        Ok(())
    }
}
