//! Email one-time-code login (§1): request a code, exchange it for a short-lived session token.
//!
//! The answer to "send me a code" is the same whether or not the address has an account, so
//! the endpoint cannot be used to discover who is registered. Codes are six digits, hashed at
//! rest, valid 10 minutes, single-use, and locked after 5 wrong guesses; at most 5 codes per
//! address per 15 minutes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use steward_core::keys;
use steward_core::tenancy::Email;
use steward_store::LoginCodeCheck;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::ts;

const CODE_TTL_MS: i64 = 10 * 60 * 1000;
const RATE_WINDOW_MS: i64 = 15 * 60 * 1000;
const MAX_CODES_PER_WINDOW: i64 = 5;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    /// The account's email address.
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginStarted {
    /// Always true: a code was sent if the address has an account.
    pub sent: bool,
    pub expires_in_seconds: i64,
}

/// Sends a one-time sign-in code to an email address.
#[utoipa::path(post, path = "/v1/auth/email/start", tag = "auth", security(()), request_body = LoginStart,
    responses((status = 202, body = LoginStarted), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn start(State(state): State<AppState>, ApiJson(body): ApiJson<LoginStart>) -> ApiResult<(StatusCode, Json<LoginStarted>)> {
    let email = Email::parse(&body.email, "email")?;
    let now = state.clock.now_ms();
    if state.store.login_codes_since(&email, now - RATE_WINDOW_MS).await? >= MAX_CODES_PER_WINDOW {
        return Err(ApiError::rate_limited(
            "too many codes requested for this address; wait 15 minutes and try again",
            (RATE_WINDOW_MS / 1000) as u64,
        ));
    }
    match state.store.account_by_email(&email).await? {
        Some(_) => {
            let code = keys::login_code();
            state.store.put_login_code(&email, &code, CODE_TTL_MS).await?;
            state.mailer.send_login_code(email.as_str(), &code, CODE_TTL_MS / 60_000).await.map_err(ApiError::internal)?;
        }
        None => {
            tracing::info!("login code requested for an address without an account");
            state
                .mailer
                .note(&format!(
                    "to={} no account has this address; no code sent (create it with `steward admin create-account --email {}`)",
                    email.as_str(),
                    email.as_str()
                ))
                .await;
        }
    }
    Ok((StatusCode::ACCEPTED, Json(LoginStarted { sent: true, expires_in_seconds: CODE_TTL_MS / 1000 })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginVerify {
    pub email: String,
    /// The six-digit code from the mail.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionToken {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: String,
    pub expires_at: String,
    pub account_id: String,
}

/// Exchanges a code for a session token.
#[utoipa::path(post, path = "/v1/auth/email/verify", tag = "auth", security(()), request_body = LoginVerify,
    responses((status = 200, body = SessionToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn verify(State(state): State<AppState>, ApiJson(body): ApiJson<LoginVerify>) -> ApiResult<Json<SessionToken>> {
    let email = Email::parse(&body.email, "email")?;
    let code = body.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid("code", "the code is the six digits from the sign-in mail"));
    }
    match state.store.check_login_code(&email, code).await? {
        LoginCodeCheck::Accepted => {}
        LoginCodeCheck::Wrong { attempts_left } => {
            return Err(ApiError::unauthenticated(format!("that code is wrong; {attempts_left} attempts left before it is locked")));
        }
        LoginCodeCheck::NoLiveCode => {
            return Err(ApiError::unauthenticated(
                "no valid code for this address (expired, used, or locked after too many attempts); request a new one",
            ));
        }
    }
    let account = state.store.account_by_email(&email).await?.ok_or_else(|| ApiError::unauthenticated("no account has this address"))?;
    let now_ms = state.clock.now_ms();
    let ttl = state.config.session_ttl_secs;
    let token = state.tokens.issue(&account.id, now_ms / 1000, ttl);
    Ok(Json(SessionToken { token, token_type: "Bearer".into(), expires_at: ts(now_ms + ttl * 1000), account_id: account.id.to_string() }))
}
