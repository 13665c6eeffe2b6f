//! Integrations (§10): OAuth connect attempts, connected accounts and publications.
//!
//! A connect attempt is a row keyed by the nonce of its signed `state`; the callback *takes* it
//! (sets `used_at` by compare-and-set), so a replayed callback finds it used. Tokens arrive here
//! already sealed by the runtime's vault cipher; this module never sees them in clear.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AccountId, AgentId, ConnectedAccountId, PublicationId, SandboxId};

use crate::{Store, StoreError};

/// A connect attempt (`POST /v1/integrations/{app}/connect`) waiting for its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthAttempt {
    pub nonce: String,
    pub sandbox_id: SandboxId,
    pub app_id: String,
    pub account_id: AccountId,
    /// The session (a run or a Concierge conversation) that started the connect, told when it lands.
    pub session_id: Option<String>,
    /// The PKCE verifier, sealed.
    pub verifier: Option<String>,
    pub redirect_uri: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// How it ended: the account it connected, or the error.
    pub connected_account_id: Option<ConnectedAccountId>,
    pub error: Option<String>,
}

/// What taking an attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    Taken(Box<OAuthAttempt>),
    Unknown,
    AlreadyUsed,
    Expired,
}

/// A connected account. `tokens` is the sealed token set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedAccount {
    pub id: ConnectedAccountId,
    pub sandbox_id: SandboxId,
    pub app_id: String,
    /// The account's id at the app (Slack team id, GitHub user id…), `""` when the app says none.
    pub external_id: String,
    pub label: String,
    /// `active` or `needs_reauth`.
    pub status: String,
    pub status_reason: Option<String>,
    pub scopes: Option<String>,
    pub expires_at: Option<i64>,
    /// What the app said about the account (its token response without tokens), as JSON.
    pub info: serde_json::Value,
    pub connected_by: AccountId,
    pub created_at: i64,
    pub updated_at: i64,
    pub refreshed_at: Option<i64>,
}

/// A new or re-connected account.
#[derive(Debug, Clone)]
pub struct NewConnectedAccount {
    pub sandbox_id: SandboxId,
    pub app_id: String,
    pub external_id: String,
    pub label: String,
    pub scopes: Option<String>,
    pub expires_at: Option<i64>,
    pub info: serde_json::Value,
    pub connected_by: AccountId,
}

/// Which agent serves which workspace or channel of a connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub id: PublicationId,
    pub sandbox_id: SandboxId,
    pub connected_account_id: ConnectedAccountId,
    pub agent_id: AgentId,
    pub target: String,
    pub created_at: i64,
}

const ACCOUNT_COLS: &str = "id, sandbox_id, app_id, external_id, label, status, status_reason, scopes, expires_at, info, connected_by, created_at, updated_at, refreshed_at";

fn attempt_from(row: &AnyRow) -> Result<OAuthAttempt, StoreError> {
    Ok(OAuthAttempt {
        nonce: row.try_get("nonce")?,
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        app_id: row.try_get("app_id")?,
        account_id: AccountId::from_trusted(row.try_get("account_id")?),
        session_id: row.try_get("session_id")?,
        verifier: row.try_get("verifier")?,
        redirect_uri: row.try_get("redirect_uri")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        connected_account_id: row.try_get::<Option<String>, _>("connected_account_id")?.map(ConnectedAccountId::from_trusted),
        error: row.try_get("error")?,
    })
}

fn account_from(row: &AnyRow) -> Result<ConnectedAccount, StoreError> {
    let info: String = row.try_get("info")?;
    Ok(ConnectedAccount {
        id: ConnectedAccountId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        app_id: row.try_get("app_id")?,
        external_id: row.try_get("external_id")?,
        label: row.try_get("label")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        scopes: row.try_get("scopes")?,
        expires_at: row.try_get("expires_at")?,
        info: serde_json::from_str(&info).map_err(|e| StoreError::Corrupt(format!("connected account info: {e}")))?,
        connected_by: AccountId::from_trusted(row.try_get("connected_by")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        refreshed_at: row.try_get("refreshed_at")?,
    })
}

fn publication_from(row: &AnyRow) -> Result<Publication, StoreError> {
    Ok(Publication {
        id: PublicationId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        connected_account_id: ConnectedAccountId::from_trusted(row.try_get("connected_account_id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        target: row.try_get("target")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Records a connect attempt (its state nonce, sealed PKCE verifier and redirect URI).
    pub async fn create_oauth_attempt(&self, attempt: &OAuthAttempt) -> Result<(), StoreError> {
        self.write(
            sqlx::query(
                "INSERT INTO oauth_states (nonce, sandbox_id, app_id, account_id, session_id, verifier, redirect_uri, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&attempt.nonce)
            .bind(attempt.sandbox_id.as_str())
            .bind(&attempt.app_id)
            .bind(attempt.account_id.as_str())
            .bind(attempt.session_id.clone())
            .bind(attempt.verifier.clone())
            .bind(&attempt.redirect_uri)
            .bind(attempt.created_at)
            .bind(attempt.expires_at),
        )
        .await?;
        Ok(())
    }

    /// Takes the attempt `nonce` for its callback, once: a second take finds it used.
    pub async fn take_oauth_attempt(&self, nonce: &str) -> Result<Take, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query("SELECT * FROM oauth_states WHERE nonce = $1").bind(nonce).fetch_optional(&mut *tx).await? else {
            return Ok(Take::Unknown);
        };
        let attempt = attempt_from(&row)?;
        if attempt.used_at.is_some() {
            return Ok(Take::AlreadyUsed);
        }
        if attempt.expires_at <= now {
            return Ok(Take::Expired);
        }
        let taken = sqlx::query("UPDATE oauth_states SET used_at = $1 WHERE nonce = $2 AND used_at IS NULL")
            .bind(now)
            .bind(nonce)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if taken.rows_affected() == 0 {
            return Ok(Take::AlreadyUsed);
        }
        Ok(Take::Taken(Box::new(OAuthAttempt { used_at: Some(now), ..attempt })))
    }

    /// Records how a taken attempt ended, so whoever started it can see.
    pub async fn finish_oauth_attempt(&self, nonce: &str, result: Result<&ConnectedAccountId, &str>) -> Result<(), StoreError> {
        let (account, error) = match result {
            Ok(a) => (Some(a.to_string()), None),
            Err(e) => (None, Some(e.to_owned())),
        };
        self.write(
            sqlx::query("UPDATE oauth_states SET connected_account_id = $1, error = $2 WHERE nonce = $3")
                .bind(account)
                .bind(error)
                .bind(nonce),
        )
        .await?;
        Ok(())
    }

    /// A connect attempt, to poll for its outcome.
    pub async fn oauth_attempt(&self, nonce: &str) -> Result<Option<OAuthAttempt>, StoreError> {
        let row = sqlx::query("SELECT * FROM oauth_states WHERE nonce = $1").bind(nonce).fetch_optional(&self.pool).await?;
        row.as_ref().map(attempt_from).transpose()
    }

    /// Stores a connected account, or — when the same app account is connected again to the
    /// sandbox — replaces its tokens and marks it active again. `seal` seals the token set for
    /// the account id (known only here). Returns the account.
    pub async fn upsert_connected_account(
        &self,
        new: NewConnectedAccount,
        seal: impl FnOnce(&ConnectedAccountId) -> String,
    ) -> Result<ConnectedAccount, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT id FROM connected_accounts WHERE sandbox_id = $1 AND app_id = $2 AND external_id = $3")
            .bind(new.sandbox_id.as_str())
            .bind(&new.app_id)
            .bind(&new.external_id)
            .fetch_optional(&mut *tx)
            .await?;
        let info = new.info.to_string();
        let id = match existing {
            Some(row) => {
                let id = ConnectedAccountId::from_trusted(row.try_get("id")?);
                sqlx::query(
                    "UPDATE connected_accounts SET label = $1, status = 'active', status_reason = NULL, scopes = $2, tokens = $3, expires_at = $4,
                     info = $5, connected_by = $6, updated_at = $7, refreshed_at = NULL WHERE id = $8",
                )
                .bind(&new.label)
                .bind(new.scopes.clone())
                .bind(seal(&id))
                .bind(new.expires_at)
                .bind(&info)
                .bind(new.connected_by.as_str())
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = ConnectedAccountId::generate();
                sqlx::query(
                    "INSERT INTO connected_accounts (id, sandbox_id, app_id, external_id, label, status, scopes, tokens, expires_at, info, connected_by, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $11, $11)",
                )
                .bind(id.as_str())
                .bind(new.sandbox_id.as_str())
                .bind(&new.app_id)
                .bind(&new.external_id)
                .bind(&new.label)
                .bind(new.scopes.clone())
                .bind(seal(&id))
                .bind(new.expires_at)
                .bind(&info)
                .bind(new.connected_by.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        tx.commit().await?;
        self.connected_account(&id).await?.ok_or(StoreError::NotFound("connected account"))
    }

    pub async fn connected_account(&self, id: &ConnectedAccountId) -> Result<Option<ConnectedAccount>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {ACCOUNT_COLS} FROM connected_accounts WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_from).transpose()
    }

    /// The sealed token set of an account.
    pub async fn connected_account_tokens(&self, id: &ConnectedAccountId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT tokens FROM connected_accounts WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("tokens")).transpose()?)
    }

    /// A sandbox's connected accounts, by app then label.
    pub async fn connected_accounts(&self, sandbox: &SandboxId, app: Option<&str>) -> Result<Vec<ConnectedAccount>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLS} FROM connected_accounts WHERE sandbox_id = $1 AND ($2 = '' OR app_id = $2) ORDER BY app_id, label, id"
        )))
        .bind(sandbox.as_str())
        .bind(app.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_from).collect()
    }

    /// Active accounts whose token expires before `before` and can be refreshed, soonest first.
    pub async fn accounts_to_refresh(&self, before: i64, limit: u32) -> Result<Vec<ConnectedAccount>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLS} FROM connected_accounts WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at < $1
             ORDER BY expires_at LIMIT $2"
        )))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_from).collect()
    }

    /// Stores refreshed tokens, if the account still has the token set the refresh started from
    /// (`previous`): a concurrent refresh by another replica wins and this one is dropped.
    pub async fn store_refreshed_tokens(
        &self,
        id: &ConnectedAccountId,
        previous: &str,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let done = self
            .write(
                sqlx::query("UPDATE connected_accounts SET tokens = $1, expires_at = $2, refreshed_at = $3, updated_at = $3 WHERE id = $4 AND tokens = $5")
                    .bind(sealed)
                    .bind(expires_at)
                    .bind(now)
                    .bind(id.as_str())
                    .bind(previous),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an account `needs_reauth` with the reason (a refresh failed for good).
    pub async fn mark_needs_reauth(&self, id: &ConnectedAccountId, reason: &str) -> Result<(), StoreError> {
        let now = self.now();
        self.write(
            sqlx::query("UPDATE connected_accounts SET status = 'needs_reauth', status_reason = $1, updated_at = $2 WHERE id = $3")
                .bind(reason)
                .bind(now)
                .bind(id.as_str()),
        )
        .await?;
        Ok(())
    }

    /// Deletes an account with its tokens and publications.
    pub async fn delete_connected_account(&self, id: &ConnectedAccountId) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM publications WHERE connected_account_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
        let gone = sqlx::query("DELETE FROM connected_accounts WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Err(StoreError::NotFound("connected account"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Publishes `agent` on `target` of an account. `Duplicate` if another agent serves it.
    pub async fn create_publication(&self, account: &ConnectedAccount, agent: &AgentId, target: &str) -> Result<Publication, StoreError> {
        let publication = Publication {
            id: PublicationId::generate(),
            sandbox_id: account.sandbox_id.clone(),
            connected_account_id: account.id.clone(),
            agent_id: agent.clone(),
            target: target.to_owned(),
            created_at: self.now(),
        };
        let inserted = self
            .write(
                sqlx::query(
                    "INSERT INTO publications (id, sandbox_id, connected_account_id, agent_id, target, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(publication.id.as_str())
                .bind(publication.sandbox_id.as_str())
                .bind(publication.connected_account_id.as_str())
                .bind(publication.agent_id.as_str())
                .bind(&publication.target)
                .bind(publication.created_at),
            )
            .await;
        match inserted {
            Err(e) if e.is_unique() => Err(StoreError::Duplicate(format!(
                "`{target}` of account {} is already served by an agent; delete that publication first",
                account.id
            ))),
            other => other.map(|_| publication),
        }
    }

    /// Publications of a sandbox for one app, by account then target.
    pub async fn publications(&self, sandbox: &SandboxId, app: &str) -> Result<Vec<Publication>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.* FROM publications p JOIN connected_accounts a ON a.id = p.connected_account_id
             WHERE p.sandbox_id = $1 AND a.app_id = $2 ORDER BY p.connected_account_id, p.target",
        )
        .bind(sandbox.as_str())
        .bind(app)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(publication_from).collect()
    }

    pub async fn publication(&self, id: &PublicationId) -> Result<Option<Publication>, StoreError> {
        let row = sqlx::query("SELECT * FROM publications WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(publication_from).transpose()
    }

    pub async fn delete_publication(&self, id: &PublicationId) -> Result<(), StoreError> {
        let gone = self.write(sqlx::query("DELETE FROM publications WHERE id = $1").bind(id.as_str())).await?;
        if gone.rows_affected() == 0 {
            return Err(StoreError::NotFound("publication"));
        }
        Ok(())
    }
}
