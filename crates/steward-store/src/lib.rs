//! The Store: every read and write of Steward's state, over an embedded SQLite file (the
//! default) or a PostgreSQL database (for several replicas), behind one type.
//!
//! Both backends run the same portable SQL through `sqlx::Any` (`$1` placeholders, `TEXT` and
//! `BIGINT` columns, timestamps as epoch milliseconds, JSON as text). The only per-backend code
//! is connecting and the migration folder, in this file, and the read cache's invalidation
//! across replicas (`pg_notify` and its listener, `cache.rs`). Nothing above this crate knows
//! which database it talks to, and this crate knows nothing of HTTP.

mod accounts;
mod agents;
mod cache;
mod channels;
mod error;
mod events;
mod idempotency;
mod integrations;
mod keys;
mod notifications;
mod page;
mod providers;
mod run_writes;
mod sandboxes;
mod schedules;
mod sessions;
mod tools;
mod triggers;
mod vaults;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use steward_core::clock::Clock;

pub use accounts::LoginCodeCheck;
pub use cache::{CacheStats, CachesStats, MAX_AGE as CACHE_MAX_AGE};
pub use channels::{ChannelBot, ChannelDelivery, CodeState, LinkCode, NewLinkCode, Redemption};
pub use error::{STALE_ATTEMPTS, StoreError, retry_on_stale};
pub use events::{AgentStats, Charge};
pub use idempotency::{IdempotencyBegin, IdempotencyClaim, StoredResponse};
pub use integrations::{ConnectedAccount, NewConnectedAccount, OAuthAttempt, Publication, Take};
pub use keys::NewApiKey;
pub use notifications::{Attempt, Notification, OutboundDelivery, Subscription, UNFINISHED_ATTEMPT};
pub use page::{Listing, PageRequest};
pub use run_writes::{
    MAX_BATCH as MAX_RUN_WRITE_BATCH, NewRun, RunEnd, RunTarget, RunWrite, RunWriteReceipt, RunWritten, Start, UsageCharge,
};
pub use sandboxes::SandboxWithRole;
pub use schedules::{Execution, Fire, Schedule};
pub use sessions::{ConversationSummary, NewSession, RunFilter, RunOutcome, SessionFilter};
pub use triggers::{Delivery, MAX_BATCH as MAX_DELIVERY_BATCH, SignatureOnce};
pub use vaults::{NewVault, VaultUpdate};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Handle to the database. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    clock: Arc<dyn Clock>,
    /// SQLite allows one writer; queueing writers here (fairly, without sleeping) beats letting
    /// them collide in SQLite's busy handler, which backs off in growing sleeps.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// The group-commit writer for webhook deliveries, started on first use.
    deliveries: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<triggers::PendingDelivery>>>,
    /// The group-commit writer for run writes (events, conversation, usage, ends), started on first use.
    run_writes: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<run_writes::PendingRunWrite>>>,
    /// Called with the events of every committed batch of run writes, before any writer hears
    /// back (the runtime wakes stream tails with it).
    committed: Arc<std::sync::OnceLock<run_writes::CommitHook>>,
    /// The read cache of this replica (see `cache.rs`); clones share it.
    caches: Arc<cache::Caches>,
}

/// A write transaction; on SQLite it also holds this process's writer slot.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _slot: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path` in WAL mode and applies
    /// migrations.
    pub async fn open_sqlite(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url, clock).await
    }

    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(
                "the database URL must start with `sqlite:` or `postgres://` (e.g. postgres://user@127.0.0.1:5432/steward)".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("cannot parse the database URL: {e}")))?;
        let mut pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // WAL lets readers proceed during a write; NORMAL sync is durable in WAL mode except
            // for power loss of the last commits, the usual trade-off for embedded servers.
            pool_options = pool_options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            });
        } else {
            pool_options = pool_options.max_connections(16);
        }
        let pool = pool_options.connect_with(options).await.map_err(|e| StoreError::Connect(e.to_string()))?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| StoreError::Migration(e.to_string()))?;
        let store = Self {
            pool,
            backend,
            clock,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            deliveries: Default::default(),
            run_writes: Default::default(),
            committed: Default::default(),
            caches: cache::Caches::new(backend, url),
        };
        store.start_cache_listener().await;
        Ok(store)
    }

    /// On PostgreSQL, starts the listener that keeps this store's caches in step with the
    /// other replicas, and waits (a little) for it to subscribe: until it does, reads bypass
    /// the caches.
    async fn start_cache_listener(&self) {
        if self.backend != Backend::Postgres {
            return;
        }
        cache::spawn_listener(&self.caches);
        if tokio::time::timeout(Duration::from_secs(5), self.caches.until_live()).await.is_err() {
            tracing::warn!("the cache listener has not subscribed yet; reads go to the database until it does");
        }
    }

    /// A handle on the same database with its own group-commit writers, as a second replica
    /// would have: its batches race this handle's in the database (tests of exactly-once). On
    /// PostgreSQL it also has its own caches and cache listener (started in the background:
    /// it reads through to the database until subscribed), so it sees this handle's writes
    /// only through the notifications, as another replica would. On SQLite it shares this
    /// handle's caches: SQLite has no notifications, and one process is its only writer.
    pub fn as_another_replica(&self) -> Store {
        let caches = match self.backend {
            Backend::Sqlite => self.caches.clone(),
            Backend::Postgres => {
                let caches = self.caches.for_another_replica();
                cache::spawn_listener(&caches);
                caches
            }
        };
        Store { deliveries: Default::default(), run_writes: Default::default(), committed: Default::default(), caches, ..self.clone() }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A write transaction. On SQLite it takes this process's writer slot, then the write lock up
    /// front (`BEGIN IMMEDIATE`), so a transaction that reads before writing never fails
    /// half-way with `SQLITE_BUSY`.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let slot = self.write_lock.clone().lock_owned().await;
                WriteTx { tx: self.pool.begin_with("BEGIN IMMEDIATE").await?, _slot: Some(slot) }
            }
            Backend::Postgres => WriteTx { tx: self.pool.begin().await?, _slot: None },
        })
    }

    /// Runs one write statement in its own write transaction (see `write_tx`).
    pub(crate) async fn write<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<sqlx::any::AnyQueryResult, StoreError> {
        let mut tx = self.write_tx().await?;
        let result = query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Checks the database answers; used by readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned, and stops the cache listener.
    pub async fn close(&self) {
        self.caches.stop();
        self.pool.close().await;
    }
}
