//! Posting one message part to a platform with the retry rules every platform shares: a 429
//! waits its `Retry-After`, 5xx and network errors back off, at most [`MAX_ATTEMPTS`] attempts
//! and no single wait over [`MAX_RETRY_AFTER`]; any other refusal stops at once. Every attempt
//! of a bound chat is recorded (`channel_deliveries`), which is what status and summary show.

use std::future::Future;
use std::time::Duration;

use steward_core::channel::Platform;
use steward_core::ids::{AgentId, SandboxId};
use steward_store::ChannelDelivery;

use super::ApiFailure;
use crate::AppState;

/// Attempts per message part (the first and the retries).
pub const MAX_ATTEMPTS: i64 = 4;
/// The longest wait a 429 may ask for before we give up on that message.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whom a bound chat's attempts are recorded against.
pub(crate) struct Recorded<'a> {
    pub sandbox_id: &'a SandboxId,
    pub agent_id: &'a AgentId,
    pub platform: Platform,
    pub chat_id: &'a str,
}

/// Calls `post` until it succeeds or the rules above give up; `true` when the part was posted.
pub(crate) async fn deliver<F, Fut>(state: &AppState, record: Option<&Recorded<'_>>, mut post: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ApiFailure>>,
{
    for attempt in 1..=MAX_ATTEMPTS {
        let outcome = post().await;
        if let Some(r) = record {
            let row = ChannelDelivery {
                sandbox_id: r.sandbox_id.clone(),
                agent_id: r.agent_id.clone(),
                platform: r.platform,
                chat_id: r.chat_id.to_owned(),
                attempt,
                ok: outcome.is_ok(),
                status_code: match &outcome {
                    Ok(()) => Some(200),
                    Err(f) => f.status.map(i64::from),
                },
                error: outcome.as_ref().err().map(|f| f.description.clone()),
                created_at: 0,
            };
            if let Err(e) = state.store.record_channel_delivery(&row).await {
                tracing::warn!(error = %e, "cannot record a chat delivery attempt");
            }
        }
        let failure = match outcome {
            Ok(()) => return true,
            Err(f) => f,
        };
        let wait = match failure.status {
            Some(429) => failure.retry_after.unwrap_or(Duration::from_secs(1)),
            None | Some(500..) => Duration::from_millis(500 * (1 << attempt)),
            // The platform refused the message itself (chat gone, bot blocked): retrying won't help.
            Some(_) => {
                tracing::warn!(status = failure.status, "the platform refused a reply: {}", failure.description);
                return false;
            }
        };
        if attempt == MAX_ATTEMPTS || wait > MAX_RETRY_AFTER {
            tracing::warn!(status = failure.status, "a reply was given up: {}", failure.description);
            return false;
        }
        tokio::time::sleep(wait).await;
    }
    false
}
