//! API keys (§1): minted per sandbox, plaintext shown once, listed without value, revoked by
//! an owner with immediate effect (every request looks the key up).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use steward_core::ids::{AgentId, ApiKeyId};
use steward_core::keys;
use steward_core::tenancy::{ApiKey, KeyKind, key_name};
use steward_store::NewApiKey;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{NoReplay, Page, page_request, ts};

/// A key as listed: never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// `account`, `agent_invoke` or `agent_delegate`.
    pub kind: String,
    pub sandbox_id: String,
    pub account_id: String,
    pub agent_id: Option<String>,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

fn view(k: ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: k.id.to_string(),
        name: k.name,
        kind: k.kind.as_str().into(),
        sandbox_id: k.sandbox_id.to_string(),
        account_id: k.account_id.to_string(),
        agent_id: k.agent_id.map(|a| a.to_string()),
        prefix: k.display_prefix,
        created_at: ts(k.created_at),
        revoked_at: k.revoked_at.map(ts),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListKeys {
    pub sandbox_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Keys minted in a sandbox.
#[utoipa::path(get, path = "/v1/api_keys", tag = "api_keys", params(ListKeys),
    responses((status = 200, body = Page<ApiKeyView>), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListKeys>) -> ApiResult<Json<Page<ApiKeyView>>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(Json(Page::from_listing(state.store.api_keys(&sandbox, &page).await?, view)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label, 1–100 characters.
    pub name: String,
    /// `account` (default), `agent_invoke` or `agent_delegate`.
    pub kind: Option<String>,
    /// Required for agent keys: the agent the key is bound to.
    pub agent_id: Option<String>,
    pub sandbox_id: Option<String>,
}

/// A new key, with its plaintext.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The key itself. Shown only in this response; store it now.
    pub secret: String,
}

/// Mints a key in a sandbox. Account keys act as the caller, with the caller's role.
#[utoipa::path(post, path = "/v1/api_keys", tag = "api_keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, caller: Caller, ApiJson(body): ApiJson<CreateKey>) -> ApiResult<Response> {
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Write).await?;
    let name = key_name(&body.name)?;
    let kind: KeyKind = body.kind.as_deref().unwrap_or("account").parse()?;
    let agent_id = match (kind.is_agent_scoped(), body.agent_id) {
        (false, None) => None,
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "agent_id",
                "account keys are not bound to an agent; drop `agent_id` or use kind `agent_invoke`/`agent_delegate`",
            ));
        }
        (true, None) => {
            return Err(ApiError::invalid("agent_id", format!("a `{}` key needs the `agent_id` it may act for", kind.as_str())));
        }
        (true, Some(raw)) => {
            let id = AgentId::parse(&raw, "agent_id")?;
            let agent = state
                .store
                .agent(&id)
                .await?
                .filter(|a| a.sandbox_id == sandbox && a.concierge_of.is_none())
                .ok_or_else(|| ApiError::not_found("agent", &raw).with_param("agent_id"))?;
            if agent.archived_at.is_some() {
                return Err(ApiError::conflict(format!("agent {id} is archived; keys cannot be minted for it")));
            }
            Some(id)
        }
    };
    let minted = keys::mint();
    let key = state
        .store
        .create_api_key(NewApiKey {
            sandbox_id: sandbox,
            account_id: caller.account_id.clone(),
            kind,
            agent_id,
            name,
            key_hash: minted.hash,
            display_prefix: minted.display_prefix,
        })
        .await?;
    let no_replay = NoReplay(format!(
        "this Idempotency-Key already created key {}; its secret is shown only once. Revoke it if it was lost and create a new one with a new Idempotency-Key",
        key.id
    ));
    let mut res = (StatusCode::CREATED, Json(CreatedKey { key: view(key), secret: minted.plaintext })).into_response();
    res.extensions_mut().insert(no_replay);
    Ok(res)
}

/// Revokes a key, effective immediately. Owner of the key's sandbox only (§9).
#[utoipa::path(post, path = "/v1/api_keys/{id}/revoke", tag = "api_keys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ApiKeyView>> {
    let key_id = ApiKeyId::parse(&id, "id")?;
    let key = state.store.api_key(&key_id).await?.ok_or_else(|| ApiError::not_found("API key", &id))?;
    caller.authorize_resource(&state, &key.sandbox_id, Need::Owner, "API key", &id).await?;
    Ok(Json(view(state.store.revoke_api_key(&key_id).await?)))
}
