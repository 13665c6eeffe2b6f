//! Chat channels (§10): each sandbox's bot per platform (non-secret settings as JSON, secrets
//! only as the caller's ciphertext), link codes (only their hash), the chats bound to agents,
//! the platform updates already accepted (dedupe), and the attempts to post replies.
//!
//! A code is redeemed once: the `UPDATE … WHERE used_at IS NULL AND expires_at > now` in the
//! redeeming transaction decides between concurrent redemptions, and the binding is written in
//! that same transaction. An update id is accepted once per bot: its row's primary key decides.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::channel::{ChannelBinding, ChatKind, ChatRef, Platform, Respond};
use steward_core::ids::{AgentId, ChannelBindingId, SandboxId};

use crate::{Store, StoreError};

/// A sandbox's bot on one platform.
#[derive(Debug, Clone)]
pub struct ChannelBot {
    pub sandbox_id: SandboxId,
    pub platform: Platform,
    /// What may be shown (a Discord application id, the Telegram bot's username…).
    pub config: BTreeMap<String, String>,
    /// The secrets, sealed by the caller (JSON of the secret fields before sealing).
    pub sealed_secrets: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored link code (the plaintext is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCode {
    pub agent_id: AgentId,
    pub platform: Platform,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The outcome of asking for a new link code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLinkCode {
    Created(LinkCode),
    /// The agent already holds the maximum of unexpired, unused codes on this platform; the
    /// oldest expires in `retry_after_ms`.
    TooMany {
        retry_after_ms: i64,
    },
}

/// The outcome of redeeming a code sent to a sandbox's bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The chat is bound (a chat bound before to another of the sandbox's agents moves).
    Bound(ChannelBinding),
    /// No such code for this sandbox's bot on this platform (never issued, or another
    /// sandbox's: the two are not told apart).
    Unknown,
    /// Redeemed before.
    Used,
    Expired,
    /// The code's agent was deleted or archived.
    AgentGone,
}

/// Where an agent's newest link code stands on a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    /// No code was ever issued.
    None,
    /// An unexpired, unused code exists.
    Pending,
    /// The newest code expired unused (or was used, for a chat unlinked since).
    Expired,
}

/// One attempt to post a message to a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDelivery {
    pub sandbox_id: SandboxId,
    pub agent_id: AgentId,
    pub platform: Platform,
    pub chat_id: String,
    /// 1 for the first try of a message, then 2, 3… for its retries.
    pub attempt: i64,
    pub ok: bool,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// Set by the store when recording.
    pub created_at: i64,
}

const BINDING_COLS: &str = "id, sandbox_id, agent_id, platform, chat_id, chat_kind, chat_title, user_id, user_name, respond, linked_at";

fn platform_from(raw: &str) -> Result<Platform, StoreError> {
    Platform::parse(raw, "platform").map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn binding_from(row: &AnyRow) -> Result<ChannelBinding, StoreError> {
    Ok(ChannelBinding {
        id: ChannelBindingId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        platform: platform_from(&row.try_get::<String, _>("platform")?)?,
        chat_id: row.try_get("chat_id")?,
        chat_kind: ChatKind::from_stored(&row.try_get::<String, _>("chat_kind")?),
        chat_title: row.try_get("chat_title")?,
        user_id: row.try_get("user_id")?,
        user_name: row.try_get("user_name")?,
        respond: Respond::from_stored(&row.try_get::<String, _>("respond")?),
        linked_at: row.try_get("linked_at")?,
    })
}

impl Store {
    /// Creates or replaces the sandbox's bot on `platform`.
    pub async fn put_channel_bot(
        &self,
        sandbox: &SandboxId,
        platform: Platform,
        config: &BTreeMap<String, String>,
        sealed_secrets: &str,
    ) -> Result<ChannelBot, StoreError> {
        let now = self.now();
        let config_json = serde_json::to_string(config).expect("a string map serialises");
        self.write(
            sqlx::query(
                "INSERT INTO channel_bots (sandbox_id, platform, config, sealed_secrets, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (sandbox_id, platform) DO UPDATE SET config = $3, sealed_secrets = $4, updated_at = $5",
            )
            .bind(sandbox.as_str())
            .bind(platform.as_str())
            .bind(config_json)
            .bind(sealed_secrets)
            .bind(now),
        )
        .await?;
        self.channel_bot(sandbox, platform).await?.ok_or(StoreError::NotFound("channel bot"))
    }

    /// The sandbox's bot on `platform`, if configured.
    pub async fn channel_bot(&self, sandbox: &SandboxId, platform: Platform) -> Result<Option<ChannelBot>, StoreError> {
        let row =
            sqlx::query("SELECT config, sealed_secrets, created_at, updated_at FROM channel_bots WHERE sandbox_id = $1 AND platform = $2")
                .bind(sandbox.as_str())
                .bind(platform.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let config: String = row.try_get("config")?;
        Ok(Some(ChannelBot {
            sandbox_id: sandbox.clone(),
            platform,
            config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("channel bot config: {e}")))?,
            sealed_secrets: row.try_get("sealed_secrets")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    /// Removes the sandbox's bot on `platform` (bindings stay, answering again once a bot is
    /// configured). Whether there was one.
    pub async fn delete_channel_bot(&self, sandbox: &SandboxId, platform: Platform) -> Result<bool, StoreError> {
        let res = self
            .write(
                sqlx::query("DELETE FROM channel_bots WHERE sandbox_id = $1 AND platform = $2")
                    .bind(sandbox.as_str())
                    .bind(platform.as_str()),
            )
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Stores a new link code (its hash) for `agent` on `platform`, valid for `ttl_ms`, unless
    /// the agent holds `max_outstanding` unexpired, unused codes there already (counted in the
    /// same transaction, so concurrent requests cannot exceed it).
    pub async fn create_link_code(
        &self,
        sandbox: &SandboxId,
        agent: &AgentId,
        platform: Platform,
        code_hash: &str,
        ttl_ms: i64,
        max_outstanding: i64,
    ) -> Result<NewLinkCode, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(expires_at) AS first FROM channel_link_codes
             WHERE agent_id = $1 AND platform = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(agent.as_str())
        .bind(platform.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let n: i64 = row.try_get("n")?;
        if n >= max_outstanding {
            let first: Option<i64> = row.try_get("first")?;
            tx.rollback().await?;
            return Ok(NewLinkCode::TooMany { retry_after_ms: first.map_or(0, |f| f - now).max(0) });
        }
        // Codes that can no longer be redeemed are of no use after a day (status reads the newest).
        sqlx::query("DELETE FROM channel_link_codes WHERE agent_id = $1 AND platform = $2 AND expires_at < $3")
            .bind(agent.as_str())
            .bind(platform.as_str())
            .bind(now - 24 * 3600 * 1000)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO channel_link_codes (code_hash, sandbox_id, agent_id, platform, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(code_hash)
        .bind(sandbox.as_str())
        .bind(agent.as_str())
        .bind(platform.as_str())
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(NewLinkCode::Created(LinkCode { agent_id: agent.clone(), platform, created_at: now, expires_at: now + ttl_ms }))
    }

    /// Where `agent`'s newest code on `platform` stands.
    pub async fn link_code_state(&self, agent: &AgentId, platform: Platform) -> Result<CodeState, StoreError> {
        let row = sqlx::query(
            "SELECT expires_at, used_at FROM channel_link_codes WHERE agent_id = $1 AND platform = $2
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(agent.as_str())
        .bind(platform.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(CodeState::None) };
        let expires_at: i64 = row.try_get("expires_at")?;
        let used_at: Option<i64> = row.try_get("used_at")?;
        Ok(if used_at.is_none() && expires_at > self.now() { CodeState::Pending } else { CodeState::Expired })
    }

    /// Redeems the code with hash `code_hash` sent to `sandbox`'s bot on `platform` from
    /// `chat`: marks it used and binds the chat to the code's agent, in one transaction.
    pub async fn redeem_link_code(
        &self,
        sandbox: &SandboxId,
        platform: Platform,
        code_hash: &str,
        chat: &ChatRef,
    ) -> Result<Redemption, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT agent_id, expires_at, used_at FROM channel_link_codes WHERE code_hash = $1 AND sandbox_id = $2 AND platform = $3",
        )
        .bind(code_hash)
        .bind(sandbox.as_str())
        .bind(platform.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Redemption::Unknown);
        };
        let agent = AgentId::from_trusted(row.try_get("agent_id")?);
        let used_at: Option<i64> = row.try_get("used_at")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let verdict = if used_at.is_some() {
            Some(Redemption::Used)
        } else if expires_at <= now {
            Some(Redemption::Expired)
        } else {
            let live = sqlx::query("SELECT 1 AS one FROM agents WHERE id = $1 AND archived_at IS NULL")
                .bind(agent.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            live.is_none().then_some(Redemption::AgentGone)
        };
        if let Some(v) = verdict {
            tx.rollback().await?;
            return Ok(v);
        }
        let binding = ChannelBinding {
            id: ChannelBindingId::generate(),
            sandbox_id: sandbox.clone(),
            agent_id: agent,
            platform,
            chat_id: chat.chat_id.clone(),
            chat_kind: chat.chat_kind,
            chat_title: chat.chat_title.clone(),
            user_id: chat.user_id.clone(),
            user_name: chat.user_name.clone(),
            respond: Respond::Mentions,
            linked_at: now,
        };
        // The guard decides between concurrent redemptions of one code (PostgreSQL re-checks
        // the row after the other's commit; SQLite has one writer).
        let n = sqlx::query(
            "UPDATE channel_link_codes SET used_at = $1, binding_id = $2 WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(binding.id.as_str())
        .bind(code_hash)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Redemption::Used);
        }
        sqlx::query("DELETE FROM channel_bindings WHERE sandbox_id = $1 AND platform = $2 AND chat_id = $3")
            .bind(sandbox.as_str())
            .bind(platform.as_str())
            .bind(&binding.chat_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO channel_bindings (id, sandbox_id, agent_id, platform, chat_id, chat_kind, chat_title, user_id, user_name, respond, linked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(binding.id.as_str())
        .bind(sandbox.as_str())
        .bind(binding.agent_id.as_str())
        .bind(platform.as_str())
        .bind(&binding.chat_id)
        .bind(binding.chat_kind.as_str())
        .bind(binding.chat_title.clone())
        .bind(&binding.user_id)
        .bind(binding.user_name.clone())
        .bind(binding.respond.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Redemption::Bound(binding))
    }

    /// The binding of one chat of `sandbox`'s bot on `platform`.
    pub async fn channel_binding_for_chat(
        &self,
        sandbox: &SandboxId,
        platform: Platform,
        chat_id: &str,
    ) -> Result<Option<ChannelBinding>, StoreError> {
        let sql = format!("SELECT {BINDING_COLS} FROM channel_bindings WHERE sandbox_id = $1 AND platform = $2 AND chat_id = $3");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sandbox.as_str())
            .bind(platform.as_str())
            .bind(chat_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(binding_from).transpose()
    }

    /// An agent's bindings (on one platform, or all), oldest first.
    pub async fn channel_bindings(&self, agent: &AgentId, platform: Option<Platform>) -> Result<Vec<ChannelBinding>, StoreError> {
        let filter = if platform.is_some() { "AND platform = $2" } else { "" };
        let sql = format!("SELECT {BINDING_COLS} FROM channel_bindings WHERE agent_id = $1 {filter} ORDER BY linked_at, id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(agent.as_str());
        if let Some(p) = platform {
            q = q.bind(p.as_str());
        }
        q.fetch_all(&self.pool).await?.iter().map(binding_from).collect()
    }

    /// Sets when a bound group or channel is answered.
    pub async fn set_binding_respond(&self, id: &ChannelBindingId, respond: Respond) -> Result<bool, StoreError> {
        let res = self
            .write(sqlx::query("UPDATE channel_bindings SET respond = $1 WHERE id = $2").bind(respond.as_str()).bind(id.as_str()))
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Removes `agent`'s bindings on `platform` (only the one of `chat_id`, when given); how many.
    pub async fn delete_channel_bindings(&self, agent: &AgentId, platform: Platform, chat_id: Option<&str>) -> Result<u64, StoreError> {
        let filter = if chat_id.is_some() { "AND chat_id = $3" } else { "" };
        let sql = format!("DELETE FROM channel_bindings WHERE agent_id = $1 AND platform = $2 {filter}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(agent.as_str()).bind(platform.as_str());
        if let Some(c) = chat_id {
            q = q.bind(c);
        }
        Ok(self.write(q).await?.rows_affected())
    }

    /// Records that `sandbox`'s bot on `platform` accepted the update `update_id`; `false` when
    /// it had been accepted before (a redelivery: do nothing). Rows older than `keep_ms` of
    /// this bot are deleted in the same transaction (platforms redeliver within hours).
    pub async fn claim_channel_update(
        &self,
        sandbox: &SandboxId,
        platform: Platform,
        update_id: &str,
        keep_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM channel_updates WHERE sandbox_id = $1 AND platform = $2 AND received_at < $3")
            .bind(sandbox.as_str())
            .bind(platform.as_str())
            .bind(now - keep_ms)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "INSERT INTO channel_updates (sandbox_id, platform, update_id, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sandbox_id, platform, update_id) DO NOTHING",
        )
        .bind(sandbox.as_str())
        .bind(platform.as_str())
        .bind(update_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n.rows_affected() == 1)
    }

    /// Records one attempt to post to a chat.
    pub async fn record_channel_delivery(&self, d: &ChannelDelivery) -> Result<(), StoreError> {
        self.write(
            sqlx::query(
                "INSERT INTO channel_deliveries (id, sandbox_id, agent_id, platform, chat_id, attempt, ok, status_code, error, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(steward_core::ids::fresh("chd_"))
            .bind(d.sandbox_id.as_str())
            .bind(d.agent_id.as_str())
            .bind(d.platform.as_str())
            .bind(&d.chat_id)
            .bind(d.attempt)
            .bind(i64::from(d.ok))
            .bind(d.status_code)
            .bind(d.error.clone())
            .bind(self.now()),
        )
        .await?;
        Ok(())
    }

    /// `agent`'s delivery attempts on `platform`, newest first (at most `limit`).
    pub async fn channel_deliveries(&self, agent: &AgentId, platform: Platform, limit: i64) -> Result<Vec<ChannelDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT sandbox_id, chat_id, attempt, ok, status_code, error, created_at FROM channel_deliveries
             WHERE agent_id = $1 AND platform = $2 ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(agent.as_str())
        .bind(platform.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ChannelDelivery {
                    sandbox_id: SandboxId::from_trusted(r.try_get("sandbox_id")?),
                    agent_id: agent.clone(),
                    platform,
                    chat_id: r.try_get("chat_id")?,
                    attempt: r.try_get("attempt")?,
                    ok: r.try_get::<i64, _>("ok")? != 0,
                    status_code: r.try_get("status_code")?,
                    error: r.try_get("error")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// `agent`'s newest failed delivery attempt on `platform` (on any platform with `None`).
    pub async fn last_channel_failure(&self, agent: &AgentId, platform: Option<Platform>) -> Result<Option<ChannelDelivery>, StoreError> {
        let filter = if platform.is_some() { "AND platform = $2" } else { "" };
        let sql = format!(
            "SELECT sandbox_id, platform, chat_id, attempt, status_code, error, created_at FROM channel_deliveries
             WHERE agent_id = $1 {filter} AND ok = 0 ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(agent.as_str());
        if let Some(p) = platform {
            q = q.bind(p.as_str());
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.map(|r| {
            Ok(ChannelDelivery {
                sandbox_id: SandboxId::from_trusted(r.try_get("sandbox_id")?),
                agent_id: agent.clone(),
                platform: platform_from(&r.try_get::<String, _>("platform")?)?,
                chat_id: r.try_get("chat_id")?,
                attempt: r.try_get("attempt")?,
                ok: false,
                status_code: r.try_get("status_code")?,
                error: r.try_get("error")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Every bot on `platform`, in every sandbox (the pollers' supervisor reads them).
    pub async fn channel_bots_of(&self, platform: Platform) -> Result<Vec<ChannelBot>, StoreError> {
        let rows = sqlx::query(
            "SELECT sandbox_id, config, sealed_secrets, created_at, updated_at FROM channel_bots WHERE platform = $1 ORDER BY sandbox_id",
        )
        .bind(platform.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let config: String = row.try_get("config")?;
                Ok(ChannelBot {
                    sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
                    platform,
                    config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("channel bot config: {e}")))?,
                    sealed_secrets: row.try_get("sealed_secrets")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Takes or renews the poller lease of `sandbox`'s bot on `platform` for `holder`, until
    /// `ttl_ms` from now: it succeeds when the lease is free, expired or already `holder`'s.
    /// Returns the offset to poll from, or `None` when another holder has it.
    pub async fn take_channel_lease(
        &self,
        sandbox: &SandboxId,
        platform: Platform,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO channel_leases (sandbox_id, platform, holder, expires_at, next_offset) VALUES ($1, $2, $3, $4, 0)
             ON CONFLICT (sandbox_id, platform) DO NOTHING",
        )
        .bind(sandbox.as_str())
        .bind(platform.as_str())
        .bind(holder)
        .bind(now + ttl_ms)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "UPDATE channel_leases SET holder = $1, expires_at = $2 WHERE sandbox_id = $3 AND platform = $4 AND (holder = $1 OR expires_at <= $5)",
        )
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(sandbox.as_str())
        .bind(platform.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query("SELECT next_offset FROM channel_leases WHERE sandbox_id = $1 AND platform = $2")
            .bind(sandbox.as_str())
            .bind(platform.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let offset: i64 = row.try_get("next_offset")?;
        tx.commit().await?;
        Ok(Some(offset))
    }

    /// Moves the poll offset forward, if `holder` still holds the lease; whether it did.
    pub async fn set_channel_offset(&self, sandbox: &SandboxId, platform: Platform, holder: &str, offset: i64) -> Result<bool, StoreError> {
        let res = self
            .write(
                sqlx::query("UPDATE channel_leases SET next_offset = $1 WHERE sandbox_id = $2 AND platform = $3 AND holder = $4")
                    .bind(offset)
                    .bind(sandbox.as_str())
                    .bind(platform.as_str())
                    .bind(holder),
            )
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Gives the lease up (on shutdown or when the bot stops polling), so another replica takes
    /// over without waiting for it to expire.
    pub async fn release_channel_lease(&self, sandbox: &SandboxId, platform: Platform, holder: &str) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE channel_leases SET expires_at = 0 WHERE sandbox_id = $1 AND platform = $2 AND holder = $3")
                .bind(sandbox.as_str())
                .bind(platform.as_str())
                .bind(holder),
        )
        .await?;
        Ok(())
    }
}
