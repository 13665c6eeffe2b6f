//! The scheduler (§11): fires due cron schedules. Every replica runs it; the store's
//! compare-and-set on `next_fire_at` makes each due time fire exactly once (see
//! `steward_store::schedules`). Time comes from the runtime's `Clock`, so tests move a manual
//! clock instead of sleeping.
//!
//! **Missed fires.** A due time more than [`MISSED_AFTER_MS`] old when the scheduler sees it
//! (the server was down) is *missed*: with policy `skip` it is recorded as `skipped` and the
//! schedule moves to its next time after now; with `fire_once` it fires once (for the oldest
//! missed time) and then moves on — never once per missed occurrence.

use std::collections::{BTreeMap, HashMap};

use steward_core::agent::{Agent, AgentState};
use steward_core::ids::SessionId;
use steward_core::schedule::MissedPolicy;
use steward_store::{Fire, NewSession, Schedule, StoreError};

use crate::engine::Runtime;

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
        let mut agents = HashMap::new();
        let mut fires = Vec::with_capacity(due.len());
        for s in &due {
            let Some(scheduled_at) = s.next_fire_at else { continue };
            let missed = now - scheduled_at > MISSED_AFTER_MS;
            let next = if missed { s.config.next_fire_after(now) } else { s.config.next_fire_after(scheduled_at) };
            let fire = if missed && s.config.missed == MissedPolicy::Skip {
                Fire::Skip
            } else {
                if !agents.contains_key(&s.agent_id) {
                    agents.insert(s.agent_id.clone(), store.agent(&s.agent_id).await?);
                }
                Self::plan(agents[&s.agent_id].as_ref(), s, scheduled_at, now)
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

    /// What firing `s` at `scheduled_at` means: a run, or the reason it cannot start.
    fn plan(agent: Option<&Agent>, s: &Schedule, scheduled_at: i64, now: i64) -> Fire {
        let Some(agent) = agent else {
            return Fire::Error("the agent no longer exists".into());
        };
        if agent.archived_at.is_some() {
            return Fire::Error("the agent is archived".into());
        }
        if agent.state != AgentState::Active {
            return Fire::Error(format!("the agent is {}; resume it to let the schedule start runs", agent.state.as_str()));
        }
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
