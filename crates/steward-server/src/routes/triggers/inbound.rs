//! The parts of `POST /v1/webhooks/triggers/{trigger_id}` that run before the sender is known to
//! hold the secret: authenticating the delivery (`steward_core::webhook`, or the app's scheme
//! for an integration trigger) and refusing legacy-signature replays. Nothing here writes to the
//! store: a refusal is counted in `steward_webhook_refusals_total{reason}` and answered, so a
//! stranger cannot touch a trigger's `last_error` or anything else.

use axum::http::HeaderMap;
use steward_core::integration::{App, TriggerComponent as Component};
use steward_core::trigger::Trigger;
use steward_core::webhook::{self, Refusal, Refused, Verified};
use steward_store::SignatureOnce;

use crate::AppState;
use crate::error::ApiError;

/// Headers never shown to the input template (they carry secrets or signatures).
pub const HIDDEN_HEADERS: [&str; 7] = [
    "steward-signature",
    "webhook-signature",
    "steward-trigger-token",
    "authorization",
    "cookie",
    "x-telegram-bot-api-secret-token",
    "x-goog-channel-token",
];

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Counts the refusal and turns it into the answer; changes nothing else.
pub fn refuse(state: &AppState, r: Refused) -> ApiError {
    state.metrics.webhook_refused(r.reason);
    match r.reason {
        Refusal::Replayed => ApiError::conflict(r.message).with_kind("replayed_delivery"),
        Refusal::UnknownComponent => ApiError::unprocessable(r.message),
        _ => ApiError::unauthenticated(r.message),
    }
}

/// The app and component of an integration trigger (`None` for a Steward trigger).
pub fn app_of<'a>(state: &'a AppState, trigger: &Trigger) -> Result<Option<(&'a App, &'a Component)>, Refused> {
    let Some(c) = &trigger.config.component else { return Ok(None) };
    match state.runtime.integrations().catalog().component(c) {
        Some(found) => Ok(Some(found)),
        None => Err(Refused {
            reason: Refusal::UnknownComponent,
            message: format!("trigger component `{c}` is no longer in the catalog; the delivery cannot be verified"),
        }),
    }
}

/// Authenticates the delivery: Steward's schemes, or the way the trigger's app signs.
pub fn authenticate(
    state: &AppState,
    trigger: &Trigger,
    secret: &str,
    app: Option<&App>,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> Result<Verified, Refused> {
    let lookup = |name: &str| header(headers, name).map(str::to_owned);
    let Some(app) = app else {
        return webhook::verify(secret, trigger.config.allow_token, &lookup, body, now_ms);
    };
    let Some(scheme) = app.webhook.as_ref() else {
        return Err(Refused { reason: Refusal::UnknownComponent, message: format!("app `{}` sends no events", app.id) });
    };
    let key = state.runtime.integrations().webhook_secret(&app.id).unwrap_or(secret);
    steward_core::integration::verify_inbound(scheme, key, &lookup, body, now_ms)
        .map(|()| Verified::Vendor)
        .map_err(|message| Refused { reason: Refusal::AppSignature, message })
}

/// The delivery id the sender named: the signed `webhook-id` under Standard Webhooks, else
/// `Steward-Delivery` or `Webhook-Id` (unsigned; `None` means each request is a new delivery).
pub fn named_delivery(verified: &Verified, headers: &HeaderMap) -> Option<String> {
    match verified {
        Verified::Standard { id } => Some(id.clone()),
        _ => header(headers, "steward-delivery").or_else(|| header(headers, "webhook-id")).map(str::to_owned),
    }
}

/// The refusal of a legacy signature used before for another delivery.
pub fn replayed() -> Refused {
    Refused {
        reason: Refusal::Replayed,
        message: "this `Steward-Signature` was already used for another delivery: a legacy signature does not cover the delivery \
                  id, so each one is accepted once. Sign every delivery anew (with its own timestamp), or better, sign with \
                  Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), which covers the id"
            .into(),
    }
}

/// For a legacy signature: the record that lets it be accepted once. Whether it was already
/// used for another delivery is decided by `accept_delivery`, in the delivery writer's
/// transaction (no read ahead of it: a replay is refused there as `Delivery::Replayed`).
pub fn claim_once(trigger: &Trigger, verified: &Verified) -> Option<SignatureOnce> {
    verified.once_key(trigger.id.as_str()).map(|(key, expires_at)| SignatureOnce { key, expires_at })
}
