//! Webhook triggers (§11) and their deliveries. A delivery is accepted in one transaction with
//! the session and run it starts, keyed by `(trigger_id, delivery_id)`: a sender's retry of the
//! same delivery finds the first one and starts nothing. A legacy-signed delivery (whose
//! signature does not cover the delivery id) also records its signature in that transaction, so
//! the signature starts at most one run whatever delivery ids it is re-sent with.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AgentId, RunId, SandboxId, SessionId, TriggerId};
use steward_core::session::{Run, Session};
use steward_core::trigger::{Trigger, TriggerConfig, TriggerState};

use crate::cache::Stale;
use crate::{NewSession, Store, StoreError};

const COLS: &str =
    "id, sandbox_id, agent_id, config, state, resume_at, last_fired_at, fire_count, last_error, last_error_at, created_at, updated_at";

fn trigger_from(row: &AnyRow) -> Result<Trigger, StoreError> {
    let config: String = row.try_get("config")?;
    let state: String = row.try_get("state")?;
    Ok(Trigger {
        id: TriggerId::from_trusted(row.try_get("id")?),
        sandbox_id: SandboxId::from_trusted(row.try_get("sandbox_id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("trigger config: {e}")))?,
        state: TriggerState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("trigger state `{state}`")))?,
        resume_at: row.try_get("resume_at")?,
        last_fired_at: row.try_get("last_fired_at")?,
        fire_count: row.try_get("fire_count")?,
        last_error: row.try_get("last_error")?,
        last_error_at: row.try_get("last_error_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Most deliveries committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// A delivery for the batch writer.
struct DeliveryJob {
    trigger_id: TriggerId,
    delivery_id: String,
    payload: String,
    new: NewSession,
    input: String,
    once: Option<SignatureOnce>,
}

/// A delivery waiting for the batch writer.
pub(crate) struct PendingDelivery {
    job: DeliveryJob,
    reply: tokio::sync::oneshot::Sender<Result<Delivery, StoreError>>,
}

/// A legacy signature that may be accepted only once: the key it is recorded under and until
/// when it is remembered (unix ms; past the end of its timestamp window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureOnce {
    pub key: String,
    pub expires_at: i64,
}

/// What accepting a delivery did.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A new delivery: the session and run it started.
    Started { session: Box<Session>, run: Box<Run> },
    /// The same delivery id was accepted before; nothing new was started.
    Duplicate { session_id: SessionId, run_id: String },
    /// Its signature was already used for another delivery id (a replay); nothing was started.
    Replayed,
}

impl Store {
    /// Creates a trigger with its encrypted secret. `Duplicate` if the agent has one of that name.
    pub async fn create_trigger(
        &self,
        id: &TriggerId,
        sandbox: &SandboxId,
        agent: &AgentId,
        config: TriggerConfig,
        secret_ciphertext: &str,
    ) -> Result<Trigger, StoreError> {
        let now = self.now();
        let res = self
            .write(
                sqlx::query(
                    "INSERT INTO triggers (id, sandbox_id, agent_id, name, config, secret, state, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)",
                )
                .bind(id.as_str())
                .bind(sandbox.as_str())
                .bind(agent.as_str())
                .bind(&config.name)
                .bind(serde_json::to_string(&config).expect("a trigger config serializes"))
                .bind(secret_ciphertext)
                .bind(now),
            )
            .await;
        match res {
            Err(e) if e.is_unique() => {
                return Err(StoreError::Duplicate(format!("this agent already has a trigger named `{}`; pick another name", config.name)));
            }
            other => other?,
        };
        Ok(Trigger {
            id: id.clone(),
            sandbox_id: sandbox.clone(),
            agent_id: agent.clone(),
            config,
            state: TriggerState::Active,
            resume_at: None,
            last_fired_at: None,
            fire_count: 0,
            last_error: None,
            last_error_at: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// A trigger with its sealed secret, in one read (the inbound delivery path), through the
    /// cache: updating, pausing/resuming and deleting it (or its agent, or its sandbox)
    /// invalidate the entry. Its counters (`fire_count`, `last_fired_at`, `last_error`,
    /// `last_error_at`) are as of when it was cached: deliveries write them every time and
    /// never read them, and invalidating on them would empty the entry on every delivery. Read
    /// [`Self::trigger`] for them.
    pub async fn trigger_with_secret(&self, id: &TriggerId) -> Result<Option<(Trigger, String)>, StoreError> {
        let read = async {
            let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS}, secret FROM triggers WHERE id = $1")))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(|r| Ok((trigger_from(r)?, r.try_get("secret")?))).transpose()
        };
        self.read_through(&self.caches.triggers, id.clone(), read).await
    }

    pub async fn trigger(&self, id: &TriggerId) -> Result<Option<Trigger>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM triggers WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(trigger_from).transpose()
    }

    /// An agent's triggers, by name.
    pub async fn triggers_of(&self, agent: &AgentId) -> Result<Vec<Trigger>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {COLS} FROM triggers WHERE agent_id = $1 ORDER BY name")))
            .bind(agent.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(trigger_from).collect()
    }

    /// Replaces the configuration if nobody changed the trigger since `current` was read.
    pub async fn update_trigger(&self, current: &Trigger, config: TriggerConfig) -> Result<Trigger, StoreError> {
        let now = self.now().max(current.updated_at + 1);
        let n = self
            .write_invalidating(
                sqlx::query("UPDATE triggers SET name = $1, config = $2, updated_at = $3 WHERE id = $4 AND updated_at = $5")
                    .bind(&config.name)
                    .bind(serde_json::to_string(&config).expect("a trigger config serializes"))
                    .bind(now)
                    .bind(current.id.as_str())
                    .bind(current.updated_at),
                &[Stale::Trigger(current.id.clone())],
            )
            .await
            .map_err(|e| {
                if e.is_unique() { StoreError::Duplicate(format!("this agent already has a trigger named `{}`", config.name)) } else { e }
            })?;
        if n.rows_affected() == 0 {
            return Err(StoreError::Stale(format!("trigger `{}` changed meanwhile or was deleted; read it again and retry", current.id)));
        }
        Ok(Trigger { config, updated_at: now, ..current.clone() })
    }

    /// Pauses (optionally until `resume_at`) or resumes a trigger.
    pub async fn set_trigger_state(&self, id: &TriggerId, state: TriggerState, resume_at: Option<i64>) -> Result<Trigger, StoreError> {
        let now = self.now();
        let n = self
            .write_invalidating(
                sqlx::query("UPDATE triggers SET state = $1, resume_at = $2, updated_at = $3 WHERE id = $4")
                    .bind(state.as_str())
                    .bind(resume_at)
                    .bind(now)
                    .bind(id.as_str()),
                &[Stale::Trigger(id.clone())],
            )
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("trigger"));
        }
        self.trigger(id).await?.ok_or(StoreError::NotFound("trigger"))
    }

    pub async fn delete_trigger(&self, id: &TriggerId) -> Result<(), StoreError> {
        let n = self
            .write_invalidating(sqlx::query("DELETE FROM triggers WHERE id = $1").bind(id.as_str()), &[Stale::Trigger(id.clone())])
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound("trigger"));
        }
        Ok(())
    }

    /// Records why the last delivery was refused (bad signature, paused, template error…).
    pub async fn record_trigger_error(&self, id: &TriggerId, error: &str) -> Result<(), StoreError> {
        let now = self.now();
        self.write(
            sqlx::query("UPDATE triggers SET last_error = $1, last_error_at = $2 WHERE id = $3").bind(error).bind(now).bind(id.as_str()),
        )
        .await?;
        Ok(())
    }

    /// Accepts delivery `delivery_id` of `trigger`: records it, creates the session with its
    /// first run, and counts the fire, all in one transaction. A delivery id seen before starts
    /// nothing. With `once` (a legacy signature) the signature is recorded in that same
    /// transaction, and a signature already recorded for another delivery id is a
    /// [`Delivery::Replayed`]: the unique key decides between racing replicas. Concurrent calls
    /// are *group-committed*: one writer task takes every delivery waiting at that moment (up to
    /// [`MAX_BATCH`]) and commits them in one transaction, so throughput does not pay one commit
    /// per delivery. The answer comes after the commit.
    pub async fn accept_delivery(
        &self,
        trigger: &Trigger,
        delivery_id: &str,
        once: Option<SignatureOnce>,
        payload: &str,
        new: NewSession,
        input: &serde_json::Value,
    ) -> Result<Delivery, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = DeliveryJob {
            trigger_id: trigger.id.clone(),
            delivery_id: delivery_id.to_owned(),
            payload: payload.to_owned(),
            new,
            input: input.to_string(),
            once,
        };
        self.delivery_batcher().send(PendingDelivery { job, reply }).map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// The delivery id a legacy signature was first accepted for, if it was (a cheap early
    /// refusal of replays; `accept_delivery` decides).
    pub async fn signature_used_for(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT delivery_id FROM trigger_signatures WHERE signature_key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("delivery_id")).transpose()?)
    }

    /// Deletes at most [`MAX_BATCH`] recorded signatures whose window has passed; returns how
    /// many. Called before every batch that records signatures, so deletions keep pace with
    /// insertions without one unbounded statement.
    pub async fn forget_expired_signatures(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let n = Self::forget_expired_in(&mut tx, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// [`Self::forget_expired_signatures`] inside the batch's own transaction: a second write
    /// transaction per batch would queue for SQLite's one writer behind every run's writes.
    async fn forget_expired_in(tx: &mut crate::WriteTx, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM trigger_signatures WHERE signature_key IN
             (SELECT signature_key FROM trigger_signatures WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(now)
        .bind(MAX_BATCH as i64)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    fn delivery_batcher(&self) -> &tokio::sync::mpsc::UnboundedSender<PendingDelivery> {
        self.deliveries.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            // The task's handle has its own (empty) batcher cell: no cycle, so the task ends
            // when the last user handle (and with it the sender) is dropped.
            let store = Store { deliveries: Default::default(), run_writes: Default::default(), ..self.clone() };
            tokio::spawn(store.run_delivery_batcher(rx));
            tx
        })
    }

    async fn run_delivery_batcher(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<PendingDelivery>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // A deterministic lock order across replicas (PostgreSQL): no deadlocks between batches.
            batch.sort_by(|a, b| (&a.job.trigger_id, &a.job.delivery_id).cmp(&(&b.job.trigger_id, &b.job.delivery_id)));
            let (replies, jobs): (Vec<_>, Vec<_>) = batch.drain(..).map(|p| (p.reply, p.job)).unzip();
            match self.accept_batch(jobs).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a batch of webhook deliveries failed; none was accepted");
                    for reply in replies {
                        let _ = reply.send(Err(e.for_batch_member()));
                    }
                }
            }
        }
    }

    /// Records the jobs' legacy signatures and says, per job, whether it replays a signature
    /// already used for another delivery id (earlier, earlier in this batch, or by another
    /// replica, whose insert the unique key makes us wait for). In key order: every batch takes
    /// these locks in one order, before the delivery rows'.
    async fn claim_signatures(tx: &mut crate::WriteTx, jobs: &[DeliveryJob]) -> Result<Vec<bool>, StoreError> {
        let mut replayed = vec![false; jobs.len()];
        let mut signed: Vec<(usize, &SignatureOnce)> = jobs.iter().enumerate().filter_map(|(i, j)| Some((i, j.once.as_ref()?))).collect();
        signed.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        for (i, once) in signed {
            let inserted = sqlx::query(
                "INSERT INTO trigger_signatures (signature_key, delivery_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (signature_key) DO NOTHING",
            )
            .bind(&once.key)
            .bind(&jobs[i].delivery_id)
            .bind(once.expires_at)
            .execute(&mut **tx)
            .await?;
            if inserted.rows_affected() == 0 {
                let row = sqlx::query("SELECT delivery_id FROM trigger_signatures WHERE signature_key = $1")
                    .bind(&once.key)
                    .fetch_one(&mut **tx)
                    .await?;
                // The same delivery re-sent with its own signature is a retry (a duplicate), not a replay.
                replayed[i] = row.try_get::<String, _>("delivery_id")? != jobs[i].delivery_id;
            }
        }
        Ok(replayed)
    }

    async fn accept_batch(&self, jobs: Vec<DeliveryJob>) -> Result<Vec<Delivery>, StoreError> {
        let mut tx = self.write_tx().await?;
        let now = self.now();
        // In the batch's transaction, so deletions keep pace with the signatures batches record.
        if jobs.iter().any(|j| j.once.is_some()) {
            Self::forget_expired_in(&mut tx, now).await?;
        }
        let replayed = Self::claim_signatures(&mut tx, &jobs).await?;
        let mut results = Vec::with_capacity(jobs.len());
        let mut fired: std::collections::BTreeMap<TriggerId, i64> = Default::default();
        for (job, replayed) in jobs.into_iter().zip(replayed) {
            if replayed {
                results.push(Delivery::Replayed);
                continue;
            }
            let DeliveryJob { trigger_id, delivery_id, payload, new, input, .. } = job;
            let (session_id, run_id) = (SessionId::generate(), RunId::generate());
            // The delivery row first: a duplicate (an earlier delivery, one earlier in this batch,
            // or another replica's committed twin) inserts nothing and starts nothing.
            let inserted = sqlx::query(
                "INSERT INTO trigger_deliveries (trigger_id, delivery_id, session_id, run_id, payload, received_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (trigger_id, delivery_id) DO NOTHING",
            )
            .bind(trigger_id.as_str())
            .bind(&delivery_id)
            .bind(session_id.as_str())
            .bind(run_id.as_str())
            .bind(&payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                let row = sqlx::query("SELECT session_id, run_id FROM trigger_deliveries WHERE trigger_id = $1 AND delivery_id = $2")
                    .bind(trigger_id.as_str())
                    .bind(&delivery_id)
                    .fetch_one(&mut *tx)
                    .await?;
                results.push(Delivery::Duplicate {
                    session_id: SessionId::from_trusted(row.try_get("session_id")?),
                    run_id: row.try_get("run_id")?,
                });
                continue;
            }
            let input: serde_json::Value = serde_json::from_str(&input).map_err(|e| StoreError::Corrupt(format!("run input: {e}")))?;
            let (session, run) = Self::create_session_with_ids(&mut tx, new, session_id, run_id, Some(&input), None, now).await?;
            let run = run.expect("a session created with input has a run");
            *fired.entry(trigger_id).or_default() += 1;
            results.push(Delivery::Started { session: Box::new(session), run: Box::new(run) });
        }
        // One counter update per trigger per batch, not per delivery.
        for (trigger_id, n) in fired {
            sqlx::query("UPDATE triggers SET last_fired_at = $1, fire_count = fire_count + $2 WHERE id = $3")
                .bind(now)
                .bind(n)
                .bind(trigger_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(results)
    }

    /// The raw payload of a delivery (kept with the run).
    pub async fn delivery_payload(&self, trigger: &TriggerId, delivery_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT payload FROM trigger_deliveries WHERE trigger_id = $1 AND delivery_id = $2")
            .bind(trigger.as_str())
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("payload")).transpose()?)
    }
}
