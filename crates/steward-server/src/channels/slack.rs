//! Slack: the Web API client (`auth.test`, `chat.postMessage` over our reqwest with the bot
//! token as `Authorization: Bearer`, at a configurable base URL), the part of an Events API
//! `event_callback` we read, and what an accepted event does — redeem a link code, or become a
//! turn of the bound chat's conversation and post the agent's reply in the message's thread.
//!
//! Rules: messages with a `bot_id` or a `subtype` (edits, deletions, joins, bots' posts) and the
//! bot's own user are ignored. Direct messages (`message` with `channel_type: im`) are always
//! answered; in channels the agent answers `app_mention` events, and plain `message` events
//! only when the binding says `all` (a message that mentions the bot is answered through its
//! `app_mention`, which Slack sends too, so it is not answered twice). `link CODE` (or
//! `/link CODE`; in a channel `@bot link CODE`) redeems a code. A reply goes to the thread of
//! the incoming message (its `thread_ts`, else its `ts`), split at paragraph breaks into
//! messages of at most 4000 characters, as plain text.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use steward_core::channel::{ChannelBinding, ChatKind, ChatRef, Platform, Respond, split_message};
use steward_core::ids::{AgentId, SandboxId};
use steward_runtime::vault::Secret;

use super::ApiFailure;
use super::delivery::{Recorded, deliver};
use super::turns::{Sender, redeem, turn};
use crate::AppState;

/// The `event` of an `event_callback` (the fields we read; everything else is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub channel: Option<String>,
    /// `im` for a direct message (`message` events only).
    pub channel_type: Option<String>,
    pub user: Option<String>,
    pub bot_id: Option<String>,
    pub subtype: Option<String>,
    pub text: Option<String>,
    pub ts: Option<String>,
    pub thread_ts: Option<String>,
}

/// Who the bot is (`auth.test`).
#[derive(Debug, Clone)]
pub struct BotInfo {
    pub user_id: String,
    pub bot_id: Option<String>,
    pub team_id: Option<String>,
    pub team: Option<String>,
}

/// The Slack Web API at a base URL.
#[derive(Debug, Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
}

impl SlackApi {
    pub fn new(base: &str) -> Self {
        Self { http: super::api_client(), base: base.trim_end_matches('/').to_owned() }
    }

    /// One Web API method. Slack answers most errors with HTTP 200 and `{"ok": false, "error"}`;
    /// those are returned as a failure with status 400 (so they are not retried), a 429 with
    /// its `Retry-After`.
    async fn call(&self, token: &Secret, method: &str, body: &Value) -> Result<Value, ApiFailure> {
        let url = format!("{}/{method}", self.base);
        let res = self.http.post(url).bearer_auth(token.expose()).json(body).send().await.map_err(|e| ApiFailure {
            status: None,
            description: format!("cannot reach the Slack Web API: {}", e.without_url()),
            retry_after: None,
        })?;
        let status = res.status();
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let text = res.text().await.unwrap_or_default();
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && parsed["ok"] == true {
            return Ok(parsed);
        }
        let description = parsed["error"].as_str().map(str::to_owned).unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let status = if status.is_success() { 400 } else { status.as_u16() };
        Err(ApiFailure {
            status: Some(status),
            description: super::scrub(&description, &[token]),
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    /// `auth.test`: checks the token and says who the bot is.
    pub async fn auth_test(&self, token: &Secret) -> Result<BotInfo, ApiFailure> {
        let me = self.call(token, "auth.test", &json!({})).await?;
        let text = |k: &str| me[k].as_str().map(str::to_owned);
        Ok(BotInfo { user_id: text("user_id").unwrap_or_default(), bot_id: text("bot_id"), team_id: text("team_id"), team: text("team") })
    }

    /// `chat.postMessage` (plain text) in a thread.
    pub async fn post_message(&self, token: &Secret, channel: &str, text: &str, thread_ts: Option<&str>) -> Result<(), ApiFailure> {
        let mut body = json!({"channel": channel, "text": text});
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        self.call(token, "chat.postMessage", &body).await.map(|_| ())
    }
}

/// A sandbox's Slack bot as the handlers need it.
#[derive(Debug, Clone)]
pub struct Bot {
    pub sandbox_id: SandboxId,
    pub token: Secret,
    /// The bot's own user id (`auth.test`), to ignore its messages and find its mentions.
    pub user_id: Option<String>,
    pub paused_message: Option<String>,
}

impl Bot {
    /// The bot's settings from its stored, non-secret config and its opened token.
    pub fn new(sandbox_id: SandboxId, token: Secret, config: &BTreeMap<String, String>) -> Self {
        Bot { sandbox_id, token, user_id: config.get("bot_user_id").cloned(), paused_message: config.get("paused_message").cloned() }
    }
}

/// Where a reply goes and whom its attempts are recorded against.
struct Target<'a> {
    channel: &'a str,
    thread_ts: Option<&'a str>,
    agent: Option<&'a AgentId>,
}

/// Handles one accepted (authenticated, not duplicate) event. Runs in a [`super::ChannelTasks`]
/// task; never panics on odd input, and tells the sender in one line when it cannot help.
pub async fn handle_event(state: AppState, bot: Bot, event: Event) {
    if event.bot_id.is_some() || event.subtype.is_some() {
        return;
    }
    let (Some(user), Some(channel)) = (event.user.clone(), event.channel.clone()) else { return };
    if Some(&user) == bot.user_id.as_ref() {
        return;
    }
    let kind = match (event.kind.as_str(), event.channel_type.as_deref()) {
        ("message", Some("im")) => ChatKind::Dm,
        ("message", Some("mpim")) => ChatKind::Group,
        ("message", _) | ("app_mention", _) => ChatKind::Channel,
        _ => return,
    };
    let mentioned = event.kind == "app_mention";
    let raw = event.text.as_deref().unwrap_or("");
    if !mentioned && kind != ChatKind::Dm && bot.user_id.as_ref().is_some_and(|me| raw.contains(&format!("<@{me}>"))) {
        // Answered through the app_mention event Slack sends for the same message.
        return;
    }
    let text = without_mentions(raw, bot.user_id.as_deref());
    let thread_ts = event.thread_ts.as_deref().or(event.ts.as_deref());
    let here = Target { channel: &channel, thread_ts, agent: None };
    if (kind == ChatKind::Dm || mentioned)
        && let Some(arg) = link_argument(&text)
    {
        let chat = ChatRef { chat_id: channel.clone(), chat_kind: kind, chat_title: None, user_id: user.clone(), user_name: None };
        let line = redeem(&state, &bot.sandbox_id, Platform::Slack, arg, &chat).await;
        send(&state, &bot, &here, &line).await;
        return;
    }
    let binding = match state.store.channel_binding_for_chat(&bot.sandbox_id, Platform::Slack, &channel).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a Slack chat's binding");
            return;
        }
    };
    let Some(binding) = binding else {
        if kind == ChatKind::Dm {
            let line = "This chat is not linked to an agent yet: send link CODE with a link code from the agent's owner.";
            send(&state, &bot, &here, line).await;
        }
        return;
    };
    if !addressed(&binding, mentioned) {
        return;
    }
    let target = Target { agent: Some(&binding.agent_id), ..here };
    if text.is_empty() {
        send(&state, &bot, &target, "Only text messages are supported for now.").await;
        return;
    }
    let sender = Sender { id: user, name: None };
    let line = turn(&state, bot.paused_message.as_deref(), &binding, &sender, &text).await;
    send(&state, &bot, &target, &line).await;
}

/// The text without the bot's `<@U…>` mentions, trimmed.
fn without_mentions(text: &str, me: Option<&str>) -> String {
    match me {
        Some(me) => text.replace(&format!("<@{me}>"), "").trim().to_owned(),
        None => text.trim().to_owned(),
    }
}

/// `link CODE` or `/link CODE`: `Some(first argument)` (which may be absent); `None` for any
/// other text.
fn link_argument(text: &str) -> Option<Option<&str>> {
    let mut words = text.split_whitespace();
    let head = words.next()?;
    head.trim_start_matches('/').eq_ignore_ascii_case("link").then(|| words.next())
}

/// Whether the agent answers in its bound chat: direct messages always; channels when the bot
/// is mentioned, or on every message when the binding says `all`.
fn addressed(binding: &ChannelBinding, mentioned: bool) -> bool {
    binding.chat_kind == ChatKind::Dm || binding.respond == Respond::All || mentioned
}

/// Posts `text` in the target thread, split for Slack's limit, with the shared retry rules;
/// records every attempt when the chat is bound to an agent.
async fn send(state: &AppState, bot: &Bot, target: &Target<'_>, text: &str) {
    let record = target.agent.map(|agent| Recorded {
        sandbox_id: &bot.sandbox_id,
        agent_id: agent,
        platform: Platform::Slack,
        chat_id: target.channel,
    });
    for part in split_message(text, Platform::Slack.message_limit()) {
        if !deliver(state, record.as_ref(), || state.slack.post_message(&bot.token, target.channel, &part, target.thread_ts)).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_commands_and_mentions_are_read() {
        assert_eq!(link_argument("link ABC"), Some(Some("ABC")));
        assert_eq!(link_argument("/LINK ABC extra"), Some(Some("ABC")));
        assert_eq!(link_argument("link"), Some(None));
        assert_eq!(link_argument("linking ABC"), None);
        assert_eq!(link_argument(""), None);
        assert_eq!(without_mentions("<@U1> link ABC", Some("U1")), "link ABC");
        assert_eq!(without_mentions(" hi <@U2> ", Some("U1")), "hi <@U2>");
    }
}
