//! Conformance tests for vaults and model providers (registered in `conformance!` in the parent
//! file, so each runs on SQLite and PostgreSQL). The store only ever sees ciphertext; these
//! tests use opaque strings for it.

use steward_core::ids::VaultId;
use steward_core::provider::{ProviderConfig, ProviderId, ProviderKind};
use steward_core::vault::Vault;
use steward_store::{NewVault, VaultUpdate};

use super::*;

fn new_vault(sandbox: &SandboxId, name: &str, ciphertext: &str) -> NewVault {
    NewVault {
        id: VaultId::generate(),
        sandbox_id: sandbox.clone(),
        name: name.to_owned(),
        description: format!("the {name} key"),
        ciphertext: ciphertext.to_owned(),
    }
}

fn provider_config(vault: Option<&VaultId>) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::Anthropic, None, vault.cloned(), vec!["claude-sonnet-4-6".into(), "claude-haiku-4-5".into()])
        .expect("the test provider config is valid")
}

fn pid(raw: &str) -> ProviderId {
    ProviderId::parse(raw, "id").expect("the test provider id is valid")
}

async fn sandbox(store: &Store, owner_email: &str) -> SandboxId {
    let owner = account(store, owner_email).await;
    store.create_sandbox(&owner.id, "s").await.unwrap().id
}

pub(crate) async fn vault_round_trips_and_lists_without_its_ciphertext(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let new = new_vault(&sbx, "anthropic-key", "c1ph3r");
    let created = store.create_vault(new.clone()).await.expect("create");
    let expected = Vault {
        id: new.id.clone(),
        sandbox_id: sbx.clone(),
        name: "anthropic-key".into(),
        description: "the anthropic-key key".into(),
        created_at: START_MS,
        updated_at: START_MS,
    };
    assert_eq!(created, expected);
    assert_eq!(store.vault(&new.id).await.unwrap(), Some(expected.clone()));
    assert_eq!(store.vault_ciphertext(&new.id).await.unwrap().as_deref(), Some("c1ph3r"));
    assert_eq!(store.vaults(&sbx, &first_page(10)).await.unwrap().items, vec![expected]);
    assert_eq!(store.vault(&VaultId::generate()).await.unwrap(), None);
    assert_eq!(store.vault_ciphertext(&VaultId::generate()).await.unwrap(), None);
}

pub(crate) async fn vault_names_are_unique_per_sandbox(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let other = sandbox(&store, "bob@example.com").await;
    let first = store.create_vault(new_vault(&sbx, "key", "a")).await.unwrap();
    let dup = store.create_vault(new_vault(&sbx, "key", "b")).await;
    assert!(matches!(&dup, Err(StoreError::Duplicate(m)) if m.contains("`key`")), "{dup:?}");
    store.create_vault(new_vault(&other, "key", "c")).await.expect("the same name in another sandbox");
    let second = store.create_vault(new_vault(&sbx, "key-2", "d")).await.unwrap();
    let rename = store.update_vault(&second.id, VaultUpdate { name: Some("key".into()), ..Default::default() }).await;
    assert_duplicate(rename);
    assert_eq!(store.vault(&second.id).await.unwrap().unwrap().name, "key-2", "a refused rename changes nothing");
    assert_eq!(store.vault_ciphertext(&first.id).await.unwrap().as_deref(), Some("a"));
    assert_eq!(store.vaults(&sbx, &first_page(10)).await.unwrap().items.len(), 2);
}

pub(crate) async fn update_vault_changes_only_present_fields(store: Store, clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let v = store.create_vault(new_vault(&sbx, "key", "old")).await.unwrap();
    clock.advance_ms(1_000);
    let described = store.update_vault(&v.id, VaultUpdate { description: Some(HOSTILE.into()), ..Default::default() }).await.unwrap();
    assert_eq!((described.name.as_str(), described.description.as_str()), ("key", HOSTILE));
    assert_eq!((described.created_at, described.updated_at), (START_MS, START_MS + 1_000));
    assert_eq!(store.vault_ciphertext(&v.id).await.unwrap().as_deref(), Some("old"));
    clock.advance_ms(1_000);
    let rotated = store.update_vault(&v.id, VaultUpdate { ciphertext: Some("new".into()), ..Default::default() }).await.unwrap();
    assert_eq!((rotated.name.as_str(), rotated.description.as_str(), rotated.updated_at), ("key", HOSTILE, START_MS + 2_000));
    assert_eq!(store.vault_ciphertext(&v.id).await.unwrap().as_deref(), Some("new"));
    let renamed = store.update_vault(&v.id, VaultUpdate { name: Some("renamed".into()), ..Default::default() }).await.unwrap();
    assert_eq!(renamed.name, "renamed");
    assert_not_found(store.update_vault(&VaultId::generate(), VaultUpdate { name: Some("x".into()), ..Default::default() }).await);
}

pub(crate) async fn vaults_list_pages_newest_first_within_one_sandbox(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let other = sandbox(&store, "bob@example.com").await;
    let mut made = BTreeSet::new();
    for i in 0..7 {
        made.insert(store.create_vault(new_vault(&sbx, &format!("key-{i}"), "c")).await.unwrap().id);
    }
    store.create_vault(new_vault(&other, "theirs", "c")).await.unwrap();
    let pages = all_pages(
        3,
        |p| {
            let (store, sbx) = (&store, &sbx);
            async move { store.vaults(sbx, &p).await }
        },
        |v: &Vault| v.id.to_string(),
    )
    .await;
    assert_eq!(page_sizes(&pages), vec![3, 3, 1]);
    let ids: Vec<VaultId> = pages.into_iter().flatten().map(|v| v.id).collect();
    assert_strictly_descending(&ids);
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), made);
}

pub(crate) async fn delete_vault_is_refused_while_a_provider_uses_it(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let v = store.create_vault(new_vault(&sbx, "key", "c")).await.unwrap();
    store.create_provider(&sbx, &pid("anthropic"), provider_config(Some(&v.id))).await.unwrap();
    let second = store.create_provider(&sbx, &pid("backup"), provider_config(Some(&v.id))).await.unwrap();
    let refused = store.delete_vault(&v.id).await;
    assert!(
        matches!(&refused, Err(StoreError::InUse(m)) if m.contains("`anthropic`") && m.contains("`backup`")),
        "the conflict names every provider using the vault: {refused:?}"
    );
    assert!(store.vault(&v.id).await.unwrap().is_some(), "a refused delete deletes nothing");
    assert_eq!(store.vault_ciphertext(&v.id).await.unwrap().as_deref(), Some("c"));

    store.delete_provider(&sbx, &pid("anthropic")).await.unwrap();
    let cleared = ProviderConfig { api_key_vault_id: None, ..second.config.clone() };
    store.update_provider(&second, cleared).await.unwrap();
    store.delete_vault(&v.id).await.expect("unreferenced now");
    assert_eq!(store.vault(&v.id).await.unwrap(), None);
    assert_eq!(store.vault_ciphertext(&v.id).await.unwrap(), None);
    assert_not_found(store.delete_vault(&v.id).await);
}

pub(crate) async fn provider_round_trips_and_ids_are_unique_per_sandbox(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let other = sandbox(&store, "bob@example.com").await;
    let v = store.create_vault(new_vault(&sbx, "key", "c")).await.unwrap();
    let created = store.create_provider(&sbx, &pid("anthropic"), provider_config(Some(&v.id))).await.unwrap();
    assert_eq!((created.created_at, created.updated_at), (START_MS, START_MS));
    assert_eq!(store.provider(&sbx, &pid("anthropic")).await.unwrap(), Some(created.clone()));
    assert_eq!(created.config.models, vec!["claude-sonnet-4-6".to_owned(), "claude-haiku-4-5".to_owned()], "models keep their order");
    let dup = store.create_provider(&sbx, &pid("anthropic"), provider_config(None)).await;
    assert!(matches!(&dup, Err(StoreError::Duplicate(m)) if m.contains("`anthropic`")), "{dup:?}");
    assert_eq!(store.provider(&sbx, &pid("anthropic")).await.unwrap(), Some(created), "a refused create changes nothing");
    store.create_provider(&other, &pid("anthropic"), provider_config(None)).await.expect("the same id in another sandbox");
    assert_eq!(store.provider(&other, &pid("missing")).await.unwrap(), None);
}

pub(crate) async fn provider_vault_must_be_in_the_same_sandbox(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let other = sandbox(&store, "bob@example.com").await;
    let theirs = store.create_vault(new_vault(&other, "key", "c")).await.unwrap();
    assert!(matches!(store.create_provider(&sbx, &pid("p"), provider_config(Some(&theirs.id))).await, Err(StoreError::NotFound("vault"))));
    assert!(matches!(
        store.create_provider(&sbx, &pid("p"), provider_config(Some(&VaultId::generate()))).await,
        Err(StoreError::NotFound("vault"))
    ));
    assert_eq!(store.provider(&sbx, &pid("p")).await.unwrap(), None, "nothing was created");
    let p = store.create_provider(&sbx, &pid("p"), provider_config(None)).await.unwrap();
    let res = store.update_provider(&p, provider_config(Some(&theirs.id))).await;
    assert!(matches!(res, Err(StoreError::NotFound("vault"))), "{res:?}");
    assert_eq!(store.provider(&sbx, &pid("p")).await.unwrap(), Some(p));
}

pub(crate) async fn providers_list_in_id_order_and_page(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let other = sandbox(&store, "bob@example.com").await;
    // Created out of order; listed by id.
    for i in [4, 0, 6, 2, 5, 1, 3] {
        store.create_provider(&sbx, &pid(&format!("p{i}")), provider_config(None)).await.unwrap();
    }
    store.create_provider(&other, &pid("p9"), provider_config(None)).await.unwrap();
    let pages = all_pages(
        3,
        |p| {
            let (store, sbx) = (&store, &sbx);
            async move { store.providers(sbx, &p).await }
        },
        |p| p.id.to_string(),
    )
    .await;
    assert_eq!(page_sizes(&pages), vec![3, 3, 1]);
    let ids: Vec<String> = pages.into_iter().flatten().map(|p| p.id.to_string()).collect();
    assert_eq!(ids, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
}

pub(crate) async fn update_provider_is_compare_and_set(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    let p = store.create_provider(&sbx, &pid("openai"), provider_config(None)).await.unwrap();
    let mut first = p.config.clone();
    first.models = vec!["a".into()];
    // The clock does not move: the write still moves `updated_at` forward, so the stale read
    // below cannot match.
    let updated = store.update_provider(&p, first.clone()).await.unwrap();
    assert_eq!((updated.config.clone(), updated.created_at), (first, START_MS));
    assert!(updated.updated_at > p.updated_at);
    assert_eq!(store.provider(&sbx, &pid("openai")).await.unwrap(), Some(updated.clone()));
    let mut second = p.config.clone();
    second.models = vec!["b".into()];
    let stale = store.update_provider(&p, second).await;
    assert!(matches!(&stale, Err(StoreError::Stale(m)) if m.contains("changed meanwhile")), "{stale:?}");
    assert_eq!(store.provider(&sbx, &pid("openai")).await.unwrap(), Some(updated.clone()));

    store.delete_provider(&sbx, &pid("openai")).await.unwrap();
    assert_stale(store.update_provider(&updated, provider_config(None)).await);
    assert_not_found(store.delete_provider(&sbx, &pid("openai")).await);
}

pub(crate) async fn concurrent_vault_delete_never_leaves_a_dangling_reference(store: Store, _clock: ManualClock) {
    let sbx = sandbox(&store, "ada@example.com").await;
    for round in 0..5 {
        let v = store.create_vault(new_vault(&sbx, &format!("key-{round}"), "c")).await.unwrap();
        let mut set = JoinSet::new();
        for i in 0..4 {
            let (store, sbx, v) = (store.clone(), sbx.clone(), v.id.clone());
            set.spawn(async move {
                let _ = store.create_provider(&sbx, &pid(&format!("r{round}-{i}")), provider_config(Some(&v))).await;
            });
        }
        let (deleter, v_id) = (store.clone(), v.id.clone());
        set.spawn(async move {
            let _ = deleter.delete_vault(&v_id).await;
        });
        set.join_all().await;
        let vault_exists = store.vault(&v.id).await.unwrap().is_some();
        let users = store
            .providers(&sbx, &first_page(100))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.config.api_key_vault_id.as_ref() == Some(&v.id))
            .count();
        assert!(vault_exists || users == 0, "round {round}: {users} providers reference deleted vault {}", v.id);
    }
}

pub(crate) async fn destroy_sandbox_removes_its_vaults_and_providers(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let doomed = store.create_sandbox(&ada.id, "doomed").await.unwrap();
    let kept = store.create_sandbox(&ada.id, "kept").await.unwrap();
    let v = store.create_vault(new_vault(&doomed.id, "key", "c")).await.unwrap();
    store.create_provider(&doomed.id, &pid("anthropic"), provider_config(Some(&v.id))).await.unwrap();
    let kept_v = store.create_vault(new_vault(&kept.id, "key", "k")).await.unwrap();
    let kept_p = store.create_provider(&kept.id, &pid("anthropic"), provider_config(Some(&kept_v.id))).await.unwrap();

    store.destroy_sandbox(&doomed.id).await.expect("destroy");

    assert_eq!(store.vault(&v.id).await.unwrap(), None);
    assert_eq!(store.vault_ciphertext(&v.id).await.unwrap(), None);
    assert_eq!(store.provider(&doomed.id, &pid("anthropic")).await.unwrap(), None);
    assert!(store.vaults(&doomed.id, &first_page(10)).await.unwrap().items.is_empty());
    assert!(store.providers(&doomed.id, &first_page(10)).await.unwrap().items.is_empty());
    assert_eq!(store.vault(&kept_v.id).await.unwrap(), Some(kept_v));
    assert_eq!(store.provider(&kept.id, &pid("anthropic")).await.unwrap(), Some(kept_p));
}
