//! Accounts and email one-time login codes.

use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::ids::AccountId;
use steward_core::keys;
use steward_core::tenancy::{Account, Email};

use crate::{Store, StoreError};

/// How many wrong guesses a login code survives.
pub const MAX_CODE_ATTEMPTS: i64 = 5;

/// The outcome of checking a login code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCodeCheck {
    /// The code matched and is now used up.
    Accepted,
    /// Wrong code; this many attempts remain on the current code.
    Wrong { attempts_left: i64 },
    /// No live code: never requested, expired, used, or locked after too many attempts.
    NoLiveCode,
}

fn account_from(row: &AnyRow) -> Result<Account, StoreError> {
    Ok(Account {
        id: AccountId::from_trusted(row.try_get("id")?),
        email: Email::from_trusted(row.try_get("email")?),
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Creates an account; `Duplicate` if the email is taken.
    pub async fn create_account(&self, email: &Email) -> Result<Account, StoreError> {
        let account = Account { id: AccountId::generate(), email: email.clone(), created_at: self.now() };
        let res = self
            .write(
                sqlx::query("INSERT INTO accounts (id, email, created_at) VALUES ($1, $2, $3)")
                    .bind(account.id.as_str())
                    .bind(email.as_str())
                    .bind(account.created_at),
            )
            .await;
        match res {
            Ok(_) => Ok(account),
            Err(e) if e.is_unique() => Err(StoreError::Duplicate(format!("an account with email {} already exists", email.as_str()))),
            Err(e) => Err(e),
        }
    }

    /// The account with this email, creating it if there is none.
    pub async fn ensure_account(&self, email: &Email) -> Result<Account, StoreError> {
        if let Some(a) = self.account_by_email(email).await? {
            return Ok(a);
        }
        match self.create_account(email).await {
            Ok(a) => Ok(a),
            // Lost a race with another creator: the row exists now.
            Err(StoreError::Duplicate(_)) => self.account_by_email(email).await?.ok_or(StoreError::NotFound("account")),
            Err(e) => Err(e),
        }
    }

    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let row =
            sqlx::query("SELECT id, email, created_at FROM accounts WHERE id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(account_from).transpose()
    }

    pub async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT id, email, created_at FROM accounts WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_from).transpose()
    }

    /// Stores a new login code (hashed) for `email`, valid for `ttl_ms`.
    pub async fn put_login_code(&self, email: &Email, code: &str, ttl_ms: i64) -> Result<(), StoreError> {
        let now = self.now();
        self.write(
            sqlx::query("INSERT INTO login_codes (id, email, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(format!("lgc_{}", ulid_like()))
                .bind(email.as_str())
                .bind(keys::hash(code))
                .bind(now)
                .bind(now + ttl_ms),
        )
        .await?;
        // Old codes are useless after they expire; keep the table small.
        self.write(sqlx::query("DELETE FROM login_codes WHERE expires_at < $1").bind(now - 86_400_000)).await?;
        Ok(())
    }

    /// How many codes were issued for `email` since `since_ms` (rate limiting).
    pub async fn login_codes_since(&self, email: &Email, since_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM login_codes WHERE email = $1 AND created_at >= $2")
            .bind(email.as_str())
            .bind(since_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Checks `code` against the newest live code for `email`, consuming it on success and
    /// counting a failed attempt otherwise.
    pub async fn check_login_code(&self, email: &Email, code: &str) -> Result<LoginCodeCheck, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT id, code_hash, attempts FROM login_codes
             WHERE email = $1 AND consumed_at IS NULL AND expires_at > $2
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(email.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(LoginCodeCheck::NoLiveCode) };
        let id: String = row.try_get("id")?;
        let stored: String = row.try_get("code_hash")?;
        let attempts: i64 = row.try_get("attempts")?;
        if attempts >= MAX_CODE_ATTEMPTS {
            return Ok(LoginCodeCheck::NoLiveCode);
        }
        let outcome = if keys::hashes_equal(&stored, &keys::hash(code)) {
            sqlx::query("UPDATE login_codes SET consumed_at = $1 WHERE id = $2").bind(now).bind(&id).execute(&mut *tx).await?;
            LoginCodeCheck::Accepted
        } else {
            sqlx::query("UPDATE login_codes SET attempts = attempts + 1 WHERE id = $1").bind(&id).execute(&mut *tx).await?;
            LoginCodeCheck::Wrong { attempts_left: MAX_CODE_ATTEMPTS - attempts - 1 }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

fn ulid_like() -> String {
    // Login codes are internal rows; reuse the id generator's format without a public kind.
    steward_core::ids::AccountId::generate().as_str()["acc_".len()..].to_owned()
}
