//! API keys: stored as hashes, looked up by hash on every request (through the cache: a
//! revocation drops the entry here at once and on other replicas when its notification
//! arrives), revoked by timestamp.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AccountId, AgentId, ApiKeyId, SandboxId};
use steward_core::tenancy::{ApiKey, KeyKind};

use crate::cache::Stale;
use crate::{Listing, PageRequest, Store, StoreError};

/// What is needed to store a newly minted key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub sandbox_id: SandboxId,
    pub account_id: AccountId,
    pub kind: KeyKind,
    pub agent_id: Option<AgentId>,
    pub name: String,
    pub key_hash: String,
    pub display_prefix: String,
}

const COLS: &str = "id, sandbox_id, account_id, kind, agent_id, name, display_prefix, created_at, revoked_at";

fn key_from(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(ApiKey {
        id: ApiKeyId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        account_id: AccountId::from_trusted(row.try_get("account_id")?),
        kind: kind.parse().map_err(|_| StoreError::Corrupt(format!("unknown key kind `{kind}`")))?,
        agent_id: row.try_get::<Option<String>, _>("agent_id")?.map(AgentId::from_trusted),
        name: row.try_get("name")?,
        display_prefix: row.try_get("display_prefix")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        let key = ApiKey {
            id: ApiKeyId::generate(),
            sandbox_id: new.sandbox_id,
            account_id: new.account_id,
            kind: new.kind,
            agent_id: new.agent_id,
            name: new.name,
            display_prefix: new.display_prefix,
            created_at: self.now(),
            revoked_at: None,
        };
        self.write(
            sqlx::query(
                "INSERT INTO api_keys (id, sandbox_id, account_id, kind, agent_id, name, key_hash, display_prefix, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(key.id.as_str())
            .bind(key.sandbox_id.as_str())
            .bind(key.account_id.as_str())
            .bind(key.kind.as_str())
            .bind(key.agent_id.as_ref().map(|a| a.as_str().to_owned()))
            .bind(&key.name)
            .bind(&new.key_hash)
            .bind(&key.display_prefix)
            .bind(key.created_at),
        )
        .await?;
        Ok(key)
    }

    /// The key whose hash is `key_hash`, revoked or not (the caller decides what revoked means).
    /// Cached: [`Self::revoke_api_key`] invalidates it.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let read = async {
            let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM api_keys WHERE key_hash = $1")))
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(key_from).transpose()
        };
        self.read_through(&self.caches.keys, key_hash.to_owned(), read).await
    }

    pub async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM api_keys WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from).transpose()
    }

    /// Keys minted in `sandbox`, newest first.
    pub async fn api_keys(&self, sandbox: &SandboxId, page: &PageRequest) -> Result<Listing<ApiKey>, StoreError> {
        let before = if page.before.is_some() { "AND id < $3" } else { "" };
        let sql = format!("SELECT {COLS} FROM api_keys WHERE sandbox_id = $1 {before} ORDER BY id DESC LIMIT $2");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sandbox.as_str()).bind(i64::from(page.limit) + 1);
        if let Some(b) = &page.before {
            q = q.bind(b.as_str());
        }
        let items = q.fetch_all(&self.pool).await?.iter().map(key_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::from_overfetch(items, page.limit, |k| k.id.to_string()))
    }

    /// Revokes a key; idempotent (revoking twice keeps the first time).
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<ApiKey, StoreError> {
        self.write_invalidating(
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(self.now()).bind(id.as_str()),
            &[Stale::ApiKey(id.clone())],
        )
        .await?;
        self.api_key(id).await?.ok_or(StoreError::NotFound("API key"))
    }
}
