//! The store's error type. Callers branch on the variant, never on the message: each refusal a
//! caller may act on (retry a lost compare-and-set, point at the field whose value is taken,
//! answer 503 while closing) is its own variant. Messages are safe to show; database details
//! stay in logs.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (or is not visible to this call).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A compare-and-set lost: the row changed (or was deleted or archived) since the caller
    /// read it. Re-read and apply the change again; the message names the row.
    #[error("{0}")]
    Stale(String),
    /// A unique key is taken (a name, an id, an email, a published target); the message names
    /// the value and says how to proceed.
    #[error("{0}")]
    Duplicate(String),
    /// The row is still used by others (an environment by agents, a vault by providers), so it
    /// cannot be deleted; the message names the users.
    #[error("{0}")]
    InUse(String),
    /// The input names a row that does not exist here (a vault referenced by a source or an
    /// environment); the message names it.
    #[error("{0}")]
    MissingReference(String),
    /// A session already has a queued or running run, and the caller asked not to queue.
    #[error("{0}")]
    Busy(String),
    /// Another state precondition failed (a sandbox's owner grant cannot change, a cursor of the
    /// wrong kind); the message is safe to show.
    #[error("{0}")]
    Conflict(String),
    /// The store is closing (the pool is closed or its writers have stopped): the request may
    /// succeed against another replica or after a restart.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// The database URL or options are wrong.
    #[error("database configuration: {0}")]
    Config(String),
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// Migrations failed to apply.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A stored value could not be decoded (a bug or a hand-edited database).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A shared (group-committed) transaction failed; every member gets this copy of the error.
    #[error("database error: {0}")]
    Batch(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    /// A closed pool is a shutdown, not a database failure; everything else keeps the sqlx
    /// error (uniqueness violations are turned into [`StoreError::Duplicate`] where the message
    /// naming the key is known).
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolClosed => StoreError::ShuttingDown,
            e => StoreError::Database(e),
        }
    }
}

impl StoreError {
    /// Whether this is a uniqueness violation reported by the database.
    pub(crate) fn is_unique(&self) -> bool {
        matches!(self, StoreError::Database(e) if Self::is_unique_violation(e))
    }

    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        e.as_database_error().is_some_and(|d| d.is_unique_violation())
    }

    /// The error every member of a failed group commit gets: a shutdown stays a shutdown, any
    /// other failure becomes a [`StoreError::Batch`] carrying its text.
    pub(crate) fn for_batch_member(&self) -> StoreError {
        match self {
            StoreError::ShuttingDown => StoreError::ShuttingDown,
            other => StoreError::Batch(other.to_string()),
        }
    }
}

/// How many times [`retry_on_stale`] runs a read-modify-write before giving up.
pub const STALE_ATTEMPTS: usize = 5;

/// Runs a read-modify-write whose write is a compare-and-set until it does not lose: `write`
/// applies the change to the row read and writes it; a [`StoreError::Stale`] answer (someone
/// wrote in between) re-reads the row with `reload` and writes again, up to [`STALE_ATTEMPTS`]
/// writes in all. The outer `Result` of both closures is a refusal before the write
/// (validation, permission, the row is gone), returned at once; the inner one is the write's.
/// `Ok(Err(Stale))` after the last attempt means others keep changing the row.
pub async fn retry_on_stale<R, T, E, ReadFut, WriteFut>(
    first: R,
    mut reload: impl FnMut() -> ReadFut,
    mut write: impl FnMut(R) -> WriteFut,
) -> Result<Result<T, StoreError>, E>
where
    ReadFut: Future<Output = Result<R, E>>,
    WriteFut: Future<Output = Result<Result<T, StoreError>, E>>,
{
    let mut outcome = write(first).await?;
    for _ in 1..STALE_ATTEMPTS {
        match outcome {
            Err(StoreError::Stale(_)) => outcome = write(reload().await?).await?,
            done => return Ok(done),
        }
    }
    Ok(outcome)
}
