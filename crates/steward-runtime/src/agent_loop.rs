//! The agent loop of one run: model ↔ tools until the model finishes, `max_turns` is reached,
//! the budget ends, an error occurs or the run is cancelled. Every step is persisted (events,
//! conversation, usage) before the next one starts, and exactly one terminal event ends the run.

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use steward_core::agent::{AgentConfig, AgentState};
use steward_core::session::{Run, event_type, stop_reason};
use steward_llm::{LlmError, Message, ModelRequest, Part, Role, StopReason, StreamEvent, Usage};
use tokio_util::sync::CancellationToken;

use crate::conversation::{parts_to_json, to_model_messages};
use crate::ending::{Ending, RunUsage};
use crate::engine::Runtime;
use crate::tools::ToolContext;

/// Why a run stopped early.
enum Halt {
    Cancelled(String),
    Failed { kind: String, message: String },
    Budget,
}

impl From<steward_store::StoreError> for Halt {
    fn from(e: steward_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error during a run");
        Halt::Failed { kind: "internal_error".into(), message: "the server could not record the run's progress; see its log".into() }
    }
}

struct Ctx<'a> {
    rt: &'a Runtime,
    run: Run,
    cancel: CancellationToken,
    trace: Value,
    usage: Usage,
}

impl Ctx<'_> {
    async fn emit(&self, kind: &str, data: Value) -> Result<(), Halt> {
        self.rt.emit(&self.run.session_id, &self.run.id, kind, data).await?;
        Ok(())
    }

    /// Stores and announces the pending events in one transaction.
    async fn flush(&self, pending: &mut Vec<(&'static str, Value)>) -> Result<(), Halt> {
        self.rt.emit_all(&self.run.session_id, &self.run.id, pending).await?;
        pending.clear();
        Ok(())
    }

    fn check_cancel(&self) -> Result<(), Halt> {
        if self.cancel.is_cancelled() { Err(Halt::Cancelled("cancelled".into())) } else { Ok(()) }
    }
}

/// Runs `run` (already claimed, status `running`) to its end.
pub(crate) async fn run(rt: &Runtime, run: Run, cancel: CancellationToken) {
    let mut ctx = Ctx { rt, run, cancel, trace: json!({"model_calls": [], "tool_calls": []}), usage: Usage::default() };
    let result = drive(&mut ctx).await;
    finish(&mut ctx, result).await;
}

async fn drive(ctx: &mut Ctx<'_>) -> Result<String, Halt> {
    let store = &ctx.rt.inner.store;
    ctx.emit(event_type::RUN_STARTED, json!({"run_id": ctx.run.id})).await?;
    let session = store
        .session(&ctx.run.session_id)
        .await?
        .ok_or(Halt::Failed { kind: "not_found".into(), message: "the session no longer exists".into() })?;
    let agent = store
        .agent(&ctx.run.agent_id)
        .await?
        .ok_or(Halt::Failed { kind: "not_found".into(), message: "the agent no longer exists".into() })?;
    match agent.state {
        AgentState::Stopped => return Err(Halt::Cancelled("the agent is stopped".into())),
        AgentState::Error => {
            return Err(Halt::Failed {
                kind: "agent_error".into(),
                message: format!("the agent is in error: {}", agent.state_reason.unwrap_or_default()),
            });
        }
        _ => {}
    }
    let config: AgentConfig = store
        .agent_version(&ctx.run.agent_id, session.agent_version)
        .await?
        .ok_or(Halt::Failed { kind: "not_found".into(), message: format!("agent version {} no longer exists", session.agent_version) })?
        .config;
    ctx.trace["model"] = json!({"provider_id": config.model.provider_id, "name": config.model.name});
    ctx.trace["agent_version"] = json!(session.agent_version);

    let client = ctx
        .rt
        .inner
        .providers
        .client_for(&ctx.run.sandbox_id, &config.model.provider_id, &config.model.name)
        .await
        .map_err(|e| Halt::Failed { kind: e.kind.into(), message: e.message })?;
    let (resolution, system) = match &agent.concierge_of {
        Some(account) => {
            // The time goes into this run's prompt, not the stored (versioned) one.
            let zone = store.sandbox(&ctx.run.sandbox_id).await?.map(|s| s.time_zone).unwrap_or_else(|| "UTC".to_owned());
            let system = crate::preamble::with_time(&config.system_prompt, ctx.rt.inner.clock.now_ms(), &zone);
            (ctx.rt.resolve_concierge_tools(&ctx.run.sandbox_id, account).await, Some(system))
        }
        None => (
            ctx.rt.resolve_tools(&ctx.run.sandbox_id, &ctx.run.agent_id, &config).await?,
            (!config.system_prompt.is_empty()).then(|| config.system_prompt.clone()),
        ),
    };
    let catalog = resolution.catalog;
    let specs = catalog.specs();
    ctx.trace["tool_resolution"] = resolution.trace;
    store.set_run_trace(&ctx.run.id, &ctx.trace).await?;

    // The user turn joins the conversation.
    for item in ctx.run.input.as_array().cloned().unwrap_or_default() {
        let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = item.get("content").and_then(Value::as_str).unwrap_or_default();
        store.append_message(&ctx.run.session_id, &ctx.run.id, role, &parts_to_json(&[Part::Text(text.into())])).await?;
    }

    let tool_ctx = ToolContext { clock: ctx.rt.inner.clock.clone(), tool_timeout: ctx.rt.inner.config.tool_timeout };
    for turn in 0..config.max_turns {
        ctx.check_cancel()?;
        let messages: Vec<Message> = to_model_messages(&store.conversation(&ctx.run.session_id).await?);
        let request = ModelRequest {
            model: config.model.name.clone(),
            system: system.clone(),
            messages,
            tools: specs.clone(),
            max_output_tokens: config.max_output_tokens,
            temperature: config.temperature,
        };
        let (parts, stop) = model_call(ctx, client.as_ref(), &request, turn).await?;
        let calls: Vec<(String, String, Value)> = parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall { id, name, arguments } => Some((id.clone(), name.clone(), arguments.clone())),
                _ => None,
            })
            .collect();
        if !parts.is_empty() {
            store.append_message(&ctx.run.session_id, &ctx.run.id, "assistant", &parts_to_json(&parts)).await?;
        }
        if calls.is_empty() {
            return Ok(match stop {
                StopReason::MaxTokens => stop_reason::MAX_TOKENS.into(),
                _ => stop_reason::END_TURN.into(),
            });
        }
        let mut results = Vec::new();
        for (id, name, arguments) in calls {
            ctx.check_cancel()?;
            // Arguments may echo a secret a tool returned earlier; redact them like results.
            let mut arguments = arguments;
            catalog.redactor().redact_json(&mut arguments);
            ctx.emit(event_type::TOOL_CALL, json!({"call_id": id, "name": name, "arguments": arguments})).await?;
            let started = Instant::now();
            let outcome = tokio::select! {
                r = catalog.call(&name, arguments.clone(), &tool_ctx, ctx.rt.inner.config.tool_timeout) => r,
                _ = ctx.cancel.cancelled() => return Err(Halt::Cancelled("cancelled".into())),
            };
            let (result, error) = match &outcome {
                Ok(out) => (Value::String(out.clone()), Value::Null),
                Err(e) => (Value::Null, Value::String(e.clone())),
            };
            ctx.trace["tool_calls"].as_array_mut().expect("tool_calls is an array").push(json!({
                "call_id": id, "name": name, "arguments": arguments, "result": result, "error": error,
                "duration_ms": started.elapsed().as_millis() as u64,
            }));
            ctx.emit(event_type::TOOL_RESULT, json!({"call_id": id, "name": name, "result": result, "error": error})).await?;
            let (content, is_error) = match outcome {
                Ok(out) => (out, false),
                Err(e) => (e, true),
            };
            results.push(Part::ToolResult { call_id: id, name, content, is_error });
        }
        store.append_message(&ctx.run.session_id, &ctx.run.id, "user", &parts_to_json(&results)).await?;
        store.set_run_trace(&ctx.run.id, &ctx.trace).await?;
    }
    Ok(stop_reason::MAX_TURNS.into())
}

/// One streamed model call: forwards text as events, charges usage as it streams, collects
/// the assistant's parts.
async fn model_call(
    ctx: &mut Ctx<'_>,
    client: &dyn steward_llm::ModelClient,
    request: &ModelRequest,
    turn: u32,
) -> Result<(Vec<Part>, StopReason), Halt> {
    let started = Instant::now();
    let mut call_usage = Usage::default();
    let record = |ctx: &mut Ctx<'_>, stop: &str, error: Option<&LlmError>, usage: Usage| {
        ctx.trace["model_calls"].as_array_mut().expect("model_calls is an array").push(json!({
            "turn": turn, "duration_ms": started.elapsed().as_millis() as u64, "stop_reason": stop,
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "error": error.map(|e| e.to_string()),
        }));
    };
    let stream = tokio::select! {
        s = client.stream(request) => s,
        _ = ctx.cancel.cancelled() => return Err(Halt::Cancelled("cancelled".into())),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            record(ctx, "error", Some(&e), call_usage);
            return Err(llm_halt(e));
        }
    };
    let mut parts: Vec<Part> = Vec::new();
    let mut text = String::new();
    // Events that are already available are stored together, in one transaction: under load
    // providers' chunks queue up, and one commit per token would be the bottleneck.
    let mut pending: Vec<(&'static str, Value)> = Vec::new();
    loop {
        let first = tokio::select! {
            n = stream.next() => n,
            // Dropping the stream (on return) drops the HTTP request at once.
            _ = ctx.cancel.cancelled() => { record(ctx, "cancelled", None, call_usage); return Err(Halt::Cancelled("cancelled".into())); }
        };
        let mut ready = vec![first];
        while ready.len() < 64 {
            match stream.next().now_or_never() {
                Some(item) => {
                    let end = !matches!(item, Some(Ok(StreamEvent::TextDelta(_) | StreamEvent::ToolCall { .. })));
                    ready.push(item);
                    if end {
                        break;
                    }
                }
                None => break,
            }
        }
        for next in ready {
            match next {
                None => {
                    ctx.flush(&mut pending).await?;
                    let e = LlmError::Interrupted("the stream ended without a finish".into());
                    record(ctx, "error", Some(&e), call_usage);
                    return Err(llm_halt(e));
                }
                Some(Err(e)) => {
                    ctx.flush(&mut pending).await?;
                    record(ctx, "error", Some(&e), call_usage);
                    return Err(llm_halt(e));
                }
                Some(Ok(StreamEvent::TextDelta(t))) => {
                    text.push_str(&t);
                    pending.push((event_type::TEXT_DELTA, json!({"text": t})));
                }
                Some(Ok(StreamEvent::ToolCall { id, name, arguments })) => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::ToolCall { id, name, arguments });
                }
                Some(Ok(StreamEvent::Usage(u))) => {
                    let d_in = u.input_tokens.saturating_sub(call_usage.input_tokens) as i64;
                    let d_out = u.output_tokens.saturating_sub(call_usage.output_tokens) as i64;
                    call_usage = Usage {
                        input_tokens: call_usage.input_tokens.max(u.input_tokens),
                        output_tokens: call_usage.output_tokens.max(u.output_tokens),
                    };
                    if d_in > 0 || d_out > 0 {
                        ctx.usage.input_tokens += d_in as u64;
                        ctx.usage.output_tokens += d_out as u64;
                        let charge =
                            ctx.rt.inner.store.charge_usage(&ctx.run.agent_id, &ctx.run.session_id, &ctx.run.id, d_in, d_out).await?;
                        pending.push((
                            event_type::USAGE,
                            json!({"input_tokens": ctx.usage.input_tokens, "output_tokens": ctx.usage.output_tokens}),
                        ));
                        if charge.balance.is_some_and(|b| b <= 0) {
                            ctx.flush(&mut pending).await?;
                            record(ctx, "budget_exhausted", None, call_usage);
                            return Err(Halt::Budget);
                        }
                    }
                }
                Some(Ok(StreamEvent::Finish(stop))) => {
                    ctx.flush(&mut pending).await?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    let label = match &stop {
                        StopReason::EndTurn => "end_turn".to_owned(),
                        StopReason::ToolUse => "tool_use".to_owned(),
                        StopReason::MaxTokens => "max_tokens".to_owned(),
                        StopReason::Other(o) => o.clone(),
                    };
                    record(ctx, &label, None, call_usage);
                    return Ok((parts, stop));
                }
            }
        }
        ctx.flush(&mut pending).await?;
    }
}

fn llm_halt(e: LlmError) -> Halt {
    Halt::Failed { kind: e.kind().into(), message: e.to_string() }
}

/// Records the end of the run and emits its one terminal event.
async fn finish(ctx: &mut Ctx<'_>, result: Result<String, Halt>) {
    let store = &ctx.rt.inner.store;
    let usage = RunUsage { input_tokens: ctx.usage.input_tokens as i64, output_tokens: ctx.usage.output_tokens as i64 };
    let ending = match result {
        Ok(reason) => Ending::Completed { stop_reason: reason },
        Err(Halt::Budget) => Ending::Completed { stop_reason: stop_reason::BUDGET_EXHAUSTED.into() },
        Err(Halt::Cancelled(reason)) => Ending::Cancelled { reason },
        Err(Halt::Failed { kind, message }) => Ending::Failed { kind, message },
    };
    let budget = ending == Ending::Completed { stop_reason: stop_reason::BUDGET_EXHAUSTED.into() };
    // A retry loop, because a run must never be left `running` if the database hiccups.
    for attempt in 0..5u64 {
        // The run's end, its terminal event and its notification commit together, or not at
        // all; `false` means someone else (a cancel from another replica, the reaper) ended it
        // first and wrote its terminal event.
        match ctx.rt.end_run(&ctx.run, &ending, ctx.trace.clone(), usage).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot finish a run; retrying");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    if budget {
        let reason = Some("token balance exhausted; add tokens with POST /v1/agents/{id}/balance and resume the agent");
        if let Ok(Some(a)) = store.agent(&ctx.run.agent_id).await
            && a.state.can_become(AgentState::Error)
        {
            let notification = steward_store::Notification {
                sandbox_id: ctx.run.sandbox_id.clone(),
                agent_id: a.id.clone(),
                event: "agent.error".into(),
                payload: json!({"agent_id": a.id, "state": "error", "reason": reason, "run_id": ctx.run.id}),
            };
            if let Err(e) = store.set_agent_state_notifying(&a.id, a.state, AgentState::Error, reason, &notification).await {
                tracing::warn!(error = %e, "cannot put the agent in error after its budget ran out");
            }
        }
    }
    let _ = Role::User;
}
