//! Conformance tests for chat channels (registered in `conformance!` in the parent file, so
//! each runs on SQLite and PostgreSQL): link codes (single use, expiry, the outstanding limit,
//! sandboxes kept apart), bindings, update dedupe and delivery attempts.

use steward_core::channel::{ChatKind, ChatRef, LINK_CODE_TTL_MS, MAX_OUTSTANDING_CODES, Platform, Respond, code_hash, mint_link_code};
use steward_store::{ChannelDelivery, CodeState, NewLinkCode, Redemption};

use super::*;

async fn sandbox_with_agent(store: &Store, email: &str) -> (SandboxId, AgentId) {
    let owner = account(store, email).await;
    let sbx = store.create_sandbox(&owner.id, "s").await.unwrap().id;
    let agent = store.create_agent(&sbx, config("helper")).await.unwrap();
    (sbx, agent.id)
}

fn dm(chat: &str) -> ChatRef {
    ChatRef { chat_id: chat.into(), chat_kind: ChatKind::Dm, chat_title: None, user_id: chat.into(), user_name: Some("Ada".into()) }
}

/// Issues a code and returns its plaintext.
async fn issue(store: &Store, sbx: &SandboxId, agent: &AgentId) -> String {
    let code = mint_link_code();
    let made = store
        .create_link_code(sbx, agent, Platform::Telegram, &code_hash(&code).unwrap(), LINK_CODE_TTL_MS, MAX_OUTSTANDING_CODES)
        .await
        .unwrap();
    assert!(matches!(made, NewLinkCode::Created(_)), "{made:?}");
    code
}

pub(crate) async fn a_link_code_binds_its_chat_once(store: Store, _clock: ManualClock) {
    let (sbx, agent) = sandbox_with_agent(&store, "ada@example.com").await;
    assert_eq!(store.link_code_state(&agent, Platform::Telegram).await.unwrap(), CodeState::None);
    let code = issue(&store, &sbx, &agent).await;
    assert_eq!(store.link_code_state(&agent, Platform::Telegram).await.unwrap(), CodeState::Pending);
    let hash = code_hash(&code.to_lowercase()).unwrap();
    let Redemption::Bound(b) = store.redeem_link_code(&sbx, Platform::Telegram, &hash, &dm("42")).await.unwrap() else {
        panic!("the first redemption binds")
    };
    assert_eq!((b.agent_id.clone(), b.chat_id.as_str(), b.chat_kind, b.respond), (agent.clone(), "42", ChatKind::Dm, Respond::Mentions));
    assert_eq!(store.redeem_link_code(&sbx, Platform::Telegram, &hash, &dm("43")).await.unwrap(), Redemption::Used);
    assert_eq!(store.channel_binding_for_chat(&sbx, Platform::Telegram, "43").await.unwrap(), None, "a used code binds nothing");
    assert_eq!(store.channel_binding_for_chat(&sbx, Platform::Telegram, "42").await.unwrap(), Some(b.clone()));
    assert_eq!(store.channel_bindings(&agent, None).await.unwrap(), vec![b.clone()]);
    assert_eq!(store.channel_bindings(&agent, Some(Platform::Slack)).await.unwrap(), vec![]);
    // A used code is no longer pending.
    assert_eq!(store.link_code_state(&agent, Platform::Telegram).await.unwrap(), CodeState::Expired);
    assert!(store.set_binding_respond(&b.id, Respond::All).await.unwrap());
    assert_eq!(store.channel_bindings(&agent, None).await.unwrap()[0].respond, Respond::All);
    assert_eq!(store.delete_channel_bindings(&agent, Platform::Telegram, Some("7")).await.unwrap(), 0);
    assert_eq!(store.delete_channel_bindings(&agent, Platform::Telegram, None).await.unwrap(), 1);
    assert!(store.channel_bindings(&agent, None).await.unwrap().is_empty());
}

pub(crate) async fn concurrent_redemptions_of_one_code_bind_once(store: Store, _clock: ManualClock) {
    let (sbx, agent) = sandbox_with_agent(&store, "ada@example.com").await;
    let hash = code_hash(&issue(&store, &sbx, &agent).await).unwrap();
    let mut set = JoinSet::new();
    for i in 0..4 {
        let (store, sbx, hash) = (store.as_another_replica(), sbx.clone(), hash.clone());
        set.spawn(async move { store.redeem_link_code(&sbx, Platform::Telegram, &hash, &dm(&format!("chat{i}"))).await.unwrap() });
    }
    let mut bound = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Redemption::Bound(_) => bound += 1,
            Redemption::Used => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(bound, 1);
    assert_eq!(store.channel_bindings(&agent, None).await.unwrap().len(), 1);
}

pub(crate) async fn a_link_code_expires(store: Store, clock: ManualClock) {
    let (sbx, agent) = sandbox_with_agent(&store, "ada@example.com").await;
    let hash = code_hash(&issue(&store, &sbx, &agent).await).unwrap();
    clock.advance_ms(LINK_CODE_TTL_MS);
    assert_eq!(store.link_code_state(&agent, Platform::Telegram).await.unwrap(), CodeState::Expired);
    assert_eq!(store.redeem_link_code(&sbx, Platform::Telegram, &hash, &dm("42")).await.unwrap(), Redemption::Expired);
    assert!(store.channel_bindings(&agent, None).await.unwrap().is_empty());
}

pub(crate) async fn link_codes_are_limited_per_agent_and_kept_per_sandbox(store: Store, clock: ManualClock) {
    let (sbx, agent) = sandbox_with_agent(&store, "ada@example.com").await;
    let (other_sbx, _) = sandbox_with_agent(&store, "bob@example.com").await;
    let mut hashes = vec![];
    for _ in 0..MAX_OUTSTANDING_CODES {
        hashes.push(code_hash(&issue(&store, &sbx, &agent).await).unwrap());
        clock.advance_ms(1000);
    }
    let extra = code_hash(&mint_link_code()).unwrap();
    let refused = store.create_link_code(&sbx, &agent, Platform::Telegram, &extra, LINK_CODE_TTL_MS, MAX_OUTSTANDING_CODES).await.unwrap();
    assert_eq!(refused, NewLinkCode::TooMany { retry_after_ms: LINK_CODE_TTL_MS - 1000 * MAX_OUTSTANDING_CODES });
    // Another platform has its own allowance.
    let slack = store.create_link_code(&sbx, &agent, Platform::Slack, &extra, LINK_CODE_TTL_MS, MAX_OUTSTANDING_CODES).await.unwrap();
    assert!(matches!(slack, NewLinkCode::Created(_)));
    // Another sandbox's bot cannot redeem this sandbox's code, nor can another platform's.
    assert_eq!(store.redeem_link_code(&other_sbx, Platform::Telegram, &hashes[0], &dm("1")).await.unwrap(), Redemption::Unknown);
    assert_eq!(store.redeem_link_code(&sbx, Platform::Discord, &hashes[0], &dm("1")).await.unwrap(), Redemption::Unknown);
    assert!(matches!(store.redeem_link_code(&sbx, Platform::Telegram, &hashes[0], &dm("1")).await.unwrap(), Redemption::Bound(_)));
    // A redeemed code frees its place.
    let again = code_hash(&mint_link_code()).unwrap();
    let made = store.create_link_code(&sbx, &agent, Platform::Telegram, &again, LINK_CODE_TTL_MS, MAX_OUTSTANDING_CODES).await.unwrap();
    assert!(matches!(made, NewLinkCode::Created(_)));
}

pub(crate) async fn a_chat_moves_to_the_agent_of_its_newest_code_and_deleted_agents_bind_nothing(store: Store, _clock: ManualClock) {
    let (sbx, first) = sandbox_with_agent(&store, "ada@example.com").await;
    let second = store.create_agent(&sbx, config("second")).await.unwrap().id;
    let a = code_hash(&issue(&store, &sbx, &first).await).unwrap();
    let b = code_hash(&issue(&store, &sbx, &second).await).unwrap();
    assert!(matches!(store.redeem_link_code(&sbx, Platform::Telegram, &a, &dm("42")).await.unwrap(), Redemption::Bound(_)));
    assert!(matches!(store.redeem_link_code(&sbx, Platform::Telegram, &b, &dm("42")).await.unwrap(), Redemption::Bound(_)));
    assert!(store.channel_bindings(&first, None).await.unwrap().is_empty());
    assert_eq!(store.channel_binding_for_chat(&sbx, Platform::Telegram, "42").await.unwrap().unwrap().agent_id, second);
    let c = code_hash(&issue(&store, &sbx, &first).await).unwrap();
    store.delete_agent(&first).await.unwrap();
    assert_eq!(
        store.redeem_link_code(&sbx, Platform::Telegram, &c, &dm("9")).await.unwrap(),
        Redemption::Unknown,
        "its codes went with it"
    );
    let d = code_hash(&issue(&store, &sbx, &second).await).unwrap();
    store.archive_agent(&second).await.unwrap();
    assert_eq!(store.redeem_link_code(&sbx, Platform::Telegram, &d, &dm("9")).await.unwrap(), Redemption::AgentGone);
}

pub(crate) async fn an_update_is_accepted_once_per_bot(store: Store, clock: ManualClock) {
    let (sbx, _) = sandbox_with_agent(&store, "ada@example.com").await;
    let (other, _) = sandbox_with_agent(&store, "bob@example.com").await;
    assert!(store.claim_channel_update(&sbx, Platform::Telegram, "100", 86_400_000).await.unwrap());
    assert!(!store.claim_channel_update(&sbx, Platform::Telegram, "100", 86_400_000).await.unwrap());
    assert!(store.claim_channel_update(&other, Platform::Telegram, "100", 86_400_000).await.unwrap(), "another bot's update 100");
    assert!(store.claim_channel_update(&sbx, Platform::Slack, "100", 86_400_000).await.unwrap());
    let mut set = JoinSet::new();
    for _ in 0..4 {
        let (store, sbx) = (store.as_another_replica(), sbx.clone());
        set.spawn(async move { store.claim_channel_update(&sbx, Platform::Telegram, "101", 86_400_000).await.unwrap() });
    }
    let mut won = 0;
    while let Some(r) = set.join_next().await {
        won += usize::from(r.unwrap());
    }
    assert_eq!(won, 1);
    // Remembered for the window, then forgotten.
    clock.advance_ms(86_400_001);
    assert!(store.claim_channel_update(&sbx, Platform::Telegram, "999", 86_400_000).await.unwrap());
    assert!(store.claim_channel_update(&sbx, Platform::Telegram, "100", 86_400_000).await.unwrap());
}

pub(crate) async fn bots_and_delivery_attempts_round_trip(store: Store, clock: ManualClock) {
    let (sbx, agent) = sandbox_with_agent(&store, "ada@example.com").await;
    assert!(store.channel_bot(&sbx, Platform::Telegram).await.unwrap().is_none());
    let config = BTreeMap::from([("username".to_owned(), "steward_bot".to_owned())]);
    let bot = store.put_channel_bot(&sbx, Platform::Telegram, &config, "sealed-1").await.unwrap();
    assert_eq!((bot.config.clone(), bot.sealed_secrets.as_str()), (config.clone(), "sealed-1"));
    clock.advance_ms(5);
    let bot = store.put_channel_bot(&sbx, Platform::Telegram, &BTreeMap::new(), "sealed-2").await.unwrap();
    assert_eq!((bot.sealed_secrets.as_str(), bot.updated_at - bot.created_at), ("sealed-2", 5));
    assert!(store.delete_channel_bot(&sbx, Platform::Telegram).await.unwrap());
    assert!(!store.delete_channel_bot(&sbx, Platform::Telegram).await.unwrap());

    assert_eq!(store.last_channel_failure(&agent, Some(Platform::Telegram)).await.unwrap(), None);
    let attempt = |n: i64, ok: bool| ChannelDelivery {
        sandbox_id: sbx.clone(),
        agent_id: agent.clone(),
        platform: Platform::Telegram,
        chat_id: "42".into(),
        attempt: n,
        ok,
        status_code: Some(if ok { 200 } else { 429 }),
        error: (!ok).then(|| "Too Many Requests: retry after 1".to_owned()),
        created_at: 0,
    };
    store.record_channel_delivery(&attempt(1, false)).await.unwrap();
    clock.advance_ms(1);
    store.record_channel_delivery(&attempt(2, true)).await.unwrap();
    let all = store.channel_deliveries(&agent, Platform::Telegram, 10).await.unwrap();
    assert_eq!(all.iter().map(|d| (d.attempt, d.ok)).collect::<Vec<_>>(), vec![(2, true), (1, false)]);
    let failure = store.last_channel_failure(&agent, Some(Platform::Telegram)).await.unwrap().unwrap();
    assert_eq!((failure.attempt, failure.status_code, failure.error.as_deref()), (1, Some(429), Some("Too Many Requests: retry after 1")));
    assert_eq!(store.last_channel_failure(&agent, None).await.unwrap(), Some(failure));
    assert_eq!(store.last_channel_failure(&agent, Some(Platform::Slack)).await.unwrap(), None);
}

pub(crate) async fn one_replica_holds_a_poller_lease_until_it_expires(store: Store, clock: ManualClock) {
    let (sbx, _) = sandbox_with_agent(&store, "ada@example.com").await;
    let (a, b) = (store.clone(), store.as_another_replica());
    assert_eq!(a.take_channel_lease(&sbx, Platform::Telegram, "node-a", 30_000).await.unwrap(), Some(0));
    assert_eq!(b.take_channel_lease(&sbx, Platform::Telegram, "node-b", 30_000).await.unwrap(), None);
    assert!(a.set_channel_offset(&sbx, Platform::Telegram, "node-a", 101).await.unwrap());
    assert!(!b.set_channel_offset(&sbx, Platform::Telegram, "node-b", 5).await.unwrap(), "not the holder");
    clock.advance_ms(20_000);
    assert_eq!(a.take_channel_lease(&sbx, Platform::Telegram, "node-a", 30_000).await.unwrap(), Some(101), "renewed");
    clock.advance_ms(29_000);
    assert_eq!(b.take_channel_lease(&sbx, Platform::Telegram, "node-b", 30_000).await.unwrap(), None, "still held");
    clock.advance_ms(1_000);
    assert_eq!(b.take_channel_lease(&sbx, Platform::Telegram, "node-b", 30_000).await.unwrap(), Some(101), "taken over at the offset");
    assert_eq!(a.take_channel_lease(&sbx, Platform::Telegram, "node-a", 30_000).await.unwrap(), None);
    b.release_channel_lease(&sbx, Platform::Telegram, "node-b").await.unwrap();
    assert_eq!(a.take_channel_lease(&sbx, Platform::Telegram, "node-a", 30_000).await.unwrap(), Some(101), "released: free at once");
    // Racing takers of a free lease: one wins.
    let (other, _) = sandbox_with_agent(&store, "bob@example.com").await;
    let mut set = JoinSet::new();
    for i in 0..4 {
        let (store, other) = (store.as_another_replica(), other.clone());
        set.spawn(async move { store.take_channel_lease(&other, Platform::Telegram, &format!("n{i}"), 30_000).await.unwrap() });
    }
    let mut won = 0;
    while let Some(r) = set.join_next().await {
        won += usize::from(r.unwrap().is_some());
    }
    assert_eq!(won, 1);
    store.put_channel_bot(&sbx, Platform::Telegram, &BTreeMap::new(), "x").await.unwrap();
    store.put_channel_bot(&other, Platform::Telegram, &BTreeMap::new(), "y").await.unwrap();
    store.put_channel_bot(&other, Platform::Slack, &BTreeMap::new(), "z").await.unwrap();
    assert_eq!(store.channel_bots_of(Platform::Telegram).await.unwrap().len(), 2);
}
