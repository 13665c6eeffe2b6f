//! Wire types and conversions shared by several resources' routes (§4): input messages and
//! their validation, usage, runs as the API shows them, the end-user parameter of delegate
//! keys, and the text a run wrote. Route modules share these through here, never through each
//! other.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_core::ids::{RunId, SessionId};
use steward_core::session::Run;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::ts;

/// The header delegate-key clients may use instead of `end_user` parameters.
pub const END_USER_HEADER: &str = "steward-end-user";

/// One input message.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputMessage {
    /// `user` (or `assistant`, to seed a conversation).
    pub role: String,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Validates input messages: 1–100, roles `user`/`assistant`, the last one from the user.
pub(crate) fn check_input(input: &[InputMessage]) -> ApiResult<Value> {
    if input.is_empty() || input.len() > 100 {
        return Err(ApiError::invalid("input", "send 1–100 input messages, the last one with role `user`"));
    }
    for (i, m) in input.iter().enumerate() {
        if m.role != "user" && m.role != "assistant" {
            return Err(ApiError::invalid(
                format!("input[{i}].role"),
                format!(
                    "`{}` is not an input role; use `user` (or `assistant` to seed a conversation)",
                    steward_core::ids::shorten(&m.role)
                ),
            ));
        }
        if m.content.contains('\0') {
            return Err(ApiError::invalid(format!("input[{i}].content"), "contains a NUL character"));
        }
    }
    if input.last().map(|m| m.role.as_str()) != Some("user") {
        return Err(ApiError::invalid("input", "the last input message must have role `user`"));
    }
    Ok(serde_json::to_value(input).expect("input serialises"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EndUserQuery {
    /// Delegate keys: the end user (or the `Steward-End-User` header).
    pub end_user: Option<String>,
}

/// What went wrong in a failed run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// A run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub session_id: String,
    pub agent_id: String,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    pub stop_reason: Option<String>,
    pub error: Option<RunError>,
    pub usage: UsageView,
    /// The input messages of the run (`[{"role", "content"}, …]`; a trigger's run also has
    /// `trigger`).
    #[schema(value_type = Vec<Object>)]
    pub input: Value,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
}

pub(crate) fn run_view(r: Run) -> RunView {
    let duration_ms = r.duration_ms();
    let error = match (r.error_type, r.status) {
        (Some(kind), _) => Some(RunError { kind, message: r.error_message.clone().unwrap_or_default() }),
        _ => None,
    };
    RunView {
        id: r.id.to_string(),
        session_id: r.session_id.to_string(),
        agent_id: r.agent_id.to_string(),
        status: r.status.as_str().into(),
        stop_reason: r.stop_reason,
        error,
        usage: UsageView { input_tokens: r.input_tokens, output_tokens: r.output_tokens },
        input: r.input,
        created_at: ts(r.created_at),
        started_at: r.started_at.map(ts),
        finished_at: r.finished_at.map(ts),
        duration_ms,
    }
}

/// The full text the model wrote in `run`.
pub(crate) async fn output_text(state: &AppState, session: &SessionId, run: &RunId) -> ApiResult<String> {
    Ok(state
        .store
        .conversation(session)
        .await?
        .into_iter()
        .filter(|m| &m.run_id == run && m.role == "assistant")
        .flat_map(|m| text_of(&m.content))
        .collect::<Vec<_>>()
        .join(""))
}

/// The text parts of a stored message's content.
pub(crate) fn text_of(content: &Value) -> Vec<String> {
    content["parts"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["type"] == "text").filter_map(|p| p["text"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The newest failed attempt to post a chat reply (§10).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelFailureView {
    pub platform: String,
    pub chat_id: String,
    /// Which try of that message part it was (1 = the first).
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub at: String,
}

pub(crate) fn channel_failure_view(f: steward_store::ChannelDelivery) -> ChannelFailureView {
    ChannelFailureView {
        platform: f.platform.as_str().into(),
        chat_id: f.chat_id,
        attempt: f.attempt,
        status_code: f.status_code,
        error: f.error,
        at: ts(f.created_at),
    }
}
