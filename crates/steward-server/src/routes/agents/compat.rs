//! §14 compatibility paths of §3 agents, for clients written against the per-agent REST style
//! (`/v1/agent/…`). Each is a one-line forward to its handler in the parent module; it exists as
//! its own function only so the OpenAPI document (generated per handler) lists the path.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{AgentView, CreateAgent, ListAgents, Ready, SetBalance, SetStatus, Summary, UpdateAgent};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{Deleted, Page};

/// Same as `POST /v1/agents`.
#[utoipa::path(post, path = "/v1/agent/create", tag = "compat", request_body = CreateAgent,
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(s: State<AppState>, c: Caller, b: ApiJson<CreateAgent>) -> ApiResult<(StatusCode, Json<AgentView>)> {
    super::create(s, c, b).await
}

/// Same as `GET /v1/agents`.
#[utoipa::path(get, path = "/v1/agent/list", tag = "compat", params(ListAgents), responses((status = 200, body = Page<AgentView>), (status = 400, body = ErrorBody)))]
pub async fn list(s: State<AppState>, c: Caller, q: ApiQuery<ListAgents>) -> ApiResult<Json<Page<AgentView>>> {
    super::list(s, c, q).await
}

/// Same as `GET /v1/agents/{id}`.
#[utoipa::path(get, path = "/v1/agent/{id}", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub async fn get(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    super::get(s, c, p).await
}

/// Same as `PATCH /v1/agents/{id}`.
#[utoipa::path(post, path = "/v1/agent/update/{id}", tag = "compat", params(("id" = String, Path)), request_body = UpdateAgent,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<UpdateAgent>) -> ApiResult<Json<AgentView>> {
    super::update(s, c, p, b).await
}

/// Same as `DELETE /v1/agents/{id}` (owner only).
#[utoipa::path(post, path = "/v1/agent/delete/{id}", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Deleted>> {
    super::delete(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/pause`.
#[utoipa::path(post, path = "/v1/agent/{id}/pause", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 409, body = ErrorBody)))]
pub async fn pause(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    super::pause(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/resume`.
#[utoipa::path(post, path = "/v1/agent/{id}/resume", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 409, body = ErrorBody)))]
pub async fn resume(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    super::resume(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/stop`.
#[utoipa::path(post, path = "/v1/agent/{id}/stop", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = AgentView), (status = 409, body = ErrorBody)))]
pub async fn stop(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<AgentView>> {
    super::stop(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/status`.
#[utoipa::path(post, path = "/v1/agent/{id}/status", tag = "compat", params(("id" = String, Path)), request_body = SetStatus,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn status(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<SetStatus>) -> ApiResult<Json<AgentView>> {
    super::status(s, c, p, b).await
}

/// Same as `GET /v1/agents/{id}/summary`.
#[utoipa::path(get, path = "/v1/agent/{id}/summary", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = Summary), (status = 404, body = ErrorBody)))]
pub async fn summary(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Summary>> {
    super::summary(s, c, p).await
}

/// Same as `GET /v1/agents/{id}/ready`.
#[utoipa::path(get, path = "/v1/agent/{id}/ready", tag = "compat", params(("id" = String, Path)), responses((status = 200, body = Ready), (status = 404, body = ErrorBody)))]
pub async fn ready(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Ready>> {
    super::ready(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/balance`.
#[utoipa::path(post, path = "/v1/agent/{id}/balance", tag = "compat", params(("id" = String, Path)), request_body = SetBalance,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn balance(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<SetBalance>) -> ApiResult<Json<AgentView>> {
    super::balance(s, c, p, b).await
}
