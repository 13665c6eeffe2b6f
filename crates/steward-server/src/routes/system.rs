//! Health, metrics, the OpenAPI document and `whoami`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Caller, Credential};
use crate::error::{ApiError, ApiResult, ErrorBody};

/// `{"ok": true}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub ok: bool,
}

/// Liveness: the process answers and its database does.
#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.ping().await.map_err(|_| ApiError::unavailable("the database does not answer"))?;
    Ok(Json(Health { ok: true }))
}

/// Prometheus metrics (text exposition format). Needs an account key or session token.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require_account_credential()?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()))
}

/// This OpenAPI document, generated from the handlers. Public: it describes the API and holds
/// no tenant data, and client generators and fuzzers fetch it before they have a credential.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi_json.as_str().to_owned())
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub account_id: String,
    pub email: String,
    /// `api_key` or `session`.
    pub credential: String,
    /// For API keys: the key's id, kind, home sandbox and agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<MeKey>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeKey {
    pub id: String,
    pub kind: String,
    pub sandbox_id: String,
    pub agent_id: Option<String>,
}

/// The authenticated account and credential.
#[utoipa::path(get, path = "/v1/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let account = state
        .store
        .account(&caller.account_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("this credential's account no longer exists"))?;
    let (credential, key) = match &caller.credential {
        Credential::Session => ("session", None),
        Credential::ApiKey(k) => (
            "api_key",
            Some(MeKey {
                id: k.id.to_string(),
                kind: k.kind.as_str().into(),
                sandbox_id: k.sandbox_id.to_string(),
                agent_id: k.agent_id.as_ref().map(ToString::to_string),
            }),
        ),
    };
    Ok(Json(Me { account_id: account.id.to_string(), email: account.email.as_str().into(), credential: credential.into(), key }))
}
