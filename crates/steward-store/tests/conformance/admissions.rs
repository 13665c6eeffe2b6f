//! Admissions through the run writer: runs are inserted by the group-commit writer together with
//! other runs' writes, and a session still runs one run at a time — however replicas race.

use steward_core::session::RunStatus;
use steward_store::{NewRun, RunOutcome, RunTarget, Start};

use super::*;

fn completed() -> RunOutcome {
    RunOutcome {
        status: RunStatus::Completed,
        stop_reason: Some("end_turn".into()),
        error_type: None,
        error_message: None,
        trace: serde_json::json!({}),
    }
}

/// Twenty turns sent at once into an idle session from two replicas, refusing when busy: one is
/// admitted, the others are `Busy`, and exactly one run exists. Then two replicas racing to
/// claim its queued runs claim one.
pub(crate) async fn racing_turns_on_two_replicas_admit_one(store: Store, _clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    let (session, none) = store.create_session(new_session(&sbx.id, &agent.id), None).await.unwrap();
    assert!(none.is_none());
    let other = store.as_another_replica();
    let mut set = JoinSet::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { store.clone() } else { other.clone() };
        let session = session.clone();
        set.spawn(
            async move { s.create_run(&session, &serde_json::json!([{"role": "user", "content": format!("turn {i}")}]), false).await },
        );
    }
    let (mut admitted, mut busy) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(run) => {
                assert_eq!(run.status, RunStatus::Queued);
                admitted += 1;
            }
            Err(StoreError::Busy(m)) => {
                assert!(m.contains(session.id.as_str()), "{m}");
                busy += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((admitted, busy), (1, 19));
    assert_eq!(store.active_runs(&session.id).await.unwrap().len(), 1);

    // Queue a second run behind it; two replicas race to claim: one run runs.
    store.create_run(&session, &serde_json::json!([]), true).await.unwrap();
    let (a, b) = tokio::join!(store.claim_next_run(&session.id, "node-a"), other.claim_next_run(&session.id, "node-b"));
    let claimed: Vec<_> = [a, b].into_iter().filter_map(|r| r.ok().flatten()).collect();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let running: Vec<_> = store.active_runs(&session.id).await.unwrap().into_iter().filter(|r| r.status == RunStatus::Running).collect();
    assert_eq!(running.len(), 1);
}

/// A new session's run admitted for an owner is born `running` (nothing to claim), in the same
/// transaction as its session and the idempotency record's reference; a turn queued behind it
/// is claimed only once it ended.
pub(crate) async fn a_new_session_run_is_born_running_for_its_owner(store: Store, clock: ManualClock) {
    let ada = account(&store, "ada@example.com").await;
    let sbx = store.create_sandbox(&ada.id, "lab").await.unwrap();
    let agent = store.create_agent(&sbx.id, config("helper")).await.unwrap();
    let begun = store.idempotency_begin("scope", "key-1", "fp", "node-a", START_MS + 60_000).await.unwrap();
    assert!(matches!(begun, IdempotencyBegin::Proceed), "{begun:?}");
    let claim = steward_store::IdempotencyClaim { scope: "scope".into(), key: "key-1".into(), created_ref: None };
    let target = RunTarget::New {
        session: new_session(&sbx.id, &agent.id),
        start: Some(Start { owner: "node-a".into(), messages: vec![("user".into(), serde_json::json!([{"type": "text", "text": "hi"}]))] }),
    };
    let (session, run) = store
        .admit_run(NewRun { target, input: serde_json::json!([{"role": "user", "content": "hi"}]), claim: Some(claim) })
        .await
        .unwrap();
    assert_eq!((session.status.as_str(), run.status), ("running", RunStatus::Running));
    let stored = store.run(&run.id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Running);
    assert_eq!(stored.started_at, Some(START_MS));
    assert_eq!(store.session(&session.id).await.unwrap().unwrap().status, "running");
    // The idempotency record names both: a retry after node-a died (its lease ended) gets them.
    clock.advance_ms(61_000);
    let taken = store.idempotency_begin("scope", "key-1", "fp", "node-b", START_MS + 120_000).await.unwrap();
    let expected = format!("{}/{}", session.id, run.id);
    assert!(matches!(taken, IdempotencyBegin::TakeOver { created_ref: Some(ref r) } if *r == expected), "{taken:?}");

    let turn = store.create_run(&session, &serde_json::json!([]), true).await.unwrap();
    assert_eq!(store.claim_next_run(&session.id, "node-a").await.unwrap().map(|r| r.id), None, "the born-running run still runs");
    let ended = store.end_run(&run, &completed(), ("agent_finish", serde_json::json!({})), None).await.unwrap();
    assert!(ended.is_some(), "the run was still active");
    assert_eq!(store.claim_next_run(&session.id, "node-a").await.unwrap().map(|r| r.id), Some(turn.id));
}
