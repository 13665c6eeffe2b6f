//! Idempotency records (§2): the first response to a mutating POST, replayed to retries that
//! carry the same `Idempotency-Key`.

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
    /// Seen and finished: answer with this.
    Replay(StoredResponse),
    /// Seen, still running.
    InFlight,
    /// Seen with a different request.
    Mismatch,
}

impl Store {
    /// Claims `(scope, key)` for a request with `fingerprint`.
    pub async fn idempotency_begin(&self, scope: &str, key: &str, fingerprint: &str) -> Result<IdempotencyBegin, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(now - IDEMPOTENCY_TTL_MS).execute(&mut *tx).await?;
        let row = sqlx::query("SELECT fingerprint, status, body FROM idempotency_keys WHERE scope = $1 AND idem_key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match row {
            Some(r) => {
                let fp: String = r.try_get("fingerprint")?;
                let status: Option<i64> = r.try_get("status")?;
                let body: Option<String> = r.try_get("body")?;
                if fp != fingerprint {
                    IdempotencyBegin::Mismatch
                } else if let (Some(status), Some(body)) = (status, body) {
                    IdempotencyBegin::Replay(StoredResponse { status: u16::try_from(status).unwrap_or(500), body })
                } else {
                    IdempotencyBegin::InFlight
                }
            }
            None => {
                let res = sqlx::query("INSERT INTO idempotency_keys (scope, idem_key, fingerprint, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(scope)
                    .bind(key)
                    .bind(fingerprint)
                    .bind(now)
                    .execute(&mut *tx)
                    .await;
                match res {
                    Err(e) if StoreError::is_unique_violation(&e) => IdempotencyBegin::InFlight,
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

    /// Records the response for a claimed key.
    pub async fn idempotency_finish(&self, scope: &str, key: &str, response: &StoredResponse) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE idempotency_keys SET status = $1, body = $2 WHERE scope = $3 AND idem_key = $4")
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
