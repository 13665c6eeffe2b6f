//! The store's error type. Callers map these to user-facing errors; database details stay in
//! logs.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (or is not visible to this call).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or state precondition failed; the message is safe to show.
    #[error("{0}")]
    Conflict(String),
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
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether this is a uniqueness violation reported by the database.
    pub(crate) fn is_unique(&self) -> bool {
        matches!(self, StoreError::Database(e) if Self::is_unique_violation(e))
    }

    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        e.as_database_error().is_some_and(|d| d.is_unique_violation())
    }
}
