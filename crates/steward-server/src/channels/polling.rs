//! Telegram `getUpdates` long polling, for servers without a public URL (a bot configured with
//! `receive: "polling"`).
//!
//! Exactly one poller per bot runs across all replicas: the holder of the bot's lease row
//! (`Store::take_channel_lease`, 25 s, renewed before every `getUpdates` call). A supervisor on
//! every replica looks at the polling bots every `poll_tick` and starts a poller for each lease
//! it can take, so when a holder dies another replica takes over once the lease expires (within
//! 25 s plus a tick of 5 s: 30 s). The offset of the next call is stored in the lease row and moved forward
//! after each batch, so the new holder continues where the last one stopped; an update seen
//! twice (a holder that died between `getUpdates` and storing the offset) is deduplicated on
//! its `update_id` like a webhook redelivery.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use steward_core::channel::Platform;
use steward_core::ids::SandboxId;

use super::telegram::{Bot, Update, handle_update};
use crate::AppState;

/// How long a poller holds its bot's lease without renewing it.
pub const LEASE_MS: i64 = 25_000;
/// How long accepted update ids are remembered (as for the webhook).
const UPDATE_MEMORY_MS: i64 = 24 * 3600 * 1000;

/// Whether a bot is configured to be polled.
pub fn polls(config: &std::collections::BTreeMap<String, String>) -> bool {
    config.get("receive").map(String::as_str) == Some("polling")
}

/// Starts the supervisor (a [`super::ChannelTasks`] task, stopped on shutdown).
pub fn start(state: &AppState) {
    let holder = format!("{}:{}", state.config.runtime.node_id, steward_core::ids::fresh(""));
    let running: Arc<Mutex<HashSet<SandboxId>>> = Arc::default();
    let st = state.clone();
    state.channel_tasks.spawn_worker(async move {
        let mut tick = tokio::time::interval(st.config.channels.poll_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = supervise(&st, &holder, &running).await {
                tracing::warn!(error = %e, "cannot look for Telegram bots to poll");
            }
        }
    });
}

async fn supervise(state: &AppState, holder: &str, running: &Arc<Mutex<HashSet<SandboxId>>>) -> Result<(), steward_store::StoreError> {
    for bot in state.store.channel_bots_of(Platform::Telegram).await? {
        if !polls(&bot.config) || running.lock().expect("poller set").contains(&bot.sandbox_id) {
            continue;
        }
        let Some(offset) = state.store.take_channel_lease(&bot.sandbox_id, Platform::Telegram, holder, LEASE_MS).await? else {
            continue;
        };
        running.lock().expect("poller set").insert(bot.sandbox_id.clone());
        let (st, holder, running, sandbox) = (state.clone(), holder.to_owned(), running.clone(), bot.sandbox_id.clone());
        state.channel_tasks.spawn_worker(async move {
            poll(&st, &sandbox, &holder, offset).await;
            let _ = st.store.release_channel_lease(&sandbox, Platform::Telegram, &holder).await;
            running.lock().expect("poller set").remove(&sandbox);
        });
    }
    Ok(())
}

/// One bot's poller: `getUpdates` from `offset` until the bot stops polling, is deleted, or
/// the lease is lost.
async fn poll(state: &AppState, sandbox: &SandboxId, holder: &str, mut offset: i64) {
    let api = state.telegram.clone();
    let long_poll = state.config.channels.poll_timeout.as_secs().max(1);
    loop {
        let bot = match state.store.channel_bot(sandbox, Platform::Telegram).await {
            Ok(Some(b)) if polls(&b.config) => b,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "a Telegram poller cannot read its bot");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match state.store.take_channel_lease(sandbox, Platform::Telegram, holder, LEASE_MS).await {
            Ok(Some(stored)) => offset = offset.max(stored),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "a Telegram poller cannot renew its lease");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let Ok(mut secrets) = super::open_bot_secrets(state, &bot) else {
            tracing::warn!("a Telegram poller cannot open its bot's secrets; stopping");
            return;
        };
        let Some(token) = secrets.remove("bot_token") else { return };
        let body = json!({"offset": offset, "timeout": long_poll, "allowed_updates": ["message"]});
        let updates = match api.get_updates(&token, &body).await {
            Ok(u) => u,
            Err(f) => {
                tracing::warn!(status = f.status, "Telegram getUpdates failed: {}", f.description);
                tokio::time::sleep(f.retry_after.unwrap_or(Duration::from_secs(2)).min(Duration::from_secs(30))).await;
                continue;
            }
        };
        let handler = Bot::new(sandbox.clone(), token, &bot.config);
        for raw in updates {
            let Ok(update) = serde_json::from_value::<Update>(raw.clone()) else {
                // Skip what cannot be read, but move past it.
                if let Some(id) = raw["update_id"].as_i64() {
                    offset = offset.max(id + 1);
                }
                continue;
            };
            offset = offset.max(update.update_id + 1);
            match state.store.claim_channel_update(sandbox, Platform::Telegram, &update.update_id.to_string(), UPDATE_MEMORY_MS).await {
                Ok(true) => state.channel_tasks.spawn(handle_update(state.clone(), handler.clone(), update)),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot record a Telegram update"),
            }
        }
        if let Err(e) = state.store.set_channel_offset(sandbox, Platform::Telegram, holder, offset).await {
            tracing::warn!(error = %e, "cannot store a Telegram poll offset");
        }
    }
}
