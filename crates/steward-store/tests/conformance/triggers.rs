//! Conformance tests for webhook triggers (registered in `conformance!` in the parent file, so
//! each runs on SQLite and PostgreSQL).

use serde_json::json;
use steward_core::ids::TriggerId;
use steward_core::trigger::{TriggerConfig, TriggerState};
use steward_store::{Delivery, SignatureOnce};

use super::*;

async fn agent_with_trigger(store: &Store) -> (SandboxId, AgentId, steward_core::trigger::Trigger) {
    let owner = account(store, "ada@example.com").await;
    let sbx = store.create_sandbox(&owner.id, "s").await.unwrap().id;
    let agent = store.create_agent(&sbx, config("triage")).await.unwrap();
    let t = store
        .create_trigger(&TriggerId::generate(), &sbx, &agent.id, TriggerConfig::from_json(json!({"name": "gh"})).unwrap(), "sealed")
        .await
        .unwrap();
    (sbx, agent.id, t)
}

pub(crate) async fn a_delivery_id_starts_one_run_even_when_sent_concurrently(store: Store, _clock: ManualClock) {
    let (sbx, agent, t) = agent_with_trigger(&store).await;
    let input = json!([{"role": "user", "content": "hi"}]);
    let mut set = JoinSet::new();
    for _ in 0..4 {
        let (store, t, input, new) = (store.clone(), t.clone(), input.clone(), new_session(&sbx, &agent));
        set.spawn(async move { store.accept_delivery(&t, "d-1", None, "{}", new, &input).await.unwrap() });
    }
    let mut started = 0;
    let mut runs = BTreeSet::new();
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Delivery::Started { run, .. } => {
                started += 1;
                runs.insert(run.id.to_string());
            }
            Delivery::Duplicate { run_id, .. } => {
                runs.insert(run_id);
            }
            Delivery::Replayed => panic!("no signature was given, so nothing is a replay"),
        }
    }
    assert_eq!(started, 1, "exactly one delivery started a run");
    assert_eq!(runs.len(), 1, "every duplicate points at that run: {runs:?}");
    let t = store.trigger(&t.id).await.unwrap().unwrap();
    assert_eq!(t.fire_count, 1);
    assert_eq!(store.delivery_payload(&t.id, "d-1").await.unwrap().as_deref(), Some("{}"));
}

pub(crate) async fn a_burst_of_deliveries_on_two_replicas_starts_one_run_per_delivery_id(store: Store, _clock: ManualClock) {
    let (sbx, agent, t) = agent_with_trigger(&store).await;
    let replicas = [store.clone(), store.as_another_replica()];
    let mut set = JoinSet::new();
    // 100 delivery ids, each sent 4 times: twice to each replica, all at once, so duplicates
    // land in one batch, in two batches of one replica, and in racing batches of two.
    for round in 0..4 {
        for n in 0..100 {
            let (store, t, new) = (replicas[round % 2].clone(), t.clone(), new_session(&sbx, &agent));
            let input = json!([{"role": "user", "content": format!("delivery {n}")}]);
            set.spawn(async move {
                (n, store.accept_delivery(&t, &format!("d-{n}"), None, &format!("{{\"n\":{n}}}"), new, &input).await.unwrap())
            });
        }
    }
    let mut started = BTreeMap::new();
    let mut pointed = BTreeMap::<usize, BTreeSet<String>>::new();
    while let Some(r) = set.join_next().await {
        let (n, d) = r.unwrap();
        let run = match d {
            Delivery::Started { run, session } => {
                assert_eq!(session.status, "running");
                assert!(started.insert(n, run.id.to_string()).is_none(), "delivery {n} started twice");
                run.id.to_string()
            }
            Delivery::Duplicate { run_id, .. } => run_id,
            Delivery::Replayed => panic!("no signature was given, so nothing is a replay"),
        };
        pointed.entry(n).or_default().insert(run);
    }
    assert_eq!(started.len(), 100, "every delivery id started exactly one run");
    for (n, runs) in &pointed {
        assert_eq!(runs.len(), 1, "all answers for delivery {n} name one run: {runs:?}");
        assert!(runs.contains(&started[n]));
    }
    let t = store.trigger(&t.id).await.unwrap().unwrap();
    assert_eq!(t.fire_count, 100, "the fire count counts deliveries, not requests");
    assert!(t.last_fired_at.is_some());
    assert_eq!(store.delivery_payload(&t.id, "d-7").await.unwrap().as_deref(), Some(r#"{"n":7}"#));
    let run = store.run(&steward_core::ids::RunId::from_trusted(started[&7].clone())).await.unwrap().unwrap();
    assert_eq!(run.input, json!([{"role": "user", "content": "delivery 7"}]));
}

fn once(key: &str, expires_at: i64) -> Option<SignatureOnce> {
    Some(SignatureOnce { key: key.to_owned(), expires_at })
}

pub(crate) async fn a_legacy_signature_starts_one_run_however_often_replicas_race_it(store: Store, _clock: ManualClock) {
    let (sbx, agent, t) = agent_with_trigger(&store).await;
    let replicas = [store.clone(), store.as_another_replica()];
    let input = json!([{"role": "user", "content": "hi"}]);
    // One captured signature re-sent with 20 delivery ids, 10 to each replica, all at once.
    let mut set = JoinSet::new();
    for n in 0..20 {
        let (store, t, new, input) = (replicas[n % 2].clone(), t.clone(), new_session(&sbx, &agent), input.clone());
        set.spawn(async move {
            store.accept_delivery(&t, &format!("r-{n}"), once("sig-a", START_MS + 600_000), "{}", new, &input).await.unwrap()
        });
    }
    let (mut started, mut replayed) = (Vec::new(), 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Delivery::Started { run, .. } => started.push(run.id.to_string()),
            Delivery::Replayed => replayed += 1,
            Delivery::Duplicate { .. } => panic!("every delivery id is new"),
        }
    }
    assert_eq!((started.len(), replayed), (1, 19), "one signature, one run");
    assert_eq!(store.trigger(&t.id).await.unwrap().unwrap().fire_count, 1);
    let first = store.signature_used_for("sig-a").await.unwrap().expect("recorded");
    // The sender's own retry (same delivery id, same signature) is a duplicate, not a replay.
    let retry =
        store.accept_delivery(&t, &first, once("sig-a", START_MS + 600_000), "{}", new_session(&sbx, &agent), &input).await.unwrap();
    assert!(matches!(retry, Delivery::Duplicate { ref run_id, .. } if *run_id == started[0]), "{retry:?}");
    // Another signature is another delivery; the key is per signature, not per trigger.
    let other =
        store.accept_delivery(&t, "r-new", once("sig-b", START_MS + 600_000), "{}", new_session(&sbx, &agent), &input).await.unwrap();
    assert!(matches!(other, Delivery::Started { .. }), "{other:?}");
    assert_eq!(store.signature_used_for("sig-c").await.unwrap(), None);
}

pub(crate) async fn expired_signatures_are_forgotten_a_bounded_batch_at_a_time(store: Store, clock: ManualClock) {
    let (sbx, agent, t) = agent_with_trigger(&store).await;
    let input = json!([{"role": "user", "content": "hi"}]);
    let n = steward_store::MAX_DELIVERY_BATCH + 44;
    let mut set = JoinSet::new();
    for i in 0..n {
        let (store, t, new, input) = (store.clone(), t.clone(), new_session(&sbx, &agent), input.clone());
        set.spawn(async move {
            store.accept_delivery(&t, &format!("e-{i}"), once(&format!("sig-{i}"), START_MS + 600_000), "{}", new, &input).await.unwrap()
        });
    }
    while let Some(r) = set.join_next().await {
        assert!(matches!(r.unwrap(), Delivery::Started { .. }));
    }
    // Within the window nothing is forgotten.
    assert_eq!(store.forget_expired_signatures().await.unwrap(), 0);
    clock.advance_ms(600_001);
    assert_eq!(store.forget_expired_signatures().await.unwrap(), steward_store::MAX_DELIVERY_BATCH as u64);
    assert_eq!(store.forget_expired_signatures().await.unwrap(), 44);
    assert_eq!(store.forget_expired_signatures().await.unwrap(), 0);
    assert_eq!(store.signature_used_for("sig-0").await.unwrap(), None);
    // A batch that records a signature cleans up after itself.
    store.accept_delivery(&t, "late-1", once("late-a", START_MS + 1_300_000), "{}", new_session(&sbx, &agent), &input).await.unwrap();
    clock.advance_ms(700_000);
    store.accept_delivery(&t, "late-2", once("late-b", START_MS + 2_000_000), "{}", new_session(&sbx, &agent), &input).await.unwrap();
    assert_eq!(store.signature_used_for("late-a").await.unwrap(), None, "expired, deleted after the next batch");
    assert!(store.signature_used_for("late-b").await.unwrap().is_some());
}

pub(crate) async fn trigger_state_errors_and_names(store: Store, _clock: ManualClock) {
    let (sbx, agent, t) = agent_with_trigger(&store).await;
    let dup = store.create_trigger(&TriggerId::generate(), &sbx, &agent, t.config.clone(), "sealed").await.unwrap_err();
    assert!(matches!(dup, StoreError::Duplicate(ref m) if m.contains("gh")), "{dup:?}");
    let paused = store.set_trigger_state(&t.id, TriggerState::Paused, Some(START_MS + 1000)).await.unwrap();
    assert!(paused.paused_at(START_MS) && !paused.paused_at(START_MS + 1000));
    store.record_trigger_error(&t.id, "bad signature").await.unwrap();
    assert_eq!(store.trigger(&t.id).await.unwrap().unwrap().last_error.as_deref(), Some("bad signature"));
    assert_eq!(store.trigger_with_secret(&t.id).await.unwrap().map(|(_, s)| s).as_deref(), Some("sealed"));
    store.delete_trigger(&t.id).await.unwrap();
    assert!(store.trigger(&t.id).await.unwrap().is_none());
}

pub(crate) async fn a_due_time_fires_once_when_replicas_race(store: Store, _clock: ManualClock) {
    let (sbx, agent, _) = agent_with_trigger(&store).await;
    let config = steward_core::schedule::ScheduleConfig::from_json(json!({"name": "tick", "cron": "*/5 * * * *"})).unwrap();
    let due = config.next_fire_after(START_MS).unwrap();
    let s = store.create_schedule(&sbx, &agent, config.clone(), Some(due)).await.unwrap();
    assert_eq!(store.due_schedules(due - 1, 10).await.unwrap(), vec![]);
    assert_eq!(store.due_schedules(due, 10).await.unwrap().len(), 1);
    let next = config.next_fire_after(due);
    let mut set = JoinSet::new();
    for _ in 0..3 {
        let (store, s, new) = (store.clone(), s.clone(), new_session(&sbx, &agent));
        let input = json!([{"role": "user", "content": "tick"}]);
        set.spawn(async move { store.fire_schedule(&s, due, next, steward_store::Fire::Start { new, input }).await.unwrap() });
    }
    let mut fired = 0;
    while let Some(r) = set.join_next().await {
        fired += usize::from(r.unwrap().is_some());
    }
    assert_eq!(fired, 1, "exactly one replica fires a due time");
    let ex = store.executions(&s.id, 10).await.unwrap();
    assert_eq!((ex.len(), ex[0].outcome.as_str(), ex[0].scheduled_at), (1, "started", due));
    let s = store.schedule(&s.id).await.unwrap().unwrap();
    assert_eq!((s.next_fire_at, s.fire_count), (next, 1));
}

pub(crate) async fn deliveries_are_claimed_by_one_replica_and_retried(store: Store, clock: ManualClock) {
    let (sbx, agent, _) = agent_with_trigger(&store).await;
    let sub = steward_store::Subscription {
        id: steward_core::ids::SubscriptionId::generate(),
        sandbox_id: sbx.clone(),
        agent_id: None,
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["run.completed".into()],
        created_at: START_MS,
    };
    store.create_subscription(&sub, "sealed").await.unwrap();
    let draft = |event: &str| steward_store::Notification {
        sandbox_id: sbx.clone(),
        agent_id: agent.clone(),
        event: event.into(),
        payload: serde_json::json!({}),
    };
    assert_eq!(store.enqueue_notification(&draft("run.failed")).await.unwrap(), 0, "not subscribed");
    for _ in 0..10 {
        assert_eq!(store.enqueue_notification(&draft("run.completed")).await.unwrap(), 1);
    }
    // Three replicas claim at once: every delivery goes to exactly one of them.
    let mut set = JoinSet::new();
    for r in 0..3 {
        let store = store.clone();
        set.spawn(async move { store.claim_deliveries(&format!("replica-{r}"), START_MS + 60_000, 32).await.unwrap() });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.extend(r.unwrap().into_iter().map(|d| d.id.to_string()));
    }
    let unique: BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!((ids.len(), unique.len()), (10, 10), "{ids:?}");
    // Leased: nobody else gets them until the lease ends or an attempt is recorded.
    assert!(store.claim_deliveries("late", START_MS + 60_000, 32).await.unwrap().is_empty());
    let first = steward_core::ids::DeliveryId::from_trusted(ids[0].clone());
    assert_eq!(store.begin_attempt(&first).await.unwrap(), 1);
    store.record_attempt(&first, 1, Some(500), 12, Some("HTTP 500"), Some("oops"), false, Some(START_MS + 1_000)).await.unwrap();
    assert!(store.claim_deliveries("early", START_MS + 60_000, 32).await.unwrap().is_empty(), "not before its backoff");
    clock.advance_ms(1_000);
    let again = store.claim_deliveries("retry", START_MS + 61_000, 32).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    // The replica sending attempt 2 dies after starting it: the attempt stays in the history,
    // and once the lease is over a survivor sends attempt 3 (same delivery id).
    assert_eq!(store.begin_attempt(&first).await.unwrap(), 2);
    clock.advance_ms(61_000);
    let survivor = store.claim_deliveries("survivor", START_MS + 200_000, 32).await.unwrap();
    let retried: Vec<_> = survivor.iter().filter(|d| d.id == first).collect();
    assert_eq!((retried.len(), retried[0].attempts), (1, 2), "re-sent after the dead replica's lease");
    assert_eq!(store.begin_attempt(&first).await.unwrap(), 3);
    store.record_attempt(&first, 3, Some(200), 8, None, Some("ok"), true, None).await.unwrap();
    let attempts: Vec<_> = store.attempts(&sub.id, 50).await.unwrap().into_iter().filter(|a| a.delivery_id == first).collect();
    assert_eq!(attempts.iter().map(|a| (a.attempt, a.status_code)).collect::<Vec<_>>(), vec![(3, Some(200)), (2, None), (1, Some(500))]);
    assert_eq!(attempts[1].error.as_deref(), Some(steward_store::UNFINISHED_ATTEMPT), "the interrupted attempt says so");
    assert!(attempts.iter().all(|a| a.status == "delivered"));
}
