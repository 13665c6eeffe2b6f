//! The store's read cache as a user meets it: a change made through the API is what the next
//! request or run sees (providers' models at admission and in the run, an agent's new version,
//! a revoked key, a removed grant), on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{Backend, TestServer, error_message};
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_core::tenancy::Role;

async fn start(s: &TestServer, key: &str, agent: &str) -> (StatusCode, Value) {
    s.post("/v1/sessions", key, json!({"agent_id": agent, "input": [{"role": "user", "content": "hi"}]})).await
}

/// Polls until the session's run has a terminal event; returns its type.
async fn terminal(s: &TestServer, key: &str, session: &Value) -> String {
    let sid = session["id"].as_str().unwrap();
    for _ in 0..400 {
        let (_, events) = s.get(&format!("/v1/sessions/{sid}/events"), key).await;
        let end = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .find(|t| ["agent_finish", "agent_error", "run_cancelled"].contains(&t.as_str()));
        if let Some(t) = end {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("session {sid} did not end in time");
}

async fn provider_and_agent_changes_reach_the_next_admission_and_run(backend: Backend) {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let Some(s) = TestServer::start_on(backend).await else { return };
    let (u, agent) = s.user_with_agent(&fake.url, "claude-a", "support").await;
    let agent = agent.as_str();

    // Two runs: every hot-path read is cached from here on.
    for _ in 0..2 {
        let (st, session) = start(&s, &u.key, agent).await;
        assert_eq!(st, StatusCode::CREATED, "{session}");
        assert_eq!(terminal(&s, &u.key, &session).await, "agent_finish");
    }
    let warm = s.store.cache_stats();
    assert!(warm.kinds["providers"].hits > 0 && warm.kinds["versions"].hits > 0 && warm.kinds["keys"].hits > 0, "{warm:?}");

    // The provider stops offering the model: the very next admission refuses.
    let (st, v) = s.patch("/v1/providers/anthropic", &u.key, json!({"models": ["claude-b"]})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = start(&s, &u.key, agent).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(error_message(&v).contains("claude-b"), "the refusal lists the new models: {v}");

    // The agent moves to the new model (a new version): admitted, and the run calls that model.
    let (st, v) = s.patch(&format!("/v1/agents/{agent}"), &u.key, json!({"model": {"provider_id": "anthropic", "name": "claude-b"}})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, session) = start(&s, &u.key, agent).await;
    assert_eq!(st, StatusCode::CREATED, "{session}");
    assert_eq!(session["agent_version"], 2);
    assert_eq!(terminal(&s, &u.key, &session).await, "agent_finish");
    assert_eq!(fake.requests().last().unwrap()["model"], "claude-b");
}

#[tokio::test]
async fn provider_and_agent_changes_reach_the_next_admission_and_run_on_sqlite() {
    provider_and_agent_changes_reach_the_next_admission_and_run(Backend::Sqlite).await;
}

#[tokio::test]
async fn provider_and_agent_changes_reach_the_next_admission_and_run_on_postgres() {
    provider_and_agent_changes_reach_the_next_admission_and_run(Backend::Postgres).await;
}

async fn a_revoked_key_and_a_removed_grant_are_refused_on_the_next_request(backend: Backend) {
    let Some(s) = TestServer::start_on(backend).await else { return };
    let owner = s.user("ada@example.com").await;
    let (st, created) = s.post("/v1/api_keys", &owner.key, json!({"name": "ci"})).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let key = created["secret"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(s.get("/v1/agents", key).await.0, StatusCode::OK);
    }
    let (st, v) = s.post(&format!("/v1/api_keys/{}/revoke", created["id"].as_str().unwrap()), &owner.key, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.get("/v1/agents", key).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert!(error_message(&v).contains("revoked"), "{v}");

    let bob = s.member("bob@example.com", &owner.sandbox_id, Role::Editor).await;
    for _ in 0..2 {
        assert_eq!(s.get("/v1/agents", &bob.key).await.0, StatusCode::OK);
    }
    let (st, v) = s
        .call(reqwest::Method::DELETE, &format!("/v1/sandboxes/{}/grants/{}", owner.sandbox_id, bob.account_id), Some(&owner.key), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.get("/v1/agents", &bob.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "bob's sandbox is gone for him at once: {v}");
}

#[tokio::test]
async fn a_revoked_key_and_a_removed_grant_are_refused_on_the_next_request_on_sqlite() {
    a_revoked_key_and_a_removed_grant_are_refused_on_the_next_request(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_revoked_key_and_a_removed_grant_are_refused_on_the_next_request_on_postgres() {
    a_revoked_key_and_a_removed_grant_are_refused_on_the_next_request(Backend::Postgres).await;
}
