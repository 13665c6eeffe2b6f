//! Wakes the live tails of session streams when events are committed in this process, and
//! hands them the newest events so a tail that kept up does not read them back from the
//! database. The store is the source of truth: a tail that fell behind the kept window (or that
//! follows events another replica appended) reads what it has not seen from the log, so no event
//! can be missed or repeated; tails also poll, which covers other replicas.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use steward_core::ids::SessionId;
use steward_core::session::Event;
use tokio::sync::watch;

/// Committed events kept per followed session.
const KEPT: usize = 128;

/// Per-session "newest event number" signals, with the newest events of followed sessions.
#[derive(Debug, Default)]
pub struct EventBus {
    sessions: Mutex<HashMap<SessionId, Followed>>,
}

#[derive(Debug)]
struct Followed {
    signal: watch::Sender<i64>,
    /// The newest committed events, in order, contiguous.
    recent: VecDeque<Event>,
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces committed events (in order, per session). Only sessions someone follows keep
    /// anything.
    pub fn publish(&self, events: &[Event]) {
        let mut map = self.sessions.lock().expect("event bus lock");
        for e in events {
            let Some(f) = map.get_mut(&e.session_id) else { continue };
            if f.signal.receiver_count() == 0 {
                map.remove(&e.session_id);
                continue;
            }
            if f.recent.back().is_some_and(|last| last.seq + 1 != e.seq) {
                // A gap (another writer's events we did not see): only what follows is contiguous.
                f.recent.clear();
            }
            if f.recent.back().is_none_or(|last| last.seq < e.seq) {
                f.recent.push_back(e.clone());
                if f.recent.len() > KEPT {
                    f.recent.pop_front();
                }
            }
            f.signal.send_if_modified(|cur| {
                if e.seq > *cur {
                    *cur = e.seq;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// A receiver that changes whenever `session` gets new events.
    pub fn subscribe(&self, session: &SessionId) -> watch::Receiver<i64> {
        let mut map = self.sessions.lock().expect("event bus lock");
        map.entry(session.clone()).or_insert_with(|| Followed { signal: watch::channel(0).0, recent: VecDeque::new() }).signal.subscribe()
    }

    /// The events of `session` after `after`, if the kept window holds all of them (it starts
    /// at or before `after + 1`); `None` means: read the log.
    pub fn recent_after(&self, session: &SessionId, after: i64) -> Option<Vec<Event>> {
        let map = self.sessions.lock().expect("event bus lock");
        let f = map.get(session)?;
        let first = f.recent.front()?;
        if first.seq > after + 1 {
            return None;
        }
        Some(f.recent.iter().filter(|e| e.seq > after).cloned().collect())
    }

    /// Whether the kept window of `session` holds the terminal event of `run` (it ended).
    pub fn saw_end_of(&self, session: &SessionId, run: &steward_core::ids::RunId) -> bool {
        let map = self.sessions.lock().expect("event bus lock");
        map.get(session)
            .is_some_and(|f| f.recent.iter().any(|e| &e.run_id == run && steward_core::session::event_type::is_terminal(&e.kind)))
    }

    /// Drops signals nobody listens to (called periodically).
    pub fn prune(&self) {
        self.sessions.lock().expect("event bus lock").retain(|_, f| f.signal.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::ids::RunId;

    fn ev(session: &SessionId, seq: i64) -> Event {
        Event { session_id: session.clone(), seq, run_id: RunId::generate(), kind: "x".into(), data: serde_json::json!({}), created_at: 0 }
    }

    #[test]
    fn the_kept_window_answers_only_when_it_is_contiguous_from_the_point_asked() {
        let bus = EventBus::new();
        let s = SessionId::generate();
        bus.publish(&[ev(&s, 1)]);
        assert_eq!(bus.recent_after(&s, 0), None, "nobody followed: nothing kept");
        let rx = bus.subscribe(&s);
        bus.publish(&[ev(&s, 2), ev(&s, 3)]);
        assert_eq!(*rx.borrow(), 3);
        assert_eq!(bus.recent_after(&s, 0), None, "event 1 is not in the window: read the log");
        assert_eq!(bus.recent_after(&s, 1).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(bus.recent_after(&s, 3).unwrap(), vec![]);
        // A gap (5 without 4) restarts the window at 5.
        bus.publish(&[ev(&s, 5)]);
        assert_eq!(bus.recent_after(&s, 3), None);
        assert_eq!(bus.recent_after(&s, 4).unwrap().len(), 1);
        drop(rx);
        bus.prune();
        assert_eq!(bus.recent_after(&s, 4), None);
    }
}
