//! The harness behind the store conformance suite: gives each test a fresh, empty [`Store`] on
//! SQLite (always) or PostgreSQL (when `STEWARD_TEST_DATABASE_URL` is set), driven by a
//! [`ManualClock`], and cleans up after a passing test.
//!
//! Isolation is per test, not per run, so tests can run in parallel: SQLite gets a new file in a
//! new temporary directory, PostgreSQL a new schema selected through `search_path` (the shared
//! `steward_test_support::postgres::PgSchema`). A failing test leaves its database behind and
//! says where, so it can be inspected.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{AnyPool, Row};
use steward_core::clock::ManualClock;
use steward_store::{Backend, Store};
use steward_test_support::postgres::{DATABASE_URL_VAR, PgSchema};

/// Where every test's clock starts: 2026-01-01T00:00:00Z, far from zero so that
/// "now minus a day" stays positive.
pub const START_MS: i64 = 1_767_225_600_000;

/// Generates, for each named `async fn name(store: Store, clock: ManualClock)` in the calling
/// file, one `#[tokio::test]` in `mod sqlite` and one in `mod postgres`, so every conformance
/// test runs against both backends under the names `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::common::run_sqlite(super::$name).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::common::run_postgres(super::$name).await;
                }
            )+
        }
    };
}

/// Runs `test` against a fresh SQLite database file.
pub async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store, ManualClock) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("steward-store-test-{}", ulid::Ulid::new().to_string().to_ascii_lowercase()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory for the SQLite test database");
    let mut guard = LeftBehind(Some(format!("SQLite database directory {}", dir.display())));
    let clock = ManualClock::new(START_MS);
    let store = Store::open_sqlite(&dir.join("steward.db"), Arc::new(clock.clone())).await.expect("open the SQLite store");
    assert_eq!(store.backend(), Backend::Sqlite);

    test(store.clone(), clock).await;

    store.close().await;
    guard.disarm();
    remove_dir(dir);
}

/// Runs `test` against a fresh schema of the PostgreSQL database named by
/// `STEWARD_TEST_DATABASE_URL`; skips loudly (or fails, under `STEWARD_REQUIRE_POSTGRES=1`) when
/// that variable is unset.
pub async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store, ManualClock) -> Fut,
    Fut: Future<Output = ()>,
{
    // Dropped when this function ends, passing or not, except for a failed test's.
    let Some(schema) = PgSchema::create("steward_t").await.map(PgSchema::keep_on_failure) else { return };
    sqlx::any::install_default_drivers();
    let url = schema.base_url();
    let admin = AnyPool::connect(url).await.unwrap_or_else(|e| panic!("cannot connect to {DATABASE_URL_VAR}={url}: {e}"));

    let clock = ManualClock::new(START_MS);
    let store = Store::connect(schema.url(), Arc::new(clock.clone())).await.expect("open the PostgreSQL store");
    assert_eq!(store.backend(), Backend::Postgres);
    assert_migrated_into(&admin, schema.name()).await;

    test(store.clone(), clock).await;

    store.close().await;
    admin.close().await;
}

/// Guards against the search path being silently ignored, which would make every test share
/// (and pollute) the `public` schema.
async fn assert_migrated_into(admin: &AnyPool, schema: &str) {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'agents'")
        .bind(schema)
        .fetch_one(admin)
        .await
        .expect("query information_schema");
    let n: i64 = row.try_get("n").expect("read the table count");
    assert_eq!(n, 1, "the store's migrations did not create their tables in schema {schema}; is `options=-c search_path=…` honoured?");
}

fn remove_dir(dir: PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("warning: could not remove the test directory {}: {e}", dir.display());
    }
}

/// Says where a failing test's database was left; disarmed once the test has passed.
struct LeftBehind(Option<String>);

impl LeftBehind {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for LeftBehind {
    fn drop(&mut self) {
        if let Some(what) = &self.0
            && std::thread::panicking()
        {
            eprintln!("the failed test's data was kept for inspection in the {what}");
        }
    }
}
