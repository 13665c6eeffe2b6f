//! Outbound webhooks (§12): subscriptions, deliveries and attempts. Events are enqueued as one
//! delivery per matching subscription; a replica claims due deliveries for a lease
//! (`claimed_by`, `claimed_until`) so each attempt is made by one replica, records the attempt,
//! and either finishes the delivery or schedules the next attempt.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AgentId, DeliveryId, SandboxId, SubscriptionId};

use crate::{Store, StoreError};

/// A subscription (the secret stays encrypted in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub sandbox_id: SandboxId,
    /// `None`: every agent of the sandbox.
    pub agent_id: Option<AgentId>,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: i64,
}

/// A claimed delivery, ready to send.
#[derive(Debug, Clone)]
pub struct OutboundDelivery {
    pub id: DeliveryId,
    pub subscription: Subscription,
    pub secret_ciphertext: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub delivery_id: DeliveryId,
    pub event: String,
    pub status: String,
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub excerpt: Option<String>,
}

fn subscription_from(row: &AnyRow) -> Result<Subscription, StoreError> {
    let events: String = row.try_get("events")?;
    Ok(Subscription {
        id: SubscriptionId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        agent_id: row.try_get::<Option<String>, _>("agent_id")?.map(AgentId::from_trusted),
        url: row.try_get("url")?,
        events: serde_json::from_str(&events).map_err(|e| StoreError::Corrupt(format!("subscription events: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}

const SUB_COLS: &str = "id, sandbox_id, agent_id, url, events, created_at";

impl Store {
    pub async fn create_subscription(&self, sub: &Subscription, secret_ciphertext: &str) -> Result<(), StoreError> {
        self.write(
            sqlx::query(
                "INSERT INTO subscriptions (id, sandbox_id, agent_id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(sub.id.as_str())
            .bind(sub.sandbox_id.as_str())
            .bind(sub.agent_id.as_ref().map(|a| a.as_str().to_owned()))
            .bind(&sub.url)
            .bind(serde_json::to_string(&sub.events).expect("strings serialize"))
            .bind(secret_ciphertext)
            .bind(sub.created_at),
        )
        .await?;
        Ok(())
    }

    pub async fn subscription(&self, id: &SubscriptionId) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subscription_from).transpose()
    }

    pub async fn subscriptions(&self, sandbox: &SandboxId) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {SUB_COLS} FROM subscriptions WHERE sandbox_id = $1 ORDER BY id DESC")))
            .bind(sandbox.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subscription_from).collect()
    }

    pub async fn delete_subscription(&self, id: &SubscriptionId) -> Result<(), StoreError> {
        let n = self.write(sqlx::query("DELETE FROM subscriptions WHERE id = $1").bind(id.as_str())).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("subscription"));
        }
        Ok(())
    }

    /// Enqueues `event` for every subscription of the sandbox that wants it (sandbox-wide ones
    /// and the agent's own). Returns how many deliveries were created.
    pub async fn enqueue_notification(
        &self,
        sandbox: &SandboxId,
        agent: &AgentId,
        event: &str,
        payload: &str,
    ) -> Result<usize, StoreError> {
        let subs: Vec<Subscription> = self
            .subscriptions(sandbox)
            .await?
            .into_iter()
            .filter(|s| s.agent_id.as_ref().is_none_or(|a| a == agent) && s.events.iter().any(|e| e == event))
            .collect();
        if subs.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let mut tx = self.write_tx().await?;
        for s in &subs {
            sqlx::query(
                "INSERT INTO notification_deliveries (id, subscription_id, event, payload, status, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
            )
            .bind(DeliveryId::generate().as_str())
            .bind(s.id.as_str())
            .bind(event)
            .bind(payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(subs.len())
    }

    /// Claims up to `limit` due deliveries under `token` (unique per claiming pass) until
    /// `lease_until`, and returns exactly those.
    pub async fn claim_deliveries(&self, node: &str, lease_until: i64, limit: u32) -> Result<Vec<OutboundDelivery>, StoreError> {
        let now = self.now();
        self.write(
            sqlx::query(
                "UPDATE notification_deliveries SET claimed_by = $1, claimed_until = $2
                 WHERE id IN (SELECT id FROM notification_deliveries
                              WHERE status = 'pending' AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3)
                              ORDER BY next_attempt_at LIMIT $4)
                   AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < $3)",
            )
            .bind(node)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit)),
        )
        .await?;
        let rows = sqlx::query(
            "SELECT d.id AS did, d.event, d.payload, d.attempts, s.id, s.sandbox_id, s.agent_id, s.url, s.events, s.created_at, s.secret
             FROM notification_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
             WHERE d.claimed_by = $1 AND d.claimed_until = $2 AND d.status = 'pending'",
        )
        .bind(node)
        .bind(lease_until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboundDelivery {
                    id: DeliveryId::from_trusted(r.try_get("did")?),
                    subscription: subscription_from(r)?,
                    secret_ciphertext: r.try_get("secret")?,
                    event: r.try_get("event")?,
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// Records attempt `attempt` of a claimed delivery. `next` is when to try again (`None`:
    /// the delivery is finished, `delivered` when `ok`, else `failed`).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_attempt(
        &self,
        delivery: &DeliveryId,
        attempt: i64,
        status_code: Option<i64>,
        latency_ms: i64,
        error: Option<&str>,
        excerpt: Option<&str>,
        ok: bool,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO notification_attempts (delivery_id, attempt, at, status_code, latency_ms, error, excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(delivery.as_str())
        .bind(attempt)
        .bind(now)
        .bind(status_code)
        .bind(latency_ms)
        .bind(error)
        .bind(excerpt)
        .execute(&mut *tx)
        .await?;
        let (status, next_at, finished) = match (ok, next) {
            (true, _) => ("delivered", now, Some(now)),
            (false, Some(at)) => ("pending", at, None),
            (false, None) => ("failed", now, Some(now)),
        };
        sqlx::query(
            "UPDATE notification_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, finished_at = $4, claimed_by = NULL, claimed_until = NULL
             WHERE id = $5",
        )
        .bind(status)
        .bind(attempt)
        .bind(next_at)
        .bind(finished)
        .bind(delivery.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The attempts of a subscription's deliveries, newest first.
    pub async fn attempts(&self, sub: &SubscriptionId, limit: u32) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.delivery_id, d.event, d.status, a.attempt, a.at, a.status_code, a.latency_ms, a.error, a.excerpt
             FROM notification_attempts a JOIN notification_deliveries d ON d.id = a.delivery_id
             WHERE d.subscription_id = $1 ORDER BY a.at DESC, a.attempt DESC LIMIT $2",
        )
        .bind(sub.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    delivery_id: DeliveryId::from_trusted(r.try_get("delivery_id")?),
                    event: r.try_get("event")?,
                    status: r.try_get("status")?,
                    attempt: r.try_get("attempt")?,
                    at: r.try_get("at")?,
                    status_code: r.try_get("status_code")?,
                    latency_ms: r.try_get("latency_ms")?,
                    error: r.try_get("error")?,
                    excerpt: r.try_get("excerpt")?,
                })
            })
            .collect()
    }
}
