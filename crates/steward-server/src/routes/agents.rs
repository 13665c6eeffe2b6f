//! Agents (§3): create, list, get, versions, partial update, archive, hard delete, and the
//! state endpoints. The §14 compatibility paths call these same functions (`compat.rs`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use steward_core::agent::{
    Agent, AgentConfig, AgentPatch, AgentState, AgentVersion, DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_TURNS, ModelRef,
};
use steward_core::ids::{EnvironmentId, SandboxId};
use steward_runtime::admission::AdmitError;
use steward_store::StoreError;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::access::load_agent as load;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, not_null, present};
use crate::routes::{Deleted, Page, page_request, ts, update_with_retry};
use crate::views::{ChannelFailureView, RunView, UsageView, channel_failure_view, run_view};

pub mod compat;

/// Provider and model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelBody {
    /// A provider id, e.g. `anthropic`.
    pub provider_id: String,
    /// The provider's model name, e.g. `claude-sonnet-4-6`.
    pub name: String,
}

/// The configuration part of an agent, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentConfigView {
    pub name: String,
    pub description: String,
    pub model: ModelBody,
    pub system_prompt: String,
    pub tool_sources: Vec<String>,
    pub tools: Vec<String>,
    pub max_turns: u32,
    pub max_output_tokens: u32,
    pub temperature: Option<f64>,
    pub environment_id: Option<String>,
    pub skills: Vec<String>,
    pub memory_store_ids: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

fn config_view(c: AgentConfig) -> AgentConfigView {
    AgentConfigView {
        name: c.name,
        description: c.description,
        model: ModelBody { provider_id: c.model.provider_id, name: c.model.name },
        system_prompt: c.system_prompt,
        tool_sources: c.tool_sources,
        tools: c.tools,
        max_turns: c.max_turns,
        max_output_tokens: c.max_output_tokens,
        temperature: c.temperature,
        environment_id: c.environment_id,
        skills: c.skills,
        memory_store_ids: c.memory_store_ids,
        metadata: c.metadata,
    }
}

/// An agent at its current version.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub sandbox_id: String,
    pub version: i64,
    #[serde(flatten)]
    pub config: AgentConfigView,
    /// `active`, `paused`, `stopped` or `error`.
    pub state: String,
    pub state_reason: Option<String>,
    /// Remaining token budget; `null` means unlimited.
    pub token_balance: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

pub(crate) fn view(a: Agent) -> AgentView {
    AgentView {
        id: a.id.to_string(),
        sandbox_id: a.sandbox_id.to_string(),
        version: a.version,
        config: config_view(a.config),
        state: a.state.as_str().into(),
        state_reason: a.state_reason,
        token_balance: a.token_balance,
        created_at: ts(a.created_at),
        updated_at: ts(a.updated_at),
        archived_at: a.archived_at.map(ts),
    }
}

/// One immutable version.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentVersionView {
    pub agent_id: String,
    pub version: i64,
    pub created_at: String,
    #[serde(flatten)]
    pub config: AgentConfigView,
}

fn version_view(v: AgentVersion) -> AgentVersionView {
    AgentVersionView { agent_id: v.agent_id.to_string(), version: v.version, created_at: ts(v.created_at), config: config_view(v.config) }
}

/// Body of `POST /v1/agents`: an AgentConfig (§3), plus an optional `sandbox_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// The sandbox to create it in (default: `Steward-Sandbox` header, then the key's sandbox).
    pub sandbox_id: Option<String>,
    /// Unique slug within the sandbox: lowercase letters, digits, `-`, `_`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub model: ModelBody,
    #[serde(default)]
    pub system_prompt: String,
    /// Tool source ids (`src_…`).
    #[serde(default)]
    pub tool_sources: Vec<String>,
    /// Allowlist of tool names; empty means every tool of the sources.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Model↔tool round trips per run (1–1000, default 20).
    pub max_turns: Option<u32>,
    /// Default 4096.
    pub max_output_tokens: Option<u32>,
    /// 0–2; omit for the model's default.
    pub temperature: Option<f64>,
    pub environment_id: Option<String>,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub memory_store_ids: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListAgents {
    pub sandbox_id: Option<String>,
    /// `true` lists archived agents instead of live ones.
    pub archived: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Creates an agent at version 1, state `active`.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = CreateAgent,
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateAgent>,
) -> ApiResult<(StatusCode, Json<AgentView>)> {
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Write).await?;
    let config = AgentConfig {
        name: body.name,
        description: body.description,
        model: ModelRef { provider_id: body.model.provider_id, name: body.model.name },
        system_prompt: body.system_prompt,
        tool_sources: body.tool_sources,
        tools: body.tools,
        max_turns: body.max_turns.unwrap_or(DEFAULT_MAX_TURNS),
        max_output_tokens: body.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS),
        temperature: body.temperature,
        environment_id: body.environment_id,
        skills: body.skills,
        memory_store_ids: body.memory_store_ids,
        metadata: body.metadata,
    }
    .validated()?;
    check_references(&state, &sandbox, &config).await?;
    let agent = state.store.create_agent(&sandbox, config).await.map_err(name_conflict)?;
    Ok((StatusCode::CREATED, Json(view(agent))))
}

/// The sources and environment an agent names must exist in its sandbox; a foreign id looks
/// exactly like a missing one.
async fn check_references(state: &AppState, sandbox: &SandboxId, config: &AgentConfig) -> ApiResult<()> {
    let found = state.store.sources_by_id(sandbox, &config.tool_sources).await?;
    for (i, id) in config.tool_sources.iter().enumerate() {
        if !found.iter().any(|s| s.id.as_str() == id) {
            return Err(ApiError::invalid(
                format!("tool_sources[{i}]"),
                format!("source {id} does not exist in this sandbox; list them with GET /v1/sources or create one with POST /v1/sources"),
            ));
        }
    }
    if let Some(env) = &config.environment_id {
        let ok = state.store.environment(&EnvironmentId::from_trusted(env.clone())).await?.is_some_and(|e| &e.sandbox_id == sandbox);
        if !ok {
            return Err(ApiError::invalid(
                "environment_id",
                format!("environment {env} does not exist in this sandbox; list them with GET /v1/environments"),
            ));
        }
    }
    Ok(())
}

fn name_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Duplicate(_) => ApiError::from(e).with_param("name"),
        other => other.into(),
    }
}

/// Agents of a sandbox, newest first.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(ListAgents),
    responses((status = 200, body = Page<AgentView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListAgents>) -> ApiResult<Json<Page<AgentView>>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(Json(Page::from_listing(state.store.agents(&sandbox, q.archived.unwrap_or(false), &page).await?, view)))
}

/// One agent at its current version.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "agent id (`agt_…`)")),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AgentView>> {
    Ok(Json(view(load(&state, &caller, &id, Need::Read).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListVersions {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Every version of an agent, newest first.
#[utoipa::path(get, path = "/v1/agents/{id}/versions", tag = "agents", params(("id" = String, Path), ListVersions),
    responses((status = 200, body = Page<AgentVersionView>), (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListVersions>,
) -> ApiResult<Json<Page<AgentVersionView>>> {
    let agent = load(&state, &caller, &id, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    if page.before.as_deref().is_some_and(|b| b.parse::<i64>().is_err()) {
        return Err(ApiError::invalid(
            "cursor",
            "this cursor is not a versions cursor; pass `next_cursor` from the previous page unchanged",
        ));
    }
    Ok(Json(Page::from_listing(state.store.agent_versions(&agent.id, &page).await?, version_view)))
}

/// One version.
#[utoipa::path(get, path = "/v1/agents/{id}/versions/{version}", tag = "agents", params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = AgentVersionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<AgentVersionView>> {
    let agent = load(&state, &caller, &id, Need::Read).await?;
    let v: i64 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::invalid("version", format!("`{}` is not a version number (1, 2, …)", steward_core::ids::shorten(&version)))
    })?;
    let found = state
        .store
        .agent_version(&agent.id, v)
        .await?
        .ok_or_else(|| ApiError::no_route(format!("agent {id} has no version {v}; it is at version {}", agent.version)))?;
    Ok(Json(version_view(found)))
}

/// Body of `PATCH /v1/agents/{id}`: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ModelBody>)]
    pub model: Option<Option<ModelBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub system_prompt: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tool_sources: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tools: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub max_turns: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub max_output_tokens: Option<Option<u32>>,
    /// `null` clears it (the model's default).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub temperature: Option<Option<f64>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub environment_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub skills: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub memory_store_ids: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
}

impl UpdateAgent {
    fn into_patch(self) -> ApiResult<AgentPatch> {
        Ok(AgentPatch {
            name: not_null(self.name, "name")?,
            description: not_null(self.description, "description")?,
            model: not_null(self.model, "model")?.map(|m| ModelRef { provider_id: m.provider_id, name: m.name }),
            system_prompt: not_null(self.system_prompt, "system_prompt")?,
            tool_sources: not_null(self.tool_sources, "tool_sources")?,
            tools: not_null(self.tools, "tools")?,
            max_turns: not_null(self.max_turns, "max_turns")?,
            max_output_tokens: not_null(self.max_output_tokens, "max_output_tokens")?,
            temperature: self.temperature,
            environment_id: self.environment_id,
            skills: not_null(self.skills, "skills")?,
            memory_store_ids: not_null(self.memory_store_ids, "memory_store_ids")?,
            metadata: not_null(self.metadata, "metadata")?,
        })
    }
}

/// Partial update: only the fields present change, and the version bumps (unless nothing
/// actually changed). Earlier versions stay as they were.
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = UpdateAgent,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateAgent>,
) -> ApiResult<Json<AgentView>> {
    let patch = body.into_patch()?;
    if patch.is_empty() {
        return Err(ApiError::bad_request("nothing to update: send at least one agent field"));
    }
    // Compare-and-set on the version; a concurrent writer makes us re-read and re-apply.
    let (state, caller, id, patch) = (&state, &caller, &id, &patch);
    let updated = update_with_retry(
        format!("agent {id}"),
        load(state, caller, id, Need::Write).await?,
        || load(state, caller, id, Need::Write),
        |agent| async move {
            if agent.archived_at.is_some() {
                return Err(ApiError::conflict(format!("agent {id} is archived; archived agents cannot be changed")));
            }
            let next = agent.config.patched(patch.clone())?;
            if next == agent.config {
                return Ok(Ok(agent));
            }
            check_references(state, &agent.sandbox_id, &next).await?;
            Ok(state.store.update_agent(&agent.id, agent.version, next).await)
        },
        name_conflict,
    )
    .await?;
    Ok(Json(view(updated)))
}

/// Archives an agent (soft delete): it takes no new work; existing sessions keep their version.
#[utoipa::path(post, path = "/v1/agents/{id}/archive", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn archive(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AgentView>> {
    let agent = load(&state, &caller, &id, Need::Write).await?;
    Ok(Json(view(state.store.archive_agent(&agent.id).await?)))
}

/// Deletes an agent and all its versions. Irreversible; owner only (§9).
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let agent = load(&state, &caller, &id, Need::Owner).await?;
    state.store.delete_agent(&agent.id).await?;
    Ok(Json(Deleted { id: agent.id.to_string(), deleted: true }))
}

/// Moves an agent to `to` if the state machine allows it; staying put is a no-op.
pub(crate) async fn change_state(state: &AppState, caller: &Caller, id: &str, to: AgentState, reason: Option<String>) -> ApiResult<Agent> {
    if let Some(r) = &reason
        && (r.chars().count() > 500 || r.contains('\0'))
    {
        return Err(ApiError::invalid("reason", "a reason must be at most 500 characters without NUL"));
    }
    if to == AgentState::Error && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(ApiError::invalid("reason", "setting `error` needs a `reason` saying what is wrong"));
    }
    let agent = load(state, caller, id, Need::Write).await?;
    if agent.archived_at.is_some() {
        return Err(ApiError::conflict(format!("agent {id} is archived; its state cannot change")));
    }
    if !agent.state.can_become(to) {
        return Err(ApiError::conflict(agent.state.refusal(to)).with_param("state"));
    }
    if agent.state == to && reason.is_none() {
        return Ok(agent);
    }
    let reason = if to == AgentState::Active { None } else { reason };
    let updated = state.store.set_agent_state(&agent.id, agent.state, to, reason.as_deref()).await?;
    if to == AgentState::Stopped {
        state.runtime.cancel_agent(&agent.id, "the agent was stopped").await?;
    }
    Ok(updated)
}

/// Pauses an agent: it accepts nothing new; in-flight runs finish.
#[utoipa::path(post, path = "/v1/agents/{id}/pause", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AgentView>> {
    Ok(Json(view(change_state(&state, &caller, &id, AgentState::Paused, None).await?)))
}

/// Resumes a paused, stopped or failed agent (back to `active`, reason cleared).
#[utoipa::path(post, path = "/v1/agents/{id}/resume", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AgentView>> {
    Ok(Json(view(change_state(&state, &caller, &id, AgentState::Active, None).await?)))
}

/// Stops an agent: in-flight runs are cancelled (once the runtime exists) and it takes no work.
#[utoipa::path(post, path = "/v1/agents/{id}/stop", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn stop(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AgentView>> {
    Ok(Json(view(change_state(&state, &caller, &id, AgentState::Stopped, None).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// `active`, `paused`, `stopped` or `error`.
    pub state: String,
    /// Why; required for `error`.
    pub reason: Option<String>,
}

/// Sets the state directly (legal transitions only).
#[utoipa::path(post, path = "/v1/agents/{id}/status", tag = "agents", params(("id" = String, Path)), request_body = SetStatus,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetStatus>,
) -> ApiResult<Json<AgentView>> {
    let to: AgentState = body.state.parse()?;
    Ok(Json(view(change_state(&state, &caller, &id, to, body.reason).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBalance {
    /// Tokens to add to the balance (a missing balance counts as 0).
    pub add: Option<i64>,
    /// The new balance; `null` removes the budget (unlimited).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub set: Option<Option<i64>>,
}

/// Adds to or sets the agent's token budget. When it reaches zero, runs stop with
/// `budget_exhausted` and the agent goes to `error`.
#[utoipa::path(post, path = "/v1/agents/{id}/balance", tag = "agents", params(("id" = String, Path)), request_body = SetBalance,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetBalance>,
) -> ApiResult<Json<AgentView>> {
    let agent = load(&state, &caller, &id, Need::Write).await?;
    let updated = match (body.add, body.set) {
        (Some(n), None) if (1..=1_000_000_000_000).contains(&n) => state.store.set_token_balance(&agent.id, Some(n), true).await?,
        (Some(_), None) => return Err(ApiError::invalid("add", "add a whole number of tokens from 1 to 10^12")),
        (None, Some(Some(n))) if (0..=1_000_000_000_000).contains(&n) => state.store.set_token_balance(&agent.id, Some(n), false).await?,
        (None, Some(Some(_))) => {
            return Err(ApiError::invalid("set", "set a whole number of tokens from 0 to 10^12, or null for no budget"));
        }
        (None, Some(None)) => state.store.set_token_balance(&agent.id, None, false).await?,
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of `add` (tokens to add) or `set` (the new balance, or null for unlimited)",
            ));
        }
    };
    Ok(Json(view(updated)))
}

/// An agent's activity and spend.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub agent_id: String,
    pub name: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub version: i64,
    pub token_balance: Option<i64>,
    pub usage: UsageView,
    pub sessions: i64,
    /// Run counts by status.
    pub runs: BTreeMap<String, i64>,
    pub last_run: Option<RunView>,
    /// The newest failed attempt to post a chat reply (§10), on any platform.
    pub last_channel_failure: Option<ChannelFailureView>,
}

/// State, version, token usage to date, balance, last run and counts.
#[utoipa::path(get, path = "/v1/agents/{id}/summary", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Summary), (status = 404, body = ErrorBody)))]
pub async fn summary(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Summary>> {
    let agent = load(&state, &caller, &id, Need::Read).await?;
    let stats = state.store.agent_stats(&agent.id).await?;
    Ok(Json(Summary {
        agent_id: agent.id.to_string(),
        name: agent.config.name,
        state: agent.state.as_str().into(),
        state_reason: agent.state_reason,
        version: agent.version,
        token_balance: agent.token_balance,
        usage: UsageView { input_tokens: stats.input_tokens, output_tokens: stats.output_tokens },
        sessions: stats.sessions,
        runs: stats.runs_by_status,
        last_run: stats.last_run.map(run_view),
        last_channel_failure: state.store.last_channel_failure(&agent.id, None).await?.map(channel_failure_view),
    }))
}

/// Whether an agent can take a message right now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
    /// Why not, each with what to do.
    pub reasons: Vec<String>,
}

/// Can the agent take a message right now, and if not, why.
#[utoipa::path(get, path = "/v1/agents/{id}/ready", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Ready), (status = 404, body = ErrorBody)))]
pub async fn ready(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Ready>> {
    let agent = load(&state, &caller, &id, Need::Read).await?;
    let mut reasons = Vec::new();
    // Both halves of admission, each reported: the agent's state (a Concierge is asked
    // through its own endpoints, so that is not counted against it), then its model.
    if let Err(r) = steward_core::admission::check_agent(&agent, true) {
        reasons.push(r.to_string());
    }
    match state.runtime.check_model(&agent).await {
        Ok(()) => {}
        Err(AdmitError::Refused(r)) => reasons.push(r.to_string()),
        Err(AdmitError::Store(e)) => return Err(e.into()),
    }
    Ok(Json(Ready { ready: reasons.is_empty(), reasons }))
}
