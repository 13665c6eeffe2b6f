//! What every platform does with an accepted message once it has read it: redeem a link code
//! (and say in one line what happened), or make the text a turn of the bound chat's
//! conversation and wait for the agent's reply text. The platform modules only parse their
//! wire format and post the answer; the rules here are the same for all of them.
//!
//! Never posts anything itself and never logs a message's text.

use std::collections::BTreeMap;

use steward_core::channel::{ChannelBinding, ChatKind, ChatRef, Platform, code_hash};
use steward_core::ids::SandboxId;
use steward_core::session::RunStatus;
use steward_runtime::admission::{Admission, AdmitError, OnBusy, Origin, Scope};
use steward_store::Redemption;

use crate::AppState;
use crate::views::{InputMessage, check_input, output_text};

/// The platform user a message came from.
pub(crate) struct Sender {
    pub id: String,
    pub name: Option<String>,
}

/// Redeems the code sent as `/link CODE` from `chat` and says what happened, in one line.
pub(crate) async fn redeem(state: &AppState, sandbox: &SandboxId, platform: Platform, arg: Option<&str>, chat: &ChatRef) -> String {
    let Some(arg) = arg else { return "Send /link followed by the link code, for example /link ABCD234567.".into() };
    let Some(hash) = code_hash(arg) else { return "That is not a valid link code; ask the agent's owner for a new one.".into() };
    match state.store.redeem_link_code(sandbox, platform, &hash, chat).await {
        Ok(Redemption::Bound(b)) => {
            let name = state.store.agent(&b.agent_id).await.ok().flatten().map(|a| a.config.name).unwrap_or_else(|| b.agent_id.to_string());
            match b.chat_kind {
                ChatKind::Dm => format!("Linked: this chat now talks to agent {name}."),
                ChatKind::Group => format!("Linked: this group now talks to agent {name}; mention me or reply to me to ask it something."),
                ChatKind::Channel => format!("Linked: this channel now talks to agent {name}; mention me to ask it something."),
            }
        }
        Ok(Redemption::Unknown) => "That link code is not valid for this bot; ask the agent's owner for a new one.".into(),
        Ok(Redemption::Used) => "That link code was already used; ask the agent's owner for a new one.".into(),
        Ok(Redemption::Expired) => "That link code has expired; ask the agent's owner for a new one.".into(),
        Ok(Redemption::AgentGone) => "That link code's agent no longer exists.".into(),
        Err(e) => {
            tracing::warn!(error = %e, %platform, "cannot redeem a link code");
            "Something went wrong on our side; try again in a minute.".into()
        }
    }
}

/// Makes `content` a turn of the binding's conversation (counterparty `<platform>:<chat id>`)
/// and waits for the reply text (or the one line saying why there is none).
pub(crate) async fn turn(state: &AppState, paused_message: Option<&str>, binding: &ChannelBinding, from: &Sender, content: &str) -> String {
    let platform = binding.platform;
    let failed = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, %platform, "a chat message could not become a turn");
        "Something went wrong on our side; try again in a minute.".to_owned()
    };
    let agent = match state.store.agent(&binding.agent_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return "The agent this chat was linked to no longer exists.".into(),
        Err(e) => return failed(&e),
    };
    let input = match check_input(&[InputMessage { role: "user".into(), content: content.to_owned() }]) {
        Ok(i) => i,
        Err(e) => return format!("I cannot take that message: {}", e.message),
    };
    let counterparty = format!("{platform}:{}", binding.chat_id);
    let existing = match state.store.latest_session_with(&agent.id, &counterparty).await {
        Ok(s) => s.filter(|s| s.end_user.is_none()),
        Err(e) => return failed(&e),
    };
    let mut metadata = BTreeMap::from([
        ("channel".to_owned(), platform.as_str().to_owned()),
        ("binding_id".to_owned(), binding.id.to_string()),
        ("chat_id".to_owned(), binding.chat_id.clone()),
        ("chat_kind".to_owned(), binding.chat_kind.as_str().to_owned()),
        ("user_id".to_owned(), from.id.clone()),
    ]);
    if let Some(name) = &from.name {
        metadata.insert("user_name".to_owned(), name.clone());
    }
    let scope = match &existing {
        Some(session) => Scope::Turn(session),
        None => Scope::New { end_user: None, counterparty: Some(counterparty), metadata },
    };
    let admission = Admission { agent: &agent, scope, input: &input, on_busy: OnBusy::Enqueue, origin: Origin::Channel, claim: None };
    let admitted = match state.runtime.admit(admission).await {
        Ok(a) => a,
        Err(AdmitError::Refused(r)) => return super::refusal_line(&r, paused_message),
        Err(AdmitError::Store(e)) => return failed(&e),
    };
    let (session, run) = (admitted.session, admitted.run);
    let done = match state.runtime.wait_for(&run.id, &session.id, state.config.channels.reply_timeout).await {
        Ok(Some(done)) => done,
        Ok(None) => return "The agent is taking too long to answer; try again later.".into(),
        Err(e) => return failed(&e),
    };
    match done.status {
        RunStatus::Completed => match output_text(state, &session.id, &done.id).await {
            Ok(t) if t.trim().is_empty() => "(the agent finished without a reply)".into(),
            Ok(t) => t,
            Err(e) => failed(&e.message),
        },
        RunStatus::Cancelled => "The agent's answer was cancelled.".into(),
        _ => format!("The agent could not answer: {}", done.error_message.unwrap_or_else(|| "its run failed".into())),
    }
}
