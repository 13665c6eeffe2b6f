//! Why an agent does not accept a piece of work: the one set of refusals every way a run starts
//! shares (a new session, another turn, a message, the Concierge, a test run, a webhook or
//! integration trigger, a schedule), and the part of the decision that needs no I/O — the
//! agent's own state ([`check_agent`]).
//!
//! The runtime (`steward_runtime::admission`) adds the checks that read the store (the
//! provider and its models, a busy session) and creates the run; the server turns a
//! [`Refusal`] into HTTP in one place (`From<Refusal> for ApiError`), a schedule records its
//! message as a `refused` execution. Messages say what to do; they are the text every caller
//! has answered with since the states were introduced, so they must not drift.

use std::fmt;

use crate::agent::{Agent, AgentState};
use crate::ids::{AgentId, SandboxId, SessionId};

/// Why work was not admitted. Each variant is one thing the caller can fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The agent is archived (soft-deleted); it takes no new work, ever.
    Archived { agent: AgentId },
    /// Paused: nothing new until resumed; in-flight runs finish.
    Paused { agent: AgentId },
    /// Stopped: nothing new until resumed.
    Stopped { agent: AgentId },
    /// The platform put the agent in `error` (bad key, budget, environment), with its reason.
    Error { agent: AgentId, reason: Option<String> },
    /// The token balance is at or below zero.
    BalanceExhausted { agent: AgentId },
    /// A Concierge (§5) is talked to only through `…/concierge/*`.
    ConciergeManaged { agent: AgentId, sandbox: SandboxId },
    /// The agent's provider is not configured in its sandbox.
    ProviderNotConfigured { provider: String },
    /// The provider exists but does not list the agent's model.
    ModelNotOffered { provider: String, model: String, models: Vec<String> },
    /// The session has a queued or running run and the caller asked to be refused then. The
    /// message is the store's, which names the active run.
    Busy { session: SessionId, message: String },
    /// The caller's Concierge is still answering in this session.
    ConciergeBusy { session: SessionId },
}

impl Refusal {
    /// A short, fixed label (for logs and metrics; never parsed).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Archived { .. } => "archived",
            Refusal::Paused { .. } => "paused",
            Refusal::Stopped { .. } => "stopped",
            Refusal::Error { .. } => "error",
            Refusal::BalanceExhausted { .. } => "balance_exhausted",
            Refusal::ConciergeManaged { .. } => "concierge_managed",
            Refusal::ProviderNotConfigured { .. } => "provider_not_configured",
            Refusal::ModelNotOffered { .. } => "model_not_offered",
            Refusal::Busy { .. } | Refusal::ConciergeBusy { .. } => "busy",
        }
    }

    /// Whether the agent's model configuration is at fault (HTTP answers these with 422 on
    /// `model`; the others are conflicts with the agent's or session's state).
    pub fn is_model_config(&self) -> bool {
        matches!(self, Refusal::ProviderNotConfigured { .. } | Refusal::ModelNotOffered { .. })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Archived { agent } => write!(f, "agent {agent} is archived and takes no new work"),
            Refusal::Paused { agent } => {
                write!(f, "agent {agent} is paused; resume it (POST /v1/agents/{agent}/resume) to send it work")
            }
            Refusal::Stopped { agent } => {
                write!(f, "agent {agent} is stopped; resume it (POST /v1/agents/{agent}/resume) to send it work")
            }
            Refusal::Error { agent, reason } => {
                write!(f, "agent {agent} is in error ({}); fix that and resume it", reason.as_deref().unwrap_or("no reason given"))
            }
            Refusal::BalanceExhausted { agent } => {
                write!(f, "agent {agent}'s token balance is exhausted; add tokens with POST /v1/agents/{agent}/balance")
            }
            Refusal::ConciergeManaged { agent, sandbox } => write!(
                f,
                "agent {agent} is your Concierge, which the platform manages; talk to it with `steward chat` or POST /v1/sandboxes/{sandbox}/concierge/chat"
            ),
            Refusal::ProviderNotConfigured { provider } => {
                write!(f, "the agent uses provider `{provider}`, which is not configured in this sandbox; add it with POST /v1/providers")
            }
            Refusal::ModelNotOffered { provider, model, models } => write!(
                f,
                "provider `{provider}` does not offer model `{model}`; its models are: {}. Add the model to the provider or change the agent's model",
                models.join(", ")
            ),
            Refusal::Busy { message, .. } => f.write_str(message),
            Refusal::ConciergeBusy { session } => write!(
                f,
                "the Concierge is still answering in session {session}; wait for its `agent_finish`, or start a new conversation without `session_id`"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The checks on the agent itself, in the order callers have always met them: archived, then
/// its state, then its balance. A Concierge is refused unless the work comes through its own
/// endpoints (`via_concierge`).
pub fn check_agent(agent: &Agent, via_concierge: bool) -> Result<(), Refusal> {
    let id = || agent.id.clone();
    if agent.concierge_of.is_some() && !via_concierge {
        return Err(Refusal::ConciergeManaged { agent: id(), sandbox: agent.sandbox_id.clone() });
    }
    if agent.archived_at.is_some() {
        return Err(Refusal::Archived { agent: id() });
    }
    match agent.state {
        AgentState::Active => {}
        AgentState::Paused => return Err(Refusal::Paused { agent: id() }),
        AgentState::Stopped => return Err(Refusal::Stopped { agent: id() }),
        AgentState::Error => return Err(Refusal::Error { agent: id(), reason: agent.state_reason.clone() }),
    }
    if agent.token_balance.is_some_and(|b| b <= 0) {
        return Err(Refusal::BalanceExhausted { agent: id() });
    }
    Ok(())
}

/// Whether `models` (a provider's list) offers `model`.
pub fn check_model(provider: &str, model: &str, models: &[String]) -> Result<(), Refusal> {
    if models.iter().any(|m| m == model) {
        return Ok(());
    }
    Err(Refusal::ModelNotOffered { provider: provider.to_owned(), model: model.to_owned(), models: models.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentConfig, ModelRef};
    use crate::ids::AccountId;

    fn agent() -> Agent {
        Agent {
            id: AgentId::from_trusted("agt_1".to_owned()),
            sandbox_id: SandboxId::from_trusted("sbx_1".to_owned()),
            version: 1,
            config: AgentConfig {
                name: "a".into(),
                description: String::new(),
                model: ModelRef { provider_id: "p".into(), name: "m".into() },
                system_prompt: String::new(),
                tool_sources: vec![],
                tools: vec![],
                max_turns: 5,
                max_output_tokens: 100,
                temperature: None,
                environment_id: None,
                skills: vec![],
                memory_store_ids: vec![],
                metadata: Default::default(),
            },
            state: AgentState::Active,
            state_reason: None,
            token_balance: None,
            created_at: 0,
            updated_at: 0,
            archived_at: None,
            concierge_of: None,
        }
    }

    #[test]
    fn an_active_agent_with_tokens_is_admitted() {
        assert_eq!(check_agent(&agent(), false), Ok(()));
        assert_eq!(check_agent(&Agent { token_balance: Some(1), ..agent() }, false), Ok(()));
    }

    #[test]
    fn each_state_is_its_own_refusal_with_the_fix() {
        let id = || AgentId::from_trusted("agt_1".to_owned());
        let r = check_agent(&Agent { state: AgentState::Paused, ..agent() }, false).unwrap_err();
        assert_eq!(r, Refusal::Paused { agent: id() });
        assert_eq!(r.to_string(), "agent agt_1 is paused; resume it (POST /v1/agents/agt_1/resume) to send it work");
        let r = check_agent(&Agent { state: AgentState::Stopped, ..agent() }, false).unwrap_err();
        assert_eq!(r.to_string(), "agent agt_1 is stopped; resume it (POST /v1/agents/agt_1/resume) to send it work");
        let r =
            check_agent(&Agent { state: AgentState::Error, state_reason: Some("budget_exhausted".into()), ..agent() }, false).unwrap_err();
        assert_eq!(r, Refusal::Error { agent: id(), reason: Some("budget_exhausted".into()) });
        assert_eq!(r.to_string(), "agent agt_1 is in error (budget_exhausted); fix that and resume it");
        let r = check_agent(&Agent { state: AgentState::Error, ..agent() }, false).unwrap_err();
        assert!(r.to_string().contains("(no reason given)"), "{r}");
    }

    #[test]
    fn archived_comes_before_the_state_and_the_balance_after_it() {
        let archived = Agent { archived_at: Some(1), state: AgentState::Paused, token_balance: Some(0), ..agent() };
        assert_eq!(check_agent(&archived, false).unwrap_err().reason(), "archived");
        assert_eq!(check_agent(&archived, false).unwrap_err().to_string(), "agent agt_1 is archived and takes no new work");
        let paused_and_broke = Agent { state: AgentState::Paused, token_balance: Some(0), ..agent() };
        assert_eq!(check_agent(&paused_and_broke, false).unwrap_err().reason(), "paused");
        for balance in [0, -5] {
            let r = check_agent(&Agent { token_balance: Some(balance), ..agent() }, false).unwrap_err();
            assert_eq!(r, Refusal::BalanceExhausted { agent: AgentId::from_trusted("agt_1".to_owned()) });
            assert!(r.to_string().contains("POST /v1/agents/agt_1/balance"), "{r}");
        }
    }

    #[test]
    fn a_concierge_takes_work_only_through_its_own_endpoints() {
        let c = Agent { concierge_of: Some(AccountId::from_trusted("acc_1".to_owned())), ..agent() };
        let r = check_agent(&c, false).unwrap_err();
        assert_eq!(r.reason(), "concierge_managed");
        assert!(r.to_string().contains("`steward chat` or POST /v1/sandboxes/sbx_1/concierge/chat"), "{r}");
        assert_eq!(check_agent(&c, true), Ok(()));
        // Its own endpoints still honour its state.
        assert_eq!(check_agent(&Agent { state: AgentState::Paused, ..c }, true).unwrap_err().reason(), "paused");
    }

    #[test]
    fn model_refusals_name_the_fix_and_are_model_config() {
        assert_eq!(check_model("p", "m", &["m".into()]), Ok(()));
        let r = check_model("anthropic", "claude-nope", &["claude-a".into(), "claude-b".into()]).unwrap_err();
        assert!(r.is_model_config());
        assert_eq!(
            r.to_string(),
            "provider `anthropic` does not offer model `claude-nope`; its models are: claude-a, claude-b. Add the model to the provider or change the agent's model"
        );
        let r = Refusal::ProviderNotConfigured { provider: "nobody".into() };
        assert!(r.is_model_config() && r.to_string().ends_with("add it with POST /v1/providers"), "{r}");
        let busy = Refusal::ConciergeBusy { session: SessionId::from_trusted("ses_1".to_owned()) };
        assert!(!busy.is_model_config());
        assert!(busy.to_string().contains("session ses_1"), "{busy}");
    }
}
