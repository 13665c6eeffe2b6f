//! Which agents and sessions a caller reaches, in one place for every route: account callers
//! by their role in the resource's sandbox, agent keys by their agent (and a delegate key's end
//! user), and a Concierge only by its own account (§5). A resource the caller may not see
//! answers 404 exactly like one that does not exist.

use axum::http::{HeaderMap, StatusCode};
use steward_core::admission::Refusal;
use steward_core::agent::Agent;
use steward_core::ids::{AgentId, SessionId};
use steward_core::session::Session;
use steward_core::tenancy::KeyKind;

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult};
use crate::views::END_USER_HEADER;

/// Loads an agent by its path id and checks the caller may do `need` with it. Agent keys are
/// refused even for their own agent: they are embedded in third-party surfaces, and the
/// configuration (system prompt included) is not theirs to read.
pub(crate) async fn load_agent(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<Agent> {
    let id = AgentId::parse(raw, "id")?;
    let agent = state.store.agent(&id).await?.ok_or_else(|| ApiError::not_found("agent", raw))?;
    caller.authorize_resource(state, &agent.sandbox_id, need, "agent", raw).await?;
    concierge_guard(caller, &agent, need)?;
    Ok(agent)
}

/// A Concierge (§5) belongs to one account and the platform manages it: to anyone else it does
/// not exist (404); its own account may read it and its sessions, and talks to it only through
/// `…/concierge/chat|test` (other writes answer 409 saying so).
pub(crate) fn concierge_guard(caller: &Caller, agent: &Agent, need: Need) -> ApiResult<()> {
    match &agent.concierge_of {
        None => Ok(()),
        Some(owner) if owner != &caller.account_id || caller.agent_key().is_some() => Err(ApiError::not_found("agent", agent.id.as_str())),
        Some(_) if need == Need::Read => Ok(()),
        Some(_) => Err(Refusal::ConciergeManaged { agent: agent.id.clone(), sandbox: agent.sandbox_id.clone() }.into()),
    }
}

/// The end user a delegate-key request names (body field, query parameter or header).
pub(crate) fn end_user_of(caller: &Caller, explicit: Option<&str>, headers: &HeaderMap) -> ApiResult<Option<String>> {
    let named = explicit.map(str::to_owned).or_else(|| headers.get(END_USER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned));
    if let Some(u) = &named
        && (u.is_empty() || u.len() > 200 || u.chars().any(char::is_control))
    {
        return Err(ApiError::invalid("end_user", "an end_user is 1–200 printable characters"));
    }
    match caller.agent_key() {
        Some(k) if k.kind == KeyKind::AgentDelegate => match named {
            Some(u) => Ok(Some(u)),
            None => Err(ApiError::invalid(
                "end_user",
                "a delegate key must name the end user: send `end_user` (or the `Steward-End-User` header)",
            )),
        },
        _ => Ok(named),
    }
}

/// Loads a session and checks the caller may do `need` with it.
pub(crate) async fn load_session(state: &AppState, caller: &Caller, raw: &str, need: Need, end_user: Option<&str>) -> ApiResult<Session> {
    Ok(load_session_with_agent(state, caller, raw, need, end_user).await?.0)
}

/// `load_session`, also returning the session's agent when the checks read it (account callers).
pub(crate) async fn load_session_with_agent(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    need: Need,
    end_user: Option<&str>,
) -> ApiResult<(Session, Option<Agent>)> {
    let id = SessionId::parse(raw, "id")?;
    let not_found = || ApiError::not_found("session", raw);
    let session = state.store.session(&id).await?.filter(|s| s.deleted_at.is_none()).ok_or_else(not_found)?;
    if let Some(k) = caller.agent_key() {
        if k.sandbox_id != session.sandbox_id || k.agent_id.as_ref() != Some(&session.agent_id) {
            return Err(not_found());
        }
        if k.kind == KeyKind::AgentDelegate && session.end_user.as_deref() != end_user {
            return Err(not_found());
        }
        return Ok((session, None));
    }
    caller.authorize_resource(state, &session.sandbox_id, need, "session", raw).await?;
    // Another account's Concierge conversation does not exist for this caller.
    let agent = state.store.agent(&session.agent_id).await?;
    if let Some(agent) = &agent {
        concierge_guard(caller, agent, need).map_err(|e| if e.status == StatusCode::NOT_FOUND { not_found() } else { e })?;
    }
    Ok((session, agent))
}
