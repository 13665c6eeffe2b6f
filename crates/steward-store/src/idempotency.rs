//! Idempotency records (§2): the first response to a mutating POST, replayed to retries that
//! carry the same `Idempotency-Key`.
//!
//! An in-flight record has an `owner` (the handling process: node id and incarnation) and a
//! `lease_until` the owner renews while the request runs. A retry that finds the record in flight
//! waits (409 with the time left); once the lease has ended — the owner died — the retry takes the
//! record over and runs the request again, unless the request already recorded what it created
//! (`created_ref`, written in the transaction that created it), in which case the retry answers
//! with that. So a dead replica never leaves a key stuck.

use sqlx::Row;

use crate::{Store, StoreError};

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What to do with a request carrying an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First time: run it, then call `idempotency_finish` (or `idempotency_abandon`).
    Proceed,
    /// The record was in flight under a lease that ended (its owner died): it is ours now. Run
    /// the request again; `created_ref` is what the dead owner's request had already created, if
    /// it got that far.
    TakeOver { created_ref: Option<String> },
    /// Seen and finished: answer with this.
    Replay(StoredResponse),
    /// Seen, still running under a live lease that ends in `retry_after_ms`.
    InFlight { retry_after_ms: i64 },
    /// Seen with a different request.
    Mismatch,
}

/// The record a request holds while it runs, for writes that must name it in their own
/// transaction ([`Store::idempotency_created_in`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub key: String,
    /// What an earlier, dead owner of this record had created (see [`IdempotencyBegin::TakeOver`]).
    pub created_ref: Option<String>,
}

impl Store {
    /// Claims `(scope, key)` for a request with `fingerprint`, owned by `owner` until
    /// `lease_until` (ms).
    pub async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(now - IDEMPOTENCY_TTL_MS).execute(&mut *tx).await?;
        let row = sqlx::query(
            "SELECT fingerprint, status, body, lease_until, created_ref FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match row {
            Some(r) => {
                let fp: String = r.try_get("fingerprint")?;
                let status: Option<i64> = r.try_get("status")?;
                let body: Option<String> = r.try_get("body")?;
                // Records written before leases existed have none: treat them as expired.
                let lease: i64 = r.try_get::<Option<i64>, _>("lease_until")?.unwrap_or(0);
                if fp != fingerprint {
                    IdempotencyBegin::Mismatch
                } else if let (Some(status), Some(body)) = (status, body) {
                    IdempotencyBegin::Replay(StoredResponse { status: u16::try_from(status).unwrap_or(500), body })
                } else if lease > now {
                    IdempotencyBegin::InFlight { retry_after_ms: lease - now }
                } else {
                    // Compare-and-set on the old lease: of two retries racing, one takes it.
                    let taken = sqlx::query(
                        "UPDATE idempotency_keys SET owner = $1, lease_until = $2
                         WHERE scope = $3 AND idem_key = $4 AND status IS NULL AND COALESCE(lease_until, 0) = $5",
                    )
                    .bind(owner)
                    .bind(lease_until)
                    .bind(scope)
                    .bind(key)
                    .bind(lease)
                    .execute(&mut *tx)
                    .await?;
                    if taken.rows_affected() == 1 {
                        IdempotencyBegin::TakeOver { created_ref: r.try_get("created_ref")? }
                    } else {
                        IdempotencyBegin::InFlight { retry_after_ms: lease_until - now }
                    }
                }
            }
            None => {
                let res = sqlx::query(
                    "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, created_at, owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(scope)
                .bind(key)
                .bind(fingerprint)
                .bind(now)
                .bind(owner)
                .bind(lease_until)
                .execute(&mut *tx)
                .await;
                match res {
                    Err(e) if StoreError::is_unique_violation(&e) => IdempotencyBegin::InFlight { retry_after_ms: lease_until - now },
                    other => {
                        other?;
                        IdempotencyBegin::Proceed
                    }
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Extends the lease of a record `owner` still holds in flight. `false` when it is no
    /// longer ours (finished, or taken over after our lease ran out).
    pub async fn idempotency_renew(&self, scope: &str, key: &str, owner: &str, lease_until: i64) -> Result<bool, StoreError> {
        let n = self
            .write(
                sqlx::query(
                    "UPDATE idempotency_keys SET lease_until = $1 WHERE scope = $2 AND idem_key = $3 AND owner = $4 AND status IS NULL",
                )
                .bind(lease_until)
                .bind(scope)
                .bind(key)
                .bind(owner),
            )
            .await?;
        Ok(n.rows_affected() == 1)
    }

    /// Records, inside the transaction doing the work, what the request holding `claim`
    /// created (e.g. `ses_…/run_…`), so a retry that takes the record over answers with it.
    pub(crate) async fn idempotency_created_in(tx: &mut crate::WriteTx, claim: &IdempotencyClaim, created: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE idempotency_keys SET created_ref = $1 WHERE scope = $2 AND idem_key = $3 AND status IS NULL")
            .bind(created)
            .bind(&claim.scope)
            .bind(&claim.key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Records the response for a claimed key (the first answer wins).
    pub async fn idempotency_finish(&self, scope: &str, key: &str, response: &StoredResponse) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE idempotency_keys SET status = $1, body = $2 WHERE scope = $3 AND idem_key = $4 AND status IS NULL")
                .bind(i64::from(response.status))
                .bind(&response.body)
                .bind(scope)
                .bind(key),
        )
        .await?;
        Ok(())
    }

    /// Forgets a claimed key (the request failed in a way a retry may fix).
    pub async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.write(sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2").bind(scope).bind(key)).await?;
        Ok(())
    }
}
