//! §14 compatibility paths of the §4 messaging surface, for clients written against the per-agent REST style
//! (`/v1/agent/…`). Each is a one-line forward to its handler in the parent module; it exists as
//! its own function only so the OpenAPI document (generated per handler) lists the path.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

/// Same as `POST /v1/agents/{id}/messages`.
#[utoipa::path(post, path = "/v1/agent/{id}/messages", tag = "compat", params(("id" = String, Path)), request_body = super::SendMessage,
    responses((status = 200, body = super::MessageReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn send_message(
    s: State<AppState>,
    c: Caller,
    h: axum::http::HeaderMap,
    p: Path<String>,
    b: ApiJson<super::SendMessage>,
) -> ApiResult<(StatusCode, Json<super::MessageReply>)> {
    super::send(s, c, h, p, b).await
}

/// Same as `GET /v1/agents/{id}/messages`.
#[utoipa::path(get, path = "/v1/agent/{id}/messages", tag = "compat", params(("id" = String, Path), super::ReadMessages),
    responses((status = 200, body = super::MessagesView), (status = 404, body = ErrorBody)))]
pub async fn read_messages(
    s: State<AppState>,
    c: Caller,
    h: axum::http::HeaderMap,
    p: Path<String>,
    q: ApiQuery<super::ReadMessages>,
) -> ApiResult<Json<super::MessagesView>> {
    super::read(s, c, h, p, q).await
}

/// Same as `GET /v1/agents/{id}/conversations`.
#[utoipa::path(get, path = "/v1/agent/{id}/conversations", tag = "compat", params(("id" = String, Path), crate::views::EndUserQuery),
    responses((status = 200, body = super::ConversationsView), (status = 404, body = ErrorBody)))]
pub async fn conversations(
    s: State<AppState>,
    c: Caller,
    h: axum::http::HeaderMap,
    p: Path<String>,
    q: ApiQuery<crate::views::EndUserQuery>,
) -> ApiResult<Json<super::ConversationsView>> {
    super::conversations(s, c, h, p, q).await
}
