//! §14 compatibility paths of §11 webhook triggers, for clients written against the per-agent REST style
//! (`/v1/agent/…`). Each is a one-line forward to its handler in the parent module; it exists as
//! its own function only so the OpenAPI document (generated per handler) lists the path.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::Deleted;

/// Same as `GET /v1/agents/{id}/triggers`.
#[utoipa::path(get, path = "/v1/agent/{id}/triggers", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "as the non-compat path"), (status = 404, body = ErrorBody)))]
pub async fn list_triggers(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<Value>> {
    super::list(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/triggers`.
#[utoipa::path(post, path = "/v1/agent/{id}/triggers", tag = "compat", params(("id" = String, Path)), request_body = super::CreateTrigger,
    responses((status = 201, body = super::CreatedTrigger), (status = 400, body = ErrorBody)))]
pub async fn create_trigger(s: State<AppState>, c: Caller, p: Path<String>, b: ApiJson<Map<String, Value>>) -> ApiResult<Response> {
    super::create(s, c, p, b).await
}

/// Same as `GET /v1/agents/{id}/triggers/{trigger_id}`.
#[utoipa::path(get, path = "/v1/agent/{id}/triggers/{trigger_id}", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = super::TriggerView), (status = 404, body = ErrorBody)))]
pub async fn get_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<super::TriggerView>> {
    super::get(s, c, p).await
}

/// Same as `PATCH /v1/agents/{id}/triggers/{trigger_id}`.
#[utoipa::path(patch, path = "/v1/agent/{id}/triggers/{trigger_id}", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)), request_body = super::CreateTrigger,
    responses((status = 200, body = super::TriggerView), (status = 400, body = ErrorBody)))]
pub async fn update_trigger(
    s: State<AppState>,
    c: Caller,
    p: Path<(String, String)>,
    b: ApiJson<Map<String, Value>>,
) -> ApiResult<Json<super::TriggerView>> {
    super::update(s, c, p, b).await
}

/// Same as `DELETE /v1/agents/{id}/triggers/{trigger_id}`.
#[utoipa::path(delete, path = "/v1/agent/{id}/triggers/{trigger_id}", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<Deleted>> {
    super::delete(s, c, p).await
}

/// Same as `POST /v1/agents/{id}/triggers/{trigger_id}/pause`.
#[utoipa::path(post, path = "/v1/agent/{id}/triggers/{trigger_id}/pause", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)), request_body = crate::routes::PauseBody,
    responses((status = 200, body = super::TriggerView), (status = 400, body = ErrorBody)))]
pub async fn pause_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>, b: Bytes) -> ApiResult<Json<super::TriggerView>> {
    super::pause(s, c, p, b).await
}

/// Same as `POST /v1/agents/{id}/triggers/{trigger_id}/resume`.
#[utoipa::path(post, path = "/v1/agent/{id}/triggers/{trigger_id}/resume", tag = "compat", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = super::TriggerView), (status = 404, body = ErrorBody)))]
pub async fn resume_trigger(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<super::TriggerView>> {
    super::resume(s, c, p).await
}
