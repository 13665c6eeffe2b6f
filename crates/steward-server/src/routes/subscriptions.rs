//! Outbound webhook subscriptions (§12): `/v1/subscriptions`. A subscription belongs to a
//! sandbox and optionally one agent, names the events it wants (`run.completed`, `run.failed`,
//! `agent.error`) and gets a signing secret (`whsec_…`, Standard Webhooks; see `notify` in the
//! runtime for the headers), shown once. Deliveries and their attempts are at
//! `GET /v1/subscriptions/{id}/deliveries`. Reads `viewer`; create/delete `editor`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_core::ids::{AgentId, SubscriptionId};
use steward_store::{Attempt, Subscription};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{Deleted, NoReplay, ts};

/// The events a subscription can ask for.
pub const EVENTS: &[&str] = &["run.completed", "run.failed", "agent.error"];

/// A subscription (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// `sub_…`
    pub id: String,
    pub sandbox_id: String,
    /// Only this agent's events; `null` for every agent of the sandbox.
    pub agent_id: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
}

fn view(s: Subscription) -> SubscriptionView {
    SubscriptionView {
        id: s.id.to_string(),
        sandbox_id: s.sandbox_id.to_string(),
        agent_id: s.agent_id.map(|a| a.to_string()),
        url: s.url,
        events: s.events,
        created_at: ts(s.created_at),
    }
}

/// Body of `POST /v1/subscriptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// Where to POST: `http(s)://…`, no credentials.
    pub url: String,
    /// Some of `run.completed`, `run.failed`, `agent.error`.
    pub events: Vec<String>,
    /// Only this agent's events (default: every agent of the sandbox).
    pub agent_id: Option<String>,
    pub sandbox_id: Option<String>,
}

/// A new subscription and its secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSubscription {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// `whsec_…`: verify deliveries with any Standard Webhooks library
    /// (`Webhook(secret).verify(body, headers)`: `webhook-signature: v1,<base64 HMAC-SHA256 of
    /// "<webhook-id>.<webhook-timestamp>.<body>">`, keyed with the base64 after `whsec_`), or the
    /// legacy `Steward-Signature: v1=<hex HMAC-SHA256 of "<Steward-Timestamp>.<body>">` under the
    /// whole secret.
    pub secret: String,
}

fn check_url(url: &str) -> ApiResult<()> {
    let bad = |why: &str| Err(ApiError::invalid("url", format!("`{}` {why}", steward_core::ids::shorten(url))));
    if url.len() > 2048 {
        return bad("is longer than 2048 bytes");
    }
    let Some((scheme, rest)) = url.split_once("://") else { return bad("is not an absolute http(s) URL") };
    if scheme != "http" && scheme != "https" {
        return bad("must use http or https");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return bad("needs a host and no credentials");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    Ok(())
}

async fn load_sub(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<Subscription> {
    let id = SubscriptionId::parse(raw, "id")?;
    let s = state.store.subscription(&id).await?.ok_or_else(|| ApiError::not_found("subscription", raw))?;
    caller.authorize_resource(state, &s.sandbox_id, need, "subscription", raw).await?;
    Ok(s)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InSandbox {
    pub sandbox_id: Option<String>,
}

/// The subscriptions of a sandbox, newest first.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions", params(InSandbox),
    responses((status = 200, body = crate::routes::List<SubscriptionView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<InSandbox>) -> ApiResult<Json<Value>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let items: Vec<SubscriptionView> = state.store.subscriptions(&sandbox).await?.into_iter().map(view).collect();
    Ok(Json(json!({"data": items})))
}

/// Subscribes a URL to events; the response holds the signing secret, shown only once.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions", request_body = CreateSubscription,
    responses((status = 201, body = CreatedSubscription), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, caller: Caller, ApiJson(body): ApiJson<CreateSubscription>) -> ApiResult<Response> {
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Write).await?;
    check_url(&body.url)?;
    if body.events.is_empty() || body.events.len() > EVENTS.len() {
        return Err(ApiError::invalid("events", format!("list 1 to 3 of: {}", EVENTS.join(", "))));
    }
    for (i, e) in body.events.iter().enumerate() {
        if !EVENTS.contains(&e.as_str()) {
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                format!("`{}` is not an event; use {}", steward_core::ids::shorten(e), EVENTS.join(", ")),
            ));
        }
    }
    let agent_id = match &body.agent_id {
        None => None,
        Some(raw) => {
            let id = AgentId::parse(raw, "agent_id")?;
            let ok = state.store.agent(&id).await?.is_some_and(|a| a.sandbox_id == sandbox);
            if !ok {
                return Err(ApiError::not_found("agent", raw).with_param("agent_id"));
            }
            Some(id)
        }
    };
    let mut events = body.events.clone();
    events.sort();
    events.dedup();
    let sub = Subscription {
        id: SubscriptionId::generate(),
        sandbox_id: sandbox,
        agent_id,
        url: body.url,
        events,
        created_at: state.clock.now_ms(),
    };
    let secret = steward_core::signing::new_secret();
    let sealed = state.vault.encrypt(sub.sandbox_id.as_str(), sub.id.as_str(), &secret);
    state.store.create_subscription(&sub, &sealed).await?;
    let no_replay = NoReplay(format!("this Idempotency-Key already created subscription {}; its secret is shown only once", sub.id));
    let mut res = (StatusCode::CREATED, Json(CreatedSubscription { subscription: view(sub), secret })).into_response();
    res.extensions_mut().insert(no_replay);
    Ok(res)
}

/// One subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(view(load_sub(&state, &caller, &id, Need::Read).await?)))
}

/// Deletes a subscription; pending deliveries go with it.
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let s = load_sub(&state, &caller, &id, Need::Write).await?;
    state.store.delete_subscription(&s.id).await?;
    Ok(Json(Deleted { id: s.id.to_string(), deleted: true }))
}

/// One attempt of one delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub delivery_id: String,
    pub event: String,
    /// The delivery's state: `pending` (will retry), `delivered` or `failed`.
    pub delivery_status: String,
    pub attempt: i64,
    pub at: String,
    /// The receiver's HTTP status, `null` when it did not answer.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The first 512 bytes of the receiver's answer.
    pub response_excerpt: Option<String>,
}

fn attempt_view(a: Attempt) -> AttemptView {
    AttemptView {
        delivery_id: a.delivery_id.to_string(),
        event: a.event,
        delivery_status: a.status,
        attempt: a.attempt,
        at: ts(a.at),
        status_code: a.status_code,
        latency_ms: a.latency_ms,
        error: a.error,
        response_excerpt: a.excerpt,
    }
}

/// The last 100 delivery attempts, newest first.
#[utoipa::path(get, path = "/v1/subscriptions/{id}/deliveries", tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = crate::routes::List<AttemptView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deliveries(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let s = load_sub(&state, &caller, &id, Need::Read).await?;
    let items: Vec<AttemptView> = state.store.attempts(&s.id, 100).await?.into_iter().map(attempt_view).collect();
    Ok(Json(json!({"data": items})))
}
