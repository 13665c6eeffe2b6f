//! Model providers (§8): `{id, provider, base_url, api_key_vault_id, models}` per sandbox.
//! `{id}` in paths is the provider's slug, resolved in the caller's target sandbox
//! (`sandbox_id` query parameter, else the `Steward-Sandbox` header, else the key's sandbox), so
//! a caller without access to that sandbox gets the same 404 as for a missing provider.
//!
//! Reads need `viewer`; create, update and delete need `editor`: a provider is configuration
//! that can be re-created exactly as it was (the API key stays in its vault), so deleting one is
//! a reversible change, unlike deleting a vault.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use steward_core::ids::VaultId;
use steward_core::provider::{Provider, ProviderConfig, ProviderId, ProviderKind, ProviderPatch};
use steward_store::StoreError;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::extract::{not_null, present};
use crate::routes::{Deleted, Page, page_request, ts, update_with_retry};

/// A model provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    /// The slug agents name in `model.provider_id`.
    pub id: String,
    /// `anthropic`, `openai`, `google` or `openai_compatible`.
    pub provider: String,
    pub base_url: String,
    /// The vault holding the API key (`vlt_…`), or `null`.
    pub api_key_vault_id: Option<String>,
    pub models: Vec<String>,
    pub sandbox_id: String,
    pub created_at: String,
    pub updated_at: String,
}

fn view(p: Provider) -> ProviderView {
    ProviderView {
        id: p.id.to_string(),
        provider: p.config.kind.as_str().into(),
        base_url: p.config.base_url,
        api_key_vault_id: p.config.api_key_vault_id.map(|v| v.to_string()),
        models: p.config.models,
        sandbox_id: p.sandbox_id.to_string(),
        created_at: ts(p.created_at),
        updated_at: ts(p.updated_at),
    }
}

/// Which sandbox a provider path refers to.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InSandbox {
    /// Default: the `Steward-Sandbox` header, then the key's sandbox.
    pub sandbox_id: Option<String>,
}

/// Loads provider `raw` of the caller's target sandbox, checking the caller may do `need`.
async fn load(state: &AppState, caller: &Caller, raw: &str, sandbox: Option<&str>, need: Need) -> ApiResult<Provider> {
    let id = ProviderId::parse(raw, "id")?;
    let sandbox = caller.target_sandbox(state, sandbox).await?;
    caller.authorize_resource(state, &sandbox, need, "provider", raw).await?;
    state.store.provider(&sandbox, &id).await?.ok_or_else(|| ApiError::not_found("provider", raw))
}

fn parse_vault(raw: Option<String>) -> ApiResult<Option<VaultId>> {
    Ok(raw.map(|v| VaultId::parse(&v, "api_key_vault_id")).transpose()?)
}

/// Store errors of create/update: a vault outside the sandbox looks exactly like a missing one.
fn write_error(e: StoreError, vault: Option<&VaultId>) -> ApiError {
    match e {
        StoreError::NotFound("vault") => {
            ApiError::not_found("vault", vault.map(VaultId::as_str).unwrap_or_default()).with_param("api_key_vault_id")
        }
        StoreError::Duplicate(_) => ApiError::from(e).with_param("id"),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListProviders {
    pub sandbox_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Providers of a sandbox, by id.
#[utoipa::path(get, path = "/v1/providers", tag = "providers", params(ListProviders),
    responses((status = 200, body = Page<ProviderView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListProviders>,
) -> ApiResult<Json<Page<ProviderView>>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(Json(Page::from_listing(state.store.providers(&sandbox, &page).await?, view)))
}

/// Body of `POST /v1/providers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    /// A slug unique in the sandbox (e.g. `anthropic`, `local-vllm`); default: a new `prv_…` id.
    pub id: Option<String>,
    /// `anthropic`, `openai`, `google` or `openai_compatible`.
    pub provider: String,
    /// Default: the provider's public API (`https://api.anthropic.com`,
    /// `https://api.openai.com/v1`, `https://generativelanguage.googleapis.com/v1beta`);
    /// required for `openai_compatible`. No credentials, query or fragment.
    pub base_url: Option<String>,
    /// A vault of the same sandbox holding the API key.
    pub api_key_vault_id: Option<String>,
    /// The model names agents may use with it: 1–100, no duplicates.
    #[serde(default)]
    pub models: Vec<String>,
    /// The sandbox to create it in (default: `Steward-Sandbox` header, then the key's sandbox).
    pub sandbox_id: Option<String>,
}

/// Adds a model provider.
#[utoipa::path(post, path = "/v1/providers", tag = "providers", request_body = CreateProvider,
    responses((status = 201, body = ProviderView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateProvider>,
) -> ApiResult<(StatusCode, Json<ProviderView>)> {
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Write).await?;
    let id = match body.id {
        Some(raw) => ProviderId::parse(&raw, "id")?,
        None => ProviderId::generate(),
    };
    let kind: ProviderKind = body.provider.parse()?;
    let vault = parse_vault(body.api_key_vault_id)?;
    let config = ProviderConfig::new(kind, body.base_url, vault.clone(), body.models)?;
    let created = state.store.create_provider(&sandbox, &id, config).await.map_err(|e| write_error(e, vault.as_ref()))?;
    Ok((StatusCode::CREATED, Json(view(created))))
}

/// One provider.
#[utoipa::path(get, path = "/v1/providers/{id}", tag = "providers", params(("id" = String, Path, description = "provider id (a slug)"), InSandbox),
    responses((status = 200, body = ProviderView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InSandbox>,
) -> ApiResult<Json<ProviderView>> {
    Ok(Json(view(load(&state, &caller, &id, q.sandbox_id.as_deref(), Need::Read).await?)))
}

/// Body of `PATCH /v1/providers/{id}`: only the fields present change. The id cannot change
/// (agents refer to it); create a new provider instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProvider {
    /// Changing the kind without a `base_url` moves a default URL to the new kind's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub provider: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub base_url: Option<Option<String>>,
    /// `null` removes the API key reference.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub api_key_vault_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub models: Option<Option<Vec<String>>>,
}

impl UpdateProvider {
    fn into_patch(self) -> ApiResult<ProviderPatch> {
        Ok(ProviderPatch {
            kind: not_null(self.provider, "provider")?.map(|k| k.parse()).transpose()?,
            base_url: not_null(self.base_url, "base_url")?,
            api_key_vault_id: self.api_key_vault_id.map(parse_vault).transpose()?,
            models: not_null(self.models, "models")?,
        })
    }
}

/// Changes a provider's kind, URL, API-key vault or models. Agents pick the change up on their
/// next model call.
#[utoipa::path(patch, path = "/v1/providers/{id}", tag = "providers", params(("id" = String, Path, description = "provider id (a slug)"), InSandbox), request_body = UpdateProvider,
    responses((status = 200, body = ProviderView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InSandbox>,
    ApiJson(body): ApiJson<UpdateProvider>,
) -> ApiResult<Json<ProviderView>> {
    // Authorize before looking at the body, so a stranger learns nothing from validation.
    let first = load(&state, &caller, &id, q.sandbox_id.as_deref(), Need::Write).await?;
    let patch = body.into_patch()?;
    if patch.is_empty() {
        return Err(ApiError::bad_request("nothing to update: send `provider`, `base_url`, `api_key_vault_id` or `models`"));
    }
    // Compare-and-set on `updated_at`; a concurrent writer makes us re-read and re-apply.
    let (state, caller, id, patch, sandbox) = (&state, &caller, &id, &patch, q.sandbox_id.as_deref());
    let updated = update_with_retry(
        format!("provider `{id}`"),
        first,
        || load(state, caller, id, sandbox, Need::Write),
        |current| async move {
            let next = current.config.patched(patch.clone())?;
            if next == current.config {
                return Ok(Ok(current));
            }
            let vault = next.api_key_vault_id.clone();
            match state.store.update_provider(&current, next).await {
                Err(e @ StoreError::NotFound(_)) => Err(write_error(e, vault.as_ref())),
                written => Ok(written),
            }
        },
        |e| write_error(e, None),
    )
    .await?;
    Ok(Json(view(updated)))
}

/// Deletes a provider. Agents that name it fail their next run until it is re-created or they
/// are pointed at another one. `editor` suffices: the provider can be re-created as it was.
#[utoipa::path(delete, path = "/v1/providers/{id}", tag = "providers", params(("id" = String, Path, description = "provider id (a slug)"), InSandbox),
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InSandbox>,
) -> ApiResult<Json<Deleted>> {
    let provider = load(&state, &caller, &id, q.sandbox_id.as_deref(), Need::Write).await?;
    state.store.delete_provider(&provider.sandbox_id, &provider.id).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found("provider", &id),
        other => other.into(),
    })?;
    Ok(Json(Deleted { id: provider.id.to_string(), deleted: true }))
}
