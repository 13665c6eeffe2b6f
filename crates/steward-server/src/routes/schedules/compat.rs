//! §14 compatibility paths of §11 schedules, for clients written against the per-agent REST style
//! (`/v1/agent/…`). Each is a one-line forward to its handler in the parent module; it exists as
//! its own function only so the OpenAPI document (generated per handler) lists the path.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::Deleted;

/// Same as `GET /v1/agents/{id}/schedules`.
#[utoipa::path(get, path = "/v1/agent/{id}/schedules", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "as the non-compat path"), (status = 404, body = ErrorBody)))]
pub async fn list_schedules(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Value>> {
    super::list(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/schedules`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules", tag = "compat", params(("id" = String, Path)), request_body = super::CreateSchedule,
    responses((status = 201, body = super::ScheduleView), (status = 400, body = ErrorBody)))]
pub async fn create_schedule(
    s: State<AppState>,
    c: Caller,
    p: Path<String>,
    b: ApiJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<super::ScheduleView>)> {
    super::create(s, c, p, b).await
}

/// Same as `GET /v1/agents/{id}/schedules/{schedule_id}`.
#[utoipa::path(get, path = "/v1/agent/{id}/schedules/{schedule_id}", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = super::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<super::ScheduleView>> {
    super::get(s, c, p).await
}

/// Same as `PATCH /v1/agents/{id}/schedules/{schedule_id}`.
#[utoipa::path(patch, path = "/v1/agent/{id}/schedules/{schedule_id}", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)), request_body = super::CreateSchedule,
    responses((status = 200, body = super::ScheduleView), (status = 400, body = ErrorBody)))]
pub async fn update_schedule(
    s: State<AppState>,
    c: Caller,
    p: Path<(String, String)>,
    b: ApiJson<Map<String, Value>>,
) -> ApiResult<Json<super::ScheduleView>> {
    super::update(s, c, p, b).await
}

/// Same as `DELETE /v1/agents/{id}/schedules/{schedule_id}`.
#[utoipa::path(delete, path = "/v1/agent/{id}/schedules/{schedule_id}", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<Deleted>> {
    super::delete(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/schedules/{schedule_id}/pause`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules/{schedule_id}/pause", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)), request_body = crate::routes::PauseBody,
    responses((status = 200, body = super::ScheduleView), (status = 400, body = ErrorBody)))]
pub async fn pause_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>, b: Bytes) -> ApiResult<Json<super::ScheduleView>> {
    super::pause(s, c, p, b).await
}

/// Same as `POST /v1/agents/{id}/schedules/{schedule_id}/resume`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules/{schedule_id}/resume", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = super::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn resume_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<super::ScheduleView>> {
    super::resume(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/schedules/{schedule_id}/toggle`.
#[utoipa::path(post, path = "/v1/agent/{id}/schedules/{schedule_id}/toggle", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = super::ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn toggle_schedule(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<super::ScheduleView>> {
    super::toggle(s, c, p).await
}

/// Same as `GET /v1/agents/{id}/schedules/{schedule_id}/executions`.
#[utoipa::path(get, path = "/v1/agent/{id}/schedules/{schedule_id}/executions", tag = "compat", params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, description = "as the non-compat path"), (status = 404, body = ErrorBody)))]
pub async fn schedule_executions(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<Value>> {
    super::executions(s, c, p).await
}
