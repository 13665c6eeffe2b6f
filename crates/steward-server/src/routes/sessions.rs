//! Sessions (§4): create (starting the first run), list, get, another turn with `on_busy`,
//! cancel, soft delete, the event log, and the reconnect-safe SSE stream.
//!
//! Agent keys reach these routes: an `agent_invoke` key only for its agent's sessions, an
//! `agent_delegate` key additionally only for sessions of the `end_user` it names.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_core::ids::{AgentId, SessionId};
use steward_core::session::{Event, Session, event_id, parse_event_id};
use steward_runtime::admission::{Admission, OnBusy, Origin, Scope};
use steward_store::SessionFilter;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::access::{concierge_guard, end_user_of, load_session as load, load_session_with_agent as load_with_agent};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{Page, page_request, ts};
use crate::views::{EndUserQuery, InputMessage, RunView, UsageView, check_input, run_view};

/// A session's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub agent_id: String,
    /// The agent version the session is pinned to.
    pub agent_version: i64,
    /// `idle` or `running`.
    pub status: String,
    pub end_user: Option<String>,
    pub counterparty: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub usage: UsageView,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// The run started by this request, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

pub(crate) fn session_view(s: Session, run_id: Option<String>) -> SessionView {
    SessionView {
        id: s.id.to_string(),
        agent_id: s.agent_id.to_string(),
        agent_version: s.agent_version,
        status: s.status,
        end_user: s.end_user,
        counterparty: s.counterparty,
        metadata: s.metadata,
        usage: UsageView { input_tokens: s.input_tokens, output_tokens: s.output_tokens },
        created_at: ts(s.created_at),
        updated_at: ts(s.updated_at),
        deleted_at: s.deleted_at.map(ts),
        run_id,
    }
}

/// One item of the event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Opaque; sorts in emission order within the session. Resume a stream after it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub run_id: String,
    pub created_at: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

fn event_view(e: Event) -> EventView {
    EventView { id: e.id(), kind: e.kind, run_id: e.run_id.to_string(), created_at: ts(e.created_at), data: e.data }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub agent_id: String,
    /// The first user turn; its run starts at once.
    pub input: Vec<InputMessage>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Required with delegate keys: the end user this session belongs to.
    pub end_user: Option<String>,
    /// Who the agent talks to, for grouping conversations.
    pub counterparty: Option<String>,
}

/// Creates a session pinned to the agent's current version and starts its first run.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses((status = 201, body = SessionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    claim: Option<axum::Extension<steward_store::IdempotencyClaim>>,
    ApiJson(body): ApiJson<CreateSession>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let end_user = end_user_of(&caller, body.end_user.as_deref(), &headers)?;
    let agent_id = AgentId::parse(&body.agent_id, "agent_id")?;
    let agent = state.store.agent(&agent_id).await?.ok_or_else(|| ApiError::not_found("agent", &body.agent_id).with_param("agent_id"))?;
    concierge_guard(&caller, &agent, Need::Write).map_err(|e| {
        if e.status == StatusCode::NOT_FOUND { ApiError::not_found("agent", &body.agent_id).with_param("agent_id") } else { e }
    })?;
    match caller.agent_key() {
        Some(k) if k.sandbox_id != agent.sandbox_id => return Err(ApiError::not_found("agent", &body.agent_id).with_param("agent_id")),
        Some(k) if k.agent_id.as_ref() != Some(&agent.id) => {
            return Err(ApiError::forbidden(format!(
                "this key may only start sessions with agent {}",
                k.agent_id.as_ref().map(|a| a.as_str()).unwrap_or("?")
            )));
        }
        Some(_) => {}
        None => {
            caller.authorize_resource(&state, &agent.sandbox_id, Need::Write, "agent", &body.agent_id).await?;
        }
    }
    let input = check_input(&body.input)?;
    if body.metadata.len() > 50 {
        return Err(ApiError::invalid("metadata", "at most 50 metadata keys"));
    }
    let claim = claim.map(|axum::Extension(c)| c);
    // A retry that took over the Idempotency-Key of a request whose server died after creating
    // the session answers with that session (it was checked against the same body).
    if let Some((sid, rid)) = claim.as_ref().and_then(|c| c.created_ref.as_deref()).and_then(|r| r.split_once('/'))
        && let Some(session) = state.store.session(&steward_core::ids::SessionId::from_trusted(sid.to_owned())).await?
    {
        return Ok((StatusCode::CREATED, Json(session_view(session, (!rid.is_empty()).then(|| rid.to_owned())))));
    }
    let counterparty = body.counterparty.or_else(|| end_user.clone());
    let admitted = state
        .runtime
        .admit(Admission {
            agent: &agent,
            scope: Scope::New { end_user, counterparty, metadata: body.metadata },
            input: &input,
            on_busy: OnBusy::Reject,
            origin: Origin::NewSession,
            claim: claim.as_ref(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(session_view(admitted.session, Some(admitted.run.id.to_string())))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListSessions {
    pub agent_id: Option<String>,
    /// `idle` or `running`.
    pub status: Option<String>,
    pub end_user: Option<String>,
    pub sandbox_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Sessions, newest first.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", params(ListSessions),
    responses((status = 200, body = Page<SessionView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListSessions>,
) -> ApiResult<Json<Page<SessionView>>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let end_user = end_user_of(&caller, q.end_user.as_deref(), &headers)?;
    let agent_id = q.agent_id.as_deref().map(|a| AgentId::parse(a, "agent_id")).transpose()?;
    if let Some(s) = &q.status
        && s != "idle"
        && s != "running"
    {
        return Err(ApiError::invalid("status", "a session status is `idle` or `running`"));
    }
    let (sandbox, agent_id) = match caller.agent_key() {
        Some(k) => {
            if agent_id.as_ref().is_some_and(|a| Some(a) != k.agent_id.as_ref()) {
                return Err(ApiError::forbidden("this key may only read its own agent's sessions"));
            }
            (k.sandbox_id.clone(), k.agent_id.clone())
        }
        None => {
            let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
            caller.authorize(&state, &sandbox, Need::Read).await?;
            (sandbox, agent_id)
        }
    };
    let filter = SessionFilter { agent_id, status: q.status, end_user, viewer: Some(caller.account_id.clone()) };
    Ok(Json(Page::from_listing(state.store.sessions(&sandbox, &filter, &page).await?, |s| session_view(s, None))))
}

/// One session.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path), EndUserQuery),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<SessionView>> {
    let end_user = end_user_of(&caller, q.end_user.as_deref(), &headers)?;
    Ok(Json(session_view(load(&state, &caller, &id, Need::Read, end_user.as_deref()).await?, None)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessages {
    pub input: Vec<InputMessage>,
    /// What to do when a run is active: `reject` (default, 409), `enqueue` (run after it) or
    /// `interrupt` (cancel it, then run this).
    pub on_busy: Option<String>,
    pub end_user: Option<String>,
}

/// Another user turn.
#[utoipa::path(post, path = "/v1/sessions/{id}/messages", tag = "sessions", params(("id" = String, Path)), request_body = SendMessages,
    responses((status = 202, body = RunView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendMessages>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    let end_user = end_user_of(&caller, body.end_user.as_deref(), &headers)?;
    let (session, agent) = load_with_agent(&state, &caller, &id, Need::Write, end_user.as_deref()).await?;
    let input = check_input(&body.input)?;
    let on_busy = OnBusy::parse(body.on_busy.as_deref().unwrap_or("reject"))
        .ok_or_else(|| ApiError::invalid("on_busy", "use `reject`, `enqueue` or `interrupt`"))?;
    let agent = match agent {
        Some(a) => a,
        None => state.store.agent(&session.agent_id).await?.ok_or_else(|| ApiError::not_found("agent", session.agent_id.as_str()))?,
    };
    let admission = Admission { agent: &agent, scope: Scope::Turn(&session), input: &input, on_busy, origin: Origin::Turn, claim: None };
    let admitted = state.runtime.admit(admission).await?;
    Ok((StatusCode::ACCEPTED, Json(run_view(admitted.run))))
}

/// How many runs a cancel stopped.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    pub cancelled_runs: usize,
}

/// Cancels the session's queued and running runs.
#[utoipa::path(post, path = "/v1/sessions/{id}/cancel", tag = "sessions", params(("id" = String, Path), EndUserQuery),
    responses((status = 200, body = Cancelled), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<Cancelled>> {
    let end_user = end_user_of(&caller, q.end_user.as_deref(), &headers)?;
    let session = load(&state, &caller, &id, Need::Write, end_user.as_deref()).await?;
    let n = state.runtime.cancel_session(&session.id, "cancelled by request").await?;
    Ok(Json(Cancelled { cancelled_runs: n }))
}

/// Soft-deletes a session (its active runs are cancelled first).
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path), EndUserQuery),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<SessionView>> {
    let end_user = end_user_of(&caller, q.end_user.as_deref(), &headers)?;
    let session = load(&state, &caller, &id, Need::Write, end_user.as_deref()).await?;
    state.runtime.cancel_session(&session.id, "the session was deleted").await?;
    Ok(Json(session_view(state.store.delete_session(&session.id).await?, None)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AfterQuery {
    /// Only events after this event id.
    pub after: Option<String>,
    pub end_user: Option<String>,
}

/// The position to resume after: `?after=` or the `Last-Event-ID` header. An id past the end
/// of the log is refused like a malformed one: resuming there would wait for events that were
/// never sent to this client and silently skip the ones numbered up to it.
async fn resume_point(state: &AppState, session: &Session, after: Option<&str>, headers: &HeaderMap) -> ApiResult<i64> {
    let from_header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (raw, param) = match (after, from_header) {
        (Some(a), _) => (a, "after"),
        (None, Some(h)) => (h, "Last-Event-ID"),
        (None, None) => return Ok(0),
    };
    let seq = parse_event_id(raw, &session.id, param)?;
    let last = state.store.last_event_seq(&session.id).await?;
    if seq > last {
        let fix = if last == 0 {
            "the session has no events yet; omit it to read from the start".to_owned()
        } else {
            format!("its last event is {}; pass that or an earlier id, or omit it to read from the start", event_id(&session.id, last))
        };
        return Err(ApiError::invalid(
            param,
            format!("`{}` is past the end of this session's event log: {fix}", steward_core::ids::shorten(raw)),
        ));
    }
    Ok(seq)
}

/// The event log, as a JSON array.
#[utoipa::path(get, path = "/v1/sessions/{id}/events", tag = "sessions", params(("id" = String, Path), AfterQuery),
    responses((status = 200, body = Vec<EventView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AfterQuery>,
) -> ApiResult<Json<Vec<EventView>>> {
    let end_user = end_user_of(&caller, q.end_user.as_deref(), &headers)?;
    let session = load(&state, &caller, &id, Need::Read, end_user.as_deref()).await?;
    let mut after = resume_point(&state, &session, q.after.as_deref(), &headers).await?;
    let mut out = Vec::new();
    loop {
        let batch = state.store.events_after(&session.id, after, 1000).await?;
        let n = batch.len();
        if let Some(last) = batch.last() {
            after = last.seq;
        }
        out.extend(batch.into_iter().map(event_view));
        if n < 1000 {
            break;
        }
    }
    Ok(Json(out))
}

/// Server-sent events: the log after `?after=` / `Last-Event-ID`, then the live tail. Every
/// frame has `id:`, `event:` and `data:`; heartbeat comments keep idle connections open.
/// Closing the stream does not cancel the run.
#[utoipa::path(get, path = "/v1/sessions/{id}/stream", tag = "sessions", params(("id" = String, Path), AfterQuery),
    responses((status = 200, description = "Server-sent events: `id:` (the event id), `event:` (its type), `data:` (its JSON), and `: heartbeat` comments", content_type = "text/event-stream", body = crate::routes::SseFrame), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AfterQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let end_user = end_user_of(&caller, q.end_user.as_deref(), &headers)?;
    let session = load(&state, &caller, &id, Need::Read, end_user.as_deref()).await?;
    let after = resume_point(&state, &session, q.after.as_deref(), &headers).await?;
    let heartbeat = state.config.sse_heartbeat;
    Ok(Sse::new(tail(state, session.id, after)).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// Events after `after`, then new ones as they are appended, forever (until the client goes).
pub(crate) fn tail(state: AppState, session: SessionId, after: i64) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    follow(state, session, after).map(|ev| Ok(SseEvent::default().id(ev.id()).event(ev.kind.clone()).data(ev.data.to_string())))
}

/// The session's events after `after`, then live (the runtime's event log; see `EventLog::follow`).
pub(crate) fn follow(state: AppState, session: SessionId, after: i64) -> impl Stream<Item = Event> {
    state.runtime.events().follow(session, after, state.config.stream_poll)
}
