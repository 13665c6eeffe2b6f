//! The Concierge's endpoints (§5): `…/concierge/test` (one JSON answer) and `…/concierge/chat`
//! (Server-Sent Events), also under `/storage/sandboxes/{id}/…`, and `POST /v1/agents/{id}/test`
//! (run an agent once with an input or a trigger's fake payload and wait for its output — what
//! the `test_agent` tool calls).
//!
//! A chat stream carries only its run's events, ends after the terminal frame, and owns the run:
//! if the client goes away before the end, the run is cancelled, which drops the model request
//! (nothing keeps running or billing). Closing a *session* stream (§4) does not do that.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_core::ids::{RunId, SandboxId, SessionId, TriggerId};
use steward_core::session::{Run, Session, event_type};
use steward_runtime::Runtime;
use steward_runtime::admission::{Admission, Admitted, OnBusy, Origin, Scope};
use utoipa::ToSchema;

use crate::AppState;
use crate::access::load_agent;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::{follow, ts};
use crate::views::{InputMessage, check_input, output_text};

/// Longest a `/concierge/test` or `/agents/{id}/test` call waits for its run.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Body of `…/concierge/test` and `…/concierge/chat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConciergeBody {
    /// What you ask the Concierge (1 B – 32 KiB).
    pub message: String,
    /// Continue this conversation (the `session_id` of a previous answer).
    pub session_id: Option<String>,
}

/// The answer of `…/concierge/test`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConciergeAnswer {
    pub run_id: String,
    /// `completed`, `failed` or `cancelled` (`running` if it did not finish in 10 minutes).
    pub status: String,
    pub output_text: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub duration_ms: Option<i64>,
    pub session_id: String,
}

/// A turn that has been queued.
struct Turn {
    session: Session,
    run: Run,
    /// The session's last event before the run: the run's events come after it.
    after: i64,
}

/// Validates, makes sure the caller's Concierge exists on the configured model, and queues the
/// turn (a new session, or another turn of `session_id`).
async fn start_turn(state: &AppState, caller: &Caller, raw_sandbox: &str, body: ConciergeBody) -> ApiResult<Turn> {
    caller.require_account_credential()?;
    let sandbox = SandboxId::parse(raw_sandbox, "sandbox_id")?;
    caller.authorize(state, &sandbox, Need::Read).await?;
    if body.message.trim().is_empty() {
        return Err(ApiError::invalid("message", "say something: `message` is empty"));
    }
    if body.message.len() > 32 * 1024 {
        return Err(ApiError::invalid("message", "a message is at most 32 KiB"));
    }
    let input = check_input(&[InputMessage { role: "user".into(), content: body.message }])?;
    let model = crate::concierge::model_for(state, &sandbox).await?;
    let agent = crate::concierge::ensure_agent(state, &sandbox, &caller.account_id, model).await?;
    let (scope, after) = match &body.session_id {
        Some(raw) => {
            let not_ours = || {
                ApiError::not_found_message(format!("session {raw} is not a conversation with your Concierge in sandbox {sandbox}"))
                    .with_param("session_id")
            };
            let id = SessionId::parse(raw, "session_id")?;
            let session = state.store.session(&id).await?.filter(|s| s.deleted_at.is_none()).ok_or_else(not_ours)?;
            if session.agent_id != agent.id {
                return Err(not_ours());
            }
            let after = state.store.last_event_seq(&session.id).await?;
            (Some(session), after)
        }
        None => (None, 0),
    };
    let scope = match &scope {
        Some(session) => Scope::Turn(session),
        None => Scope::New { end_user: None, counterparty: Some("concierge".into()), metadata: BTreeMap::new() },
    };
    let admission = Admission { agent: &agent, scope, input: &input, on_busy: OnBusy::Reject, origin: Origin::Concierge, claim: None };
    let Admitted { session, run } = state.runtime.admit(admission).await?;
    Ok(Turn { session, run, after })
}

/// Cancels the run when dropped before it ended (the client went away).
struct CancelOnDrop {
    runtime: Runtime,
    run: RunId,
    done: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (runtime, run) = (self.runtime.clone(), self.run.clone());
        tokio::spawn(async move {
            match runtime.store().run(&run).await {
                Ok(Some(r)) if !r.status.is_terminal() => {
                    if let Err(e) = runtime.cancel(&r, "the client closed the Concierge stream").await {
                        tracing::warn!(error = %e, run = %run, "cannot cancel an abandoned Concierge run");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, run = %run, "cannot read an abandoned Concierge run"),
            }
        });
    }
}

/// Marks an answer the idempotency layer must not store: it may quote a secret shown once (a
/// minted key, a webhook secret), and a conversation turn is not something to replay.
fn not_replayed(body: impl IntoResponse, what: &str) -> Response {
    let mut res = body.into_response();
    res.extensions_mut().insert(crate::routes::NoReplay(format!(
        "this Idempotency-Key was already used for a {what}, whose answer is not stored (it may hold a secret shown once); send the request again without the key"
    )));
    res
}

async fn answer(state: AppState, caller: Caller, sandbox: String, body: ConciergeBody) -> ApiResult<Response> {
    let turn = start_turn(&state, &caller, &sandbox, body).await?;
    // Cancels the run if the client leaves while we wait.
    let mut guard = CancelOnDrop { runtime: state.runtime.clone(), run: turn.run.id.clone(), done: false };
    let finished = state.runtime.wait_for(&turn.run.id, &turn.session.id, MAX_WAIT).await?;
    guard.done = true;
    let run = match finished {
        Some(r) => r,
        // Did not finish in time: report where it is; it keeps going (the caller may follow the
        // session's stream).
        None => state.store.run(&turn.run.id).await?.unwrap_or(turn.run),
    };
    let output_text = output_text(&state, &turn.session.id, &run.id).await?;
    let answer = ConciergeAnswer {
        run_id: run.id.to_string(),
        status: run.status.as_str().into(),
        output_text,
        input_tokens: run.input_tokens,
        output_tokens: run.output_tokens,
        duration_ms: run.duration_ms(),
        session_id: turn.session.id.to_string(),
    };
    Ok(not_replayed(Json(answer), "Concierge turn"))
}

async fn chat_stream(state: AppState, caller: Caller, sandbox: String, body: ConciergeBody) -> ApiResult<Response> {
    let heartbeat = state.config.sse_heartbeat;
    let turn = match start_turn(&state, &caller, &sandbox, body).await {
        Ok(t) => t,
        // No model: one `agent_error` frame, so a streaming client hears why (§5).
        Err(e) if e.kind == "provider_not_configured" => {
            let frame = SseEvent::default()
                .event(event_type::ERROR)
                .data(json!({"message": e.message, "type": e.kind, "run_id": null}).to_string());
            let once = futures::stream::once(async move { Ok::<_, Infallible>(frame) });
            return Ok(Sse::new(once).into_response());
        }
        Err(e) => return Err(e),
    };
    let stream = run_frames(state, turn);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat)).into_response())
}

/// The run's events as §5 frames, ending after the terminal one.
fn run_frames(state: AppState, turn: Turn) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let guard = CancelOnDrop { runtime: state.runtime.clone(), run: turn.run.id.clone(), done: false };
    let run = turn.run.id;
    let events =
        follow(state, turn.session.id, turn.after).filter(move |ev| std::future::ready(ev.run_id == run && ev.kind != event_type::USAGE));
    futures::stream::unfold((Box::pin(events), guard, false), |(mut events, mut guard, ended)| async move {
        if ended {
            return None;
        }
        let ev = events.next().await?;
        let terminal = event_type::is_terminal(&ev.kind);
        if terminal {
            guard.done = true;
        }
        let (kind, data) = if ev.kind == event_type::CANCELLED {
            let reason = ev.data.get("reason").and_then(Value::as_str).unwrap_or("cancelled");
            (
                event_type::ERROR.to_owned(),
                json!({"message": format!("the run was cancelled: {reason}"), "type": "cancelled", "run_id": ev.run_id}),
            )
        } else {
            (ev.kind.clone(), ev.data.clone())
        };
        let frame = SseEvent::default().id(ev.id()).event(kind).data(data.to_string());
        Some((Ok(frame), (events, guard, terminal)))
    })
}

/// Asks the Concierge and waits for its whole answer.
#[utoipa::path(post, path = "/v1/sandboxes/{sandbox_id}/concierge/test", tag = "concierge", params(("sandbox_id" = String, Path)),
    request_body = ConciergeBody,
    responses((status = 200, body = ConciergeAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(sandbox): Path<String>,
    ApiJson(body): ApiJson<ConciergeBody>,
) -> ApiResult<Response> {
    answer(state, caller, sandbox, body).await
}

/// Talks with the Concierge: Server-Sent Events `run_started`, `agent_text_delta`,
/// `agent_tool_call`, `agent_tool_result`, then `agent_finish` or `agent_error`. Dropping the
/// connection before the end cancels the run.
#[utoipa::path(post, path = "/v1/sandboxes/{sandbox_id}/concierge/chat", tag = "concierge", params(("sandbox_id" = String, Path)),
    request_body = ConciergeBody,
    responses((status = 200, description = "Server-sent events: the run's frames (`id:`, `event:`, `data:` JSON), ending after the terminal one", content_type = "text/event-stream", body = crate::routes::SseFrame), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    Path(sandbox): Path<String>,
    ApiJson(body): ApiJson<ConciergeBody>,
) -> ApiResult<Response> {
    chat_stream(state, caller, sandbox, body).await
}

/// `…/concierge/test` at the `/storage` path.
#[utoipa::path(post, path = "/storage/sandboxes/{sandbox_id}/concierge/test", tag = "concierge", params(("sandbox_id" = String, Path)),
    request_body = ConciergeBody,
    responses((status = 200, body = ConciergeAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn storage_test(
    State(state): State<AppState>,
    caller: Caller,
    Path(sandbox): Path<String>,
    ApiJson(body): ApiJson<ConciergeBody>,
) -> ApiResult<Response> {
    answer(state, caller, sandbox, body).await
}

/// `…/concierge/chat` at the `/storage` path.
#[utoipa::path(post, path = "/storage/sandboxes/{sandbox_id}/concierge/chat", tag = "concierge", params(("sandbox_id" = String, Path)),
    request_body = ConciergeBody,
    responses((status = 200, description = "Server-sent events: the run's frames (`id:`, `event:`, `data:` JSON), ending after the terminal one", content_type = "text/event-stream", body = crate::routes::SseFrame), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn storage_chat(
    State(state): State<AppState>,
    caller: Caller,
    Path(sandbox): Path<String>,
    ApiJson(body): ApiJson<ConciergeBody>,
) -> ApiResult<Response> {
    chat_stream(state, caller, sandbox, body).await
}

/// Body of `POST /v1/agents/{id}/test`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestAgent {
    /// A user message to run the agent with.
    pub input: Option<String>,
    /// Instead: a trigger (`trg_…`) of this agent whose input template renders `payload`.
    pub trigger_id: Option<String>,
    /// The fake event for `trigger_id`.
    #[schema(value_type = Object)]
    pub payload: Option<Value>,
    /// How long to wait for the run (1–600 s, default 120).
    pub timeout_secs: Option<u64>,
}

/// What a test run did.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub run_id: String,
    pub session_id: String,
    /// `completed`, `failed`, `cancelled`; `queued`/`running` if it did not finish in time.
    pub status: String,
    pub output_text: String,
    pub stop_reason: Option<String>,
    #[schema(value_type = Object)]
    pub error: Option<Value>,
    #[schema(value_type = Object)]
    pub usage: Value,
    pub duration_ms: Option<i64>,
    /// Each tool call: `{name, error}`.
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Vec<Value>,
}

/// Runs the agent once (a new session, counterparty `test`) with `input`, or with a trigger's
/// template rendered over a fake `payload` (no signature; not counted as a fire), and waits.
#[utoipa::path(post, path = "/v1/agents/{id}/test", tag = "agents", params(("id" = String, Path)), request_body = TestAgent,
    responses((status = 200, body = TestResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn test_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestAgent>,
) -> ApiResult<Response> {
    let agent = load_agent(&state, &caller, &id, Need::Write).await?;
    let wait = body.timeout_secs.unwrap_or(120);
    if wait == 0 || wait > MAX_WAIT.as_secs() {
        return Err(ApiError::invalid("timeout_secs", "wait between 1 and 600 seconds"));
    }
    let input = match (body.input, body.trigger_id, body.payload) {
        (Some(text), None, None) => check_input(&[InputMessage { role: "user".into(), content: text }])?,
        (None, Some(raw), payload) => {
            let tid = TriggerId::parse(&raw, "trigger_id")?;
            let trigger = state
                .store
                .trigger(&tid)
                .await?
                .filter(|t| t.agent_id == agent.id)
                .ok_or_else(|| ApiError::not_found_message(format!("agent {id} has no trigger {raw}")).with_param("trigger_id"))?;
            let payload = payload.unwrap_or(Value::Null);
            let now = ts(state.clock.now_ms());
            let rendered =
                steward_runtime::template::render(&trigger.config.input_template, &payload, &BTreeMap::new(), &now).map_err(|m| {
                    ApiError::unprocessable(format!("the trigger's template cannot render this payload: {m}")).with_param("payload")
                })?;
            json!([{"role": "user", "content": rendered, "trigger": {"id": raw, "delivery_id": "test", "payload": payload, "test": true}}])
        }
        _ => {
            return Err(ApiError::bad_request(
                "send either `input` (a message) or `trigger_id` with `payload` (a fake event for that trigger)",
            ));
        }
    };
    let scope = Scope::New {
        end_user: None,
        counterparty: Some("test".into()),
        metadata: BTreeMap::from([("test".to_owned(), "true".to_owned())]),
    };
    let admission = Admission { agent: &agent, scope, input: &input, on_busy: OnBusy::Reject, origin: Origin::Test, claim: None };
    let Admitted { session, run } = state.runtime.admit(admission).await?;
    let done = state.runtime.wait_for(&run.id, &session.id, Duration::from_secs(wait)).await?;
    let run = match done {
        Some(r) => r,
        None => state.store.run(&run.id).await?.unwrap_or(run),
    };
    let output_text = output_text(&state, &session.id, &run.id).await?;
    let tool_calls = run.trace["tool_calls"]
        .as_array()
        .map(|calls| calls.iter().map(|c| json!({"name": c["name"], "error": c.get("error").cloned().unwrap_or(Value::Null)})).collect())
        .unwrap_or_default();
    let result = TestResult {
        run_id: run.id.to_string(),
        session_id: session.id.to_string(),
        status: run.status.as_str().into(),
        output_text,
        stop_reason: run.stop_reason.clone(),
        error: run.error_type.as_ref().map(|t| json!({"type": t, "message": run.error_message})),
        usage: json!({"input_tokens": run.input_tokens, "output_tokens": run.output_tokens}),
        duration_ms: run.duration_ms(),
        tool_calls,
    };
    Ok(not_replayed(Json(result), "test run"))
}
