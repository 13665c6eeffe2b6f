//! An agent's workspace over HTTP (§7), and the dry tool resolution (§6).
//!
//! Paths are relative to the workspace; `..`, absolute paths, NUL bytes, over-long paths and
//! symlinks are refused by the workspace itself (`steward_runtime::workspace`), with §2 errors
//! naming `path`. Reads need `viewer`; writes, deletes and moves need `editor`. Agent keys reach
//! none of it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_core::agent::Agent;
use steward_runtime::workspace::{FsError, Workspace};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::access::load_agent as load;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

/// Largest file written through `PUT …/files/content`.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Largest file read through `GET …/files/content`.
pub const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;

fn fs_error(e: FsError) -> ApiError {
    let msg = e.to_string();
    match e {
        FsError::BadPath { .. }
        | FsError::NotAFile(_)
        | FsError::NotADirectory(_)
        | FsError::NotUtf8(_)
        | FsError::EditMismatch { .. }
        | FsError::EmptyEdit(_) => ApiError::invalid("path", msg),
        FsError::NotFound(_) => ApiError::not_found_message(msg),
        FsError::AlreadyExists(_) | FsError::NotEmpty(_) => ApiError::conflict(msg),
        FsError::TooLarge { .. } => ApiError::too_large(msg),
        FsError::Io(_) => ApiError::internal(msg),
    }
}

async fn workspace(state: &AppState, caller: &Caller, id: &str, need: Need) -> ApiResult<(Agent, Workspace)> {
    let agent = load(state, caller, id, need).await?;
    let ws = state.runtime.workspace(&agent.sandbox_id, &agent.id).map_err(ApiError::internal)?;
    Ok((agent, ws))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    /// Relative to the workspace root; empty or `.` is the root (for listing).
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    pub path: String,
    /// Needed to delete a non-empty directory.
    #[serde(default)]
    pub recursive: bool,
}

/// One directory entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileEntry {
    /// Relative to the workspace root.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: String,
    pub size: u64,
    pub modified_at: String,
}

/// A directory listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub path: String,
    pub data: Vec<FileEntry>,
}

/// Lists one directory of the agent's workspace.
#[utoipa::path(get, path = "/v1/agents/{id}/files", tag = "files", params(("id" = String, Path), PathQuery),
    responses((status = 200, body = FileList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> ApiResult<Json<FileList>> {
    let (_, ws) = workspace(&state, &caller, &id, Need::Read).await?;
    let entries = ws.list(&q.path).await.map_err(fs_error)?;
    let data = entries
        .into_iter()
        .map(|e| FileEntry {
            path: e.path,
            kind: format!("{:?}", e.kind).to_lowercase(),
            size: e.size,
            modified_at: super::ts(e.modified_ms),
        })
        .collect();
    Ok(Json(FileList { path: q.path, data }))
}

/// Reads a file (raw bytes, `application/octet-stream`).
#[utoipa::path(get, path = "/v1/agents/{id}/files/content", tag = "files", params(("id" = String, Path), PathQuery),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> ApiResult<Response> {
    let (_, ws) = workspace(&state, &caller, &id, Need::Read).await?;
    let bytes = ws.read(&q.path, MAX_READ_BYTES).await.map_err(fs_error)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// The result of a write.
#[derive(Debug, Serialize, ToSchema)]
pub struct Written {
    pub path: String,
    pub size: u64,
}

/// Creates or replaces a file with the request body (raw bytes, at most 16 MiB); parent
/// directories are created.
#[utoipa::path(put, path = "/v1/agents/{id}/files/content", tag = "files", params(("id" = String, Path), PathQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Written), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn write(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
    body: Body,
) -> ApiResult<Json<Written>> {
    let (_, ws) = workspace(&state, &caller, &id, Need::Write).await?;
    // Validate the path before reading a byte of the body.
    ws.resolve(&q.path).map_err(fs_error)?;
    let mut buf = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("the request body could not be read: {e}")))?;
        if buf.len() + chunk.len() > MAX_FILE_BYTES {
            return Err(ApiError::too_large(format!("the file is larger than the {} MiB limit", MAX_FILE_BYTES / (1024 * 1024))));
        }
        buf.extend_from_slice(&chunk);
    }
    ws.write(&q.path, &buf).await.map_err(fs_error)?;
    Ok(Json(Written { path: q.path, size: buf.len() as u64 }))
}

/// The result of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileDeleted {
    pub path: String,
    pub deleted: bool,
}

/// Deletes a file, or a directory (`recursive=true` when it is not empty).
#[utoipa::path(delete, path = "/v1/agents/{id}/files", tag = "files", params(("id" = String, Path), DeleteQuery),
    responses((status = 200, body = FileDeleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<Json<FileDeleted>> {
    let (_, ws) = workspace(&state, &caller, &id, Need::Write).await?;
    ws.delete(&q.path, q.recursive).await.map_err(fs_error)?;
    Ok(Json(FileDeleted { path: q.path, deleted: true }))
}

/// Body of `POST /v1/agents/{id}/files/move`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveFile {
    pub from: String,
    /// Must not exist yet.
    pub to: String,
}

/// Moves or renames a file or directory inside the workspace.
#[utoipa::path(post, path = "/v1/agents/{id}/files/move", tag = "files", params(("id" = String, Path)), request_body = MoveFile,
    responses((status = 200, body = MoveFile), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MoveFile>,
) -> ApiResult<Json<Value>> {
    let (_, ws) = workspace(&state, &caller, &id, Need::Write).await?;
    ws.rename(&body.from, &body.to).await.map_err(|e| match fs_error(e) {
        err if err.status == StatusCode::BAD_REQUEST => err.with_param("from/to"),
        err => err,
    })?;
    Ok(Json(serde_json::json!({"from": body.from, "to": body.to, "moved": true})))
}

/// What an agent would get as tools now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolsView {
    /// The catalog given to the model: name, description, input schema.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    /// The tool resolution trace (§6): per source connected or the error, offered, kept,
    /// unmatched allowlist names, and the final catalog with each exposed name's source.
    #[schema(value_type = Object)]
    pub trace: Value,
}

/// A dry tool resolution of the agent's current version: connects its sources, lists their
/// tools and applies the allowlist, exactly as a run would.
#[utoipa::path(get, path = "/v1/agents/{id}/tools", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = ToolsView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn tools(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ToolsView>> {
    let agent = load(&state, &caller, &id, Need::Read).await?;
    let resolution = state.runtime.resolve_tools(&agent.sandbox_id, &agent.id, &agent.config).await?;
    let tools = resolution
        .catalog
        .specs()
        .into_iter()
        .map(|s| serde_json::json!({"name": s.name, "description": s.description, "input_schema": s.input_schema}))
        .collect();
    Ok(Json(ToolsView { tools, trace: resolution.trace }))
}
