//! Runs (§4): listing, one run, and its trace (model calls, tool calls, tool resolution).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_core::ids::{AgentId, RunId, SessionId};
use steward_core::session::{Run, RunStatus};
use steward_store::RunFilter;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::access::load_session;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::routes::{Page, page_request};
use crate::views::{END_USER_HEADER, EndUserQuery, RunView, run_view};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRuns {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub status: Option<String>,
    /// RFC 3339; only runs created at or after it.
    pub since: Option<String>,
    pub sandbox_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListRuns),
    responses((status = 200, body = Page<RunView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListRuns>) -> ApiResult<Json<Page<RunView>>> {
    caller.require_account_credential()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let since = match &q.since {
        None => None,
        Some(raw) => Some(
            chrono::DateTime::parse_from_rfc3339(raw)
                .map_err(|_| ApiError::invalid("since", "use an RFC 3339 time like 2026-11-23T09:00:00Z"))?
                .timestamp_millis(),
        ),
    };
    let filter = RunFilter {
        agent_id: q.agent_id.as_deref().map(|a| AgentId::parse(a, "agent_id")).transpose()?,
        session_id: q.session_id.as_deref().map(|s| SessionId::parse(s, "session_id")).transpose()?,
        status: q.status.as_deref().map(str::parse::<RunStatus>).transpose()?,
        since,
        viewer: Some(caller.account_id.clone()),
    };
    Ok(Json(Page::from_listing(state.store.runs(&sandbox, &filter, &page).await?, run_view)))
}

async fn load(state: &AppState, caller: &Caller, headers: &HeaderMap, raw: &str, end_user: Option<String>) -> ApiResult<Run> {
    let id = RunId::parse(raw, "id")?;
    let run = state.store.run(&id).await?.ok_or_else(|| ApiError::not_found("run", raw))?;
    let end_user = end_user.or_else(|| headers.get(END_USER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned));
    // Access to a run is access to its session.
    load_session(state, caller, run.session_id.as_str(), Need::Read, end_user.as_deref())
        .await
        .map_err(|e| if e.status == axum::http::StatusCode::NOT_FOUND { ApiError::not_found("run", raw) } else { e })?;
    Ok(run)
}

/// One run.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path), EndUserQuery),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<RunView>> {
    Ok(Json(run_view(load(&state, &caller, &headers, &id, q.end_user).await?)))
}

/// A run's trace.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceView {
    pub run: RunView,
    /// `model` and `agent_version`; `tool_resolution` (per source: connected, offered, kept;
    /// allowlist names that matched nothing; the final catalog); every `model_calls` entry
    /// (turn, duration, tokens, stop reason, error) and `tool_calls` entry (arguments, result,
    /// error, duration).
    #[schema(value_type = Object)]
    pub trace: Value,
}

/// Everything a run did.
#[utoipa::path(get, path = "/v1/runs/{id}/trace", tag = "runs", params(("id" = String, Path), EndUserQuery),
    responses((status = 200, body = TraceView), (status = 404, body = ErrorBody)))]
pub async fn trace(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<TraceView>> {
    let run = load(&state, &caller, &headers, &id, q.end_user).await?;
    let trace = run.trace.clone();
    Ok(Json(TraceView { run: run_view(run), trace }))
}
