//! §14 compatibility paths for clients written against the per-agent REST style. Each is a
//! one-line forward to the handler in `agents.rs`; it exists as its own function only so the
//! OpenAPI document (generated per handler) lists the path.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::Deleted;
use crate::routes::Page;
use crate::routes::agents::{self, AgentView, CreateAgent, ListAgents, Ready, SetBalance, SetStatus, Summary, UpdateAgent};

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
