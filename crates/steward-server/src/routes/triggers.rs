//! Webhook triggers (§11): `…/agents/{id}/triggers` to manage them, and the public inbound URL
//! `POST /v1/webhooks/triggers/{trigger_id}` that starts runs.
//!
//! **Verifying a delivery** (`steward_core::webhook`; the `inbound` submodule). Senders sign
//! with [Standard Webhooks](https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp`
//! (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw
//! body>">`, keyed with the base64-decoded part of the trigger's secret after `whsec_` — any
//! Standard Webhooks library does this with the secret as given. The id is signed and is the
//! delivery id, so a re-sent delivery starts no second run and a changed id fails the signature.
//! Existing senders may keep the legacy `Steward-Timestamp` + `Steward-Signature: v1=<hex
//! HMAC-SHA256 of "<timestamp>.<raw body>">` under the whole secret, with `Steward-Delivery` (or
//! `Webhook-Id`) naming the delivery; that signature does not cover the id, so each one is
//! accepted once (recorded with the delivery; a replay under another id is a 409
//! `replayed_delivery`). A trigger with `allow_token` also accepts the secret itself in
//! `Steward-Trigger-Token`, for senders that cannot sign. Timestamps must be within 5 minutes of
//! the server's clock; signatures are compared in constant time.
//!
//! **Answering.** Authentication comes first (a stranger learns nothing about the trigger's
//! state) and an unauthenticated delivery changes nothing in the store: it is counted in
//! `steward_webhook_refusals_total{reason}`. Then the pause, the agent's state, the body and the
//! template; a refused authenticated delivery is recorded as the trigger's `last_error`. An
//! accepted delivery is stored with its session and run in one transaction, then answered `202`
//! at once; the run goes on asynchronously.
//!
//! Roles: list/get `viewer`; create/update/pause/resume `editor`; delete `owner` (§9:
//! `steward trigger disconnect`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use steward_core::agent::Agent;
use steward_core::ids::TriggerId;
use steward_core::trigger::{Trigger, TriggerConfig, TriggerState};
use steward_core::webhook::Verified;
use steward_runtime::admission::{AdmitError, Origin};
use steward_store::{Delivery, NewSession, StoreError};
use utoipa::ToSchema;

pub mod compat;
mod inbound;

use crate::AppState;
use crate::access::load_agent as load;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::{Deleted, NoReplay, PauseBody, pause_until, ts};

/// A trigger (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerView {
    /// `trg_…`
    pub id: String,
    pub agent_id: String,
    pub sandbox_id: String,
    pub name: String,
    pub description: String,
    pub input_template: String,
    pub allow_token: bool,
    /// For an integration trigger: its trigger component (`github.issue_opened`)…
    pub component: Option<String>,
    /// …and the connected account its events come from.
    pub account_id: Option<String>,
    /// How deliveries are verified: `steward_v1` (Standard Webhooks `webhook-signature`, or the
    /// legacy `Steward-Signature`), or `app:<app id>`: the
    /// way that app signs its events, with the app's configured secret (Slack's signing secret…)
    /// or, when the operator configured none, this trigger's secret (GitHub, Linear webhooks).
    pub verification: String,
    /// `active` or `paused`.
    pub state: String,
    /// When a paused trigger resumes by itself.
    pub resume_at: Option<String>,
    /// The public inbound path: POST here, signed.
    pub url: String,
    pub last_fired_at: Option<String>,
    pub fire_count: i64,
    /// Why the last refused delivery was refused.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(t: Trigger, now: i64) -> TriggerView {
    let paused = t.paused_at(now);
    let verification = match &t.config.component {
        None => "steward_v1".to_owned(),
        Some(c) => format!("app:{}", c.split('.').next().unwrap_or_default()),
    };
    TriggerView {
        component: t.config.component.clone(),
        account_id: t.config.account_id.clone(),
        verification,
        url: format!("/v1/webhooks/triggers/{}", t.id),
        id: t.id.to_string(),
        agent_id: t.agent_id.to_string(),
        sandbox_id: t.sandbox_id.to_string(),
        name: t.config.name,
        description: t.config.description,
        input_template: t.config.input_template,
        allow_token: t.config.allow_token,
        state: if paused { "paused" } else { "active" }.into(),
        resume_at: t.resume_at.filter(|_| paused).map(ts),
        last_fired_at: t.last_fired_at.map(ts),
        fire_count: t.fire_count,
        last_error: t.last_error,
        last_error_at: t.last_error_at.map(ts),
        created_at: ts(t.created_at),
        updated_at: ts(t.updated_at),
    }
}

/// A new trigger with its secret, shown only once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTrigger {
    #[serde(flatten)]
    pub trigger: TriggerView,
    /// The signing secret: `whsec_` and the base64 of 32 random bytes, usable as is by any
    /// Standard Webhooks library. Shown only in this response.
    pub secret: String,
}

/// Body of `POST /v1/agents/{id}/triggers`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTrigger {
    /// A slug unique among the agent's triggers.
    pub name: String,
    pub description: Option<String>,
    /// minijinja over `payload`, `headers`, `received_at`; default: the payload as JSON.
    pub input_template: Option<String>,
    /// Also accept the secret in `Steward-Trigger-Token` (default false).
    pub allow_token: Option<bool>,
    /// An integration trigger: a trigger component id from `GET /v1/integrations`.
    pub component: Option<String>,
    /// The connected account (`cac_…`) of the component's app; required for apps connected by OAuth.
    pub account_id: Option<String>,
}

fn check_template(config: &TriggerConfig) -> ApiResult<()> {
    steward_runtime::template::check(&config.input_template).map_err(|m| ApiError::invalid("input_template", m))
}

/// An integration trigger's component must exist, and its account must be of the component's
/// app and in the trigger's sandbox.
async fn check_binding(state: &AppState, sandbox: &steward_core::ids::SandboxId, config: &TriggerConfig) -> ApiResult<()> {
    let Some(component) = &config.component else { return Ok(()) };
    let integrations = state.runtime.integrations();
    let Some((app, _)) = integrations.catalog().component(component) else {
        return Err(ApiError::invalid(
            "component",
            format!("no trigger component `{}`; list them with GET /v1/integrations", steward_core::ids::shorten(component)),
        ));
    };
    if app.webhook.is_none() {
        return Err(ApiError::invalid("component", format!("app `{}` sends no events", app.id)));
    }
    match &config.account_id {
        None if app.oauth.is_some() => Err(ApiError::invalid(
            "account_id",
            format!(
                "`{component}` needs the connected {} account its events come from; connect one with POST /v1/integrations/{}/connect",
                app.display_name, app.id
            ),
        )),
        None => Ok(()),
        Some(raw) => {
            let id = steward_core::ids::ConnectedAccountId::parse(raw, "account_id")?;
            match state.store.connected_account(&id).await? {
                Some(a) if &a.sandbox_id == sandbox && a.app_id == app.id => Ok(()),
                Some(a) if &a.sandbox_id == sandbox => Err(ApiError::invalid(
                    "account_id",
                    format!("account {raw} is a {} account; `{component}` needs a {} account", a.app_id, app.id),
                )),
                _ => Err(ApiError::not_found("connected account", raw).with_param("account_id")),
            }
        }
    }
}

async fn load_trigger(state: &AppState, caller: &Caller, agent_raw: &str, raw: &str, need: Need) -> ApiResult<(Agent, Trigger)> {
    let agent = load(state, caller, agent_raw, need).await?;
    let id = TriggerId::parse(raw, "trigger_id")?;
    let trigger = state.store.trigger(&id).await?.filter(|t| t.agent_id == agent.id).ok_or_else(|| ApiError::not_found("trigger", raw))?;
    Ok((agent, trigger))
}

/// An agent's webhook triggers, by name.
#[utoipa::path(get, path = "/v1/agents/{id}/triggers", tag = "triggers", params(("id" = String, Path)),
    responses((status = 200, body = crate::routes::List<TriggerView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let agent = load(&state, &caller, &id, Need::Read).await?;
    let now = state.clock.now_ms();
    let items: Vec<TriggerView> = state.store.triggers_of(&agent.id).await?.into_iter().map(|t| view(t, now)).collect();
    Ok(Json(json!({"data": items})))
}

/// Creates a webhook trigger; the response holds its signing secret, shown only once.
#[utoipa::path(post, path = "/v1/agents/{id}/triggers", tag = "triggers", params(("id" = String, Path)), request_body = CreateTrigger,
    responses((status = 201, body = CreatedTrigger), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let agent = load(&state, &caller, &id, Need::Write).await?;
    let config = TriggerConfig::from_json(Value::Object(body))?;
    check_template(&config)?;
    check_binding(&state, &agent.sandbox_id, &config).await?;
    let trigger_id = TriggerId::generate();
    let secret = steward_core::signing::new_secret();
    let sealed = state.vault.encrypt(agent.sandbox_id.as_str(), trigger_id.as_str(), &secret);
    let trigger = state.store.create_trigger(&trigger_id, &agent.sandbox_id, &agent.id, config, &sealed).await.map_err(|e| match e {
        StoreError::Duplicate(_) => ApiError::from(e).with_param("name"),
        other => other.into(),
    })?;
    let no_replay = NoReplay(format!(
        "this Idempotency-Key already created trigger {}; its secret is shown only once. Delete it and create a new one if the secret was lost",
        trigger.id
    ));
    let now = state.clock.now_ms();
    let mut res = (StatusCode::CREATED, Json(CreatedTrigger { trigger: view(trigger, now), secret })).into_response();
    res.extensions_mut().insert(no_replay);
    Ok(res)
}

/// One trigger.
#[utoipa::path(get, path = "/v1/agents/{id}/triggers/{trigger_id}", tag = "triggers", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = TriggerView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path((id, tid)): Path<(String, String)>) -> ApiResult<Json<TriggerView>> {
    let (_, t) = load_trigger(&state, &caller, &id, &tid, Need::Read).await?;
    Ok(Json(view(t, state.clock.now_ms())))
}

/// Partial update of name, description, template or `allow_token`.
#[utoipa::path(patch, path = "/v1/agents/{id}/triggers/{trigger_id}", tag = "triggers", params(("id" = String, Path), ("trigger_id" = String, Path)), request_body = CreateTrigger,
    responses((status = 200, body = TriggerView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, tid)): Path<(String, String)>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<TriggerView>> {
    let (_, current) = load_trigger(&state, &caller, &id, &tid, Need::Write).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("nothing to update: send `name`, `description`, `input_template` or `allow_token`"));
    }
    let next = current.config.patched(&body)?;
    check_template(&next)?;
    check_binding(&state, &current.sandbox_id, &next).await?;
    if next == current.config {
        return Ok(Json(view(current, state.clock.now_ms())));
    }
    let updated = state.store.update_trigger(&current, next).await?;
    Ok(Json(view(updated, state.clock.now_ms())))
}

/// Deletes a trigger (owner only, §9 `steward trigger disconnect`); its URL stops working.
#[utoipa::path(delete, path = "/v1/agents/{id}/triggers/{trigger_id}", tag = "triggers", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path((id, tid)): Path<(String, String)>) -> ApiResult<Json<Deleted>> {
    let (_, t) = load_trigger(&state, &caller, &id, &tid, Need::Owner).await?;
    state.store.delete_trigger(&t.id).await?;
    Ok(Json(Deleted { id: t.id.to_string(), deleted: true }))
}

/// Pauses a trigger (deliveries get 409 and start nothing), optionally until `resume_at`.
#[utoipa::path(post, path = "/v1/agents/{id}/triggers/{trigger_id}/pause", tag = "triggers", params(("id" = String, Path), ("trigger_id" = String, Path)), request_body = PauseBody,
    responses((status = 200, body = TriggerView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, tid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<TriggerView>> {
    let (agent, t) = load_trigger(&state, &caller, &id, &tid, Need::Write).await?;
    let now = state.clock.now_ms();
    // The body is optional: none (or `{}`) pauses until resumed.
    let zone = state.store.sandbox(&agent.sandbox_id).await?.map(|s| s.time_zone).unwrap_or_else(|| "UTC".to_owned());
    let resume_at = pause_until(&body, now, "trigger", &zone)?;
    let t = state.store.set_trigger_state(&t.id, TriggerState::Paused, resume_at).await?;
    Ok(Json(view(t, now)))
}

/// Resumes a paused trigger.
#[utoipa::path(post, path = "/v1/agents/{id}/triggers/{trigger_id}/resume", tag = "triggers", params(("id" = String, Path), ("trigger_id" = String, Path)),
    responses((status = 200, body = TriggerView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, tid)): Path<(String, String)>,
) -> ApiResult<Json<TriggerView>> {
    let (_, t) = load_trigger(&state, &caller, &id, &tid, Need::Write).await?;
    let t = state.store.set_trigger_state(&t.id, TriggerState::Active, None).await?;
    Ok(Json(view(t, state.clock.now_ms())))
}

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub delivery_id: String,
    pub session_id: String,
    pub run_id: String,
    /// True when this delivery id was accepted before; no new run was started.
    pub duplicate: bool,
}

/// Receives a delivery (public: authenticated by the signature, not a key).
#[utoipa::path(post, path = "/v1/webhooks/triggers/{trigger_id}", tag = "triggers", security(()), params(("trigger_id" = String, Path)),
    request_body(content = Object, description = "any JSON payload, at most 1 MiB"),
    responses((status = 202, body = DeliveryView), (status = 200, body = DeliveryView, description = "a duplicate delivery"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn deliver(State(state): State<AppState>, Path(raw): Path<String>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let not_found = || ApiError::not_found("trigger", &raw);
    let id = TriggerId::parse(&raw, "trigger_id").map_err(|_| not_found())?;
    let (trigger, sealed) = state.store.trigger_with_secret(&id).await?.ok_or_else(not_found)?;
    let secret = state.vault.decrypt(trigger.sandbox_id.as_str(), id.as_str(), &sealed).map_err(ApiError::internal)?;
    let now = state.clock.now_ms();
    // Until the delivery is authenticated nothing is written (see `inbound`).
    let app = inbound::app_of(&state, &trigger).map_err(|r| inbound::refuse(&state, r))?;
    let verified = inbound::authenticate(&state, &trigger, secret.expose(), app.map(|(a, _)| a), &headers, &body, now)
        .map_err(|r| inbound::refuse(&state, r))?;
    let named = inbound::named_delivery(&verified, &headers);
    let once = inbound::claim_once(&trigger, &verified);
    // From here on the sender holds the secret: refusals are recorded as the trigger's last error.
    let refuse = |err: ApiError| {
        let store = state.store.clone();
        let id = id.clone();
        async move {
            if let Err(e) = store.record_trigger_error(&id, &err.message).await {
                tracing::warn!(error = %e, "cannot record a trigger error");
            }
            err
        }
    };
    let lookup = |name: &str| inbound::header(&headers, name).map(str::to_owned);
    // An integration trigger: handshakes answered, events of other kinds acknowledged and
    // ignored (so the app does not retry them).
    if let Some((app, component)) = app {
        let payload: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        if let Some(answer) = app.challenge_response(&payload) {
            return Ok((StatusCode::OK, Json(answer)).into_response());
        }
        if !component.matches(&lookup, &payload) {
            return Ok((StatusCode::OK, Json(json!({"ignored": true, "reason": format!("the event is not a `{}`", component.id)})))
                .into_response());
        }
    }
    if trigger.paused_at(now) {
        let until = trigger.resume_at.map(|t| format!(" until {}", ts(t))).unwrap_or_default();
        return Err(ApiError::conflict(format!(
            "trigger {id} is paused{until}; the delivery was not run. Resume it to take deliveries again"
        )));
    }
    let agent = state.store.agent(&trigger.agent_id).await?.ok_or_else(not_found)?;
    // The one admission check (the delivery writer below batches the write itself).
    match state.runtime.check_admission(&agent, Origin::Trigger).await {
        Ok(()) => {}
        Err(AdmitError::Refused(r)) => return Err(refuse(r.into()).await),
        Err(AdmitError::Store(e)) => return Err(e.into()),
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        // Some apps (Google push channels) notify with an empty body; the headers are the event.
        Err(_) if body.is_empty() && app.is_some() => Value::Null,
        Err(e) => return Err(refuse(ApiError::bad_request(format!("the body is not JSON: {e}"))).await),
    };
    let app_delivery = app.and_then(|(a, _)| a.delivery_id(&lookup, &payload));
    let delivery_id = match app_delivery.or(named) {
        Some(d) if !d.is_empty() && d.len() <= 200 && d.chars().all(|c| c.is_ascii_graphic()) => d,
        Some(_) => {
            let field = if matches!(verified, Verified::Standard { .. }) { "webhook-id" } else { "Steward-Delivery" };
            return Err(refuse(ApiError::invalid(field, "must be 1–200 visible ASCII characters")).await);
        }
        None => format!("auto_{}", steward_core::ids::fresh("")),
    };
    let header_map: BTreeMap<String, String> = headers
        .iter()
        .filter(|(k, _)| !inbound::HIDDEN_HEADERS.contains(&k.as_str()))
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    let rendered = match steward_runtime::template::render(&trigger.config.input_template, &payload, &header_map, &ts(now)) {
        Ok(r) => r,
        Err(m) => return Err(refuse(ApiError::unprocessable(m)).await),
    };
    let input = json!([{"role": "user", "content": rendered, "trigger": {"id": id, "delivery_id": delivery_id, "payload": payload}}]);
    let new = NewSession {
        sandbox_id: agent.sandbox_id.clone(),
        agent_id: agent.id.clone(),
        agent_version: agent.version,
        end_user: None,
        counterparty: Some(format!("trigger:{}", trigger.config.name)),
        metadata: BTreeMap::from([("trigger_id".to_owned(), id.to_string()), ("delivery_id".to_owned(), delivery_id.clone())]),
    };
    let raw_payload = String::from_utf8_lossy(&body).into_owned();
    match state.store.accept_delivery(&trigger, &delivery_id, once, &raw_payload, new, &input).await? {
        Delivery::Started { session, run } => {
            state.runtime.kick(&session.id);
            Ok((
                StatusCode::ACCEPTED,
                Json(DeliveryView { delivery_id, session_id: session.id.to_string(), run_id: run.id.to_string(), duplicate: false }),
            )
                .into_response())
        }
        Delivery::Duplicate { session_id, run_id } => {
            Ok((StatusCode::OK, Json(DeliveryView { delivery_id, session_id: session_id.to_string(), run_id, duplicate: true }))
                .into_response())
        }
        Delivery::Replayed => Err(inbound::refuse(&state, inbound::replayed())),
    }
}
