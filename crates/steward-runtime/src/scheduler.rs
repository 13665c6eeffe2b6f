//! The scheduler (§11): fires due cron schedules. Every replica runs it; the store's
//! compare-and-set on `next_fire_at` makes each due time fire exactly once (see
//! `steward_store::schedules`). Time comes from the runtime's `Clock`, so tests move a manual
//! clock instead of sleeping.
//!
//! **Missed fires.** A due time more than [`MISSED_AFTER_MS`] old when the scheduler sees it
//! (the server was down) is *missed*: with policy `skip` it is recorded as `skipped` and the
//! schedule moves to its next time after now; with `fire_once` it fires once (for the oldest
//! missed time) and then moves on — never once per missed occurrence.
//!
//! **Admission.** A due time whose agent does not admit work (paused, stopped, error, archived,
//! out of tokens, provider missing or not offering the model: `crate::admission`, as for every
//! other way a run starts) starts nothing and is recorded as a `refused` execution with the
//! refusal's message, which also becomes the schedule's `last_error`.

use std::collections::{BTreeMap, HashMap};

use steward_core::agent::Agent;
use steward_core::ids::{AgentId, SessionId};
use steward_core::schedule::MissedPolicy;
use steward_store::{Fire, NewSession, Schedule, StoreError};

use crate::admission::{AdmitError, Origin};
use crate::engine::Runtime;

/// A schedule's agent at one tick.
enum Verdict {
    Admitted(Box<Agent>),
    /// The admission refusal's message.
    Refused(String),
    Gone,
}

/// A due time older than this when seen is "missed" rather than "late".
pub const MISSED_AFTER_MS: i64 = 60_000;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

impl Runtime {
    /// Handles every due schedule once; returns the number of due times this replica fired,
    /// skipped or recorded as errors. Everything due at this tick is fired in one transaction.
    pub async fn schedule_tick(&self) -> Result<usize, StoreError> {
        let store = &self.inner.store;
        let now = self.inner.clock.now_ms();
        let due = store.due_schedules(now, 200).await?;
        let mut verdicts = HashMap::new();
        let mut fires = Vec::with_capacity(due.len());
        for s in &due {
            let Some(scheduled_at) = s.next_fire_at else { continue };
            let missed = now - scheduled_at > MISSED_AFTER_MS;
            let next = if missed { s.config.next_fire_after(now) } else { s.config.next_fire_after(scheduled_at) };
            let fire = if missed && s.config.missed == MissedPolicy::Skip {
                Fire::Skip
            } else {
                if !verdicts.contains_key(&s.agent_id) {
                    verdicts.insert(s.agent_id.clone(), self.admission_of(&s.agent_id).await?);
                }
                match &verdicts[&s.agent_id] {
                    Verdict::Admitted(agent) => Self::plan(agent, s, scheduled_at, now),
                    Verdict::Refused(why) => Fire::Refused(why.clone()),
                    Verdict::Gone => Fire::Error("the agent no longer exists".into()),
                }
            };
            fires.push((s, scheduled_at, next, fire));
        }
        if fires.is_empty() {
            return Ok(0);
        }
        let mut handled = 0;
        for execution in store.fire_schedules(fires).await?.into_iter().flatten() {
            handled += 1;
            if let Some(session) = execution.session_id {
                self.kick(&SessionId::from_trusted(session));
            }
        }
        Ok(handled)
    }

    /// Whether the schedule's agent admits work now: the same check as every other way a run
    /// starts (`crate::admission`), made once per agent per tick, before the fire transaction.
    async fn admission_of(&self, agent: &AgentId) -> Result<Verdict, StoreError> {
        let Some(agent) = self.inner.store.agent(agent).await? else { return Ok(Verdict::Gone) };
        match self.check_admission(&agent, Origin::Schedule).await {
            Ok(()) => Ok(Verdict::Admitted(Box::new(agent))),
            Err(AdmitError::Refused(r)) => Ok(Verdict::Refused(r.to_string())),
            Err(AdmitError::Store(e)) => Err(e),
        }
    }

    /// What firing `s` at `scheduled_at` for the admitted `agent` means: a run, or the reason
    /// its input cannot be rendered.
    fn plan(agent: &Agent, s: &Schedule, scheduled_at: i64, now: i64) -> Fire {
        let ctx = minijinja::context! {
            scheduled_at => rfc3339(scheduled_at),
            fired_at => rfc3339(now),
            schedule => minijinja::context! { id => s.id.as_str(), name => s.config.name.as_str(), cron => s.config.cron.as_str(), timezone => s.config.timezone.as_str() },
        };
        let text = match crate::template::render_with(&s.config.input_template, ctx) {
            Ok(t) => t,
            Err(e) => return Fire::Error(e),
        };
        let input = serde_json::json!([{"role": "user", "content": text, "schedule": {"id": s.id, "scheduled_at": rfc3339(scheduled_at)}}]);
        let new = NewSession {
            sandbox_id: agent.sandbox_id.clone(),
            agent_id: agent.id.clone(),
            agent_version: agent.version,
            end_user: None,
            counterparty: Some(format!("schedule:{}", s.config.name)),
            metadata: BTreeMap::from([("schedule_id".to_owned(), s.id.to_string()), ("scheduled_at".to_owned(), rfc3339(scheduled_at))]),
        };
        Fire::Start { new, input }
    }
}
