//! A fresh PostgreSQL schema per test, dropped when the test ends.
//!
//! The server is named by `STEWARD_TEST_DATABASE_URL`; without it the PostgreSQL variant of a
//! test is skipped loudly, and `STEWARD_REQUIRE_POSTGRES=1` (set by `scripts/test`) turns the
//! skip into a failure. Each [`PgSchema`] is a new schema selected through `search_path` in the
//! URL it hands out, so tests run in parallel on one database without seeing each other.
//!
//! Dropping is guaranteed, not left to the test: [`PgSchema`]'s `Drop` runs
//! `DROP SCHEMA … CASCADE` synchronously, on a thread and connection of its own (the test's
//! runtime may be a single thread that is busy dropping it). It first ends the backends still
//! connected through the schema's URL (a server's pool, a killed replica's connections), found
//! by the `application_name` the URL sets, so no transaction left open by the code under test
//! can make the drop wait. Only [`PgSchema::keep_on_failure`] keeps a failed test's schema, for
//! inspection, and says so.

use std::io::Write;
use std::sync::Once;

use sqlx::{AssertSqlSafe, Connection};

/// The environment variable naming the PostgreSQL server to test against.
pub const DATABASE_URL_VAR: &str = "STEWARD_TEST_DATABASE_URL";
/// Set to `1` (as `scripts/test` does) to make a missing PostgreSQL URL an error instead of a skip.
pub const REQUIRE_POSTGRES_VAR: &str = "STEWARD_REQUIRE_POSTGRES";

/// The PostgreSQL URL tests may create schemas in, or `None` after warning that the PostgreSQL
/// variant is skipped. Panics when the URL is missing under `STEWARD_REQUIRE_POSTGRES=1`.
pub fn database_url() -> Option<String> {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var(REQUIRE_POSTGRES_VAR).as_deref() == Ok("1") => {
            panic!(
                "{REQUIRE_POSTGRES_VAR}=1 but {DATABASE_URL_VAR} is not set; point it at a PostgreSQL database \
                 the tests may create schemas in, e.g. {DATABASE_URL_VAR}=postgres://postgres@127.0.0.1:5432/test"
            )
        }
        _ => {
            let warning = format!(
                "WARNING: PostgreSQL variant SKIPPED: {DATABASE_URL_VAR} is not set. Set it (e.g. \
                 postgres://postgres@127.0.0.1:5432/test) to run the tests on PostgreSQL too, or set \
                 {REQUIRE_POSTGRES_VAR}=1 to make this an error."
            );
            // The test harness captures `eprintln!` of passing tests, which would make the skip
            // invisible; write the warning past the capture once per run, and into each test's
            // own output too.
            static BANNER: Once = Once::new();
            BANNER.call_once(|| {
                let _ = writeln!(std::io::stderr(), "\n{warning}\n");
            });
            eprintln!("{warning}");
            None
        }
    }
}

/// `url` with `options=-c search_path=<schema>` (percent-encoded: the value holds a space and an
/// `=`) and `application_name=<schema>` added, so every pooled connection works inside `schema`
/// and can be found again when the schema is dropped.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}&application_name={schema}")
}

/// A schema of its own for one test; dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    base: String,
    name: String,
    url: String,
    keep_on_failure: bool,
}

impl PgSchema {
    /// Creates `<prefix>_<ulid>` in the database named by `STEWARD_TEST_DATABASE_URL`, or
    /// returns `None` (loudly) when that is not set; see [`database_url`].
    pub async fn create(prefix: &str) -> Option<PgSchema> {
        let base = database_url()?;
        let name = format!("{prefix}_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let mut admin =
            sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| panic!("cannot connect to {DATABASE_URL_VAR}={base}: {e}"));
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut admin).await.expect("create the test schema");
        let _ = admin.close().await;
        let url = with_search_path(&base, &name);
        Some(PgSchema { base, name, url, keep_on_failure: false })
    }

    /// The URL to connect with: the test database, this schema first on the `search_path`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test database's URL without the schema (for queries about the schema itself).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Keeps the schema when the test fails (the thread is panicking), naming it on stderr.
    pub fn keep_on_failure(mut self) -> Self {
        self.keep_on_failure = true;
        self
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if self.keep_on_failure && std::thread::panicking() {
            eprintln!(
                "the failed test's data was kept for inspection in PostgreSQL schema {0} (drop it with `DROP SCHEMA {0} CASCADE`)",
                self.name
            );
            return;
        }
        let (base, name) = (self.base.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime to drop the test schema");
            rt.block_on(drop_schema(&base, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop the test schema {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping the test schema {} panicked", self.name),
        }
    }
}

/// Ends the schema's own connections, then drops it; a connection the code under test opens
/// again in between can only make one attempt time out, not hang the test.
async fn drop_schema(base: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = sqlx::PgConnection::connect(base).await?;
    sqlx::query("SET lock_timeout = '5s'").execute(&mut admin).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()")
            .bind(name)
            .execute(&mut admin)
            .await?;
        match sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).execute(&mut admin).await {
            Ok(_) => break,
            Err(e) if attempt >= 5 => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    admin.close().await
}
