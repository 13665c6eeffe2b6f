//! The agent loop of one run: model ↔ tools until the model finishes, `max_turns` is reached,
//! the budget ends, an error occurs or the run is cancelled. Exactly one terminal event ends
//! the run.
//!
//! The loop takes what it needs as [`Deps`] (no reach into the runtime). Its writes — events,
//! conversation messages, usage, the trace — go to the event log's group-commit writer as they
//! happen, without waiting for each commit: writes of one process commit in the order they were
//! handed over, and an event is announced to clients only once it is committed, so what a client
//! saw is durable, and so is everything the run wrote before it. The loop keeps the conversation
//! in memory (read once at the start), so a model call never waits for a commit. Its end is one
//! awaited write (the rest of its writes, the run's outcome, terminal event and notification,
//! together), after every earlier write has been confirmed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use steward_core::agent::{Agent, AgentConfig, AgentState};
use steward_core::clock::Clock;
use steward_core::session::{Run, RunEvent, RunUsage, stop_reason};
use steward_llm::{LlmError, Message, ModelRequest, Part, Role, StopReason, StreamEvent, Usage};
use steward_store::{RunWrite, RunWriteReceipt, Store, StoreError, UsageCharge};
use tokio_util::sync::CancellationToken;

use crate::conversation::{parts_to_json, to_model_messages};
use crate::ending::Ending;
use crate::engine::Prepared;
use crate::event_log::EventLog;
use crate::providers::Providers;
use crate::resolve::Resolution;
use crate::tools::ToolContext;

/// Resolves a run's tools (the runtime implements it: sources, MCP pool, integrations, the
/// Concierge's management tools).
#[async_trait::async_trait]
pub(crate) trait RunTools: Send + Sync {
    async fn resolve(&self, run: &Run, agent: &Agent, config: &AgentConfig) -> Result<Resolution, StoreError>;
}

/// What a run needs from the rest of the runtime.
pub(crate) struct Deps<'a> {
    pub store: &'a Store,
    pub events: &'a EventLog,
    pub providers: &'a Providers,
    pub tools: &'a dyn RunTools,
    pub clock: Arc<dyn Clock>,
    pub tool_timeout: Duration,
}

/// Why a run stopped early.
enum Halt {
    Cancelled(String),
    Failed { kind: String, message: String },
    Budget,
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error during a run");
        Halt::Failed { kind: "internal_error".into(), message: "the server could not record the run's progress; see its log".into() }
    }
}

struct Ctx<'a> {
    deps: &'a Deps<'a>,
    run: Run,
    cancel: CancellationToken,
    trace: Value,
    usage: Usage,
    /// Writes not handed to the log yet (they go with the next submit).
    pending: RunWrite,
    /// Writes handed over whose commit is not confirmed yet, oldest first.
    inflight: Vec<RunWriteReceipt>,
    /// The conversation as the model sees it.
    history: Vec<Message>,
}

impl Ctx<'_> {
    fn event(&mut self, event: RunEvent) {
        self.pending.events.push(event.to_stored());
    }

    fn message(&mut self, role: Role, parts: Vec<Part>) {
        let stored = if role == Role::Assistant { "assistant" } else { "user" };
        self.pending.messages.push((stored.to_owned(), parts_to_json(&parts)));
        self.history.push(Message { role, parts });
    }

    fn store_trace(&mut self) {
        self.pending.trace = Some(self.trace.clone());
    }

    fn charge(&mut self, input: i64, output: i64) {
        let c =
            self.pending.charge.get_or_insert_with(|| UsageCharge { agent: self.run.agent_id.clone(), input_tokens: 0, output_tokens: 0 });
        c.input_tokens += input;
        c.output_tokens += output;
    }

    /// Hands the pending writes to the log without waiting, then checks the writes that have
    /// been confirmed meanwhile.
    fn submit(&mut self) -> Result<(), Halt> {
        if !self.pending.is_empty() {
            let write = std::mem::replace(&mut self.pending, RunWrite::new(self.run.session_id.clone(), self.run.id.clone()));
            self.inflight.push(self.deps.events.submit(write));
        }
        let mut result = Ok(());
        self.inflight.retain_mut(|r| match r.try_result() {
            None => true,
            Some(done) => {
                if result.is_ok() {
                    result = check(done);
                }
                false
            }
        });
        result
    }

    /// Waits until every write handed over is committed.
    async fn settle(&mut self) -> Result<(), Halt> {
        self.submit()?;
        for r in std::mem::take(&mut self.inflight) {
            check(r.await)?;
        }
        Ok(())
    }

    fn check_cancel(&self) -> Result<(), Halt> {
        if self.cancel.is_cancelled() { Err(Halt::Cancelled("cancelled".into())) } else { Ok(()) }
    }
}

/// A confirmed write: a store error, or a balance the charge used up.
fn check(done: Result<steward_store::RunWritten, StoreError>) -> Result<(), Halt> {
    let written = done?;
    if written.balance.is_some_and(|b| b <= 0) {
        return Err(Halt::Budget);
    }
    Ok(())
}

/// Runs `run` (already claimed, status `running`) to its end; `prepared` is what its admission
/// read already (a new session's first run).
pub(crate) async fn run(deps: &Deps<'_>, run: Run, prepared: Option<Prepared>, cancel: CancellationToken) {
    let pending = RunWrite::new(run.session_id.clone(), run.id.clone());
    let mut ctx = Ctx {
        deps,
        run,
        cancel,
        trace: json!({"model_calls": [], "tool_calls": []}),
        usage: Usage::default(),
        pending,
        inflight: Vec::new(),
        history: Vec::new(),
    };
    let result = drive(&mut ctx, prepared).await;
    finish(&mut ctx, result).await;
}

async fn drive(ctx: &mut Ctx<'_>, prepared: Option<Prepared>) -> Result<String, Halt> {
    let store = ctx.deps.store;
    let first_of_new_session = prepared.is_some();
    if !first_of_new_session {
        // (A run born running at admission had its start stored with it.)
        ctx.event(RunEvent::Started { run_id: ctx.run.id.clone() });
        ctx.submit()?;
    }
    let (session, agent) = match prepared {
        Some(p) => (p.session, p.agent),
        None => {
            let session = store
                .session(&ctx.run.session_id)
                .await?
                .ok_or(Halt::Failed { kind: "not_found".into(), message: "the session no longer exists".into() })?;
            let agent = store
                .agent(&ctx.run.agent_id)
                .await?
                .ok_or(Halt::Failed { kind: "not_found".into(), message: "the agent no longer exists".into() })?;
            (session, agent)
        }
    };
    match agent.state {
        AgentState::Stopped => return Err(Halt::Cancelled("the agent is stopped".into())),
        AgentState::Error => {
            return Err(Halt::Failed {
                kind: "agent_error".into(),
                message: format!("the agent is in error: {}", agent.state_reason.clone().unwrap_or_default()),
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
        .deps
        .providers
        .client_for(&ctx.run.sandbox_id, &config.model.provider_id, &config.model.name)
        .await
        .map_err(|e| Halt::Failed { kind: e.kind.into(), message: e.message })?;
    let system = match &agent.concierge_of {
        Some(_) => {
            // The time goes into this run's prompt, not the stored (versioned) one.
            let zone = store.sandbox(&ctx.run.sandbox_id).await?.map(|s| s.time_zone).unwrap_or_else(|| "UTC".to_owned());
            Some(crate::preamble::with_time(&config.system_prompt, ctx.deps.clock.now_ms(), &zone))
        }
        None => (!config.system_prompt.is_empty()).then(|| config.system_prompt.clone()),
    };
    let resolution = ctx.deps.tools.resolve(&ctx.run, &agent, &config).await?;
    let catalog = resolution.catalog;
    let specs = catalog.specs();
    ctx.trace["tool_resolution"] = resolution.trace;
    ctx.store_trace();

    // The conversation so far (earlier turns are committed: a session runs one run at a time;
    // a new session's first run has none), then this run's input joins it.
    if !first_of_new_session {
        ctx.history = to_model_messages(&store.conversation(&ctx.run.session_id).await?);
    }
    // (A run born running at admission had its input stored with it.)
    for (stored, message) in crate::conversation::input_messages(&ctx.run.input) {
        if !first_of_new_session {
            ctx.pending.messages.push((stored, parts_to_json(&message.parts)));
        }
        ctx.history.push(message);
    }
    ctx.submit()?;

    let tool_ctx = ToolContext { clock: ctx.deps.clock.clone(), tool_timeout: ctx.deps.tool_timeout };
    for turn in 0..config.max_turns {
        ctx.check_cancel()?;
        let request = ModelRequest {
            model: config.model.name.clone(),
            system: system.clone(),
            messages: ctx.history.clone(),
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
            ctx.message(Role::Assistant, parts);
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
            ctx.event(RunEvent::ToolCall { call_id: id.clone(), name: name.clone(), arguments: arguments.clone() });
            // Handed over before the tool runs, so a client sees the call while it runs.
            ctx.submit()?;
            let started = Instant::now();
            let outcome = tokio::select! {
                r = catalog.call(&name, arguments.clone(), &tool_ctx, ctx.deps.tool_timeout) => r,
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
            ctx.event(RunEvent::ToolResult { call_id: id.clone(), name: name.clone(), result: outcome.clone() });
            let (content, is_error) = match outcome {
                Ok(out) => (out, false),
                Err(e) => (e, true),
            };
            results.push(Part::ToolResult { call_id: id, name, content, is_error });
        }
        ctx.message(Role::User, results);
        ctx.store_trace();
        ctx.submit()?;
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
    loop {
        let first = tokio::select! {
            n = stream.next() => n,
            // Dropping the stream (on return) drops the HTTP request at once.
            _ = ctx.cancel.cancelled() => { record(ctx, "cancelled", None, call_usage); return Err(Halt::Cancelled("cancelled".into())); }
        };
        // What is already available goes to the log as one write.
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
                    let e = LlmError::Interrupted("the stream ended without a finish".into());
                    record(ctx, "error", Some(&e), call_usage);
                    return Err(llm_halt(e));
                }
                Some(Err(e)) => {
                    record(ctx, "error", Some(&e), call_usage);
                    return Err(llm_halt(e));
                }
                Some(Ok(StreamEvent::TextDelta(t))) => {
                    ctx.event(RunEvent::TextDelta { text: t.clone() });
                    text.push_str(&t);
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
                        ctx.charge(d_in, d_out);
                        ctx.event(RunEvent::Usage(run_usage(ctx.usage)));
                    }
                }
                Some(Ok(StreamEvent::Finish(stop))) => {
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
                    ctx.submit()?;
                    return Ok((parts, stop));
                }
            }
        }
        if let Err(halt) = ctx.submit() {
            if matches!(halt, Halt::Budget) {
                record(ctx, "budget_exhausted", None, call_usage);
            }
            return Err(halt);
        }
    }
}

fn run_usage(u: Usage) -> RunUsage {
    RunUsage { input_tokens: u.input_tokens as i64, output_tokens: u.output_tokens as i64 }
}

fn llm_halt(e: LlmError) -> Halt {
    Halt::Failed { kind: e.kind().into(), message: e.to_string() }
}

/// Records the end of the run: the rest of its writes and its one terminal event, together.
async fn finish(ctx: &mut Ctx<'_>, result: Result<String, Halt>) {
    // Every earlier write must be in before the end (a failed one fails the run).
    let result = match (result, ctx.settle().await) {
        (Err(halt), _) => Err(halt),
        (Ok(_), Err(halt)) => Err(halt),
        (ok, Ok(())) => ok,
    };
    let usage = run_usage(ctx.usage);
    let ending = match result {
        Ok(reason) => Ending::Completed { stop_reason: reason },
        Err(Halt::Budget) => Ending::Completed { stop_reason: stop_reason::BUDGET_EXHAUSTED.into() },
        Err(Halt::Cancelled(reason)) => Ending::Cancelled { reason },
        Err(Halt::Failed { kind, message }) => Ending::Failed { kind, message },
    };
    let budget = ending == Ending::Completed { stop_reason: stop_reason::BUDGET_EXHAUSTED.into() };
    let pending = std::mem::replace(&mut ctx.pending, RunWrite::new(ctx.run.session_id.clone(), ctx.run.id.clone()));
    // A retry loop, because a run must never be left `running` if the database hiccups.
    for attempt in 0..5u64 {
        // The run's end, its terminal event and its notification commit together, or not at
        // all; not `ended` means someone else (a cancel from another replica, the reaper) ended
        // it first and wrote its terminal event.
        let mut write = pending.clone();
        write.end = Some(ending.end(&ctx.run, ctx.trace.clone(), usage));
        match ctx.deps.events.append(write).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot finish a run; retrying");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    if budget {
        let store = ctx.deps.store;
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
}
