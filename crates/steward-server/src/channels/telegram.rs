//! Telegram: the Bot API client (`getMe`, `setWebhook`, `sendMessage` over our reqwest, at a
//! configurable base URL), the part of the `Update` object we read, and what an accepted update
//! does — redeem a link code, or become a turn of the bound chat's conversation and post the
//! agent's reply.
//!
//! Rules: bots' messages (the bot itself included) are ignored; in groups the agent answers
//! only when mentioned (`@username`) or replied to, unless the binding says `all`; direct
//! messages are always answered. A reply is split at paragraph breaks into messages of at most
//! 4096 characters, sent as plain text (no `parse_mode`, so no markup can be rejected); a 429 is
//! retried after its `retry_after` (`super::delivery`: at most 30 s each, 4 attempts); every
//! attempt is recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use steward_core::channel::{ChannelBinding, ChatKind, ChatRef, Platform, Respond, split_message};
use steward_core::ids::{AgentId, SandboxId};
use steward_runtime::vault::Secret;

use super::delivery::{Recorded, deliver};
use super::turns::{Sender, redeem, turn};
use crate::AppState;

/// A Telegram `Update` (the fields we read; everything else is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
    pub from: Option<User>,
    pub text: Option<String>,
    pub reply_to_message: Option<Box<Message>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: String,
}

impl User {
    fn display_name(&self) -> String {
        match &self.username {
            Some(u) if self.first_name.is_empty() => format!("@{u}"),
            _ => self.first_name.clone(),
        }
    }
}

/// Who the bot is (`getMe`).
#[derive(Debug, Clone)]
pub struct BotInfo {
    pub id: i64,
    pub username: Option<String>,
}

pub use super::ApiFailure;

/// The Bot API at a base URL.
#[derive(Debug, Clone)]
pub struct TelegramApi {
    http: reqwest::Client,
    base: String,
}

impl TelegramApi {
    pub fn new(base: &str) -> Self {
        Self { http: super::api_client(), base: base.trim_end_matches('/').to_owned() }
    }

    async fn call(&self, token: &Secret, method: &str, body: &Value) -> Result<Value, ApiFailure> {
        let url = format!("{}/bot{}/{method}", self.base, token.expose());
        let res = self.http.post(url).json(body).send().await.map_err(|e| ApiFailure {
            status: None,
            // The URL holds the token.
            description: format!("cannot reach the Telegram Bot API: {}", e.without_url()),
            retry_after: None,
        })?;
        let status = res.status();
        let header_retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let text = res.text().await.unwrap_or_default();
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && parsed["ok"] == true {
            return Ok(parsed["result"].clone());
        }
        let retry = parsed["parameters"]["retry_after"].as_u64().or(header_retry);
        let description = parsed["description"].as_str().map(str::to_owned).unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        Err(ApiFailure {
            status: Some(status.as_u16()),
            description: super::scrub(&description, &[token]),
            retry_after: retry.map(Duration::from_secs),
        })
    }

    /// `getMe`: checks the token and says who the bot is.
    pub async fn get_me(&self, token: &Secret) -> Result<BotInfo, ApiFailure> {
        let me = self.call(token, "getMe", &json!({})).await?;
        Ok(BotInfo { id: me["id"].as_i64().unwrap_or_default(), username: me["username"].as_str().map(str::to_owned) })
    }

    /// `setWebhook` with a `secret_token`, for messages only.
    pub async fn set_webhook(&self, token: &Secret, url: &str, secret: &Secret) -> Result<(), ApiFailure> {
        let body = json!({"url": url, "secret_token": secret.expose(), "allowed_updates": ["message"]});
        self.call(token, "setWebhook", &body).await.map(|_| ())
    }

    /// `deleteWebhook` (Telegram refuses `getUpdates` while a webhook is set).
    pub async fn delete_webhook(&self, token: &Secret) -> Result<(), ApiFailure> {
        self.call(token, "deleteWebhook", &json!({})).await.map(|_| ())
    }

    /// `getUpdates` (`body`: `offset`, `timeout`, `allowed_updates`): the updates as JSON.
    pub async fn get_updates(&self, token: &Secret, body: &Value) -> Result<Vec<Value>, ApiFailure> {
        let result = self.call(token, "getUpdates", body).await?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// `sendMessage` (plain text).
    pub async fn send_message(&self, token: &Secret, chat_id: i64, text: &str, reply_to: Option<i64>) -> Result<(), ApiFailure> {
        let mut body = json!({"chat_id": chat_id, "text": text});
        if let Some(r) = reply_to {
            body["reply_to_message_id"] = json!(r);
        }
        self.call(token, "sendMessage", &body).await.map(|_| ())
    }
}

/// A sandbox's Telegram bot as the handlers need it.
#[derive(Debug, Clone)]
pub struct Bot {
    pub sandbox_id: SandboxId,
    pub token: Secret,
    pub id: Option<i64>,
    pub username: Option<String>,
    /// What senders are told when the agent is paused or stopped.
    pub paused_message: Option<String>,
}

impl Bot {
    /// The bot's settings from its stored, non-secret config and its opened token.
    pub fn new(sandbox_id: SandboxId, token: Secret, config: &BTreeMap<String, String>) -> Self {
        Bot {
            sandbox_id,
            token,
            id: config.get("bot_id").and_then(|v| v.parse().ok()),
            username: config.get("username").cloned(),
            paused_message: config.get("paused_message").cloned(),
        }
    }
}

/// Where a reply goes and whom its attempts are recorded against.
struct Target<'a> {
    chat_id: i64,
    reply_to: Option<i64>,
    agent: Option<&'a AgentId>,
}

/// Handles one accepted (authenticated, not duplicate) update. Runs in a [`super::ChannelTasks`]
/// task; never panics on odd input, and tells the sender in one line when it cannot help.
pub async fn handle_update(state: AppState, bot: Bot, update: Update) {
    let Some(msg) = update.message else { return };
    let Some(from) = msg.from.clone() else { return };
    if from.is_bot || Some(from.id) == bot.id {
        return;
    }
    let kind = match msg.chat.kind.as_str() {
        "private" => ChatKind::Dm,
        "group" | "supergroup" => ChatKind::Group,
        _ => return,
    };
    let api = state.telegram.clone();
    let here = Target { chat_id: msg.chat.id, reply_to: Some(msg.message_id), agent: None };
    let text = msg.text.as_deref().unwrap_or("").trim();
    if let Some((command, arg)) = command_of(text, bot.username.as_deref()) {
        if command == "link" || (command == "start" && arg.is_some()) {
            let chat = ChatRef {
                chat_id: msg.chat.id.to_string(),
                chat_kind: kind,
                chat_title: msg.chat.title.clone(),
                user_id: from.id.to_string(),
                user_name: Some(from.display_name()),
            };
            let line = redeem(&state, &bot.sandbox_id, Platform::Telegram, arg, &chat).await;
            send(&state, &api, &bot, &here, &line).await;
            return;
        }
        if command == "start" {
            let line = "Hello! To talk to an agent here, send /link CODE with a link code from the agent's owner.";
            send(&state, &api, &bot, &here, line).await;
            return;
        }
    }
    let binding = match state.store.channel_binding_for_chat(&bot.sandbox_id, Platform::Telegram, &msg.chat.id.to_string()).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a Telegram chat's binding");
            return;
        }
    };
    let Some(binding) = binding else {
        if kind == ChatKind::Dm {
            let line = "This chat is not linked to an agent yet: send /link CODE with a link code from the agent's owner.";
            send(&state, &api, &bot, &here, line).await;
        }
        return;
    };
    if !addressed(&binding, &msg, &bot) {
        return;
    }
    let target = Target { agent: Some(&binding.agent_id), ..here };
    if text.is_empty() {
        send(&state, &api, &bot, &target, "Only text messages are supported for now.").await;
        return;
    }
    let content = match &bot.username {
        Some(u) => text.replace(&format!("@{u}"), "").trim().to_owned(),
        None => text.to_owned(),
    };
    let sender = Sender { id: from.id.to_string(), name: Some(from.display_name()) };
    let line = turn(&state, bot.paused_message.as_deref(), &binding, &sender, &content).await;
    send(&state, &api, &bot, &target, &line).await;
}

/// `/command[@bot] [arg]`: the command (lower-case) and its first argument; `None` for a text
/// that is not a command, or a command addressed to another bot.
fn command_of<'t>(text: &'t str, username: Option<&str>) -> Option<(String, Option<&'t str>)> {
    let rest = text.strip_prefix('/')?;
    let mut words = rest.split_whitespace();
    let head = words.next()?;
    let (command, to) = match head.split_once('@') {
        Some((c, to)) => (c, Some(to)),
        None => (head, None),
    };
    if let (Some(to), Some(me)) = (to, username)
        && !to.eq_ignore_ascii_case(me)
    {
        return None;
    }
    Some((command.to_ascii_lowercase(), words.next()))
}

/// Whether the agent answers `msg` in its bound chat: direct messages always; groups when the
/// binding says `all`, or the bot is mentioned or replied to.
fn addressed(binding: &ChannelBinding, msg: &Message, bot: &Bot) -> bool {
    if binding.chat_kind == ChatKind::Dm || binding.respond == Respond::All {
        return true;
    }
    let text = msg.text.as_deref().unwrap_or("").to_ascii_lowercase();
    let mentioned = bot.username.as_ref().is_some_and(|u| text.contains(&format!("@{}", u.to_ascii_lowercase())));
    let replied = msg.reply_to_message.as_ref().and_then(|r| r.from.as_ref()).is_some_and(|f| Some(f.id) == bot.id);
    mentioned || replied
}

/// Posts `text` to the target chat, split for Telegram's limit, retrying 429s and transient
/// failures; records every attempt when the chat is bound to an agent.
async fn send(state: &AppState, api: &TelegramApi, bot: &Bot, target: &Target<'_>, text: &str) {
    let chat_id = target.chat_id.to_string();
    let record = target.agent.map(|agent| Recorded {
        sandbox_id: &bot.sandbox_id,
        agent_id: agent,
        platform: Platform::Telegram,
        chat_id: &chat_id,
    });
    for (i, part) in split_message(text, Platform::Telegram.message_limit()).iter().enumerate() {
        let reply_to = if i == 0 { target.reply_to } else { None };
        if !deliver(state, record.as_ref(), || api.send_message(&bot.token, target.chat_id, part, reply_to)).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_and_other_bots_commands_skipped() {
        assert_eq!(command_of("/link ABC", Some("me_bot")), Some(("link".into(), Some("ABC"))));
        assert_eq!(command_of("/LINK@Me_Bot ABC extra", Some("me_bot")), Some(("link".into(), Some("ABC"))));
        assert_eq!(command_of("/link@other_bot ABC", Some("me_bot")), None);
        assert_eq!(command_of("/start", None), Some(("start".into(), None)));
        assert_eq!(command_of("hello /link", None), None);
        assert_eq!(command_of("/", None), None);
    }
}
