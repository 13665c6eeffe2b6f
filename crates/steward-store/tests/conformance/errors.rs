//! Typed refusals: callers branch on the `StoreError` variant, never on its text, so each
//! backend must report a taken unique key as `Duplicate`, a lost compare-and-set as `Stale`, a
//! busy session as `Busy` and a closed store as `ShuttingDown` — SQLite and PostgreSQL word
//! their own errors differently, which is why this is a conformance test.

use steward_core::ids::TriggerId;
use steward_core::schedule::ScheduleConfig;
use steward_core::trigger::TriggerConfig;
use steward_store::{STALE_ATTEMPTS, retry_on_stale};

use super::*;

pub(crate) async fn unique_violations_are_duplicate_and_lost_compare_and_sets_are_stale(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();

    // Unique keys, each enforced by the database's own unique index.
    assert_duplicate(store.create_account(&email("ada@example.com")).await);
    assert_duplicate(store.create_agent(&sbx.id, config("helper")).await);
    let gh = TriggerConfig::from_json(serde_json::json!({"name": "gh"})).unwrap();
    let trigger = store.create_trigger(&TriggerId::generate(), &sbx.id, &agent.id, gh.clone(), "sealed").await.unwrap();
    assert_duplicate(store.create_trigger(&TriggerId::generate(), &sbx.id, &agent.id, gh, "sealed").await);
    let nightly = ScheduleConfig::from_json(serde_json::json!({"name": "nightly", "cron": "0 3 * * *"})).unwrap();
    let schedule = store.create_schedule(&sbx.id, &agent.id, nightly.clone(), Some(START_MS + 60_000)).await.unwrap();
    assert_duplicate(store.create_schedule(&sbx.id, &agent.id, nightly, None).await);

    // Compare-and-sets that lost: the row moved on since it was read.
    clock.advance_ms(5);
    let renamed = TriggerConfig::from_json(serde_json::json!({"name": "gh-2"})).unwrap();
    store.update_trigger(&trigger, renamed.clone()).await.unwrap();
    assert_stale(store.update_trigger(&trigger, renamed).await);
    let moved = ScheduleConfig::from_json(serde_json::json!({"name": "nightly", "cron": "0 4 * * *"})).unwrap();
    store.update_schedule(&schedule, moved.clone(), None).await.unwrap();
    assert_stale(store.update_schedule(&schedule, moved, None).await);
    store.update_agent(&agent.id, 1, config_with_prompt("helper", "v2")).await.unwrap();
    assert_stale(store.update_agent(&agent.id, 1, config_with_prompt("helper", "lost")).await);

    // A second turn into a busy session is `Busy`, not a generic conflict.
    let (session, run) = store.create_session(new_session(&sbx.id, &agent.id), Some(&serde_json::json!([]))).await.unwrap();
    assert!(run.is_some());
    let busy = store.create_run(&session, &serde_json::json!([]), false).await;
    assert!(matches!(busy, Err(StoreError::Busy(ref m)) if m.contains(session.id.as_str())), "{busy:?}");
}

/// `retry_on_stale` re-reads and re-applies until its write wins: four writers racing on one
/// agent all land (each round of the race has a winner, so nobody loses more than three times),
/// and a writer that never re-reads gives up after `STALE_ATTEMPTS` writes with `Stale`.
pub(crate) async fn retry_on_stale_lands_every_racing_writer(store: Store, _clock: ManualClock) {
    const WRITERS: usize = 4;
    const { assert!(WRITERS <= STALE_ATTEMPTS) };
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    let mut set = JoinSet::new();
    for i in 0..WRITERS {
        let (store, id) = (store.clone(), agent.id.clone());
        set.spawn(async move {
            let first = store.agent(&id).await.unwrap().unwrap();
            let (store, id) = (&store, &id);
            retry_on_stale(
                first,
                || async move { Ok::<_, StoreError>(store.agent(id).await?.expect("the agent exists")) },
                |current| async move {
                    let mut next = current.config.clone();
                    next.metadata.insert(format!("writer-{i}"), "yes".into());
                    Ok(store.update_agent(id, current.version, next).await)
                },
            )
            .await
        });
    }
    for outcome in set.join_all().await {
        assert!(matches!(outcome, Ok(Ok(_))), "{outcome:?}");
    }
    let now = store.agent(&agent.id).await.unwrap().unwrap();
    assert_eq!(now.version, 1 + WRITERS as i64, "every writer wrote one version");
    let landed = now.config.metadata.keys().filter(|k| k.starts_with("writer-")).count();
    assert_eq!(landed, WRITERS, "no writer's change was lost: {:?}", now.config.metadata);

    // Re-reading a stale copy never wins: the helper stops after STALE_ATTEMPTS writes.
    let mut writes = 0;
    let stale = agent.clone();
    let outcome = retry_on_stale(
        agent.clone(),
        || std::future::ready(Ok::<_, StoreError>(stale.clone())),
        |current| {
            writes += 1;
            let store = store.clone();
            async move { Ok(store.update_agent(&current.id, current.version, config_with_prompt("helper", "never")).await) }
        },
    )
    .await;
    assert!(matches!(outcome, Ok(Err(StoreError::Stale(_)))), "{outcome:?}");
    assert_eq!(writes, STALE_ATTEMPTS);
}

/// A closed store answers `ShuttingDown` to reads, writes and group-committed deliveries alike:
/// the server turns that into 503, never 409 or 500.
pub(crate) async fn a_closed_store_is_shutting_down(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    let gh = TriggerConfig::from_json(serde_json::json!({"name": "gh"})).unwrap();
    let trigger = store.create_trigger(&TriggerId::generate(), &sbx.id, &agent.id, gh, "sealed").await.unwrap();
    store.close().await;
    let read = store.agent(&agent.id).await;
    assert!(matches!(read, Err(StoreError::ShuttingDown)), "{read:?}");
    let write = store.create_agent(&sbx.id, config("late")).await;
    assert!(matches!(write, Err(StoreError::ShuttingDown)), "{write:?}");
    let delivery = store.accept_delivery(&trigger, "d-late", None, "{}", new_session(&sbx.id, &agent.id), &serde_json::json!([])).await;
    assert!(matches!(delivery, Err(StoreError::ShuttingDown)), "{delivery:?}");
}
