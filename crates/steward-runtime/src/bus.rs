//! Wakes the live tails of session streams when events are appended in this process. The
//! store is the source of truth: a woken subscriber reads what it has not seen from the log,
//! so no event can be missed or repeated; subscribers also poll, which covers events appended
//! by other replicas.

use std::collections::HashMap;
use std::sync::Mutex;

use steward_core::ids::SessionId;
use tokio::sync::watch;

/// Per-session "newest event number" signals.
#[derive(Debug, Default)]
pub struct EventBus {
    sessions: Mutex<HashMap<SessionId, watch::Sender<i64>>>,
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces that `session` now has events up to `seq`.
    pub fn publish(&self, session: &SessionId, seq: i64) {
        let mut map = self.sessions.lock().expect("event bus lock");
        if let Some(tx) = map.get(session) {
            if tx.receiver_count() == 0 {
                map.remove(session);
            } else {
                tx.send_if_modified(|cur| {
                    if seq > *cur {
                        *cur = seq;
                        true
                    } else {
                        false
                    }
                });
            }
        }
    }

    /// A receiver that changes whenever `session` gets new events.
    pub fn subscribe(&self, session: &SessionId) -> watch::Receiver<i64> {
        let mut map = self.sessions.lock().expect("event bus lock");
        map.entry(session.clone()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Drops signals nobody listens to (called periodically).
    pub fn prune(&self) {
        self.sessions.lock().expect("event bus lock").retain(|_, tx| tx.receiver_count() > 0);
    }
}
