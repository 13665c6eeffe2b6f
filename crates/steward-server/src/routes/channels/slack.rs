//! Slack's public Events API endpoint (`POST /v1/channels/slack/{sandbox_id}/events`).
//!
//! The request is authenticated first, with Slack's signing v0 (`X-Slack-Signature` over
//! `v0:{X-Slack-Request-Timestamp}:{raw body}` under the bot's `signing_secret`, a timestamp
//! within 5 minutes, compared in constant time — `steward_core::integration::verify_inbound`,
//! the same check integration triggers use); a missing, stale or forged signature is 401 and
//! nothing is written. A `url_verification` is answered with its `challenge`. An
//! `event_callback` records its `event_id` (Slack retries carry `X-Slack-Retry-Num` and the same
//! id, so they do nothing), is acknowledged at once (Slack wants an answer within 3 s) and
//! handled on a `ChannelTasks` task (`crate::channels::slack`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use steward_core::channel::Platform;
use steward_core::ids::SandboxId;
use steward_core::integration::{InboundVerification, verify_inbound};
use steward_runtime::vault::Secret;

use super::UPDATE_MEMORY_MS;
use crate::AppState;
use crate::channels::open_bot_secrets;
use crate::channels::slack::{Bot, Event, handle_event};
use crate::error::{ApiError, ApiResult, ErrorBody};

/// Slack's documented replay window for signed requests.
const SLACK_TOLERANCE_SECS: u64 = 300;

/// Receives a Slack Events API request (public: authenticated by Slack's request signature).
#[utoipa::path(post, path = "/v1/channels/slack/{sandbox_id}/events", tag = "channels", security(()), params(("sandbox_id" = String, Path)),
    request_body(content = Object, description = "a Slack `url_verification` or `event_callback`"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn slack_events(State(state): State<AppState>, Path(raw): Path<String>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let not_found = || ApiError::not_found("slack bot", &raw);
    let sandbox = SandboxId::parse(&raw, "sandbox_id").map_err(|_| not_found())?;
    let bot = state.store.channel_bot(&sandbox, Platform::Slack).await?.ok_or_else(not_found)?;
    let mut secrets = open_bot_secrets(&state, &bot)?;
    let signing = secrets.remove("signing_secret").ok_or_else(|| ApiError::unauthenticated("this Slack bot has no signing secret"))?;
    let lookup = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let scheme = InboundVerification::SlackV0 { tolerance_secs: SLACK_TOLERANCE_SECS };
    // Until the sender is authenticated nothing is written.
    verify_inbound(&scheme, signing.expose(), &lookup, &body, state.clock.now_ms())
        .map_err(|reason| ApiError::unauthenticated(format!("the Slack request signature was refused: {reason}")))?;
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the body is not a Slack Events API payload: {e}")))?;
    match payload["type"].as_str() {
        Some("url_verification") => {
            let challenge =
                payload["challenge"].as_str().ok_or_else(|| ApiError::bad_request("a url_verification without a `challenge`"))?;
            Ok(Json(json!({"challenge": challenge})).into_response())
        }
        Some("event_callback") => {
            let event_id = payload["event_id"].as_str().ok_or_else(|| ApiError::bad_request("an event_callback without an `event_id`"))?;
            let event: Event = serde_json::from_value(payload["event"].clone())
                .map_err(|e| ApiError::bad_request(format!("the event_callback's `event` is not a Slack event: {e}")))?;
            let token = secrets.remove("bot_token").ok_or_else(|| ApiError::internal("a Slack bot without a token"))?;
            if !state.store.claim_channel_update(&sandbox, Platform::Slack, event_id, UPDATE_MEMORY_MS).await? {
                return Ok(Json(json!({"ok": true, "duplicate": true})).into_response());
            }
            let bot = Bot::new(sandbox, token, &bot.config);
            let task_state = state.clone();
            state.channel_tasks.spawn(handle_event(task_state, bot, event));
            Ok(Json(json!({"ok": true})).into_response())
        }
        // Other envelope types (app_rate_limited…) need no answer beyond the acknowledgement.
        _ => Ok(Json(json!({"ok": true, "ignored": true})).into_response()),
    }
}

/// `PUT /v1/channels/slack/bot`: checks the bot token with `auth.test` (a refused token is 400
/// naming `bot_token`) and keeps who the bot is in its settings (`bot_user_id`, which its own
/// messages and mentions are recognised by; `bot_id`, `team_id`, `team`).
pub(super) async fn check_bot_token(
    state: &AppState,
    secrets: &BTreeMap<String, String>,
    settings: &mut BTreeMap<String, String>,
) -> ApiResult<()> {
    let token = Secret::new(secrets["bot_token"].clone());
    let me = state.slack.auth_test(&token).await.map_err(|f| match f.status {
        Some(400 | 401 | 403) => ApiError::invalid(
            "bot_token",
            format!(
                "Slack refused the bot token ({}); copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page",
                f.description
            ),
        ),
        _ => ApiError::from_status(StatusCode::BAD_GATEWAY, format!("cannot check the token with Slack: {}; try again", f.description)),
    })?;
    settings.insert("bot_user_id".into(), me.user_id);
    for (k, v) in [("bot_id", me.bot_id), ("team_id", me.team_id), ("team", me.team)] {
        if let Some(v) = v {
            settings.insert(k.into(), v);
        }
    }
    Ok(())
}
