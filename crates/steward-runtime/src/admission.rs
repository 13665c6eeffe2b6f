//! Admission: the one decision whether an agent accepts a piece of work, and the one way a run
//! is started after it. Every way work arrives — `POST /v1/sessions`, another turn, the
//! messaging route, the Concierge, `POST /v1/agents/{id}/test`, webhook and integration
//! triggers, schedules — asks [`Runtime::check_admission`], directly or through
//! [`Runtime::admit`], so they refuse the same things with the same
//! [`Refusal`](steward_core::admission::Refusal).
//!
//! The decision is reads only: the agent's own state (`steward_core::admission::check_agent`:
//! a Concierge outside its endpoints, archived, paused, stopped, error, balance), then that its
//! provider exists in its sandbox and offers its model (`Providers::offering`; the key is read
//! when the run starts). Then `admit` hands the run to the store's run writer, which commits
//! admissions together with other runs' writes (group commit): a new session with its first
//! run (recording an idempotency claim in the same transaction) — created already claimed by
//! this process when it has a free slot, and started at once, so a new session's run costs no
//! claim transaction and no re-reads —, or a run added to a session, whose busy check is in the
//! insert's transaction (so two concurrent turns cannot both pass). Writers that batch — the webhook delivery writer, the scheduler's
//! fire transaction — call `check_admission` and then their own write.
//!
//! It never knows HTTP: the server maps a refusal to a status in one place.

use std::collections::BTreeMap;

use serde_json::Value;
use steward_core::admission::{Refusal, check_agent};
use steward_core::agent::Agent;
use steward_core::session::{Run, RunStatus, Session};
use steward_store::{IdempotencyClaim, NewRun, NewSession, RunTarget, Start, StoreError};

use crate::engine::{Prepared, Runtime};

/// Where the work comes from. Only [`Origin::Concierge`] may start work for a Concierge agent;
/// for the rest it is a label (logs) and what a refusal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `POST /v1/sessions`.
    NewSession,
    /// `POST /v1/sessions/{id}/messages`.
    Turn,
    /// `POST /v1/agents/{id}/messages`.
    Message,
    /// `…/concierge/test|chat`.
    Concierge,
    /// `POST /v1/agents/{id}/test`.
    Test,
    /// A webhook or integration trigger's delivery.
    Trigger,
    /// A schedule's due time.
    Schedule,
    /// A chat message to a bound channel (Telegram, …).
    Channel,
}

/// What to do when the session already has a queued or running run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBusy {
    /// Refuse ([`Refusal::Busy`]).
    Reject,
    /// Queue the run after the active ones.
    Enqueue,
    /// Cancel the active runs, then queue this one.
    Interrupt,
}

impl OnBusy {
    /// `reject`, `enqueue` or `interrupt`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "reject" => Some(OnBusy::Reject),
            "enqueue" => Some(OnBusy::Enqueue),
            "interrupt" => Some(OnBusy::Interrupt),
            _ => None,
        }
    }
}

/// Where the run goes.
#[derive(Debug)]
pub enum Scope<'a> {
    /// A new session, pinned to the agent's current version.
    New { end_user: Option<String>, counterparty: Option<String>, metadata: BTreeMap<String, String> },
    /// Another turn of this session (a session of the admitted agent).
    Turn(&'a Session),
}

/// A request to start a run.
#[derive(Debug)]
pub struct Admission<'a> {
    pub agent: &'a Agent,
    pub scope: Scope<'a>,
    /// The run's input items (validated by the caller).
    pub input: &'a Value,
    pub on_busy: OnBusy,
    pub origin: Origin,
    /// `POST /v1/sessions`' `Idempotency-Key` claim: a new session is named in its record in
    /// the transaction that creates it.
    pub claim: Option<&'a IdempotencyClaim>,
}

/// The run that was admitted (queued; the runtime has been kicked).
#[derive(Debug, Clone)]
pub struct Admitted {
    pub session: Session,
    pub run: Run,
}

/// Why `admit` started nothing: a refusal, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Runtime {
    /// Whether `agent` accepts work from `origin` now: its state, then its provider and model.
    /// Reads only; the first refusal wins.
    pub async fn check_admission(&self, agent: &Agent, origin: Origin) -> Result<(), AdmitError> {
        check_agent(agent, origin == Origin::Concierge)?;
        self.check_model(agent).await
    }

    /// Only the provider half of [`Self::check_admission`]: the agent's provider exists in its
    /// sandbox and offers its model (`GET /v1/agents/{id}/ready` lists both halves).
    pub async fn check_model(&self, agent: &Agent) -> Result<(), AdmitError> {
        let model = &agent.config.model;
        self.providers().offering(&agent.sandbox_id, &model.provider_id, &model.name).await??;
        Ok(())
    }

    /// Checks (as [`Self::check_admission`]) and, when admitted, creates the run — a new session
    /// with its first run, or another turn of `scope`'s session following `on_busy` — and
    /// kicks the session's worker. A refusal writes nothing.
    pub async fn admit(&self, a: Admission<'_>) -> Result<Admitted, AdmitError> {
        self.check_admission(a.agent, a.origin).await?;
        let store = self.store();
        let (session, run) = match a.scope {
            Scope::New { end_user, counterparty, metadata } => {
                let session = NewSession {
                    sandbox_id: a.agent.sandbox_id.clone(),
                    agent_id: a.agent.id.clone(),
                    agent_version: a.agent.version,
                    end_user,
                    counterparty,
                    metadata,
                };
                // With a free slot the run is created claimed by this process and starts at
                // once; without one it waits `queued` for a worker, as a turn does.
                let slot = self.free_slot();
                let start = slot.as_ref().map(|_| Start {
                    owner: self.node_id().to_owned(),
                    messages: crate::conversation::input_messages(a.input)
                        .into_iter()
                        .map(|(role, m)| (role, crate::conversation::parts_to_json(&m.parts)))
                        .collect(),
                });
                let new = NewRun { target: RunTarget::New { session, start }, input: a.input.clone(), claim: a.claim.cloned() };
                let (session, run) = store.admit_run(new).await?;
                match slot {
                    Some(slot) if run.status == RunStatus::Running => {
                        let prepared = Prepared { session: session.clone(), agent: a.agent.clone() };
                        self.start_claimed(run.clone(), slot, prepared);
                    }
                    _ => self.kick(&session.id),
                }
                return Ok(Admitted { session, run });
            }
            Scope::Turn(session) => {
                debug_assert_eq!(session.agent_id, a.agent.id, "a turn is admitted for its session's agent");
                if a.on_busy == OnBusy::Interrupt {
                    self.cancel_session(&session.id, "interrupted by a newer message").await?;
                }
                let run = store.create_run(session, a.input, a.on_busy != OnBusy::Reject).await.map_err(|e| match e {
                    StoreError::Busy(_) if a.origin == Origin::Concierge => {
                        AdmitError::Refused(Refusal::ConciergeBusy { session: session.id.clone() })
                    }
                    StoreError::Busy(message) => AdmitError::Refused(Refusal::Busy { session: session.id.clone(), message }),
                    e => AdmitError::Store(e),
                })?;
                (session.clone(), run)
            }
        };
        self.kick(&session.id);
        Ok(Admitted { session, run })
    }
}
