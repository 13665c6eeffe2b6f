//! The store's read cache: rows the hot path reads on every request or run and that are
//! immutable or rarely written — API keys by hash, grants, sandboxes, agent versions, providers,
//! vault ciphertexts, tool sources, environments, triggers (with their sealed secret).
//!
//! **Invalidation.** Every store method that changes one of those rows names what it made stale
//! ([`Stale`]) and commits through [`Store::commit_invalidating`] / [`Store::write_invalidating`]:
//! on PostgreSQL that runs `pg_notify('steward_cache', …)` inside the transaction (delivered to
//! every listener when, and only if, it commits), and after the commit it drops the entries in
//! this process, so the writer's own next read sees the change. Each PostgreSQL [`Store`] runs a
//! listener task (`listen.rs`) that drops the entries other replicas' notifications name. While
//! that listener is not subscribed, the cache is bypassed; when it (re)subscribes, every entry is
//! dropped (notifications sent meanwhile are lost). SQLite has one process, so the local drop is
//! all there is.
//!
//! **No stale insert.** A read that misses captures its cache's generation before it reads the
//! database and stores what it read only if no invalidation of that cache happened meanwhile: a
//! write that commits while the read is in flight cannot leave the old row behind.
//!
//! **Not cached**, on purpose: the agent row (its token balance, usage totals and state change
//! with every run, written by the run writer; see ARCHITECTURE.md), sessions, runs, events, and
//! anything read for a compare-and-set. Entries that miss are not cached either (a created row
//! never needs an invalidation), and every entry expires after [`MAX_AGE`], a bound on any
//! invalidation this code failed to send, not the mechanism.
//!
//! This module must never serve an entry while its listener is down, nor insert one read before
//! an invalidation of its cache.

mod listen;
mod map;

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_core::agent::AgentVersion;
use steward_core::environment::Environment;
use steward_core::ids::{AccountId, AgentId, ApiKeyId, EnvironmentId, SandboxId, SourceId, TriggerId, VaultId};
use steward_core::provider::{Provider, ProviderId};
use steward_core::source::Source;
use steward_core::tenancy::{ApiKey, Role, Sandbox};
use steward_core::trigger::Trigger;

use crate::{Backend, Store, StoreError, WriteTx};

pub(crate) use listen::spawn_listener;
pub(crate) use map::Cache;
pub use map::CacheStats;

/// The PostgreSQL notification channel of cache invalidations.
pub(crate) const CHANNEL: &str = "steward_cache";

/// How long an entry is served at most, whatever the notifications say.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// What a committed write made stale. On the wire (the notification's payload, after the
/// schema) it is `<kind>:<id>`; a payload this code cannot read clears everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stale {
    ApiKey(ApiKeyId),
    Grant(SandboxId, AccountId),
    Sandbox(SandboxId),
    Provider(SandboxId, ProviderId),
    Vault(VaultId),
    Source(SourceId),
    Environment(EnvironmentId),
    Trigger(TriggerId),
    /// A deleted agent: its versions and its triggers went with it.
    AgentDeleted(AgentId),
    /// Everything (a destroyed sandbox takes rows of every kind with it).
    Everything,
}

impl Stale {
    fn to_wire(&self) -> String {
        match self {
            Stale::ApiKey(id) => format!("key:{id}"),
            Stale::Grant(s, a) => format!("grant:{s}/{a}"),
            Stale::Sandbox(id) => format!("sandbox:{id}"),
            Stale::Provider(s, p) => format!("provider:{s}/{p}"),
            Stale::Vault(id) => format!("vault:{id}"),
            Stale::Source(id) => format!("source:{id}"),
            Stale::Environment(id) => format!("environment:{id}"),
            Stale::Trigger(id) => format!("trigger:{id}"),
            Stale::AgentDeleted(id) => format!("agent_deleted:{id}"),
            Stale::Everything => "everything:".to_owned(),
        }
    }

    /// The entry a notification names; anything unreadable (a newer replica's kind, say) is
    /// [`Stale::Everything`], which is always safe.
    fn from_wire(raw: &str) -> Stale {
        let Some((kind, id)) = raw.split_once(':') else { return Stale::Everything };
        let pair = || id.split_once('/').map(|(a, b)| (a.to_owned(), b.to_owned()));
        let id = id.to_owned();
        match kind {
            "key" => Stale::ApiKey(ApiKeyId::from_trusted(id)),
            "grant" => pair().map_or(Stale::Everything, |(s, a)| Stale::Grant(SandboxId::from_trusted(s), AccountId::from_trusted(a))),
            "sandbox" => Stale::Sandbox(SandboxId::from_trusted(id)),
            "provider" => {
                pair().map_or(Stale::Everything, |(s, p)| Stale::Provider(SandboxId::from_trusted(s), ProviderId::from_trusted(p)))
            }
            "vault" => Stale::Vault(VaultId::from_trusted(id)),
            "source" => Stale::Source(SourceId::from_trusted(id)),
            "environment" => Stale::Environment(EnvironmentId::from_trusted(id)),
            "trigger" => Stale::Trigger(TriggerId::from_trusted(id)),
            "agent_deleted" => Stale::AgentDeleted(AgentId::from_trusted(id)),
            _ => Stale::Everything,
        }
    }
}

/// The state of a store's caches, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachesStats {
    /// Whether entries are served (always on SQLite; on PostgreSQL while the listener is subscribed).
    pub live: bool,
    /// How many times every entry was dropped because the listener (re)subscribed.
    pub resets: u64,
    /// Reads that bypassed the cache because the listener was not subscribed.
    pub bypassed: u64,
    /// The PostgreSQL backend pid of the listener's connection, while subscribed.
    pub listener_pid: Option<i32>,
    /// Per kind: `keys`, `grants`, `sandboxes`, `versions`, `providers`, `vaults`, `sources`,
    /// `environments`, `triggers`.
    pub kinds: BTreeMap<&'static str, CacheStats>,
}

/// Budgets: counts for small rows; approximate bytes where a row can be large (a system prompt
/// is up to 200,000 characters, a vault secret up to 64 KiB, a trigger template 256 KiB).
const COUNT: usize = 10_000;
const VERSION_BYTES: usize = 64 << 20;
const VAULT_BYTES: usize = 16 << 20;
const TRIGGER_BYTES: usize = 32 << 20;
const ROW: usize = 512;

/// Every cache of one store (one replica), and whether they may be used.
pub(crate) struct Caches {
    pub(crate) keys: Cache<String, ApiKey>,
    pub(crate) grants: Cache<(SandboxId, AccountId), Role>,
    pub(crate) sandboxes: Cache<SandboxId, Sandbox>,
    pub(crate) versions: Cache<(AgentId, i64), AgentVersion>,
    pub(crate) providers: Cache<(SandboxId, ProviderId), Provider>,
    pub(crate) vaults: Cache<VaultId, String>,
    pub(crate) sources: Cache<SourceId, Source>,
    pub(crate) environments: Cache<EnvironmentId, Environment>,
    pub(crate) triggers: Cache<TriggerId, (Trigger, String)>,
    live: AtomicBool,
    went_live: tokio::sync::Notify,
    resets: AtomicU64,
    bypassed: AtomicU64,
    listener_pid: AtomicI32,
    /// The listener task, aborted when the caches go (it holds only a weak reference to them).
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    backend: Backend,
    /// The database URL, for the listener's own connection (never printed: it may hold a password).
    url: String,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches").field("live", &self.live()).finish_non_exhaustive()
    }
}

impl Caches {
    /// Caches for a store on `backend`: live at once on SQLite; on PostgreSQL only once the
    /// listener has subscribed.
    pub(crate) fn new(backend: Backend, url: &str) -> Arc<Caches> {
        Arc::new(Caches {
            keys: Cache::new(COUNT, |_| 1),
            grants: Cache::new(COUNT, |_| 1),
            sandboxes: Cache::new(COUNT, |_| 1),
            versions: Cache::new(VERSION_BYTES, |v| ROW + v.config.system_prompt.len()),
            providers: Cache::new(COUNT, |_| 1),
            vaults: Cache::new(VAULT_BYTES, |c| ROW + c.len()),
            sources: Cache::new(COUNT, |_| 1),
            environments: Cache::new(COUNT, |_| 1),
            triggers: Cache::new(TRIGGER_BYTES, |(t, _)| ROW + t.config.input_template.len()),
            live: AtomicBool::new(backend == Backend::Sqlite),
            went_live: tokio::sync::Notify::new(),
            resets: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            listener_pid: AtomicI32::new(0),
            listener: Mutex::new(None),
            backend,
            url: url.to_owned(),
        })
    }

    /// Empty caches of the same database, for a handle playing another replica.
    pub(crate) fn for_another_replica(&self) -> Arc<Caches> {
        Caches::new(self.backend, &self.url)
    }

    pub(crate) fn live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until entries are served (the listener subscribed).
    pub(crate) async fn until_live(&self) {
        loop {
            let notified = self.went_live.notified();
            if self.live() {
                return;
            }
            notified.await;
        }
    }

    /// The listener subscribed (on `pid`): whatever was sent before is unknown, so start empty.
    fn subscribed(&self, pid: i32) {
        self.invalidate(&Stale::Everything);
        self.resets.fetch_add(1, Ordering::Relaxed);
        self.listener_pid.store(pid, Ordering::Relaxed);
        self.live.store(true, Ordering::SeqCst);
        self.went_live.notify_waiters();
    }

    /// The listener lost its subscription: stop serving, and forget everything.
    fn unsubscribed(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.listener_pid.store(0, Ordering::Relaxed);
        self.invalidate(&Stale::Everything);
    }

    /// Stops the listener (the store is closing).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.listener.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        self.unsubscribed();
    }

    /// Drops what `stale` names from this process's caches.
    pub(crate) fn invalidate(&self, stale: &Stale) {
        match stale {
            Stale::ApiKey(id) => self.keys.retain(|_, k| &k.id != id),
            Stale::Grant(s, a) => self.grants.remove(&(s.clone(), a.clone())),
            Stale::Sandbox(id) => self.sandboxes.remove(id),
            Stale::Provider(s, p) => self.providers.remove(&(s.clone(), p.clone())),
            Stale::Vault(id) => self.vaults.remove(id),
            Stale::Source(id) => self.sources.remove(id),
            Stale::Environment(id) => self.environments.remove(id),
            Stale::Trigger(id) => self.triggers.remove(id),
            Stale::AgentDeleted(id) => {
                self.versions.retain(|(agent, _), _| agent != id);
                self.triggers.retain(|_, (t, _)| &t.agent_id != id);
            }
            Stale::Everything => {
                self.keys.clear();
                self.grants.clear();
                self.sandboxes.clear();
                self.versions.clear();
                self.providers.clear();
                self.vaults.clear();
                self.sources.clear();
                self.environments.clear();
                self.triggers.clear();
            }
        }
    }

    /// `read` through `cache` under `key`: a live entry, else the database (stored if found and
    /// no invalidation of this cache happened while reading).
    pub(crate) async fn read_through<K, V>(
        &self,
        cache: &Cache<K, V>,
        key: K,
        read: impl Future<Output = Result<Option<V>, StoreError>>,
    ) -> Result<Option<V>, StoreError>
    where
        K: Hash + Eq + Clone,
        V: Clone,
    {
        if !self.live() {
            self.bypassed.fetch_add(1, Ordering::Relaxed);
            return read.await;
        }
        if let Some(v) = cache.get(&key) {
            return Ok(Some(v));
        }
        let generation = cache.generation();
        let value = read.await?;
        if let Some(v) = &value
            && self.live()
        {
            cache.insert(generation, key, v.clone());
        }
        Ok(value)
    }

    /// [`Self::read_through`] for several keys at once: the cached ones, plus one read of the
    /// others (`read` gets the missing keys and returns what it found, keyed).
    pub(crate) async fn read_many_through<K, V, F, Fut>(&self, cache: &Cache<K, V>, keys: Vec<K>, read: F) -> Result<Vec<V>, StoreError>
    where
        K: Hash + Eq + Clone,
        V: Clone,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, V)>, StoreError>>,
    {
        if !self.live() {
            self.bypassed.fetch_add(1, Ordering::Relaxed);
            return Ok(read(keys).await?.into_iter().map(|(_, v)| v).collect());
        }
        let mut found = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for k in keys {
            match cache.get(&k) {
                Some(v) => found.push(v),
                None => missing.push(k),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let generation = cache.generation();
        let read = read(missing).await?;
        let live = self.live();
        for (k, v) in read {
            if live {
                cache.insert(generation, k, v.clone());
            }
            found.push(v);
        }
        Ok(found)
    }

    fn stats(&self) -> CachesStats {
        let pid = self.listener_pid.load(Ordering::Relaxed);
        CachesStats {
            live: self.live(),
            resets: self.resets.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            listener_pid: (pid != 0).then_some(pid),
            kinds: BTreeMap::from([
                ("keys", self.keys.stats()),
                ("grants", self.grants.stats()),
                ("sandboxes", self.sandboxes.stats()),
                ("versions", self.versions.stats()),
                ("providers", self.providers.stats()),
                ("vaults", self.vaults.stats()),
                ("sources", self.sources.stats()),
                ("environments", self.environments.stats()),
                ("triggers", self.triggers.stats()),
            ]),
        }
    }
}

impl Drop for Caches {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl Store {
    /// The state of this store's caches (hits, misses, entries per kind; the listener).
    pub fn cache_stats(&self) -> CachesStats {
        self.caches.stats()
    }

    /// `read` through `cache` (one of this store's caches) under `key`; see [`Caches::read_through`].
    pub(crate) async fn read_through<K, V>(
        &self,
        cache: &Cache<K, V>,
        key: K,
        read: impl Future<Output = Result<Option<V>, StoreError>>,
    ) -> Result<Option<V>, StoreError>
    where
        K: Hash + Eq + Clone,
        V: Clone,
    {
        self.caches.read_through(cache, key, read).await
    }

    /// Several keys through `cache`; see [`Caches::read_many_through`].
    pub(crate) async fn read_many_through<K, V, F, Fut>(&self, cache: &Cache<K, V>, keys: Vec<K>, read: F) -> Result<Vec<V>, StoreError>
    where
        K: Hash + Eq + Clone,
        V: Clone,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, V)>, StoreError>>,
    {
        self.caches.read_many_through(cache, keys, read).await
    }

    /// Commits `tx` after announcing `stale` to the other replicas in it (PostgreSQL delivers
    /// the notifications on commit, and only then), then drops `stale` from this process's
    /// caches — even when the commit reports an error, whose outcome may be unknown.
    pub(crate) async fn commit_invalidating(&self, mut tx: WriteTx, stale: &[Stale]) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            for s in stale {
                // The schema scopes the payload: replicas of other schemas of one database ignore it.
                sqlx::query("SELECT pg_notify($1, COALESCE(current_schema()::text, '') || ' ' || $2)")
                    .bind(CHANNEL)
                    .bind(s.to_wire())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let committed = tx.commit().await;
        for s in stale {
            self.caches.invalidate(s);
        }
        Ok(committed?)
    }

    /// One write statement in its own transaction (as [`Store::write`]) that makes `stale`
    /// stale when it changes a row.
    pub(crate) async fn write_invalidating<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        stale: &[Stale],
    ) -> Result<sqlx::any::AnyQueryResult, StoreError> {
        let mut tx = self.write_tx().await?;
        let result = query.execute(&mut *tx).await?;
        if result.rows_affected() == 0 {
            tx.commit().await?;
        } else {
            self.commit_invalidating(tx, stale).await?;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_entries_round_trip_through_the_wire_format() {
        for s in [
            Stale::ApiKey(ApiKeyId::generate()),
            Stale::Grant(SandboxId::generate(), AccountId::generate()),
            Stale::Sandbox(SandboxId::generate()),
            Stale::Provider(SandboxId::generate(), ProviderId::from_trusted("my-openai_2".into())),
            Stale::Vault(VaultId::generate()),
            Stale::Source(SourceId::generate()),
            Stale::Environment(EnvironmentId::generate()),
            Stale::Trigger(TriggerId::generate()),
            Stale::AgentDeleted(AgentId::generate()),
            Stale::Everything,
        ] {
            assert_eq!(Stale::from_wire(&s.to_wire()), s);
        }
        for unreadable in ["", "nonsense", "grant:no-slash", "future_kind:x"] {
            assert_eq!(Stale::from_wire(unreadable), Stale::Everything, "{unreadable:?}");
        }
    }

    /// Reads `Some(role)` once `go` fires, as a database read in flight would.
    async fn slow_read(go: tokio::sync::oneshot::Receiver<()>, role: Role) -> Result<Option<Role>, StoreError> {
        go.await.expect("the test lets the read finish");
        Ok(Some(role))
    }

    fn grant_key() -> (SandboxId, AccountId) {
        (SandboxId::generate(), AccountId::generate())
    }

    #[tokio::test]
    async fn a_read_that_raced_an_invalidation_is_returned_but_not_stored() {
        let caches = Caches::new(Backend::Sqlite, "");
        let key = grant_key();
        let (go, wait) = tokio::sync::oneshot::channel();
        // The read misses and is in flight (it saw the old row) when the write commits.
        let reader = caches.read_through(&caches.grants, key.clone(), slow_read(wait, Role::Editor));
        let writer = async {
            tokio::task::yield_now().await;
            caches.invalidate(&Stale::Grant(key.0.clone(), key.1.clone()));
            go.send(()).unwrap();
        };
        let (read, ()) = tokio::join!(reader, writer);
        assert_eq!(read.unwrap(), Some(Role::Editor), "the caller gets what it read");
        assert_eq!(caches.grants.get(&key), None, "but the old row is not cached after the invalidation");

        // Without a write in between, the same read is stored.
        let (go, wait) = tokio::sync::oneshot::channel();
        go.send(()).unwrap();
        caches.read_through(&caches.grants, key.clone(), slow_read(wait, Role::Viewer)).await.unwrap();
        assert_eq!(caches.grants.get(&key), Some(Role::Viewer));
    }

    #[tokio::test]
    async fn a_read_in_flight_when_the_listener_drops_is_not_stored_and_none_is_served_meanwhile() {
        let caches = Caches::new(Backend::Postgres, "");
        caches.subscribed(7);
        let key = grant_key();
        caches.read_through(&caches.grants, key.clone(), async { Ok(Some(Role::Owner)) }).await.unwrap();
        assert_eq!(caches.grants.get(&key), Some(Role::Owner));

        let (go, wait) = tokio::sync::oneshot::channel();
        let reader = caches.read_through(&caches.grants, grant_key(), slow_read(wait, Role::Editor));
        let listener = async {
            tokio::task::yield_now().await;
            caches.unsubscribed();
            go.send(()).unwrap();
        };
        let (read, ()) = tokio::join!(reader, listener);
        assert_eq!(read.unwrap(), Some(Role::Editor));
        assert!(caches.grants.stats().entries == 0, "unsubscribing emptied the cache and refused the insert");

        // While unsubscribed every read goes to the database and nothing is stored.
        let bypassed = caches.stats().bypassed;
        let read = caches.read_through(&caches.grants, key.clone(), async { Ok(Some(Role::Viewer)) }).await.unwrap();
        assert_eq!((read, caches.stats().bypassed), (Some(Role::Viewer), bypassed + 1));
        assert!(caches.grants.stats().entries == 0);

        // A read in flight across a resubscription is refused too (notifications were lost).
        let (go, wait) = tokio::sync::oneshot::channel();
        caches.subscribed(8);
        let reader = caches.read_through(&caches.grants, key.clone(), slow_read(wait, Role::Editor));
        let listener = async {
            tokio::task::yield_now().await;
            caches.unsubscribed();
            caches.subscribed(9);
            go.send(()).unwrap();
        };
        tokio::join!(reader, listener).0.unwrap();
        assert_eq!(caches.grants.get(&key), None);
    }

    #[tokio::test]
    async fn a_batch_read_that_raced_an_invalidation_is_not_stored() {
        let caches = Caches::new(Backend::Sqlite, "");
        let (a, b) = (grant_key(), grant_key());
        caches.read_through(&caches.grants, a.clone(), async { Ok(Some(Role::Owner)) }).await.unwrap();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let b2 = b.clone();
        let reader = caches.read_many_through(&caches.grants, vec![a.clone(), b.clone()], |missing| async move {
            assert_eq!(missing, vec![b2.clone()], "only the missing key is read");
            wait.await.unwrap();
            Ok(vec![(b2, Role::Editor)])
        });
        let writer = async {
            tokio::task::yield_now().await;
            caches.invalidate(&Stale::Grant(b.0.clone(), b.1.clone()));
            go.send(()).unwrap();
        };
        let (read, ()) = tokio::join!(reader, writer);
        assert_eq!(read.unwrap(), vec![Role::Owner, Role::Editor]);
        assert_eq!(caches.grants.get(&b), None);
    }
}
