//! Chat channels (§10, §14): linking agents to chats (`…/agents/{id}/{platform}/link|status|unlink`,
//! `…/agents/{id}/channels`), each sandbox's bot per platform (`/v1/channels/{platform}/bot`),
//! Telegram's public webhook (`/v1/channels/telegram/{sandbox_id}/webhook`) and, in `slack.rs`,
//! Slack's public Events API endpoint.
//!
//! **Link codes** are shown once (the response is never replayed for an `Idempotency-Key`) and
//! stored hashed; at most five are outstanding per agent and platform (429 beyond, with
//! `Retry-After`). **Bot secrets** go from the request body into the vault cipher; no response
//! holds them (`GET …/bot` lists only the names of the secret fields). **The webhook** checks
//! `X-Telegram-Bot-Api-Secret-Token` in constant time before anything else (401, nothing
//! written), records the `update_id` (a redelivery does nothing), answers 200 at once and
//! leaves the rest to a background task (`crate::channels`).
//!
//! Roles: reads `viewer`; link, unlink, bot set and delete `editor` (reversible changes).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_core::agent::Agent;
use steward_core::channel::{BotCredentials, ChannelBinding, LINK_CODE_TTL_MS, MAX_OUTSTANDING_CODES, Platform, Respond, mint_link_code};
use steward_core::ids::{ChannelBindingId, SandboxId};
use steward_runtime::vault::Secret;
use steward_store::{CodeState, NewLinkCode};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::access::load_agent;
use crate::auth::{Caller, Need};
use crate::channels::telegram::{Bot, Update, handle_update};
use crate::channels::{bot_aad, open_bot_secrets};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{List, NoReplay, ts};
use crate::views::{ChannelFailureView, channel_failure_view};

pub mod compat;
pub mod slack;

/// How long accepted update ids are remembered (Telegram keeps undelivered updates 24 hours).
pub(crate) const UPDATE_MEMORY_MS: i64 = 24 * 3600 * 1000;
/// The header Telegram sends the webhook's `secret_token` in.
const TELEGRAM_SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

fn platform(raw: &str) -> ApiResult<Platform> {
    Ok(Platform::parse(raw, "platform")?)
}

/// A chat bound to an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingView {
    /// `chb_…`
    pub id: String,
    pub agent_id: String,
    /// `slack`, `discord`, `telegram` or `whatsapp`.
    pub platform: String,
    pub chat_id: String,
    /// `dm`, `group` or `channel`.
    pub chat_kind: String,
    pub chat_title: Option<String>,
    /// The platform user who redeemed the link code.
    pub user_id: String,
    pub user_name: Option<String>,
    /// In groups: `mentions` (answer when mentioned or replied to) or `all`.
    pub respond: String,
    pub linked_at: String,
}

fn binding_view(b: ChannelBinding) -> BindingView {
    BindingView {
        id: b.id.to_string(),
        agent_id: b.agent_id.to_string(),
        platform: b.platform.as_str().into(),
        chat_id: b.chat_id,
        chat_kind: b.chat_kind.as_str().into(),
        chat_title: b.chat_title,
        user_id: b.user_id,
        user_name: b.user_name,
        respond: b.respond.as_str().into(),
        linked_at: ts(b.linked_at),
    }
}

/// A new link code, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkCodeView {
    pub platform: String,
    /// Send `/link CODE` to the bot from the chat to bind (a direct message binds you, a group
    /// or channel binds it). Single use.
    pub code: String,
    /// What to tell the user.
    pub instruction: String,
    /// Telegram: opens the bot with the code (`https://t.me/<bot>?start=CODE`), when the bot's
    /// username is known.
    pub deep_link: Option<String>,
    /// Whether the sandbox has a bot on this platform (`PUT /v1/channels/{platform}/bot`).
    pub bot_configured: bool,
    pub expires_at: String,
}

/// Creates a link code for the agent on a platform (default lifetime 10 minutes).
#[utoipa::path(post, path = "/v1/agents/{id}/{platform}/link", tag = "channels",
    params(("id" = String, Path), ("platform" = String, Path, description = "`slack`, `discord`, `telegram` or `whatsapp`")),
    responses((status = 201, body = LinkCodeView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn link(State(state): State<AppState>, caller: Caller, Path((id, raw)): Path<(String, String)>) -> ApiResult<Response> {
    let platform = platform(&raw)?;
    let agent = load_agent(&state, &caller, &id, Need::Write).await?;
    let code = mint_link_code();
    let hash = steward_core::channel::code_hash(&code).expect("a minted code is a code");
    let made = state.store.create_link_code(&agent.sandbox_id, &agent.id, platform, &hash, LINK_CODE_TTL_MS, MAX_OUTSTANDING_CODES).await?;
    let created = match made {
        NewLinkCode::Created(c) => c,
        NewLinkCode::TooMany { retry_after_ms } => {
            let secs = (retry_after_ms + 999) / 1000;
            return Err(ApiError::rate_limited(
                format!(
                    "agent {} already has {MAX_OUTSTANDING_CODES} unused {platform} link codes; use one of them, or ask again in {secs} s when the oldest expires",
                    agent.id
                ),
                secs.max(1) as u64,
            ));
        }
    };
    let bot = state.store.channel_bot(&agent.sandbox_id, platform).await?;
    let username = bot.as_ref().and_then(|b| b.config.get("username").cloned());
    let deep_link = match (platform, &username) {
        (Platform::Telegram, Some(u)) => Some(format!("https://t.me/{u}?start={code}")),
        _ => None,
    };
    let to = username.map(|u| format!("@{u}")).unwrap_or_else(|| format!("the sandbox's {platform} bot"));
    let mut instruction = format!("send /link {code} to {to} from the chat to link (within 10 minutes; the code works once)");
    if let Some(d) = &deep_link {
        instruction.push_str(&format!(", or open {d}"));
    }
    let view = LinkCodeView {
        platform: platform.as_str().into(),
        code,
        instruction,
        deep_link,
        bot_configured: bot.is_some(),
        expires_at: ts(created.expires_at),
    };
    let mut res = (StatusCode::CREATED, Json(view)).into_response();
    res.extensions_mut()
        .insert(NoReplay("this Idempotency-Key already created a link code, which is shown only once; ask for a new one".into()));
    Ok(res)
}

/// Where an agent's link to a platform stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStatusView {
    pub platform: String,
    /// `linked` (at least one chat is bound), `pending` (an unused code is waiting), `expired`
    /// (the newest code expired or was used for a chat unlinked since), `unlinked` (no code was
    /// ever issued).
    pub status: String,
    /// The bound chats: where, and who linked them.
    pub bindings: Vec<BindingView>,
    /// The newest failed attempt to post a reply on this platform, if any.
    pub last_delivery_failure: Option<ChannelFailureView>,
}

/// Whether the agent is linked on a platform, and where.
#[utoipa::path(get, path = "/v1/agents/{id}/{platform}/status", tag = "channels", params(("id" = String, Path), ("platform" = String, Path)),
    responses((status = 200, body = LinkStatusView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, raw)): Path<(String, String)>,
) -> ApiResult<Json<LinkStatusView>> {
    let platform = platform(&raw)?;
    let agent = load_agent(&state, &caller, &id, Need::Read).await?;
    link_status(&state, &agent, platform).await.map(Json)
}

async fn link_status(state: &AppState, agent: &Agent, platform: Platform) -> ApiResult<LinkStatusView> {
    let bindings = state.store.channel_bindings(&agent.id, Some(platform)).await?;
    let status = if !bindings.is_empty() {
        "linked"
    } else {
        match state.store.link_code_state(&agent.id, platform).await? {
            CodeState::Pending => "pending",
            CodeState::Expired => "expired",
            CodeState::None => "unlinked",
        }
    };
    let failure = state.store.last_channel_failure(&agent.id, Some(platform)).await?;
    Ok(LinkStatusView {
        platform: platform.as_str().into(),
        status: status.into(),
        bindings: bindings.into_iter().map(binding_view).collect(),
        last_delivery_failure: failure.map(channel_failure_view),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UnlinkQuery {
    /// Unlink only this chat (default: every chat of the platform).
    pub chat_id: Option<String>,
}

/// The outcome of an unlink.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnlinkedView {
    pub platform: String,
    /// How many chats were unbound.
    pub removed: u64,
}

/// Unbinds the agent's chats on a platform (or one, with `chat_id`).
#[utoipa::path(delete, path = "/v1/agents/{id}/{platform}/unlink", tag = "channels", params(("id" = String, Path), ("platform" = String, Path), UnlinkQuery),
    responses((status = 200, body = UnlinkedView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlink(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, raw)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<UnlinkQuery>,
) -> ApiResult<Json<UnlinkedView>> {
    let platform = platform(&raw)?;
    let agent = load_agent(&state, &caller, &id, Need::Write).await?;
    let removed = state.store.delete_channel_bindings(&agent.id, platform, q.chat_id.as_deref()).await?;
    if removed == 0 {
        let which = q.chat_id.map(|c| format!(" to chat {}", steward_core::ids::shorten(&c))).unwrap_or_default();
        return Err(ApiError::not_found_message(format!(
            "agent {} has no {platform} link{which}; see GET /v1/agents/{}/channels",
            agent.id, agent.id
        )));
    }
    Ok(Json(UnlinkedView { platform: platform.as_str().into(), removed }))
}

/// The agent's bound chats on every platform.
#[utoipa::path(get, path = "/v1/agents/{id}/channels", tag = "channels", params(("id" = String, Path)),
    responses((status = 200, body = List<BindingView>), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<List<BindingView>>> {
    let agent = load_agent(&state, &caller, &id, Need::Read).await?;
    let data = state.store.channel_bindings(&agent.id, None).await?.into_iter().map(binding_view).collect();
    Ok(Json(List { data }))
}

/// Body of `PATCH /v1/agents/{id}/channels/{binding_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBinding {
    /// In groups and channels: `mentions` (default) or `all`.
    pub respond: String,
}

/// Changes when the agent answers in a bound group or channel.
#[utoipa::path(patch, path = "/v1/agents/{id}/channels/{binding_id}", tag = "channels", params(("id" = String, Path), ("binding_id" = String, Path)),
    request_body = UpdateBinding,
    responses((status = 200, body = BindingView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, bid)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateBinding>,
) -> ApiResult<Json<BindingView>> {
    let agent = load_agent(&state, &caller, &id, Need::Write).await?;
    let binding_id = ChannelBindingId::parse(&bid, "binding_id")?;
    let respond = Respond::parse(&body.respond, "respond")?;
    let not_found = || ApiError::not_found("channel binding", &bid);
    let bindings = state.store.channel_bindings(&agent.id, None).await?;
    bindings.iter().find(|b| b.id == binding_id).ok_or_else(not_found)?;
    state.store.set_binding_respond(&binding_id, respond).await?;
    let b = state.store.channel_bindings(&agent.id, None).await?.into_iter().find(|b| b.id == binding_id).ok_or_else(not_found)?;
    Ok(Json(binding_view(b)))
}

/// A sandbox's bot on one platform (never its secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct BotView {
    pub platform: String,
    pub sandbox_id: String,
    pub configured: bool,
    /// The non-secret settings: Discord's `application_id` and `public_key`, WhatsApp's
    /// `phone_number_id`, Telegram's `username` and `bot_id` (learned from `getMe`),
    /// `webhook_url` when the webhook was registered, `paused_message`.
    #[schema(value_type = Object)]
    pub settings: BTreeMap<String, String>,
    /// The names of the stored secret fields (never their values).
    pub secret_fields: Vec<String>,
    /// Where the platform sends events: Telegram's webhook (verified by its secret token),
    /// Slack's Events API Request URL (verified by the signing secret).
    pub webhook_path: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `PUT /v1/channels/{platform}/bot`: the platform's credentials — Telegram
/// `bot_token` (+ `webhook_secret`, minted when absent); Slack `bot_token`, `signing_secret`
/// (+ `app_token`); Discord `application_id`, `public_key`, `bot_token`; WhatsApp
/// `phone_number_id`, `access_token`, `app_secret` — plus the options `sandbox_id`,
/// `paused_message` and (Telegram) `register_webhook` (default true: `setWebhook` at this
/// server's public URL).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PutBot {
    pub sandbox_id: Option<String>,
    /// What senders are told while the agent is paused or stopped (one line).
    pub paused_message: Option<String>,
    pub register_webhook: Option<bool>,
    /// Telegram: `webhook` (default; needs a public URL) or `polling` (`getUpdates` long
    /// polling by one replica, for servers without a public URL).
    pub receive: Option<String>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub credentials: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SandboxQuery {
    /// The sandbox (default: the `Steward-Sandbox` header, else the key's sandbox).
    pub sandbox_id: Option<String>,
}

fn webhook_path(platform: Platform, sandbox: &SandboxId) -> Option<String> {
    match platform {
        Platform::Telegram => Some(format!("/v1/channels/telegram/{sandbox}/webhook")),
        Platform::Slack => Some(format!("/v1/channels/slack/{sandbox}/events")),
        _ => None,
    }
}

fn bot_view(bot: steward_store::ChannelBot, state: &AppState) -> ApiResult<BotView> {
    let secrets = open_bot_secrets(state, &bot)?;
    Ok(BotView {
        platform: bot.platform.as_str().into(),
        webhook_path: webhook_path(bot.platform, &bot.sandbox_id),
        sandbox_id: bot.sandbox_id.to_string(),
        configured: true,
        settings: bot.config,
        secret_fields: secrets.into_keys().collect(),
        created_at: ts(bot.created_at),
        updated_at: ts(bot.updated_at),
    })
}

/// Configures (or replaces) the sandbox's bot on a platform. Telegram's token is checked with
/// `getMe`, and the webhook registered with `setWebhook` unless `register_webhook` is false.
#[utoipa::path(put, path = "/v1/channels/{platform}/bot", tag = "channels", params(("platform" = String, Path)), request_body = PutBot,
    responses((status = 200, body = BotView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn put_bot(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<PutBot>,
) -> ApiResult<Json<BotView>> {
    let platform = platform(&raw)?;
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize_resource(&state, &sandbox, Need::Write, "bot", platform.as_str()).await?;
    let creds = BotCredentials::from_json(platform, &Value::Object(body.credentials.into_iter().collect()), &[])?;
    let mut settings = creds.public.clone();
    let mut secrets = creds.secrets.clone();
    if let Some(m) = body.paused_message {
        if m.trim().is_empty() || m.chars().count() > 500 || m.contains('\0') {
            return Err(ApiError::invalid("paused_message", "one line of 1–500 characters"));
        }
        settings.insert("paused_message".into(), m);
    }
    if body.register_webhook.is_some() && platform != Platform::Telegram {
        return Err(ApiError::invalid("register_webhook", "only Telegram bots register a webhook here"));
    }
    let polling = match body.receive.as_deref() {
        None | Some("webhook") => false,
        Some("polling") if platform == Platform::Telegram => true,
        Some("polling") => return Err(ApiError::invalid("receive", "only Telegram bots can be polled so far")),
        Some(_) => return Err(ApiError::invalid("receive", "use `webhook` or `polling`")),
    };
    if polling && body.register_webhook == Some(true) {
        return Err(ApiError::invalid("register_webhook", "a polled bot has no webhook; drop `register_webhook` or `receive: polling`"));
    }
    if platform == Platform::Telegram {
        let token = Secret::new(secrets["bot_token"].clone());
        let webhook_secret = Secret::new(secrets.entry("webhook_secret".into()).or_insert_with(mint_webhook_secret).clone());
        let api = state.telegram.clone();
        let me = api.get_me(&token).await.map_err(|f| match f.status {
            Some(401 | 404) => {
                ApiError::invalid("bot_token", format!("Telegram refused the bot token ({}); copy it again from @BotFather", f.description))
            }
            _ => ApiError::from_status(
                StatusCode::BAD_GATEWAY,
                format!("cannot check the token with Telegram: {}; try again", f.description),
            ),
        })?;
        settings.insert("bot_id".into(), me.id.to_string());
        if let Some(u) = me.username {
            settings.insert("username".into(), u);
        }
        if polling {
            api.delete_webhook(&token).await.map_err(|f| {
                ApiError::unprocessable(format!("Telegram refused to delete the bot's webhook ({}); try again", f.description))
            })?;
            settings.insert("receive".into(), "polling".into());
        } else if body.register_webhook.unwrap_or(true) {
            let path = webhook_path(platform, &sandbox).expect("telegram has a webhook path");
            let url = format!("{}{path}", state.config.runtime.integrations.public_url.trim_end_matches('/'));
            api.set_webhook(&token, &url, &webhook_secret).await.map_err(|f| {
                ApiError::unprocessable(format!(
                    "Telegram refused the webhook {url} ({}); it must be a public https URL (set --public-url), or send `register_webhook: false`",
                    f.description
                ))
            })?;
            settings.insert("webhook_url".into(), url);
        }
    }
    if platform == Platform::Slack {
        slack::check_bot_token(&state, &secrets, &mut settings).await?;
    }
    let plain = serde_json::to_string(&secrets).expect("a string map serialises");
    secrets.clear();
    let sealed = state.vault.encrypt(sandbox.as_str(), &bot_aad(platform), &plain);
    let bot = state.store.put_channel_bot(&sandbox, platform, &settings, &sealed).await?;
    bot_view(bot, &state).map(Json)
}

fn mint_webhook_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sandbox's bot on a platform (settings only; `configured: false` when there is none).
#[utoipa::path(get, path = "/v1/channels/{platform}/bot", tag = "channels", params(("platform" = String, Path), SandboxQuery),
    responses((status = 200, body = BotView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_bot(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<SandboxQuery>,
) -> ApiResult<Json<Value>> {
    let platform = platform(&raw)?;
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize_resource(&state, &sandbox, Need::Read, "bot", platform.as_str()).await?;
    match state.store.channel_bot(&sandbox, platform).await? {
        Some(bot) => Ok(Json(serde_json::to_value(bot_view(bot, &state)?).expect("a view serialises"))),
        None => Ok(Json(json!({"platform": platform.as_str(), "sandbox_id": sandbox, "configured": false}))),
    }
}

/// Removes the sandbox's bot on a platform (bindings stay and answer again once a bot is set).
#[utoipa::path(delete, path = "/v1/channels/{platform}/bot", tag = "channels", params(("platform" = String, Path), SandboxQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_bot(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<SandboxQuery>,
) -> ApiResult<Json<Value>> {
    let platform = platform(&raw)?;
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize_resource(&state, &sandbox, Need::Write, "bot", platform.as_str()).await?;
    if !state.store.delete_channel_bot(&sandbox, platform).await? {
        return Err(ApiError::not_found_message(format!("sandbox {sandbox} has no {platform} bot; nothing to delete")));
    }
    Ok(Json(json!({"platform": platform.as_str(), "sandbox_id": sandbox, "deleted": true})))
}

/// Receives a Telegram update (public: authenticated by the webhook's secret token).
#[utoipa::path(post, path = "/v1/channels/telegram/{sandbox_id}/webhook", tag = "channels", security(()), params(("sandbox_id" = String, Path)),
    request_body(content = Object, description = "a Telegram `Update`"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn telegram_webhook(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found("telegram bot", &raw);
    let sandbox = SandboxId::parse(&raw, "sandbox_id").map_err(|_| not_found())?;
    let bot = state.store.channel_bot(&sandbox, Platform::Telegram).await?.ok_or_else(not_found)?;
    let mut secrets = open_bot_secrets(&state, &bot)?;
    let expected = secrets.remove("webhook_secret").ok_or_else(|| ApiError::unauthenticated("this bot has no webhook secret"))?;
    let given = headers.get(TELEGRAM_SECRET_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    // Until the sender is authenticated nothing is written.
    if !steward_core::keys::hashes_equal(given, expected.expose()) {
        return Err(ApiError::unauthenticated(
            "missing or wrong X-Telegram-Bot-Api-Secret-Token; the webhook must be registered with this bot's webhook secret",
        ));
    }
    let update: Update =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the body is not a Telegram Update: {e}")))?;
    let token = secrets.remove("bot_token").ok_or_else(|| ApiError::internal("a Telegram bot without a token"))?;
    if !state.store.claim_channel_update(&sandbox, Platform::Telegram, &update.update_id.to_string(), UPDATE_MEMORY_MS).await? {
        return Ok(Json(json!({"ok": true, "duplicate": true})).into_response());
    }
    let bot = Bot::new(sandbox, token, &bot.config);
    let task_state = state.clone();
    state.channel_tasks.spawn(handle_update(task_state, bot, update));
    Ok(Json(json!({"ok": true})).into_response())
}
