//! Outbound webhooks (§12): `run.completed`, `run.failed` and `agent.error` are enqueued when
//! they happen (one delivery per matching subscription) and sent in the background, so a slow
//! or dead receiver never blocks a run.
//!
//! **Wire.** `POST <url>` with `{"id": "dlv_…", "type": "<event>", "created_at", "data": {…}}`,
//! signed with [Standard Webhooks](https://www.standardwebhooks.com) under the subscription's
//! secret, so any Standard Webhooks library verifies it (`Webhook(secret).verify(body, headers)`):
//! `webhook-id` (the delivery id, stable across retries; receivers dedupe on it),
//! `webhook-timestamp: <unix s>`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<id>.<ts>.<body>">` keyed with the base64-decoded part of the secret after `whsec_`. The
//! legacy headers are sent too, for receivers written before: `Steward-Event`,
//! `Steward-Delivery` (the same id), `Steward-Timestamp`, `Steward-Signature: v1=<hex
//! HMAC-SHA256 of "<ts>.<body>">` under the whole secret.
//!
//! **Retries.** A 2xx ends the delivery. Anything else (error status, timeout, refused
//! connection) is recorded as an attempt and retried after an exponential backoff with jitter
//! (1 s, 2 s, 4 s … capped at 10 minutes, each drawn uniformly from its upper half), at most
//! [`MAX_ATTEMPTS`] attempts; then the delivery is `failed`. Each attempt is claimed by one
//! replica for a lease, so two replicas never send the same attempt.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use steward_store::OutboundDelivery;

use crate::engine::Runtime;

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 8;
const BASE_DELAY_MS: i64 = 1_000;
const MAX_DELAY_MS: i64 = 600_000;
/// Bytes of a receiver's answer kept with an attempt.
const EXCERPT: usize = 512;

/// The legacy `Steward-Signature`: HMAC-SHA256 of `"<ts>.<body>"` under `secret`, as `v1=<hex>`.
pub fn signature(secret: &str, ts: i64, body: &[u8]) -> String {
    steward_core::signing::steward_signature(secret, ts, body)
}

/// The Standard Webhooks `webhook-signature` of delivery `id`: `v1,<base64>`.
pub fn standard_signature(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    steward_core::signing::standard_signature(&steward_core::signing::standard_key(secret), id, ts, body)
}

/// The wait before attempt `attempt + 1` (full delay halved, plus jitter up to the other half).
pub fn backoff_ms(attempt: i64) -> i64 {
    let full = (BASE_DELAY_MS << (attempt - 1).clamp(0, 20)).min(MAX_DELAY_MS);
    full / 2 + rand::random_range(0..=full / 2)
}

impl Runtime {
    /// One pass: claims due deliveries and sends each on its own tracked task.
    pub async fn deliver_notifications(&self) {
        let c = &self.inner.config;
        let lease = self.inner.clock.now_ms() + c.notify_timeout.as_millis() as i64 + 30_000;
        // A claim token unique to this pass: two passes within one clock tick must not pick up
        // each other's claims (that would send one attempt twice).
        let token = format!("{}:{}", c.node_id, steward_core::ids::fresh(""));
        let claimed = match self.inner.store.claim_deliveries(&token, lease, 32).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim notification deliveries");
                return;
            }
        };
        for d in claimed {
            let rt = self.clone();
            self.inner.tracker.spawn(async move { rt.send(d).await });
        }
    }

    async fn send(&self, d: OutboundDelivery) {
        // Recorded as started first, so a replica that dies mid-send leaves the attempt in the
        // history (the survivor's re-send is the next attempt, with the same delivery id).
        let attempt = match self.inner.store.begin_attempt(&d.id).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, delivery = %d.id, "cannot record a notification attempt; not sending it now");
                return;
            }
        };
        let sub = &d.subscription;
        let secret = match self.inner.providers.cipher().decrypt(sub.sandbox_id.as_str(), sub.id.as_str(), &d.secret_ciphertext) {
            Ok(s) => s,
            Err(_) => {
                let _ = self
                    .inner
                    .store
                    .record_attempt(
                        &d.id,
                        attempt,
                        None,
                        0,
                        Some("the secret cannot be decrypted with this server's master key"),
                        None,
                        false,
                        None,
                    )
                    .await;
                return;
            }
        };
        let now = self.inner.clock.now_ms();
        let data: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
        let created_at = chrono::DateTime::from_timestamp_millis(now).map(|t| t.to_rfc3339()).unwrap_or_default();
        let body = json!({"id": d.id, "type": d.event, "created_at": created_at, "data": data}).to_string();
        let ts = now / 1000;
        let started = Instant::now();
        let result = self
            .http()
            .post(&sub.url)
            .header("content-type", "application/json")
            .header("webhook-id", d.id.as_str())
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", standard_signature(secret.expose(), d.id.as_str(), ts, body.as_bytes()))
            .header("steward-event", &d.event)
            .header("steward-delivery", d.id.as_str())
            .header("steward-timestamp", ts.to_string())
            .header("steward-signature", signature(secret.expose(), ts, body.as_bytes()))
            .body(body)
            .send()
            .await;
        let (code, error, excerpt, ok) = match result {
            Ok(res) => {
                let code = res.status().as_u16() as i64;
                let ok = res.status().is_success();
                let text = tokio::time::timeout(Duration::from_secs(2), res.text()).await.ok().and_then(Result::ok).unwrap_or_default();
                let mut cut = text.len().min(EXCERPT);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                (Some(code), (!ok).then(|| format!("HTTP {code}")), Some(text[..cut].to_owned()), ok)
            }
            Err(e) if e.is_timeout() => {
                (None, Some(format!("no answer within {} s", self.inner.config.notify_timeout.as_secs())), None, false)
            }
            Err(e) => (None, Some(format!("request failed: {}", e.without_url())), None, false),
        };
        let latency = started.elapsed().as_millis() as i64;
        let next = (!ok && attempt < MAX_ATTEMPTS).then(|| self.inner.clock.now_ms() + backoff_ms(attempt));
        if let Err(e) = self.inner.store.record_attempt(&d.id, attempt, code, latency, error.as_deref(), excerpt.as_deref(), ok, next).await
        {
            tracing::warn!(error = %e, delivery = %d.id, "cannot record a notification attempt");
        }
    }

    fn http(&self) -> reqwest::Client {
        self.inner
            .notify_http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(self.inner.config.notify_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("a reqwest client builds")
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for attempt in 1..=30 {
            let full = (BASE_DELAY_MS << (attempt - 1).clamp(0, 20)).min(MAX_DELAY_MS);
            let d = backoff_ms(attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} not in [{}, {full}]", full / 2);
        }
        assert!(backoff_ms(30) <= MAX_DELAY_MS);
        assert_eq!(signature("k", 1, b"x"), signature("k", 1, b"x"));
        assert_ne!(signature("k", 1, b"x"), signature("k", 2, b"x"));
    }
}
