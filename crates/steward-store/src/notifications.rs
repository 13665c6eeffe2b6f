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

/// The error an attempt carries from when it is sent until its answer is recorded; what the
/// history shows for an attempt whose replica died in between.
pub const UNFINISHED_ATTEMPT: &str =
    "no answer recorded: the replica sending this attempt stopped before it finished; the delivery was sent again";

/// An outbound notification to enqueue: `event` (`run.completed`, …) of `agent`, for every
/// subscription of `sandbox_id` that wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub sandbox_id: SandboxId,
    pub agent_id: AgentId,
    pub event: String,
    pub payload: serde_json::Value,
}

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
    pub async fn enqueue_notification(&self, draft: &Notification) -> Result<usize, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let n = Self::enqueue_in(&mut tx, draft, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// [`Self::enqueue_notification`] inside `tx`: the outbox rows commit with whatever caused
    /// them (a run's terminal event), or not at all.
    pub(crate) async fn enqueue_in(tx: &mut crate::WriteTx, draft: &Notification, now: i64) -> Result<usize, StoreError> {
        let subs = Self::subscriptions_in(tx, &draft.sandbox_id).await?;
        Self::enqueue_to(tx, &subs, draft, now).await
    }

    /// The subscriptions of `sandbox`, read inside `tx` (a batch of run ends reads them once
    /// per sandbox).
    pub(crate) async fn subscriptions_in(tx: &mut crate::WriteTx, sandbox: &SandboxId) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {SUB_COLS} FROM subscriptions WHERE sandbox_id = $1 ORDER BY id")))
            .bind(sandbox.as_str())
            .fetch_all(&mut **tx)
            .await?;
        rows.iter().map(subscription_from).collect()
    }

    /// Enqueues `draft` for those of `subs` (its sandbox's subscriptions) that want it.
    pub(crate) async fn enqueue_to(
        tx: &mut crate::WriteTx,
        subs: &[Subscription],
        draft: &Notification,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for s in subs {
            if !(s.agent_id.as_ref().is_none_or(|a| *a == draft.agent_id) && s.events.contains(&draft.event)) {
                continue;
            }
            sqlx::query(
                "INSERT INTO notification_deliveries (id, subscription_id, event, payload, status, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
            )
            .bind(DeliveryId::generate().as_str())
            .bind(s.id.as_str())
            .bind(&draft.event)
            .bind(draft.payload.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            n += 1;
        }
        Ok(n)
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
                              ORDER BY next_attempt_at, id LIMIT $4)
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

    /// Records attempt number `attempts + 1` of `delivery` as started, before it is sent, and
    /// returns its number. If this replica dies before [`Self::record_attempt`], the history
    /// still shows the attempt (with no answer), and the survivor that re-sends after the lease
    /// records the next number.
    pub async fn begin_attempt(&self, delivery: &DeliveryId) -> Result<i64, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("UPDATE notification_deliveries SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts")
            .bind(delivery.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("delivery"))?;
        let attempt: i64 = row.try_get("attempts")?;
        sqlx::query(
            "INSERT INTO notification_attempts (delivery_id, attempt, at, status_code, latency_ms, error, excerpt) VALUES ($1, $2, $3, NULL, 0, $4, NULL)",
        )
        .bind(delivery.as_str())
        .bind(attempt)
        .bind(now)
        .bind(UNFINISHED_ATTEMPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(attempt)
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
        // The row `begin_attempt` wrote gets the answer; `at` stays when it was sent.
        sqlx::query(
            "UPDATE notification_attempts SET status_code = $1, latency_ms = $2, error = $3, excerpt = $4 WHERE delivery_id = $5 AND attempt = $6",
        )
        .bind(status_code)
        .bind(latency_ms)
        .bind(error)
        .bind(excerpt)
        .bind(delivery.as_str())
        .bind(attempt)
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
