//! The read cache (see the store's `cache.rs`): every write is seen by the next read, in this
//! process (registered in `conformance!`, so on SQLite and PostgreSQL), and on another replica
//! once its notification arrives (PostgreSQL only, below: two stores on one schema). Each test
//! first checks the entry really is served from the cache, so a pass means invalidation worked,
//! not that the cache was bypassed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use steward_core::environment::EnvironmentConfig;
use steward_core::ids::{TriggerId, VaultId};
use steward_core::provider::{Provider, ProviderConfig, ProviderId, ProviderKind};
use steward_core::source::SourceConfig;
use steward_core::trigger::{TriggerConfig, TriggerState};
use steward_store::{NewVault, VaultUpdate};

use super::*;

/// How long another replica may take to see a change (the notification's latency, generously).
const REPLICA_WAIT: Duration = Duration::from_secs(15);

fn hits(store: &Store, kind: &str) -> u64 {
    store.cache_stats().kinds[kind].hits
}

/// Runs `read` twice and checks the second was a hit of `kind`'s cache; returns what it read.
///
/// On PostgreSQL an entry can be dropped between the two reads by the notification of the test's
/// own earlier write arriving late (or by the listener subscribing only now, which drops
/// everything), so this tries a few times before deciding the cache does not serve the entry.
async fn warm<T, Fut: Future<Output = Result<T, StoreError>>>(store: &Store, kind: &str, mut read: impl FnMut() -> Fut) -> T {
    for _ in 0..50 {
        read().await.unwrap();
        let before = hits(store, kind);
        let value = read().await.unwrap();
        if hits(store, kind) == before + 1 {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the second read of a {kind} entry was not served from the cache (50 tries)");
}

/// Polls `check` until it holds, failing after `REPLICA_WAIT`.
async fn eventually<Fut: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> Fut) {
    let deadline = tokio::time::Instant::now() + REPLICA_WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not seen within {REPLICA_WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn models(provider: Option<Provider>) -> Option<Vec<String>> {
    provider.map(|p| p.config.models)
}

fn provider_config(models: &[&str]) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::Anthropic, None, None, models.iter().map(|m| m.to_string()).collect()).unwrap()
}

/// A sandbox with a provider `anthropic` (models `m1`), a key, an agent with a trigger `gh`.
struct World {
    owner: AccountId,
    sbx: SandboxId,
    provider: ProviderId,
    key_hash: String,
    key: ApiKeyId,
    agent: AgentId,
    trigger: TriggerId,
}

async fn world(store: &Store) -> World {
    let owner = account(store, "ada@example.com").await;
    let sbx = store.create_sandbox(&owner.id, "s").await.unwrap().id;
    let provider = ProviderId::parse("anthropic", "id").unwrap();
    store.create_provider(&sbx, &provider, provider_config(&["m1"])).await.unwrap();
    let (new, key_hash) = new_key(&sbx, &owner.id, "ci");
    let key = store.create_api_key(new).await.unwrap().id;
    let agent = store.create_agent(&sbx, config("triage")).await.unwrap().id;
    let trigger = TriggerId::generate();
    store.create_trigger(&trigger, &sbx, &agent, TriggerConfig::from_json(json!({"name": "gh"})).unwrap(), "sealed").await.unwrap();
    World { owner: owner.id, sbx, provider, key_hash, key, agent, trigger }
}

pub(crate) async fn a_provider_update_or_delete_is_seen_by_the_next_read(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    let read = || store.cached_provider(&w.sbx, &w.provider);
    let current = warm(&store, "providers", read).await.unwrap();
    assert_eq!(current.config.models, ["m1"]);
    store.update_provider(&current, provider_config(&["m1", "m2"])).await.unwrap();
    assert_eq!(models(read().await.unwrap()), Some(vec!["m1".into(), "m2".into()]));
    store.delete_provider(&w.sbx, &w.provider).await.unwrap();
    assert_eq!(read().await.unwrap(), None);
}

pub(crate) async fn a_revoked_key_is_seen_revoked_by_the_next_read(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    let key = warm(&store, "keys", || store.api_key_by_hash(&w.key_hash)).await.unwrap();
    assert_eq!(key.revoked_at, None);
    store.revoke_api_key(&w.key).await.unwrap();
    assert_eq!(store.api_key_by_hash(&w.key_hash).await.unwrap().unwrap().revoked_at, Some(START_MS));
}

pub(crate) async fn trigger_changes_are_seen_by_the_next_read(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    let read = || store.trigger_with_secret(&w.trigger);
    let (t, secret) = warm(&store, "triggers", read).await.unwrap();
    assert_eq!((t.config.name.as_str(), secret.as_str()), ("gh", "sealed"));
    let renamed = TriggerConfig::from_json(json!({"name": "gh-2", "input_template": "{{ payload.x }}"})).unwrap();
    store.update_trigger(&t, renamed).await.unwrap();
    let (t, _) = read().await.unwrap().unwrap();
    assert_eq!((t.config.name.as_str(), t.config.input_template.as_str()), ("gh-2", "{{ payload.x }}"));
    store.set_trigger_state(&w.trigger, TriggerState::Paused, None).await.unwrap();
    assert!(read().await.unwrap().unwrap().0.paused_at(START_MS));
    store.set_trigger_state(&w.trigger, TriggerState::Active, None).await.unwrap();
    assert!(!read().await.unwrap().unwrap().0.paused_at(START_MS));
    store.delete_trigger(&w.trigger).await.unwrap();
    assert_eq!(read().await.unwrap(), None);
}

pub(crate) async fn agent_changes_are_seen_and_deleting_it_drops_its_versions_and_triggers(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    let v1 = warm(&store, "versions", || store.agent_version(&w.agent, 1)).await;
    warm(&store, "triggers", || store.trigger_with_secret(&w.trigger)).await;
    // The agent row is never cached: a change of its config or state is the next read's.
    store.update_agent(&w.agent, 1, config_with_prompt("triage", "v2")).await.unwrap();
    store.set_agent_state(&w.agent, AgentState::Active, AgentState::Paused, None).await.unwrap();
    let agent = store.agent(&w.agent).await.unwrap().unwrap();
    assert_eq!((agent.version, agent.state, agent.config.system_prompt.as_str()), (2, AgentState::Paused, "v2"));
    assert_eq!(store.agent_version(&w.agent, 1).await.unwrap(), v1, "a version never changes");
    assert_eq!(store.agent_version(&w.agent, 2).await.unwrap().unwrap().config.system_prompt, "v2");
    store.delete_agent(&w.agent).await.unwrap();
    for v in [1, 2] {
        assert_eq!(store.agent_version(&w.agent, v).await.unwrap(), None, "version {v} of a deleted agent is still served");
    }
    assert_eq!(store.trigger_with_secret(&w.trigger).await.unwrap(), None, "the deleted agent's trigger is still served");
}

pub(crate) async fn grant_and_sandbox_changes_are_seen_by_the_next_read(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    let bob = account(&store, "bob@example.com").await.id;
    store.put_grant(&w.sbx, &bob, Role::Editor).await.unwrap();
    assert_eq!(warm(&store, "grants", || store.role_of(&bob, &w.sbx)).await, Some(Role::Editor));
    store.put_grant(&w.sbx, &bob, Role::Viewer).await.unwrap();
    assert_eq!(store.role_of(&bob, &w.sbx).await.unwrap(), Some(Role::Viewer));
    store.remove_grant(&w.sbx, &bob).await.unwrap();
    assert_eq!(store.role_of(&bob, &w.sbx).await.unwrap(), None);

    let read = || store.cached_sandbox(&w.sbx);
    warm(&store, "sandboxes", read).await;
    store.rename_sandbox(&w.sbx, "renamed").await.unwrap();
    assert_eq!(read().await.unwrap().unwrap().name, "renamed");
    store.set_sandbox_time_zone(&w.sbx, "Europe/Paris").await.unwrap();
    assert_eq!(read().await.unwrap().unwrap().time_zone, "Europe/Paris");
    store.archive_sandbox(&w.sbx).await.unwrap();
    assert_eq!(read().await.unwrap().unwrap().archived_at, Some(START_MS));
}

pub(crate) async fn vault_source_and_environment_changes_are_seen_by_the_next_read(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    let vault = VaultId::generate();
    let new =
        NewVault { id: vault.clone(), sandbox_id: w.sbx.clone(), name: "k".into(), description: String::new(), ciphertext: "c1".into() };
    store.create_vault(new).await.unwrap();
    assert_eq!(warm(&store, "vaults", || store.vault_ciphertext(&vault)).await.as_deref(), Some("c1"));
    store.update_vault(&vault, VaultUpdate { ciphertext: Some("c2".into()), ..Default::default() }).await.unwrap();
    assert_eq!(store.vault_ciphertext(&vault).await.unwrap().as_deref(), Some("c2"));
    store.delete_vault(&vault).await.unwrap();
    assert_eq!(store.vault_ciphertext(&vault).await.unwrap(), None);

    let source =
        |name: &str| SourceConfig::from_json(json!({"name": name, "kind": "mcp_http", "url": "https://mcp.example.com/mcp"})).unwrap();
    let s = store.create_source(&w.sbx, source("docs")).await.unwrap();
    let ids = vec![s.id.to_string()];
    let read = || store.sources_by_id(&w.sbx, &ids);
    assert_eq!(warm(&store, "sources", read).await.len(), 1);
    let other = store.create_sandbox(&w.owner, "other").await.unwrap().id;
    assert!(store.sources_by_id(&other, &ids).await.unwrap().is_empty(), "a cached source is not another sandbox's");
    store.update_source(&s, source("docs-2")).await.unwrap();
    assert_eq!(read().await.unwrap()[0].config.name, "docs-2");
    store.delete_source(&s.id).await.unwrap();
    assert!(read().await.unwrap().is_empty());

    let env = store.create_environment(&w.sbx, EnvironmentConfig::from_json(json!({"name": "py"})).unwrap()).await.unwrap();
    let read = || store.cached_environment(&env.id);
    warm(&store, "environments", read).await;
    store.update_environment(&env, EnvironmentConfig::from_json(json!({"name": "py-2"})).unwrap()).await.unwrap();
    assert_eq!(read().await.unwrap().unwrap().config.name, "py-2");
    let current = read().await.unwrap().unwrap();
    store.delete_environment(&current).await.unwrap();
    assert_eq!(read().await.unwrap(), None);
}

pub(crate) async fn destroying_a_sandbox_drops_what_was_cached_of_it(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    warm(&store, "providers", || store.cached_provider(&w.sbx, &w.provider)).await;
    warm(&store, "keys", || store.api_key_by_hash(&w.key_hash)).await;
    warm(&store, "grants", || store.role_of(&w.owner, &w.sbx)).await;
    warm(&store, "sandboxes", || store.cached_sandbox(&w.sbx)).await;
    warm(&store, "versions", || store.agent_version(&w.agent, 1)).await;
    warm(&store, "triggers", || store.trigger_with_secret(&w.trigger)).await;
    store.destroy_sandbox(&w.sbx).await.unwrap();
    assert_eq!(store.cached_provider(&w.sbx, &w.provider).await.unwrap(), None);
    assert_eq!(store.api_key_by_hash(&w.key_hash).await.unwrap(), None);
    assert_eq!(store.role_of(&w.owner, &w.sbx).await.unwrap(), None);
    assert_eq!(store.cached_sandbox(&w.sbx).await.unwrap(), None);
    assert_eq!(store.agent_version(&w.agent, 1).await.unwrap(), None);
    assert_eq!(store.trigger_with_secret(&w.trigger).await.unwrap(), None);
}

/// Readers hitting and missing all the time while a writer updates: after each update returns,
/// the writer's next read sees it. (The narrow race this guards against — a read of the old row
/// stored after the invalidation — is rarely hit here; the unit tests of `cache.rs` drive that
/// interleaving deterministically.)
pub(crate) async fn reads_racing_writes_never_leave_a_stale_entry(store: Store, _clock: ManualClock) {
    let w = world(&store).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = JoinSet::new();
    for _ in 0..4 {
        let (store, sbx, provider, stop) = (store.clone(), w.sbx.clone(), w.provider.clone(), stop.clone());
        readers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                store.cached_provider(&sbx, &provider).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    let mut current = store.provider(&w.sbx, &w.provider).await.unwrap().unwrap();
    for i in 2..=60 {
        let want = format!("m{i}");
        current = store.update_provider(&current, provider_config(&[&want])).await.unwrap();
        assert_eq!(models(store.cached_provider(&w.sbx, &w.provider).await.unwrap()), Some(vec![want]), "update {i}");
    }
    stop.store(true, Ordering::Relaxed);
    while readers.join_next().await.transpose().unwrap().is_some() {}
}

// ---------------------------------------------------------------------------------------------
// Two replicas on PostgreSQL (one schema, two stores, each with its caches and listener).

mod replicas {
    use steward_core::clock::ManualClock;
    use steward_test_support::postgres::PgSchema;

    use super::*;

    /// Two stores on a fresh schema, A and B, each with caches of its own.
    async fn two_replicas() -> Option<(PgSchema, Store, Store)> {
        let schema = PgSchema::create("steward_cache").await.map(PgSchema::keep_on_failure)?;
        let clock = || -> Arc<dyn steward_core::clock::Clock> { Arc::new(ManualClock::new(START_MS)) };
        let a = Store::connect(schema.url(), clock()).await.expect("replica A");
        let b = Store::connect(schema.url(), clock()).await.expect("replica B");
        assert!(a.cache_stats().live && b.cache_stats().live, "both listeners subscribed before `connect` returned");
        Some((schema, a, b))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_replica_sees_each_change_once_notified() {
        let Some((_schema, a, b)) = two_replicas().await else { return };
        let w = world(&a).await;
        let bob = account(&a, "bob@example.com").await.id;
        a.put_grant(&w.sbx, &bob, Role::Editor).await.unwrap();
        let current = a.provider(&w.sbx, &w.provider).await.unwrap().unwrap();
        let t = a.trigger_with_secret(&w.trigger).await.unwrap().unwrap().0;

        // B serves all of these from its cache...
        warm(&b, "providers", || b.cached_provider(&w.sbx, &w.provider)).await;
        warm(&b, "keys", || b.api_key_by_hash(&w.key_hash)).await;
        warm(&b, "triggers", || b.trigger_with_secret(&w.trigger)).await;
        warm(&b, "grants", || b.role_of(&bob, &w.sbx)).await;
        warm(&b, "sandboxes", || b.cached_sandbox(&w.sbx)).await;
        warm(&b, "versions", || b.agent_version(&w.agent, 1)).await;

        // ...until A's writes are announced.
        a.update_provider(&current, provider_config(&["m1", "m2"])).await.unwrap();
        a.revoke_api_key(&w.key).await.unwrap();
        a.update_trigger(&t, TriggerConfig::from_json(json!({"name": "gh-2"})).unwrap()).await.unwrap();
        a.put_grant(&w.sbx, &bob, Role::Viewer).await.unwrap();
        a.archive_sandbox(&w.sbx).await.unwrap();
        eventually("the provider's new models on B", || async {
            models(b.cached_provider(&w.sbx, &w.provider).await.unwrap()) == Some(vec!["m1".into(), "m2".into()])
        })
        .await;
        eventually("the revocation on B", || async { b.api_key_by_hash(&w.key_hash).await.unwrap().unwrap().revoked_at.is_some() }).await;
        eventually("the trigger's new name on B", || async {
            b.trigger_with_secret(&w.trigger).await.unwrap().unwrap().0.config.name == "gh-2"
        })
        .await;
        eventually("the grant's new role on B", || async { b.role_of(&bob, &w.sbx).await.unwrap() == Some(Role::Viewer) }).await;
        eventually("the archive on B", || async { b.cached_sandbox(&w.sbx).await.unwrap().unwrap().archived_at.is_some() }).await;

        a.delete_agent(&w.agent).await.unwrap();
        eventually("the deleted agent's version gone on B", || async { b.agent_version(&w.agent, 1).await.unwrap().is_none() }).await;
        eventually("the deleted agent's trigger gone on B", || async { b.trigger_with_secret(&w.trigger).await.unwrap().is_none() }).await;
        // And the other way round.
        warm(&a, "providers", || a.cached_provider(&w.sbx, &w.provider)).await;
        b.delete_provider(&w.sbx, &w.provider).await.unwrap();
        eventually("B's delete on A", || async { a.cached_provider(&w.sbx, &w.provider).await.unwrap().is_none() }).await;
        a.close().await;
        b.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn as_another_replica_has_caches_and_a_listener_of_its_own() {
        let Some(schema) = PgSchema::create("steward_cache").await.map(PgSchema::keep_on_failure) else { return };
        let a = Store::connect(schema.url(), Arc::new(ManualClock::new(START_MS))).await.unwrap();
        let b = a.as_another_replica();
        eventually("B's listener subscribed", || async { b.cache_stats().live }).await;
        let w = world(&a).await;
        let current = warm(&b, "providers", || b.cached_provider(&w.sbx, &w.provider)).await.unwrap();
        assert_eq!(a.cache_stats().kinds["providers"].entries, 0, "A's caches are not B's");
        a.update_provider(&current, provider_config(&["m9"])).await.unwrap();
        eventually("A's update on B", || async {
            models(b.cached_provider(&w.sbx, &w.provider).await.unwrap()) == Some(vec!["m9".into()])
        })
        .await;
        b.close().await;
        a.close().await;
    }

    /// A write no notification announced (here: SQL behind the store's back) stays invisible to a
    /// warm cache, until the listener's connection drops: subscribing again empties the cache,
    /// because notifications sent while it was away are lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_reconnect_empties_the_cache() {
        let Some(schema) = PgSchema::create("steward_cache").await.map(PgSchema::keep_on_failure) else { return };
        let store = Store::connect(schema.url(), Arc::new(ManualClock::new(START_MS))).await.unwrap();
        let w = world(&store).await;
        warm(&store, "providers", || store.cached_provider(&w.sbx, &w.provider)).await;
        let admin = sqlx::AnyPool::connect(schema.url()).await.unwrap();
        sqlx::query("UPDATE providers SET models = '[\"behind-its-back\"]' WHERE sandbox_id = $1 AND id = $2")
            .bind(w.sbx.as_str())
            .bind(w.provider.as_str())
            .execute(&admin)
            .await
            .unwrap();
        assert_eq!(models(store.cached_provider(&w.sbx, &w.provider).await.unwrap()), Some(vec!["m1".into()]), "served from the cache");

        let before = store.cache_stats();
        let pid = before.listener_pid.expect("the listener is subscribed");
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&admin).await.unwrap();
        eventually("the listener subscribed again", || async {
            let now = store.cache_stats();
            now.live && now.resets > before.resets && now.listener_pid != Some(pid)
        })
        .await;
        assert_eq!(models(store.cached_provider(&w.sbx, &w.provider).await.unwrap()), Some(vec!["behind-its-back".into()]));
        admin.close().await;
        store.close().await;
    }
}
