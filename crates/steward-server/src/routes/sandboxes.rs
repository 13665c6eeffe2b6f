//! Sandboxes (§1) and the grants that share them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use steward_core::ids::{AccountId, SandboxId};
use steward_core::tenancy::{Email, Grant, Role, Sandbox, sandbox_name};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{Deleted, Page, page_request, ts};

/// A sandbox, with the caller's role in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxView {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    /// The caller's role: `owner`, `editor` or `viewer`.
    pub role: String,
    pub created_at: String,
    pub archived_at: Option<String>,
    /// IANA zone of local times given without one (a pause until `09:00`).
    pub time_zone: String,
}

fn view(s: Sandbox, role: Role) -> SandboxView {
    SandboxView {
        id: s.id.to_string(),
        name: s.name,
        owner_id: s.owner_id.to_string(),
        role: role.as_str().into(),
        created_at: ts(s.created_at),
        archived_at: s.archived_at.map(ts),
        time_zone: s.time_zone,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListSandboxes {
    /// List archived sandboxes instead of live ones.
    pub archived: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The sandboxes the caller has a role in.
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes", params(ListSandboxes),
    responses((status = 200, body = Page<SandboxView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListSandboxes>,
) -> ApiResult<Json<Page<SandboxView>>> {
    caller.require_account_credential()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let listing = state.store.sandboxes_of(&caller.account_id, q.archived.unwrap_or(false), &page).await?;
    Ok(Json(Page::from_listing(listing, |s| view(s.sandbox, s.role))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// Display name, 1–100 characters.
    pub name: String,
}

/// Creates a sandbox owned by the caller.
#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", request_body = CreateSandbox,
    responses((status = 201, body = SandboxView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateSandbox>,
) -> ApiResult<(StatusCode, Json<SandboxView>)> {
    caller.require_account_credential()?;
    let name = sandbox_name(&body.name, "name")?;
    let sandbox = state.store.create_sandbox(&caller.account_id, &name).await?;
    Ok((StatusCode::CREATED, Json(view(sandbox, Role::Owner))))
}

/// Parses the `{id}` of a sandbox route and checks the caller may do `need` there.
async fn authorized(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<(Sandbox, Role)> {
    let id = SandboxId::parse(raw, "id")?;
    let role = caller.authorize(state, &id, need).await?;
    let sandbox = state.store.sandbox(&id).await?.ok_or_else(|| ApiError::not_found("sandbox", raw))?;
    Ok((sandbox, role))
}

/// One sandbox.
#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path, description = "sandbox id (`sbx_…`)")),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SandboxView>> {
    let (sandbox, role) = authorized(&state, &caller, &id, Need::Read).await?;
    Ok(Json(view(sandbox, role)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSandbox {
    pub name: Option<String>,
    /// An IANA time zone such as `Europe/Berlin`: local times given without a zone are read in it.
    pub time_zone: Option<String>,
}

/// Renames a sandbox.
#[utoipa::path(patch, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)), request_body = UpdateSandbox,
    responses((status = 200, body = SandboxView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateSandbox>,
) -> ApiResult<Json<SandboxView>> {
    let (mut sandbox, role) = authorized(&state, &caller, &id, Need::Write).await?;
    // Everything is checked before anything is written.
    let name = body.name.as_deref().map(|n| sandbox_name(n, "name")).transpose()?;
    let zone = match body.time_zone.as_deref() {
        None => None,
        Some(z) => {
            Some(steward_core::schedule::check_timezone(z).map_err(|e| ApiError::invalid("time_zone", e.message))?.name().to_owned())
        }
    };
    if let Some(name) = name {
        sandbox = state.store.rename_sandbox(&sandbox.id, &name).await?;
    }
    if let Some(zone) = zone {
        sandbox = state.store.set_sandbox_time_zone(&sandbox.id, &zone).await?;
    }
    Ok(Json(view(sandbox, role)))
}

/// Archives a sandbox: it becomes read-only. Owner only (§9).
#[utoipa::path(post, path = "/v1/sandboxes/{id}/archive", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn archive(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SandboxView>> {
    let (sandbox, role) = authorized(&state, &caller, &id, Need::Owner).await?;
    let sandbox = state.store.archive_sandbox(&sandbox.id).await?;
    Ok(Json(view(sandbox, role)))
}

/// Destroys a sandbox and everything in it. Irreversible; owner only (§9).
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn destroy(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let (sandbox, _) = authorized(&state, &caller, &id, Need::Owner).await?;
    state.store.destroy_sandbox(&sandbox.id).await?;
    Ok(Json(Deleted { id: sandbox.id.to_string(), deleted: true }))
}

/// An account's role in a sandbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub sandbox_id: String,
    pub account_id: String,
    pub email: String,
    pub role: String,
    pub created_at: String,
}

fn grant_view(g: Grant) -> GrantView {
    GrantView {
        sandbox_id: g.sandbox_id.to_string(),
        account_id: g.account_id.to_string(),
        email: g.email.as_str().into(),
        role: g.role.as_str().into(),
        created_at: ts(g.created_at),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListGrants {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Who has access to a sandbox.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/grants", tag = "sandboxes", params(("id" = String, Path), ListGrants),
    responses((status = 200, body = Page<GrantView>), (status = 404, body = ErrorBody)))]
pub async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListGrants>,
) -> ApiResult<Json<Page<GrantView>>> {
    let (sandbox, _) = authorized(&state, &caller, &id, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(Json(Page::from_listing(state.store.grants(&sandbox.id, &page).await?, grant_view)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// The person to share with. An account is created for a new address, so they can log in.
    pub email: String,
    /// `editor` or `viewer`.
    pub role: String,
}

/// Shares a sandbox with an account (or changes its role). Owner only.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/grants", tag = "sandboxes", params(("id" = String, Path)), request_body = CreateGrant,
    responses((status = 201, body = GrantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let (sandbox, _) = authorized(&state, &caller, &id, Need::Owner).await?;
    let email = Email::parse(&body.email, "email")?;
    let role: Role = body.role.parse()?;
    if role == Role::Owner {
        return Err(ApiError::invalid("role", "a sandbox has exactly one owner; grant `editor` or `viewer`"));
    }
    let account = state.store.ensure_account(&email).await?;
    let grant = state.store.put_grant(&sandbox.id, &account.id, role).await?;
    Ok((StatusCode::CREATED, Json(grant_view(grant))))
}

/// Removes an account's access. Owner only.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/grants/{account_id}", tag = "sandboxes", params(("id" = String, Path), ("account_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, account_id)): Path<(String, String)>,
) -> ApiResult<Json<Deleted>> {
    let (sandbox, _) = authorized(&state, &caller, &id, Need::Owner).await?;
    let account = AccountId::parse(&account_id, "account_id")?;
    match state.store.remove_grant(&sandbox.id, &account).await {
        Err(steward_store::StoreError::NotFound(_)) => Err(ApiError::not_found("grant for account", account.as_str())),
        other => {
            other?;
            Ok(Json(Deleted { id: account.to_string(), deleted: true }))
        }
    }
}
