//! §14 compatibility paths for clients written against the per-agent REST style. Each is a
//! one-line forward to the handler in `agents.rs`; it exists as its own function only so the
//! OpenAPI document (generated per handler) lists the path.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::Deleted;
use crate::routes::Page;
use crate::routes::agents::{self, AgentView, CreateAgent, ListAgents, Ready, SetBalance, SetStatus, Summary, UpdateAgent};
use crate::routes::{schedules, triggers};

/// Same as `POST /v1/agents`.
#[utoipa::path(post, path = "/v1/agent/create", tag = "compat", request_body = CreateAgent,
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(s: State<AppState>, c: Caller, b: ApiJson<CreateAgent>) -> ApiResult<(StatusCode, Json<AgentView>)> {
    agents::create(s, c, b).await
}

/// Same as `GET /v1/agents`.
#[utoipa::path(get, path = "/v1/agent/list", tag = "compat", params(ListAgents), responses((status = 200, body = Page<AgentView>), (status = 400, body = ErrorBody)))]
pub async fn list(s: State<AppState>, c: Caller, q: ApiQuery<ListAgents>) -> ApiResult<Json<Page<AgentView>>> {
    agents::list(s, c, q).await
}

/// Same as `GET /v1/agents/{id}`.
#[utoipa::path(get, path = "/v1/agent/{id}", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub async fn get(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    agents::get(s, c, p).await
}

/// Same as `PATCH /v1/agents/{id}`.
#[utoipa::path(post, path = "/v1/agent/update/{id}", tag = "compat", params(("id" = String, Path)), request_body = UpdateAgent,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<UpdateAgent>) -> ApiResult<Json<AgentView>> {
    agents::update(s, c, p, b).await
}

/// Same as `DELETE /v1/agents/{id}` (owner only).
#[utoipa::path(post, path = "/v1/agent/delete/{id}", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Deleted>> {
    agents::delete(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/pause`.
#[utoipa::path(post, path = "/v1/agent/{id}/pause", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 409, body = ErrorBody)))]
pub async fn pause(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    agents::pause(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/resume`.
#[utoipa::path(post, path = "/v1/agent/{id}/resume", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 409, body = ErrorBody)))]
pub async fn resume(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    agents::resume(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/stop`.
#[utoipa::path(post, path = "/v1/agent/{id}/stop", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 409, body = ErrorBody)))]
pub async fn stop(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    agents::stop(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/status`.
#[utoipa::path(post, path = "/v1/agent/{id}/status", tag = "compat", params(("id" = String, Path)), request_body = SetStatus,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn status(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<SetStatus>) -> ApiResult<Json<AgentView>> {
    agents::status(s, c, p, b).await
}

/// Same as `GET /v1/agents/{id}/summary`.
#[utoipa::path(get, path = "/v1/agent/{id}/summary", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = Summary), (status = 404, body = ErrorBody)))]
pub async fn summary(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Summary>> {
    agents::summary(s, c, p).await
}

/// Same as `GET /v1/agents/{id}/ready`.
#[utoipa::path(get, path = "/v1/agent/{id}/ready", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = Ready), (status = 404, body = ErrorBody)))]
pub async fn ready(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Ready>> {
    agents::ready(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/balance`.
#[utoipa::path(post, path = "/v1/agent/{id}/balance", tag = "compat", params(("id" = String, Path)), request_body = SetBalance,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn balance(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<SetBalance>) -> ApiResult<Json<AgentView>> {
    agents::balance(s, c, p, b).await
}

/// Same as `POST /v1/agents/{id}/messages`.
#[utoipa::path(post, path = "/v1/agent/{id}/messages", tag = "compat", params(("id" = String, Path)), request_body = crate::routes::messages::SendMessage,
    responses((status = 200, body = crate::routes::messages::MessageReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn send_message(
    s: State<AppState>,
    c: Caller,
    h: axum::http::HeaderMap,
    p: Path<String>,
    b: ApiJson<crate::routes::messages::SendMessage>,
) -> ApiResult<(StatusCode, Json<crate::routes::messages::MessageReply>)> {
    crate::routes::messages::send(s, c, h, p, b).await
}

/// Same as `GET /v1/agents/{id}/messages`.
#[utoipa::path(get, path = "/v1/agent/{id}/messages", tag = "compat", params(("id" = String, Path), crate::routes::messages::ReadMessages),
    responses((status = 200, body = crate::routes::messages::MessagesView), (status = 404, body = ErrorBody)))]
pub async fn read_messages(
    s: State<AppState>,
    c: Caller,
    h: axum::http::HeaderMap,
    p: Path<String>,
    q: ApiQuery<crate::routes::messages::ReadMessages>,
) -> ApiResult<Json<crate::routes::messages::MessagesView>> {
    crate::routes::messages::read(s, c, h, p, q).await
}

/// Same as `GET /v1/agents/{id}/conversations`.
#[utoipa::path(get, path = "/v1/agent/{id}/conversations", tag = "compat", params(("id" = String, Path), crate::routes::sessions::EndUserQuery),
    responses((status = 200, body = crate::routes::messages::ConversationsView), (status = 404, body = ErrorBody)))]
pub async fn conversations(
    s: State<AppState>,
    c: Caller,
    h: axum::http::HeaderMap,
    p: Path<String>,
    q: ApiQuery<crate::routes::sessions::EndUserQuery>,
) -> ApiResult<Json<crate::routes::messages::ConversationsView>> {
    crate::routes::messages::conversations(s, c, h, p, q).await
}

// §11 schedules and triggers under the per-agent style.
/// Same as `GET /v1/agents/{id}/schedules`.
#[utoipa::path(get, path = "/v1/agent/{id}/schedules", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "as the non-compat path"), (status = 404, body = ErrorBody)))]
pub async fn list_schedules(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Value>> {
    schedules::list(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/schedules`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules", tag = "compat", params(("id" = String, Path)), request_body = schedules::CreateSchedule,
    responses((status = 201, body = schedules::ScheduleView), (status = 400, body = ErrorBody)))]
pub async fn create_schedule(
    s: State<AppState>,
    c: Caller,
    p: Path<String>,
    b: ApiJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<schedules::ScheduleView>)> {
    schedules::create(s, c, p, b).await
}

/// Same as `GET /v1/agents/{id}/schedules/{schedule_id}`.
#[utoipa::path(get, path = "/v1/agent/{id}/schedules/{schedule_id}", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = schedules::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<schedules::ScheduleView>> {
    schedules::get(s, c, p).await
}

/// Same as `PATCH /v1/agents/{id}/schedules/{schedule_id}`.
#[utoipa::path(patch, path = "/v1/agent/{id}/schedules/{schedule_id}", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)), request_body = schedules::CreateSchedule,
    responses((status = 200, body = schedules::ScheduleView), (status = 400, body = ErrorBody)))]
pub async fn update_schedule(
    s: State<AppState>,
    c: Caller,
    p: Path<(String, String)>,
    b: ApiJson<Map<String, Value>>,
) -> ApiResult<Json<schedules::ScheduleView>> {
    schedules::update(s, c, p, b).await
}

/// Same as `DELETE /v1/agents/{id}/schedules/{schedule_id}`.
#[utoipa::path(delete, path = "/v1/agent/{id}/schedules/{schedule_id}", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<Deleted>> {
    schedules::delete(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/schedules/{schedule_id}/pause`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules/{schedule_id}/pause", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)), request_body = crate::routes::PauseBody,
    responses((status = 200, body = schedules::ScheduleView), (status = 400, body = ErrorBody)))]
pub async fn pause_schedule(
    s: State<AppState>,
    c: Caller,
    p: Path<(String, String)>,
    b: Bytes,
) -> ApiResult<Json<schedules::ScheduleView>> {
    schedules::pause(s, c, p, b).await
}

/// Same as `POST /v1/agents/{id}/schedules/{schedule_id}/resume`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules/{schedule_id}/resume", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = schedules::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn resume_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<schedules::ScheduleView>> {
    schedules::resume(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/schedules/{schedule_id}/toggle`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules/{schedule_id}/toggle", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = schedules::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn toggle_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<schedules::ScheduleView>> {
    schedules::toggle(s, c, p).await
}

/// Same as `GET /v1/agents/{id}/schedules/{schedule_id}/executions`.
#[utoipa::path(get, path = "/v1/agent/{id}/schedules/{schedule_id}/executions", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, description = "as the non-compat path"), (status = 404, body = ErrorBody)))]
pub async fn schedule_executions(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<Value>> {
    schedules::executions(s, c, p).await
}

/// Same as `GET /v1/agents/{id}/triggers`.
#[utoipa::path(get, path = "/v1/agent/{id}/triggers", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "as the non-compat path"), (status = 404, body = ErrorBody)))]
pub async fn list_triggers(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Value>> {
    triggers::list(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/triggers`.
#[utoipa::path(post, path = "/v1/agent/{id}/triggers", tag = "compat", params(("id" = String, Path)), request_body = triggers::CreateTrigger,
    responses((status = 201, body = triggers::CreatedTrigger), (status = 400, body = ErrorBody)))]
pub async fn create_trigger(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<Map<String, Value>>) -> ApiResult<Response> {
    triggers::create(s, c, p, b).await
}

/// Same as `GET /v1/agents/{id}/triggers/{trigger_id}`.
#[utoipa::path(get, path = "/v1/agent/{id}/triggers/{trigger_id}", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = triggers::TriggerView), (status = 404, body = ErrorBody)))]
pub async fn get_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<triggers::TriggerView>> {
    triggers::get(s, c, p).await
}

/// Same as `PATCH /v1/agents/{id}/triggers/{trigger_id}`.
#[utoipa::path(patch, path = "/v1/agent/{id}/triggers/{trigger_id}", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)), request_body = triggers::CreateTrigger,
    responses((status = 200, body = triggers::TriggerView), (status = 400, body = ErrorBody)))]
pub async fn update_trigger(
    s: State<AppState>,
    c: Caller,
    p: Path<(String, String)>,
    b: ApiJson<Map<String, Value>>,
) -> ApiResult<Json<triggers::TriggerView>> {
    triggers::update(s, c, p, b).await
}

/// Same as `DELETE /v1/agents/{id}/triggers/{trigger_id}`.
#[utoipa::path(delete, path = "/v1/agent/{id}/triggers/{trigger_id}", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<Deleted>> {
    triggers::delete(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/triggers/{trigger_id}/pause`.
#[utoipa::path(post, path = "/v1/agent/{id}/triggers/{trigger_id}/pause", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)), request_body = crate::routes::PauseBody,
    responses((status = 200, body = triggers::TriggerView), (status = 400, body = ErrorBody)))]
pub async fn pause_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>, b: Bytes) -> ApiResult<Json<triggers::TriggerView>> {
    triggers::pause(s, c, p, b).await
}

/// Same as `POST /v1/agents/{id}/triggers/{trigger_id}/resume`.
#[utoipa::path(post, path = "/v1/agent/{id}/triggers/{trigger_id}/resume", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = triggers::TriggerView), (status = 404, body = ErrorBody)))]
pub async fn resume_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<triggers::TriggerView>> {
    triggers::resume(s, c, p).await
}
