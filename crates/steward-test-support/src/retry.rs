//! Retrying an idempotent request while the server answers 409 (another life of the request
//! still holds its `Idempotency-Key`), as a client following §2 would.

use std::future::Future;
use std::time::Duration;

use std::time::Instant;

/// Sends the request `send` makes until the answer is not 409 or `deadline` has passed, and
/// returns the last answer with the number of 409s before it. Each 409 is shown to
/// `on_conflict` (to check its `Retry-After`, say) before waiting `pause`.
pub async fn retry_while_conflict<F, Fut>(
    deadline: Instant,
    pause: Duration,
    mut send: F,
    mut on_conflict: impl FnMut(&reqwest::Response),
) -> (reqwest::Response, usize)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    let mut conflicts = 0;
    loop {
        let res = send().await;
        if res.status() != reqwest::StatusCode::CONFLICT || Instant::now() > deadline {
            return (res, conflicts);
        }
        conflicts += 1;
        on_conflict(&res);
        tokio::time::sleep(pause).await;
    }
}
