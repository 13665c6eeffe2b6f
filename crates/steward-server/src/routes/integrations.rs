//! Integrations (§10): the app catalog, OAuth connects and their callback, connected accounts
//! and publications. Reads `viewer`; connect and publications `editor`; deleting a connected
//! account (its tokens are revoked at the app and cannot be brought back) `owner`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_core::ids::{AgentId, ConnectedAccountId, PublicationId, SandboxId};
use steward_core::integration::{App, AppTools};
use steward_runtime::integrations::IntegrationError;
use steward_store::{ConnectedAccount, Publication};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{Deleted, ts};

/// A connected account (never its tokens).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedAccountView {
    /// `cac_…`
    pub id: String,
    pub app_id: String,
    pub label: String,
    /// The account's id at the app (Slack team id…), `""` when the app names none.
    pub external_id: String,
    /// `active`, or `needs_reauth` (connect it again; `status_reason` says why).
    pub status: String,
    pub status_reason: Option<String>,
    pub scopes: Option<String>,
    /// When the access token expires (it is refreshed before).
    pub expires_at: Option<String>,
    pub connected_by: String,
    pub created_at: String,
    pub updated_at: String,
}

pub(crate) fn account_view(a: ConnectedAccount) -> ConnectedAccountView {
    ConnectedAccountView {
        id: a.id.to_string(),
        app_id: a.app_id,
        label: a.label,
        external_id: a.external_id,
        status: a.status,
        status_reason: a.status_reason,
        scopes: a.scopes,
        expires_at: a.expires_at.map(ts),
        connected_by: a.connected_by.to_string(),
        created_at: ts(a.created_at),
        updated_at: ts(a.updated_at),
    }
}

fn app_view(state: &AppState, app: &App, accounts: Vec<ConnectedAccountView>, full: bool) -> Value {
    let tools = match &app.tools {
        AppTools::Mcp { url } => json!({"kind": "mcp", "url": url}),
        AppTools::Http { tools, .. } => json!({"kind": "http", "names": tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()}),
        AppTools::None => json!({"kind": "none"}),
    };
    let components: Vec<Value> = app
        .trigger_components
        .iter()
        .map(|c| {
            let mut v = json!({"id": c.id, "display_name": c.display_name, "description": c.description});
            if full {
                v["payload_schema"] = c.payload_schema.clone();
                v["example"] = c.example.clone();
            }
            v
        })
        .collect();
    json!({
        "id": app.id,
        "display_name": app.display_name,
        "description": app.description,
        "connect": if app.oauth.is_some() { "oauth" } else { "none" },
        "configured": state.runtime.integrations().is_configured(&app.id),
        "tools": tools,
        "trigger_components": components,
        "accounts": accounts,
    })
}

/// Which sandbox (default: the `Steward-Sandbox` header, then the key's sandbox).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InSandbox {
    pub sandbox_id: Option<String>,
}

/// Filters of `GET /v1/connected_accounts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountsQuery {
    pub sandbox_id: Option<String>,
    /// Only accounts of this app.
    pub app_id: Option<String>,
}

fn integration_error(e: IntegrationError) -> ApiError {
    match e {
        IntegrationError::NotFound(m) => ApiError::not_found_message(m),
        IntegrationError::Invalid(m) => ApiError::unprocessable(m),
        IntegrationError::Provider(m) => ApiError::unprocessable(m),
        IntegrationError::Internal(m) => ApiError::internal(m),
    }
}

fn app<'a>(state: &'a AppState, id: &str) -> ApiResult<&'a App> {
    state.runtime.integrations().app(id).map_err(integration_error)
}

/// Lists the app catalog with each app's connected accounts in the sandbox.
#[utoipa::path(get, path = "/v1/integrations", tag = "integrations", params(InSandbox),
    responses((status = 200, body = Object, description = "`{data: [app]}`"), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<InSandbox>) -> ApiResult<Json<Value>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let mut by_app: BTreeMap<String, Vec<ConnectedAccountView>> = BTreeMap::new();
    for a in state.store.connected_accounts(&sandbox, None).await? {
        by_app.entry(a.app_id.clone()).or_default().push(account_view(a));
    }
    let apps: Vec<Value> = state
        .runtime
        .integrations()
        .catalog()
        .iter()
        .map(|a| app_view(&state, a, by_app.remove(&a.id).unwrap_or_default(), false))
        .collect();
    Ok(Json(json!({"data": apps})))
}

/// One app with its trigger components' payload schemas and examples.
#[utoipa::path(get, path = "/v1/integrations/{app_id}", tag = "integrations", params(("app_id" = String, Path), InSandbox),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InSandbox>,
) -> ApiResult<Json<Value>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize_resource(&state, &sandbox, Need::Read, "integration", &id).await?;
    let app = app(&state, &id)?;
    let accounts = state.store.connected_accounts(&sandbox, Some(&app.id)).await?.into_iter().map(account_view).collect();
    Ok(Json(app_view(&state, app, accounts, true)))
}

/// Body of `POST /v1/integrations/{app_id}/connect`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    /// The session (a run's or a Concierge conversation's) to tell when the account lands.
    pub session_id: Option<String>,
    pub sandbox_id: Option<String>,
}

/// A started connect.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectView {
    /// Poll `GET /v1/integrations/connects/{connect_id}` for the outcome.
    pub connect_id: String,
    /// Open this in a browser to authorize.
    pub authorize_url: String,
    /// Register this callback URL with the app.
    pub redirect_uri: String,
    pub expires_at: String,
}

/// Starts connecting an app: returns the authorize URL (signed single-use state, PKCE).
#[utoipa::path(post, path = "/v1/integrations/{app_id}/connect", tag = "integrations", params(("app_id" = String, Path)), request_body = ConnectBody,
    responses((status = 201, body = ConnectView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<ConnectView>)> {
    // The body is optional: no body is `{}`.
    let body: ConnectBody = if raw.iter().all(u8::is_ascii_whitespace) {
        ConnectBody::default()
    } else {
        serde_json::from_slice(&raw).map_err(|e| {
            ApiError::bad_request(format!("the body is not a valid connect request: {e}; send {{\"session_id\": \"ses_…\"}} or nothing"))
        })?
    };
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize_resource(&state, &sandbox, Need::Write, "integration", &id).await?;
    let app = app(&state, &id)?;
    let session = match &body.session_id {
        Some(raw) => {
            let sid = steward_core::ids::SessionId::parse(raw, "session_id")?;
            match state.store.session(&sid).await? {
                Some(s) if s.sandbox_id == sandbox && s.deleted_at.is_none() => Some(sid.to_string()),
                _ => return Err(ApiError::not_found("session", raw)),
            }
        }
        None => None,
    };
    let started =
        state.runtime.integrations().start_connect(&sandbox, &app.id, &caller.account_id, session).await.map_err(integration_error)?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectView {
            connect_id: started.connect_id,
            authorize_url: started.authorize_url,
            redirect_uri: state.runtime.integrations().redirect_uri(),
            expires_at: ts(started.expires_at),
        }),
    ))
}

/// Where a connect stands.
#[utoipa::path(get, path = "/v1/integrations/connects/{connect_id}", tag = "integrations", params(("connect_id" = String, Path)),
    responses((status = 200, body = Object, description = "`{connect_id, app_id, status: pending|connected|failed|expired, connected_account, error, expires_at}`"),
        (status = 404, body = ErrorBody)))]
pub async fn connect_status(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::not_found("connect", &id);
    if !id.starts_with("con_") || id.len() > 64 {
        return Err(not_found());
    }
    let attempt = state.store.oauth_attempt(&id).await?.ok_or_else(not_found)?;
    caller.authorize_resource(&state, &attempt.sandbox_id, Need::Read, "connect", &id).await?;
    let account = match &attempt.connected_account_id {
        Some(a) => state.store.connected_account(a).await?.map(account_view),
        None => None,
    };
    let status = if attempt.connected_account_id.is_some() {
        "connected"
    } else if attempt.error.is_some() {
        "failed"
    } else if attempt.used_at.is_none() && attempt.expires_at <= state.clock.now_ms() {
        "expired"
    } else {
        "pending"
    };
    Ok(Json(json!({
        "connect_id": attempt.nonce, "app_id": attempt.app_id, "status": status,
        "connected_account": account, "error": attempt.error, "expires_at": ts(attempt.expires_at),
    })))
}

/// The callback's query (what the app's authorization server sends back).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The OAuth callback (public: authenticated by the signed, single-use `state`). Answers JSON,
/// or a small page when a browser asks for HTML.
#[utoipa::path(get, path = "/v1/integrations/callback", tag = "integrations", security(()), params(CallbackQuery),
    responses((status = 200, body = Object, description = "`{connected_account}`"), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<CallbackQuery>,
) -> Response {
    let html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    let Some(raw_state) = q.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 4096) else {
        return answer(html, Err(ApiError::invalid("state", "the callback has no `state`; start the connect again")));
    };
    let provider_error = q.error.as_deref().map(|e| match q.error_description.as_deref() {
        Some(d) => format!("{e} ({d})"),
        None => e.to_owned(),
    });
    let result = state.runtime.integrations().complete(raw_state, q.code.as_deref(), provider_error.as_deref()).await;
    match result {
        Ok((attempt, account)) => {
            if let Some(session) = &attempt.session_id {
                tell_session(
                    &state,
                    session,
                    json!({"app_id": account.app_id, "connected_account_id": account.id, "label": account.label, "status": "connected"}),
                )
                .await;
            }
            answer(html, Ok(json!({"connected_account": account_view(account)})))
        }
        Err((attempt, e)) => {
            if let Some(session) = attempt.as_ref().and_then(|a| a.session_id.clone()) {
                tell_session(
                    &state,
                    &session,
                    json!({"app_id": attempt.as_ref().map(|a| a.app_id.clone()), "status": "failed", "error": e.to_string()}),
                )
                .await;
            }
            answer(html, Err(integration_error(e)))
        }
    }
}

/// Appends `integration_connect` to the session that started the connect (on its latest run).
async fn tell_session(state: &AppState, session: &str, data: Value) {
    let sid = steward_core::ids::SessionId::from_trusted(session.to_owned());
    match state.store.latest_run_of(&sid).await {
        Ok(Some(run)) => {
            if let Err(e) = state.runtime.emit(&sid, &run, steward_core::session::RunEvent::IntegrationConnect(data)).await {
                tracing::warn!(error = %e, "cannot tell the session about the connect");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot find the session's run"),
    }
}

fn answer(html: bool, result: Result<Value, ApiError>) -> Response {
    if !html {
        return match result {
            Ok(v) => Json(v).into_response(),
            Err(e) => e.into_response(),
        };
    }
    let (status, title, text) = match &result {
        Ok(v) => (
            StatusCode::OK,
            "Connected",
            format!(
                "Connected {} account “{}”. You can close this window.",
                v["connected_account"]["app_id"].as_str().unwrap_or(""),
                v["connected_account"]["label"].as_str().unwrap_or("")
            ),
        ),
        Err(e) => (e.status, "Not connected", e.message.clone()),
    };
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    (status, Html(format!("<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{}</p>", escape(&text))))
        .into_response()
}

/// Lists the sandbox's connected accounts.
#[utoipa::path(get, path = "/v1/connected_accounts", tag = "integrations", params(AccountsQuery),
    responses((status = 200, body = Object, description = "`{data: [connected account]}`"), (status = 404, body = ErrorBody)))]
pub async fn accounts(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<AccountsQuery>) -> ApiResult<Json<Value>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    if let Some(a) = &q.app_id {
        app(&state, a)?;
    }
    let items: Vec<ConnectedAccountView> =
        state.store.connected_accounts(&sandbox, q.app_id.as_deref()).await?.into_iter().map(account_view).collect();
    Ok(Json(json!({"data": items})))
}

async fn load_account(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<ConnectedAccount> {
    let not_found = || ApiError::not_found("connected account", raw);
    let id = ConnectedAccountId::parse(raw, "id").map_err(|_| not_found())?;
    let account = state.store.connected_account(&id).await?.ok_or_else(not_found)?;
    caller.authorize_resource(state, &account.sandbox_id, need, "connected account", raw).await?;
    Ok(account)
}

/// One connected account.
#[utoipa::path(get, path = "/v1/connected_accounts/{id}", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, body = ConnectedAccountView), (status = 404, body = ErrorBody)))]
pub async fn account(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ConnectedAccountView>> {
    Ok(Json(account_view(load_account(&state, &caller, &id, Need::Read).await?)))
}

/// Revokes the account's tokens at the app and deletes it with its publications (owner).
#[utoipa::path(delete, path = "/v1/connected_accounts/{id}", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, body = Object, description = "`{id, deleted, warning}`"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let account = load_account(&state, &caller, &id, Need::Owner).await?;
    let warning = state.runtime.integrations().revoke(&account).await.map_err(integration_error)?;
    Ok(Json(json!({"id": account.id, "deleted": true, "warning": warning})))
}

/// A publication.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicationView {
    /// `pub_…`
    pub id: String,
    pub app_id: String,
    pub connected_account_id: String,
    pub agent_id: String,
    /// The workspace or channel id at the app.
    pub target: String,
    pub created_at: String,
}

fn publication_view(app: &str, p: Publication) -> PublicationView {
    PublicationView {
        id: p.id.to_string(),
        app_id: app.to_owned(),
        connected_account_id: p.connected_account_id.to_string(),
        agent_id: p.agent_id.to_string(),
        target: p.target,
        created_at: ts(p.created_at),
    }
}

/// Which agent serves which workspace/channel of the app's connected accounts.
#[utoipa::path(get, path = "/v1/integrations/{app_id}/publications", tag = "integrations", params(("app_id" = String, Path), InSandbox),
    responses((status = 200, body = Object, description = "`{data: [publication]}`"), (status = 404, body = ErrorBody)))]
pub async fn publications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InSandbox>,
) -> ApiResult<Json<Value>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize_resource(&state, &sandbox, Need::Read, "integration", &id).await?;
    let app = app(&state, &id)?;
    let items: Vec<PublicationView> =
        state.store.publications(&sandbox, &app.id).await?.into_iter().map(|p| publication_view(&app.id, p)).collect();
    Ok(Json(json!({"data": items})))
}

/// Body of `POST /v1/integrations/{app_id}/publications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePublication {
    pub connected_account_id: String,
    pub agent_id: String,
    /// The workspace or channel id at the app (1–200 visible characters).
    pub target: String,
    pub sandbox_id: Option<String>,
}

/// Publishes an agent on a workspace/channel of a connected account.
#[utoipa::path(post, path = "/v1/integrations/{app_id}/publications", tag = "integrations", params(("app_id" = String, Path)), request_body = CreatePublication,
    responses((status = 201, body = PublicationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreatePublication>,
) -> ApiResult<(StatusCode, Json<PublicationView>)> {
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize_resource(&state, &sandbox, Need::Write, "integration", &id).await?;
    let app = app(&state, &id)?;
    let account = in_sandbox_account(&state, &sandbox, &body.connected_account_id).await?;
    if account.app_id != app.id {
        return Err(ApiError::invalid(
            "connected_account_id",
            format!("account {} is a {} account, not {}", account.id, account.app_id, app.id),
        ));
    }
    let agent_id = AgentId::parse(&body.agent_id, "agent_id")?;
    match state.store.agent(&agent_id).await? {
        Some(a) if a.sandbox_id == sandbox && a.archived_at.is_none() && a.concierge_of.is_none() => {}
        _ => return Err(ApiError::not_found("agent", &body.agent_id).with_param("agent_id")),
    }
    let target = body.target.trim();
    if target.is_empty() || target.chars().count() > 200 || target.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid("target", "must be 1–200 characters without control characters (a workspace or channel id)"));
    }
    let p = state.store.create_publication(&account, &agent_id, target).await?;
    Ok((StatusCode::CREATED, Json(publication_view(&app.id, p))))
}

async fn in_sandbox_account(state: &AppState, sandbox: &SandboxId, raw: &str) -> ApiResult<ConnectedAccount> {
    let not_found = || ApiError::not_found("connected account", raw).with_param("connected_account_id");
    let id = ConnectedAccountId::parse(raw, "connected_account_id")?;
    match state.store.connected_account(&id).await? {
        Some(a) if &a.sandbox_id == sandbox => Ok(a),
        _ => Err(not_found()),
    }
}

/// Removes a publication (the agent stops serving that workspace/channel).
#[utoipa::path(delete, path = "/v1/integrations/{app_id}/publications/{pub_id}", tag = "integrations",
    params(("app_id" = String, Path), ("pub_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unpublish(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, raw)): Path<(String, String)>,
) -> ApiResult<Json<Deleted>> {
    let not_found = || ApiError::not_found("publication", &raw);
    let app = app(&state, &app_id)?;
    let id = PublicationId::parse(&raw, "pub_id").map_err(|_| not_found())?;
    let p = state.store.publication(&id).await?.ok_or_else(not_found)?;
    caller.authorize_resource(&state, &p.sandbox_id, Need::Write, "publication", &raw).await?;
    let account = state.store.connected_account(&p.connected_account_id).await?.ok_or_else(not_found)?;
    if account.app_id != app.id {
        return Err(not_found());
    }
    state.store.delete_publication(&p.id).await?;
    Ok(Json(Deleted { id: p.id.to_string(), deleted: true }))
}
