//! Conformance tests for tool sources and environments (registered in `conformance!` in the
//! parent file, so each runs on SQLite and PostgreSQL).

use serde_json::json;
use steward_core::environment::EnvironmentConfig;
use steward_core::ids::VaultId;
use steward_core::source::SourceConfig;
use steward_store::NewVault;

use super::*;

async fn sandbox(store: &Store, owner_email: &str) -> SandboxId {
    let owner = account(store, owner_email).await;
    store.create_sandbox(&owner.id, "s").await.unwrap().id
}

fn stdio(name: &str, vault: Option<&VaultId>) -> SourceConfig {
    let mut v = json!({"name": name, "kind": "mcp_stdio", "command": "npx", "args": ["-y", "pkg"]});
    if let Some(vault) = vault {
        v["env"] = json!({"TOKEN": {"vault_id": vault.as_str()}});
    }
    SourceConfig::from_json(v).unwrap()
}

async fn vault(store: &Store, sandbox: &SandboxId, name: &str) -> VaultId {
    let id = VaultId::generate();
    store
        .create_vault(NewVault {
            id: id.clone(),
            sandbox_id: sandbox.clone(),
            name: name.into(),
            description: String::new(),
            ciphertext: "c".into(),
        })
        .await
        .unwrap();
    id
}

pub(crate) async fn source_round_trips_and_names_are_unique(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let other = sandbox(&store, "bob@example.com").await;
    let v = vault(&store, &sbx, "tok").await;
    let created = store.create_source(&sbx, stdio("everything", Some(&v))).await.unwrap();
    assert_eq!(store.source(&created.id).await.unwrap(), Some(created.clone()));
    let dup = store.create_source(&sbx, stdio("everything", None)).await.unwrap_err();
    assert!(matches!(dup, StoreError::Duplicate(ref m) if m.contains("everything")), "{dup:?}");
    // Same name in another sandbox is fine; a vault of another sandbox is refused.
    store.create_source(&other, stdio("everything", None)).await.unwrap();
    let foreign = store.create_source(&other, stdio("x", Some(&v))).await.unwrap_err();
    assert!(matches!(foreign, StoreError::MissingReference(ref m) if m.contains(v.as_str())), "{foreign:?}");
    let listed = store.sources(&sbx, &PageRequest { limit: 10, before: None }).await.unwrap();
    assert_eq!(listed.items, vec![created.clone()]);
    assert_eq!(store.sources_by_id(&other, &[created.id.to_string()]).await.unwrap(), vec![]);
    assert_eq!(store.sources_by_id(&sbx, &[created.id.to_string()]).await.unwrap(), vec![created.clone()]);
}

pub(crate) async fn update_source_is_compare_and_set(store: Store, clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let created = store.create_source(&sbx, stdio("a", None)).await.unwrap();
    clock.advance_ms(5);
    let updated = store.update_source(&created, stdio("b", None)).await.unwrap();
    assert_eq!(updated.config.name, "b");
    let stale = store.update_source(&created, stdio("c", None)).await.unwrap_err();
    assert!(matches!(stale, StoreError::Stale(ref m) if m.contains("changed meanwhile")), "{stale:?}");
    store.delete_source(&created.id).await.unwrap();
    assert!(matches!(store.delete_source(&created.id).await, Err(StoreError::NotFound("source"))));
    assert_eq!(store.source(&created.id).await.unwrap(), None);
}

pub(crate) async fn environment_delete_is_refused_while_an_agent_uses_it(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let env = store.create_environment(&sbx, EnvironmentConfig::from_json(json!({"name": "py"})).unwrap()).await.unwrap();
    let dup = store.create_environment(&sbx, EnvironmentConfig::from_json(json!({"name": "py"})).unwrap()).await.unwrap_err();
    assert!(matches!(dup, StoreError::Duplicate(_)), "{dup:?}");
    let mut c = config("user");
    c.environment_id = Some(env.id.to_string());
    let agent = store.create_agent(&sbx, c).await.unwrap();
    assert_eq!(store.agents_using_environment(&sbx, &env.id).await.unwrap(), vec![agent.id.clone()]);
    let refused = store.delete_environment(&env).await.unwrap_err();
    assert!(matches!(refused, StoreError::InUse(ref m) if m.contains(agent.id.as_str())), "{refused:?}");
    assert!(store.environment(&env.id).await.unwrap().is_some());
    store.archive_agent(&agent.id).await.unwrap();
    store.delete_environment(&env).await.unwrap();
    assert_eq!(store.environment(&env.id).await.unwrap(), None);
}
