//! The event log of sessions, as the runtime owns it: append (through the store's group-commit
//! writer: stored first, then announced), follow after a point (the log, then live), and wait
//! for a run's end. Session streams, the Concierge chat and the messaging route all read
//! through it; every append goes through it or through the same writer.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use steward_core::ids::{RunId, SessionId};
use steward_core::session::{Event, Run, RunEvent};
use steward_store::{RunWrite, RunWritten, Store, StoreError};

use crate::bus::EventBus;

/// Events the log reads at once when a tail catches up.
const READ_BATCH: i64 = 500;

/// The sessions' event log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventLog {
    store: Store,
    bus: Arc<EventBus>,
}

impl EventLog {
    /// The log over `store`; every batch the store's run writer commits is announced to the
    /// tails of this process.
    pub fn new(store: Store) -> Self {
        let bus = Arc::new(EventBus::new());
        let hook = bus.clone();
        store.on_committed_events(move |events| hook.publish(events));
        Self { store, bus }
    }

    /// Commits `write` (group-committed with other runs' writes); its events are announced
    /// once they are durable.
    pub async fn append(&self, write: RunWrite) -> Result<RunWritten, StoreError> {
        self.store.write_run(write).await
    }

    /// Hands `write` to the writer at once; await the receipt for what was stored.
    pub fn submit(&self, write: RunWrite) -> steward_store::RunWriteReceipt {
        self.store.submit_run_write(write)
    }

    /// Appends `events` of `run` in order and returns them stored.
    pub async fn append_events(&self, session: &SessionId, run: &RunId, events: &[RunEvent]) -> Result<Vec<Event>, StoreError> {
        let mut write = RunWrite::new(session.clone(), run.clone());
        write.events = events.iter().map(RunEvent::to_stored).collect();
        Ok(self.append(write).await?.events)
    }

    /// The session's events after `after`, then each new one as it is appended: from the log
    /// (so nothing is missed or repeated) or, when this process committed them and the tail kept
    /// up, from the bus's window; woken by this process's commits and polling every `poll` for
    /// other replicas'. Never ends by itself.
    pub fn follow(&self, session: SessionId, after: i64, poll: Duration) -> impl Stream<Item = Event> + Send + use<> {
        let rx = self.bus.subscribe(&session);
        let buf: std::collections::VecDeque<Event> = Default::default();
        let log = self.clone();
        // Whether the next look must read the log (at the start, and after each poll interval,
        // for what other replicas appended).
        let read_log = true;
        futures::stream::unfold((log, session, after, rx, buf, read_log), move |state| async move {
            let (log, session, mut last, mut rx, mut buf, mut read_log) = state;
            loop {
                if let Some(ev) = buf.pop_front() {
                    last = ev.seq;
                    return Some((ev, (log, session, last, rx, buf, read_log)));
                }
                rx.borrow_and_update();
                let recent = log.bus.recent_after(&session, last);
                match recent {
                    Some(recent) if !recent.is_empty() => {
                        buf.extend(recent);
                        continue;
                    }
                    // Everything this process committed has been seen.
                    Some(_) if !read_log => {}
                    _ => match log.store.events_after(&session, last, READ_BATCH).await {
                        Ok(batch) => {
                            read_log = false;
                            if !batch.is_empty() {
                                buf.extend(batch);
                                continue;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the event log for a stream");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    },
                }
                tokio::select! {
                    _ = rx.changed() => {}
                    // Other replicas append without waking us; poll.
                    _ = tokio::time::sleep(poll) => read_log = true,
                }
            }
        })
    }

    /// Waits until `run` has ended: reads the run once, then again when this process committed
    /// its terminal event (seen in the bus's window) or every 250 ms (another replica's runs,
    /// or a window that moved on) — not on each of its other events.
    pub async fn wait_for_end(&self, run: &RunId, session: &SessionId, limit: Duration) -> Result<Option<Run>, StoreError> {
        let mut rx = self.bus.subscribe(session);
        let deadline = tokio::time::Instant::now() + limit;
        let mut read = true;
        loop {
            rx.borrow_and_update();
            if (read || self.bus.saw_end_of(session, run))
                && let Some(r) = self.store.run(run).await?
                && r.status.is_terminal()
            {
                return Ok(Some(r));
            }
            read = false;
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => read = true,
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    /// Drops the signals of sessions nobody follows.
    pub fn prune(&self) {
        self.bus.prune();
    }
}
