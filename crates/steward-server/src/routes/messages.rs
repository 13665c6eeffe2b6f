//! The messaging surface for chat products (§4): send a message to an agent and (by default)
//! wait for its reply, read a conversation, list conversations grouped by counterparty.
//! Conversations are sessions; `conversation_id` is the session id.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use steward_core::agent::Agent;
use steward_core::session::Session;
use steward_core::tenancy::KeyKind;
use steward_runtime::admission::{Admission, Admitted, OnBusy, Origin, Scope};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::access::{concierge_guard, load_session};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::ts;
use crate::views::{END_USER_HEADER, EndUserQuery, InputMessage, UsageView, check_input, output_text, text_of};

pub mod compat;

/// Loads the agent for a messaging call; agent keys may use their own agent.
async fn agent_for(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<Agent> {
    let id = steward_core::ids::AgentId::parse(raw, "id")?;
    let agent = state.store.agent(&id).await?.ok_or_else(|| ApiError::not_found("agent", raw))?;
    concierge_guard(caller, &agent, need)
        .map_err(|e| if e.status == axum::http::StatusCode::NOT_FOUND { ApiError::not_found("agent", raw) } else { e })?;
    match caller.agent_key() {
        Some(k) if k.sandbox_id != agent.sandbox_id => Err(ApiError::not_found("agent", raw)),
        Some(k) if k.agent_id.as_ref() != Some(&agent.id) => Err(ApiError::forbidden("this key may only message its own agent")),
        Some(_) => Ok(agent),
        None => {
            caller.authorize_resource(state, &agent.sandbox_id, need, "agent", raw).await?;
            Ok(agent)
        }
    }
}

fn delegate_user(caller: &Caller, headers: &HeaderMap, explicit: Option<&str>) -> ApiResult<Option<String>> {
    let named = explicit.map(str::to_owned).or_else(|| headers.get(END_USER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned));
    match caller.agent_key() {
        Some(k) if k.kind == KeyKind::AgentDelegate && named.is_none() => {
            Err(ApiError::invalid("end_user", "a delegate key must name the end user: send `end_user` (or the `Steward-End-User` header)"))
        }
        Some(k) if k.kind == KeyKind::AgentDelegate => Ok(named),
        _ => Ok(None),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub content: String,
    /// Who is talking (a channel user, an end user); the conversation is continued per counterparty.
    pub counterparty: Option<String>,
    /// Continue this conversation (a session id) instead.
    pub conversation_id: Option<String>,
    /// Wait for the reply (default true).
    pub wait: Option<bool>,
    /// How long to wait, in seconds (default 120, at most 600).
    pub timeout_secs: Option<u64>,
    /// Delegate keys: the end user.
    pub end_user: Option<String>,
}

/// The outcome of a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageReply {
    pub conversation_id: String,
    pub run_id: String,
    /// The run's status; `queued`/`running` when the reply was not awaited or not ready in time.
    pub status: String,
    /// The agent's reply text (when finished).
    pub reply: Option<String>,
    pub stop_reason: Option<String>,
    pub usage: UsageView,
}

/// Sends a message to an agent; by default waits for the reply.
#[utoipa::path(post, path = "/v1/agents/{id}/messages", tag = "messages", params(("id" = String, Path)), request_body = SendMessage,
    responses((status = 200, body = MessageReply), (status = 202, body = MessageReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendMessage>,
) -> ApiResult<(StatusCode, Json<MessageReply>)> {
    let end_user = delegate_user(&caller, &headers, body.end_user.as_deref())?;
    let agent = agent_for(&state, &caller, &id, Need::Write).await?;
    let input = check_input(&[InputMessage { role: "user".into(), content: body.content }])?;
    let timeout = body.timeout_secs.unwrap_or(120);
    if timeout == 0 || timeout > 600 {
        return Err(ApiError::invalid("timeout_secs", "wait between 1 and 600 seconds"));
    }
    let counterparty = end_user.clone().or(body.counterparty);
    if let Some(c) = &counterparty
        && (c.is_empty() || c.len() > 200)
    {
        return Err(ApiError::invalid("counterparty", "a counterparty is 1–200 characters"));
    }
    let existing: Option<Session> = match (&body.conversation_id, &counterparty) {
        (Some(cid), _) => {
            Some(load_session(&state, &caller, cid, Need::Write, end_user.as_deref()).await.map_err(|e| e.with_param("conversation_id"))?)
        }
        (None, Some(c)) => state.store.latest_session_with(&agent.id, c).await?.filter(|s| s.end_user == end_user),
        (None, None) => None,
    };
    if let Some(s) = &existing
        && s.agent_id != agent.id
    {
        return Err(ApiError::not_found("conversation", body.conversation_id.as_deref().unwrap_or("")).with_param("conversation_id"));
    }
    let scope = match &existing {
        // A message to a conversation whose agent is still answering waits its turn.
        Some(session) => Scope::Turn(session),
        None => Scope::New { end_user, counterparty, metadata: Default::default() },
    };
    let admission = Admission { agent: &agent, scope, input: &input, on_busy: OnBusy::Enqueue, origin: Origin::Message, claim: None };
    let Admitted { session, run } = state.runtime.admit(admission).await?;
    let pending = |run: &steward_core::session::Run| MessageReply {
        conversation_id: session.id.to_string(),
        run_id: run.id.to_string(),
        status: run.status.as_str().into(),
        reply: None,
        stop_reason: None,
        usage: UsageView { input_tokens: run.input_tokens, output_tokens: run.output_tokens },
    };
    if body.wait == Some(false) {
        return Ok((StatusCode::ACCEPTED, Json(pending(&run))));
    }
    let Some(done) = state.runtime.wait_for(&run.id, &session.id, Duration::from_secs(timeout)).await? else {
        let now = state.store.run(&run.id).await?.unwrap_or(run);
        return Ok((StatusCode::ACCEPTED, Json(pending(&now))));
    };
    let reply = output_text(&state, &session.id, &done.id).await?;
    Ok((
        StatusCode::OK,
        Json(MessageReply {
            conversation_id: session.id.to_string(),
            run_id: done.id.to_string(),
            status: done.status.as_str().into(),
            reply: Some(reply),
            stop_reason: done.stop_reason,
            usage: UsageView { input_tokens: done.input_tokens, output_tokens: done.output_tokens },
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadMessages {
    /// The conversation (session id) to read.
    pub conversation_id: Option<String>,
    /// Or: the newest conversation with this counterparty. Neither: the agent's newest conversation.
    pub counterparty: Option<String>,
    pub end_user: Option<String>,
}

/// A message of a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    pub run_id: String,
    pub created_at: String,
}

/// A conversation's messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagesView {
    pub conversation_id: Option<String>,
    pub data: Vec<MessageView>,
}

/// The text messages of one conversation, oldest first.
#[utoipa::path(get, path = "/v1/agents/{id}/messages", tag = "messages", params(("id" = String, Path), ReadMessages),
    responses((status = 200, body = MessagesView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ReadMessages>,
) -> ApiResult<Json<MessagesView>> {
    let end_user = delegate_user(&caller, &headers, q.end_user.as_deref())?;
    let agent = agent_for(&state, &caller, &id, Need::Read).await?;
    let session = match (&q.conversation_id, end_user.as_ref().or(q.counterparty.as_ref())) {
        (Some(cid), _) => {
            Some(load_session(&state, &caller, cid, Need::Read, end_user.as_deref()).await?).filter(|s| s.agent_id == agent.id)
        }
        (None, Some(c)) => state.store.latest_session_with(&agent.id, c).await?.filter(|s| s.end_user == end_user),
        (None, None) => {
            let filter = steward_store::SessionFilter {
                agent_id: Some(agent.id.clone()),
                status: None,
                end_user: end_user.clone(),
                viewer: Some(caller.account_id.clone()),
            };
            let page = steward_store::PageRequest { limit: 1, before: None };
            state.store.sessions(&agent.sandbox_id, &filter, &page).await?.items.into_iter().next()
        }
    };
    let Some(session) = session else { return Ok(Json(MessagesView { conversation_id: None, data: vec![] })) };
    let data = state
        .store
        .conversation(&session.id)
        .await?
        .into_iter()
        .filter_map(|m| {
            let text = text_of(&m.content).join("");
            (!text.is_empty()).then(|| MessageView { role: m.role, text, run_id: m.run_id.to_string(), created_at: ts(m.created_at) })
        })
        .collect();
    Ok(Json(MessagesView { conversation_id: Some(session.id.to_string()), data }))
}

/// One counterparty's conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub counterparty: Option<String>,
    pub sessions: i64,
    pub last_conversation_id: String,
    pub last_activity_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationsView {
    pub data: Vec<ConversationView>,
}

/// The agent's sessions grouped by counterparty, most recently active first (at most 100).
#[utoipa::path(get, path = "/v1/agents/{id}/conversations", tag = "messages", params(("id" = String, Path), EndUserQuery),
    responses((status = 200, body = ConversationsView), (status = 404, body = ErrorBody)))]
pub async fn conversations(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<ConversationsView>> {
    let end_user = delegate_user(&caller, &headers, q.end_user.as_deref())?;
    let agent = agent_for(&state, &caller, &id, Need::Read).await?;
    let rows = state.store.conversations(&agent.id, end_user.as_deref(), 100).await?;
    Ok(Json(ConversationsView {
        data: rows
            .into_iter()
            .map(|c| ConversationView {
                counterparty: c.counterparty,
                sessions: c.sessions,
                last_conversation_id: c.last_session_id.to_string(),
                last_activity_at: ts(c.last_activity_at),
            })
            .collect(),
    }))
}
