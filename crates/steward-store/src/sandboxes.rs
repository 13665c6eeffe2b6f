//! Sandboxes (the unit of tenancy) and the grants that give accounts a role in them.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AccountId, SandboxId};
use steward_core::tenancy::{Email, Grant, Role, Sandbox};

use crate::cache::Stale;
use crate::{Listing, PageRequest, Store, StoreError};

/// A sandbox as seen by one account, with that account's role in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxWithRole {
    pub sandbox: Sandbox,
    pub role: Role,
}

fn sandbox_from(row: &AnyRow) -> Result<Sandbox, StoreError> {
    Ok(Sandbox {
        id: SandboxId::from_trusted(row.try_get("id")?),
        name: row.try_get("name")?,
        owner_id: AccountId::from_trusted(row.try_get("owner_id")?),
        created_at: row.try_get("created_at")?,
        archived_at: row.try_get("archived_at")?,
        time_zone: row.try_get("time_zone")?,
    })
}

pub(crate) fn role_from(raw: &str) -> Result<Role, StoreError> {
    raw.parse().map_err(|_| StoreError::Corrupt(format!("unknown role `{raw}`")))
}

const SANDBOX_COLS: &str = "s.id, s.name, s.owner_id, s.created_at, s.archived_at, s.time_zone";

impl Store {
    /// Creates a sandbox owned by `owner` (who gets the `owner` grant).
    pub async fn create_sandbox(&self, owner: &AccountId, name: &str) -> Result<Sandbox, StoreError> {
        let now = self.now();
        let sandbox = Sandbox {
            id: SandboxId::generate(),
            name: name.to_owned(),
            owner_id: owner.clone(),
            created_at: now,
            archived_at: None,
            time_zone: "UTC".to_owned(),
        };
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO sandboxes (id, name, owner_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(sandbox.id.as_str())
            .bind(name)
            .bind(owner.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO grants (sandbox_id, account_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
            .bind(sandbox.id.as_str())
            .bind(owner.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(sandbox)
    }

    /// The sandbox as the database has it now (the management routes read this one).
    pub async fn sandbox(&self, id: &SandboxId) -> Result<Option<Sandbox>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {SANDBOX_COLS} FROM sandboxes s WHERE s.id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(sandbox_from).transpose()
    }

    /// [`Self::sandbox`] through the cache, for per-request checks (is it archived?). Renaming,
    /// a time-zone change, archiving and destroying invalidate it.
    pub async fn cached_sandbox(&self, id: &SandboxId) -> Result<Option<Sandbox>, StoreError> {
        self.read_through(&self.caches.sandboxes, id.clone(), self.sandbox(id)).await
    }

    /// The role `account` holds in `sandbox`, if any. Cached (it is read by every authorized
    /// request): changing or removing the grant, and destroying the sandbox, invalidate it.
    pub async fn role_of(&self, account: &AccountId, sandbox: &SandboxId) -> Result<Option<Role>, StoreError> {
        let read = async {
            let row = sqlx::query("SELECT role FROM grants WHERE account_id = $1 AND sandbox_id = $2")
                .bind(account.as_str())
                .bind(sandbox.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.map(|r| role_from(&r.try_get::<String, _>("role")?)).transpose()
        };
        self.read_through(&self.caches.grants, (sandbox.clone(), account.clone()), read).await
    }

    /// The sandboxes `account` has a grant on, newest first.
    pub async fn sandboxes_of(
        &self,
        account: &AccountId,
        archived: bool,
        page: &PageRequest,
    ) -> Result<Listing<SandboxWithRole>, StoreError> {
        let archived_clause = if archived { "s.archived_at IS NOT NULL" } else { "s.archived_at IS NULL" };
        let before = if page.before.is_some() { "AND s.id < $3" } else { "" };
        let sql = format!(
            "SELECT {SANDBOX_COLS}, g.role FROM sandboxes s JOIN grants g ON g.sandbox_id = s.id
             WHERE g.account_id = $1 AND {archived_clause} {before} ORDER BY s.id DESC LIMIT $2"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(|r| Ok(SandboxWithRole { sandbox: sandbox_from(r)?, role: role_from(&r.try_get::<String, _>("role")?)? }))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |s| s.sandbox.id.to_string()))
    }

    /// The oldest live sandbox `account` owns: the default for session tokens that name none.
    pub async fn first_owned_sandbox(&self, account: &AccountId) -> Result<Option<SandboxId>, StoreError> {
        let row = sqlx::query("SELECT id FROM sandboxes WHERE owner_id = $1 AND archived_at IS NULL ORDER BY id ASC LIMIT 1")
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>("id")).transpose()?.map(SandboxId::from_trusted))
    }

    /// A live sandbox `account` owns with exactly this name (the oldest, if several).
    pub async fn owned_sandbox_by_name(&self, account: &AccountId, name: &str) -> Result<Option<Sandbox>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SANDBOX_COLS} FROM sandboxes s WHERE s.owner_id = $1 AND s.name = $2 AND s.archived_at IS NULL ORDER BY s.id ASC LIMIT 1"
        )))
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(sandbox_from).transpose()
    }

    pub async fn rename_sandbox(&self, id: &SandboxId, name: &str) -> Result<Sandbox, StoreError> {
        let n = self
            .write_invalidating(
                sqlx::query("UPDATE sandboxes SET name = $1 WHERE id = $2").bind(name).bind(id.as_str()),
                &[Stale::Sandbox(id.clone())],
            )
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("sandbox"));
        }
        self.sandbox(id).await?.ok_or(StoreError::NotFound("sandbox"))
    }

    /// Sets the sandbox's time zone (an IANA name the caller validated).
    pub async fn set_sandbox_time_zone(&self, id: &SandboxId, time_zone: &str) -> Result<Sandbox, StoreError> {
        let n = self
            .write_invalidating(
                sqlx::query("UPDATE sandboxes SET time_zone = $1 WHERE id = $2").bind(time_zone).bind(id.as_str()),
                &[Stale::Sandbox(id.clone())],
            )
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("sandbox"));
        }
        self.sandbox(id).await?.ok_or(StoreError::NotFound("sandbox"))
    }

    /// Marks a sandbox archived (read-only); idempotent.
    pub async fn archive_sandbox(&self, id: &SandboxId) -> Result<Sandbox, StoreError> {
        self.write_invalidating(
            sqlx::query("UPDATE sandboxes SET archived_at = $1 WHERE id = $2 AND archived_at IS NULL").bind(self.now()).bind(id.as_str()),
            &[Stale::Sandbox(id.clone())],
        )
        .await?;
        self.sandbox(id).await?.ok_or(StoreError::NotFound("sandbox"))
    }

    /// Deletes a sandbox and everything in it. Irreversible.
    pub async fn destroy_sandbox(&self, id: &SandboxId) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        // Children are listed explicitly rather than trusting ON DELETE CASCADE alone, so the
        // behaviour does not depend on a per-connection SQLite pragma.
        for sql in [
            "DELETE FROM events WHERE session_id IN (SELECT id FROM sessions WHERE sandbox_id = $1)",
            "DELETE FROM session_messages WHERE session_id IN (SELECT id FROM sessions WHERE sandbox_id = $1)",
            "DELETE FROM runs WHERE sandbox_id = $1",
            "DELETE FROM sessions WHERE sandbox_id = $1",
            "DELETE FROM agent_versions WHERE agent_id IN (SELECT id FROM agents WHERE sandbox_id = $1)",
            "DELETE FROM agents WHERE sandbox_id = $1",
            "DELETE FROM api_keys WHERE sandbox_id = $1",
            "DELETE FROM providers WHERE sandbox_id = $1",
            "DELETE FROM vaults WHERE sandbox_id = $1",
            "DELETE FROM grants WHERE sandbox_id = $1",
        ] {
            sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM sandboxes WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("sandbox"));
        }
        // Rows of every cached kind went (some by cascade); destroying is rare enough to clear all.
        self.commit_invalidating(tx, &[Stale::Everything]).await?;
        Ok(())
    }

    /// Gives `account` `role` in `sandbox` (insert or change). The owner's grant cannot be
    /// changed this way.
    pub async fn put_grant(&self, sandbox: &SandboxId, account: &AccountId, role: Role) -> Result<Grant, StoreError> {
        if role == Role::Owner {
            return Err(StoreError::Conflict("a sandbox has exactly one owner; grant `editor` or `viewer`".into()));
        }
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT role FROM grants WHERE sandbox_id = $1 AND account_id = $2")
            .bind(sandbox.as_str())
            .bind(account.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        match existing {
            Some(r) if role_from(&r.try_get::<String, _>("role")?)? == Role::Owner => {
                return Err(StoreError::Conflict("that account owns the sandbox; the owner's role cannot be changed".into()));
            }
            Some(_) => {
                sqlx::query("UPDATE grants SET role = $1 WHERE sandbox_id = $2 AND account_id = $3")
                    .bind(role.as_str())
                    .bind(sandbox.as_str())
                    .bind(account.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("INSERT INTO grants (sandbox_id, account_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(sandbox.as_str())
                    .bind(account.as_str())
                    .bind(role.as_str())
                    .bind(self.now())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        self.commit_invalidating(tx, &[Stale::Grant(sandbox.clone(), account.clone())]).await?;
        self.grant(sandbox, account).await?.ok_or(StoreError::NotFound("grant"))
    }

    pub async fn grant(&self, sandbox: &SandboxId, account: &AccountId) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(
            "SELECT g.sandbox_id, g.account_id, a.email, g.role, g.created_at FROM grants g JOIN accounts a ON a.id = g.account_id
             WHERE g.sandbox_id = $1 AND g.account_id = $2",
        )
        .bind(sandbox.as_str())
        .bind(account.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_from).transpose()
    }

    /// Everyone with a role in `sandbox`, by account id descending.
    pub async fn grants(&self, sandbox: &SandboxId, page: &PageRequest) -> Result<Listing<Grant>, StoreError> {
        let before = if page.before.is_some() { "AND g.account_id < $3" } else { "" };
        let sql = format!(
            "SELECT g.sandbox_id, g.account_id, a.email, g.role, g.created_at FROM grants g JOIN accounts a ON a.id = g.account_id
             WHERE g.sandbox_id = $1 {before} ORDER BY g.account_id DESC LIMIT $2"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(grant_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |g| g.account_id.to_string()))
    }

    /// Removes an account's access. The owner cannot be removed.
    pub async fn remove_grant(&self, sandbox: &SandboxId, account: &AccountId) -> Result<(), StoreError> {
        let Some(g) = self.grant(sandbox, account).await? else { return Err(StoreError::NotFound("grant")) };
        if g.role == Role::Owner {
            return Err(StoreError::Conflict("the owner's grant cannot be removed; destroy or archive the sandbox instead".into()));
        }
        self.write_invalidating(
            sqlx::query("DELETE FROM grants WHERE sandbox_id = $1 AND account_id = $2 AND role <> 'owner'")
                .bind(sandbox.as_str())
                .bind(account.as_str()),
            &[Stale::Grant(sandbox.clone(), account.clone())],
        )
        .await?;
        Ok(())
    }
}

fn grant_from(row: &AnyRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        account_id: AccountId::from_trusted(row.try_get("account_id")?),
        email: Email::from_trusted(row.try_get("email")?),
        role: role_from(&row.try_get::<String, _>("role")?)?,
        created_at: row.try_get("created_at")?,
    })
}
