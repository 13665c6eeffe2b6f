//! §14 compatibility paths of chat channels (`/v1/agent/{id}/{platform}/link|status|unlink`,
//! `/v1/agent/{id}/channels`). Each is a one-line forward to its handler in the parent module;
//! it exists as its own function only so the OpenAPI document (generated per handler) lists the
//! path.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::routes::List;

/// Same as `POST /v1/agents/{id}/{platform}/link`.
#[utoipa::path(post, path = "/v1/agent/{id}/{platform}/link", tag = "compat", params(("id" = String, Path), ("platform" = String, Path)),
    responses((status = 201, body = super::LinkCodeView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn link_channel(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Response> {
    super::link(s, c, p).await
}

/// Same as `GET /v1/agents/{id}/{platform}/status`.
#[utoipa::path(get, path = "/v1/agent/{id}/{platform}/status", tag = "compat", params(("id" = String, Path), ("platform" = String, Path)),
    responses((status = 200, body = super::LinkStatusView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn channel_status(s: State<AppState>, c: Caller, p: Path<(String, String)>) -> ApiResult<Json<super::LinkStatusView>> {
    super::status(s, c, p).await
}

/// Same as `DELETE /v1/agents/{id}/{platform}/unlink`.
#[utoipa::path(delete, path = "/v1/agent/{id}/{platform}/unlink", tag = "compat", params(("id" = String, Path), ("platform" = String, Path), super::UnlinkQuery),
    responses((status = 200, body = super::UnlinkedView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlink_channel(
    s: State<AppState>,
    c: Caller,
    p: Path<(String, String)>,
    q: ApiQuery<super::UnlinkQuery>,
) -> ApiResult<Json<super::UnlinkedView>> {
    super::unlink(s, c, p, q).await
}

/// Same as `GET /v1/agents/{id}/channels`.
#[utoipa::path(get, path = "/v1/agent/{id}/channels", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, body = List<super::BindingView>), (status = 404, body = ErrorBody)))]
pub async fn list_channels(s: State<AppState>, c: Caller, p: Path<String>) -> ApiResult<Json<List<super::BindingView>>> {
    super::list(s, c, p).await
}
