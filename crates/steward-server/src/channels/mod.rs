//! Chat channels (§10) beyond the HTTP surface: the tasks that turn an accepted platform update
//! into a turn and post the reply, and each platform's API client (Telegram and Slack so far).
//!
//! Route handlers answer the platform at once and hand the slow part — admission, waiting for
//! the run, posting the reply — to [`ChannelTasks`], which owns every such task: `serve` stops
//! it on shutdown (the tasks are cancelled after a grace period; a reply cut off then is lost,
//! the run itself is the runtime's and is recovered like any other).
//!
//! This module never returns or logs a bot's secrets: tokens live in [`Secret`]s, request
//! errors are stripped of their URL (Telegram's carries the token) before they are recorded.

mod delivery;
pub mod polling;
pub mod slack;
pub mod telegram;
mod turns;

use std::future::Future;
use std::time::Duration;

use std::collections::BTreeMap;

use steward_core::admission::Refusal;
use steward_core::channel::Platform;
use steward_runtime::vault::Secret;
use steward_store::ChannelBot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The HTTP client of a platform's API, with the same limits for every platform.
fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("the HTTP client builds")
}

/// The owner of the background tasks of chat channels.
#[derive(Debug, Clone, Default)]
pub struct ChannelTasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// Cancelled as shutdown begins: long-lived workers (the pollers) stop at once.
    stopping: CancellationToken,
}

impl ChannelTasks {
    /// Runs `work` in the background until it ends or the server shuts down.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => tracing::debug!("a channel task was cancelled by shutdown"),
                _ = work => {}
            }
        });
    }

    /// Runs a long-lived worker (a poller) until shutdown begins.
    pub fn spawn_worker(&self, work: impl Future<Output = ()> + Send + 'static) {
        let stopping = self.stopping.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = stopping.cancelled() => {}
                _ = work => {}
            }
        });
    }

    /// Stops the workers, waits up to `grace` for the running message tasks, then cancels them.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            self.cancel.cancel();
            self.tracker.wait().await;
        }
    }

    /// How many tasks are running (tests wait for zero).
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}

/// A platform API call that failed: the HTTP status (none for a network error), the platform's
/// description of the error, and how long a 429 asked to wait. Never holds a token.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: Option<u16>,
    pub description: String,
    pub retry_after: Option<Duration>,
}

/// What a chat sender is told when the agent refuses work: for a paused or stopped agent the
/// bot's `paused_message` (default one line saying it is paused), else the refusal's message.
pub(crate) fn refusal_line(refusal: &Refusal, paused_message: Option<&str>) -> String {
    match refusal {
        Refusal::Paused { .. } | Refusal::Stopped { .. } => {
            paused_message.unwrap_or("This agent is paused and is not answering right now.").to_owned()
        }
        other => format!("This agent cannot answer right now: {other}"),
    }
}

/// `text` with every occurrence of the secrets replaced, for error texts that are recorded.
pub(crate) fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if !s.expose().is_empty() {
            out = out.replace(s.expose(), "[redacted]");
        }
    }
    out
}

/// The associated data a bot's sealed secrets are bound to (with its sandbox).
pub(crate) fn bot_aad(platform: Platform) -> String {
    format!("channel-bot:{platform}")
}

/// Opens a bot's sealed secrets (field name → value).
pub(crate) fn open_bot_secrets(state: &crate::AppState, bot: &ChannelBot) -> Result<BTreeMap<String, Secret>, crate::error::ApiError> {
    use crate::error::ApiError;
    let plain = state.vault.decrypt(bot.sandbox_id.as_str(), &bot_aad(bot.platform), &bot.sealed_secrets).map_err(ApiError::internal)?;
    let map: BTreeMap<String, String> = serde_json::from_str(plain.expose()).map_err(ApiError::internal)?;
    Ok(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
}
