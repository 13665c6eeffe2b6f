//! `Idempotency-Key` on mutating POSTs (§2): the first response is stored and replayed to
//! retries with the same key from the same credential; the same key with a different request
//! is refused. Responses carrying a once-only secret (new API keys) are not stored; a retry
//! gets a 409 naming what the first request created.
//!
//! While a request runs, its record is leased to this process (renewed every third of
//! `stale_after`), so a retry meanwhile answers 409 with `Retry-After`; if this process dies, the
//! lease ends and the retry takes the record over (see `steward_store::idempotency`). Handlers
//! that create something in one transaction (`POST /v1/sessions`) name it in the record there,
//! from the [`IdempotencyClaim`] in the request's extensions, and answer a taken-over retry
//! with what was created.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use steward_store::{IdempotencyBegin, IdempotencyClaim, StoredResponse};

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
    let lease = state.config.runtime.stale_after;
    let lease_until = move |state: &AppState| state.clock.now_ms() + lease.as_millis() as i64;
    let owner = state.idempotency_owner.clone();
    let created_ref = match state.store.idempotency_begin(&scope, &key, &fingerprint, &owner, lease_until(&state)).await {
        Ok(IdempotencyBegin::Proceed) => None,
        Ok(IdempotencyBegin::TakeOver { created_ref }) => {
            tracing::info!(key = %key, "took over an idempotency key whose owner stopped renewing it");
            created_ref
        }
        Ok(IdempotencyBegin::Replay(stored)) => return replay(stored),
        Ok(IdempotencyBegin::Mismatch) => {
            return ApiError::unprocessable(
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            )
            .with_param("Idempotency-Key")
            .into_response();
        }
        Ok(IdempotencyBegin::InFlight { retry_after_ms }) => {
            let secs = (retry_after_ms.max(0) + 999) / 1000;
            let mut res = ApiError::conflict(format!(
                "a request with this Idempotency-Key is still being processed; retry in {secs} s (if the server handling it \
                 stopped, the retry then runs it again)"
            ))
            .into_response();
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return res;
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    // The lease is renewed until the answer is recorded; the guard stops the renewal however
    // the request ends (a dropped connection included).
    let renewal = {
        let (state, scope, key, owner) = (state.clone(), scope.clone(), key.clone(), owner.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match state.store.idempotency_renew(&scope, &key, &owner, lease_until(&state)).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, "cannot renew an idempotency lease"),
                }
            }
        })
    };
    let _renewing = AbortOnDrop(renewal);
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(IdempotencyClaim { scope: scope.clone(), key: key.clone(), created_ref });
    let res = next.run(req).await;
    finish(&state, &scope, &key, res).await
}

/// Aborts a spawned task when dropped, so the task never outlives the request that owns it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
