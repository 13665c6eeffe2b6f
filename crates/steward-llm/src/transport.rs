//! What every provider client shares: sending a request with retries (exponential backoff with
//! jitter, honouring `retry-after` on 429/529/5xx), the response and idle timeouts, reading
//! provider error bodies, and splitting a streamed body into server-sent events.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::{ClientConfig, LlmError};

/// When and how often to retry a failed request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, with full jitter.
    pub base_delay: Duration,
    /// Upper bound on any single wait, `retry-after` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// The wait a `retry-after` header asks for (seconds or an HTTP date).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    if raw.is_some() {
        return raw;
    }
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy.base_delay.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(policy.max_delay);
    let ms = rand::rng().random_range(0..=capped.as_millis().max(1) as u64);
    Duration::from_millis(ms)
}

/// Reads at most 64 KiB of an error body and pulls out the provider's message
/// (`{"error": {"message": …}}` in all three protocols).
pub(crate) async fn error_message(res: reqwest::Response) -> String {
    error_details(res).await.0
}

/// The provider's message (see [`error_message`]) and the wait asked for in the body, which is
/// where Google puts it (`{"error": {"details": [{"@type": "…RetryInfo", "retryDelay": "37s"}]}}`).
async fn error_details(res: reqwest::Response) -> (String, Option<Duration>) {
    let status = res.status();
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.get("message").and_then(|m| m.as_str()).map(str::to_owned).or_else(|| e.as_str().map(str::to_owned)));
    let wait = parsed.as_ref().and_then(|v| v.get("error")).and_then(retry_info);
    let message = match msg {
        Some(m) => m,
        None => {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(300).collect();
            if text.trim().is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text }
        }
    };
    (message, wait)
}

/// The `retryDelay` of a `google.rpc.RetryInfo` error detail.
fn retry_info(error: &serde_json::Value) -> Option<Duration> {
    let details = error.get("details")?.as_array()?;
    let info = details.iter().find(|d| d.get("@type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("google.rpc.RetryInfo")))?;
    let secs = info.get("retryDelay")?.as_str()?.trim().strip_suffix('s')?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// POSTs `body` to `url`, retrying per the policy, and returns the accepted (2xx) response.
pub(crate) async fn post(
    http: &reqwest::Client,
    config: &ClientConfig,
    url: &str,
    headers: HeaderMap,
    body: &serde_json::Value,
) -> Result<reqwest::Response, LlmError> {
    let policy = config.retry;
    let mut attempt = 0;
    loop {
        let send = http.post(url).headers(headers.clone()).json(body).send();
        let outcome = tokio::time::timeout(config.timeouts.response, send).await;
        let (err, wait) = match outcome {
            Err(_) => (LlmError::Timeout(format!("no response within {:?}", config.timeouts.response)), None),
            Ok(Err(e)) if e.is_connect() => (LlmError::Connect(e.to_string()), None),
            Ok(Err(e)) if e.is_timeout() => (LlmError::Timeout(e.to_string()), None),
            Ok(Err(e)) => (LlmError::Connect(e.to_string()), None),
            Ok(Ok(res)) if res.status().is_success() => return Ok(res),
            Ok(Ok(res)) => {
                let status = res.status();
                let header_wait = retry_after(res.headers());
                // A body that stalls must not hold the call forever.
                let (message, body_wait) = tokio::time::timeout(config.timeouts.idle, error_details(res))
                    .await
                    .unwrap_or_else(|_| (status.canonical_reason().unwrap_or("error").to_owned(), None));
                let wait = header_wait.or(body_wait);
                let err = LlmError::Http { status: status.as_u16(), message };
                if !retryable(status) {
                    return Err(err);
                }
                (err, wait)
            }
        };
        attempt += 1;
        if attempt >= policy.max_attempts {
            return Err(err);
        }
        let delay = wait.unwrap_or_else(|| backoff(&policy, attempt - 1)).min(policy.max_delay);
        tracing::warn!(attempt, ?delay, error = %err, "model call failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// The server-sent events of a streamed response, each within `idle` of the previous one.
pub(crate) fn sse(res: reqwest::Response, idle: Duration) -> impl Stream<Item = Result<SseEvent, LlmError>> + Send {
    let mut inner = res.bytes_stream().eventsource();
    async_stream(move |tx| async move {
        loop {
            match tokio::time::timeout(idle, inner.next()).await {
                Err(_) => {
                    let _ = tx.send(Err(LlmError::Timeout(format!("the stream was silent for {idle:?}")))).await;
                    return;
                }
                Ok(None) => return,
                Ok(Some(Ok(ev))) => {
                    if tx.send(Ok(SseEvent { event: ev.event, data: ev.data })).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Err(e))) => {
                    let _ = tx.send(Err(LlmError::Interrupted(e.to_string()))).await;
                    return;
                }
            }
        }
    })
}

/// A stream fed by a producer future; dropping the stream drops the producer (and with it the
/// HTTP response).
pub(crate) fn async_stream<T, F, Fut>(producer: F) -> impl Stream<Item = T> + Send
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<T>(16);
    let fut = producer(tx);
    // The producer runs as part of polling the stream, not as a detached task, so nothing
    // outlives the consumer.
    let producer = futures::stream::once(fut).filter_map(|()| async { None });
    let consumer = tokio_stream_from(rx);
    futures::stream::select(producer, consumer)
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_dates_and_ms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert("retry-after", httpdate::fmt_http_date(later).parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
    }

    #[test]
    fn retry_info_reads_google_retry_delay() {
        let error = serde_json::json!({"code": 429, "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
        ]});
        assert_eq!(retry_info(&error), Some(Duration::from_millis(1500)));
        assert_eq!(retry_info(&serde_json::json!({"code": 429})), None);
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for a in 0..10 {
            assert!(backoff(&p, a) <= Duration::from_secs(1));
        }
    }
}
