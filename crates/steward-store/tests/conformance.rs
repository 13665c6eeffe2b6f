//! Store conformance: one set of behavioural tests that every backend must pass. Each test runs
//! on SQLite and on PostgreSQL (see `common` for how each gets a fresh database, and how the
//! PostgreSQL half is enabled), so the two backends cannot drift apart.
//!
//! Tests talk to the store only through its public API, move time with the [`ManualClock`]
//! instead of sleeping, and never assume more about id order than the store promises: ids sort
//! by creation time only to the millisecond, so lists are checked for "descending, complete, no
//! duplicates" rather than for an exact creation order.

#[macro_use]
mod common;
#[path = "conformance/admissions.rs"]
mod admissions;
#[path = "conformance/cache.rs"]
mod cache;
#[path = "conformance/channels.rs"]
mod channels;
#[path = "conformance/errors.rs"]
mod errors;
#[path = "conformance/tools.rs"]
mod tools;
#[path = "conformance/triggers.rs"]
mod triggers;
#[path = "conformance/vaults_providers.rs"]
mod vaults_providers;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;

use admissions::*;
use cache::*;
use channels::*;
use common::START_MS;
use errors::*;
use steward_core::agent::{AgentConfig, AgentState};
use steward_core::clock::ManualClock;
use steward_core::ids::{AccountId, AgentId, ApiKeyId, SandboxId};
use steward_core::keys;
use steward_core::tenancy::{Account, Email, KeyKind, Role};
use steward_store::{IdempotencyBegin, Listing, LoginCodeCheck, NewApiKey, NewSession, PageRequest, Store, StoreError, StoredResponse};
use steward_test_support::agent_config;
use tokio::task::JoinSet;
use tools::*;
use triggers::*;
use vaults_providers::*;

conformance!(
    create_account_and_look_it_up,
    duplicate_email_is_a_conflict,
    ensure_account_is_idempotent,
    concurrent_ensure_account_yields_one_account,
    login_code_is_accepted_once,
    wrong_login_code_counts_down_then_locks,
    login_code_expires,
    newest_login_code_is_the_one_checked,
    login_codes_since_counts_recent_codes_per_email,
    create_sandbox_grants_the_owner,
    sandboxes_of_pages_through_everything_once,
    sandboxes_of_filters_archived,
    rename_sandbox_changes_only_the_name,
    archive_sandbox_is_idempotent,
    destroy_sandbox_removes_everything_in_it,
    first_owned_sandbox_skips_archived_and_shared,
    put_grant_inserts_then_changes_the_role,
    put_grant_refuses_the_owner_role,
    owner_grant_cannot_be_changed_or_removed,
    remove_grant_revokes_access,
    grants_lists_everyone_once,
    api_key_round_trips_and_is_found_by_hash,
    api_keys_list_pages_within_one_sandbox,
    revoke_api_key_is_idempotent,
    create_agent_starts_at_version_1_active,
    duplicate_live_agent_name_is_a_conflict,
    archived_agent_frees_its_name,
    update_agent_writes_a_new_immutable_version,
    stale_update_is_a_conflict,
    update_to_a_taken_name_is_a_conflict,
    update_of_an_archived_agent_is_a_conflict,
    concurrent_updates_with_one_expected_version_have_one_winner,
    agent_versions_page_newest_first,
    agents_list_filters_archived_and_pages,
    set_agent_state_is_compare_and_set,
    delete_agent_removes_its_versions,
    idempotency_claim_replay_and_mismatch,
    abandoned_idempotency_key_can_be_claimed_again,
    idempotency_keys_expire_after_a_day,
    an_idempotency_key_of_a_dead_owner_is_taken_over_after_its_lease,
    sql_metacharacters_are_stored_verbatim,
    unicode_is_stored_verbatim,
    vault_round_trips_and_lists_without_its_ciphertext,
    vault_names_are_unique_per_sandbox,
    update_vault_changes_only_present_fields,
    vaults_list_pages_newest_first_within_one_sandbox,
    delete_vault_is_refused_while_a_provider_uses_it,
    provider_round_trips_and_ids_are_unique_per_sandbox,
    provider_vault_must_be_in_the_same_sandbox,
    providers_list_in_id_order_and_page,
    update_provider_is_compare_and_set,
    concurrent_vault_delete_never_leaves_a_dangling_reference,
    source_round_trips_and_names_are_unique,
    update_source_is_compare_and_set,
    environment_delete_is_refused_while_an_agent_uses_it,
    a_delivery_id_starts_one_run_even_when_sent_concurrently,
    a_burst_of_deliveries_on_two_replicas_starts_one_run_per_delivery_id,
    a_legacy_signature_starts_one_run_however_often_replicas_race_it,
    expired_signatures_are_forgotten_a_bounded_batch_at_a_time,
    trigger_state_errors_and_names,
    a_due_time_fires_once_when_replicas_race,
    deliveries_are_claimed_by_one_replica_and_retried,
    destroy_sandbox_removes_its_vaults_and_providers,
    unique_violations_are_duplicate_and_lost_compare_and_sets_are_stale,
    retry_on_stale_lands_every_racing_writer,
    a_closed_store_is_shutting_down,
    racing_turns_on_two_replicas_admit_one,
    a_new_session_run_is_born_running_for_its_owner,
    a_link_code_binds_its_chat_once,
    concurrent_redemptions_of_one_code_bind_once,
    a_link_code_expires,
    link_codes_are_limited_per_agent_and_kept_per_sandbox,
    a_chat_moves_to_the_agent_of_its_newest_code_and_deleted_agents_bind_nothing,
    an_update_is_accepted_once_per_bot,
    bots_and_delivery_attempts_round_trip,
    one_replica_holds_a_poller_lease_until_it_expires,
    a_provider_update_or_delete_is_seen_by_the_next_read,
    a_revoked_key_is_seen_revoked_by_the_next_read,
    trigger_changes_are_seen_by_the_next_read,
    agent_changes_are_seen_and_deleting_it_drops_its_versions_and_triggers,
    grant_and_sandbox_changes_are_seen_by_the_next_read,
    vault_source_and_environment_changes_are_seen_by_the_next_read,
    destroying_a_sandbox_drops_what_was_cached_of_it,
    reads_racing_writes_never_leave_a_stale_entry,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A new session of version 1 of `agent`, nothing else set.
fn new_session(sbx: &SandboxId, agent: &AgentId) -> NewSession {
    NewSession {
        sandbox_id: sbx.clone(),
        agent_id: agent.clone(),
        agent_version: 1,
        end_user: None,
        counterparty: None,
        metadata: Default::default(),
    }
}

/// Text that breaks any query built by string concatenation.
const HOSTILE: &str = "x'); DROP TABLE agents; --";

fn email(raw: &str) -> Email {
    Email::parse(raw, "email").expect("the test email is valid")
}

async fn account(store: &Store, raw_email: &str) -> Account {
    store.create_account(&email(raw_email)).await.expect("create account")
}

/// A valid agent configuration named `name`.
fn config(name: &str) -> AgentConfig {
    AgentConfig {
        description: format!("the {name} agent"),
        system_prompt: "You help.".into(),
        tools: vec!["search_issues".into()],
        max_turns: 15,
        max_output_tokens: 4096,
        temperature: Some(0.2),
        metadata: BTreeMap::from([("team".to_owned(), "support".to_owned())]),
        ..agent_config(name, "anthropic", "claude-sonnet-4-6")
    }
    .validated()
    .expect("the test config is valid")
}

/// `config(name)` with a different system prompt, to tell versions apart.
fn config_with_prompt(name: &str, prompt: &str) -> AgentConfig {
    AgentConfig { system_prompt: prompt.to_owned(), ..config(name) }.validated().expect("the test config is valid")
}

fn new_key(sandbox: &SandboxId, account: &AccountId, name: &str) -> (NewApiKey, String) {
    let minted = keys::mint();
    let new = NewApiKey {
        sandbox_id: sandbox.clone(),
        account_id: account.clone(),
        kind: KeyKind::Account,
        agent_id: None,
        name: name.to_owned(),
        key_hash: minted.hash.clone(),
        display_prefix: minted.display_prefix.clone(),
    };
    (new, minted.hash)
}

fn first_page(limit: u32) -> PageRequest {
    PageRequest { limit, before: None }
}

/// Fetches every page of a listing with `limit`, checking the cursor contract on the way: a
/// page with a cursor is full and its cursor is its last item's id; the last page has none.
async fn all_pages<T, F, Fut>(limit: u32, mut fetch: F, id_of: impl Fn(&T) -> String) -> Vec<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Listing<T>, StoreError>>,
{
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        assert!(pages.len() < 100, "the listing never ended");
        let page = fetch(PageRequest { limit, before }).await.expect("fetch a page");
        assert!(page.items.len() <= limit as usize, "a page holds more than `limit` items");
        if let Some(next) = &page.next_before {
            assert_eq!(page.items.len(), limit as usize, "a page with a cursor must be full");
            assert_eq!(Some(next), page.items.last().map(&id_of).as_ref(), "the cursor is the last item's id");
        }
        before = page.next_before;
        pages.push(page.items);
        if before.is_none() {
            return pages;
        }
    }
}

fn page_sizes<T>(pages: &[Vec<T>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

#[track_caller]
fn assert_strictly_descending<T: Ord + Debug>(items: &[T]) {
    assert!(items.windows(2).all(|w| w[0] > w[1]), "not strictly descending: {items:?}");
}

#[track_caller]
fn assert_conflict<T: Debug>(res: Result<T, StoreError>) {
    assert!(matches!(res, Err(StoreError::Conflict(_))), "expected a Conflict, got {res:?}");
}

/// A unique key was taken.
#[track_caller]
fn assert_duplicate<T: Debug>(res: Result<T, StoreError>) {
    assert!(matches!(res, Err(StoreError::Duplicate(_))), "expected Duplicate, got {res:?}");
}

/// A compare-and-set lost.
#[track_caller]
fn assert_stale<T: Debug>(res: Result<T, StoreError>) {
    assert!(matches!(res, Err(StoreError::Stale(_))), "expected Stale, got {res:?}");
}

#[track_caller]
fn assert_not_found<T: Debug>(res: Result<T, StoreError>) {
    assert!(matches!(res, Err(StoreError::NotFound(_))), "expected NotFound, got {res:?}");
}

// ---------------------------------------------------------------------------------------------
// Accounts

async fn create_account_and_look_it_up(store: Store, _clock: ManualClock) {
    store.ping().await.expect("ping");
    let ada = store.create_account(&email(" Ada@Example.COM ")).await.expect("create");
    assert_eq!(ada.email.as_str(), "ada@example.com");
    assert_eq!(ada.created_at, START_MS);
    assert_eq!(store.account(&ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(store.account_by_email(&email("ada@example.com")).await.unwrap(), Some(ada.clone()));
    assert_eq!(store.account_by_email(&email("bob@example.com")).await.unwrap(), None);
    assert_eq!(store.account(&AccountId::generate()).await.unwrap(), None);
}

async fn duplicate_email_is_a_conflict(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    assert_duplicate(store.create_account(&email("ADA@example.com")).await);
    assert_eq!(store.account_by_email(&ada.email).await.unwrap(), Some(ada));
}

async fn ensure_account_is_idempotent(store: Store, clock: ManualClock) {
    let first = store.ensure_account(&email("ada@example.com")).await.expect("ensure");
    clock.advance_ms(1_000);
    let second = store.ensure_account(&email("ada@example.com")).await.expect("ensure again");
    assert_eq!(first, second, "the second call must return the first account unchanged");
    let bob = account(&store, "bob@example.com").await;
    assert_eq!(store.ensure_account(&bob.email).await.unwrap(), bob);
}

async fn concurrent_ensure_account_yields_one_account(store: Store, _clock: ManualClock) {
    let mut set = JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        set.spawn(async move { store.ensure_account(&email("race@example.com")).await });
    }
    let ids: BTreeSet<AccountId> = set.join_all().await.into_iter().map(|r| r.expect("ensure").id).collect();
    assert_eq!(ids.len(), 1, "concurrent callers got different accounts: {ids:?}");
}

// ---------------------------------------------------------------------------------------------
// Login codes

const CODE_TTL_MS: i64 = 10 * 60 * 1000;

async fn login_code_is_accepted_once(store: Store, _clock: ManualClock) {
    let ada = email("ada@example.com");
    assert_eq!(store.check_login_code(&ada, "123456").await.unwrap(), LoginCodeCheck::NoLiveCode);
    store.put_login_code(&ada, "123456", CODE_TTL_MS).await.unwrap();
    assert_eq!(
        store.check_login_code(&email("bob@example.com"), "123456").await.unwrap(),
        LoginCodeCheck::NoLiveCode,
        "a code belongs to one email"
    );
    assert_eq!(store.check_login_code(&ada, "123456").await.unwrap(), LoginCodeCheck::Accepted);
    assert_eq!(store.check_login_code(&ada, "123456").await.unwrap(), LoginCodeCheck::NoLiveCode);
}

async fn wrong_login_code_counts_down_then_locks(store: Store, _clock: ManualClock) {
    let ada = email("ada@example.com");
    store.put_login_code(&ada, "123456", CODE_TTL_MS).await.unwrap();
    for attempts_left in (0..5).rev() {
        assert_eq!(store.check_login_code(&ada, "000000").await.unwrap(), LoginCodeCheck::Wrong { attempts_left });
    }
    assert_eq!(
        store.check_login_code(&ada, "123456").await.unwrap(),
        LoginCodeCheck::NoLiveCode,
        "after five wrong guesses even the right code is refused"
    );
}

async fn login_code_expires(store: Store, clock: ManualClock) {
    let ada = email("ada@example.com");
    store.put_login_code(&ada, "123456", CODE_TTL_MS).await.unwrap();
    clock.advance_ms(CODE_TTL_MS - 1);
    assert_eq!(
        store.check_login_code(&ada, "000000").await.unwrap(),
        LoginCodeCheck::Wrong { attempts_left: 4 },
        "the code is still live a millisecond before it expires"
    );
    clock.advance_ms(1);
    assert_eq!(store.check_login_code(&ada, "123456").await.unwrap(), LoginCodeCheck::NoLiveCode);
}

async fn newest_login_code_is_the_one_checked(store: Store, clock: ManualClock) {
    let ada = email("ada@example.com");
    store.put_login_code(&ada, "111111", CODE_TTL_MS).await.unwrap();
    clock.advance_ms(1);
    store.put_login_code(&ada, "222222", CODE_TTL_MS).await.unwrap();
    assert_eq!(store.check_login_code(&ada, "111111").await.unwrap(), LoginCodeCheck::Wrong { attempts_left: 4 });
    assert_eq!(store.check_login_code(&ada, "222222").await.unwrap(), LoginCodeCheck::Accepted);
}

async fn login_codes_since_counts_recent_codes_per_email(store: Store, clock: ManualClock) {
    let ada = email("ada@example.com");
    let bob = email("bob@example.com");
    for _ in 0..3 {
        store.put_login_code(&ada, "123456", CODE_TTL_MS).await.unwrap();
        clock.advance_ms(10);
    }
    store.put_login_code(&bob, "123456", CODE_TTL_MS).await.unwrap();
    assert_eq!(store.login_codes_since(&ada, START_MS).await.unwrap(), 3);
    assert_eq!(store.login_codes_since(&ada, START_MS + 10).await.unwrap(), 2, "the bound is inclusive");
    assert_eq!(store.login_codes_since(&ada, START_MS + 21).await.unwrap(), 0);
    assert_eq!(store.login_codes_since(&bob, START_MS).await.unwrap(), 1);
    assert_eq!(store.login_codes_since(&email("eve@example.com"), 0).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Sandboxes

async fn create_sandbox_grants_the_owner(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "Ada's lab").await.expect("create sandbox");
    assert_eq!((sbx.name.as_str(), &sbx.owner_id, sbx.created_at, sbx.archived_at), ("Ada's lab", &ada.id, START_MS, None));
    assert_eq!(store.sandbox(&sbx.id).await.unwrap(), Some(sbx.clone()));
    assert_eq!(store.role_of(&ada.id, &sbx.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(store.role_of(&bob.id, &sbx.id).await.unwrap(), None);
    let grant = store.grant(&sbx.id, &ada.id).await.unwrap().expect("the owner has a grant");
    assert_eq!((grant.role, grant.email, grant.created_at), (Role::Owner, ada.email, START_MS));
    assert_eq!(store.sandbox(&SandboxId::generate()).await.unwrap(), None);
}

async fn sandboxes_of_pages_through_everything_once(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    let mut created = BTreeSet::new();
    for i in 0..5 {
        created.insert(store.create_sandbox(&ada.id, &format!("sandbox {i}")).await.unwrap().id);
    }
    store.create_sandbox(&bob.id, "bob's").await.unwrap();

    let pages = all_pages(
        2,
        |p| {
            let (store, ada) = (&store, &ada);
            async move { store.sandboxes_of(&ada.id, false, &p).await }
        },
        |s| s.sandbox.id.to_string(),
    )
    .await;
    assert_eq!(page_sizes(&pages), [2, 2, 1]);
    let listed: Vec<_> = pages.into_iter().flatten().collect();
    assert!(listed.iter().all(|s| s.role == Role::Owner && s.sandbox.owner_id == ada.id));
    let ids: Vec<SandboxId> = listed.into_iter().map(|s| s.sandbox.id).collect();
    assert_strictly_descending(&ids);
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), created, "each of ada's sandboxes exactly once, and only hers");

    // A limit equal to the count ends in one page without a cursor.
    let whole = store.sandboxes_of(&ada.id, false, &first_page(5)).await.unwrap();
    assert_eq!((whole.items.len(), whole.next_before), (5, None));
}

async fn sandboxes_of_filters_archived(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    let live = store.create_sandbox(&ada.id, "live").await.unwrap();
    let old = store.create_sandbox(&ada.id, "old").await.unwrap();
    let shared = store.create_sandbox(&bob.id, "bob shares").await.unwrap();
    store.put_grant(&shared.id, &ada.id, Role::Editor).await.unwrap();
    store.archive_sandbox(&old.id).await.unwrap();

    let current = store.sandboxes_of(&ada.id, false, &first_page(10)).await.unwrap();
    let mut got: Vec<_> = current.items.iter().map(|s| (s.sandbox.id.clone(), s.role)).collect();
    got.sort();
    let mut want = vec![(live.id.clone(), Role::Owner), (shared.id.clone(), Role::Editor)];
    want.sort();
    assert_eq!(got, want);

    let archived = store.sandboxes_of(&ada.id, true, &first_page(10)).await.unwrap();
    assert_eq!(archived.items.len(), 1);
    assert_eq!(archived.items[0].sandbox.id, old.id);
    assert_eq!(archived.items[0].sandbox.archived_at, Some(START_MS));
}

async fn rename_sandbox_changes_only_the_name(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "before").await.unwrap();
    clock.advance_ms(5);
    let renamed = store.rename_sandbox(&sbx.id, "after").await.expect("rename");
    assert_eq!(renamed.name, "after");
    assert_eq!(renamed.created_at, sbx.created_at);
    assert_eq!(store.sandbox(&sbx.id).await.unwrap(), Some(renamed));
    assert_not_found(store.rename_sandbox(&SandboxId::generate(), "nobody").await);
}

async fn archive_sandbox_is_idempotent(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "to archive").await.unwrap();
    clock.advance_ms(1_000);
    let first = store.archive_sandbox(&sbx.id).await.expect("archive");
    assert_eq!(first.archived_at, Some(START_MS + 1_000));
    clock.advance_ms(1_000);
    let second = store.archive_sandbox(&sbx.id).await.expect("archive again");
    assert_eq!(second.archived_at, Some(START_MS + 1_000), "archiving again keeps the first time");
    assert_not_found(store.archive_sandbox(&SandboxId::generate()).await);
}

async fn destroy_sandbox_removes_everything_in_it(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    let doomed = store.create_sandbox(&ada.id, "doomed").await.unwrap();
    let kept = store.create_sandbox(&ada.id, "kept").await.unwrap();
    store.put_grant(&doomed.id, &bob.id, Role::Editor).await.unwrap();
    let agent = store.create_agent(&doomed.id, config("helper")).await.unwrap();
    store.update_agent(&agent.id, 1, config_with_prompt("helper", "v2")).await.unwrap();
    let (key, key_hash) = new_key(&doomed.id, &ada.id, "ci");
    let key = store.create_api_key(key).await.unwrap();
    let kept_agent = store.create_agent(&kept.id, config("helper")).await.unwrap();
    let (kept_key, kept_hash) = new_key(&kept.id, &ada.id, "ci");
    store.create_api_key(kept_key).await.unwrap();

    store.destroy_sandbox(&doomed.id).await.expect("destroy");

    assert_eq!(store.sandbox(&doomed.id).await.unwrap(), None);
    assert_eq!(store.agent(&agent.id).await.unwrap(), None);
    for v in [1, 2] {
        assert_eq!(store.agent_version(&agent.id, v).await.unwrap(), None, "version {v} survived");
    }
    assert_eq!(store.api_key(&key.id).await.unwrap(), None);
    assert_eq!(store.api_key_by_hash(&key_hash).await.unwrap(), None);
    assert_eq!(store.role_of(&ada.id, &doomed.id).await.unwrap(), None);
    assert_eq!(store.role_of(&bob.id, &doomed.id).await.unwrap(), None);
    assert!(store.sandboxes_of(&bob.id, false, &first_page(10)).await.unwrap().items.is_empty());
    assert!(store.grants(&doomed.id, &first_page(10)).await.unwrap().items.is_empty());

    // The neighbour is untouched, including an agent with the same name.
    assert_eq!(store.agent(&kept_agent.id).await.unwrap(), Some(kept_agent.clone()));
    assert!(store.agent_version(&kept_agent.id, 1).await.unwrap().is_some());
    assert!(store.api_key_by_hash(&kept_hash).await.unwrap().is_some());
    assert_eq!(store.role_of(&ada.id, &kept.id).await.unwrap(), Some(Role::Owner));

    assert_not_found(store.destroy_sandbox(&doomed.id).await);
}

async fn first_owned_sandbox_skips_archived_and_shared(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    assert_eq!(store.first_owned_sandbox(&ada.id).await.unwrap(), None);
    let archived = store.create_sandbox(&ada.id, "archived").await.unwrap();
    store.archive_sandbox(&archived.id).await.unwrap();
    let shared = store.create_sandbox(&bob.id, "bob's").await.unwrap();
    store.put_grant(&shared.id, &ada.id, Role::Editor).await.unwrap();
    assert_eq!(store.first_owned_sandbox(&ada.id).await.unwrap(), None);
    let owned = store.create_sandbox(&ada.id, "mine").await.unwrap();
    assert_eq!(store.first_owned_sandbox(&ada.id).await.unwrap(), Some(owned.id));
}

// ---------------------------------------------------------------------------------------------
// Grants

async fn put_grant_inserts_then_changes_the_role(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    clock.advance_ms(10);
    let grant = store.put_grant(&sbx.id, &bob.id, Role::Editor).await.expect("grant editor");
    assert_eq!((&grant.sandbox_id, &grant.account_id, &grant.email), (&sbx.id, &bob.id, &bob.email));
    assert_eq!((grant.role, grant.created_at), (Role::Editor, START_MS + 10));
    assert_eq!(store.role_of(&bob.id, &sbx.id).await.unwrap(), Some(Role::Editor));

    clock.advance_ms(10);
    let changed = store.put_grant(&sbx.id, &bob.id, Role::Viewer).await.expect("grant viewer");
    assert_eq!((changed.role, changed.created_at), (Role::Viewer, START_MS + 10), "a role change keeps the grant's creation time");
    assert_eq!(store.role_of(&bob.id, &sbx.id).await.unwrap(), Some(Role::Viewer));
    assert_eq!(store.grants(&sbx.id, &first_page(10)).await.unwrap().items.len(), 2, "changing a role adds no grant");
}

async fn put_grant_refuses_the_owner_role(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    assert_conflict(store.put_grant(&sbx.id, &bob.id, Role::Owner).await);
    assert_eq!(store.role_of(&bob.id, &sbx.id).await.unwrap(), None);
    store.put_grant(&sbx.id, &bob.id, Role::Editor).await.unwrap();
    assert_conflict(store.put_grant(&sbx.id, &bob.id, Role::Owner).await);
    assert_eq!(store.role_of(&bob.id, &sbx.id).await.unwrap(), Some(Role::Editor));
}

async fn owner_grant_cannot_be_changed_or_removed(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    assert_conflict(store.put_grant(&sbx.id, &ada.id, Role::Editor).await);
    assert_conflict(store.put_grant(&sbx.id, &ada.id, Role::Viewer).await);
    assert_conflict(store.remove_grant(&sbx.id, &ada.id).await);
    assert_eq!(store.role_of(&ada.id, &sbx.id).await.unwrap(), Some(Role::Owner));
}

async fn remove_grant_revokes_access(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let bob = account(&store, "bob@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    store.put_grant(&sbx.id, &bob.id, Role::Editor).await.unwrap();
    assert_eq!(store.sandboxes_of(&bob.id, false, &first_page(10)).await.unwrap().items.len(), 1);

    store.remove_grant(&sbx.id, &bob.id).await.expect("remove");
    assert_eq!(store.role_of(&bob.id, &sbx.id).await.unwrap(), None);
    assert_eq!(store.grant(&sbx.id, &bob.id).await.unwrap(), None);
    assert!(store.sandboxes_of(&bob.id, false, &first_page(10)).await.unwrap().items.is_empty());
    assert_not_found(store.remove_grant(&sbx.id, &bob.id).await);
}

async fn grants_lists_everyone_once(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let other = store.create_sandbox(&ada.id, "other").await.unwrap();
    let mut want = BTreeMap::from([(ada.id.clone(), Role::Owner)]);
    for (i, role) in [Role::Editor, Role::Viewer, Role::Editor].into_iter().enumerate() {
        let who = account(&store, &format!("user{i}@example.com")).await;
        store.put_grant(&sbx.id, &who.id, role).await.unwrap();
        want.insert(who.id, role);
    }
    let outsider = account(&store, "outsider@example.com").await;
    store.put_grant(&other.id, &outsider.id, Role::Viewer).await.unwrap();

    let pages = all_pages(
        2,
        |p| {
            let (store, sbx) = (&store, &sbx);
            async move { store.grants(&sbx.id, &p).await }
        },
        |g| g.account_id.to_string(),
    )
    .await;
    assert_eq!(page_sizes(&pages), [2, 2]);
    let listed: Vec<_> = pages.into_iter().flatten().collect();
    assert!(listed.iter().all(|g| g.sandbox_id == sbx.id));
    let ids: Vec<_> = listed.iter().map(|g| g.account_id.clone()).collect();
    assert_strictly_descending(&ids);
    let got: BTreeMap<_, _> = listed.into_iter().map(|g| (g.account_id, g.role)).collect();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------------------------
// API keys

async fn api_key_round_trips_and_is_found_by_hash(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();

    let (new, hash) = new_key(&sbx.id, &ada.id, "laptop");
    let key = store.create_api_key(new.clone()).await.expect("create key");
    assert_eq!((key.kind, &key.name, &key.display_prefix), (KeyKind::Account, &new.name, &new.display_prefix));
    assert_eq!((key.created_at, key.revoked_at, &key.agent_id), (START_MS, None, &None));
    assert_eq!(store.api_key_by_hash(&hash).await.unwrap(), Some(key.clone()));
    assert_eq!(store.api_key(&key.id).await.unwrap(), Some(key));

    let (mut new, hash) = new_key(&sbx.id, &ada.id, "widget");
    new.kind = KeyKind::AgentDelegate;
    new.agent_id = Some(agent.id.clone());
    let scoped = store.create_api_key(new).await.expect("create agent key");
    let found = store.api_key_by_hash(&hash).await.unwrap().expect("found by hash");
    assert_eq!((found.kind, found.agent_id.as_ref()), (KeyKind::AgentDelegate, Some(&agent.id)));
    assert_eq!(found, scoped);

    assert_eq!(store.api_key_by_hash(&keys::mint().hash).await.unwrap(), None);
    assert_eq!(store.api_key(&ApiKeyId::generate()).await.unwrap(), None);
}

async fn api_keys_list_pages_within_one_sandbox(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let mine = store.create_sandbox(&ada.id, "mine").await.unwrap();
    let other = store.create_sandbox(&ada.id, "other").await.unwrap();
    let mut created = BTreeSet::new();
    for i in 0..5 {
        created.insert(store.create_api_key(new_key(&mine.id, &ada.id, &format!("key {i}")).0).await.unwrap().id);
    }
    for i in 0..2 {
        store.create_api_key(new_key(&other.id, &ada.id, &format!("other {i}")).0).await.unwrap();
    }

    let pages = all_pages(
        2,
        |p| {
            let (store, mine) = (&store, &mine);
            async move { store.api_keys(&mine.id, &p).await }
        },
        |k| k.id.to_string(),
    )
    .await;
    assert_eq!(page_sizes(&pages), [2, 2, 1]);
    let ids: Vec<ApiKeyId> = pages.into_iter().flatten().map(|k| k.id).collect();
    assert_strictly_descending(&ids);
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), created, "each key of the sandbox once, and no other sandbox's");
}

async fn revoke_api_key_is_idempotent(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let (new, hash) = new_key(&sbx.id, &ada.id, "ci");
    let key = store.create_api_key(new).await.unwrap();
    clock.advance_ms(1_000);
    let revoked = store.revoke_api_key(&key.id).await.expect("revoke");
    assert_eq!(revoked.revoked_at, Some(START_MS + 1_000));
    clock.advance_ms(1_000);
    let again = store.revoke_api_key(&key.id).await.expect("revoke again");
    assert_eq!(again.revoked_at, Some(START_MS + 1_000), "revoking again keeps the first time");
    assert_eq!(store.api_key_by_hash(&hash).await.unwrap().and_then(|k| k.revoked_at), Some(START_MS + 1_000));
    assert_not_found(store.revoke_api_key(&ApiKeyId::generate()).await);
}

// ---------------------------------------------------------------------------------------------
// Agents

async fn create_agent_starts_at_version_1_active(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.expect("create agent");
    assert_eq!((agent.version, agent.state, &agent.sandbox_id), (1, AgentState::Active, &sbx.id));
    assert_eq!((agent.created_at, agent.updated_at, agent.archived_at), (START_MS, START_MS, None));
    assert_eq!((&agent.state_reason, agent.token_balance), (&None, None));
    assert_eq!(agent.config, config("helper"));
    assert_eq!(store.agent(&agent.id).await.unwrap(), Some(agent.clone()));
    let v1 = store.agent_version(&agent.id, 1).await.unwrap().expect("version 1 is stored");
    assert_eq!((v1.agent_id, v1.version, v1.config, v1.created_at), (agent.id, 1, config("helper"), START_MS));
    assert_eq!(store.agent(&AgentId::generate()).await.unwrap(), None);
}

async fn duplicate_live_agent_name_is_a_conflict(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let other = store.create_sandbox(&ada.id, "other").await.unwrap();
    store.create_agent(&sbx.id, config("helper")).await.unwrap();
    assert_duplicate(store.create_agent(&sbx.id, config("helper")).await);
    assert_eq!(store.agents(&sbx.id, false, &first_page(10)).await.unwrap().items.len(), 1);
    store.create_agent(&other.id, config("helper")).await.expect("names are unique per sandbox only");
}

async fn archived_agent_frees_its_name(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let old = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    clock.advance_ms(100);
    let archived = store.archive_agent(&old.id).await.expect("archive");
    assert_eq!(archived.archived_at, Some(START_MS + 100));
    clock.advance_ms(100);
    let again = store.archive_agent(&old.id).await.expect("archive again");
    assert_eq!(again.archived_at, Some(START_MS + 100), "archiving again keeps the first time");

    let new = store.create_agent(&sbx.id, config("helper")).await.expect("the archived agent's name is free");
    assert_ne!(new.id, old.id);
    assert_duplicate(store.create_agent(&sbx.id, config("helper")).await);
}

async fn update_agent_writes_a_new_immutable_version(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    clock.advance_ms(500);
    let v2_config = config_with_prompt("helper", "You help, briefly.");
    let updated = store.update_agent(&agent.id, 1, v2_config.clone()).await.expect("update");
    assert_eq!((updated.version, &updated.config), (2, &v2_config));
    assert_eq!((updated.created_at, updated.updated_at), (START_MS, START_MS + 500));
    assert_eq!(store.agent(&agent.id).await.unwrap(), Some(updated));

    let v1 = store.agent_version(&agent.id, 1).await.unwrap().expect("version 1");
    assert_eq!((v1.config, v1.created_at), (config("helper"), START_MS), "version 1 must never change");
    let v2 = store.agent_version(&agent.id, 2).await.unwrap().expect("version 2");
    assert_eq!((v2.config, v2.created_at), (v2_config, START_MS + 500));
}

async fn stale_update_is_a_conflict(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    store.update_agent(&agent.id, 1, config_with_prompt("helper", "second")).await.unwrap();
    assert_stale(store.update_agent(&agent.id, 1, config_with_prompt("helper", "stale")).await);
    assert_stale(store.update_agent(&agent.id, 7, config_with_prompt("helper", "future")).await);
    let now = store.agent(&agent.id).await.unwrap().unwrap();
    assert_eq!((now.version, now.config.system_prompt.as_str()), (2, "second"));
    assert_eq!(store.agent_version(&agent.id, 3).await.unwrap(), None);
}

async fn update_to_a_taken_name_is_a_conflict(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    store.create_agent(&sbx.id, config("taken")).await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    assert_duplicate(store.update_agent(&agent.id, 1, config("taken")).await);
    assert_eq!(store.agent(&agent.id).await.unwrap(), Some(agent.clone()));
    assert_eq!(store.agent_version(&agent.id, 2).await.unwrap(), None);
    let renamed = store.update_agent(&agent.id, 1, config("free")).await.expect("rename to a free name");
    assert_eq!(renamed.config.name, "free");
    store.create_agent(&sbx.id, config("helper")).await.expect("the old name is free after a rename");
}

async fn update_of_an_archived_agent_is_a_conflict(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    store.archive_agent(&agent.id).await.unwrap();
    assert_stale(store.update_agent(&agent.id, 1, config_with_prompt("helper", "too late")).await);
    assert_eq!(store.agent(&agent.id).await.unwrap().unwrap().version, 1);
}

async fn concurrent_updates_with_one_expected_version_have_one_winner(store: Store, _clock: ManualClock) {
    const WRITERS: usize = 8;
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    let mut set = JoinSet::new();
    for i in 0..WRITERS {
        let (store, id) = (store.clone(), agent.id.clone());
        set.spawn(async move { store.update_agent(&id, 1, config_with_prompt("helper", &format!("writer {i}"))).await });
    }
    let results = set.join_all().await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one writer may produce version 2: {results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::Stale(_)))), "{results:?}");

    let current = store.agent(&agent.id).await.unwrap().unwrap();
    assert_eq!(&current, winners[0]);
    assert_eq!(current.version, 2);
    let versions = store.agent_versions(&agent.id, &first_page(10)).await.unwrap();
    assert_eq!(versions.items.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(versions.items[0].config, current.config);
}

async fn agent_versions_page_newest_first(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    for version in 1..5 {
        clock.advance_ms(1);
        store.update_agent(&agent.id, version, config_with_prompt("helper", &format!("v{}", version + 1))).await.unwrap();
    }

    let pages = all_pages(
        2,
        |p| {
            let (store, agent) = (&store, &agent);
            async move { store.agent_versions(&agent.id, &p).await }
        },
        |v| v.version.to_string(),
    )
    .await;
    let versions: Vec<Vec<i64>> = pages.iter().map(|page| page.iter().map(|v| v.version).collect()).collect();
    assert_eq!(versions, [vec![5, 4], vec![3, 2], vec![1]]);
    let v3 = &pages[1][0];
    assert_eq!((v3.config.system_prompt.as_str(), v3.created_at, &v3.agent_id), ("v3", START_MS + 2, &agent.id));
    assert_eq!(pages[2][0].config, config("helper"));

    assert_eq!(store.agent_version(&agent.id, 6).await.unwrap(), None);
    assert_eq!(store.agent_version(&agent.id, 0).await.unwrap(), None);
    assert_eq!(store.agent_version(&AgentId::generate(), 1).await.unwrap(), None);
    assert!(store.agent_versions(&AgentId::generate(), &first_page(10)).await.unwrap().items.is_empty());
    let bad_cursor = PageRequest { limit: 2, before: Some("agt_not_a_version".into()) };
    assert_conflict(store.agent_versions(&agent.id, &bad_cursor).await);
}

async fn agents_list_filters_archived_and_pages(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let other = store.create_sandbox(&ada.id, "other").await.unwrap();
    let (mut live, mut archived) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..5 {
        let agent = store.create_agent(&sbx.id, config(&format!("agent-{i}"))).await.unwrap();
        if i % 2 == 1 {
            store.archive_agent(&agent.id).await.unwrap();
            archived.insert(agent.id);
        } else {
            live.insert(agent.id);
        }
    }
    store.create_agent(&other.id, config("elsewhere")).await.unwrap();

    for (want_archived, want, sizes) in [(false, &live, vec![2, 1]), (true, &archived, vec![2])] {
        let pages = all_pages(
            2,
            |p| {
                let (store, sbx) = (&store, &sbx);
                async move { store.agents(&sbx.id, want_archived, &p).await }
            },
            |a| a.id.to_string(),
        )
        .await;
        assert_eq!(page_sizes(&pages), sizes, "archived = {want_archived}");
        let listed: Vec<_> = pages.into_iter().flatten().collect();
        assert!(listed.iter().all(|a| a.archived_at.is_some() == want_archived && a.sandbox_id == sbx.id));
        let ids: Vec<AgentId> = listed.into_iter().map(|a| a.id).collect();
        assert_strictly_descending(&ids);
        assert_eq!(&ids.into_iter().collect::<BTreeSet<_>>(), want, "archived = {want_archived}");
    }
}

async fn set_agent_state_is_compare_and_set(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    clock.advance_ms(10);
    let paused = store.set_agent_state(&agent.id, AgentState::Active, AgentState::Paused, Some("maintenance")).await.expect("pause");
    assert_eq!((paused.state, paused.state_reason.as_deref()), (AgentState::Paused, Some("maintenance")));
    assert_eq!((paused.updated_at, paused.version), (START_MS + 10, 1), "a state change is not a new version");
    assert_eq!(store.agent(&agent.id).await.unwrap(), Some(paused));

    assert_stale(store.set_agent_state(&agent.id, AgentState::Active, AgentState::Stopped, None).await);
    assert_eq!(store.agent(&agent.id).await.unwrap().unwrap().state, AgentState::Paused, "a stale `from` changes nothing");

    let resumed = store.set_agent_state(&agent.id, AgentState::Paused, AgentState::Active, None).await.expect("resume");
    assert_eq!((resumed.state, resumed.state_reason), (AgentState::Active, None), "the reason is cleared");

    store.archive_agent(&agent.id).await.unwrap();
    assert_stale(store.set_agent_state(&agent.id, AgentState::Active, AgentState::Paused, None).await);
}

async fn delete_agent_removes_its_versions(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let doomed = store.create_agent(&sbx.id, config("doomed")).await.unwrap();
    store.update_agent(&doomed.id, 1, config_with_prompt("doomed", "v2")).await.unwrap();
    let kept = store.create_agent(&sbx.id, config("kept")).await.unwrap();

    store.delete_agent(&doomed.id).await.expect("delete");
    assert_eq!(store.agent(&doomed.id).await.unwrap(), None);
    assert!(store.agent_versions(&doomed.id, &first_page(10)).await.unwrap().items.is_empty());
    assert_eq!(store.agent_version(&doomed.id, 1).await.unwrap(), None);
    assert_eq!(store.agent(&kept.id).await.unwrap(), Some(kept.clone()));
    assert!(store.agent_version(&kept.id, 1).await.unwrap().is_some());
    store.create_agent(&sbx.id, config("doomed")).await.expect("a deleted agent's name is free");
    assert_not_found(store.delete_agent(&doomed.id).await);
}

// ---------------------------------------------------------------------------------------------
// Idempotency

const DAY_MS: i64 = 24 * 3600 * 1000;

use steward_core::clock::Clock as _;

const LEASE_MS: i64 = 10_000;

/// Claims a key as replica `node-a`, with a lease of [`LEASE_MS`].
async fn begin(
    store: &Store,
    clock: &ManualClock,
    scope: &str,
    key: &str,
    fp: &str,
) -> Result<IdempotencyBegin, steward_store::StoreError> {
    store.idempotency_begin(scope, key, fp, "node-a:1", clock.now_ms() + LEASE_MS).await
}

/// A replica dies with a request in flight: its retry waits out the lease, then takes the record
/// over — with what the dead request had created, when it got that far — and only one of two
/// racing retries does; the owner's renewal keeps a live request's record.
async fn an_idempotency_key_of_a_dead_owner_is_taken_over_after_its_lease(store: Store, clock: ManualClock) {
    let (scope, key) = ("acc_1:POST /v1/sessions", "k-dead");
    assert_eq!(begin(&store, &clock, scope, key, "fp").await.unwrap(), IdempotencyBegin::Proceed);
    clock.advance_ms(4_000);
    assert!(store.idempotency_renew(scope, key, "node-a:1", clock.now_ms() + LEASE_MS).await.unwrap(), "the owner renews");
    assert!(!store.idempotency_renew(scope, key, "node-b:1", clock.now_ms() + LEASE_MS).await.unwrap(), "only the owner renews");
    clock.advance_ms(9_000);
    let retry = |node: &'static str| {
        let (store, clock) = (store.clone(), clock.clone());
        async move { store.idempotency_begin(scope, key, "fp", node, clock.now_ms() + LEASE_MS).await.unwrap() }
    };
    assert_eq!(retry("node-b:1").await, IdempotencyBegin::InFlight { retry_after_ms: 1_000 }, "the renewed lease still holds");
    clock.advance_ms(1_001);
    // The owner is gone; two retries race for the record: one takes it over.
    let (x, y) = tokio::join!(retry("node-b:1"), retry("node-c:1"));
    let took = [&x, &y].iter().filter(|r| matches!(r, IdempotencyBegin::TakeOver { created_ref: None })).count();
    assert_eq!(took, 1, "{x:?} {y:?}");
    assert!([&x, &y].iter().any(|r| matches!(r, IdempotencyBegin::InFlight { .. })), "{x:?} {y:?}");
    assert!(!store.idempotency_renew(scope, key, "node-a:1", clock.now_ms() + LEASE_MS).await.unwrap(), "the old owner lost it");

    // The new owner creates the session with the claim, then dies too: the next retry gets it.
    let owner = account(&store, "ada@example.com").await;
    let sandbox = store.create_sandbox(&owner.id, "s").await.unwrap().id;
    let agent = store.create_agent(&sandbox, config("triage")).await.unwrap();
    let claim = steward_store::IdempotencyClaim { scope: scope.into(), key: key.into(), created_ref: None };
    let new = steward_store::NewSession {
        sandbox_id: sandbox,
        agent_id: agent.id.clone(),
        agent_version: agent.version,
        end_user: None,
        counterparty: None,
        metadata: Default::default(),
    };
    let (session, run) =
        store.create_session_claimed(new, Some(&serde_json::json!([{"role": "user", "content": "hi"}])), Some(&claim)).await.unwrap();
    clock.advance_ms(LEASE_MS + 1);
    let expected = format!("{}/{}", session.id, run.unwrap().id);
    assert_eq!(retry("node-d:1").await, IdempotencyBegin::TakeOver { created_ref: Some(expected) });
    store.idempotency_finish(scope, key, &response("done")).await.unwrap();
    assert_eq!(retry("node-e:1").await, IdempotencyBegin::Replay(response("done")));
}

fn response(body: &str) -> StoredResponse {
    StoredResponse { status: 201, body: body.to_owned() }
}

async fn idempotency_claim_replay_and_mismatch(store: Store, clock: ManualClock) {
    let (scope, key) = ("acc_1:POST /v1/agents", "k-1");
    assert_eq!(begin(&store, &clock, scope, key, "fp-a").await.unwrap(), IdempotencyBegin::Proceed);
    assert_eq!(begin(&store, &clock, scope, key, "fp-a").await.unwrap(), IdempotencyBegin::InFlight { retry_after_ms: LEASE_MS });
    assert_eq!(begin(&store, &clock, scope, key, "fp-b").await.unwrap(), IdempotencyBegin::Mismatch);
    assert_eq!(begin(&store, &clock, "acc_2:POST /v1/agents", key, "fp-z").await.unwrap(), IdempotencyBegin::Proceed, "keys are per scope");

    store.idempotency_finish(scope, key, &response(r#"{"id":"agt_1"}"#)).await.unwrap();
    assert_eq!(begin(&store, &clock, scope, key, "fp-a").await.unwrap(), IdempotencyBegin::Replay(response(r#"{"id":"agt_1"}"#)));
    assert_eq!(begin(&store, &clock, scope, key, "fp-a").await.unwrap(), IdempotencyBegin::Replay(response(r#"{"id":"agt_1"}"#)));
    assert_eq!(begin(&store, &clock, scope, key, "fp-b").await.unwrap(), IdempotencyBegin::Mismatch);
}

async fn abandoned_idempotency_key_can_be_claimed_again(store: Store, clock: ManualClock) {
    let (scope, key) = ("acc_1:POST /v1/agents", "k-1");
    assert_eq!(begin(&store, &clock, scope, key, "fp-a").await.unwrap(), IdempotencyBegin::Proceed);
    store.idempotency_abandon(scope, key).await.unwrap();
    assert_eq!(begin(&store, &clock, scope, key, "fp-b").await.unwrap(), IdempotencyBegin::Proceed, "an abandoned key is forgotten");
    assert_eq!(begin(&store, &clock, scope, key, "fp-b").await.unwrap(), IdempotencyBegin::InFlight { retry_after_ms: LEASE_MS });
}

async fn idempotency_keys_expire_after_a_day(store: Store, clock: ManualClock) {
    let (scope, key) = ("acc_1:POST /v1/agents", "k-1");
    assert_eq!(begin(&store, &clock, scope, key, "fp-a").await.unwrap(), IdempotencyBegin::Proceed);
    store.idempotency_finish(scope, key, &response("first")).await.unwrap();
    clock.advance_ms(DAY_MS);
    assert_eq!(
        begin(&store, &clock, scope, key, "fp-a").await.unwrap(),
        IdempotencyBegin::Replay(response("first")),
        "remembered for a full day"
    );
    clock.advance_ms(1);
    assert_eq!(begin(&store, &clock, scope, key, "fp-b").await.unwrap(), IdempotencyBegin::Proceed, "forgotten after a day");
}

// ---------------------------------------------------------------------------------------------
// Hostile and unusual text

async fn sql_metacharacters_are_stored_verbatim(store: Store, clock: ManualClock) {
    let quoted = email("o'brien');--@example.com");
    let ada = store.create_account(&quoted).await.expect("an email with quotes");
    assert_eq!(store.account_by_email(&quoted).await.unwrap().map(|a| a.email), Some(quoted.clone()));

    let sbx = store.create_sandbox(&ada.id, HOSTILE).await.unwrap();
    assert_eq!(store.sandbox(&sbx.id).await.unwrap().unwrap().name, HOSTILE);
    let renamed = format!("{HOSTILE} \"again\" \\ % _ $1 ?");
    assert_eq!(store.rename_sandbox(&sbx.id, &renamed).await.unwrap().name, renamed);

    let (mut new, hash) = new_key(&sbx.id, &ada.id, HOSTILE);
    new.display_prefix = "stw_'--".into();
    store.create_api_key(new).await.unwrap();
    let key = store.api_key_by_hash(&hash).await.unwrap().expect("the key is found");
    assert_eq!((key.name.as_str(), key.display_prefix.as_str()), (HOSTILE, "stw_'--"));
    assert_eq!(store.api_key_by_hash(HOSTILE).await.unwrap(), None);

    let mut cfg = config("helper");
    cfg.description = HOSTILE.into();
    cfg.system_prompt = format!("Say {HOSTILE} and \"quote\" and {{\"json\": true}}");
    cfg.metadata.insert(HOSTILE.into(), HOSTILE.into());
    let cfg = cfg.validated().unwrap();
    let agent = store.create_agent(&sbx.id, cfg.clone()).await.unwrap();
    let paused = store.set_agent_state(&agent.id, AgentState::Active, AgentState::Paused, Some(HOSTILE)).await.unwrap();
    let read = store.agent(&agent.id).await.unwrap().unwrap();
    assert_eq!((read.config, read.state_reason.as_deref()), (cfg, Some(HOSTILE)));
    assert_eq!(paused.state_reason.as_deref(), Some(HOSTILE));

    assert_eq!(begin(&store, &clock, HOSTILE, HOSTILE, HOSTILE).await.unwrap(), IdempotencyBegin::Proceed);
    store.idempotency_finish(HOSTILE, HOSTILE, &response(HOSTILE)).await.unwrap();
    assert_eq!(begin(&store, &clock, HOSTILE, HOSTILE, HOSTILE).await.unwrap(), IdempotencyBegin::Replay(response(HOSTILE)));

    // Every table is still there and still works.
    store.create_agent(&sbx.id, config("after")).await.expect("the agents table survived");
    assert_eq!(store.agents(&sbx.id, false, &first_page(10)).await.unwrap().items.len(), 2);
    assert_eq!(store.sandboxes_of(&ada.id, false, &first_page(10)).await.unwrap().items.len(), 1);
}

async fn unicode_is_stored_verbatim(store: Store, _clock: ManualClock) {
    let ada = account(&store, "zoë@exämple.com").await;
    assert_eq!(ada.email.as_str(), "zoë@exämple.com");
    assert_eq!(store.account_by_email(&email("zoë@exämple.com")).await.unwrap(), Some(ada.clone()));
    let name = "📦 Ünïcode — 日本語 sandbox";
    let sbx = store.create_sandbox(&ada.id, name).await.unwrap();
    assert_eq!(store.sandbox(&sbx.id).await.unwrap().unwrap().name, name);
    let cfg = config_with_prompt("helper", "Réponds en français, s'il te plaît. 🙂");
    let agent = store.create_agent(&sbx.id, cfg.clone()).await.unwrap();
    assert_eq!(store.agent(&agent.id).await.unwrap().unwrap().config, cfg);
}
