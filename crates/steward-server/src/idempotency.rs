//! `Idempotency-Key` on mutating POSTs (§2): the first response is stored and replayed to
//! retries with the same key from the same credential; the same key with a different request
//! is refused. Responses carrying a once-only secret (new API keys) are not stored; a retry
//! gets a 409 naming what the first request created.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use steward_store::{IdempotencyBegin, StoredResponse};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::routes::NoReplay;

const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

/// A keyed hash (HMAC-SHA256 under a key derived from the master key) of length-prefixed
/// parts. Keyed, because request bodies may hold secrets (a vault's value): a plain hash in the
/// database would let anyone who reads it test guesses.
fn keyed_hex(state: &AppState, parts: &[&[u8]]) -> String {
    let key = state.config.master_key.derive("steward/idempotency/v1");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Middleware applying idempotency to every authenticated POST that carries the header.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => k.to_owned(),
        _ => {
            return ApiError::invalid("Idempotency-Key", "an Idempotency-Key must be 1–255 visible ASCII characters (a UUID works well)")
                .into_response();
        }
    };
    // Keys are scoped to the credential, so two callers can never see each other's responses.
    let Some(auth) = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec()) else {
        return next.run(req).await;
    };
    let scope = keyed_hex(&state, &[b"scope", &auth]);
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::too_large(format!("the request body is larger than the {} KiB limit; send less", MAX_BODY_BYTES / 1024))
                .into_response();
        }
    };
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let fingerprint = keyed_hex(&state, &[parts.method.as_str().as_bytes(), target.as_bytes(), &bytes]);
    match state.store.idempotency_begin(&scope, &key, &fingerprint).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::Mismatch) => {
            ApiError::unprocessable("this Idempotency-Key was already used for a different request; use a new key for a new request")
                .with_param("Idempotency-Key")
                .into_response()
        }
        Ok(IdempotencyBegin::InFlight) => {
            ApiError::conflict("a request with this Idempotency-Key is still being processed; retry shortly").into_response()
        }
        Ok(IdempotencyBegin::Replay(stored)) => replay(stored),
        Ok(IdempotencyBegin::Proceed) => {
            let res = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            finish(&state, &scope, &key, res).await
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let mut res = (StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK), stored.body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    res
}

async fn finish(state: &AppState, scope: &str, key: &str, res: Response) -> Response {
    let status = res.status();
    // Failures a retry may fix are not remembered.
    if status.is_server_error() || status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS {
        if let Err(e) = state.store.idempotency_abandon(scope, key).await {
            tracing::warn!(error = %e, "cannot release an idempotency key");
        }
        return res;
    }
    // A stream (the Concierge's chat) cannot be replayed, and buffering it would hold every
    // frame back until the run ends: the key is released and the stream passes through.
    let streaming =
        res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
    if streaming {
        if let Err(e) = state.store.idempotency_abandon(scope, key).await {
            tracing::warn!(error = %e, "cannot release an idempotency key");
        }
        return res;
    }
    let no_replay = res.extensions().get::<NoReplay>().cloned();
    let (parts, body) = res.into_parts();
    let bytes: Bytes = match to_bytes(body, 4 * MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::internal(format!("cannot buffer a response: {e}")).into_response();
        }
    };
    let stored = match no_replay {
        Some(NoReplay(message)) => {
            StoredResponse { status: 409, body: serde_json::to_string(&ApiError::conflict(message).body()).unwrap_or_default() }
        }
        None => StoredResponse { status: status.as_u16(), body: String::from_utf8_lossy(&bytes).into_owned() },
    };
    if let Err(e) = state.store.idempotency_finish(scope, key, &stored).await {
        tracing::warn!(error = %e, "cannot record an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}
