//! `Runtime::admit` / `check_admission` on a real SQLite store: each refusal that needs the
//! store (provider, model, busy session, a Concierge outside its endpoints), that a refusal
//! writes nothing, and that an admitted run is queued. The refusals of the agent's own state
//! are unit-tested in `steward_core::admission`.

use std::sync::Arc;

use serde_json::json;
use steward_core::admission::Refusal;
use steward_core::agent::{Agent, AgentConfig, AgentState};
use steward_core::clock::SystemClock;
use steward_core::ids::{AccountId, SandboxId};
use steward_core::provider::{ProviderConfig, ProviderId, ProviderKind};
use steward_core::tenancy::Email;
use steward_llm::{RetryPolicy, Timeouts};
use steward_runtime::admission::{Admission, AdmitError, OnBusy, Origin, Scope};
use steward_runtime::vault::VaultCipher;
use steward_runtime::{Providers, Runtime, RuntimeConfig};
use steward_store::{PageRequest, SessionFilter, Store};
use steward_test_support::agent_config;

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    rt: Runtime,
    account: AccountId,
    sandbox: SandboxId,
}

/// A store with a sandbox and a provider `p` offering model `m`, and a runtime that runs nothing.
async fn world() -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock);
    let store = Store::open_sqlite(&dir.path().join("steward.db"), clock.clone()).await.unwrap();
    let account = store.ensure_account(&Email::parse("ada@example.com", "email").unwrap()).await.unwrap().id;
    let sandbox = store.create_sandbox(&account, "admission").await.unwrap().id;
    let config = ProviderConfig::new(ProviderKind::Anthropic, Some("http://127.0.0.1:1".into()), None, vec!["m".into()]).unwrap();
    store.create_provider(&sandbox, &ProviderId::parse("p", "id").unwrap(), config).await.unwrap();
    let providers = Providers::new(store.clone(), VaultCipher::new([7; 32]), Timeouts::default(), RetryPolicy::default());
    let mut rc = RuntimeConfig::default();
    rc.tools.workspaces = dir.path().join("workspaces");
    let rt = Runtime::new(store.clone(), providers, clock, rc);
    // Shut down before any work: `admit` still writes, and its kick starts no worker, so
    // admitted runs stay queued and a session stays busy for as long as the test needs.
    rt.shutdown(std::time::Duration::ZERO).await;
    World { _dir: dir, store, rt, account, sandbox }
}

fn config(name: &str, provider: &str, model: &str) -> AgentConfig {
    AgentConfig { max_turns: 2, ..agent_config(name, provider, model) }
}

fn new_session() -> Scope<'static> {
    Scope::New { end_user: None, counterparty: None, metadata: Default::default() }
}

async fn admit(
    w: &World,
    agent: &Agent,
    scope: Scope<'_>,
    on_busy: OnBusy,
    origin: Origin,
) -> Result<steward_runtime::admission::Admitted, AdmitError> {
    let input = json!([{"role": "user", "content": "hi"}]);
    w.rt.admit(Admission { agent, scope, input: &input, on_busy, origin, claim: None }).await
}

fn refusal(r: Result<impl std::fmt::Debug, AdmitError>) -> Refusal {
    match r {
        Err(AdmitError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn session_count(w: &World, agent: &Agent) -> usize {
    let filter = SessionFilter { agent_id: Some(agent.id.clone()), ..Default::default() };
    w.store.sessions(&w.sandbox, &filter, &PageRequest { limit: 100, before: None }).await.unwrap().items.len()
}

#[tokio::test]
async fn provider_and_model_refusals_come_after_the_state_and_write_nothing() {
    let w = world().await;
    let ghost = w.store.create_agent(&w.sandbox, config("ghost", "nobody", "m")).await.unwrap();
    let r = refusal(admit(&w, &ghost, new_session(), OnBusy::Reject, Origin::NewSession).await);
    assert_eq!(r, Refusal::ProviderNotConfigured { provider: "nobody".into() });
    let wrong = w.store.create_agent(&w.sandbox, config("wrong", "p", "other")).await.unwrap();
    let r = refusal(admit(&w, &wrong, new_session(), OnBusy::Reject, Origin::Trigger).await);
    assert_eq!(r, Refusal::ModelNotOffered { provider: "p".into(), model: "other".into(), models: vec!["m".into()] });
    // The agent's state is checked first.
    let paused = w.store.set_agent_state(&ghost.id, AgentState::Active, AgentState::Paused, None).await.unwrap();
    assert_eq!(refusal(w.rt.check_admission(&paused, Origin::Schedule).await).reason(), "paused");
    assert_eq!((session_count(&w, &ghost).await, session_count(&w, &wrong).await), (0, 0));
}

#[tokio::test]
async fn a_busy_session_refuses_unless_asked_to_enqueue() {
    let w = world().await;
    let agent = w.store.create_agent(&w.sandbox, config("a", "p", "m")).await.unwrap();
    let first = admit(&w, &agent, new_session(), OnBusy::Reject, Origin::NewSession).await.unwrap();
    assert_eq!(first.run.status.as_str(), "queued");
    let r = refusal(admit(&w, &agent, Scope::Turn(&first.session), OnBusy::Reject, Origin::Turn).await);
    match &r {
        Refusal::Busy { session, message } => {
            assert_eq!(session, &first.session.id);
            assert!(message.contains(first.run.id.as_str()) && message.contains("enqueue"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let queued = admit(&w, &agent, Scope::Turn(&first.session), OnBusy::Enqueue, Origin::Message).await.unwrap();
    assert_eq!(queued.session.id, first.session.id);
    assert_eq!(session_count(&w, &agent).await, 1);
}

#[tokio::test]
async fn a_concierge_takes_work_only_from_its_own_endpoints() {
    let w = world().await;
    let concierge = w.store.create_concierge(&w.sandbox, &w.account, config("concierge-x", "p", "m")).await.unwrap();
    for origin in [Origin::NewSession, Origin::Message, Origin::Test, Origin::Trigger, Origin::Schedule] {
        let r = refusal(w.rt.check_admission(&concierge, origin).await);
        assert_eq!(r, Refusal::ConciergeManaged { agent: concierge.id.clone(), sandbox: w.sandbox.clone() }, "{origin:?}");
    }
    let first = admit(&w, &concierge, new_session(), OnBusy::Reject, Origin::Concierge).await.unwrap();
    let r = refusal(admit(&w, &concierge, Scope::Turn(&first.session), OnBusy::Reject, Origin::Concierge).await);
    assert_eq!(r, Refusal::ConciergeBusy { session: first.session.id.clone() });
}
