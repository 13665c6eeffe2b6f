//! Tool sources (§6) and environments (§7).
//!
//! Roles: reads need `viewer`; creating and changing sources and environments needs `editor`,
//! except an `mcp_stdio` source, which starts a program on the server host and therefore needs
//! `owner` (and the operator can turn stdio sources off altogether). Deleting a source is
//! destructive (§9: `steward source delete`) and needs `owner`; deleting an environment is a
//! reversible configuration change (`editor`) and is refused with 409 while an agent uses it.
//!
//! An `integration` source must name a connected account of its own sandbox (another sandbox's
//! account answers exactly like a missing one, as vault references do) whose app offers tools.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use steward_core::environment::{Environment, EnvironmentConfig, Template, templates};
use steward_core::ids::{EnvironmentId, SandboxId, SourceId};
use steward_core::integration::AppTools;
use steward_core::source::{Source, SourceConfig, SourceKind};
use steward_store::StoreError;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{Deleted, Page, page_request, ts, update_with_retry};

/// A tool source. Kind-specific fields appear only for their kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    /// `src_…`
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub description: String,
    /// `mcp_stdio`, `mcp_http`, `builtin` or `integration`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Values are strings or `{"vault_id", "prefix"}` references; secrets never appear.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub env: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, Value>,
    /// `workspace`, `shell` or `http_fetch` (builtin sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toolset: Option<String>,
    /// The connected account, `cac_…` (integration sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub timeout_seconds: u64,
    pub created_at: String,
    pub updated_at: String,
}

fn source_view(s: Source) -> SourceView {
    let c = s.config;
    let refs = |m: BTreeMap<String, steward_core::source::ValueRef>| -> BTreeMap<String, Value> {
        m.into_iter().map(|(k, v)| (k, serde_json::to_value(v).expect("a value ref serializes"))).collect()
    };
    SourceView {
        id: s.id.to_string(),
        sandbox_id: s.sandbox_id.to_string(),
        timeout_seconds: c.timeout_seconds(),
        name: c.name,
        description: c.description,
        kind: c.kind.as_str().into(),
        command: c.command,
        args: c.args,
        env: refs(c.env),
        url: c.url,
        headers: refs(c.headers),
        toolset: c.toolset.map(|t| t.as_str().into()),
        account_id: c.account_id.map(|a| a.to_string()),
        created_at: ts(s.created_at),
        updated_at: ts(s.updated_at),
    }
}

/// Body of `POST /v1/sources` (documentation of the accepted fields).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSource {
    /// A slug unique in the sandbox; it prefixes tool names when two sources offer the same name.
    pub name: String,
    pub description: Option<String>,
    /// `mcp_stdio` (needs `command`), `mcp_http` (needs `url`), `builtin` (needs `toolset`) or
    /// `integration` (needs `account_id`).
    pub kind: String,
    /// `mcp_stdio`: the program (no spaces), e.g. `npx`.
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    /// `mcp_stdio`: variables; a value is a string or `{"vault_id": "vlt_…", "prefix": "…"}`.
    #[schema(value_type = Option<Object>)]
    pub env: Option<Value>,
    /// `mcp_http`: the streamable-HTTP endpoint.
    pub url: Option<String>,
    /// `mcp_http`: headers; a value is a string or `{"vault_id": "vlt_…", "prefix": "Bearer "}`.
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Value>,
    /// `builtin`: `workspace`, `shell` or `http_fetch`.
    pub toolset: Option<String>,
    /// `integration`: a connected account of the sandbox (`cac_…`, see `GET /v1/connected_accounts`)
    /// whose app offers tools.
    pub account_id: Option<String>,
    /// Connect-and-list timeout, 1–120 s (default 10).
    pub timeout_seconds: Option<u64>,
    /// The sandbox (default: `Steward-Sandbox` header, then the key's sandbox).
    pub sandbox_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub sandbox_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn take_sandbox(body: &mut Map<String, Value>) -> ApiResult<Option<String>> {
    match body.remove("sandbox_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid("sandbox_id", "must be a string (`sbx_…`)")),
    }
}

/// The role a source configuration needs to be written.
fn need_for(state: &AppState, config: &SourceConfig) -> ApiResult<Need> {
    if config.kind == SourceKind::McpStdio {
        if !state.config.runtime.tools.allow_stdio_sources {
            return Err(ApiError::forbidden(
                "this server does not allow `mcp_stdio` sources (the operator turned them off); use an `mcp_http` source instead",
            )
            .with_param("kind"));
        }
        return Ok(Need::Owner);
    }
    Ok(Need::Write)
}

/// An `integration` source's account must be a connected account of `sandbox` (any other id
/// answers like a vault reference that is not in the sandbox: 400 naming `account_id`), and its
/// app must offer tools (422).
async fn check_account(state: &AppState, sandbox: &SandboxId, config: &SourceConfig) -> ApiResult<()> {
    let Some(id) = config.account_id.as_ref().filter(|_| config.kind == SourceKind::Integration) else {
        return Ok(());
    };
    let account = state.store.connected_account(id).await?.filter(|a| &a.sandbox_id == sandbox).ok_or_else(|| {
        ApiError::invalid(
            "account_id",
            format!("connected account `{id}` does not exist in this sandbox; GET /v1/connected_accounts lists the accounts you can use"),
        )
    })?;
    let app =
        state.runtime.integrations().app(&account.app_id).map_err(|e| ApiError::unprocessable(e.to_string()).with_param("account_id"))?;
    if app.tools == AppTools::None {
        return Err(ApiError::unprocessable(format!(
            "{} offers no tools (it only sends events to triggers), so account `{id}` cannot be a tool source",
            app.display_name
        ))
        .with_param("account_id"));
    }
    Ok(())
}

fn store_error(e: StoreError, param: &str) -> ApiError {
    match e {
        StoreError::MissingReference(m) => ApiError::invalid(param, m),
        StoreError::Duplicate(_) => ApiError::from(e).with_param("name"),
        other => other.into(),
    }
}

async fn load_source(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<Source> {
    let id = SourceId::parse(raw, "id")?;
    let source = state.store.source(&id).await?.ok_or_else(|| ApiError::not_found("source", raw))?;
    caller.authorize_resource(state, &source.sandbox_id, need, "source", raw).await?;
    Ok(source)
}

/// Sources of a sandbox, newest first.
#[utoipa::path(get, path = "/v1/sources", tag = "sources", params(ListQuery),
    responses((status = 200, body = Page<SourceView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_sources(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<SourceView>>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(Json(Page::from_listing(state.store.sources(&sandbox, &page).await?, source_view)))
}

/// Adds a tool source. Vault references must name vaults of the same sandbox. An `mcp_stdio`
/// source needs `owner` (it starts a program on the server host).
#[utoipa::path(post, path = "/v1/sources", tag = "sources", request_body = CreateSource,
    responses((status = 201, body = SourceView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_source(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<SourceView>)> {
    let sandbox = caller.target_sandbox(&state, take_sandbox(&mut body)?.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let config = SourceConfig::from_json(Value::Object(body))?;
    caller.authorize(&state, &sandbox, need_for(&state, &config)?).await?;
    check_account(&state, &sandbox, &config).await?;
    let created = state.store.create_source(&sandbox, config).await.map_err(|e| store_error(e, "env"))?;
    Ok((StatusCode::CREATED, Json(source_view(created))))
}

/// One source.
#[utoipa::path(get, path = "/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "`src_…`")),
    responses((status = 200, body = SourceView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_source(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SourceView>> {
    Ok(Json(source_view(load_source(&state, &caller, &id, Need::Read).await?)))
}

/// Partial update: the fields present replace the current ones, `null` clears an optional one;
/// the result is validated as a whole. Pooled connections pick the change up on the next run.
#[utoipa::path(patch, path = "/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "`src_…`")), request_body = CreateSource,
    responses((status = 200, body = SourceView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_source(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<SourceView>> {
    let current = load_source(&state, &caller, &id, Need::Write).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("nothing to update: send the fields to change, e.g. {\"args\": [\"…\"]}"));
    }
    if body.contains_key("sandbox_id") {
        return Err(ApiError::invalid("sandbox_id", "a source cannot move to another sandbox; create it there instead"));
    }
    let (state, caller, id, body) = (&state, &caller, &id, &body);
    let updated = update_with_retry(
        format!("source `{id}`"),
        current,
        || load_source(state, caller, id, Need::Write),
        |current| async move {
            let next = current.config.patched(body)?;
            // Turning a source into (or changing) a stdio source needs what creating one needs.
            caller.authorize(state, &current.sandbox_id, need_for(state, &next)?).await?;
            if current.config.kind == SourceKind::McpStdio {
                caller.authorize(state, &current.sandbox_id, need_for(state, &current.config)?).await?;
            }
            if next == current.config {
                return Ok(Ok(current));
            }
            // A new account reference is checked; one already stored may have been disconnected
            // since, which resolution reports, and must not block renaming the source.
            if next.kind != current.config.kind || next.account_id != current.config.account_id {
                check_account(state, &current.sandbox_id, &next).await?;
            }
            Ok(state.store.update_source(&current, next).await)
        },
        |e| store_error(e, "env"),
    )
    .await?;
    Ok(Json(source_view(updated)))
}

/// Deletes a source (owner only, §9: `steward source delete`). Agents that list it keep
/// running; their resolution trace says the source is gone.
#[utoipa::path(delete, path = "/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "`src_…`")),
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_source(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let source = load_source(&state, &caller, &id, Need::Owner).await?;
    state.store.delete_source(&source.id).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found("source", &id),
        other => other.into(),
    })?;
    state.runtime.forget_source(&source.id).await;
    Ok(Json(Deleted { id: source.id.to_string(), deleted: true }))
}

/// An environment.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvironmentView {
    /// `env_…`
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub description: String,
    pub packages: Vec<String>,
    /// Values are strings or `{"vault_id", "prefix"}` references.
    #[schema(value_type = Object)]
    pub env: Value,
    /// `"none"`, `"open"` or `{"allowlist": ["host", "*.host", "host:port"]}`.
    #[schema(value_type = crate::routes::NetworkPolicy)]
    pub network: Value,
    /// `{cpu_seconds, memory_mb, max_processes, timeout_seconds}`
    #[schema(value_type = Object)]
    pub limits: Value,
    pub created_at: String,
    pub updated_at: String,
}

fn environment_view(e: Environment) -> EnvironmentView {
    let c = e.config;
    EnvironmentView {
        id: e.id.to_string(),
        sandbox_id: e.sandbox_id.to_string(),
        name: c.name,
        description: c.description,
        packages: c.packages,
        env: serde_json::to_value(c.env).expect("env serializes"),
        network: serde_json::to_value(c.network).expect("network serializes"),
        limits: serde_json::to_value(c.limits).expect("limits serialize"),
        created_at: ts(e.created_at),
        updated_at: ts(e.updated_at),
    }
}

/// Body of `POST /v1/environments`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateEnvironment {
    /// A slug unique in the sandbox.
    pub name: String,
    /// Start from this template (`GET /v1/environments/templates`); the other fields override it.
    pub template: Option<String>,
    pub description: Option<String>,
    pub packages: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub env: Option<Value>,
    /// `"none"` (default), `"open"` or `{"allowlist": [...]}`.
    #[schema(value_type = Option<crate::routes::NetworkPolicy>)]
    pub network: Option<Value>,
    /// `{cpu_seconds, memory_mb, max_processes, timeout_seconds}`; missing keys take defaults.
    #[schema(value_type = Option<Object>)]
    pub limits: Option<Value>,
    pub sandbox_id: Option<String>,
}

/// The environment templates.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub id: String,
    pub description: String,
    /// The configuration it starts from.
    #[schema(value_type = Object)]
    pub config: Value,
}

fn template_view(t: Template) -> TemplateView {
    TemplateView { id: t.id.into(), description: t.description.into(), config: serde_json::to_value(t.config).expect("config serializes") }
}

/// Shipped environment templates.
#[utoipa::path(get, path = "/v1/environments/templates", tag = "environments",
    responses((status = 200, body = Vec<TemplateView>), (status = 401, body = ErrorBody)))]
pub async fn environment_templates(caller: Caller) -> ApiResult<Json<Vec<TemplateView>>> {
    caller.require_account_credential()?;
    Ok(Json(templates().into_iter().map(template_view).collect()))
}

async fn load_environment(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<Environment> {
    let id = EnvironmentId::parse(raw, "id")?;
    let env = state.store.environment(&id).await?.ok_or_else(|| ApiError::not_found("environment", raw))?;
    caller.authorize_resource(state, &env.sandbox_id, need, "environment", raw).await?;
    Ok(env)
}

/// Environments of a sandbox, newest first.
#[utoipa::path(get, path = "/v1/environments", tag = "environments", params(ListQuery),
    responses((status = 200, body = Page<EnvironmentView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_environments(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<EnvironmentView>>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(Json(Page::from_listing(state.store.environments(&sandbox, &page).await?, environment_view)))
}

/// Creates an environment, optionally from a template.
#[utoipa::path(post, path = "/v1/environments", tag = "environments", request_body = CreateEnvironment,
    responses((status = 201, body = EnvironmentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_environment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<EnvironmentView>)> {
    let sandbox: SandboxId = caller.target_sandbox(&state, take_sandbox(&mut body)?.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Write).await?;
    let config = match body.remove("template") {
        None | Some(Value::Null) => EnvironmentConfig::from_json(Value::Object(body))?,
        Some(Value::String(t)) => {
            let template = templates().into_iter().find(|x| x.id == t).ok_or_else(|| {
                let names: Vec<&str> = templates().iter().map(|x| x.id).collect();
                ApiError::invalid(
                    "template",
                    format!("there is no template `{}`; use one of: {}", steward_core::ids::shorten(&t), names.join(", ")),
                )
            })?;
            template.config.patched(&body)?
        }
        Some(_) => return Err(ApiError::invalid("template", "must be a template id string, e.g. \"python\"")),
    };
    let created = state.store.create_environment(&sandbox, config).await.map_err(|e| store_error(e, "env"))?;
    Ok((StatusCode::CREATED, Json(environment_view(created))))
}

/// One environment.
#[utoipa::path(get, path = "/v1/environments/{id}", tag = "environments", params(("id" = String, Path, description = "`env_…`")),
    responses((status = 200, body = EnvironmentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_environment(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<EnvironmentView>> {
    Ok(Json(environment_view(load_environment(&state, &caller, &id, Need::Read).await?)))
}

/// Partial update (top-level keys replace; `null` resets to the default). Running commands keep
/// the policy they started with; the next tool call uses the new one.
#[utoipa::path(patch, path = "/v1/environments/{id}", tag = "environments", params(("id" = String, Path, description = "`env_…`")), request_body = CreateEnvironment,
    responses((status = 200, body = EnvironmentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<EnvironmentView>> {
    let current = load_environment(&state, &caller, &id, Need::Write).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("nothing to update: send the fields to change, e.g. {\"network\": \"open\"}"));
    }
    for key in ["sandbox_id", "template"] {
        if body.contains_key(key) {
            return Err(ApiError::invalid(key, format!("`{key}` cannot be changed on an existing environment")));
        }
    }
    let (state, caller, id, body) = (&state, &caller, &id, &body);
    let updated = update_with_retry(
        format!("environment `{id}`"),
        current,
        || load_environment(state, caller, id, Need::Write),
        |current| async move {
            let next = current.config.patched(body)?;
            if next == current.config {
                return Ok(Ok(current));
            }
            Ok(state.store.update_environment(&current, next).await)
        },
        |e| store_error(e, "env"),
    )
    .await?;
    Ok(Json(environment_view(updated)))
}

/// Deletes an environment; 409 while a live agent uses it. Workspaces are not touched (they
/// belong to agents).
#[utoipa::path(delete, path = "/v1/environments/{id}", tag = "environments", params(("id" = String, Path, description = "`env_…`")),
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_environment(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let env = load_environment(&state, &caller, &id, Need::Write).await?;
    state.store.delete_environment(&env).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found("environment", &id),
        other => other.into(),
    })?;
    Ok(Json(Deleted { id: env.id.to_string(), deleted: true }))
}
