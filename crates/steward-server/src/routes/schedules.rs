//! Cron schedules (§11): `/v1/agents/{id}/schedules…`. The scheduler itself lives in the
//! runtime (`scheduler.rs`); these routes keep `next_fire_at` right: creating, changing and
//! resuming compute the next due time from the clock, pausing clears it (or sets the first due
//! time after `resume_at`).
//!
//! Roles: reads `viewer`; create/update/toggle/pause/resume `editor`; delete `editor` too (a
//! schedule is configuration that can be re-created exactly; its history goes with it).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use steward_core::agent::Agent;
use steward_core::ids::ScheduleId;
use steward_core::schedule::ScheduleConfig;
use steward_store::{Execution, Schedule};
use utoipa::ToSchema;

use crate::AppState;
use crate::access::load_agent as load;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::{Deleted, PauseBody, pause_until, ts};

pub mod compat;

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// `sch_…`
    pub id: String,
    pub agent_id: String,
    pub name: String,
    pub description: String,
    pub cron: String,
    pub timezone: String,
    pub input_template: String,
    /// `skip` or `fire_once`: what happens to due times missed while the server was down.
    pub missed: String,
    /// `active` or `paused`.
    pub state: String,
    pub resume_at: Option<String>,
    pub next_fire_at: Option<String>,
    pub last_fired_at: Option<String>,
    pub fire_count: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(s: Schedule, now: i64) -> ScheduleView {
    let paused = s.paused_at(now);
    let missed = serde_json::to_value(s.config.missed).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    ScheduleView {
        id: s.id.to_string(),
        agent_id: s.agent_id.to_string(),
        name: s.config.name,
        description: s.config.description,
        cron: s.config.cron,
        timezone: s.config.timezone,
        input_template: s.config.input_template,
        missed,
        state: if paused { "paused" } else { "active" }.into(),
        resume_at: s.resume_at.filter(|_| paused).map(ts),
        next_fire_at: s.next_fire_at.map(ts),
        last_fired_at: s.last_fired_at.map(ts),
        fire_count: s.fire_count,
        last_error: s.last_error,
        last_error_at: s.last_error_at.map(ts),
        created_at: ts(s.created_at),
        updated_at: ts(s.updated_at),
    }
}

/// Body of `POST /v1/agents/{id}/schedules`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSchedule {
    /// A slug unique among the agent's schedules.
    pub name: String,
    pub description: Option<String>,
    /// 5 fields (`min hour day month weekday`) or 6 (seconds first); names like `MON-FRI`.
    pub cron: String,
    /// IANA time zone (default `UTC`).
    pub timezone: Option<String>,
    /// minijinja over `scheduled_at`, `fired_at`, `schedule` (id, name, cron, timezone).
    pub input_template: Option<String>,
    /// `skip` (default) or `fire_once`.
    pub missed: Option<String>,
}

fn check_template(config: &ScheduleConfig) -> ApiResult<()> {
    steward_runtime::template::check(&config.input_template).map_err(|m| ApiError::invalid("input_template", m))
}

async fn load_schedule(state: &AppState, caller: &Caller, agent_raw: &str, raw: &str, need: Need) -> ApiResult<(Agent, Schedule)> {
    let agent = load(state, caller, agent_raw, need).await?;
    let id = ScheduleId::parse(raw, "schedule_id")?;
    let s = state.store.schedule(&id).await?.filter(|s| s.agent_id == agent.id).ok_or_else(|| ApiError::not_found("schedule", raw))?;
    Ok((agent, s))
}

/// An agent's schedules, by name.
#[utoipa::path(get, path = "/v1/agents/{id}/schedules", tag = "schedules", params(("id" = String, Path)),
    responses((status = 200, body = crate::routes::List<ScheduleView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let agent = load(&state, &caller, &id, Need::Read).await?;
    let now = state.clock.now_ms();
    let items: Vec<ScheduleView> = state.store.schedules_of(&agent.id).await?.into_iter().map(|s| view(s, now)).collect();
    Ok(Json(json!({"data": items})))
}

/// Creates a schedule; it fires first at the next matching time.
#[utoipa::path(post, path = "/v1/agents/{id}/schedules", tag = "schedules", params(("id" = String, Path)), request_body = CreateSchedule,
    responses((status = 201, body = ScheduleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    let agent = load(&state, &caller, &id, Need::Write).await?;
    let config = ScheduleConfig::from_json(Value::Object(body))?;
    check_template(&config)?;
    let now = state.clock.now_ms();
    let next = config.next_fire_after(now);
    let s = state.store.create_schedule(&agent.sandbox_id, &agent.id, config, next).await?;
    Ok((StatusCode::CREATED, Json(view(s, now))))
}

/// One schedule.
#[utoipa::path(get, path = "/v1/agents/{id}/schedules/{schedule_id}", tag = "schedules", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path((id, sid)): Path<(String, String)>) -> ApiResult<Json<ScheduleView>> {
    let (_, s) = load_schedule(&state, &caller, &id, &sid, Need::Read).await?;
    Ok(Json(view(s, state.clock.now_ms())))
}

/// Partial update; a new cron or time zone recomputes the next due time.
#[utoipa::path(patch, path = "/v1/agents/{id}/schedules/{schedule_id}", tag = "schedules", params(("id" = String, Path), ("schedule_id" = String, Path)), request_body = CreateSchedule,
    responses((status = 200, body = ScheduleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sid)): Path<(String, String)>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<ScheduleView>> {
    let (_, current) = load_schedule(&state, &caller, &id, &sid, Need::Write).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("nothing to update: send e.g. `cron`, `timezone`, `input_template` or `missed`"));
    }
    let next_config = current.config.patched(&body)?;
    check_template(&next_config)?;
    let now = state.clock.now_ms();
    if next_config == current.config {
        return Ok(Json(view(current, now)));
    }
    let next = if current.paused_at(now) { current.next_fire_at } else { next_config.next_fire_after(now) };
    let s = state.store.update_schedule(&current, next_config, next).await?;
    Ok(Json(view(s, now)))
}

/// Deletes a schedule and its history.
#[utoipa::path(delete, path = "/v1/agents/{id}/schedules/{schedule_id}", tag = "schedules", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path((id, sid)): Path<(String, String)>) -> ApiResult<Json<Deleted>> {
    let (_, s) = load_schedule(&state, &caller, &id, &sid, Need::Write).await?;
    state.store.delete_schedule(&s.id).await?;
    Ok(Json(Deleted { id: s.id.to_string(), deleted: true }))
}

async fn set_paused(state: &AppState, s: &Schedule, resume_at: Option<i64>) -> ApiResult<Schedule> {
    // Paused with a resume time: the first due time after it; paused for good: none.
    let next = resume_at.and_then(|at| s.config.next_fire_after(at - 1));
    Ok(state.store.set_schedule_state(&s.id, "paused", resume_at, next).await?)
}

async fn set_active(state: &AppState, s: &Schedule) -> ApiResult<Schedule> {
    let next = s.config.next_fire_after(state.clock.now_ms());
    Ok(state.store.set_schedule_state(&s.id, "active", None, next).await?)
}

/// Pauses a schedule, optionally until `resume_at` (body optional).
#[utoipa::path(post, path = "/v1/agents/{id}/schedules/{schedule_id}/pause", tag = "schedules", params(("id" = String, Path), ("schedule_id" = String, Path)), request_body = PauseBody,
    responses((status = 200, body = ScheduleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ScheduleView>> {
    let (agent, s) = load_schedule(&state, &caller, &id, &sid, Need::Write).await?;
    let now = state.clock.now_ms();
    let zone = state.store.sandbox(&agent.sandbox_id).await?.map(|s| s.time_zone).unwrap_or_else(|| "UTC".to_owned());
    let resume_at = pause_until(&body, now, "schedule", &zone)?;
    Ok(Json(view(set_paused(&state, &s, resume_at).await?, now)))
}

/// Resumes a paused schedule from now (missed times while paused do not fire).
#[utoipa::path(post, path = "/v1/agents/{id}/schedules/{schedule_id}/resume", tag = "schedules", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Json<ScheduleView>> {
    let (_, s) = load_schedule(&state, &caller, &id, &sid, Need::Write).await?;
    Ok(Json(view(set_active(&state, &s).await?, state.clock.now_ms())))
}

/// Flips a schedule between active and paused.
#[utoipa::path(post, path = "/v1/agents/{id}/schedules/{schedule_id}/toggle", tag = "schedules", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn toggle(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Json<ScheduleView>> {
    let (_, s) = load_schedule(&state, &caller, &id, &sid, Need::Write).await?;
    let now = state.clock.now_ms();
    let s = if s.paused_at(now) { set_active(&state, &s).await? } else { set_paused(&state, &s, None).await? };
    Ok(Json(view(s, now)))
}

/// One due time and what happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionView {
    pub scheduled_at: String,
    pub fired_at: String,
    /// `started`, `skipped` (missed while down, policy `skip`) or `error`.
    pub outcome: String,
    pub session_id: Option<String>,
    pub run_id: Option<String>,
    pub error: Option<String>,
}

fn execution_view(e: Execution) -> ExecutionView {
    ExecutionView {
        scheduled_at: ts(e.scheduled_at),
        fired_at: ts(e.fired_at),
        outcome: e.outcome,
        session_id: e.session_id,
        run_id: e.run_id,
        error: e.error,
    }
}

/// The schedule's last 100 executions, newest first.
#[utoipa::path(get, path = "/v1/agents/{id}/schedules/{schedule_id}/executions", tag = "schedules", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = crate::routes::List<ExecutionView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn executions(State(state): State<AppState>, caller: Caller, Path((id, sid)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let (_, s) = load_schedule(&state, &caller, &id, &sid, Need::Read).await?;
    let items: Vec<ExecutionView> = state.store.executions(&s.id, 100).await?.into_iter().map(execution_view).collect();
    Ok(Json(json!({"data": items})))
}
