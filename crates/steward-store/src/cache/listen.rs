//! The PostgreSQL listener of one store's caches: a task on a connection of its own, subscribed
//! to `steward_cache`, that drops the entries other replicas' notifications name.
//!
//! The caches are live only while it is subscribed. Losing the connection (the server ended it,
//! the network dropped it, or a ping every [`PING_EVERY`] went unanswered for [`PING_TIMEOUT`])
//! turns them off and empties them; subscribing again empties them again, because what was sent
//! in between is lost. It owns nothing but a weak reference to the caches, which abort it when
//! they are dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::{CHANNEL, Caches, Stale};

/// How often the subscription is checked by a round trip on its connection (a connection that
/// died without a reset would otherwise look subscribed for ever).
const PING_EVERY: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds on connecting and subscribing, and the wait between attempts (doubling).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Starts the listener of `caches`, on a connection to the store's own database and schema.
pub(crate) fn spawn_listener(caches: &Arc<Caches>) {
    let task = tokio::spawn(listen(Arc::downgrade(caches), caches.url.clone()));
    *caches.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
}

async fn listen(caches: Weak<Caches>, url: String) {
    let mut retry = FIRST_RETRY;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&url)).await {
            Ok(Ok(mut sub)) => {
                let Some(c) = caches.upgrade() else { return };
                c.subscribed(sub.pid);
                drop(c);
                retry = FIRST_RETRY;
                let why = follow(&caches, &mut sub).await;
                let Some(c) = caches.upgrade() else { return };
                c.unsubscribed();
                tracing::warn!(reason = %why, "the cache listener lost its PostgreSQL connection; caches are off until it subscribes again");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "the cache listener cannot subscribe to PostgreSQL notifications; caches stay off"),
            Err(_) => tracing::warn!("the cache listener timed out subscribing to PostgreSQL notifications; caches stay off"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

struct Subscription {
    listener: PgListener,
    /// The schema this connection works in: notifications of other schemas are other stores'.
    scope: String,
    pid: i32,
}

async fn subscribe(url: &str) -> Result<Subscription, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    let (scope, pid): (String, i32) =
        sqlx::query_as("SELECT COALESCE(current_schema()::text, ''), pg_backend_pid()").fetch_one(&mut listener).await?;
    Ok(Subscription { listener, scope, pid })
}

enum Event {
    Received(Result<Option<sqlx::postgres::PgNotification>, sqlx::Error>),
    Ping,
}

/// Applies notifications until the subscription is lost; says why it was.
async fn follow(caches: &Weak<Caches>, sub: &mut Subscription) -> String {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        // `try_recv` is cancel-safe (a notification half-read stays buffered).
        let event = tokio::select! {
            received = sub.listener.try_recv() => Event::Received(received),
            _ = ping.tick() => Event::Ping,
        };
        match event {
            Event::Received(Ok(Some(n))) => {
                let Some(c) = caches.upgrade() else { return "the store was dropped".into() };
                if let Some(stale) = parse(n.payload(), &sub.scope) {
                    c.invalidate(&stale);
                }
            }
            Event::Received(Ok(None)) => return "the connection was closed".into(),
            Event::Received(Err(e)) => return e.to_string(),
            Event::Ping => match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&mut sub.listener)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("ping failed: {e}"),
                Err(_) => return format!("no answer to a ping within {PING_TIMEOUT:?}"),
            },
        }
    }
}

/// The entry a payload `<schema> <kind>:<id>` names, if it is about `scope`.
fn parse(payload: &str, scope: &str) -> Option<Stale> {
    match payload.split_once(' ') {
        Some((schema, stale)) if schema == scope => Some(Stale::from_wire(stale)),
        Some(_) => None,
        // Not ours to read, and maybe ours: the safe reading.
        None => Some(Stale::Everything),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_other_schemas_are_ignored() {
        assert_eq!(
            parse("public sandbox:sbx_1", "public"),
            Some(Stale::Sandbox(steward_core::ids::SandboxId::from_trusted("sbx_1".into())))
        );
        assert_eq!(parse("other sandbox:sbx_1", "public"), None);
        assert_eq!(parse("garbage", "public"), Some(Stale::Everything));
    }
}
